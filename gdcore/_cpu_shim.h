/* CPU feature detection for choosing a native-kernel build (see gdcore/_native.pxi). */
#ifndef GDCORE_CPU_SHIM_H
#define GDCORE_CPU_SHIM_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
static int gd_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
static int gd_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
}
#else
static int gd_cpu_has_avx2(void) { return 0; }
static int gd_cpu_has_avx512(void) { return 0; }
#endif

#endif
