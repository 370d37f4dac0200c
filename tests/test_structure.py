"""The layout the recipe relies on: native modules and their twins pair one to one, the
shared constants have one source, and the build's directives are not overridden.

* every kernel file included by ``gdcore/_native.pxi`` has its twin module in
  ``gdcore/reference`` of the same name, and the reverse;
* every public function of a twin module is a native kernel of ``gdcore.kernels`` with
  the same name and signature, and every native kernel has exactly one twin;
* every optimizer of ``gdcore._constants.OPTIMIZERS`` has its update in both backends
  and an ``gdcore.optim`` class that drives it;
* the compiled module holds the values of ``gdcore/_constants.py``;
* a ``GDCORE_DEBUG=1`` build raises ``IndexError`` on an out-of-bounds access.
"""
import inspect
import os
import pkgutil
import re
import runpy
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gdcore
import gdcore.kernels as K
import gdcore.reference as R
from gdcore import _constants, optim

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG = os.path.join(ROOT, "gdcore")
# files _native.pxi includes that are not kernel families: the generated constants and
# the helpers every family uses
NOT_KERNELS = {"constants", "common"}


def native_modules():
    with open(os.path.join(PKG, "_native.pxi")) as f:
        included = re.findall(r'^include "_(\w+)\.pxi"', f.read(), re.M)
    return set(included) - NOT_KERNELS


def twin_modules():
    return {m.name for m in pkgutil.iter_modules(R.__path__)}


def test_every_native_module_has_its_twin_module_and_the_reverse():
    assert native_modules() == twin_modules()
    assert native_modules() >= {"activations", "dense", "losses", "optimizers", "network"}


def _parameters(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def _twin_functions():
    """{name: module} of every public function of the twin modules but the network's."""
    found = {}
    for name in twin_modules() - {"network"}:
        module = getattr(R, name) if hasattr(R, name) else __import__(
            f"gdcore.reference.{name}", fromlist=["x"])
        for fn_name in module.__all__:
            assert fn_name not in found, f"{fn_name} is in two twin modules"
            found[fn_name] = module
    return found


def test_twins_pair_one_to_one_by_name_and_signature():
    twins = _twin_functions()
    kernels = {n for n in K.__all__ if callable(getattr(K, n))}
    assert set(twins) == kernels
    for fn_name, module in twins.items():
        assert _parameters(getattr(K, fn_name)) == _parameters(getattr(module, fn_name)), fn_name
        # the package-level name is the module's function
        assert getattr(R, fn_name) is getattr(module, fn_name)


def test_the_network_twin_covers_the_native_step_and_its_random_streams():
    from gdcore.reference import network
    assert set(network.__all__) == {"network_step", "dropout_mask", "gaussian_noise"}
    assert callable(K._native.NetworkWorkspace.step)
    assert network.NOISE_STREAM == _constants.NOISE_STREAM


@pytest.mark.parametrize("name", _constants.OPTIMIZERS)
def test_each_optimizer_is_one_native_entry_one_twin_and_one_class(name):
    assert _parameters(getattr(K, f"{name}_update")) == _parameters(getattr(R, f"{name}_update"))
    classes = [c for c in vars(optim).values()
               if isinstance(c, type) and issubclass(c, optim.Optimizer)
               and c.__dict__.get("_native") == name]
    assert len(classes) == 1, name
    cls = classes[0]
    # the class's state is the layout the native step reads, in order
    params = np.zeros(3)
    opt = cls(**{k: True for k in cls._state_options if k in ("centered", "amsgrad")},
              **{k: 0.5 for k in cls._state_options if k == "momentum"})
    opt._ensure_state(params)
    kind, flags, state = opt._native_plan()
    assert kind == _constants.OPTIMIZERS.index(name)
    assert len(state) == len(_constants.OPTIMIZER_STATE[name])
    for key, buf in zip(_constants.OPTIMIZER_STATE[name], state):
        assert buf is opt.state[key]
    assert len(opt._native_scalars(1)) == _constants.N_SCALARS


def test_compiled_constants_are_the_source():
    compiled = K._native.COMPILED_CONSTANTS
    assert compiled == dict(_constants.c_names())
    assert K.THRESHOLDS == _constants.THRESHOLDS
    assert gdcore._validation.ACTIVATIONS == _constants.ACTIVATIONS
    assert gdcore._validation.LOSSES == _constants.LOSSES


def test_the_generated_constants_file_is_current():
    with open(os.path.join(PKG, "_constants.pxi")) as f:
        assert f.read() == _constants.pxi_source(), "rebuild: gdcore/_constants.py changed"


def test_layouts_fit_the_native_buffers():
    for name in _constants.OPTIMIZERS:
        assert len(_constants.OPTIMIZER_SCALARS[name]) <= _constants.N_SCALARS
        assert len(_constants.OPTIMIZER_STATE[name]) <= _constants.N_STATE


# ---- the debug build --------------------------------------------------------------

DIRECTIVE_HEADER = re.compile(r"^#\s*cython\s*:(.*)$", re.M)
CHECK_DIRECTIVES = ("boundscheck", "wraparound", "initializedcheck")


def test_no_source_file_overrides_the_check_directives():
    """A ``# cython: boundscheck=False`` header wins over setup.py's directives, so a
    GDCORE_DEBUG=1 build would have no bounds checks."""
    for name in sorted(os.listdir(PKG)):
        if name.endswith((".pyx", ".pxi", ".pxd")):
            with open(os.path.join(PKG, name)) as f:
                for header in DIRECTIVE_HEADER.findall(f.read()):
                    assert not any(d in header for d in CHECK_DIRECTIVES), (name, header)


def test_debug_directives_check_bounds():
    setup = runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="gdcore_setup")
    assert setup["compiler_directives"](True)["boundscheck"] is True
    assert setup["compiler_directives"](False)["boundscheck"] is False


