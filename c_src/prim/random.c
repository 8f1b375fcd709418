/* random.c: kernels of the random primitives. Every draw is a pure function of
 * the key (in[0], u32[2]) and a 64-bit block counter fed to Threefry-2x32
 * (random.h), so results never depend on threads, chunking or evaluation order.
 *
 * Counter layout (the contract Mx.Random documents):
 *   RANDOM_BITS   u32/f32 element i: word i%2 of block base + i/2;
 *                 u64/f64 element i: block base + i (word 0 low). base = in[1] or 0.
 *   RANDOM_NORMAL pairs by Box-Muller; f32 pair j from block j, f64 pair j from blocks 2j, 2j+1.
 *   TRUNCATED_NORMAL element i: one uniform from block i, inverted exactly.
 *   GAMMA, POISSON, RANDINT (rejection loops): element i reads blocks (t | i << 32),
 *                 t = 0, 1, ... its own stream, however many tries it takes.
 * Parameters (in[1], in[2]) broadcast to the output, right-aligned. */
#define _GNU_SOURCE /* sincos */
#include "random.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels.h"
#include "special.h"

#define TWO_PI 6.283185307179586
#define LOG_SQRT_2PI 0.9189385332046728 /* log(sqrt(2 pi)) */
#define HEAVY_GRAIN 2048                /* elements per chunk for the rejection samplers */
#define MAX_TRIES 100000                /* per element; acceptance is >= 0.5 for every sampler here */

/* ---- shared kernel context ------------------------------------------------------ */

typedef struct {
  uint32_t k0, k1;
  uint64_t base;
  int flags;
  mx_array *out;
  const void *p[2];              /* parameters, or NULL */
  int pmode[2];                  /* 0 scalar, 1 same shape as out, 2 broadcast */
  int64_t pstride[2][MX_MAX_RANK];
  _Atomic int64_t bad;           /* smallest element with an invalid parameter, or INT64_MAX */
} rctx;

static void ctx_init(rctx *c, mx_array *out, mx_array *const *in, int nparams) {
  const uint32_t *key = (const uint32_t *)mx_data(in[0]);
  c->k0 = key[0];
  c->k1 = key[1];
  c->base = 0;
  c->flags = out->params ? out->params->flags : 0;
  c->out = out;
  atomic_store(&c->bad, INT64_MAX);
  for (int k = 0; k < 2; k++) {
    c->p[k] = NULL;
    c->pmode[k] = 0;
    if (k >= nparams) continue;
    mx_array *a = in[1 + k];
    c->p[k] = mx_data(a);
    c->pmode[k] = a->size == 1 ? 0 : a->size == out->size ? 1 : 2;
    mx_broadcast_strides(a, out, c->pstride[k]);
  }
}

/* Offset of output element i in parameter k. A parameter with as many elements
 * as the output has its shape: the constructor only admits shapes that broadcast to it. */
static inline int64_t poff(const rctx *c, int k, int64_t i) {
  if (c->pmode[k] == 0) return 0;
  if (c->pmode[k] == 1) return i;
  int64_t off = 0;
  for (int d = c->out->ndim - 1; d >= 0; d--) {
    int64_t n = c->out->shape[d], q = i / n;
    off += (i - q * n) * c->pstride[k][d];
    i = q;
  }
  return off;
}

/* Float draws: parameter k at output element i, and the store of element i, in the output's dtype. */
static inline double fparam(const rctx *c, int f32, int k, int64_t i) {
  int64_t o = poff(c, k, i);
  return f32 ? ((const float *)c->p[k])[o] : ((const double *)c->p[k])[o];
}

static inline void fstore(const rctx *c, int f32, int64_t i, double x) {
  if (f32) ((float *)mx_data(c->out))[i] = (float)x;
  else ((double *)mx_data(c->out))[i] = x;
}

static void note_bad(rctx *c, int64_t i) {
  int64_t cur = atomic_load(&c->bad);
  while (i < cur && !atomic_compare_exchange_weak(&c->bad, &cur, i)) {
  }
}

static inline uint64_t stream_u64(const rctx *c, int64_t idx, uint32_t t) {
  return mx_threefry_u64(c->k0, c->k1, (uint64_t)t | ((uint64_t)(uint32_t)idx << 32));
}

/* ---- batches of consecutive blocks ------------------------------------------------ */

