"""LUKS / device-mapper: the credstore mapping that holds the ZFS key."""

from __future__ import annotations

import re

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote


class MappingStatus(KeystoneFact):
    """``cryptsetup status NAME``: is the mapping open, on what device, and where it is mounted.

    ``cryptsetup status`` exits 4 for an inactive mapping: that is an answer, not a failure.
    Reads no key material.

    Arguments:
        mapping: mapping name (host data ``credstore_name``)

    Example: ``{"name": "credstore", "active": true, "in_use": true, "type": "LUKS2", "device": "/dev/zd0",
    "mounted_at": ["/etc/credstore"]}``
    """

    requires = "cryptsetup"
    ok_exit_codes = frozenset({0, 4})

    def command(self, mapping):
        q = shell_quote(mapping)
        return (
            f"cryptsetup status {q}; kc_s=$?; echo '--mounts'; "
            f"awk -v d=/dev/mapper/{q} '$1 == d {{ print $2 }}' /proc/mounts; exit $kc_s"
        )

    def process(self, output):
        if not output:
            raise UnparseableOutput("cryptsetup status printed nothing")
        head = output[0].strip()
        if " is inactive" in head:
            active, in_use = False, False
        elif " is active" in head:
            active, in_use = True, "in use" in head
        else:
            raise UnparseableOutput(f"cryptsetup status: unexpected first line {head!r}")
        info: dict[str, str] = {}
        mounts: list[str] = []
        in_mounts = False
        for line in output[1:]:
            if line.strip() == "--mounts":
                in_mounts = True
                continue
            if in_mounts:
                if line.strip():
                    mounts.append(line.strip())
                continue
            key, sep, value = line.strip().partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return {
            "name": head.split(" ")[0].removeprefix("/dev/mapper/"),
            "active": active,
            "in_use": in_use,
            "type": info.get("type"),
            "device": info.get("device"),
            "mode": info.get("mode"),
            "mounted_at": mounts,
        }


# -- the boot-time unlock chain (Keystone: everything in the systemd initrd) -------------------

# Keystone's initrd units, in chain order (ncrmro/keystone modules/os/storage.nix@v0.2.0, the same
# in modules/disko-single-disk-root/default.nix@v0.1.0): import the pool, open the LUKS credstore,
# mount it, load rpool/crypt's key from it. initrd-switch-root conflicts with the credstore mount
# and mapping, so both are stopped before stage 2.
UNLOCK_STEPS = ("import", "credstore-open", "credstore-mount", "load-key")
SWITCH_ROOT_UNITS = ("initrd-switch-root.target", "initrd-switch-root.service")
_PRIORITY_WARNING = 4
_MAX_MESSAGES = 5
_MESSAGE_CHARS = 300


def systemd_path_unit(path: str, suffix: str = ".mount") -> str:
    """``systemd-escape --path --suffix=mount PATH``: ``/etc/credstore`` -> ``etc-credstore.mount``."""
    trimmed = "/".join(part for part in str(path).split("/") if part) or "-"
    if trimmed == "-":
        return "-" + suffix
    out = []
    for i, ch in enumerate(trimmed):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out) + suffix


def unlock_units(pool: str, mapping: str, mount: str) -> dict[str, str]:
    """Step -> unit name of Keystone's initrd unlock chain for this pool/mapping/mount point."""
    return {"import": f"import-{pool}-bare.service", "credstore-open": f"systemd-cryptsetup@{mapping}.service",
            "credstore-mount": systemd_path_unit(mount), "load-key": f"{pool}-load-key.service"}


def _field(entry: dict, name: str) -> str | None:
    """A journal JSON field as text: journalctl prints a string, a list of byte values for binary
    data, or a list of those when the field repeats (the last one wins); null when too large."""
    value = entry.get(name)
    if isinstance(value, list) and value and isinstance(value[0], (list, str)):
        value = value[-1]
    if isinstance(value, list):
        try:
            value = bytes(v for v in value if isinstance(v, int) and 0 <= v < 256).decode("utf-8", "replace")
        except ValueError:
            return None
    if value is None:
        return None
    return str(value)


