"""Tool (a) 'baseline': the floor of an agentless sweep.

For every host, in parallel (one thread per host): TCP connect (TCP_NODELAY), SSH handshake +
public-key auth (paramiko, host key verified against the fleet's known_hosts), then one exec of
`true` and wait for its exit status.  Prints one JSON line: {"ok": n, "errors": n, "execs_ok": n}.

usage: python baseline.py HOSTS.json   (HOSTS.json = {"hosts": [[name, addr, port], ...],
                                                      "client_key": path, "known_hosts": path})
"""

import json
import socket
import sys
import threading

import paramiko


def one(name, addr, port, key, known_hosts, results, i):
    try:
        sock = socket.create_connection((addr, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.load_host_keys(known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(addr, port, username="root", pkey=key, sock=sock, look_for_keys=False,
                       allow_agent=False, timeout=30, banner_timeout=30, auth_timeout=30)
        chan = client.get_transport().open_session()
        chan.exec_command("true")
        rc = chan.recv_exit_status()
        client.close()
        results[i] = rc == 0
    except Exception as e:  # noqa: BLE001 - counted as an error for this host
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
        results[i] = False


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    key = paramiko.Ed25519Key.from_private_key_file(spec["client_key"])
    hosts = spec["hosts"]
    results = [False] * len(hosts)
    threads = [threading.Thread(target=one, args=(n, a, p, key, spec["known_hosts"], results, i))
               for i, (n, a, p) in enumerate(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sum(results)
    print(json.dumps({"ok": ok, "errors": len(hosts) - ok, "execs_ok": ok}))


if __name__ == "__main__":
    main()
