# cython: cdivision=True
# Elementwise exp, tanh and sigmoid that gcc vectorises.
#
# glibc's expf is a function call per element (6.9 ns per sigmoid here, with branch
# misses); these are straight-line code with selects instead of branches, so loops over
# them vectorise at any -m target, and give the same bits on every machine (no libm).
# exp: Cody-Waite range reduction x = n ln2 + r with |r| <= ln2/2, then Cephes'
# polynomial (expf) / Pade form (exp) for e^r, and the scaling by 2^n done as two
# exponent-field multiplies so that results in the subnormal range round once.
# Errors are within about 1 ulp over the whole range (checked against NumPy in
# tests/test_kernels_vs_reference.py); overflow gives inf, NaN propagates.
# tanh: Cephes tanhf/tanh (odd polynomial for |x| < 0.625, 1 - 2/(e^{2|x|} + 1) above).
# sigmoid: 1/(1 + e^{-|u|}) or e^{-|u|}/(1 + e^{-|u|}): exp never sees a positive
# argument, so it cannot overflow.

cdef union f32_bits:
    float f
    unsigned int u

cdef union f64_bits:
    double f
    unsigned long long u


cdef inline float exp_f32(float x) noexcept nogil:
    cdef bint nan = x != x
    cdef float xc, t, fx, r, p, z, y
    cdef f32_bits tb, s1, s2
    cdef int n, n1
    cdef float hi = 88.8, lo = -104.0, zero = 0.0
    xc = zero if nan else x
    xc = hi if xc > hi else xc
    xc = lo if xc < lo else xc
    # n = round(x / ln2): adding 1.5 * 2^23 leaves the rounded integer in the low bits
    tb.f = xc * <float>1.44269504088896341 + <float>12582912.0
    fx = tb.f - <float>12582912.0
    n = <int>(tb.u - <unsigned int>0x4B400000)
    r = xc - fx * <float>0.693359375
    r = r - fx * <float>-2.12194440e-4
    z = r * r
    p = <float>1.9875691500E-4
    p = p * r + <float>1.3981999507E-3
    p = p * r + <float>8.3334519073E-3
    p = p * r + <float>4.1665795894E-2
    p = p * r + <float>1.6666665459E-1
    p = p * r + <float>5.0000001201E-1
    y = p * z + r + <float>1.0
    n1 = n >> 1
    s1.u = <unsigned int>(n1 + 127) << 23
    s2.u = <unsigned int>(n - n1 + 127) << 23
    y = y * s1.f * s2.f
    return x if nan else y


cdef inline double exp_f64(double x) noexcept nogil:
    cdef bint nan = x != x
    cdef double xc, fx, r, rr, px, qx, y
    cdef f64_bits tb, s1, s2
    cdef long long n, n1
    xc = 0.0 if nan else x
    xc = 709.8 if xc > 709.8 else xc
    xc = -746.0 if xc < -746.0 else xc
    tb.f = xc * 1.4426950408889634073599 + 6755399441055744.0
    fx = tb.f - 6755399441055744.0
    n = <long long>(tb.u - <unsigned long long>0x4338000000000000)
    r = xc - fx * 6.93145751953125E-1
    r = r - fx * 1.42860682030941723212E-6
    rr = r * r
    px = ((1.26177193074810590878E-4 * rr + 3.02994407707441961300E-2) * rr
          + 9.99999999999999999910E-1) * r
    qx = ((3.00198505138664455042E-6 * rr + 2.52448340349684104192E-3) * rr
          + 2.27265548208155028766E-1) * rr + 2.00000000000000000009E0
    y = 1.0 + 2.0 * (px / (qx - px))
    n1 = n >> 1
    s1.u = <unsigned long long>(n1 + 1023) << 52
    s2.u = <unsigned long long>(n - n1 + 1023) << 52
    y = y * s1.f * s2.f
    return x if nan else y


cdef inline float tanh_f32(float x) noexcept nogil:
    cdef float zero = 0.0, cut = 0.625
    cdef float a = -x if x < zero else x
    cdef float z = x * x
    cdef float small = ((((<float>-5.70498872745E-3 * z + <float>2.06390887954E-2) * z
                          - <float>5.37397155531E-2) * z + <float>1.33314422036E-1) * z
                        - <float>3.33332819422E-1) * z * x + x
    cdef float e = exp_f32(a + a)
    cdef float big = <float>1.0 - <float>2.0 / (e + <float>1.0)
    big = -big if x < zero else big
    small = x if x == zero else small      # tanh(-0.0) = -0.0
    return small if a < cut else big


cdef inline double tanh_f64(double x) noexcept nogil:
    cdef double a = -x if x < 0 else x
    cdef double z = x * x
    cdef double p = (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z \
        - 1.61468768441708447952E3
    cdef double q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z \
        + 4.84406305325125486048E3
    cdef double small = x + x * z * (p / q)
    cdef double e = exp_f64(a + a)
    cdef double big = 1.0 - 2.0 / (e + 1.0)
    big = -big if x < 0 else big
    small = x if x == 0 else small          # tanh(-0.0) = -0.0
    return small if a < 0.625 else big


cdef inline float sigmoid_f32(float u) noexcept nogil:
    cdef float zero = 0.0, one = 1.0
    cdef float e = exp_f32(u if u < zero else -u)
    return (one if u >= zero else e) / (one + e)


cdef inline double sigmoid_f64(double u) noexcept nogil:
    cdef double e = exp_f64(u if u < 0 else -u)
    return (1.0 if u >= 0 else e) / (1.0 + e)
