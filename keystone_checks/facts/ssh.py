"""SSH: root's authorized_keys, validated line by line with ``ssh-keygen -l`` (public keys only)."""

from __future__ import annotations

import re

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote

_FP = re.compile(r"^(\d+)\s+(\S+)\s+(.*?)\s*\(([A-Z0-9-]+)\)\s*$")


def _expected_fingerprint(rest: str) -> str | None:
    """The fingerprint of the operator's key from an ``expected <ssh-keygen -l line>`` line
    (None when ssh-keygen said the key is invalid)."""
    if rest.strip() == "invalid":
        return None
    m = _FP.match(rest)
    if not m:
        raise UnparseableOutput(f"ssh-keygen -l: unexpected {rest!r}")
    return m.group(2)


class AuthorizedKeys(KeystoneFact):
    """Root's authorized_keys: every non-comment line must be one complete public key on one line
    (a key broken over lines or truncated fails ``ssh-keygen -l -f -``), and, when host data
    ``authorized_key`` is set, that key (compared by fingerprint) must be among them.

    Arguments:
        path: the authorized_keys file (host data ``authorized_keys_file``)
        expected_key: public key that must be present; ``""`` = any valid key will do

    Example: ``{"exists": true, "keys": [{"line": 1, "bits": 256, "fingerprint": "SHA256:...",
    "comment": "op@laptop", "type": "ED25519"}], "invalid_lines": [3], "expected_fingerprint":
    "SHA256:...", "contains_expected": true}``
    """

    requires = "ssh-keygen"

    def command(self, path, expected_key=""):
        q = shell_quote(path)
        lines = [f"if [ ! -e {q} ]; then echo missing; exit 0; fi"]
        if expected_key:
            lines.append(f"printf '%s\\n' {shell_quote(expected_key)} | ssh-keygen -l -f - 2>/dev/null | sed 's/^/expected /' "
                         "|| echo 'expected invalid'")
        lines.append(
            "n=0; while IFS= read -r l || [ -n \"$l\" ]; do n=$((n+1)); "
            "case \"$l\" in ''|'#'*) continue;; esac; "
            "fp=$(printf '%s\\n' \"$l\" | ssh-keygen -l -f - 2>/dev/null) && echo \"key $n $fp\" || echo \"bad $n\"; "
            f"done < {q}")
        return "; ".join(lines)

    def process(self, output):
        if output and output[0].strip() == "missing":
            return {"exists": False, "keys": [], "invalid_lines": [], "expected_fingerprint": None,
                    "expected_key_valid": None, "contains_expected": None}
        keys, invalid, expected, expected_given = [], [], None, False
        for line in output:
            if line.startswith("expected "):
                expected_given = True
                expected = _expected_fingerprint(line[len("expected "):])
            elif line.startswith("key "):
                parts = line.split(" ", 2)
                if len(parts) != 3:
                    raise UnparseableOutput(f"unexpected key line {line!r}")
                m = _FP.match(parts[2])
                if not m:
                    raise UnparseableOutput(f"ssh-keygen -l: unexpected {parts[2]!r}")
                keys.append({"line": parse_int(parts[1], "line number"), "bits": int(m.group(1)),
                             "fingerprint": m.group(2), "comment": m.group(3), "type": m.group(4)})
            elif line.startswith("bad "):
                invalid.append(parse_int(line[4:], "line number"))
            elif line.strip():
                raise UnparseableOutput(f"unexpected line {line!r}")
        contains = None
        if expected_given:
            contains = expected is not None and any(k["fingerprint"] == expected for k in keys)
        return {"exists": True, "keys": keys, "invalid_lines": invalid, "expected_fingerprint": expected,
                "expected_key_valid": (expected is not None) if expected_given else None,
                "contains_expected": contains}


# AuthorizedKeysFile tokens (sshd_config(5) TOKENS): %% %h %u %U; relative paths are under the home.
_EXPAND_AWK = r"""{ out = ""; s = $0
  while ((i = index(s, "%")) > 0) {
    out = out substr(s, 1, i - 1); c = substr(s, i + 1, 1)
    if (c == "%") out = out "%"; else if (c == "h") out = out ENVIRON["KC_H"]
    else if (c == "u") out = out ENVIRON["KC_U"]; else if (c == "U") out = out ENVIRON["KC_I"]
    else out = out "%" c
    s = substr(s, i + 2)
  }
  out = out s
  if (out == "none" || out == "") next
  if (substr(out, 1, 1) != "/") out = ENVIRON["KC_H"] "/" out
  print out }"""