class UnlockJournal(KeystoneFact):
    """How the root was unlocked at boot, read from the journal of that boot (``journalctl -b N
    -o json``): Keystone's initrd units (``import-rpool-bare.service``,
    ``systemd-cryptsetup@credstore.service``, ``etc-credstore.mount``, ``rpool-load-key.service``)
    and ``initrd-switch-root`` (present only when the boot went through a systemd initrd; entries
    logged there also carry ``_RUNTIME_SCOPE=initrd``).

    For each step: whether it ran, its job result (``done``, ``failed``, ``dependency``, ``timeout``...),
    its unit result (``exit-code``...), whether it was stopped again before stage 2 (credstore),
    and its last messages (its own output, and what systemd said when something went wrong).
    ``failed_step`` is the first step of the chain that did not finish, with ``failure`` (its messages).
    Messages are the units' own log lines: no key is ever
    logged by them (systemd-cryptsetup asks for the passphrase on the console, zfs load-key reads
    the file). Bounded: the newest ``limit`` entries, messages cut to 300 characters.

    A boot the journal does not have (``-b -1`` after the first boot, or a volatile journal) is an
    answer: ``boot_found: false``.

    Arguments:
        boot: journal boot offset, ``0`` (this boot) or ``-1`` (the previous one: post-mortem)
        pool: pool name (host data ``pool``): ``import-<pool>-bare``, ``<pool>-load-key``
        mapping: credstore mapping (host data ``credstore_name``)
        mount: credstore mount point in the initrd (host data ``credstore_mount``)
        limit: at most this many journal entries (``journalctl -n``)

    Example: ``{"boot": 0, "boot_found": true, "systemd_initrd": true, "keystone_chain": true,
    "steps": {"import": {"unit": "import-rpool-bare.service", "seen": true, "result": "done",
    "unit_result": null, "stopped": false, "messages": []}, ...}, "failed_step": null, "failure": null,
    "credstore_closed_before_switch_root": true}``
    """

    requires = "journalctl"
    ok_exit_codes = frozenset({0, 1})
    timeout = 30

    def command(self, boot: int = 0, pool="rpool", mapping="credstore", mount="/etc/credstore", limit: int = 400):
        boot_arg = int(boot)  # a non-number raises here: never pasted into the shell
        units = list(unlock_units(pool, mapping, mount).values()) + list(SWITCH_ROOT_UNITS)
        matches = " ".join(f"-u {shell_quote(u)}" for u in units)
        return (f"echo {shell_quote(f'units {boot_arg} {pool} {mapping} {mount}')}; "
                f"journalctl -b {boot_arg} -o json --no-pager -n {max(1, int(limit))} {matches}")

    def parse(self, result):
        self.raise_for_exit(result)
        text = " ".join(result.stderr).lower()
        if result.exit_code == 1:
            # "Data from the specified boot (-1) is not available: No such boot ID in journal"
            # (systemd 252), "Specified boot ID has no entries", "No journal files were found."
            if "boot" in text or "no journal files" in text:
                out = self.process(result.stdout[:1])
                out["boot_found"] = False
                return out
            raise ProbeFailed(f"journalctl exited 1: {result.stderr_text() or 'no error output'}")
        return self.process(result.stdout)

    def process(self, output):
        import json

        if not output or not output[0].startswith("units "):
            raise UnparseableOutput("expected a 'units BOOT POOL MAPPING MOUNT' line first")
        head = output[0][len("units "):].split(" ", 3)
        if len(head) != 4:
            raise UnparseableOutput(f"bad units line {output[0]!r}")
        boot = parse_int(head[0], "boot offset")
        units = unlock_units(*head[1:])
        by_unit = {u: s for s, u in units.items()}
        steps = {s: {"unit": u, "seen": False, "result": None, "unit_result": None, "stopped": False,
                     "messages": []} for s, u in units.items()}
        systemd_initrd = False
        boot_id = None
        for line in output[1:]:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                raise UnparseableOutput(f"journalctl -o json: not a JSON line: {line[:120]!r}") from None
            if not isinstance(entry, dict):
                raise UnparseableOutput(f"journalctl -o json: not an object: {line[:120]!r}")
            boot_id = _field(entry, "_BOOT_ID") or boot_id
            about = _field(entry, "UNIT") or _field(entry, "OBJECT_SYSTEMD_UNIT")
            own = _field(entry, "_SYSTEMD_UNIT")
            pid1 = _field(entry, "_PID") == "1" or _field(entry, "SYSLOG_IDENTIFIER") == "systemd"
            if _field(entry, "_RUNTIME_SCOPE") == "initrd":  # journald's own field, systemd >= 252 here
                systemd_initrd = True
            if (about in SWITCH_ROOT_UNITS and pid1) or own in SWITCH_ROOT_UNITS:
                systemd_initrd = True
                continue
            unit = about if pid1 and about in by_unit else own if own in by_unit else None
            if unit is None:
                continue
            step = steps[by_unit[unit]]
            step["seen"] = True
            message = (_field(entry, "MESSAGE") or "")[:_MESSAGE_CHARS]
            job_type, job_result = _field(entry, "JOB_TYPE"), _field(entry, "JOB_RESULT")
            if pid1 and job_type == "start" and job_result:
                step["result"] = job_result
            elif pid1 and job_type == "stop" and job_result == "done":
                step["stopped"] = True
            if pid1 and _field(entry, "UNIT_RESULT"):
                step["unit_result"] = _field(entry, "UNIT_RESULT")
            try:
                priority = int(_field(entry, "PRIORITY") or 6)
            except ValueError:
                priority = 6
            # The unit's own output counts whatever its priority: a service's stderr is logged at
            # info unless it prefixes <N> (zfs load-key's "Key load error" is). From systemd
            # itself only what went wrong: warnings, a job that did not end "done", a unit result.
            if message and (not pid1 or priority <= _PRIORITY_WARNING or job_result not in (None, "done")
                            or _field(entry, "UNIT_RESULT")):
                step["messages"] = (step["messages"] + [message])[-_MAX_MESSAGES:]
        # Keystone's chain is recognised by its own units (the bare import, the load-key service),
        # or by the credstore opened in the initrd: a stage-2 crypttab/fstab credstore (found on the
        # lab's Debian guest) also logs systemd-cryptsetup@credstore and etc-credstore.mount.
        keystone_chain = (steps["import"]["seen"] or steps["load-key"]["seen"]
                          or (systemd_initrd and steps["credstore-open"]["seen"]))
        failed_step, failure = None, None
        for name in UNLOCK_STEPS:
            s = steps[name]
            if s["result"] != "done":
                failed_step = name
                failure = (f"{s['unit']}: " + ("never ran (not in the journal of this boot)" if not s["seen"]
                           else f"job {s['result'] or 'did not finish'}"
                           + (f", {s['unit_result']}" if s["unit_result"] else "")
                           + (": " + " | ".join(s["messages"]) if s["messages"] else "")))
                break
        if not keystone_chain:
            failed_step, failure = None, None
        closed = steps["credstore-open"]["stopped"] and steps["credstore-mount"]["stopped"]
        return {"boot": boot, "boot_found": True, "boot_id": boot_id, "systemd_initrd": systemd_initrd,
                "keystone_chain": keystone_chain, "steps": steps, "failed_step": failed_step,
                "failure": failure, "credstore_closed_before_switch_root": closed if keystone_chain else None}


