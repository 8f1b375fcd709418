/* quant.c: MLX's affine quantization kernels (see ops_quant.c for the layout).
 * quantize follows MLX's CPU kernel (mlx/backend/cpu/quantized.cpp) step by step, in the
 * weight's precision: scale = max((max - min) / (2^bits - 1), 1e-7), signed so that the edge
 * of larger magnitude maps to q = 0; q0 = rint(edge / scale); if q0 != 0 the scale becomes
 * edge / q0 and the bias edge (zero is then exactly q = -q0), else the bias is 0;
 * q = clamp(rint((w - bias) / scale), 0, 2^bits - 1). rint rounds half to even. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"

typedef struct {
  const void *w;
  void *out;
  int64_t gs, bits, which, f64;
  _Atomic int64_t bad; /* 1 + the first group with a NaN or infinity */
} quant_plan;

#define QUANT_GROUPS(T, RINT)                                                             \
  static void quant_##T(quant_plan *P, int64_t lo, int64_t hi) {                          \
    T n_bins = (T)((1 << P->bits) - 1);                                                   \
    int64_t per = 32 / P->bits, words = P->gs / per;                                      \
    for (int64_t g = lo; g < hi; g++) {                                                   \
      const T *w = (const T *)P->w + g * P->gs;                                           \
      T lo_v = w[0], hi_v = w[0];                                                         \
      int finite = 1;                                                                     \
      for (int64_t j = 0; j < P->gs; j++) {                                               \
        finite &= isfinite(w[j]) != 0;                                                    \
        lo_v = w[j] < lo_v ? w[j] : lo_v;                                                 \
        hi_v = w[j] > hi_v ? w[j] : hi_v;                                                 \
      }                                                                                   \
      if (!finite) {                                                                      \
        int64_t none = 0;                                                                 \
        atomic_compare_exchange_strong(&P->bad, &none, g + 1);                            \
        continue;                                                                         \
      }                                                                                   \
      int mask = fabs((double)lo_v) > fabs((double)hi_v);                                 \
      T scale = (hi_v - lo_v) / n_bins;                                                   \
      scale = scale > (T)1e-7 ? scale : (T)1e-7;                                          \
      scale = mask ? scale : -scale;                                                      \
      T edge = mask ? lo_v : hi_v, q0 = RINT(edge / scale), bias = 0;                     \
      if (q0 != 0) {                                                                      \
        scale = edge / q0;                                                                \
        bias = edge;                                                                      \
      }                                                                                   \
      if (P->which == 1) {                                                                \
        ((T *)P->out)[g] = scale;                                                         \
      } else if (P->which == 2) {                                                         \
        ((T *)P->out)[g] = bias;                                                          \
      } else {                                                                            \
        uint32_t *o = (uint32_t *)P->out + g * words;                                     \
        for (int64_t i = 0; i < words; i++) {                                             \
          uint32_t word = 0;                                                              \
          for (int64_t k = 0; k < per; k++) {                                             \
            T q = RINT((w[i * per + k] - bias) / scale);                                  \
            q = q < 0 ? 0 : q > n_bins ? n_bins : q;                                      \
            word |= (uint32_t)q << (k * P->bits);                                         \
          }                                                                               \
          o[i] = word;                                                                    \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
  }
QUANT_GROUPS(float, rintf)
QUANT_GROUPS(double, rint)
#undef QUANT_GROUPS

static void quant_range(void *ctx, int64_t lo, int64_t hi) {
  quant_plan *P = ctx;
  if (P->f64)
    quant_double(P, lo, hi);
  else
    quant_float(P, lo, hi);
}

static int scheme_ok(const mx_array *out) {
  return out->params && out->params->nip == 2 && (out->params->ip[0] == 32 || out->params->ip[0] == 64 ||
                                                   out->params->ip[0] == 128) &&
         (out->params->ip[1] == 2 || out->params->ip[1] == 4 || out->params->ip[1] == 8);
}

mx_status mx_k_quantize(mx_array *out, mx_array *const *in) {
  const mx_array *w = in[0];
  if (!scheme_ok(out) || (w->dtype != MX_F32 && w->dtype != MX_F64) || w->ndim < 1 ||
      w->shape[w->ndim - 1] % out->params->ip[0])
    return mx_error(MX_EINVAL, "[quantize] needs f32/f64 w whose last axis is a multiple of the group size");
  quant_plan P = {.w = mx_data(w), .out = mx_data(out), .gs = out->params->ip[0], .bits = out->params->ip[1],
                  .which = out->params->flags, .f64 = w->dtype == MX_F64};
  int64_t groups = w->size / P.gs;
  mx_parallel_for(groups, MX_PARALLEL_GRAIN / P.gs > 0 ? MX_PARALLEL_GRAIN / P.gs : 1, quant_range, &P);
  int64_t bad = atomic_load(&P.bad);
  if (bad)
    return mx_error(MX_ECOMPUTE,
                    "[quantize] group %lld of w (elements %lld..%lld in row-major order) holds a NaN or infinity; "
                    "quantization needs finite weights",
                    (long long)(bad - 1), (long long)((bad - 1) * P.gs), (long long)(bad * P.gs - 1));
  return MX_OK;
}

/* ---- dequantize: rows of W (one scale row each) into T buffers --------------------------- */

/* Row r of the packed matrix (cols values) as T: scale * q + bias, as MLX computes it (no fused
 * multiply-add on x86-64-v2). One function per bits, so the shifts are constants and unroll. */
#define DEQ_ROW(T, BITS)                                                                            \
  static void deq_row_##T##_##BITS(const uint32_t *wq, const T *s, const T *b, int64_t cols, int64_t gs, \
                                   T *dst) {                                                        \
    enum { PER = 32 / BITS };                                                                       \
    const uint32_t mask = (1u << BITS) - 1;                                                         \
    for (int64_t g = 0; g < cols / gs; g++) {                                                       \
      T sc = s[g], bi = b[g], *d = dst + g * gs;                                                    \
      const uint32_t *wg = wq + g * (gs / PER);                                                     \
      for (int64_t i = 0; i < gs / PER; i++) {                                                      \
        uint32_t word = wg[i];                                                                      \
        for (int k = 0; k < PER; k++) d[i * PER + k] = sc * (T)((word >> (k * BITS)) & mask) + bi;  \
      }                                                                                             \
    }                                                                                               \
  }
DEQ_ROW(float, 2)
DEQ_ROW(float, 4)
DEQ_ROW(float, 8)
DEQ_ROW(double, 2)
DEQ_ROW(double, 4)
DEQ_ROW(double, 8)
#undef DEQ_ROW

#define DEQ_DISPATCH(T)                                                                             \
  static void deq_row_##T(const uint32_t *wq, const T *s, const T *b, int64_t cols, int64_t gs,     \
                          int64_t bits, T *dst) {                                                   \
    if (bits == 2)                                                                                  \
      deq_row_##T##_2(wq, s, b, cols, gs, dst);                                                     \
    else if (bits == 4)                                                                             \
      deq_row_##T##_4(wq, s, b, cols, gs, dst);                                                     \
    else                                                                                            \
      deq_row_##T##_8(wq, s, b, cols, gs, dst);                                                     \
  }
