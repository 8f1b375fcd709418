/* conv.c: convolution (im2col + gemm), its input and kernel gradients (gemm + col2im, im2col + gemm)
 * and window reductions (Nx.window_*, window_scatter_*).
 * Padding and input dilation are done before these kernels (ops_conv.c pads the input), so every
 * window here lies inside its input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"

/* ---- convolution -------------------------------------------------------------------- */

typedef struct {
  int S;
  int64_t N, C, O, G, Cg, Og, K, Kc, P;                     /* K kernel taps, Kc = Cg * K, P output positions */
  int64_t xs[MX_MAX_RANK], xsp[MX_MAX_RANK], ks[MX_MAX_RANK], os[MX_MAX_RANK];
  int64_t stride[MX_MAX_RANK], dil[MX_MAX_RANK];
  size_t es;                                                 /* bytes per element */
  const char *x;                                             /* this (n, g)'s first input channel */
  char *xw;                                                  /* the same, written (col2im) */
  char *col;                                                 /* [Kc, pb] */
  int64_t p0, pb, pbmax;                                     /* this block's first column and width; widest */
  int direct;                                                /* 1x1, unit strides: x is the column matrix */
} conv_plan;

typedef struct {
  uint64_t a, b;
} bits128;

/* Copies rows [lo, hi) of the column matrix: row r = (channel c, tap k), column p = output position. */
#define IM2COL(NAME, T)                                                                            \
  static void NAME(void *ctx, int64_t lo, int64_t hi) {                                            \
    const conv_plan *P = ctx;                                                                      \
    int S = P->S;                                                                                  \
    for (int64_t r = lo; r < hi; r++) {                                                            \
      int64_t c = r / P->K, k = r % P->K, tap = 0, o[MX_MAX_RANK];                                 \
      for (int d = S - 1; d >= 0; d--) { /* the tap's offset inside the input */                   \
        tap += (k % P->ks[d]) * P->dil[d] * P->xs[d];                                              \
        k /= P->ks[d];                                                                             \
      }                                                                                            \
      const T *src = (const T *)P->x + c * P->xsp[0] + tap;                                        \
      T *dst = (T *)P->col + (r * P->pb);                                                          \
      int64_t p = P->p0, off = 0;                                                                  \
      for (int d = S - 1; d >= 0; d--) {                                                           \
        o[d] = p % P->os[d];                                                                       \
        p /= P->os[d];                                                                             \
        off += o[d] * P->stride[d] * P->xs[d];                                                     \
      }                                                                                            \
      int64_t step = P->stride[S - 1], last = P->os[S - 1];                                        \
      for (int64_t j = 0; j < P->pb;) { /* runs along the last spatial axis */                     \
        int64_t run = last - o[S - 1] < P->pb - j ? last - o[S - 1] : P->pb - j;                  \
        const T *s0 = src + off;                                                                   \
        if (step == 1)                                                                             \
          memcpy(dst + j, s0, sizeof(T) * (size_t)run);                                            \
        else                                                                                       \
          for (int64_t t = 0; t < run; t++) dst[j + t] = s0[t * step];                             \
        j += run;                                                                                  \
        off = 0; /* next row: carry, recompute from the coordinates */                             \
        o[S - 1] = 0;                                                                              \
        for (int d = S - 2; d >= 0 && ++o[d] == P->os[d]; d--) o[d] = 0;                           \
        for (int d = 0; d < S; d++) off += o[d] * P->stride[d] * P->xs[d];                         \
      }                                                                                            \
    }                                                                                              \
  }
IM2COL(im2col_4, uint32_t)
IM2COL(im2col_8, uint64_t)
IM2COL(im2col_16, bits128)
#undef IM2COL

/* Scatter-adds rows [lo * K, hi * K) of the column matrix (channels lo .. hi) back into their input
 * positions: im2col's transpose. Channels own disjoint planes, so ranges of them run in parallel. */
