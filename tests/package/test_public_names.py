"""The lazily exported names of each package are its ``__all__`` (as SimPy asserts), and
each one resolves to an object of the module it is said to come from."""

import importlib

import pytest

PACKAGES = ["cbecsim", "cbecsim.analysis", "cbecsim.sweep"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_equals_the_lazy_exports(name):
    package = importlib.import_module(name)
    lazy = set(package._WHERE)
    exported = set(package.__all__) - {"__version__"}
    assert exported == lazy, (f"in __all__ only: {sorted(exported - lazy)}; lazy only: {sorted(lazy - exported)}")
    assert len(package.__all__) == len(set(package.__all__)), "a name is listed twice in __all__"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_lazy_name_resolves_from_its_module(name):
    package = importlib.import_module(name)
    for public, module in package._WHERE.items():
        value = getattr(package, public)
        source = importlib.import_module(f"{name}.{module}")
        if value is source:
            # A function exported under its own module's name (cbecsim.shock, cbecsim.optimize):
            # once the module is imported Python binds the name to the module, which is
            # therefore made callable and calls the function.
            assert callable(value) and "__call__" in vars(type(value)), (public, module)
        else:
            assert value is getattr(source, public), (public, module)
        assert public in dir(package)