DEQ_DISPATCH(float)
DEQ_DISPATCH(double)
#undef DEQ_DISPATCH

/* ---- x86-64 AVX2 kernels, chosen at run time (the build targets x86-64-v2) --------------- */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QUANT_AVX2 1
static int have_avx2_fma(void) {
  static _Atomic int cached = -1;
  int c = atomic_load(&cached);
  if (c < 0) {
    __builtin_cpu_init();
    c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    atomic_store(&cached, c);
  }
  return c;
}

/* 16 levels starting at word p (4 words for 8 bits, 2 for 4, 1 for 2), as two vectors of 8 floats. */
#define DECODE16(BITS, p, v0, v1)                                                                   \
  do {                                                                                              \
    if (BITS == 8) {                                                                                \
      __m128i by = _mm_loadu_si128((const __m128i *)(p));                                           \
      v0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(by));                                            \
      v1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(by, 8)));                         \
    } else if (BITS == 4) {                                                                         \
      const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), m4 = _mm256_set1_epi32(15); \
      v0 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(p)[0]), sh), m4)); \
      v1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(p)[1]), sh), m4)); \
    } else {                                                                                        \
      const __m256i lo = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), m2 = _mm256_set1_epi32(3);    \
      __m256i w = _mm256_set1_epi32((int)(p)[0]);                                                   \
      v0 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(w, lo), m2));                      \
      v1 = _mm256_cvtepi32_ps(                                                                      \
          _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_add_epi32(lo, _mm256_set1_epi32(16))), m2)); \
    }                                                                                               \
  } while (0)

