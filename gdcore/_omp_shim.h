/* The OpenMP runtime functions gdcore uses, in builds with and without OpenMP.
 * Without -fopenmp, Cython's prange runs serially and these report one thread. */
#ifndef GDCORE_OMP_SHIM_H
#define GDCORE_OMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define GDCORE_HAVE_OPENMP 1
#else
#define GDCORE_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif

#endif