# -- the credstore's LUKS header, read-only ---------------------------------------------------

_SECTIONS = ("Keyslots:", "Tokens:", "Digests:", "Data segments:")


class LuksHeader(KeystoneFact):
    """The LUKS header of a device, read-only, without opening it: ``cryptsetup isLuks`` and
    ``cryptsetup luksDump`` (LUKS2 and LUKS1). Reports the version, UUID, the keyslots and the
    tokens (``systemd-tpm2``: enrolled with systemd-cryptenroll; ``systemd-fido2``,
    ``systemd-pkcs11``, ``systemd-recovery``...), each token with the keyslots it unlocks.

    luksDump prints no key, but it prints salts, digests and a TPM2 token's sealed blob: none of
    that is kept, only names, numbers and types.

    Arguments:
        device: the LUKS device, e.g. ``/dev/zvol/rpool/credstore`` (host data ``credstore_device``)

    Example: ``{"exists": true, "is_luks": true, "version": 2, "uuid": "7a78...", "keyslots":
    [{"id": 0, "type": "luks2", "pbkdf": "argon2id"}, {"id": 1, "type": "luks2", "pbkdf": "pbkdf2"}],
    "tokens": [{"id": 0, "type": "systemd-tpm2", "keyslots": [1]}], "token_types": ["systemd-tpm2"],
    "tpm2_enrolled": true}``
    """

    requires = "cryptsetup"

    def command(self, device):
        q = shell_quote(device)
        return (f"if [ ! -e {q} ]; then echo 'device missing'; exit 0; fi; "
                f"if cryptsetup isLuks -- {q}; then echo 'luks yes'; cryptsetup luksDump -- {q}; "
                "else kc_s=$?; echo \"luks no $kc_s\"; fi")

    def process(self, output):
        empty = {"exists": True, "is_luks": False, "version": None, "uuid": None, "keyslots": [],
                 "tokens": [], "token_types": [], "tpm2_enrolled": False}
        if not output:
            raise UnparseableOutput("no output from the header probe")
        head = output[0].strip()
        if head == "device missing":
            return {**empty, "exists": False}
        if head.startswith("luks no"):
            # isLuks: 1 = not LUKS; 4 = cannot read the device (access denied): not an answer
            code = head[len("luks no"):].strip()
            if code not in ("1", ""):
                raise ProbeFailed(f"cryptsetup isLuks exited {code}: the device could not be read")
            return empty
        if head != "luks yes":
            raise UnparseableOutput(f"unexpected first line {head[:120]!r}")
        version, uuid = None, None
        keyslots: list[dict] = []
        tokens: list[dict] = []
        section = None
        for line in output[1:]:
            if not line.strip():
                continue
            stripped = line.strip()
            if not line[0].isspace():
                section = stripped if stripped in _SECTIONS else None
                key, sep, value = stripped.partition(":")
                if sep and key == "Version":
                    version = parse_int(value, "LUKS version")
                elif sep and key == "UUID":
                    uuid = value.strip() or None
                elif key.startswith("Key Slot ") and sep:  # LUKS1: "Key Slot 0: ENABLED"
                    if value.strip() == "ENABLED":
                        keyslots.append({"id": parse_int(key[len("Key Slot "):], "LUKS1 key slot"),
                                         "type": "luks1", "pbkdf": "pbkdf2"})
                continue
            entry = re.fullmatch(r"  ([0-9]+): (\S+)", line.rstrip())
            if section == "Keyslots:":
                if entry:
                    keyslots.append({"id": int(entry.group(1)), "type": entry.group(2), "pbkdf": None})
                elif keyslots and stripped.startswith("PBKDF:"):
                    keyslots[-1]["pbkdf"] = stripped.partition(":")[2].strip()
            elif section == "Tokens:":
                if entry:
                    tokens.append({"id": int(entry.group(1)), "type": entry.group(2), "keyslots": []})
                elif tokens and re.fullmatch(r"Keyslot:\s+[0-9]+", stripped):
                    tokens[-1]["keyslots"].append(int(stripped.partition(":")[2]))
        if version is None:
            raise UnparseableOutput("luksDump printed no 'Version:' line")
        types = sorted({t["type"] for t in tokens})
        return {"exists": True, "is_luks": True, "version": version, "uuid": uuid, "keyslots": keyslots,
                "tokens": tokens, "token_types": types, "tpm2_enrolled": "systemd-tpm2" in types}