#define COL2IM(NAME, T, W)                                                                         \
  static void NAME(void *ctx, int64_t lo, int64_t hi) {                                            \
    const conv_plan *P = ctx;                                                                      \
    int S = P->S;                                                                                  \
    for (int64_t r = lo * P->K; r < hi * P->K; r++) {                                              \
      int64_t c = r / P->K, k = r % P->K, tap = 0, o[MX_MAX_RANK];                                 \
      for (int d = S - 1; d >= 0; d--) {                                                           \
        tap += (k % P->ks[d]) * P->dil[d] * P->xs[d];                                              \
        k /= P->ks[d];                                                                             \
      }                                                                                            \
      T *dst = (T *)P->xw + (c * P->xsp[0] + tap) * W;                                             \
      const T *src = (const T *)P->col + r * P->pb * W;                                            \
      int64_t p = P->p0, off = 0;                                                                  \
      for (int d = S - 1; d >= 0; d--) {                                                           \
        o[d] = p % P->os[d];                                                                       \
        p /= P->os[d];                                                                             \
        off += o[d] * P->stride[d] * P->xs[d];                                                     \
      }                                                                                            \
      int64_t step = P->stride[S - 1] * W, last = P->os[S - 1];                                    \
      for (int64_t j = 0; j < P->pb;) {                                                            \
        int64_t run = last - o[S - 1] < P->pb - j ? last - o[S - 1] : P->pb - j;                  \
        T *d0 = dst + off * W;                                                                     \
        const T *s0 = src + j * W;                                                                 \
        for (int64_t t = 0; t < run; t++)                                                          \
          for (int e = 0; e < W; e++) d0[t * step + e] += s0[t * W + e];                           \
        j += run;                                                                                  \
        off = 0;                                                                                   \
        o[S - 1] = 0;                                                                              \
        for (int d = S - 2; d >= 0 && ++o[d] == P->os[d]; d--) o[d] = 0;                           \
        for (int d = 0; d < S; d++) off += o[d] * P->stride[d] * P->xs[d];                         \
      }                                                                                            \
    }                                                                                              \
  }
COL2IM(col2im_f32, float, 1)
COL2IM(col2im_f64, double, 1)
COL2IM(col2im_c64, float, 2)
COL2IM(col2im_c128, double, 2)
#undef COL2IM

/* C[m, n] = op(A) @ op(B) (+ C when beta_one) in dtype t; op a plain transpose (complex too). */
static void gemm(mx_dtype t, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                 const void *b, int64_t ldb, int beta_one, void *c, int64_t ldc) {
  switch (t) {
  case MX_F32:
    mx_sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, beta_one ? 1 : 0, c, ldc);
    break;
  case MX_F64:
    mx_dgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, beta_one ? 1 : 0, c, ldc);
    break;
  default: /* c64, c128 */
    mx_cxgemm(t == MX_C128, ta, tb, m, n, k, a, lda, b, ldb, beta_one, c, ldc);
  }
}

/* Checks and plans a conv of x [N, C, s] with w [O, Cg, k] into y [N, O, o], whichever of the
 * three is the kernel's output (conv: y; conv_input_grad: x; conv_kernel_grad: w). */
