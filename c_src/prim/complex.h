/* complex.h: scalar complex arithmetic shared by the kernels (binary.c, reduce.c,
 * complex.c, index.c). Multiplication is the textbook formula, as numpy's loops:
 * C's `*` on _Complex calls __mulsc3 (Annex G's NaN recovery), which is slower
 * and gives other infinities than numpy. Division is Smith's algorithm (numpy's
 * variant), which avoids the overflow of |b|^2 in the textbook formula. */
#ifndef MX_COMPLEX_H
#define MX_COMPLEX_H

#include <complex.h>
#include <math.h>

#include "kernels.h"

static inline float _Complex mx_cpackf(float re, float im) { return CMPLXF(re, im); }
static inline double _Complex mx_cpack(double re, double im) { return CMPLX(re, im); }

static inline float _Complex mx_cmulf(float _Complex a, float _Complex b) {
  float ar = crealf(a), ai = cimagf(a), br = crealf(b), bi = cimagf(b);
  return CMPLXF(ar * br - ai * bi, ar * bi + ai * br);
}
static inline double _Complex mx_cmul(double _Complex a, double _Complex b) {
  double ar = creal(a), ai = cimag(a), br = creal(b), bi = cimag(b);
  return CMPLX(ar * br - ai * bi, ar * bi + ai * br);
}

/* Smith: divide through by the larger part of b. b == 0 gives a / 0 per part (inf or NaN). */
#define MX_CDIV_BODY(T, PACK, FABS)                              \
  T ar = PACK##_re(a), ai = PACK##_im(a), br = PACK##_re(b), bi = PACK##_im(b); \
  T abr = FABS(br), abi = FABS(bi);                              \
  if (abr >= abi) {                                              \
    if (abr == 0 && abi == 0) return PACK(ar / abr, ai / abr);   \
    T rat = bi / br, scl = (T)1 / (br + bi * rat);               \
    return PACK((ar + ai * rat) * scl, (ai - ar * rat) * scl);   \
  }                                                              \
  T rat = br / bi, scl = (T)1 / (bi + br * rat);                 \
  return PACK((ar * rat + ai) * scl, (ai * rat - ar) * scl);
#define mx_cpackf_re crealf
#define mx_cpackf_im cimagf
#define mx_cpack_re creal
#define mx_cpack_im cimag
static inline float _Complex mx_cdivf(float _Complex a, float _Complex b) { MX_CDIV_BODY(float, mx_cpackf, fabsf) }
static inline double _Complex mx_cdiv(double _Complex a, double _Complex b) { MX_CDIV_BODY(double, mx_cpack, fabs) }
#undef MX_CDIV_BODY

/* Type-generic forms for the X-macro kernels (T is float _Complex or double _Complex). */
#define MX_CMUL(a, b) _Generic((a), float _Complex: mx_cmulf, default: mx_cmul)((a), (b))
#define MX_CDIV(a, b) _Generic((a), float _Complex: mx_cdivf, default: mx_cdiv)((a), (b))

/* The unary kernel for a complex input (unary.c's dispatch hands complex dtypes here). */
mx_status mx_complex_unary(mx_array *out, mx_array *const *in, const char *op);

#endif
