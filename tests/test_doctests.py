"""Run the docstring examples of the public modules, so they never rot."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("tocsr_nas", "tocsr_nas.searchspace", "tocsr_nas.surrogates", "tocsr_nas.evaluators")


def _modules():
    names = set(PACKAGES)
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if ".commands" in info.name or info.name.endswith("__main__"):
                continue
            names.add(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