static mx_status conv_plan_init(const char *op, const mx_array *out, const mx_array *x, const mx_array *w,
                                const mx_array *y, conv_plan *P) {
  mx_dtype t = (mx_dtype)out->dtype;
  if (t != MX_F32 && t != MX_F64 && t != MX_C64 && t != MX_C128)
    return mx_error(MX_EINVAL, "[%s] computes in f32, f64, c64 or c128, got %s; cast with as_type", op,
                    mx_dtype_name(t));
  if ((mx_dtype)x->dtype != t || (mx_dtype)w->dtype != t || (mx_dtype)y->dtype != t || x->ndim != out->ndim ||
      w->ndim != out->ndim || y->ndim != out->ndim || x->ndim < 3 || !out->params)
    return mx_error(MX_EINVAL, "[%s] inputs must match the output's dtype and rank (>= 3)", op);
  *P = (conv_plan){.S = x->ndim - 2, .N = x->shape[0], .C = x->shape[1], .O = w->shape[0], .G = out->params->axis,
                   .Cg = w->shape[1], .es = mx_dtype_size(t)};
  int S = P->S;
  if (P->G < 1 || P->C != P->Cg * P->G || P->O % P->G || y->shape[0] != P->N || y->shape[1] != P->O ||
      out->params->nip != 2 * S)
    return mx_error(MX_EINVAL, "[%s] channels and groups do not agree (C %lld, kernel C %lld, O %lld, groups %lld)",
                    op, (long long)P->C, (long long)P->Cg, (long long)P->O, (long long)P->G);
  P->Og = P->O / P->G;
  P->K = P->P = 1;
  int64_t s = 1;
  for (int d = S - 1; d >= 0; d--) {
    P->xs[d] = s;
    s *= x->shape[2 + d];
  }
  P->xsp[0] = s; /* one input channel */
  for (int d = 0; d < S; d++) {
    P->ks[d] = w->shape[2 + d];
    P->os[d] = y->shape[2 + d];
    P->stride[d] = out->params->ip[d];
    P->dil[d] = out->params->ip[S + d];
    if (P->stride[d] < 1 || P->dil[d] < 1 ||
        (P->os[d] > 0 && (P->os[d] - 1) * P->stride[d] + (P->ks[d] - 1) * P->dil[d] >= x->shape[2 + d]))
      return mx_error(MX_EINVAL, "[%s] spatial axis %d: the windows do not fit the input", op, d);
    P->K *= P->ks[d];
    P->P *= P->os[d];
  }
  P->Kc = P->Cg * P->K;
  if (!mx_blas_fits(P->Kc) || !mx_blas_fits(P->P) || !mx_blas_fits(P->Og))
    return mx_error(MX_EINVAL, "[%s] sizes exceed BLAS's integer range", op);
  /* A 1x1 kernel with unit strides reads (writes) the input as the column matrix itself. */
  P->direct = P->K == 1;
  for (int d = 0; d < S; d++) P->direct &= P->stride[d] == 1 && P->os[d] == x->shape[2 + d];
  /* Column blocks of at most ~8 MB (and at least 256 columns), so memory stays bounded. */
  int64_t pb = P->Kc > 0 ? ((int64_t)8 << 20) / (P->Kc * (int64_t)P->es) : P->P;
  pb = pb < 256 ? 256 : pb;
  P->pbmax = pb > P->P ? P->P : pb;
  return MX_OK;
}

/* A column block from the engine's buffer cache: a fresh mapping per call costs more in page faults than the copy. */
static mx_status column_buffer(const char *op, const conv_plan *P, mx_buffer **buf) {
  *buf = NULL;
  if (P->direct || mx_buffer_alloc((size_t)(P->Kc * P->pbmax) * P->es, buf) == MX_OK) return MX_OK;
  return mx_error(MX_ENOMEM, "[%s] out of memory for a %lld x %lld column block", op, (long long)P->Kc,
                  (long long)P->pbmax);
}

/* Fills P->col with the column block at P->p0 (P->pb columns) of P->x's channels. */
static void fill_columns(conv_plan *P) {
  mx_range_fn fill = P->es == 4 ? im2col_4 : P->es == 8 ? im2col_8 : im2col_16;
  int64_t grain = MX_PARALLEL_GRAIN / P->pb;
  mx_parallel_for(P->Kc, grain > 0 ? grain : 1, fill, P);
}

/* Calls block for each column block of x[n, group g] (built in colbuf unless P is direct): col [Kc, P->pb]
 * with row stride ld, at columns P->p0.. of the output positions. The forward and the kernel gradient share it. */
typedef void (*block_fn)(const conv_plan *P, int64_t n, int64_t g, const char *col, int64_t ld, void *ctx);

static void each_column_block(conv_plan *P, const char *xd, mx_buffer *colbuf, block_fn block, void *ctx) {
  for (int64_t n = 0; n < P->N && !mx_cancelled(); n++)
    for (int64_t g = 0; g < P->G && !mx_cancelled(); g++) {
      P->x = xd + (size_t)((n * P->C + g * P->Cg) * P->xsp[0]) * P->es;
      for (P->p0 = 0; P->p0 < P->P && !mx_cancelled(); P->p0 += P->pbmax) {
        P->pb = P->p0 + P->pbmax <= P->P ? P->pbmax : P->P - P->p0;
        const char *col = P->x + (size_t)P->p0 * P->es;
        int64_t ld = P->P;
        if (!P->direct) {
          P->col = colbuf->data;
          fill_columns(P);
          col = P->col, ld = P->pb;
        }
        block(P, n, g, col, ld, ctx);
      }
    }
}