# -- the key the next boot loads, verified inside the credstore (opt-in: needs the passphrase) -----

VERIFY_MAPPING = "kc-credstore-verify"  # our own read-only mapping; never the initrd's `credstore`
VERIFY_LOCK = "/run/keystone-checks-credstore-verify.lock"

# POSIX sh (dash, bash as sh, busybox). Inputs arrive as the variables kc_dev kc_map kc_ds kc_cm,
# assigned quoted before it; the passphrase is in $kc_secret (facts.batch.SECRET_VAR) and reaches
# cryptsetup through the printf builtin, so it is in no argv. Once the mapping is open no step
# exits early: every path reaches the unmount and the close at the end. A run killed by its
# timeout leaves the mapping to the next run, which closes a stale one under the same lock first.
_CREDSTORE_KEY = r'''
command -v zfs >/dev/null 2>&1 || { echo 'zfs-missing'; exit 0; }
kc_loc=$(zfs get -H -o value keylocation "$kc_ds" 2>&1) || { echo "keylocation-error $kc_loc" | head -n 1; exit 0; }
echo "keylocation $kc_loc"
case $kc_loc in
  "file://$kc_cm"/*) kc_rel=${kc_loc#"file://$kc_cm"/} ;;
  *) echo 'outside'; exit 0 ;;
esac
case /$kc_rel/ in */../*|*/./*|//) echo 'outside'; exit 0 ;; esac
echo "keypath $kc_rel"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$kc_lock" && flock -n 9 || { echo 'busy'; exit 0; }
fi
kc_stale() {
  for kc_m in $(awk -v d="/dev/mapper/$kc_vm" '$1 == d { print $2 }' /proc/mounts); do umount "$kc_m" 2>/dev/null; done
  cryptsetup status "$kc_vm" >/dev/null 2>&1 || return 0
  kc_n=0
  until cryptsetup close "$kc_vm" 2>/dev/null; do
    kc_n=$((kc_n + 1)); [ $kc_n -ge 5 ] && return 1
    udevadm settle 2>/dev/null || sleep 1
  done
}
kc_stale || { echo 'stale-open'; exit 0; }
kc_tell() { printf '%s\n' "$2" | head -n 3 | sed "s/^/$1-message /"; }
kc_opened=
kc_mp=
if cryptsetup status "$kc_map" >/dev/null 2>&1; then
  echo 'source mapping'
  kc_src=/dev/mapper/$kc_map
  kc_mp=$(awk -v d="$kc_src" '$1 == d { print $2; exit }' /proc/mounts)
else
  echo 'source opened'
  [ -n "$kc_secret" ] || { echo 'no-secret'; exit 0; }
  kc_out=$(printf '%s\n' "$kc_secret" | cryptsetup open --readonly --type luks "$kc_dev" "$kc_vm" 2>&1)
  kc_r=$?
  echo "open $kc_r"
  [ $kc_r -eq 0 ] || { kc_tell open "$kc_out"; exit 0; }
  kc_opened=1
  kc_src=/dev/mapper/$kc_vm
fi
kc_tmp=
if [ -z "$kc_mp" ]; then
  # noload: ext4 replays a dirty journal even on a read-only mount; without it, whatever the
  # filesystem (noload is ext3/4's), read-only.
  if kc_tmp=$(mktemp -d -p /run 2>/dev/null || mktemp -d); then
    kc_out=$(mount -o ro,noload,nosuid,nodev,noexec "$kc_src" "$kc_tmp" 2>&1 ||
             mount -o ro,nosuid,nodev,noexec "$kc_src" "$kc_tmp" 2>&1)
    kc_r=$?
  else
    kc_tmp= kc_out='mktemp -d failed' kc_r=1
  fi
  echo "mount $kc_r"
  if [ $kc_r -eq 0 ]; then kc_mp=$kc_tmp; else kc_tell mount "$kc_out"; fi
fi
if [ -n "$kc_mp" ]; then
  if [ -f "$kc_mp/$kc_rel" ]; then
    echo 'keyfile yes'
    kc_out=$(zfs load-key -n -L "file://$kc_mp/$kc_rel" "$kc_ds" 2>&1)
    kc_r=$?
    echo "verify $kc_r"
    [ $kc_r -eq 0 ] || kc_tell verify "$kc_out"
  else
    echo 'keyfile no'
  fi
fi
if [ -n "$kc_tmp" ]; then
  [ -n "$kc_mp" ] && umount "$kc_tmp" 2>/dev/null
  rmdir "$kc_tmp" 2>/dev/null
fi
if [ -n "$kc_opened" ]; then
  if kc_stale; then echo 'closed yes'; else echo 'closed no'; fi
fi
exit 0
'''