/* deq_row_float with AVX2 but no FMA (the target has none), so scale * q + bias rounds twice as
 * the scalar loop does: bit for bit the same values. */
#define DEQ_ROW_AVX2(BITS)                                                                            \
  __attribute__((target("avx2"))) static void deq_row_avx2_##BITS(const uint32_t *wq, const float *s,  \
                                                                  const float *b, int64_t cols,        \
                                                                  int64_t gs, float *dst) {            \
    for (int64_t g = 0; g < cols / gs; g++) {                                                         \
      __m256 sc = _mm256_set1_ps(s[g]), bi = _mm256_set1_ps(b[g]), v0, v1;                            \
      const uint32_t *wg = wq + g * (gs * BITS / 32);                                                 \
      for (int64_t j = 0; j < gs; j += 16) {                                                          \
        DECODE16(BITS, wg + j * BITS / 32, v0, v1);                                                   \
        _mm256_storeu_ps(dst + g * gs + j, _mm256_add_ps(_mm256_mul_ps(sc, v0), bi));                 \
        _mm256_storeu_ps(dst + g * gs + j + 8, _mm256_add_ps(_mm256_mul_ps(sc, v1), bi));             \
      }                                                                                               \
    }                                                                                                 \
  }
DEQ_ROW_AVX2(2)
DEQ_ROW_AVX2(4)
DEQ_ROW_AVX2(8)
#undef DEQ_ROW_AVX2
#else
static int have_avx2_fma(void) { return 0; }
#endif

static void deq_row_f32(const uint32_t *wq, const float *s, const float *b, int64_t cols, int64_t gs, int64_t bits,
                        float *dst) {
#ifdef QUANT_AVX2
  if (have_avx2_fma()) {
    if (bits == 2)
      deq_row_avx2_2(wq, s, b, cols, gs, dst);
    else if (bits == 4)
      deq_row_avx2_4(wq, s, b, cols, gs, dst);
    else
      deq_row_avx2_8(wq, s, b, cols, gs, dst);
    return;
  }
#endif
  deq_row_float(wq, s, b, cols, gs, bits, dst);
}

typedef struct {
  const uint32_t *wq;
  const void *s, *b;
  void *dst;
  int64_t cols, gs, bits, f64, row0;
} deq_plan;

/* Rows [lo, hi) (relative to row0) of the packed matrix into dst. */
static void deq_rows(void *ctx, int64_t lo, int64_t hi) {
  const deq_plan *P = ctx;
  int64_t pw = P->cols * P->bits / 32, ng = P->cols / P->gs;
  for (int64_t r = lo; r < hi; r++) {
    int64_t R = P->row0 + r;
    if (P->f64)
      deq_row_double(P->wq + R * pw, (const double *)P->s + R * ng, (const double *)P->b + R * ng, P->cols, P->gs,
                     P->bits, (double *)P->dst + r * P->cols);
    else
      deq_row_f32(P->wq + R * pw, (const float *)P->s + R * ng, (const float *)P->b + R * ng, P->cols, P->gs,
                  P->bits, (float *)P->dst + r * P->cols);
  }
}