/* w: the kernel [O, Kc]; y: conv's output [N, O, P] (read as the cotangent by the kernel gradient). */
typedef struct {
  mx_dtype t;
  char *w, *y;
} gemm_args;

/* y[n, group g][:, block] = w_g [Og, Kc] @ col */
static void conv_block(const conv_plan *P, int64_t n, int64_t g, const char *col, int64_t ld, void *ctx) {
  gemm_args *a = ctx;
  gemm(a->t, 0, 0, P->Og, P->pb, P->Kc, a->w + (size_t)(g * P->Og * P->Kc) * P->es, P->Kc, col, ld, 0,
       a->y + (size_t)((n * P->O + g * P->Og) * P->P + P->p0) * P->es, P->P);
}

/* gw_g [Og, Kc] += g[n, group g][:, block] @ col^T */
static void kernel_grad_block(const conv_plan *P, int64_t n, int64_t g, const char *col, int64_t ld, void *ctx) {
  gemm_args *a = ctx;
  gemm(a->t, 0, 1, P->Og, P->Kc, P->pb, a->y + (size_t)((n * P->O + g * P->Og) * P->P + P->p0) * P->es, P->P, col,
       ld, 1, a->w + (size_t)(g * P->Og * P->Kc) * P->es, P->Kc);
}

/* y[n, g*Og .., p] = w_g [Og, Kc] @ col [Kc, p] for each batch element n and group g. */
mx_status mx_k_conv(mx_array *out, mx_array *const *in) {
  conv_plan P;
  mx_status st = conv_plan_init("conv", out, in[0], in[1], out, &P);
  if (st) return st;
  mx_dtype t = (mx_dtype)out->dtype;
  if (out->size == 0) return MX_OK;
  if (P.Kc == 0) {
    memset(mx_data(out), 0, mx_nbytes(out));
    return MX_OK;
  }
  mx_buffer *colbuf = NULL;
  if ((st = column_buffer("conv", &P, &colbuf))) return st;
  gemm_args a = {.t = t, .w = mx_data(in[1]), .y = mx_data(out)};
  each_column_block(&P, mx_data(in[0]), colbuf, conv_block, &a);
  if (colbuf) mx_buffer_release(colbuf);
  return MX_OK;
}

/* conv's kernel gradient: gw_g [Og, Kc] = sum over n of g[n, group g] [Og, P] @ col(x[n, group g])^T [P, Kc],
 * the same columns as the forward conv, so strides, dilations and groups cost nothing extra. */
mx_status mx_k_conv_kernel_grad(mx_array *out, mx_array *const *in) {
  conv_plan P;
  mx_status st = conv_plan_init("conv_kernel_grad", out, in[0], out, in[1], &P);
  if (st) return st;
  mx_dtype t = (mx_dtype)out->dtype;
  if (out->size == 0) return MX_OK;
  memset(mx_data(out), 0, mx_nbytes(out));
  if (P.P == 0 || P.N == 0) return MX_OK;
  mx_buffer *colbuf = NULL;
  if ((st = column_buffer("conv_kernel_grad", &P, &colbuf))) return st;
  gemm_args a = {.t = t, .w = mx_data(out), .y = mx_data(in[1])};
  each_column_block(&P, mx_data(in[0]), colbuf, kernel_grad_block, &a);
  if (colbuf) mx_buffer_release(colbuf);
  return MX_OK;
}

/* conv's input gradient: col = w_g^T [Kc, Og] @ g[n, group g] [Og, P], scatter-added back into the
 * windows' positions (col2im); positions no window reads get zero. */
