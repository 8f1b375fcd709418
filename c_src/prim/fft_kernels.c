/* fft_kernels.c: the FFT primitives (FFT, RFFT, IRFFT) on top of prim/fft.h.
 *
 * The transforms run in double on interleaved (re, im) pairs. An array is
 * viewed as [outer, n, inner] around the transform axis; when inner == 1 and
 * the data is already double, fft.h reads and writes the arrays in place of
 * copies. Otherwise the rows are gathered into a double scratch laid out
 * [outer * inner, n] (converting f32/c64 exactly to double), transformed in
 * place there, and scattered back (rounding once to float for c64/f32 results),
 * so c64 results are the double results correctly rounded. */
#include <stdio.h>
#include <string.h>

#include "fft.h"
#include "kernels.h"

/* An element layout: `comps` scalars (1 real, 2 complex) of float or double. */
typedef struct {
  int dbl, comps;
} layout;

static int layout_of(mx_dtype t, layout *l) {
  switch (t) {
  case MX_F32: *l = (layout){0, 1}; return 1;
  case MX_F64: *l = (layout){1, 1}; return 1;
  case MX_C64: *l = (layout){0, 2}; return 1;
  case MX_C128: *l = (layout){1, 2}; return 1;
  default: return 0;
  }
}

/* Moves rows between an array [outer, len, inner] and a double scratch [outer * inner, len]. */
typedef struct {
  layout l;
  char *arr;
  double *buf;
  int64_t len, inner;
  int to_buf; /* 1: gather arr -> buf; 0: scatter buf -> arr */
} move_ctx;

static void move_rows(void *vctx, int64_t lo, int64_t hi) {
  const move_ctx *c = vctx;
  const int k = c->l.comps;
  for (int64_t r = lo; r < hi; r++) {
    int64_t o = r / c->inner, i = r % c->inner;
    int64_t base = (o * c->len * c->inner + i) * k, step = c->inner * k;
    double *b = c->buf + r * c->len * k;
    if (c->l.dbl) {
      double *a = (double *)c->arr + base;
      for (int64_t t = 0; t < c->len; t++)
        for (int j = 0; j < k; j++) {
          if (c->to_buf) b[t * k + j] = a[t * step + j];
          else a[t * step + j] = b[t * k + j];
        }
    } else {
      float *a = (float *)c->arr + base;
      for (int64_t t = 0; t < c->len; t++)
        for (int j = 0; j < k; j++) {
          if (c->to_buf) b[t * k + j] = (double)a[t * step + j];
          else a[t * step + j] = (float)b[t * k + j];
        }
    }
  }
}

static void move(layout l, void *arr, double *buf, int64_t rows, int64_t len, int64_t inner, int to_buf) {
  move_ctx c = {l, arr, buf, len, inner, to_buf};
  int64_t grain = MX_PARALLEL_GRAIN / (len > 0 ? len : 1);
  mx_parallel_for(rows, grain > 0 ? grain : 1, move_rows, &c);
}

/* Scratch from the engine's allocator (counted, under the memory limit). */
static mx_status scratch(const char *op, int64_t doubles, mx_buffer **b) {
  if (mx_buffer_alloc((size_t)doubles * sizeof(double), b) == MX_OK) return MX_OK;
  return mx_error(MX_ENOMEM, "[%s] out of memory for %lld bytes of transform scratch", op,
                  (long long)doubles * (long long)sizeof(double));
}

/* fft.h's message ("[fft] ...") under this primitive's name. */
static mx_status renamed(const char *op, mx_status st) {
  char why[512];
  const char *m = mx_last_error();
  snprintf(why, sizeof why, "%s", strncmp(m, "[fft] ", 6) == 0 ? m + 6 : m);
  return mx_error(st, "[%s] %s", op, why);
}

typedef enum { K_C2C, K_R2C, K_C2R } fft_kind;