mx_status mx_k_dequantize(mx_array *out, mx_array *const *in) {
  const mx_array *s = in[1];
  if (!scheme_ok(out) || in[0]->dtype != MX_U32 || s->dtype != out->dtype || in[2]->dtype != out->dtype ||
      out->ndim < 1 || s->size * out->params->ip[0] != out->size || in[0]->size * 32 != out->size * out->params->ip[1])
    return mx_error(MX_EINVAL, "[dequantize] w_q, scales and biases do not fit the output");
  int64_t cols = out->shape[out->ndim - 1];
  if (out->size == 0) return MX_OK;
  deq_plan P = {.wq = mx_data(in[0]), .s = mx_data(s), .b = mx_data(in[2]), .dst = mx_data(out), .cols = cols,
                .gs = out->params->ip[0], .bits = out->params->ip[1], .f64 = out->dtype == MX_F64};
  int64_t grain = MX_PARALLEL_GRAIN / cols;
  mx_parallel_for(out->size / cols, grain > 0 ? grain : 1, deq_rows, &P);
  return MX_OK;
}

/* ---- quantized_matmul ------------------------------------------------------------------- */

/* x's matrices of up to this many rows (its second-to-last axis, as MLX's qmv/qmm choice):
 * a direct loop over packed words (w is never expanded), out[m, n] = sum_g scale * (x . q)_g +
 * bias * (sum x)_g. Leading axes never change the path, and each output element is one row of x
 * against one row of W in a fixed order, so vmap over x matches a loop bit for bit. */
#define DIRECT_ROWS 8
/* The AVX2 f32 loop beats dequantizing tiles for sgemm up to about 32-48 rows (bench/quant.exs). */
#define DIRECT_ROWS_AVX2 32
/* Rows of W dequantized per BLAS call: a tile of about 2^18 elements (1 MiB of f32), the size of
 * a core's L2, so gemm reads the tile back from cache; at least x's rows, since each gemm call
 * re-packs all of x (that costs about 1 / (2 tile rows) of the call's multiply-adds). */
#define TILE_ELEMS ((int64_t)1 << 18)

typedef struct {
  const void *x, *s, *b, *xsum; /* xsum [m, k / gs]: each group's sum of x */
  const uint32_t *wq;
  void *out;
  int64_t m, n, k, gs, bits;
} qmv_plan;

/* Rows [lo, hi) of W: up to 4096 levels decoded at a time (deq with scale 1, bias 0), then each
 * group dotted with every row of x in 8 running sums (a fixed order whatever m is). */
#define QMV_LEVELS 4096
#define QMV(T)                                                                                    \
  static void qmv_##T(void *ctx, int64_t lo, int64_t hi) {                                        \
    const qmv_plan *P = ctx;                                                                      \
    int64_t ng = P->k / P->gs, pw = P->k * P->bits / 32, block = QMV_LEVELS / P->gs;              \
    T levels[QMV_LEVELS], ones[QMV_LEVELS / 32], zeros[QMV_LEVELS / 32];                          \
    for (int i = 0; i < QMV_LEVELS / 32; i++) ones[i] = 1, zeros[i] = 0;                          \
    const T *x = P->x, *xsum = P->xsum;                                                           \
    for (int64_t r = lo; r < hi; r++) {                                                           \
      const T *s = (const T *)P->s + r * ng, *b = (const T *)P->b + r * ng;                       \
      T *o = (T *)P->out + r;                                                                     \
      for (int64_t i = 0; i < P->m; i++) o[i * P->n] = 0;                                         \
      for (int64_t g0 = 0; g0 < ng; g0 += block) {                                                \
        int64_t gn = g0 + block < ng ? block : ng - g0;                                           \
        deq_row_##T(P->wq + r * pw + g0 * P->gs * P->bits / 32, ones, zeros, gn * P->gs, P->gs, P->bits, levels); \
        for (int64_t i = 0; i < P->m; i++)                                                        \
          for (int64_t g = g0; g < g0 + gn; g++) {                                                \
            const T *xg = x + i * P->k + g * P->gs, *lv = levels + (g - g0) * P->gs;              \
            T acc[8] = {0};                                                                       \
            for (int64_t j = 0; j < P->gs; j += 8)                                                \
              for (int u = 0; u < 8; u++) acc[u] += xg[j + u] * lv[j + u];                        \
            T dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
            o[i * P->n] += s[g] * dot + b[g] * xsum[i * ng + g];                                  \
          }                                                                                       \
      }                                                                                           \
    }                                                                                             \
  }
