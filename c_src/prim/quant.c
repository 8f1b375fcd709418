/* quant.c: MLX's affine quantization kernels (see ops_quant.c for the layout).
 * quantize follows MLX's CPU kernel (mlx/backend/cpu/quantized.cpp) step by step, in the
 * weight's precision: scale = max((max - min) / (2^bits - 1), 1e-7), signed so that the edge
 * of larger magnitude maps to q = 0; q0 = rint(edge / scale); if q0 != 0 the scale becomes
 * edge / q0 and the bias edge (zero is then exactly q = -q0), else the bias is 0;
 * q = clamp(rint((w - bias) / scale), 0, 2^bits - 1). rint rounds half to even. */
#include <math.h>
#include <stdatomic.h>
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
      deq_row_float(P->wq + R * pw, (const float *)P->s + R * ng, (const float *)P->b + R * ng, P->cols, P->gs,
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
 * bias * (sum x)_g. Leading axes never change the path, so vmap over x matches a loop bit for bit. */
#define DIRECT_ROWS 8
/* Rows of W dequantized per BLAS call: a tile of ~2^20 elements in the scratch buffer. */
#define TILE_ELEMS ((int64_t)1 << 20)

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

mx_status mx_k_quantized_matmul(mx_array *out, mx_array *const *in) {
  const mx_array *x = in[0], *wq = in[1], *s = in[2];
  if (!scheme_ok(out) || wq->dtype != MX_U32 || wq->ndim != 2 || s->ndim != 2 || x->dtype != out->dtype ||
      s->dtype != out->dtype || in[3]->dtype != out->dtype || (out->dtype != MX_F32 && out->dtype != MX_F64) ||
      x->ndim < 1 || out->ndim != x->ndim)
    return mx_error(MX_EINVAL, "[quantized_matmul] inputs do not fit the output");
  int transpose = out->params->flags & 1;
  int64_t gs = out->params->ip[0], bits = out->params->ip[1];
  int64_t rows = wq->shape[0], cols = s->shape[1] * gs; /* W is rows x cols */
  int64_t k = x->shape[x->ndim - 1], n = out->shape[out->ndim - 1], m = k > 0 ? x->size / k : out->size / (n ? n : 1);
  if (k != (transpose ? cols : rows) || n != (transpose ? rows : cols) || wq->shape[1] * 32 != cols * bits)
    return mx_error(MX_EINVAL, "[quantized_matmul] x [..., %lld] does not fit w [%lld, %lld]", (long long)k,
                    (long long)rows, (long long)cols);
  if (out->size == 0) return MX_OK;
  int f64 = out->dtype == MX_F64;
  size_t es = f64 ? 8 : 4;
  if (k == 0) {
    memset(mx_data(out), 0, mx_nbytes(out));
    return MX_OK;
  }
  int64_t matrix_rows = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
  if (transpose && matrix_rows <= DIRECT_ROWS) {
    int64_t ng = k / gs;
    void *xsum = malloc((size_t)(m * ng) * es);
    if (!xsum) return mx_error(MX_ENOMEM, "[quantized_matmul] out of memory for x's group sums");
    for (int64_t i = 0; i < m * ng; i++) { /* in order, as the reference's rounding analysis assumes */
      double sd = 0;
      float sf = 0;
      for (int64_t j = 0; j < gs; j++) {
        if (f64) sd += ((const double *)mx_data(x))[i * gs + j];
        else sf += ((const float *)mx_data(x))[i * gs + j];
      }
      if (f64) ((double *)xsum)[i] = sd;
      else ((float *)xsum)[i] = sf;
    }
    qmv_plan P = {.x = mx_data(x), .s = mx_data(s), .b = mx_data(in[3]), .xsum = xsum, .wq = mx_data(wq),
                  .out = mx_data(out), .m = m, .n = n, .k = k, .gs = gs, .bits = bits};
    int64_t grain = MX_PARALLEL_GRAIN / (k * m);
    mx_parallel_for(n, grain > 0 ? grain : 1, f64 ? qmv_double : qmv_float, &P);
    free(xsum);
    return MX_OK;
  }
  if (!mx_blas_fits(m) || !mx_blas_fits(n) || !mx_blas_fits(k))
    return mx_error(MX_EINVAL, "[quantized_matmul] dims m=%lld, n=%lld, k=%lld exceed BLAS's integer range",
                    (long long)m, (long long)n, (long long)k);
  /* Tiles of whole rows of W: with transpose a tile is out's columns [r0, r0 + t) (x @ tile^T);
   * without, it is rows [r0, r0 + t) of the contraction, accumulated into out (beta 1 after the first). */
  int64_t tile = TILE_ELEMS / cols;
  tile = tile < 1 ? 1 : tile > rows ? rows : tile;
  void *scratch = malloc((size_t)(tile * cols) * es);
  if (!scratch) return mx_error(MX_ENOMEM, "[quantized_matmul] out of memory for a %lld x %lld tile", (long long)tile,
                                (long long)cols);
  deq_plan D = {.wq = mx_data(wq), .s = mx_data(s), .b = mx_data(in[3]), .dst = scratch, .cols = cols, .gs = gs,
                .bits = bits, .f64 = f64};
  const char *xd = mx_data(x);
  char *od = mx_data(out);
  for (int64_t r0 = 0; r0 < rows && !mx_cancelled(); r0 += tile) {
    int64_t t = r0 + tile < rows ? tile : rows - r0, grain = MX_PARALLEL_GRAIN / cols;
    D.row0 = r0;
    mx_parallel_for(t, grain > 0 ? grain : 1, deq_rows, &D);
    if (transpose) {
      if (f64)
        mx_dgemm(0, 1, m, t, k, 1, (const double *)xd, k, scratch, cols, 0, (double *)od + r0, n);
      else
        mx_sgemm(0, 1, m, t, k, 1, (const float *)xd, k, scratch, cols, 0, (float *)od + r0, n);
    } else {
      if (f64)
        mx_dgemm(0, 0, m, n, t, 1, (const double *)xd + r0, k, scratch, cols, r0 ? 1 : 0, (double *)od, n);
      else
        mx_sgemm(0, 0, m, n, t, 1, (const float *)xd + r0, k, scratch, cols, r0 ? 1 : 0, (float *)od, n);
    }
  }
  free(scratch);
  return MX_OK;
}
