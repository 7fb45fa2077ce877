"""Stand-ins for cryptsetup, zfs, mount and umount, first on a session's PATH, for the tests of
how a secret travels (test_safety_secrets) and of the credstore-key probe's own logic
(test_credstore_key). They record what they were given (argv, stdin, ``ps`` while open runs) in
their directory; state is files there. The real tools are exercised in the lab: the
Keystone-shaped guest's sweep runs the same probe against real LUKS and ZFS
(tests/lab/test_lab_ksboot.py, test_lab_ksboot_reboot.py).

Files a test may write into the directory: ``passphrase`` (open refuses any other, exit 2 as
cryptsetup does), ``keylocation`` (what ``zfs get keylocation`` prints), ``right-key`` (what
``zfs load-key -n`` accepts), ``credstore/`` (the files a "mount" of the credstore shows).
"""

from __future__ import annotations

from pathlib import Path

FAKE_CRYPTSETUP = r"""#!/bin/sh
here=$(dirname "$0")
case "$1" in
  status)
    if [ -e "$here/state-$2" ]; then printf '/dev/mapper/%s is active.\n  type:    LUKS2\n  device:  /dev/zd0\n' "$2"; exit 0; fi
    printf '/dev/mapper/%s is inactive.\n' "$2"; exit 4 ;;
  open)
    printf '%s\n' "$*" >> "$here/argv"
    ps -eo args > "$here/ps-during-open"
    IFS= read -r pass
    printf '%s' "$pass" > "$here/stdin"
    if [ -f "$here/passphrase" ] && [ "$pass" != "$(cat "$here/passphrase")" ]; then
      echo 'No key available with this passphrase.' >&2; exit 2
    fi
    shift $(($# - 1)); touch "$here/state-$1"; exit 0 ;;
  close)
    [ -e "$here/state-$2" ] || { echo "Device $2 is not active." >&2; exit 4; }
    rm -f "$here/state-$2"; echo "$2" >> "$here/closed"; exit 0 ;;
esac
exit 1
"""

FAKE_ZFS = r"""#!/bin/sh
here=$(dirname "$0")
case "$1" in
  get) if [ -f "$here/keylocation" ]; then cat "$here/keylocation"; else echo 'file:///etc/credstore/zfs-sysroot.mount'; fi ;;
  load-key)
    printf '%s\n' "$*" >> "$here/zfs-argv"
    path=${4#file://}
    if [ -f "$path" ] && [ "$(cat "$path")" = "$(cat "$here/right-key" 2>/dev/null)" ]; then exit 0; fi
    echo "Key load error: Incorrect key provided for '$5'." >&2; exit 255 ;;
  *) exit 1 ;;
esac
"""

FAKE_MOUNT = r"""#!/bin/sh
here=$(dirname "$0")
for dir; do :; done
printf '%s\n' "$*" >> "$here/mount-argv"
[ -d "$here/credstore" ] && cp -R "$here/credstore/." "$dir/"
exit 0
"""

FAKE_UMOUNT = r"""#!/bin/sh
here=$(dirname "$0")
printf '%s\n' "$*" >> "$here/umount-argv"
find "$1" -mindepth 1 -delete
exit 0
"""


def fake_bin(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in (("cryptsetup", FAKE_CRYPTSETUP), ("zfs", FAKE_ZFS), ("mount", FAKE_MOUNT),
                       ("umount", FAKE_UMOUNT)):
        script = root / name
        script.write_text(text)
        script.chmod(0o755)
    return root
