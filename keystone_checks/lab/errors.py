"""Expected lab failures: printed as one clear line by the CLI, never a traceback."""


class LabError(Exception):
    """Something the user can fix (missing tool, image not built, guest not up)."""


SETUP_HINT = "run .ci/setup-lab.sh (installs qemu-system-x86, qemu-utils, mmdebstrap, zstd)"