mx_status mx_k_conv_input_grad(mx_array *out, mx_array *const *in) {
  conv_plan P;
  mx_status st = conv_plan_init("conv_input_grad", out, out, in[1], in[0], &P);
  if (st) return st;
  mx_dtype t = (mx_dtype)out->dtype;
  if (out->size == 0) return MX_OK;
  memset(mx_data(out), 0, mx_nbytes(out));
  if (P.P == 0 || P.Kc == 0 || P.Og == 0) return MX_OK;
  mx_buffer *colbuf = NULL;
  if ((st = column_buffer("conv_input_grad", &P, &colbuf))) return st;
  mx_range_fn scatter = t == MX_F32 ? col2im_f32 : t == MX_F64 ? col2im_f64 : t == MX_C64 ? col2im_c64 : col2im_c128;
  const char *gd = mx_data(in[0]), *wd = mx_data(in[1]);
  char *xd = mx_data(out);
  for (int64_t n = 0; n < P.N && !mx_cancelled(); n++)
    for (int64_t g = 0; g < P.G && !mx_cancelled(); g++) {
      P.xw = xd + (size_t)((n * P.C + g * P.Cg) * P.xsp[0]) * P.es;
      const char *wg = wd + (size_t)(g * P.Og * P.Kc) * P.es;
      const char *gg = gd + (size_t)((n * P.O + g * P.Og) * P.P) * P.es;
      for (P.p0 = 0; P.p0 < P.P && !mx_cancelled(); P.p0 += P.pbmax) {
        P.pb = P.p0 + P.pbmax <= P.P ? P.pbmax : P.P - P.p0;
        if (P.direct) { /* the column block is the input's own [Cg, P] slice */
          gemm(t, 1, 0, P.Kc, P.pb, P.Og, wg, P.Kc, gg + (size_t)P.p0 * P.es, P.P, 0, P.xw + (size_t)P.p0 * P.es, P.P);
          continue;
        }
        P.col = colbuf->data;
        gemm(t, 1, 0, P.Kc, P.pb, P.Og, wg, P.Kc, gg + (size_t)P.p0 * P.es, P.P, 0, P.col, P.pb);
        int64_t grain = MX_PARALLEL_GRAIN / (P.K * P.pb);
        mx_parallel_for(P.Cg, grain > 0 ? grain : 1, scatter, &P);
      }
    }
  if (colbuf) mx_buffer_release(colbuf);
  return MX_OK;
}

/* ---- window reductions -------------------------------------------------------------- */

typedef struct {
  int R;
  int64_t nwin;                     /* elements per window */
  int64_t *woff;                    /* [nwin] offsets of a window's elements from its first */
  int64_t os[MX_MAX_RANK], step[MX_MAX_RANK]; /* output shape; input offset per output step */
  const void *x;
  void *out;
  const void *src;                  /* scatter: the source (or, transposed, the x-shaped values) */
  int transposed;
} win_plan;

/* The input offset of output element o's window. */
static inline int64_t win_base(const win_plan *W, int64_t o) {
  int64_t off = 0;
  for (int d = W->R - 1; d >= 0; d--) {
    off += (o % W->os[d]) * W->step[d];
    o /= W->os[d];
  }
  return off;
}

#define WIN_REDUCE(NAME, T, INIT, ACC)                                   \
  static void NAME(void *ctx, int64_t lo, int64_t hi) {                  \
    const win_plan *W = ctx;                                             \
    const T *x = W->x;                                                   \
    T *out = W->out;                                                     \
    for (int64_t o = lo; o < hi; o++) {                                  \
      const T *b = x + win_base(W, o);                                   \
      T acc = INIT;                                                      \
      for (int64_t j = 0; j < W->nwin; j++) {                            \
        T v = b[W->woff[j]];                                             \
        ACC;                                                             \
      }                                                                  \
      out[o] = acc;                                                      \
    }                                                                    \
  }