/* Threefry's rounds form one long dependency chain; running LANES blocks side by
 * side in plain loops lets the compiler keep them in vector registers. */
#define LANES 8

static inline void blocks(const rctx *c, uint64_t first, uint32_t w0[LANES], uint32_t w1[LANES]) {
  uint32_t k0 = c->k0, k1 = c->k1, k2 = 0x1BD11BDAu ^ k0 ^ k1;
  uint32_t x0[LANES], x1[LANES];
  for (int l = 0; l < LANES; l++) {
    uint64_t b = first + (uint64_t)l;
    x0[l] = (uint32_t)b + k0;
    x1[l] = (uint32_t)(b >> 32) + k1;
  }
#define R(r) \
  for (int l = 0; l < LANES; l++) x0[l] += x1[l], x1[l] = mx_rotl32(x1[l], r) ^ x0[l];
#define INJECT(a, b, s) \
  for (int l = 0; l < LANES; l++) x0[l] += a, x1[l] += b + s;
  R(13) R(15) R(26) R(6) INJECT(k1, k2, 1u)
  R(17) R(29) R(16) R(24) INJECT(k2, k0, 2u)
  R(13) R(15) R(26) R(6) INJECT(k0, k1, 3u)
  R(17) R(29) R(16) R(24) INJECT(k1, k2, 4u)
  R(13) R(15) R(26) R(6) INJECT(k2, k0, 5u)
#undef R
#undef INJECT
  for (int l = 0; l < LANES; l++) w0[l] = x0[l], w1[l] = x1[l];
}

/* ---- RANDOM_BITS ------------------------------------------------------------------ */

static void bits_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  mx_dtype t = (mx_dtype)c->out->dtype;
  void *o = mx_data(c->out);
  int open = c->flags & MX_RANDOM_OPEN, wide = t == MX_U64 || t == MX_F64;
  /* wide: element i is block i; narrow: elements 2j, 2j + 1 are the words of block j */
  int64_t first = wide ? lo : lo >> 1, last = wide ? hi - 1 : (hi - 1) >> 1;
  for (int64_t j = first; j <= last; j += LANES) {
    uint32_t w0[LANES], w1[LANES];
    blocks(c, c->base + (uint64_t)j, w0, w1);
    if (t == MX_U32 && 2 * j >= lo && 2 * (j + LANES) <= hi) { /* the common case, straight stores */
      for (int l = 0; l < LANES; l++) ((uint32_t *)o)[2 * (j + l)] = w0[l], ((uint32_t *)o)[2 * (j + l) + 1] = w1[l];
      continue;
    }
    for (int l = 0; l < LANES && j + l <= last; l++) {
      if (wide) {
        int64_t i = j + l;
        uint64_t x = (uint64_t)w0[l] | ((uint64_t)w1[l] << 32);
        if (t == MX_U64) ((uint64_t *)o)[i] = x;
        else ((double *)o)[i] = open ? mx_u64_to_open_unit(x) : mx_u64_to_unit(x);
        continue;
      }
      for (int h = 0; h < 2; h++) {
        int64_t i = 2 * (j + l) + h;
        uint32_t w = h ? w1[l] : w0[l];
        if (i < lo || i >= hi) continue;
        if (t == MX_U32) ((uint32_t *)o)[i] = w;
        else ((float *)o)[i] = open ? mx_u32_to_open_unitf(w) : mx_u32_to_unitf(w);
      }
    }
  }
}

mx_status mx_k_random_bits(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 0);
  if (c.flags & MX_RANDOM_HAS_OFFSET) {
    const uint32_t *off = (const uint32_t *)mx_data(in[1]);
    c.base = (uint64_t)off[0] | ((uint64_t)off[1] << 32);
  }
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN, bits_range, &c);
  return MX_OK;
}

/* ---- RANDOM_NORMAL: Box-Muller on pairs ---------------------------------------------- */

/* f32 pairs in vectorizable single precision. The radius takes all 32 bits of word 0,
 * u = (w0 + 1) 2^-32 in (0, 1], so the tail reaches 6.66 sigma; log u is computed from
 * u's own exponent and mantissa, so it stays accurate as u -> 1. The angle 2 pi w1 / 2^32
 * is reduced exactly in integers to a quadrant and |x| <= pi/4, where short Taylor
 * polynomials are good to a few f32 ulps. */
