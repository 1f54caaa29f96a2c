"""The package list, derived from the folders so that no subpackage can be left out of the wheel.

The user's design card fixes the top-level folders (server/, training/, ...); each maps onto one
import name below. setuptools' own package discovery cannot follow such a mapping, so it is done
here once; everything else about the distribution is in pyproject.toml.
"""

from setuptools import find_packages, setup

# import name -> folder; the layers, lowest first (docs/architecture.md).
ROOTS = {
    "mucode.sandbox": "sandbox",
    "mucode": "mucode",
    "mucode.engine": "engine",
    "mucode.server": "server",
    "mucode.training": "training",
    "mucode.clients": "clients",
}

packages = [
    f"{name}.{sub}" if sub else name for name, folder in ROOTS.items() for sub in ["", *find_packages(folder)]
]

setup(package_dir=ROOTS, packages=packages)
