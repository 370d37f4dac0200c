"""gdcore's native kernels built for the 'avx2' instruction set (see _native.pxi)."""
include "_native.pxi"
