"""FALLBACK probe set - used only until `keystone_checks.engine.plan.host_probes` can be imported.

~20 realistic, read-only host-side probes of a NixOS server health sweep (ZFS root, LUKS credstore,
systemd, Nix generations, disks, memory, time, network).  Commands missing on the benchmark machine
just exit 127; every tool runs exactly the same commands, so they are timed the same.
bench/run.py prints a warning and records probes_source = "fallback" when this list is used.
"""

FALLBACK_PROBES: list[tuple[str, str]] = [
    ("zpool_status", "zpool status -v rpool"),
    ("zpool_list", "zpool list -Hp -o name,size,alloc,free,frag,cap,health"),
    ("zfs_datasets", "zfs list -Hp -o name,used,avail,mountpoint,encryption,keystatus"),
    ("credstore", "cryptsetup status credstore"),
    ("failed_units", "systemctl list-units --failed --no-legend --plain"),
    ("system_state", "systemctl is-system-running"),
    ("nix_store_df", "df -B1 --output=source,fstype,size,used,avail,target /nix"),
    ("root_df", "df -B1 --output=source,fstype,size,used,avail,target /"),
    ("boot_df", "df -B1 --output=source,fstype,size,used,avail,target /boot"),
    ("inodes", "df -i --output=source,itotal,iused,iavail,target /"),
    ("meminfo", "cat /proc/meminfo"),
    ("loadavg", "cat /proc/loadavg"),
    ("uptime", "cat /proc/uptime"),
    ("block_devices", "lsblk -J -b -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT"),
    ("generations", "nix-env --list-generations -p /nix/var/nix/profiles/system"),
    ("current_system", "readlink -f /run/current-system"),
    ("booted_system", "readlink -f /run/booted-system"),
    ("kernel", "uname -r"),
    ("time_sync", "timedatectl show -p NTPSynchronized --value"),
    ("journal_errors", "journalctl -p err -b --no-pager -n 20 -o short-iso"),
    ("mounts", "cat /proc/self/mounts"),
    ("listening", "ss -Hltn"),
]
