"""Docstrings are valid reST as the documentation renders them (numpydoc, then docutils).

The documentation build (``sphinx-build -W``) is the full check; this runs the same
parse on every public docstring of every public module in seconds, without Sphinx.
"""
import importlib
import inspect
import io
import pkgutil
import re
import warnings

import pytest

import gdcore

docutils_core = pytest.importorskip("docutils.core")
docscrape_sphinx = pytest.importorskip("numpydoc.docscrape_sphinx")

MODULES = ["gdcore", "gdcore.network", "gdcore.training", "gdcore.optim", "gdcore.kernels",
           "gdcore.reference", "gdcore.minimize", "gdcore.linear_model", "gdcore.datasets",
           "gdcore.testfunctions", "gdcore.trajectories", "gdcore.schedules",
           "gdcore.model_selection", "gdcore.sklearn", "gdcore.distributed",
           "gdcore.checkpoint", "gdcore.plot", "gdcore.tour", "gdcore.bench", "gdcore.cli",
           "gdcore.callbacks", "gdcore.reference.activations", "gdcore.reference.dense",
           "gdcore.reference.losses", "gdcore.reference.network",
           "gdcore.reference.optimizers", "gdcore.gradients"]

# Sphinx's roles and directives are unknown to plain docutils; everything else counts.
SPHINX_ONLY = ("Unknown interpreted text role", "Unknown directive type",
               "No role entry", "No directive entry")


def _public(mod):
    """The module and the public functions and classes it defines (with their public
    methods and properties), as autodoc documents them."""
    yield mod.__name__, "module", mod
    names = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
    for name in names:
        obj = getattr(mod, name)
        if getattr(obj, "__module__", None) != mod.__name__:
            continue            # checked in the module that defines it
        if inspect.isclass(obj):
            yield f"{mod.__name__}.{name}", "class", obj
            for key, member in vars(obj).items():
                func = member.fget if isinstance(member, property) else member
                func = getattr(func, "__func__", func)
                if not key.startswith("_") and inspect.isfunction(func) and func.__doc__:
                    yield f"{mod.__name__}.{name}.{key}", "method", func
        elif inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", "function", obj


def _problems(what, obj):
    doc = inspect.getdoc(obj)
    if not doc:
        return []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = str(docscrape_sphinx.get_doc_object(obj, what=what, doc=doc,
                                                   config={"show_class_members": False}))
    # numpydoc drops a section it does not know (its text never reaches the page)
    found = [str(w.message) for w in caught if "Unknown section" in str(w.message)]
    stream = io.StringIO()
    docutils_core.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream})
    for line in stream.getvalue().splitlines():
        if re.search(r"\((WARNING|ERROR|SEVERE)/\d\)", line) and not any(
                s in line for s in SPHINX_ONLY):
            found.append(line)
    return found


@pytest.mark.parametrize("module", MODULES)
def test_docstrings_are_valid_rest(module):
    # gdcore.sklearn needs scikit-learn (an extra) of a recent enough version
    mod = (pytest.importorskip(module) if module == "gdcore.sklearn" else
           importlib.import_module(module))
    problems = {qual: found for qual, what, obj in _public(mod)
                for found in [_problems(what, obj)] if found}
    assert not problems, problems


def test_the_check_finds_invalid_markup():
    def absolute(x):
        """Largest |x_i|.

        Parameters
        ----------
        x : array
            Values.
        """

    def quote(x):
        """Summary.

        Formula:
            y = x
        end.
        """

    def unknown_section(x):
        """Summary.

        My Section
        ----------
        Text.
        """

    assert any("substitution" in p for p in _problems("function", absolute))
    assert any("unindent" in p for p in _problems("function", quote))
    assert any("Unknown section" in p for p in _problems("function", unknown_section))


def test_every_public_module_is_checked():
    found = {"gdcore"}
    for package in (gdcore, importlib.import_module("gdcore.reference")):
        found |= {f"{package.__name__}.{info.name}"
                  for info in pkgutil.iter_modules(package.__path__)
                  if not info.name.startswith("_")}
    assert found == set(MODULES)
