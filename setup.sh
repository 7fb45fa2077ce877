#!/usr/bin/env bash
# Install keystone-checks on a stock Debian 12 (or any Debian-like) machine, as root or with sudo.
#
#   bash setup.sh            the tool: python3-venv if missing, then .venv/ with keystone-checks
#   bash setup.sh --test     also the system packages the test suite uses (CI runs this)
#   bash setup.sh --system-only [--test]   only the apt part (no venv)
#
# Why a venv: Debian's python3 refuses `pip install` into the system (PEP 668,
# "externally-managed-environment"); a venv in the checkout is the supported way, needs no
# --break-system-packages, and `.venv/bin/keystone-checks` / `.venv/bin/pyinfra` are then the
# commands. apt waits up to 15 minutes for the dpkg lock (another apt run, unattended-upgrades).
set -euo pipefail
cd "$(dirname "$0")"

tests=0 system_only=0
for arg in "$@"; do
    case "$arg" in
        --test) tests=1 ;;
        --system-only) system_only=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "$@" >/dev/null
}

packages=()
# The venv needs Debian's python3-venv (ensurepip) unless this python already has it.
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
if [ "$tests" = 1 ]; then
    # openssh-server/-client: real sshd hosts; nix-bin: controller checks on offline flakes and nix
    # profile tests; iputils-ping: the ping check; chromium: HTML report screenshots; systemd:
    # systemd-analyze verify of the units; gdisk, psmisc, util-linux: the wipe guard's sgdisk,
    # fuser and losetup; prometheus: promtool tests the alert rules and dashboard queries.
    packages+=(openssh-server openssh-client nix-bin iputils-ping chromium systemd gdisk psmisc util-linux prometheus)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    echo "== system packages: ${packages[*]}"
    $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt_install "${packages[@]}"
fi
[ "$system_only" = 1 ] && exit 0

echo "== python: .venv/"
[ -x .venv/bin/python ] || python3 -m venv .venv
extra=""
[ "$tests" = 1 ] && extra="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
echo "installed: $(.venv/bin/keystone-checks --version)"
echo "next: .venv/bin/pyinfra -y inventory/local.py playbooks/preflight.py"
