cdef extern from "_omp_shim.h" nogil:
    int GDCORE_HAVE_OPENMP
    int omp_get_max_threads()
    int omp_get_num_procs()
    int omp_get_thread_num()

cdef int threads_for(int n_threads, Py_ssize_t work, Py_ssize_t min_work_per_thread) noexcept nogil
cdef int resolve_threads(object n_threads) except -1
