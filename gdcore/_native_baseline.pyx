"""gdcore's native kernels built for the 'baseline' instruction set (see _native.pxi)."""
include "_native.pxi"