_SSHD_KEYS = ("authorizedkeysfile", "authorizedkeyscommand", "permitrootlogin", "pubkeyauthentication")
_ROOT_KEY_LOGIN = ("yes", "without-password", "prohibit-password")


class SshdAuthorizedKeys(KeystoneFact):
    """The keys the host's sshd accepts for the login user, read from the files sshd itself reads.

    Asks sshd (``sshd -T -C user=USER``: the effective configuration, Match blocks applied) for
    ``authorizedkeysfile``, ``permitrootlogin``, ``pubkeyauthentication`` and
    ``authorizedkeyscommand``, expands ``%h``/``%u``/``%U``/``%%`` for USER (home from ``getent
    passwd``; relative paths are under the home) and validates every line of each file with
    ``ssh-keygen -l``. On NixOS that is ``~/.ssh/authorized_keys`` and ``/etc/ssh/authorized_keys.d/USER``
    (where ``users.users.USER.openssh.authorizedKeys.keys`` land; nixpkgs
    nixos/modules/services/networking/ssh/sshd.nix). ``sshd -T`` needs root and the host keys: when it
    fails, that is an error with its message, never a pass.

    Arguments:
        user: the account the operator logs in as (host data ``ssh_user``, default ``root``)
        expected_key: public key that must be present; ``""`` = any valid key will do

    Example: ``{"user": "alice", "user_exists": true, "home": "/home/alice", "permit_root_login":
    "without-password", "pubkey_authentication": "yes", "authorized_keys_command": "none",
    "login_permitted": true, "files": [{"path": "/home/alice/.ssh/authorized_keys", "exists": false,
    "keys": [], "invalid_lines": []}, {"path": "/etc/ssh/authorized_keys.d/alice", "exists": true,
    "keys": [{"line": 1, "fingerprint": "SHA256:...", ...}], "invalid_lines": []}], "keys": [...],
    "invalid": [], "expected_fingerprint": "SHA256:...", "expected_key_valid": true,
    "contains_expected": true, "found_in": ["/etc/ssh/authorized_keys.d/alice"]}``
    """

    requires = "ssh-keygen"

    def command(self, user="root", expected_key=""):
        u = shell_quote(str(user) or "root")
        wanted = "|".join(_SSHD_KEYS)
        parts = [
            f"kc_u={u}",
            "printf 'user %s\\n' \"$kc_u\"",
            "kc_s=$(command -v sshd 2>/dev/null) || for p in /usr/sbin/sshd /run/current-system/sw/bin/sshd; do "
            "[ -x \"$p\" ] && kc_s=$p && break; done",
            "[ -n \"$kc_s\" ] || { echo 'sshd-missing'; exit 0; }",
            "kc_t=$(\"$kc_s\" -T -C \"user=$kc_u\" 2>&1); kc_r=$?",
            "echo \"sshd-rc $kc_r\"",
            f"if [ $kc_r -eq 0 ]; then printf '%s\\n' \"$kc_t\" | grep -E '^({wanted}) '; "
            "else printf '%s\\n' \"$kc_t\" | head -n 5; fi | sed 's/^/sshd| /'",
            "[ $kc_r -eq 0 ] || exit 0",
            "kc_p=$(getent passwd -- \"$kc_u\") || { echo 'no-such-user'; exit 0; }",
            "kc_h=$(printf '%s\\n' \"$kc_p\" | cut -d: -f6); kc_i=$(printf '%s\\n' \"$kc_p\" | cut -d: -f3)",
            "printf 'home %s\\n' \"$kc_h\"",
        ]
        if expected_key:
            parts.append(f"printf '%s\\n' {shell_quote(expected_key)} | ssh-keygen -l -f - 2>/dev/null | sed 's/^/expected /' "
                         "|| echo 'expected invalid'")
        parts.append(
            "printf '%s\\n' \"$kc_t\" | sed -n 's/^authorizedkeysfile //p' | tr ' ' '\\n' | "
            f"KC_H=\"$kc_h\" KC_U=\"$kc_u\" KC_I=\"$kc_i\" awk {shell_quote(_EXPAND_AWK)} | "
            "while IFS= read -r f; do printf 'file %s\\n' \"$f\"; "
            "if [ ! -e \"$f\" ]; then echo missing; continue; fi; "
            "n=0; while IFS= read -r l || [ -n \"$l\" ]; do n=$((n+1)); "
            "case \"$l\" in ''|'#'*) continue;; esac; "
            "fp=$(printf '%s\\n' \"$l\" | ssh-keygen -l -f - 2>/dev/null) && echo \"key $n $fp\" || echo \"bad $n\"; "
            "done < \"$f\"; done")
        return "; ".join(parts)

    def process(self, output):
        user = next((line[5:] for line in output if line.startswith("user ")), None)
        if user is None:
            raise UnparseableOutput("expected a 'user NAME' line first")
        if "sshd-missing" in output:
            raise ProbeFailed("sshd not found on this host (PATH, /usr/sbin, /run/current-system/sw/bin)")
        rc_line = next((line for line in output if line.startswith("sshd-rc ")), None)
        if rc_line is None:
            raise UnparseableOutput("sshd -T: output cut short (no exit code)")
        rc = parse_int(rc_line[8:], "sshd -T exit code")
        sshd_lines = [line[6:] for line in output if line.startswith("sshd| ")]
        if rc != 0:
            raise ProbeFailed(f"sshd -T -C user={user} failed (exit {rc}): {' / '.join(sshd_lines)[:300]} "
                              "(it needs root and readable host keys; run as root or fix sshd's configuration)")
        settings: dict[str, str] = {}
        for line in sshd_lines:
            key, _, value = line.partition(" ")
            settings[key] = value.strip()
        missing = [k for k in ("authorizedkeysfile", "permitrootlogin", "pubkeyauthentication") if k not in settings]
        if missing:
            raise UnparseableOutput(f"sshd -T printed no {', '.join(missing)}")
        base = {"user": user, "user_exists": True, "home": None,
                "authorized_keys_file": settings["authorizedkeysfile"].split(),
                "permit_root_login": settings["permitrootlogin"],
                "pubkey_authentication": settings["pubkeyauthentication"],
                "authorized_keys_command": settings.get("authorizedkeyscommand", "none"),
                "login_permitted": settings["pubkeyauthentication"] == "yes"
                and (user != "root" or settings["permitrootlogin"] in _ROOT_KEY_LOGIN),
                "files": [], "keys": [], "invalid": [], "expected_fingerprint": None,
                "expected_key_valid": None, "contains_expected": None, "found_in": []}
        if "no-such-user" in output:
            return {**base, "user_exists": False, "login_permitted": False}
        files, current, expected, expected_given = [], None, None, False
        for line in output:
            if line.startswith(("user ", "sshd-rc ", "sshd| ")):
                continue
            if line.startswith("home "):
                base["home"] = line[5:]
            elif line.startswith("expected "):
                expected_given = True
                expected = _expected_fingerprint(line[len("expected "):])
            elif line.startswith("file "):
                current = {"path": line[5:], "exists": True, "keys": [], "invalid_lines": []}
                files.append(current)
            elif current is None and line.strip():
                raise UnparseableOutput(f"unexpected line {line!r}")
            elif line == "missing":
                current["exists"] = False
            elif line.startswith("key "):
                parts = line.split(" ", 2)
                m = _FP.match(parts[2]) if len(parts) == 3 else None
                if not m:
                    raise UnparseableOutput(f"ssh-keygen -l: unexpected {line!r}")
                current["keys"].append({"line": parse_int(parts[1], "line number"), "bits": int(m.group(1)),
                                        "fingerprint": m.group(2), "comment": m.group(3), "type": m.group(4)})
            elif line.startswith("bad "):
                current["invalid_lines"].append(parse_int(line[4:], "line number"))
            elif line.strip():
                raise UnparseableOutput(f"unexpected line {line!r}")
        keys = [k for f in files for k in f["keys"]]
        found_in = [f["path"] for f in files if expected and any(k["fingerprint"] == expected for k in f["keys"])]
        return {**base, "files": files, "keys": keys,
                "invalid": [{"path": f["path"], "line": n} for f in files for n in f["invalid_lines"]],
                "expected_fingerprint": expected,
                "expected_key_valid": (expected is not None) if expected_given else None,
                "contains_expected": bool(found_in) if expected_given else None, "found_in": found_in}
