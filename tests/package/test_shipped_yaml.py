"""The shipped data files read with libyaml's loader give the pure-Python loader's data."""

import importlib.resources

import pytest
import yaml

from cbecsim._yaml import SHIPPED_LOADER, load_shipped

SHIPPED = [resource for package in ("cbecsim.policies", "cbecsim.fees")
           for resource in importlib.resources.files(package).joinpath("data").iterdir()
           if resource.name.endswith(".yaml")]


def test_every_library_file_is_found():
    names = {resource.name for resource in SHIPPED}
    assert {"us.yaml", "eu.yaml", "fx_monthly.yaml", "amazon_us.yaml"} <= names


@pytest.mark.parametrize("resource", SHIPPED, ids=lambda resource: resource.name)
def test_shipped_file_loads_the_same_with_either_loader(resource):
    text = resource.read_text(encoding="utf-8")
    assert load_shipped(text) == yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - a safe loader


def test_the_fast_loader_is_a_safe_one():
    assert issubclass(SHIPPED_LOADER, (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    with pytest.raises(yaml.YAMLError):
        load_shipped("!!python/object/apply:os.system ['true']")