static inline void box_muller_f32(uint32_t w0, uint32_t w1, float *z0, float *z1) {
  float v = (float)w0 + 1.0f; /* in [1, 2^32]; u = v 2^-32 */
  uint32_t vb;
  memcpy(&vb, &v, 4);
  int32_t e = (int32_t)(vb >> 23) - 127 - 32;
  uint32_t mb = (vb & 0x7fffffu) | 0x3f800000u;
  float m;
  memcpy(&m, &mb, 4);
  int32_t big = mb > 0x3fb504f3u; /* m > sqrt(2): halve it, one more in the exponent */
  mb -= (uint32_t)big << 23;
  memcpy(&m, &mb, 4);
  e += big;
  float s = (m - 1.0f) / (m + 1.0f), z = s * s;
  float lnm = 2.0f * s * (1.0f + z * (1.0f / 3 + z * (1.0f / 5 + z * (1.0f / 7 + z * (1.0f / 9)))));
  float lnu = (float)e * 0.693145751953125f + ((float)e * 1.428606765330187e-06f + lnm); /* ln 2 split hi + lo */
  float r = sqrtf(-2.0f * lnu);
  uint32_t q = (w1 + 0x20000000u) >> 30;
  float x = (float)(int32_t)(w1 - (q << 30)) * (float)(TWO_PI * 0x1p-32);
  float x2 = x * x;
  float sn = x * (1.0f - x2 * (1.0f / 6 - x2 * (1.0f / 120 - x2 * (1.0f / 5040 - x2 * (1.0f / 362880)))));
  float cs = 1.0f - x2 * (0.5f - x2 * (1.0f / 24 - x2 * (1.0f / 720 - x2 * (1.0f / 40320 - x2 * (1.0f / 3628800)))));
  /* quadrant q: (sin, cos) = (s, c), (c, -s), (-s, -c), (-c, s), by masks so it vectorizes */
  uint32_t sb, cb, swap = 0u - (q & 1);
  memcpy(&sb, &sn, 4);
  memcpy(&cb, &cs, 4);
  uint32_t sin_b = ((sb & ~swap) | (cb & swap)) ^ ((q & 2) << 30);
  uint32_t cos_b = ((cb & ~swap) | (sb & swap)) ^ (((q + 1) & 2) << 30);
  float sin_t, cos_t;
  memcpy(&sin_t, &sin_b, 4);
  memcpy(&cos_t, &cos_b, 4);
  *z0 = r * cos_t;
  *z1 = r * sin_t;
}

static void normal_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  int64_t first = lo >> 1, last = (hi - 1) >> 1; /* pairs */
  if ((mx_dtype)c->out->dtype == MX_F32) {
    float *o = mx_data(c->out);
    for (int64_t j = first; j <= last; j += LANES) {
      uint32_t w0[LANES], w1[LANES];
      float z0[LANES], z1[LANES];
      blocks(c, (uint64_t)j, w0, w1);
      for (int l = 0; l < LANES; l++) box_muller_f32(w0[l], w1[l], &z0[l], &z1[l]);
      if (2 * j >= lo && 2 * (j + LANES) <= hi) { /* interior: every pair lands whole */
        for (int l = 0; l < LANES; l++) o[2 * (j + l)] = z0[l], o[2 * (j + l) + 1] = z1[l];
        continue;
      }
      for (int l = 0; l < LANES && j + l <= last; l++) {
        int64_t i = 2 * (j + l);
        if (i >= lo) o[i] = z0[l];
        if (i + 1 < hi) o[i + 1] = z1[l];
      }
    }
  } else {
    double *o = mx_data(c->out);
    for (int64_t j = first; j <= last; j += LANES / 2) {
      uint32_t w0[LANES], w1[LANES];
      blocks(c, 2 * (uint64_t)j, w0, w1); /* pair j + l reads blocks 2(j + l) and 2(j + l) + 1 */
      for (int l = 0; l < LANES / 2 && j + l <= last; l++) {
        uint64_t x1 = (uint64_t)w0[2 * l] | ((uint64_t)w1[2 * l] << 32);
        uint64_t x2 = (uint64_t)w0[2 * l + 1] | ((uint64_t)w1[2 * l + 1] << 32);
        double r = sqrt(-2.0 * log(((double)(x1 >> 11) + 1.0) * 0x1p-53)); /* u in (0, 1] */
        double th = TWO_PI * mx_u64_to_unit(x2), sn, cs;
        sincos(th, &sn, &cs); /* one argument reduction for both; glibc's equal sin and cos bit for bit (test_random) */
        int64_t i = 2 * (j + l);
        if (i >= lo) o[i] = r * cs;
        if (i + 1 < hi) o[i + 1] = r * sn;
      }
    }
  }
}

