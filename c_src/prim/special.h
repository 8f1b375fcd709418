/* special.h: scalar special functions and f16/bf16 storage conversions shared
 * by the kernels (unary.c, source.c, and later random, distributions, io).
 * All are pure and thread-safe. The float versions compute in double and round. */
#ifndef MX_SPECIAL_H
#define MX_SPECIAL_H

#include <stdint.h>
#include <string.h>

/* Inverse error function on [-1, 1]: +-inf at +-1, NaN outside or for NaN. */
double mx_erf_inv(double y);
float mx_erf_invf(float y);

/* Digamma (psi), scipy's conventions: psi(+0) = -inf, psi(-0) = +inf,
 * NaN at negative integers and -inf, +inf at +inf. */
double mx_digamma(double x);
float mx_digammaf(float x);

/* log|gamma(x)| via lgamma_r (lgamma's global signgam is not thread-safe);
 * +inf at the poles and at +-inf. */
double mx_lgamma(double x);
float mx_lgammaf(float x);

/* Trigamma psi'(x): +inf at 0 and the negative integers (as scipy), NaN at -inf, 0 at +inf. */
double mx_trigamma(double x);
float mx_trigammaf(float x);

/* erfc(x) = 1 - erf(x) without the cancellation (glibc's double erfc for both). */
double mx_erfc(double x);
float mx_erfcf(float x);

/* log Phi(x), Phi the standard normal CDF: accurate as x -> -inf (asymptotic
 * series below -20) and near 0 as x -> +inf (log1p). */
double mx_log_ndtr(double x);
float mx_log_ndtrf(float x);

/* Phi^-1(p): -inf at 0, +inf at 1, NaN outside [0, 1]; relative accuracy in both tails. */
double mx_ndtri(double p);
float mx_ndtrif(float p);

/* Regularized incomplete gamma P(a, x) = gamma(a, x)/Gamma(a) and Q = 1 - P, with
 * scipy's special values (NaN for a < 0 or x < 0; P(0, x > 0) = 1). */
double mx_igamma(double a, double x);
float mx_igammaf(float a, float x);
double mx_igammac(double a, double x);
float mx_igammacf(float a, float x);

/* Regularized incomplete beta I_x(a, b) (the scalar of the betainc op); NaN outside 0 <= x <= 1 and for a or b <= 0 or infinite. */
double mx_ibeta(double a, double b, double x);
float mx_ibetaf(float a, float b, float x);

/* ---- f16 / bf16 storage ---------------------------------------------------
 * Round-to-nearest-even from double (one rounding, so no double rounding via
 * f32), NaN kept quiet with its sign, overflow to inf, gradual underflow. */
static inline uint64_t mx_bits_f64(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

static inline double mx_f64_from_bits(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

/* A float with ebits exponent bits and mbits mantissa bits (f16: 5, 10; bf16: 8, 7). */
static inline uint16_t mx_f64_to_small(double d, int ebits, int mbits) {
  uint64_t b = mx_bits_f64(d);
  uint16_t sign = (uint16_t)((b >> 63) << (ebits + mbits));
  uint16_t inf = (uint16_t)(((1u << ebits) - 1) << mbits);
  int bias = (1 << (ebits - 1)) - 1;
  int efield = (int)((b >> 52) & 0x7ff);
  uint64_t mant = b & ((UINT64_C(1) << 52) - 1);
  if (efield == 0x7ff) /* inf, or NaN made quiet */
    return sign | inf | (mant ? (uint16_t)((1u << (mbits - 1)) | (mant >> (52 - mbits))) : 0);
  int e = efield - 1023;
  if (e > bias) return sign | inf;
  uint64_t value, rem, halfway;
  int shift;
  if (e >= 1 - bias) { /* normal: keep the top mbits of the mantissa */
    shift = 52 - mbits;
    value = ((uint64_t)(e + bias) << mbits) | (mant >> shift);
  } else { /* subnormal target: shift the full significand further right */
    shift = 52 - mbits + (1 - bias - e);
    if (shift > 53) return sign; /* below half the smallest subnormal */
    mant |= UINT64_C(1) << 52;
    value = mant >> shift;
  }
  rem = mant & ((UINT64_C(1) << shift) - 1);
  halfway = UINT64_C(1) << (shift - 1);
  if (rem > halfway || (rem == halfway && (value & 1))) value++; /* a carry may reach inf: right */
  return sign | (uint16_t)value;
}

static inline double mx_small_to_f64(uint16_t h, int ebits, int mbits) {
  uint64_t sign = (uint64_t)(h >> (ebits + mbits)) << 63;
  int bias = (1 << (ebits - 1)) - 1;
  unsigned efield = (h >> mbits) & ((1u << ebits) - 1);
  uint64_t mant = h & ((1u << mbits) - 1);
  if (efield == (1u << ebits) - 1) return mx_f64_from_bits(sign | (UINT64_C(0x7ff) << 52) | (mant << (52 - mbits)));
  if (efield == 0) { /* zero or subnormal: mant * 2^(1 - bias - mbits), exact */
    double v = (double)mant * mx_f64_from_bits((uint64_t)(1023 + 1 - bias - mbits) << 52);
    return sign ? -v : v;
  }
  return mx_f64_from_bits(sign | ((uint64_t)(efield - bias + 1023) << 52) | (mant << (52 - mbits)));
}

static inline uint16_t mx_f64_to_f16(double d) { return mx_f64_to_small(d, 5, 10); }
static inline uint16_t mx_f64_to_bf16(double d) { return mx_f64_to_small(d, 8, 7); }
static inline double mx_f16_to_f64(uint16_t h) { return mx_small_to_f64(h, 5, 10); }
static inline double mx_bf16_to_f64(uint16_t h) { return mx_small_to_f64(h, 8, 7); }
/* f32 <-> f16 directly on the bits: the hot path, since f16 arrays compute in f32. */
static inline float mx_f32_from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static inline float mx_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return mx_f32_from_bits(sign | 0x7f800000u | (m << 13));
  if (e == 0) { /* zero or subnormal: m * 2^-24, exact */
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
  }
  return mx_f32_from_bits(sign | ((e + 112) << 23) | (m << 13)); /* rebias 15 -> 127 */
}

static inline uint16_t mx_f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((u >> 13) & 0x3ff); /* quiet NaN */
  if (u >= 0x477ff000u) return sign | 0x7c00;                                /* >= 65520 rounds to inf */
  if (u < 0x38800000u) { /* below 2^-14: f16 subnormal; adding 0.5 makes the FPU round at 2^-24 */
    float t = mx_f32_from_bits(u) + 0.5f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    return sign | (uint16_t)(tb - 0x3f000000u);
  }
  /* normal: rebias and round the 13 dropped bits to nearest even */
  u += ((uint32_t)(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1);
  return sign | (uint16_t)(u >> 13);
}

/* bf16 is the top half of an f32: the fast paths for the common case. */
static inline float mx_bf16_to_f32(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static inline uint16_t mx_f32_to_bf16(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40); /* quiet NaN */
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
}

#endif