QMV(float)
QMV(double)
#undef QMV

#ifdef QUANT_AVX2
/* The f32 direct loop with AVX2 and FMA: 16 levels decoded into two registers at a time and
 * multiplied into MI rows of x at once (MI <= 4, NA independent sums a row to hide the FMA
 * latency); per group the sums are scaled into tot, and bias * (sum x)_g is added in order. */
#define QMV_AVX2(BITS, MI, NA)                                                                          \
  __attribute__((target("avx2,fma"))) static void qmv_avx2_##BITS##_##MI(const qmv_plan *P, int64_t r, \
                                                                          int64_t i0) {                 \
    int64_t ng = P->k / P->gs, pw = P->k * BITS / 32;                                                   \
    const uint32_t *wr = P->wq + r * pw;                                                                \
    const float *s = (const float *)P->s + r * ng, *b = (const float *)P->b + r * ng;                   \
    const float *x = (const float *)P->x + i0 * P->k, *xsum = (const float *)P->xsum + i0 * ng;         \
    __m256 tot[MI];                                                                                     \
    float bsum[MI];                                                                                     \
    for (int i = 0; i < MI; i++) tot[i] = _mm256_setzero_ps(), bsum[i] = 0;                             \
    for (int64_t g = 0; g < ng; g++) {                                                                  \
      __m256 acc[MI][NA], v0, v1;                                                                       \
      for (int i = 0; i < MI; i++)                                                                      \
        for (int a = 0; a < NA; a++) acc[i][a] = _mm256_setzero_ps();                                   \
      const uint32_t *wg = wr + g * (P->gs * BITS / 32);                                                \
      for (int64_t j = 0; j < P->gs; j += 32) {                                                         \
        for (int h = 0; h < 2; h++) {                                                                   \
          int64_t jj = j + 16 * h;                                                                      \
          DECODE16(BITS, wg + jj * BITS / 32, v0, v1);                                                  \
          for (int i = 0; i < MI; i++) {                                                                \
            const float *xi = x + i * P->k + g * P->gs + jj;                                            \
            acc[i][(2 * h) % NA] = _mm256_fmadd_ps(_mm256_loadu_ps(xi), v0, acc[i][(2 * h) % NA]);      \
            acc[i][(2 * h + 1) % NA] = _mm256_fmadd_ps(_mm256_loadu_ps(xi + 8), v1, acc[i][(2 * h + 1) % NA]); \
          }                                                                                             \
        }                                                                                               \
      }                                                                                                 \
      __m256 sg = _mm256_set1_ps(s[g]);                                                                 \
      for (int i = 0; i < MI; i++) {                                                                    \
        __m256 d = acc[i][0];                                                                           \
        for (int a = 1; a < NA; a++) d = _mm256_add_ps(d, acc[i][a]);                                   \
        tot[i] = _mm256_fmadd_ps(sg, d, tot[i]);                                                        \
        bsum[i] += b[g] * xsum[i * ng + g];                                                             \
      }                                                                                                 \
    }                                                                                                   \
    for (int i = 0; i < MI; i++) {                                                                      \
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(tot[i]), _mm256_extractf128_ps(tot[i], 1));          \
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                                           \
      h = _mm_add_ss(h, _mm_movehdup_ps(h));                                                            \
      ((float *)P->out)[(i0 + i) * P->n + r] = _mm_cvtss_f32(h) + bsum[i];                              \
    }                                                                                                   \
  }