mx_status mx_k_random_normal(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 0);
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN / 4, normal_range, &c);
  return MX_OK;
}

/* ---- the normal CDF in log space, and its inverse --------------------------------- */

double mx_random_log_ndtr(double x) {
  if (isnan(x)) return x;
  if (x > 0) return log1p(-0.5 * erfc(x * M_SQRT1_2)); /* 1 - Phi(-x), exact in the complement */
  if (x > -37) return log(0.5 * erfc(-x * M_SQRT1_2)); /* erfc keeps relative accuracy to 1e-300 */
  if (x == -INFINITY) return -INFINITY;
  /* Past erfc's range: Phi(x) = phi(x)/|x| (1 - 1/x^2 + 3/x^4 - ...), terms below 1e-19 dropped. */
  double z = 1 / (x * x), s = 1, term = 1;
  for (int k = 1; k <= 8; k++) {
    term *= -(2 * k - 1) * z;
    s += term;
  }
  return -0.5 * x * x - LOG_SQRT_2PI - log(-x) + log(s);
}

/* Solves log Phi(x) = L by Newton's method. log Phi is increasing and concave,
 * so after the first step the iterates approach the root from the left. */
double mx_ndtri_log(double L) {
  if (isnan(L) || L > 0) return NAN;
  if (L == 0) return INFINITY;
  if (L == -INFINITY) return -INFINITY;
  double x;
  if (L > -1.5) {
    x = M_SQRT2 * mx_erf_inv(2 * exp(L) - 1);
  } else {
    double t = -2 * L, g = t - log(t) - 2 * LOG_SQRT_2PI; /* x^2 ~ -2L - log(x^2) - log(2 pi) */
    x = g > 0.25 ? -sqrt(g) : -0.5;
  }
  for (int it = 0; it < 100; it++) {
    double lp = mx_random_log_ndtr(x);
    double slope = exp(-0.5 * x * x - LOG_SQRT_2PI - lp); /* phi(x) / Phi(x) */
    double dx = (lp - L) / slope;
    if (!isfinite(dx)) break;
    x -= dx;
    if (fabs(dx) <= 1e-15 * (fabs(x) > 1 ? fabs(x) : 1)) break;
  }
  return x;
}

/* The standard normal restricted to [lower, upper], by inverting its CDF at u
 * in (0, 1) in log space, so it stays exact however far the interval lies in a tail. */
double mx_sample_truncated_normal(double u, double a, double b) {
  if (!(a < b)) return NAN; /* NaN bounds too */
  if (a >= 0) return -mx_sample_truncated_normal(u, -b, -a); /* work on the side where Phi is small */
  double x;
  if (b <= 0) {
    double la = mx_random_log_ndtr(a), lb = mx_random_log_ndtr(b);
    double r = exp(la - lb), one_minus_r = -expm1(la - lb);
    x = mx_ndtri_log(lb + log(r + u * one_minus_r));
  } else {
    double pa = exp(mx_random_log_ndtr(a)), qb = exp(mx_random_log_ndtr(-b));
    double m = 1 - pa - qb, p = pa + u * m;
    if (p <= 0.5) x = mx_ndtri_log(log(p));
    else x = -mx_ndtri_log(log(qb + (1 - u) * m)); /* the upper tail, measured from above */
  }
  if (x < a) x = a;
  if (x > b) x = b;
  return x;
}

static void truncated_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  int f32 = (mx_dtype)c->out->dtype == MX_F32;
  for (int64_t i = lo; i < hi; i++) {
    double u = mx_u64_to_open_unit(mx_threefry_u64(c->k0, c->k1, (uint64_t)i));
    fstore(c, f32, i, mx_sample_truncated_normal(u, fparam(c, f32, 0, i), fparam(c, f32, 1, i)));
  }
}

