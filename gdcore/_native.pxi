# gdcore's native kernels.
#
# Design
# ------
# This source is compiled once per instruction-set level: _native_baseline.pyx (the
# compiler's default target), _native_avx2.pyx (-mavx2) and _native_avx512.pyx
# (-mavx512f/dq/vl/bw), each a one-line stub that includes this file.  gdcore.kernels
# imports the best build the CPU runs (GDCORE_ISA forces one).  Every build gives the
# same bits: -ffp-contract=off forbids fused multiply-add, and nothing here reorders
# floating-point operations, so only the vector width differs.  The wide builds matter
# where work is compute-bound: a float32 sigmoid costs 2.1 ns per element with SSE2,
# 0.81 with AVX2 and 0.47 with AVX-512; an in-cache Adam step 0.54 / 0.23 / 0.15.
#
# Layers: inline elementwise math (_vecmath.pxd) -> nogil cores over raw pointers,
# parallelised with prange over fixed chunks -> thin def wrappers that take validated
# arrays (gdcore.kernels validates; the optimizer entry points validate here, in C,
# because their Python overhead would exceed the work of a 1e4-element step) -> the
# network's whole training step and epoch loop (_network.pxi) on top of the cores.
#
# prange rule: a variable of the enclosing function that a prange body assigns is made
# private by Cython only when the body assigns it directly; one written through a
# pointer stays shared between threads (a race).  Compute each thread's range inside
# the body, as the cores here do.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf, log, pow, isfinite, NAN, INFINITY
from libc.string cimport memcpy

cimport numpy as cnp

from gdcore._openmp cimport threads_for
from gdcore._blas cimport gemm, blas_threads_single, blas_threads_restore
from gdcore._vecmath cimport (exp_f32, exp_f64, tanh_f32, tanh_f64, sigmoid_f32,
                              sigmoid_f64)

cnp.import_array()

include "_elementwise.pxi"
include "_dense.pxi"
include "_losses.pxi"
include "_optimizers.pxi"
include "_network.pxi"

# The size rules of the cores, as Python numbers (gdcore.kernels.THRESHOLDS).
THRESHOLDS = {
    "elementwise_min_per_thread": ELEMENTWISE_MIN_PER_THREAD,  # elements
    "optimizer_min_per_thread": OPTIMIZER_MIN_PER_THREAD,      # elements of a step
    "gemm_min_per_thread": GEMM_MIN_PER_THREAD,                # multiply-adds of a layer
    "step_gemm_min_per_thread": STEP_GEMM_MIN_PER_THREAD,      # the same in a train step
}