#define QMV_AVX2_BITS(BITS) \
  QMV_AVX2(BITS, 1, 4)      \
  QMV_AVX2(BITS, 2, 2)      \
  QMV_AVX2(BITS, 3, 2)      \
  QMV_AVX2(BITS, 4, 2)
QMV_AVX2_BITS(2)
QMV_AVX2_BITS(4)
QMV_AVX2_BITS(8)
#undef QMV_AVX2_BITS
#undef QMV_AVX2

typedef void (*qmv_avx2_fn)(const qmv_plan *, int64_t, int64_t);
static const qmv_avx2_fn qmv_avx2_table[3][4] = {
    {qmv_avx2_2_1, qmv_avx2_2_2, qmv_avx2_2_3, qmv_avx2_2_4},
    {qmv_avx2_4_1, qmv_avx2_4_2, qmv_avx2_4_3, qmv_avx2_4_4},
    {qmv_avx2_8_1, qmv_avx2_8_2, qmv_avx2_8_3, qmv_avx2_8_4},
};

/* Rows [lo, hi) of W against every row of x, four rows of x at a time (a row's result does not
 * depend on which rows share its block). */
static void qmv_f32_avx2(void *ctx, int64_t lo, int64_t hi) {
  const qmv_plan *P = ctx;
  const qmv_avx2_fn *fns = qmv_avx2_table[P->bits == 2 ? 0 : P->bits == 4 ? 1 : 2];
  for (int64_t r = lo; r < hi; r++)
    for (int64_t i0 = 0; i0 < P->m; i0 += 4) fns[(P->m - i0 < 4 ? P->m - i0 : 4) - 1](P, r, i0);
}
#endif

/* One matrix product: x [m, k] (matrix_rows rows a matrix of x: the path) against W (rows x cols,
 * transposed or not) into out [m, n]; scratch holds a tile for the BLAS path (NULL otherwise). */
typedef struct {
  const void *x, *s, *b;
  const uint32_t *wq;
  void *out, *scratch, *xsum;
  int64_t m, n, k, rows, cols, gs, bits, tile, direct;
  int transpose, f64;
} qmm_args;

static void qmm_direct(const qmm_args *A) {
  int64_t ng = A->k / A->gs;
  for (int64_t i = 0; i < A->m * ng; i++) { /* in order, as the reference's rounding analysis assumes */
    double sd = 0;
    float sf = 0;
    for (int64_t j = 0; j < A->gs; j++) {
      if (A->f64) sd += ((const double *)A->x)[i * A->gs + j];
      else sf += ((const float *)A->x)[i * A->gs + j];
    }
    if (A->f64) ((double *)A->xsum)[i] = sd;
    else ((float *)A->xsum)[i] = sf;
  }
  qmv_plan P = {.x = A->x, .s = A->s, .b = A->b, .xsum = A->xsum, .wq = A->wq, .out = A->out, .m = A->m, .n = A->n,
                .k = A->k, .gs = A->gs, .bits = A->bits};
  int64_t grain = MX_PARALLEL_GRAIN / (A->k * A->m);
  mx_range_fn fn = A->f64 ? qmv_double : qmv_float;
#ifdef QUANT_AVX2
  if (!A->f64 && have_avx2_fma()) fn = qmv_f32_avx2;
#endif
  mx_parallel_for(A->n, grain > 0 ? grain : 1, fn, &P);
}

/* Tiles of whole rows of W: with transpose a tile is out's columns [r0, r0 + t) (x @ tile^T);
 * without, it is rows [r0, r0 + t) of the contraction, accumulated into out (beta 1 after the first). */
