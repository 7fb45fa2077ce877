# State "deployed-starting": the deployed host rebooted with a boot job that
# never finishes, so `systemctl is-system-running` answers "starting".  After
# the reboot the Keystone runtime is brought back (import, credstore, key,
# /boot, /run/current-system); `touch /run/keystone-lab-release` ends the boot.
cat > /etc/systemd/system/keystone-lab-gate.service <<'UNIT'
[Unit]
Description=keystone lab: boot gate (keeps the system starting)
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=infinity
ExecStart=/bin/sh -c 'while [ ! -e /run/keystone-lab-release ]; do sleep 1; done'

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable -q keystone-lab-gate.service
sync
#@reboot
systemctl disable -q keystone-lab-gate.service
modprobe zfs
ks_import_unlock "" "$PASSFILE"
mount "$(ks_part 1)" /boot
ln -sfn "$(readlink -f /nix/var/nix/profiles/system)" /run/current-system
[ "$(systemctl is-system-running)" = starting ]