@pytest.mark.slow
def test_debug_build_raises_index_error_on_a_wrong_internal_call(tmp_path):
    """Build, with setup.py's GDCORE_DEBUG=1 directives, the native module's stub
    (``_native_baseline.pyx``, header lines included) with its shared part only (the
    constants and _common.pxi, which holds the internal ``_element``) instead of every
    kernel, and call ``_element`` with an index past the end."""
    pytest.importorskip("Cython")
    with open(os.path.join(PKG, "_native_baseline.pyx")) as f:
        stub = f.read()
    assert 'include "_native.pxi"' in stub
    probe = tmp_path / "gdcore_debug_probe.pyx"
    probe.write_text(stub.replace('include "_native.pxi"', textwrap.dedent("""
        from cython cimport floating
        cimport numpy as cnp
        cnp.import_array()
        include "_constants.pxi"
        include "_common.pxi"
    """)))
    script = textwrap.dedent(f"""
        import os, runpy, sys
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution
        setup = runpy.run_path({os.path.join(ROOT, 'setup.py')!r}, run_name="gdcore_setup")
        ext = Extension("gdcore_debug_probe", [{str(probe)!r}],
                        include_dirs=[{PKG!r}, numpy.get_include()],
                        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                        extra_compile_args=["-O0"])
        exts = cythonize([ext], compiler_directives=setup["compiler_directives"](True),
                         include_path=[{PKG!r}],
                         quiet=True)
        dist = Distribution({{"ext_modules": exts}})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = {str(tmp_path)!r}
        cmd.build_temp = {str(tmp_path / 'build')!r}
        cmd.ensure_finalized()
        cmd.run()
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import gdcore_debug_probe as m
        a = np.arange(3.0)
        assert m._element(a, 2) == 2.0
        try:
            m._element(a, 3)
        except IndexError as err:
            print("IndexError:", err)
        else:
            raise SystemExit("no IndexError in a debug build")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "IndexError: Out of bounds on buffer access (axis 0)" in run.stdout


# ---- import direction ------------------------------------------------------------------

def _imported_modules(path):
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names)
            names.add(node.module or "")
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_checkpoint_does_not_import_the_network_or_training():
    """network -> checkpoint only: the format module restores the classes its caller
    passes (gdcore.network.load), so the two modules do not import each other."""
    names = _imported_modules(os.path.join(PKG, "checkpoint.py"))
    assert not {n for n in names if "network" in n or "training" in n}, names
    assert gdcore.load is gdcore.network.load


@pytest.mark.parametrize("name", _constants.OPTIMIZERS + ("adamw",))
def test_optimizer_state_names_come_from_the_constants(name):
    layout = "adam" if name == "adamw" else name
    every = R.optimizer_state(name, np.zeros(2), momentum=0.5, centered=True, amsgrad=True)
    assert tuple(every) == _constants.OPTIMIZER_STATE[layout]
    fewest = R.optimizer_state(name, np.zeros(2))
    assert list(fewest) == [k for k in _constants.OPTIMIZER_STATE[layout]
                            if k not in ("momentum_buffer", "grad_avg", "max_exp_avg_sq")]