static void qmm_blas(const qmm_args *A) {
  deq_plan D = {.wq = A->wq, .s = A->s, .b = A->b, .dst = A->scratch, .cols = A->cols, .gs = A->gs,
                .bits = A->bits, .f64 = A->f64};
  int64_t m = A->m, n = A->n, k = A->k, cols = A->cols;
  const char *xd = A->x;
  char *od = A->out;
  for (int64_t r0 = 0; r0 < A->rows && !mx_cancelled(); r0 += A->tile) {
    int64_t t = r0 + A->tile < A->rows ? A->tile : A->rows - r0, grain = MX_PARALLEL_GRAIN / cols;
    D.row0 = r0;
    mx_parallel_for(t, grain > 0 ? grain : 1, deq_rows, &D);
    if (A->transpose) {
      if (A->f64)
        mx_dgemm(0, 1, m, t, k, 1, (const double *)xd, k, A->scratch, cols, 0, (double *)od + r0, n);
      else
        mx_sgemm(0, 1, m, t, k, 1, (const float *)xd, k, A->scratch, cols, 0, (float *)od + r0, n);
    } else {
      if (A->f64)
        mx_dgemm(0, 0, m, n, t, 1, (const double *)xd + r0, k, A->scratch, cols, r0 ? 1 : 0, (double *)od, n);
      else
        mx_sgemm(0, 0, m, n, t, 1, (const float *)xd + r0, k, A->scratch, cols, r0 ? 1 : 0, (float *)od, n);
    }
  }
}

/* Element offset of batch index bi (of out's batch shape ob[0..nb)) in a, whose leading a->ndim - 2
 * axes broadcast against ob (right-aligned; a missing or size-1 axis repeats). */
static int64_t batch_offset(const mx_array *a, const int64_t *ob, int nb, int64_t bi) {
  int ab = a->ndim - 2;
  int64_t off = 0, stride = a->shape[a->ndim - 1] * a->shape[a->ndim - 2];
  for (int d = nb - 1; d >= 0; d--) {
    int64_t idx = bi % ob[d];
    bi /= ob[d];
    int ad = d - (nb - ab);
    if (ad < 0) continue;
    if (a->shape[ad] != 1) off += idx * stride;
    stride *= a->shape[ad];
  }
  return off;
}

/* Whether a's batch axes (all but its last two) broadcast to ob[0..nb). */
static int batch_fits(const mx_array *a, const int64_t *ob, int nb) {
  int ab = a->ndim - 2;
  if (ab > nb) return 0;
  for (int d = 0; d < ab; d++)
    if (a->shape[d] != 1 && a->shape[d] != ob[nb - ab + d]) return 0;
  return 1;
}

/* The allocator's reason (out of memory, or the memory limit) under this op's name. */
static mx_status scratch_error(const char *what) {
  char why[256];
  snprintf(why, sizeof why, "%s", mx_last_error());
  return mx_error(MX_ENOMEM, "[quantized_matmul] scratch for %s: %s", what, why);
}

