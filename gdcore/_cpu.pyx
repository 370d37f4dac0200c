"""Which instruction-set builds of the native kernels this CPU can run."""

cdef extern from "_cpu_shim.h" nogil:
    int gd_cpu_has_avx2()
    int gd_cpu_has_avx512()


def supported_isas():
    """ISA levels this CPU runs, best first, always ending with 'baseline'."""
    isas = []
    if gd_cpu_has_avx512():
        isas.append("avx512")
    if gd_cpu_has_avx2():
        isas.append("avx2")
    isas.append("baseline")
    return isas
