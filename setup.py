"""Build gdcore's Cython extension modules.

OpenMP is used when a tiny test program compiles, links and runs with ``-fopenmp``;
otherwise the build warns and every ``prange`` runs serially.  Environment switches:

``GDCORE_DISABLE_OPENMP=1``  force a serial build even when OpenMP works.
``GDCORE_DEBUG=1``           bounds checking on, ``-O0 -g`` (for gdb/valgrind sessions).
``GDCORE_CFLAGS``            extra compile flags appended last (for example
                             ``-march=native`` for a local build; never the default).

The default flags are ``-O3 -fno-math-errno -fno-trapping-math -ffp-contract=off``:
``-fno-math-errno`` lets gcc vectorise ``sqrt`` (the fused optimizer loops need it);
``-fno-trapping-math`` lets it turn the selects of the vectorisable exp/tanh into
blends (it changes no result, only whether floating-point status flags may be raised
speculatively); ``-ffp-contract=off`` keeps results identical to NumPy's and across
instruction sets (no fused multiply-add contraction).  ``-ffast-math`` is never used:
it changes results and, linked, sets flush-to-zero for the whole process.

The native kernels (``gdcore/_native.pxi``) are built once per x86-64 instruction-set
level -- ``_native_baseline`` with the compiler's default target, ``_native_avx2``
with ``-mavx2``, ``_native_avx512`` with AVX-512 F/DQ/VL/BW -- and ``gdcore.kernels``
imports the best one the CPU runs, as NumPy dispatches its loops.  None of them uses
``-march=native``.  On other architectures only the baseline build exists.
"""
import platform
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# extra flags of the instruction-set builds of the native kernels
ISA_FLAGS = {
    "gdcore._native_avx2": ["-mavx2"],
    "gdcore._native_avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw",
                              "-mprefer-vector-width=512"],
}
# Every gdcore/_<name>.pyx is one extension module gdcore._<name>.
EXTENSIONS = sorted(
    "gdcore." + f[: -len(".pyx")]
    for f in os.listdir(os.path.join(HERE, "gdcore"))
    if f.startswith("_") and f.endswith(".pyx")
    and (X86 or "gdcore." + f[: -len(".pyx")] not in ISA_FLAGS)
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _openmp_works(compiler_cmd):
    """Compile, link and run a program with an OpenMP parallel region."""
    code = textwrap.dedent(
        """
        #include <omp.h>
        #include <stdio.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            printf("%d", n > 0 && omp_get_max_threads() > 0);
            return 0;
        }
        """
    )
    tmp = tempfile.mkdtemp(prefix="gdcore-openmp-")
    try:
        src = os.path.join(tmp, "check_openmp.c")
        exe = os.path.join(tmp, "check_openmp")
        with open(src, "w") as f:
            f.write(code)
        build = subprocess.run(
            compiler_cmd + ["-fopenmp", src, "-o", exe],
            capture_output=True, text=True,
        )
        if build.returncode != 0:
            return False
        run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        return run.returncode == 0 and run.stdout.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Decide OpenMP and flags once, for the compiler setuptools actually uses."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:           # the three ISA builds compile side by side
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        compiler_cmd = list(self.compiler.compiler_so[:1]) if hasattr(self.compiler, "compiler_so") else ["cc"]
        debug = _env_flag("GDCORE_DEBUG")
        if _env_flag("GDCORE_DISABLE_OPENMP"):
            use_openmp = False
            print("gdcore: GDCORE_DISABLE_OPENMP is set, building without OpenMP")
        else:
            use_openmp = _openmp_works(compiler_cmd)
            if not use_openmp:
                print(
                    "gdcore: WARNING: the C compiler cannot build and run an OpenMP "
                    "program; building without OpenMP (every kernel runs on one thread)",
                    file=sys.stderr,
                )
        compile_args = ["-O0", "-g"] if debug else ["-O3"]
        compile_args += ["-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
        compile_args += ["-Wno-unused-function", "-Wno-unreachable-code"]
        link_args = []
        if use_openmp:
            compile_args.append("-fopenmp")
            link_args.append("-fopenmp")
        extra = os.environ.get("GDCORE_CFLAGS", "").split()
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + ISA_FLAGS.get(ext.name, []) + extra
            ext.extra_link_args = link_args
        super().build_extensions()


def _write_constants():
    """Write gdcore/_constants.pxi from gdcore/_constants.py (the one source of the codes,
    layouts and thresholds C and Python share); the file is rewritten only when its text
    changes, so that an unchanged source does not trigger a rebuild."""
    import runpy

    source = runpy.run_path(os.path.join(HERE, "gdcore", "_constants.py"))["pxi_source"]()
    target = os.path.join(HERE, "gdcore", "_constants.pxi")
    if os.path.exists(target):
        with open(target) as f:
            if f.read() == source:
                return
    with open(target, "w") as f:
        f.write(source)


def compiler_directives(debug):
    """Cython's directives for every module.  They are set here only: a
    ``# cython:`` header line in a source file would override them (and switch the
    bounds checks of a ``GDCORE_DEBUG=1`` build off again)."""
    return {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": debug,
        "embedsignature": True,
    }


def _extensions():
    import numpy
    from Cython.Build import cythonize

    _write_constants()
    directives = compiler_directives(_env_flag("GDCORE_DEBUG"))
    exts = [
        Extension(
            name,
            [os.path.join(*name.split(".")) + ".pyx"],
            include_dirs=[os.path.join(HERE, "gdcore"), numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for name in EXTENSIONS
    ]
    return cythonize(exts, compiler_directives=directives, quiet=True,
                     nthreads=os.cpu_count() or 1)


# setuptools runs this file as __main__; tests import compiler_directives without building
if __name__ == "__main__":
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