mx_status mx_k_quantized_matmul(mx_array *out, mx_array *const *in) {
  const mx_array *x = in[0], *wq = in[1], *s = in[2], *bi = in[3];
  if (!scheme_ok(out) || wq->dtype != MX_U32 || wq->ndim < 2 || s->ndim < 2 || bi->ndim < 2 ||
      x->dtype != out->dtype || s->dtype != out->dtype || bi->dtype != out->dtype ||
      (out->dtype != MX_F32 && out->dtype != MX_F64) || x->ndim < 1 || out->ndim < x->ndim ||
      s->shape[s->ndim - 2] != wq->shape[wq->ndim - 2] || bi->shape[bi->ndim - 1] != s->shape[s->ndim - 1] ||
      bi->shape[bi->ndim - 2] != wq->shape[wq->ndim - 2])
    return mx_error(MX_EINVAL, "[quantized_matmul] inputs do not fit the output");
  int transpose = out->params->flags & 1;
  int64_t gs = out->params->ip[0], bits = out->params->ip[1];
  int64_t rows = wq->shape[wq->ndim - 2], cols = s->shape[s->ndim - 1] * gs; /* W is rows x cols */
  int64_t k = x->shape[x->ndim - 1], n = out->shape[out->ndim - 1];
  /* batched: any weight input has batch axes; then x [..., M, K] and out [batch..., M, N], else x [..., K] */
  int batched = wq->ndim > 2 || s->ndim > 2 || bi->ndim > 2;
  int nb = batched ? out->ndim - 2 : 0;
  int64_t nbatch = 1;
  for (int d = 0; d < nb; d++) nbatch *= out->shape[d];
  int64_t m = batched ? out->shape[out->ndim - 2] : k > 0 ? x->size / k : out->size / (n ? n : 1);
  if (k != (transpose ? cols : rows) || n != (transpose ? rows : cols) || wq->shape[wq->ndim - 1] * 32 != cols * bits ||
      (batched && (x->ndim < 2 || x->shape[x->ndim - 2] != m || !batch_fits(x, out->shape, nb) ||
                   !batch_fits(wq, out->shape, nb) || !batch_fits(s, out->shape, nb) || !batch_fits(bi, out->shape, nb))))
    return mx_error(MX_EINVAL, "[quantized_matmul] x [..., %lld] does not fit w [%lld, %lld]", (long long)k,
                    (long long)rows, (long long)cols);
  if (out->size == 0) return MX_OK;
  int f64 = out->dtype == MX_F64;
  size_t es = f64 ? 8 : 4;
  if (k == 0) {
    memset(mx_data(out), 0, mx_nbytes(out));
    return MX_OK;
  }
  int64_t direct_rows = !f64 && have_avx2_fma() ? DIRECT_ROWS_AVX2 : DIRECT_ROWS;
  int64_t matrix_rows = batched ? m : x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
  qmm_args A = {.m = m, .n = n, .k = k, .rows = rows, .cols = cols, .gs = gs, .bits = bits, .transpose = transpose,
                .f64 = f64, .direct = transpose && matrix_rows <= direct_rows};
  /* Scratch from the engine's buffer cache: the same shapes call after call reuse warm pages
   * (a fresh malloc of a tile is an mmap whose first touch faulted on every call). */
  mx_buffer *scratch = NULL;
  if (A.direct) {
    if (mx_buffer_alloc((size_t)(m * (k / gs)) * es, &scratch) != MX_OK)
      return scratch_error("x's group sums");
    A.xsum = scratch->data;
  } else {
    if (!mx_blas_fits(m) || !mx_blas_fits(n) || !mx_blas_fits(k))
      return mx_error(MX_EINVAL, "[quantized_matmul] dims m=%lld, n=%lld, k=%lld exceed BLAS's integer range",
                      (long long)m, (long long)n, (long long)k);
    A.tile = TILE_ELEMS / cols > m ? TILE_ELEMS / cols : m; /* gemm re-packs x each call: >= m rows keeps that small */
    A.tile = A.tile < 1 ? 1 : A.tile > rows ? rows : A.tile;
    if (mx_buffer_alloc((size_t)(A.tile * cols) * es, &scratch) != MX_OK) return scratch_error("a dequantized tile");
    A.scratch = scratch->data;
  }
  int64_t ob[MX_MAX_RANK];
  memcpy(ob, out->shape, sizeof(int64_t) * (size_t)nb);
  for (int64_t t = 0; t < nbatch && !mx_cancelled(); t++) {
    const char *xd = mx_data(x);
    A.x = xd + (batched ? batch_offset(x, ob, nb, t) : 0) * (int64_t)es;
    A.wq = (const uint32_t *)mx_data(wq) + (batched && wq->ndim > 2 ? batch_offset(wq, ob, nb, t) : 0);
    A.s = (const char *)mx_data(s) + (batched && s->ndim > 2 ? batch_offset(s, ob, nb, t) : 0) * (int64_t)es;
    A.b = (const char *)mx_data(bi) + (batched && bi->ndim > 2 ? batch_offset(bi, ob, nb, t) : 0) * (int64_t)es;
    A.out = (char *)mx_data(out) + t * m * n * (int64_t)es;
    if (A.direct)
      qmm_direct(&A);
    else
      qmm_blas(&A);
  }
  mx_buffer_release(scratch);
  return MX_OK;
}
