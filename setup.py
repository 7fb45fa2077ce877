"""Build hook: a wheel carries the catalog and the playbooks (keystone_checks/_bundled/).

pyproject.toml holds all metadata; this only copies ``checks/`` and ``playbooks/`` into the built
package, because they live at the repository root (where authors and pyinfra users expect them)
rather than inside the package. An editable install reads them from the checkout instead
(keystone_checks/paths.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithCatalog(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "keystone_checks" / "_bundled"
        for name in ("checks", "playbooks"):
            if target.joinpath(name).exists():
                shutil.rmtree(target / name)
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithCatalog})
