/* random.h: the counter-based generator shared by the random kernels (random.c)
 * and the C tests. Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel
 * random numbers: as easy as 1, 2, 3"): a keyed bijection of a 64-bit counter,
 * so a draw depends only on its key and counter, never on threads or order. */
#ifndef MX_RANDOM_H
#define MX_RANDOM_H

#include <stdint.h>

/* Node flag set by the constructor when RANDOM_BITS has a counter offset in in[1]
 * (beside MX_RANDOM_OPEN and MX_RANDOM_LOG from mx.h). */
#define MX_RANDOM_HAS_OFFSET 4

static inline uint32_t mx_rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* One block: key (k0, k1), counter (c0, c1) -> out[0..1]. Rotations and key
 * schedule as in Random123's threefry2x32 (injection every 4 rounds). */
static inline void mx_threefry2x32(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t out[2]) {
  uint32_t k2 = 0x1BD11BDAu ^ k0 ^ k1;
  uint32_t x0 = c0 + k0, x1 = c1 + k1;
#define MX_TF_ROUND(r) \
  x0 += x1;            \
  x1 = mx_rotl32(x1, r); \
  x1 ^= x0;
#define MX_TF_FOUR_A MX_TF_ROUND(13) MX_TF_ROUND(15) MX_TF_ROUND(26) MX_TF_ROUND(6)
#define MX_TF_FOUR_B MX_TF_ROUND(17) MX_TF_ROUND(29) MX_TF_ROUND(16) MX_TF_ROUND(24)
  MX_TF_FOUR_A x0 += k1; x1 += k2 + 1u;
  MX_TF_FOUR_B x0 += k2; x1 += k0 + 2u;
  MX_TF_FOUR_A x0 += k0; x1 += k1 + 3u;
  MX_TF_FOUR_B x0 += k1; x1 += k2 + 4u;
  MX_TF_FOUR_A x0 += k2; x1 += k0 + 5u;
#undef MX_TF_FOUR_A
#undef MX_TF_FOUR_B
#undef MX_TF_ROUND
  out[0] = x0;
  out[1] = x1;
}

/* Block number b (a 64-bit counter: low word c0, high word c1) as one u64:
 * word 0 in the low half, so u64 draws equal u32 draws read two at a time. */
static inline uint64_t mx_threefry_u64(uint32_t k0, uint32_t k1, uint64_t b) {
  uint32_t w[2];
  mx_threefry2x32(k0, k1, (uint32_t)b, (uint32_t)(b >> 32), w);
  return (uint64_t)w[0] | ((uint64_t)w[1] << 32);
}

/* Uniform doubles from 64 random bits. [0, 1): the top 53 bits. (0, 1): the
 * top 52 bits plus half a step, (2k + 1) 2^-53, exact and symmetric about 1/2. */
static inline double mx_u64_to_unit(uint64_t x) { return (double)(x >> 11) * 0x1p-53; }
static inline double mx_u64_to_open_unit(uint64_t x) { return ((double)(x >> 12) + 0.5) * 0x1p-52; }
/* Floats from 32 bits: [0, 1) from the top 24 bits; (0, 1) as (2k + 1) 2^-24 from the top 23. */
static inline float mx_u32_to_unitf(uint32_t w) { return (float)(w >> 8) * 0x1p-24f; }
static inline float mx_u32_to_open_unitf(uint32_t w) { return ((float)(w >> 9) + 0.5f) * 0x1p-23f; }

/* Scalar samplers, exposed for the C tests. Element `idx` draws from its own
 * counter stream: block (iteration | idx << 32). */
double mx_sample_gamma(uint32_t k0, uint32_t k1, uint32_t idx, double alpha, int log_space);
double mx_sample_poisson(uint32_t k0, uint32_t k1, uint32_t idx, double rate);
double mx_sample_truncated_normal(double u, double lower, double upper);
/* log Phi(x), the standard normal log-CDF, accurate for all x; its inverse for L <= log(1/2). */
double mx_random_log_ndtr(double x);
double mx_ndtri_log(double L);

#endif