mx_status mx_k_random_truncated_normal(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 2);
  mx_parallel_for(out->size, HEAVY_GRAIN, truncated_range, &c);
  return MX_OK;
}

/* ---- RANDOM_GAMMA: Marsaglia and Tsang (2000) ------------------------------------- */

/* Each try reads three blocks (normal radius, angle, acceptance); the alpha < 1
 * boost u^(1/alpha) reads block 2^32 - 1 of the element's stream. */
double mx_sample_gamma(uint32_t k0, uint32_t k1, uint32_t idx, double alpha, int log_space) {
  if (!(alpha > 0)) return NAN;
  if (alpha == INFINITY) return INFINITY;
  uint64_t hi = (uint64_t)idx << 32;
  double a = alpha < 1 ? alpha + 1 : alpha;
  double d = a - 1.0 / 3.0, c = 1 / sqrt(9 * d);
  double logv = NAN;
  for (uint32_t t = 0; t < MAX_TRIES; t++) {
    double u1 = mx_u64_to_open_unit(mx_threefry_u64(k0, k1, hi | (3 * t)));
    double u2 = mx_u64_to_unit(mx_threefry_u64(k0, k1, hi | (3 * t + 1)));
    double z = sqrt(-2 * log(u1)) * cos(TWO_PI * u2);
    double cz = c * z;
    if (cz <= -1) continue;
    double l3 = 3 * log1p(cz); /* log v, v = (1 + cz)^3 */
    double v = exp(l3);
    double u = mx_u64_to_open_unit(mx_threefry_u64(k0, k1, hi | (3 * t + 2)));
    double z2 = z * z;
    if (u < 1 - 0.0331 * z2 * z2 || log(u) < 0.5 * z2 + d * (1 - v + l3)) {
      logv = l3;
      break;
    }
  }
  if (isnan(logv)) return NAN;
  double lx = log(d) + logv;
  if (alpha < 1) {
    double b = mx_u64_to_open_unit(mx_threefry_u64(k0, k1, hi | 0xFFFFFFFFu));
    lx += log(b) / alpha; /* in logs: u^(1/alpha) underflows for tiny alpha */
  }
  return log_space ? lx : exp(lx);
}

static void gamma_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  int f32 = (mx_dtype)c->out->dtype == MX_F32, log_space = c->flags & MX_RANDOM_LOG;
  for (int64_t i = lo; i < hi; i++) {
    fstore(c, f32, i, mx_sample_gamma(c->k0, c->k1, (uint32_t)i, fparam(c, f32, 0, i), log_space));
  }
}

mx_status mx_k_random_gamma(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 1);
  mx_parallel_for(out->size, HEAVY_GRAIN, gamma_range, &c);
  return MX_OK;
}

/* ---- RANDOM_POISSON: inversion below rate 10, PTRS (Hoermann 1993) above ----------- */

double mx_sample_poisson(uint32_t k0, uint32_t k1, uint32_t idx, double lam) {
  if (!(lam >= 0) || lam == INFINITY) return NAN;
  if (lam == 0) return 0;
  uint64_t hi = (uint64_t)idx << 32;
  if (lam < 10) {
    /* Sequential search of the CDF: about lam + 1 steps. */
    double u = mx_u64_to_unit(mx_threefry_u64(k0, k1, hi));
    double p = exp(-lam), s = p, k = 0;
    while (u >= s) {
      k += 1;
      p *= lam / k;
      if (s + p == s) break; /* the CDF reached 1 in doubles: u sits in a rounding gap */
      s += p;
    }
    return k;
  }
  /* Transformed rejection with squeeze; acceptance above 0.9 for every rate >= 10. */
  double slam = sqrt(lam), loglam = log(lam);
  double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (uint32_t t = 0; t < MAX_TRIES; t++) {
    double U = mx_u64_to_open_unit(mx_threefry_u64(k0, k1, hi | (2 * t))) - 0.5;
    double V = mx_u64_to_open_unit(mx_threefry_u64(k0, k1, hi | (2 * t + 1)));
    double us = 0.5 - fabs(U);
    double k = floor((2 * a / us + b) * U + lam + 0.43);
    if (us >= 0.07 && V <= vr) return k;
    if (k < 0 || (us < 0.013 && V > us)) continue;
    if (log(V) + log(inv_alpha) - log(a / (us * us) + b) <= -lam + k * loglam - mx_lgamma(k + 1)) return k;
  }
  return NAN;
}

