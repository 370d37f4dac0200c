"""The public API carries complete type hints (PEP 484); mypy (in CI, configured in
pyproject.toml) checks them against the code, this checks that none is missing: every
argument and the return of every public function, method and property."""
import importlib
import inspect
import os

import pytest

import gdcore

ANNOTATED = ["gdcore.network", "gdcore.optim", "gdcore.training", "gdcore.kernels",
             "gdcore.checkpoint", "gdcore.schedules", "gdcore.callbacks", "gdcore.gradients",
             "gdcore.reference.activations", "gdcore.reference.dense",
             "gdcore.reference.losses", "gdcore.reference.network",
             "gdcore.reference.optimizers"]


def _callables(mod):
    """(qualified name, function) of the public functions a module defines, and of the
    public methods, properties and constructors of its public classes."""
    for name in mod.__all__:
        obj = getattr(mod, name)
        if getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for key, member in vars(obj).items():
                if key.startswith("_") and key != "__init__":
                    continue
                if isinstance(member, property):
                    for part in ("fget", "fset"):
                        if getattr(member, part) is not None:
                            yield f"{mod.__name__}.{name}.{key}.{part}", getattr(member, part)
                    continue
                func = getattr(member, "__func__", member)
                if inspect.isfunction(func):
                    yield f"{mod.__name__}.{name}.{key}", func


def _missing(func):
    sig = inspect.signature(func)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("module", ANNOTATED)
def test_the_public_api_is_fully_annotated(module):
    mod = importlib.import_module(module)
    found = dict(_callables(mod))
    assert found, module
    missing = {name: m for name, func in found.items() for m in [_missing(func)] if m}
    assert not missing, missing


def test_the_check_finds_a_missing_annotation():
    def f(x: int, y) -> int:
        return x

    def g(x: int):
        return x

    assert _missing(f) == ["y"]
    assert _missing(g) == ["return"]


def test_the_package_says_it_is_typed():
    # PEP 561: the marker ships with the package (pyproject's package-data)
    assert os.path.isfile(os.path.join(os.path.dirname(gdcore.__file__), "py.typed"))