class CredstoreKey(KeystoneFact):
    """Does the credstore the next boot opens hold the key that unlocks the encryption root?

    Read-only and opt-in (the check that uses it needs host data ``luks_passphrase_file`` or
    ``luks_passphrase_env``): opens the credstore **read-only** as its own mapping
    (``kc-credstore-verify``, never the initrd's ``credstore``) with the operator's passphrase from
    stdin, mounts it read-only in a private directory under ``/run``, looks for the file the
    dataset's ``keylocation`` names inside ``credstore_mount``, and asks ZFS whether it is the
    right key with ``zfs load-key -n`` (a dry run: it only verifies, and is allowed while the key
    is loaded); then unmounts and closes again. A credstore already open in the running system
    (a stage-2 unlock, or opened by hand) is read through its own mapping and mount instead, and
    left as it was. Never prints a key or the passphrase: only exit codes and the tools' messages.

    Costs one LUKS unlock on the host (the keyslot's key derivation: about 1-2 s and up to its
    memory cost, as at boot). One run at a time per host (``flock`` on ``/run``); a mapping a
    killed run left open is closed by the next one first.

    Arguments:
        device: the credstore's LUKS device (host data ``credstore_device``)
        mapping: the credstore's own mapping name (host data ``credstore_name``)
        dataset: the encryption root whose key the credstore holds (host data ``crypt_dataset``)
        credstore_mount: where the initrd mounts the credstore (host data ``credstore_mount``)

    Example: ``{"keylocation": "file:///etc/credstore/zfs-sysroot.mount", "in_credstore": true,
    "key_path": "zfs-sysroot.mount", "source": "opened", "opened": true, "open_error": null,
    "key_file_present": true, "key_verified": true, "verify_error": null, "closed_again": true}``
    """

    requires = "cryptsetup"
    reads_secret = True
    # The unlock's key derivation is sized for the host's boot (argon2id: seconds, up to 1 GiB).
    timeout = 90

    def command(self, device, mapping, dataset, credstore_mount):
        mount = str(credstore_mount).rstrip("/")
        assignments = (f"kc_dev={shell_quote(device)} kc_map={shell_quote(mapping)} kc_ds={shell_quote(dataset)} "
                       f"kc_cm={shell_quote(mount)} kc_vm={shell_quote(VERIFY_MAPPING)} kc_lock={shell_quote(VERIFY_LOCK)}")
        return assignments + "\n" + _CREDSTORE_KEY.strip()

    def process(self, output):
        value: dict = {"keylocation": None, "in_credstore": None, "key_path": None, "source": None,
                       "opened": None, "open_error": None, "key_file_present": None, "key_verified": None,
                       "verify_error": None, "closed_again": None}
        messages: dict[str, list[str]] = {"open": [], "mount": [], "verify": []}
        mount_rc = open_rc = None
        for line in output:
            word, _, rest = line.partition(" ")
            if word == "zfs-missing":
                raise ProbeFailed("command 'zfs' not found on the host")
            if word == "keylocation-error":
                raise ProbeFailed(f"zfs get keylocation: {rest or 'failed'}")
            if word == "keylocation":
                value["keylocation"] = rest
            elif word == "keypath":
                value["key_path"] = rest
            elif word == "outside":
                value["in_credstore"] = False
                return value
            elif word == "busy":
                raise ProbeFailed(f"another run is verifying the credstore on this host ({VERIFY_LOCK} is "
                                  "locked): run again when it has finished")
            elif word == "stale-open":
                raise ProbeFailed(f"a mapping {VERIFY_MAPPING} left by an earlier run could not be closed: "
                                  f"close it (umount its mount; cryptsetup close {VERIFY_MAPPING}) and run again")
            elif word == "no-secret":
                raise ProbeFailed("the passphrase did not reach the host (nothing on the command's stdin)")
            elif word == "source":
                value["source"] = rest
                value["in_credstore"] = True
                if rest == "mapping":
                    value["opened"] = True
            elif word == "open":
                open_rc = rest
                value["opened"] = rest == "0"
            elif word == "mount":
                mount_rc = rest
            elif word == "keyfile":
                value["key_file_present"] = rest == "yes"
            elif word == "verify":
                value["key_verified"] = rest == "0"
            elif word == "closed":
                value["closed_again"] = rest == "yes"
            elif word.removesuffix("-message") in messages:
                messages[word.removesuffix("-message")].append(rest)
        if value["keylocation"] is None or value["source"] is None:
            raise UnparseableOutput("expected 'keylocation ...' and 'source ...' lines")
        if open_rc not in (None, "0", "2"):
            # 2 is cryptsetup's "no key available with this passphrase" (an answer: the passphrase
            # does not open it); 1 bad arguments, 3 out of memory, 4 device, 5 busy: not an answer.
            raise ProbeFailed(f"cryptsetup open --readonly exited {open_rc}: "
                              f"{' '.join(messages['open']) or 'no error output'}")
        if value["opened"] is False:
            value["open_error"] = " ".join(messages["open"]) or "cryptsetup open failed"
        if mount_rc not in (None, "0"):
            raise ProbeFailed(f"the credstore opened but did not mount read-only: {' '.join(messages['mount']) or 'mount failed'}")
        if value["key_verified"] is False:
            value["verify_error"] = " ".join(messages["verify"]) or "zfs load-key -n failed"
        return value
