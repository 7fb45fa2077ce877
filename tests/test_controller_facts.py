"""The controller facts' real commands against real Nix (Debian's nix-bin) on small offline flakes:
each documented cause of "Configuration Validation Fails" classified from nix's own error text."""

from __future__ import annotations

import os
import subprocess

import pytest
from nix_flakes import local_system, make_bad_flake, make_flake, make_flake_v02, make_keypair, nix_env, require_nix

from keystone_checks.facts import FACTS
from keystone_checks.facts import flake as flake_facts
from keystone_checks.facts.base import ProbeOutput


def run_fact(name: str, nix_config: str = "", **args):
    fact = FACTS[name]()
    env = nix_env()
    env["NIX_CONFIG"] += nix_config
    done = subprocess.run(["sh", "-c", fact.command(**args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "LC_ALL": "C"})
    return fact.parse(ProbeOutput(done.returncode, done.stdout.splitlines(), done.stderr.splitlines()))


@pytest.fixture(scope="module")
def flakes(tmp_path_factory):
    require_nix()
    root = tmp_path_factory.mktemp("flakes")
    pub = make_keypair(root / "keys")
    return {"good": make_flake(root / "good", pub.read_text()), "bad": make_bad_flake(root / "bad"),
            "v02": make_flake_v02(root / "v02", pub.read_text()), "pub": pub, "other_pub": make_keypair(root / "other")}


def test_nix_version_and_settings():
    require_nix()
    assert run_fact("nix.Version")["installed"] is True
    settings = run_fact("nix.Settings")
    assert settings["substituters"] and settings["max_jobs"] >= 1 and settings["mem_total_bytes"] > 0


def test_flake_parse(flakes):
    assert run_fact("flake.Parse", flake=str(flakes["good"])) == {"flake_found": True, "parses": True, "error": None}
    bad = run_fact("flake.Parse", flake=str(flakes["bad"]))
    assert bad["parses"] is False and "syntax error" in bad["error"] and "flake.nix:3" in bad["error"]
    assert run_fact("flake.Parse", flake=str(flakes["good"] / "nowhere"))["flake_found"] is False


@pytest.mark.parametrize("configuration, error_class, detail", [
    ("test-server", None, None),
    ("test-serve", "missing-configuration", ("suggestion", "test-server")),
    ("loop", "infinite-recursion", None),
    ("undef", "undefined-variable", ("undefined_variable", "config")),
])
def test_configuration_causes(flakes, configuration, error_class, detail):
    got = run_fact("flake.Configuration", flake=str(flakes["good"]), configuration=configuration)
    assert got["error_class"] == error_class, got
    assert got["evaluates"] is (error_class is None)
    assert got["names"] == sorted(["test-server", "loop", "undef", "nohostname", "nomodules", "aarch"])
    if detail:
        assert got[detail[0]] == detail[1]


def test_options_and_operator_key(flakes):
    good = run_fact("flake.Options", flake=str(flakes["good"]), configuration="test-server", public_key_file=str(flakes["pub"]))
    assert good["hostname"] == "test-server" and good["disko_device"] == "/dev/vda"
    assert good["modules"] == {"disko": True, "keystone_disko": True, "keystone_os": False}
    assert good["keystone_version"] == "v0.1" and good["admin_key_users"] == ["root"]
    assert good["operator_key_authorized"] is True and good["system"] == local_system()[0]
    other = run_fact("flake.Options", flake=str(flakes["good"]), configuration="test-server", public_key_file=str(flakes["other_pub"]))
    assert other["operator_key_authorized"] is False
    assert run_fact("flake.Options", flake=str(flakes["good"]), configuration="nohostname",
                    public_key_file=str(flakes["pub"]))["hostname"] is None
    assert run_fact("flake.Options", flake=str(flakes["good"]), configuration="nomodules",
                    public_key_file=str(flakes["pub"]))["modules"] == {"disko": False, "keystone_disko": False,
                                                                       "keystone_os": False}


def test_options_keystone_v02(flakes):
    """Keystone v0.2+ (keystone.os.*, keys on a wheel user, none on root) is detected and judged by its rules."""
    def options(configuration, pub="pub"):
        return run_fact("flake.Options", flake=str(flakes["v02"]), configuration=configuration, public_key_file=str(flakes[pub]))
    good = options("v02-server")
    assert good["keystone_version"] == "v0.2+" and good["modules"]["keystone_os"] is True
    assert good["storage"] == {"os_enable": True, "enable": True, "type": "zfs", "devices": ["/dev/vda"], "mode": "single"}
    assert good["storage_problems"] == [] and not good["root_keys"]
    assert good["admin_key_users"] == ["alice"] and good["operator_key_users"] == ["alice"]
    assert good["operator_key_authorized"] is True
    assert options("v02-server", "other_pub")["operator_key_authorized"] is False
    nowheel = options("v02-nowheel")
    assert nowheel["admin_keys"] == [] and nowheel["operator_key_authorized"] is False
    assert nowheel["users_with_keys"]["alice"] == {"keys": 1, "wheel": False, "normal": True}
    assert options("v02-nodevices")["storage_problems"] == ["keystone.os.storage.devices must contain at least one disk device"]
    assert options("v02-mirror-one-disk")["storage_problems"] == ["mode mirror needs at least 2 devices, 1 given"]


def test_cross_build(flakes):
    native = run_fact("flake.CrossBuild", flake=str(flakes["good"]), configuration="test-server")
    assert native["same_arch"] is True and native["can_build"] is True
    other = run_fact("flake.CrossBuild", flake=str(flakes["good"]), configuration="aarch")
    assert other["same_arch"] is False and other["target_system"] == local_system()[1]
    assert other["can_build"] is bool(other["emulated"] or other["builders"])


def test_nix_warnings_on_stderr_do_not_break_the_answers(flakes):
    """nix writes warnings on stderr while it succeeds (a nix.conf setting it does not know; its eval cache
    busy when the batch evaluates one flake several times at once): the facts read nix's stdout for its
    answer and keep its stderr out of the JSON, and a failure's error text starts at nix's own error."""
    unknown = "kc-setting-nix-does-not-know = 1\n"  # every nix command then warns "unknown setting" on stderr
    good = str(flakes["good"])
    assert run_fact("flake.CrossBuild", unknown, flake=good, configuration="test-server")["can_build"] is True
    options = run_fact("flake.Options", unknown, flake=good, configuration="test-server", public_key_file=str(flakes["pub"]))
    assert options["evaluated"] is True and options["operator_key_authorized"] is True
    config = run_fact("flake.Configuration", unknown, flake=good, configuration="test-server")
    assert config["evaluates"] is True and config["system_name"] == "test-server" and "test-server" in config["names"]
    assert run_fact("flake.Parse", unknown, flake=good)["parses"] is True
    undef = run_fact("flake.Configuration", unknown, flake=good, configuration="undef")
    assert undef["error_class"] == "undefined-variable" and undef["error"].startswith("error: undefined variable 'config'")
    cross = run_fact("flake.CrossBuild", unknown, flake=good, configuration="undef")
    assert cross["can_build"] is None and cross["error"].startswith("error: undefined variable 'config'")


def test_error_text_skips_what_nix_did_not_fail_on():
    # The first line as nix 2.8 printed it in a concurrent batch (its eval cache busy); the rest is a failure's.
    lines = ["error (ignored): error: SQLite database '/root/.cache/nix/eval-cache-v2/0fa7.sqlite' is busy",
             "warning: unknown setting 'kc-setting-nix-does-not-know'", "error: undefined variable 'config'", "",
             "       at /nix/store/x-source/undef.nix:1:28:"]
    assert flake_facts._error_text(lines) == "error: undefined variable 'config'\n       at /nix/store/x-source/undef.nix:1:28:"


def test_public_key_file(flakes, tmp_path):
    assert run_fact("controller.PublicKeyFile", path=str(flakes["pub"]))["valid"] is True
    wrapped = tmp_path / "wrapped.pub"
    text = flakes["pub"].read_text()
    wrapped.write_text(text[:40] + "\n" + text[40:])
    got = run_fact("controller.PublicKeyFile", path=str(wrapped))
    assert got["valid"] is False and got["lines"] == 2
    private = run_fact("controller.PublicKeyFile", path=str(flakes["pub"].with_suffix("")))
    assert private["private_key"] is True and private["valid"] is False
