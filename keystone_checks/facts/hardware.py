"""Hardware the install relies on: the TPM2 that unlocks the credstore without a passphrase."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, labelled_lines


class Tpm2(KeystoneFact):
    """Whether a TPM 2.0 is present (``/sys/class/tpm/tpm0``, its ``tpm_version_major`` and the
    resource manager ``/dev/tpmrm0``). Without one the credstore is unlocked by passphrase at boot.

    Example: ``{"present": true, "version": 2, "rm_device": true, "tpm2": true}``
    """

    def command(self):
        return ("if [ -e /sys/class/tpm/tpm0 ]; then echo 'tpm yes'; "
                # read, a shell builtin, instead of cat: one process less
                "kc_v=; IFS= read -r kc_v 2>/dev/null </sys/class/tpm/tpm0/tpm_version_major; echo \"version $kc_v\"; "
                "else echo 'tpm no'; fi; "
                "if [ -e /dev/tpmrm0 ]; then echo 'rm yes'; else echo 'rm no'; fi")

    def process(self, output):
        fields = labelled_lines(output, ("tpm", "rm"))
        version = fields.get("version") or None
        if version is not None and not (version.isascii() and version.isdigit()):
            raise UnparseableOutput(f"tpm_version_major is not a number: {version!r}")
        version = int(version) if version else None
        present = fields["tpm"] == "yes"
        rm = fields["rm"] == "yes"
        # Kernels before 5.6 have no tpm_version_major; a resource manager (tpmrm) exists only for TPM 2.0.
        tpm2 = present and (version == 2 or (version is None and rm))
        return {"present": present, "version": version, "rm_device": rm, "tpm2": tpm2}