/* Shared driver: checks the node, views it as [outer, n_in / n_out, inner], and runs the transform. */
static mx_status run_fft(const char *op, fft_kind kind, mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  mx_dtype it = (mx_dtype)a->dtype, ot = (mx_dtype)out->dtype;
  layout li, lo;
  if (!out->params) return mx_error(MX_EINVAL, "[%s] the node has no parameters; build it with mx_%s", op, op);
  int axis = out->params->axis, inverse = out->params->flags & 1;
  double scale = out->params->f[0];
  int want_in = kind == K_R2C ? (it == MX_F32 || it == MX_F64) : mx_is_complex(it);
  mx_dtype want_out = kind == K_C2C ? it : kind == K_R2C ? (it == MX_F64 ? MX_C128 : MX_C64) : (it == MX_C128 ? MX_F64 : MX_F32);
  if (!want_in || !layout_of(it, &li) || ot != want_out || !layout_of(ot, &lo))
    return mx_error(MX_EINVAL, "[%s] cannot transform %s into %s; build it with mx_%s", op, mx_dtype_name(it),
                    mx_dtype_name(ot), op);
  if (a->ndim != out->ndim || axis < 0 || axis >= a->ndim)
    return mx_error(MX_EINVAL, "[%s] axis %d does not fit ranks %d and %d", op, axis, a->ndim, out->ndim);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a->ndim; d++) {
    if (d != axis && a->shape[d] != out->shape[d])
      return mx_error(MX_EINVAL, "[%s] input and output differ on axis %d (%lld vs %lld)", op, d,
                      (long long)a->shape[d], (long long)out->shape[d]);
    if (d < axis) outer *= a->shape[d];
    if (d > axis) inner *= a->shape[d];
  }
  int64_t m_in = a->shape[axis], m_out = out->shape[axis];
  int64_t n = kind == K_C2R ? m_out : m_in; /* the transform's (real) length */
  int64_t half = n / 2 + 1;
  if ((kind == K_C2C && m_out != n) || (kind == K_R2C && m_out != half) || (kind == K_C2R && m_in != half))
    return mx_error(MX_EINVAL, "[%s] axis %d has %lld elements in and %lld out, which no length-%lld transform gives", op,
                    axis, (long long)m_in, (long long)m_out, (long long)n);
  if (out->size == 0) return MX_OK;
  if (n < 1) return mx_error(MX_EINVAL, "[%s] transform length must be >= 1, got %lld", op, (long long)n);
  if (!(scale == scale) || scale - scale != 0) return mx_error(MX_EINVAL, "[%s] scale %g is not finite", op, scale);

  mx_fft_plan *plan = NULL;
  mx_status st = mx_fft_plan_get(n, &plan);
  if (st) return renamed(op, st);
  int64_t rows = outer * inner;
  /* Direct when both sides are double and rows are contiguous. */
  int direct_in = li.dbl && inner == 1, direct_out = lo.dbl && inner == 1;
  mx_buffer *bin = NULL, *bout = NULL;
  const double *src = mx_data(a);
  double *dst = mx_data(out);
  int64_t in_doubles = rows * m_in * li.comps, out_doubles = rows * m_out * lo.comps;
  if (!direct_in) {
    st = scratch(op, in_doubles, &bin);
    if (!st) {
      move(li, (void *)mx_data(a), bin->data, rows, m_in, inner, 1);
      src = bin->data;
    }
  }
  if (!st && !direct_out) {
    if (kind == K_C2C && bin) { /* c2c runs in place in the input scratch */
      dst = bin->data;
    } else {
      st = scratch(op, out_doubles, &bout);
      if (!st) dst = bout->data;
    }
  }
  if (!st) {
    if (kind == K_C2C) st = mx_fft_c2c(plan, src, dst, rows, 1, n, inverse, scale);
    else if (kind == K_R2C) st = mx_fft_r2c(plan, src, dst, rows, 1, n, scale);
    else st = mx_fft_c2r(plan, src, dst, rows, 1, half, scale);
    if (st) st = renamed(op, st);
  }
  if (!st && !direct_out) move(lo, mx_data(out), dst, rows, m_out, inner, 0);
  if (bin) mx_buffer_release(bin);
  if (bout) mx_buffer_release(bout);
  mx_fft_plan_release(plan);
  return st;
}

mx_status mx_k_fft(mx_array *out, mx_array *const *in) { return run_fft("fft", K_C2C, out, in); }
mx_status mx_k_rfft(mx_array *out, mx_array *const *in) { return run_fft("rfft", K_R2C, out, in); }
mx_status mx_k_irfft(mx_array *out, mx_array *const *in) { return run_fft("irfft", K_C2R, out, in); }