static void poisson_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  int f64 = (mx_dtype)c->out->dtype == MX_F64;
  const double *rate = c->p[0];
  for (int64_t i = lo; i < hi; i++) {
    double k = mx_sample_poisson(c->k0, c->k1, (uint32_t)i, rate[poff(c, 0, i)]);
    if (f64) {
      ((double *)mx_data(c->out))[i] = k;
    } else if (isnan(k) || k >= 9.2e18) {
      note_bad(c, i);
      ((int64_t *)mx_data(c->out))[i] = -1;
    } else {
      ((int64_t *)mx_data(c->out))[i] = (int64_t)k;
    }
  }
}

mx_status mx_k_random_poisson(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 1);
  mx_parallel_for(out->size, HEAVY_GRAIN, poisson_range, &c);
  int64_t bad = atomic_load(&c.bad);
  if (bad != INT64_MAX)
    return mx_error(MX_EINVAL,
                    "[random_poisson] rate %g at element %lld has no Poisson draw as an integer; rates must be "
                    "finite and >= 0 (ask for a float type: to get NaN for invalid rates instead)",
                    ((const double *)c.p[0])[poff(&c, 0, bad)], (long long)bad);
  return MX_OK;
}

/* ---- RANDOM_RANDINT: Lemire's multiply-and-reject, exactly uniform ----------------- */

static void randint_range(void *ctx, int64_t lo, int64_t hi) {
  rctx *c = ctx;
  int u64 = (mx_dtype)c->out->dtype == MX_U64;
  for (int64_t i = lo; i < hi; i++) {
    int64_t ol = poff(c, 0, i), oh = poff(c, 1, i);
    uint64_t low, range;
    if (u64) {
      uint64_t l = ((const uint64_t *)c->p[0])[ol], h = ((const uint64_t *)c->p[1])[oh];
      if (h <= l) {
        note_bad(c, i);
        ((uint64_t *)mx_data(c->out))[i] = l;
        continue;
      }
      low = l;
      range = h - l;
    } else {
      int64_t l = ((const int64_t *)c->p[0])[ol], h = ((const int64_t *)c->p[1])[oh];
      if (h <= l) {
        note_bad(c, i);
        ((int64_t *)mx_data(c->out))[i] = l;
        continue;
      }
      low = (uint64_t)l;
      range = (uint64_t)h - (uint64_t)l; /* < 2^64, exact in wrapping arithmetic */
    }
    /* floor(x * range / 2^64) is uniform once the low product words below 2^64 mod range are rejected. */
    uint32_t t = 0;
    __uint128_t m = (__uint128_t)stream_u64(c, i, t) * range;
    if ((uint64_t)m < range) {
      uint64_t threshold = (0 - range) % range;
      while ((uint64_t)m < threshold && t < MAX_TRIES) m = (__uint128_t)stream_u64(c, i, ++t) * range;
    }
    uint64_t r = low + (uint64_t)(m >> 64);
    if (u64) ((uint64_t *)mx_data(c->out))[i] = r;
    else ((int64_t *)mx_data(c->out))[i] = (int64_t)r;
  }
}

mx_status mx_k_random_randint(mx_array *out, mx_array *const *in) {
  rctx c;
  ctx_init(&c, out, in, 2);
  mx_parallel_for(out->size, HEAVY_GRAIN, randint_range, &c);
  int64_t bad = atomic_load(&c.bad);
  if (bad != INT64_MAX) {
    int64_t ol = poff(&c, 0, bad), oh = poff(&c, 1, bad);
    if ((mx_dtype)out->dtype == MX_U64)
      return mx_error(MX_EINVAL,
                      "[random_randint] empty range at element %lld: low %llu, high %llu; high must exceed low",
                      (long long)bad, (unsigned long long)((const uint64_t *)c.p[0])[ol],
                      (unsigned long long)((const uint64_t *)c.p[1])[oh]);
    return mx_error(MX_EINVAL,
                    "[random_randint] empty range at element %lld: low %lld, high %lld; high must exceed low",
                    (long long)bad, (long long)((const int64_t *)c.p[0])[ol], (long long)((const int64_t *)c.p[1])[oh]);
  }
  return MX_OK;
}
