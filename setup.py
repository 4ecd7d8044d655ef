"""Package discovery for the one ``tocsr_nas`` namespace built from four folders.

Everything else is in ``pyproject.toml``. setuptools' own discovery cannot put a folder's
subpackages under another name (``nas/search`` -> ``tocsr_nas.search``), so this file walks each
folder with ``find_packages`` and prefixes what it finds: a new subpackage (any folder with an
``__init__.py``) is packaged without editing a list. ``tests/packaging/test_wheel.py`` checks the
built wheel against the source tree.
"""

from setuptools import find_packages, setup

#: import name -> folder (must match [tool.setuptools] package-dir in pyproject.toml)
ROOTS = {
    "tocsr_nas": "nas",
    "tocsr_nas.searchspace": "searchspace",
    "tocsr_nas.surrogates": "surrogates",
    "tocsr_nas.evaluators": "evaluators",
}

packages = []
for name, folder in ROOTS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
