"""gdcore's native kernels built for the 'avx512' instruction set (see _native.pxi)."""
include "_native.pxi"