/* Integer sums and products wrap (formed in uint64_t, as matmul does); max/min let NaN stick. */
#define WIN_ALL(ID, T)                                                                                    \
  WIN_REDUCE(wsum_##ID, T, (T)0, acc = (T)((uint64_t)acc + (uint64_t)v))                                  \
  WIN_REDUCE(wprod_##ID, T, (T)1, acc = (T)((uint64_t)acc * (uint64_t)v))                                 \
  WIN_REDUCE(wmax_##ID, T, b[0], if (v > acc) acc = v)                                                    \
  WIN_REDUCE(wmin_##ID, T, b[0], if (v < acc) acc = v)
MX_INT_TYPES(WIN_ALL)
#undef WIN_ALL
#define WIN_FLOAT(ID, T)                                                                                  \
  WIN_REDUCE(wsum_##ID, T, (T)0, acc += v)                                                                \
  WIN_REDUCE(wprod_##ID, T, (T)1, acc *= v)                                                               \
  WIN_REDUCE(wmax_##ID, T, b[0], if (v > acc || v != v) acc = acc != acc ? acc : v)                       \
  WIN_REDUCE(wmin_##ID, T, b[0], if (v < acc || v != v) acc = acc != acc ? acc : v)
MX_FLOAT_TYPES(WIN_FLOAT)
#undef WIN_FLOAT
#undef WIN_REDUCE

/* Plans windows of out over x: params ip = window, strides, dilations (R each). */
static mx_status win_setup(const char *op, const mx_array *x, const mx_array *o, const mx_params *p, win_plan *W) {
  int R = x->ndim;
  if (!p || p->nip != 3 * R || o->ndim != R)
    return mx_error(MX_EINVAL, "[%s] needs a window, strides and dilations per axis", op);
  const int64_t *win = p->ip, *str = win + R, *dil = win + 2 * R;
  int64_t xs[MX_MAX_RANK], s = 1;
  for (int d = R - 1; d >= 0; d--) {
    xs[d] = s;
    s *= x->shape[d];
  }
  W->R = R;
  W->nwin = 1;
  for (int d = 0; d < R; d++) {
    if (win[d] < 1 || str[d] < 1 || dil[d] < 1 ||
        (o->shape[d] > 0 && (o->shape[d] - 1) * str[d] + (win[d] - 1) * dil[d] >= x->shape[d]))
      return mx_error(MX_EINVAL, "[%s] axis %d: the windows do not fit the input", op, d);
    W->os[d] = o->shape[d];
    W->step[d] = str[d] * xs[d];
    W->nwin *= win[d];
  }
  W->woff = malloc(sizeof(int64_t) * (size_t)(W->nwin > 0 ? W->nwin : 1));
  if (!W->woff) return mx_error(MX_ENOMEM, "[%s] out of memory for a window of %lld elements", op, (long long)W->nwin);
  for (int64_t j = 0; j < W->nwin; j++) {
    int64_t r = j, off = 0;
    for (int d = R - 1; d >= 0; d--) {
      off += (r % win[d]) * dil[d] * xs[d];
      r /= win[d];
    }
    W->woff[j] = off;
  }
  return MX_OK;
}

static mx_status window_kernel(mx_op op, mx_array *out, mx_array *const *in) {
  const char *name = mx_ops[op].name;
  const mx_array *x = in[0];
  if (x->dtype != out->dtype)
    return mx_error(MX_EINVAL, "[%s] input dtype %s must equal the output's %s", name, mx_dtype_name((mx_dtype)x->dtype),
                    mx_dtype_name((mx_dtype)out->dtype));
  win_plan W = {0};
  mx_status st = win_setup(name, x, out, out->params, &W);
  if (st) return st;
  W.x = mx_data(x);
  W.out = mx_data(out);
  mx_range_fn fn = NULL;
  switch ((mx_dtype)out->dtype) {
#define CASE(ID, T)                                                                                   \
  case MX_##ID:                                                                                       \
    fn = op == MX_OP_WINDOW_SUM ? wsum_##ID : op == MX_OP_WINDOW_PRODUCT ? wprod_##ID                 \
         : op == MX_OP_WINDOW_MAX ? wmax_##ID : wmin_##ID;                                            \
    break;
    MX_INT_TYPES(CASE)
    MX_FLOAT_TYPES(CASE)
#undef CASE
  default:
    break;
  }
  if (!fn) {
    free(W.woff);
    return mx_error(MX_EINVAL, "[%s] has no kernel for %s; cast to a real dtype with as_type", name,
                    mx_dtype_name((mx_dtype)out->dtype));
  }
  if (out->size > 0) {
    int64_t grain = MX_PARALLEL_GRAIN / (W.nwin > 0 ? W.nwin : 1);
    if (W.nwin == 0) memset(W.out, 0, mx_nbytes(out)); /* not reached: windows have >= 1 element */
    else mx_parallel_for(out->size, grain > 0 ? grain : 1, fn, &W);
  }
  free(W.woff);
  return MX_OK;
}

mx_status mx_k_window_sum(mx_array *out, mx_array *const *in) { return window_kernel(MX_OP_WINDOW_SUM, out, in); }
mx_status mx_k_window_product(mx_array *out, mx_array *const *in) { return window_kernel(MX_OP_WINDOW_PRODUCT, out, in); }
mx_status mx_k_window_max(mx_array *out, mx_array *const *in) { return window_kernel(MX_OP_WINDOW_MAX, out, in); }
mx_status mx_k_window_min(mx_array *out, mx_array *const *in) { return window_kernel(MX_OP_WINDOW_MIN, out, in); }

/* ---- window scatter ------------------------------------------------------------------- */

/* Nx's select: a later element replaces the choice when it compares >= (<=), so the last
 * extreme of a window wins. Scatter adds serially (windows overlap); the transpose gathers. */
#define WIN_SCATTER(ID, T)                                                                    \
  static void wscatter_##ID(const win_plan *W, int is_max, int64_t nout) {                   \
    const T *x = W->x, *src = W->src;                                                        \
    T *out = W->out;                                                                         \
    for (int64_t o = 0; o < nout; o++) {                                                     \
      int64_t base = win_base(W, o), sel = base + W->woff[0];                                \
      T best = x[sel];                                                                       \
      for (int64_t j = 1; j < W->nwin; j++) {                                                \
        T v = x[base + W->woff[j]];                                                          \
        if (is_max ? v >= best : v <= best) best = v, sel = base + W->woff[j];               \
      }                                                                                      \
      if (W->transposed) out[o] = src[sel];                                                  \
      else out[sel] = (T)(out[sel] + src[o]);                                                \
    }                                                                                        \
  }
MX_INT_TYPES(WIN_SCATTER)
MX_FLOAT_TYPES(WIN_SCATTER)
#undef WIN_SCATTER

static mx_status scatter_kernel(mx_op op, mx_array *out, mx_array *const *in) {
  const char *name = mx_ops[op].name;
  const mx_array *x = in[0], *v = in[1];
  int transposed = out->params && (out->params->flags & 1);
  const mx_array *wins = transposed ? out : v; /* the window-output shape */
  const mx_array *full = transposed ? v : out;  /* x's shape */
  if (x->dtype != out->dtype || v->dtype != out->dtype || full->ndim != x->ndim ||
      memcmp(full->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))
    return mx_error(MX_EINVAL, "[%s] inputs must share the output's dtype and x's shape", name);
  win_plan W = {0};
  mx_status st = win_setup(name, x, wins, out->params, &W);
  if (st) return st;
  W.x = mx_data(x);
  W.src = mx_data(v);
  W.out = mx_data(out);
  W.transposed = transposed;
  if (!transposed) memset(W.out, 0, mx_nbytes(out));
  int is_max = op == MX_OP_WINDOW_SCATTER_MAX, ok = 1;
  switch ((mx_dtype)out->dtype) {
#define CASE(ID, T)                                   \
  case MX_##ID:                                       \
    if (W.nwin > 0) wscatter_##ID(&W, is_max, wins->size); \
    break;
    MX_INT_TYPES(CASE)
    MX_FLOAT_TYPES(CASE)
#undef CASE
  default:
    ok = 0;
  }
  free(W.woff);
  if (!ok)
    return mx_error(MX_EINVAL, "[%s] has no kernel for %s; cast to a real dtype with as_type", name,
                    mx_dtype_name((mx_dtype)out->dtype));
  return MX_OK;
}

mx_status mx_k_window_scatter_max(mx_array *out, mx_array *const *in) {
  return scatter_kernel(MX_OP_WINDOW_SCATTER_MAX, out, in);
}
mx_status mx_k_window_scatter_min(mx_array *out, mx_array *const *in) {
  return scatter_kernel(MX_OP_WINDOW_SCATTER_MIN, out, in);
}
