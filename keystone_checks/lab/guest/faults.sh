# Helpers only the fault injections use (kept out of lib.sh so editing a
# fault does not invalidate the saved states, whose hash covers lib.sh).
# The lab's own control channel: a second sshd on port 2222 with its own
# authorized-keys copy, so faults that break sshd, the firewall or root's
# authorized_keys can still be verified (and the guest inspected) by the lab.
ks_control_sshd() {
    mkdir -p /run/lab-ctl
    [ -s /run/lab-ctl/authorized_keys ] || cp /root/.ssh/authorized_keys /run/lab-ctl/authorized_keys
    chmod 700 /run/lab-ctl; chmod 600 /run/lab-ctl/authorized_keys
    systemctl is-active -q keystone-lab-ctl.service && return 0
    systemd-run --quiet --unit=keystone-lab-ctl --description="keystone lab control sshd" \
        /usr/sbin/sshd -D -p 2222 -o PidFile=/run/lab-ctl/sshd.pid \
        -o AuthorizedKeysFile=/run/lab-ctl/authorized_keys
    nft insert rule inet filter input tcp dport 2222 accept comment '"keystone-lab control channel"'
    i=0; while ! ss -ltn | grep -q ':2222 ' && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
}

ks_failed_unit() {
    cat > /etc/systemd/system/keystone-lab-broken.service <<'UNIT'
[Unit]
Description=keystone lab: a unit that fails

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "keystone-lab-broken: simulated failure" >&2; exit 1'
UNIT
    systemctl daemon-reload
    systemctl start keystone-lab-broken.service || true
}
