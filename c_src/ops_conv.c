/* ops_conv.c: convolution and window reductions. The public constructors follow Nx
 * (Nx.conv, Nx.window_*, Nx.window_scatter_*): padding and input dilation become a pad node,
 * batch groups become feature groups by a transpose, and the primitives see only valid windows. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops_conv.h"
#include "ops_internal.h"

#define LIMIT ((int64_t)1 << 40) /* strides, dilations and windows beyond this are certainly mistakes */

static void release_all(mx_array **a, int n) {
  for (int i = 0; i < n; i++) mx_release(a[i]);
}

/* The windows' output length: how many positions `span` (>= 1) fits into `len` with `stride`. */
static int64_t fit(int64_t len, int64_t span, int64_t stride) { return len >= span ? (len - span) / stride + 1 : 0; }

/* a * b stays far from overflow (both >= 0): spans and dilated lengths are checked with it. */
static int small_product(int64_t a, int64_t b) { return a >= 0 && b >= 0 && (b == 0 || a <= LIMIT / b); }

/* A READY scalar of dtype t from its exact bits (s64/u64 extremes have no double). */
static mx_status scalar_bits(mx_dtype t, int kind, mx_array **out) {
  /* kind: 0 zero, 1 one, 2 lowest (-inf for floats), 3 highest (+inf) */
  union {
    int8_t s8; int16_t s16; int32_t s32; int64_t s64; uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    float f32; double f64;
  } v;
  memset(&v, 0, sizeof v);
  switch (t) {
  case MX_S8: v.s8 = kind == 1 ? 1 : kind == 2 ? INT8_MIN : kind == 3 ? INT8_MAX : 0; break;
  case MX_S16: v.s16 = kind == 1 ? 1 : kind == 2 ? INT16_MIN : kind == 3 ? INT16_MAX : 0; break;
  case MX_S32: v.s32 = kind == 1 ? 1 : kind == 2 ? INT32_MIN : kind == 3 ? INT32_MAX : 0; break;
  case MX_S64: v.s64 = kind == 1 ? 1 : kind == 2 ? INT64_MIN : kind == 3 ? INT64_MAX : 0; break;
  case MX_U8: v.u8 = kind == 1 ? 1 : kind == 3 ? UINT8_MAX : 0; break;
  case MX_U16: v.u16 = kind == 1 ? 1 : kind == 3 ? UINT16_MAX : 0; break;
  case MX_U32: v.u32 = kind == 1 ? 1 : kind == 3 ? UINT32_MAX : 0; break;
  case MX_U64: v.u64 = kind == 1 ? 1 : kind == 3 ? UINT64_MAX : 0; break;
  case MX_F32: v.f32 = kind == 1 ? 1.0f : kind == 2 ? -INFINITY : kind == 3 ? INFINITY : 0.0f; break;
  case MX_F64: v.f64 = kind == 1 ? 1.0 : kind == 2 ? -INFINITY : kind == 3 ? INFINITY : 0.0; break;
  default:
    return mx_full(t, 0, NULL, kind == 1 ? 1 : 0, out); /* complex zero and one */
  }
  return mx_from_data(t, 0, NULL, &v, (size_t)mx_dtype_size(t), out);
}

/* ---- convolution ------------------------------------------------------------------------- */

mx_status mx_conv_node(mx_array *x, mx_array *w, const int64_t *strides, const int64_t *kernel_dilation,
                       int64_t groups, mx_array **out) {
  char b1[128], b2[128];
  int S = x->ndim - 2;
  if (x->ndim != w->ndim || x->ndim < 3 || x->dtype != w->dtype)
    return mx_error(MX_EINVAL, "[conv] input %s and kernel %s need the same rank (>= 3) and dtype",
                    mx_describe(x, b1, sizeof b1), mx_describe(w, b2, sizeof b2));
  if (groups < 1 || x->shape[1] != w->shape[1] * groups || w->shape[0] % groups)
    return mx_error(MX_EINVAL,
                    "[conv] input %s and kernel %s do not fit %lld feature groups: the input's channels must be "
                    "the kernel's input channels times the groups, and the kernel's output channels a multiple of them",
                    mx_describe(x, b1, sizeof b1), mx_describe(w, b2, sizeof b2), (long long)groups);
  mx_params p = {.nip = 2 * S, .axis = (int32_t)groups};
  int64_t shape[MX_MAX_RANK] = {x->shape[0], w->shape[0]}, positions = 1, taps = 1;
  for (int d = 0; d < S; d++) {
    int64_t k = w->shape[2 + d], span = k > 0 ? (k - 1) * kernel_dilation[d] + 1 : 1;
    p.ip[d] = strides[d];
    p.ip[S + d] = kernel_dilation[d];
    shape[2 + d] = fit(x->shape[2 + d], span, strides[d]);
    positions *= shape[2 + d];
    taps *= k;
  }
  mx_status st = mx_node_new(MX_OP_CONV, (mx_dtype)x->dtype, x->ndim, shape, 2, (mx_array *[]){x, w}, &p, out);
  if (st) return st;
  /* as matmul: ~0.025 ns a multiply-add through BLAS, plus the column matrix's copies */
  double macs = (double)shape[0] * (double)shape[1] * (double)positions * (double)(w->shape[1] * taps);
  double cost = macs / 4 + (double)shape[0] * (double)(x->shape[1] * taps) * (double)positions * 4;
  (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return MX_OK;
}

/* The gradient nodes' shapes must be those of a conv of x [N, C, s] with w [O, C/G, k] into y [N, O, o]. */
static mx_status conv_shapes_agree(const char *op, int r, const int64_t *xs, const int64_t *ws, const int64_t *ys,
                                   const int64_t *strides, const int64_t *dil, int64_t groups) {
  int ok = r >= 3 && r <= MX_MAX_RANK && groups >= 1 && xs[1] == ws[1] * groups && ws[0] % groups == 0 &&
           ys[0] == xs[0] && ys[1] == ws[0];
  for (int d = 0; ok && d < r - 2; d++) {
    int64_t k = ws[2 + d], span = k > 0 ? (k - 1) * dil[d] + 1 : 1;
    ok = strides[d] >= 1 && dil[d] >= 1 && ys[2 + d] == fit(xs[2 + d], span, strides[d]);
  }
  if (ok) return MX_OK;
  char b1[128], b2[128], b3[128];
  return mx_error(MX_EINVAL, "[%s] input %s, kernel %s and output %s are not those of a conv with %lld groups", op,
                  mx_describe_shape(r, xs, b1, sizeof b1), mx_describe_shape(r, ws, b2, sizeof b2),
                  mx_describe_shape(r, ys, b3, sizeof b3), (long long)groups);
}

/* The gradient nodes: params as conv's; cost as the forward conv's (the same gemm sizes). */
static mx_status conv_grad_node(mx_op op, mx_array *a, mx_array *b, int r, const int64_t *shape, const int64_t *xs,
                                const int64_t *ws, const int64_t *ys, const int64_t *strides, const int64_t *dil,
                                int64_t groups, mx_array **out) {
  const char *name = mx_ops[op].name;
  char b1[128], b2[128];
  if (a->ndim != r || b->ndim != r || a->dtype != b->dtype)
    return mx_error(MX_EINVAL, "[%s] inputs %s and %s need rank %d and one dtype", name, mx_describe(a, b1, sizeof b1),
                    mx_describe(b, b2, sizeof b2), r);
  mx_status st = conv_shapes_agree(name, r, xs, ws, ys, strides, dil, groups);
  if (st) return st;
  int S = r - 2;
  mx_params p = {.nip = 2 * S, .axis = (int32_t)groups};
  double taps = 1, positions = 1;
  for (int d = 0; d < S; d++) {
    p.ip[d] = strides[d];
    p.ip[S + d] = dil[d];
    taps *= (double)ws[2 + d];
    positions *= (double)ys[2 + d];
  }
  st = mx_node_new(op, (mx_dtype)a->dtype, r, shape, 2, (mx_array *[]){a, b}, &p, out);
  if (st) return st;
  double cost = (double)ys[0] * (double)ys[1] * positions * (double)ws[1] * taps / 4 +
                (double)ys[0] * (double)xs[1] * taps * positions * 4;
  (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return MX_OK;
}

mx_status mx_conv_input_grad_node(mx_array *g, mx_array *w, const int64_t *x_shape, const int64_t *strides,
                                  const int64_t *kernel_dilation, int64_t groups, mx_array **out) {
  return conv_grad_node(MX_OP_CONV_INPUT_GRAD, g, w, g->ndim, x_shape, x_shape, w->shape, g->shape, strides,
                        kernel_dilation, groups, out);
}

mx_status mx_conv_kernel_grad_node(mx_array *x, mx_array *g, const int64_t *w_shape, const int64_t *strides,
                                   const int64_t *kernel_dilation, int64_t groups, mx_array **out) {
  return conv_grad_node(MX_OP_CONV_KERNEL_GRAD, x, g, x->ndim, w_shape, x->shape, w_shape, g->shape, strides,
                        kernel_dilation, groups, out);
}

static mx_status check_positive(const char *op, const char *what, int n, const int64_t *v) {
  for (int i = 0; i < n; i++)
    if (v[i] < 1 || v[i] > LIMIT)
      return mx_error(MX_EINVAL, "[%s] %s must be positive integers (one per spatial axis), got %lld on axis %d", op,
                      what, (long long)v[i], i);
  return MX_OK;
}

mx_status mx_conv(mx_array *x, mx_array *w, const int64_t *strides, const int64_t *pad_lo, const int64_t *pad_hi,
                  const int64_t *input_dilation, const int64_t *kernel_dilation, int64_t feature_groups,
                  int64_t batch_groups, mx_array **out) {
  char b1[128], b2[128];
  mx_array *xw[2] = {x, w};
  mx_status st = mx_check_live("conv", 2, xw);
  if (st) return st;
  int S = x->ndim - 2;
  if (x->ndim != w->ndim || x->ndim < 3 || x->ndim > MX_MAX_RANK - 3 + 2)
    return mx_error(MX_EINVAL,
                    "[conv] input %s and kernel %s need the same rank, 3 to %d ({batch, channels, spatial...}); "
                    "add axes with new_axis",
                    mx_describe(x, b1, sizeof b1), mx_describe(w, b2, sizeof b2), MX_MAX_RANK - 1);
  if ((st = check_positive("conv", "strides", S, strides)) || (st = check_positive("conv", "input dilations", S, input_dilation)) ||
      (st = check_positive("conv", "kernel dilations", S, kernel_dilation)))
    return st;
  if (feature_groups < 1 || batch_groups < 1 || (feature_groups > 1 && batch_groups > 1))
    return mx_error(MX_EINVAL,
                    "[conv] feature_group_size (%lld) and batch_group_size (%lld) must be >= 1, and at most one of "
                    "them > 1",
                    (long long)feature_groups, (long long)batch_groups);
  int64_t N = x->shape[0], C = x->shape[1], O = w->shape[0], Ck = w->shape[1];
  if (C != Ck * feature_groups || O % feature_groups)
    return mx_error(MX_EINVAL,
                    "[conv] input %s and kernel %s: the input's %lld channels must be the kernel's %lld input channels "
                    "times feature_group_size %lld, and the kernel's %lld output channels divisible by it",
                    mx_describe(x, b1, sizeof b1), mx_describe(w, b2, sizeof b2), (long long)C, (long long)Ck,
                    (long long)feature_groups, (long long)O);
  if (N % batch_groups || O % batch_groups)
    return mx_error(MX_EINVAL,
                    "[conv] batch_group_size %lld must divide the input's batch (%lld) and the kernel's output "
                    "channels (%lld)",
                    (long long)batch_groups, (long long)N, (long long)O);
  int64_t lo[MX_MAX_RANK] = {0}, hi[MX_MAX_RANK] = {0}, interior[MX_MAX_RANK] = {0};
  int padded = 0;
  for (int d = 0; d < S; d++) {
    int64_t n = x->shape[2 + d], k = w->shape[2 + d];
    if (!small_product(n, input_dilation[d]) || !small_product(k, kernel_dilation[d]))
      return mx_error(MX_EINVAL, "[conv] the dilations on spatial axis %d make it larger than %lld", d, (long long)LIMIT);
    int64_t len = (n > 0 ? (n - 1) * input_dilation[d] + 1 : 0) + pad_lo[d] + pad_hi[d];
    if (pad_lo[d] < -LIMIT || pad_lo[d] > LIMIT || pad_hi[d] < -LIMIT || pad_hi[d] > LIMIT || len < 0)
      return mx_error(MX_EINVAL, "[conv] padding {%lld, %lld} on spatial axis %d crops more than the input's %lld",
                      (long long)pad_lo[d], (long long)pad_hi[d], d, (long long)n);
    lo[2 + d] = pad_lo[d];
    hi[2 + d] = pad_hi[d];
    interior[2 + d] = input_dilation[d] - 1;
    padded |= lo[2 + d] || hi[2 + d] || interior[2 + d];
  }
  mx_dtype storage = mx_promote((mx_dtype)x->dtype, (mx_dtype)w->dtype);
  if (!mx_is_float(storage) && !mx_is_complex(storage)) storage = MX_F32;
  mx_dtype compute = mx_compute_type(storage);
  mx_array *t[8] = {0};
  int nt = 0;
  mx_array *xc = NULL, *wc = NULL, *y = NULL;
  st = mx_cast(x, compute, &xc);
  if (!st) st = mx_cast(w, compute, &wc);
  t[nt++] = xc, t[nt++] = wc;
  if (!st && padded) {
    mx_array *zero = NULL, *xp = NULL;
    st = scalar_bits(compute, 0, &zero);
    if (!st) st = mx_pad(xc, zero, lo, hi, interior, &xp);
    mx_release(zero);
    t[nt++] = xp;
    xc = xp;
  }
  if (!st && batch_groups > 1) { /* [bg * N', C, s] -> [N', bg * C, s]: batch group j meets output group j */
    int64_t s1[MX_MAX_RANK] = {batch_groups, N / batch_groups}, s2[MX_MAX_RANK] = {N / batch_groups, batch_groups * C};
    int perm[MX_MAX_RANK] = {1, 0};
    for (int d = 0; d < S + 1; d++) s1[2 + d] = xc->shape[1 + d], perm[2 + d] = 2 + d;
    for (int d = 0; d < S; d++) s2[2 + d] = xc->shape[2 + d];
    mx_array *r = NULL, *tr = NULL, *r2 = NULL;
    st = mx_reshape(xc, S + 3, s1, &r);
    if (!st) st = mx_transpose(r, perm, &tr);
    if (!st) st = mx_reshape(tr, S + 2, s2, &r2);
    t[nt++] = r, t[nt++] = tr, t[nt++] = r2;
    xc = r2;
  }
  if (!st) st = mx_conv_node(xc, wc, strides, kernel_dilation, feature_groups * batch_groups, &y);
  if (!st) st = mx_cast(y, storage, out);
  mx_release(y);
  release_all(t, nt);
  return st;
}

/* ---- window reductions --------------------------------------------------------------------- */

static int is_window(mx_op op) {
  return op == MX_OP_WINDOW_SUM || op == MX_OP_WINDOW_PRODUCT || op == MX_OP_WINDOW_MAX || op == MX_OP_WINDOW_MIN;
}
static int is_scatter(mx_op op) { return op == MX_OP_WINDOW_SCATTER_MAX || op == MX_OP_WINDOW_SCATTER_MIN; }

/* The windows' output shape over x; an error naming op if a window has no element. */
static void window_shape(const mx_array *x, const int64_t *window, const int64_t *strides, const int64_t *dil,
                         int64_t *shape) {
  for (int d = 0; d < x->ndim; d++) shape[d] = fit(x->shape[d], (window[d] - 1) * dil[d] + 1, strides[d]);
}

static mx_params window_params(int R, const int64_t *window, const int64_t *strides, const int64_t *dil) {
  mx_params p = {.nip = 3 * R};
  for (int d = 0; d < R; d++) p.ip[d] = window[d], p.ip[R + d] = strides[d], p.ip[2 * R + d] = dil[d];
  return p;
}

mx_status mx_window_node(mx_op op, mx_array *x, const int64_t *window, const int64_t *strides,
                         const int64_t *dilations, mx_array **out) {
  int64_t shape[MX_MAX_RANK], nwin = 1;
  window_shape(x, window, strides, dilations, shape);
  for (int d = 0; d < x->ndim; d++) nwin *= window[d];
  mx_params p = window_params(x->ndim, window, strides, dilations);
  mx_status st = mx_node_new(op, (mx_dtype)x->dtype, x->ndim, shape, 1, &x, &p, out);
  if (!st) (*out)->cost = (double)(*out)->size * (double)nwin < 1e18 ? (*out)->size * nwin * 4 : (int64_t)4e18;
  return st;
}

mx_status mx_window_scatter_node(mx_op op, mx_array *x, mx_array *v, const int64_t *window, const int64_t *strides,
                                 const int64_t *dilations, int transposed, mx_array **out) {
  int64_t shape[MX_MAX_RANK], nwin = 1;
  window_shape(x, window, strides, dilations, shape);
  for (int d = 0; d < x->ndim; d++) nwin *= window[d];
  const mx_array *wins = transposed ? NULL : v, *full = transposed ? v : NULL;
  char b1[128], b2[128];
  if ((wins && (wins->ndim != x->ndim || memcmp(wins->shape, shape, sizeof(int64_t) * (size_t)x->ndim))) ||
      (full && (full->ndim != x->ndim || memcmp(full->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))) ||
      v->dtype != x->dtype)
    return mx_error(MX_EINVAL, "[%s] source %s does not match the windows of %s (%s)", mx_ops[op].name,
                    mx_describe(v, b1, sizeof b1), mx_describe(x, b2, sizeof b2),
                    mx_describe_shape(x->ndim, shape, (char[128]){0}, 128));
  mx_params p = window_params(x->ndim, window, strides, dilations);
  p.flags = transposed ? 1 : 0;
  mx_array *in[2] = {x, v};
  mx_status st = mx_node_new(op, (mx_dtype)x->dtype, x->ndim, transposed ? shape : x->shape, 2, in, &p, out);
  double cost = (double)(transposed ? (*out)->size : v->size) * (double)nwin * 4 + (double)x->size * 2;
  if (!st) (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return st;
}

/* Shared checks of the public window functions; pads x (in its compute dtype) with `fill`. */
static mx_status window_prepare(const char *op, mx_array *x, const int64_t *window, const int64_t *strides,
                                const int64_t *pad_lo, const int64_t *pad_hi, const int64_t *dil, int fill,
                                mx_dtype compute, mx_array **padded) {
  char b1[128];
  int R = x->ndim;
  mx_status st;
  if ((st = check_positive(op, "window dimensions", R, window)) || (st = check_positive(op, "strides", R, strides)) ||
      (st = check_positive(op, "window dilations", R, dil)))
    return st;
  int any = 0;
  for (int d = 0; d < R; d++) {
    if (!small_product(window[d], dil[d]))
      return mx_error(MX_EINVAL, "[%s] window %lld with dilation %lld on axis %d spans more than %lld", op,
                      (long long)window[d], (long long)dil[d], d, (long long)LIMIT);
    int64_t len = x->shape[d] + pad_lo[d] + pad_hi[d];
    if (pad_lo[d] < -LIMIT || pad_lo[d] > LIMIT || pad_hi[d] < -LIMIT || pad_hi[d] > LIMIT || len < 0)
      return mx_error(MX_EINVAL, "[%s] padding {%lld, %lld} on axis %d crops more than %s has", op,
                      (long long)pad_lo[d], (long long)pad_hi[d], d, mx_describe(x, b1, sizeof b1));
    any |= pad_lo[d] || pad_hi[d];
  }
  mx_array *xc = NULL;
  st = mx_cast(x, compute, &xc);
  if (st || !any) {
    *padded = xc;
    return st;
  }
  int64_t zero[MX_MAX_RANK] = {0};
  mx_array *v = NULL;
  st = scalar_bits(compute, fill, &v);
  if (!st) st = mx_pad(xc, v, pad_lo, pad_hi, zero, padded);
  mx_release(v);
  mx_release(xc);
  return st;
}

mx_status mx_window(mx_op op, mx_array *x, const int64_t *window, const int64_t *strides, const int64_t *pad_lo,
                    const int64_t *pad_hi, const int64_t *dilations, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || !is_window(op))
    return mx_error(MX_EINVAL, "[window] op must be window_sum, window_product, window_max or window_min");
  const char *name = mx_ops[op].name;
  mx_status st = mx_check_live(name, 1, &x);
  if (st) return st;
  if (mx_is_complex((mx_dtype)x->dtype)) return mx_complex_unsupported(op, x);
  mx_dtype storage = x->dtype == MX_BOOL ? MX_U8 : (mx_dtype)x->dtype, compute = mx_compute_type(storage);
  int fill = op == MX_OP_WINDOW_SUM ? 0 : op == MX_OP_WINDOW_PRODUCT ? 1 : op == MX_OP_WINDOW_MAX ? 2 : 3;
  mx_array *xp = NULL, *y = NULL;
  st = window_prepare(name, x, window, strides, pad_lo, pad_hi, dilations, fill, compute, &xp);
  if (!st) st = mx_window_node(op, xp, window, strides, dilations, &y);
  if (!st) st = mx_cast(y, storage, out);
  mx_release(xp);
  mx_release(y);
  return st;
}

mx_status mx_window_scatter(mx_op op, mx_array *x, mx_array *source, mx_array *init, const int64_t *window,
                            const int64_t *strides, const int64_t *pad_lo, const int64_t *pad_hi, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || !is_scatter(op))
    return mx_error(MX_EINVAL, "[window_scatter] op must be window_scatter_max or window_scatter_min");
  const char *name = mx_ops[op].name;
  mx_array *all[3] = {x, source, init};
  mx_status st = mx_check_live(name, 3, all);
  if (st) return st;
  char b1[128];
  if (init->ndim != 0)
    return mx_error(MX_EINVAL, "[%s] init_value must be a scalar, got %s", name, mx_describe(init, b1, sizeof b1));
  for (int i = 0; i < 3; i++)
    if (mx_is_complex((mx_dtype)all[i]->dtype)) return mx_complex_unsupported(op, all[i]);
  mx_dtype storage = mx_promote(mx_promote((mx_dtype)x->dtype, (mx_dtype)source->dtype), (mx_dtype)init->dtype);
  if (storage == MX_BOOL) storage = MX_U8;
  mx_dtype compute = mx_compute_type(storage);
  int64_t ones[MX_MAX_RANK], neg_lo[MX_MAX_RANK], neg_hi[MX_MAX_RANK], zero[MX_MAX_RANK] = {0};
  for (int d = 0; d < x->ndim; d++) ones[d] = 1, neg_lo[d] = -pad_lo[d], neg_hi[d] = -pad_hi[d];
  mx_array *xp = NULL, *src = NULL, *sc = NULL, *z = NULL, *crop = NULL, *ic = NULL, *sum = NULL;
  st = window_prepare(name, x, window, strides, pad_lo, pad_hi, ones, op == MX_OP_WINDOW_SCATTER_MAX ? 2 : 3, compute,
                      &xp);
  if (!st) st = mx_cast(source, compute, &src);
  if (!st) st = mx_window_scatter_node(op, xp, src, window, strides, ones, 0, &sc);
  /* back to x's coordinates: drop (or, for a crop, restore with zeros) the padding */
  if (!st) st = scalar_bits(compute, 0, &z);
  if (!st) st = mx_pad(sc, z, neg_lo, neg_hi, zero, &crop);
  if (!st) st = mx_cast(init, compute, &ic);
  if (!st) st = mx_binary(MX_OP_ADD, crop, ic, &sum);
  if (!st) st = mx_cast(sum, storage, out);
  mx_array *t[7] = {xp, src, sc, z, crop, ic, sum};
  release_all(t, 7);
  return st;
}

/* ---- batching rules (vmap.c) ------------------------------------------------------------------ */

/* x with a leading batch axis of size B (broadcast when it has none). */
static mx_status with_batch(mx_array *x, int batched, int64_t B, mx_array **out) {
  if (batched) {
    mx_retain(x);
    *out = x;
    return MX_OK;
  }
  int64_t shape[MX_MAX_RANK] = {B};
  if (x->ndim + 1 > MX_MAX_RANK) return mx_error(MX_EINVAL, "[vmap] batched rank %d exceeds %d", x->ndim + 1, MX_MAX_RANK);
  memcpy(shape + 1, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  mx_array *e = NULL;
  mx_status st = mx_new_axis(x, 0, &e);
  if (!st) st = mx_broadcast_to(e, x->ndim + 1, shape, out);
  mx_release(e);
  return st;
}

/* a [B, N, C, s] -> [N, B*C, s]: example b's channels become the groups b*G .. b*G + G - 1 of B*G. */
static mx_status fold_channels(mx_array *a, mx_array **out) {
  int r = a->ndim, perm[MX_MAX_RANK];
  for (int d = 0; d < r; d++) perm[d] = d;
  perm[0] = 1, perm[1] = 0;
  int64_t shape[MX_MAX_RANK] = {a->shape[1], a->shape[0] * a->shape[2]};
  memcpy(shape + 2, a->shape + 3, sizeof(int64_t) * (size_t)(r - 3));
  mx_array *t = NULL;
  mx_status st = mx_transpose(a, perm, &t);
  if (!st) st = mx_reshape(t, r - 1, shape, out);
  mx_release(t);
  return st;
}

/* y [N, B*C, s] -> [B, N, C, s] (shape = [N, C, s], the unbatched node's). */
static mx_status unfold_channels(mx_array *y, int64_t B, const int64_t *shape, mx_array **out) {
  int r = y->ndim + 1, perm[MX_MAX_RANK];
  for (int d = 0; d < r; d++) perm[d] = d;
  perm[0] = 1, perm[1] = 0;
  int64_t s[MX_MAX_RANK] = {shape[0], B};
  memcpy(s + 2, shape + 1, sizeof(int64_t) * (size_t)(r - 2));
  mx_array *t = NULL;
  mx_status st = mx_reshape(y, r, s, &t);
  if (!st) st = mx_transpose(t, perm, out);
  mx_release(t);
  return st;
}

/* a [B, M, ...] -> [B*M, ...] */
static mx_status merge_lead(mx_array *a, mx_array **out) {
  int64_t shape[MX_MAX_RANK] = {a->shape[0] * a->shape[1]};
  memcpy(shape + 1, a->shape + 2, sizeof(int64_t) * (size_t)(a->ndim - 2));
  return mx_reshape(a, a->ndim - 1, shape, out);
}

/* y [B*M, ...] -> [B, M, ...] (shape = [M, ...], the unbatched node's). */
static mx_status split_lead(mx_array *y, int64_t B, const int64_t *shape, mx_array **out) {
  int64_t s[MX_MAX_RANK] = {B};
  memcpy(s + 1, shape, sizeof(int64_t) * (size_t)y->ndim);
  return mx_reshape(y, y->ndim + 1, s, out);
}

/* conv and its gradients over a batch. The first input alone (conv, input_grad): the batch folds into N.
 * Otherwise examples become channel groups: x, g [B, N, C, s] -> [N, B*C, s] and w [B, O, Cg, k] ->
 * [B*O, Cg, k] with B*G groups, the output unfolded back. */
static mx_status vmap_conv(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out) {
  mx_op op = (mx_op)node->op;
  const int64_t *p = node->params->ip;
  int S = node->ndim - 2, r = node->ndim;
  int64_t G = node->params->axis, shape[MX_MAX_RANK];
  memcpy(shape, node->shape, sizeof(int64_t) * (size_t)r);
  mx_array *a = NULL, *c = NULL, *y = NULL, *a0 = NULL, *a1 = NULL;
  mx_status st = MX_OK;
  if (op != MX_OP_CONV_KERNEL_GRAD && !batched[1]) {
    st = merge_lead(in[0], &a);
    shape[0] *= B;
    if (!st) st = op == MX_OP_CONV ? mx_conv_node(a, in[1], p, p + S, G, &y)
                                   : mx_conv_input_grad_node(a, in[1], shape, p, p + S, G, &y);
    if (!st) st = split_lead(y, B, node->shape, out);
  } else {
    st = with_batch(in[0], batched[0], B, &a0);
    if (!st) st = with_batch(in[1], batched[1], B, &a1);
    if (!st) st = fold_channels(a0, &a);
    if (!st) st = op == MX_OP_CONV_KERNEL_GRAD ? fold_channels(a1, &c) : merge_lead(a1, &c);
    if (op == MX_OP_CONV_KERNEL_GRAD) {
      shape[0] *= B;
      if (!st) st = mx_conv_kernel_grad_node(a, c, shape, p, p + S, B * G, &y);
      if (!st) st = split_lead(y, B, node->shape, out);
    } else {
      shape[1] *= B;
      if (!st) st = op == MX_OP_CONV ? mx_conv_node(a, c, p, p + S, B * G, &y)
                                     : mx_conv_input_grad_node(a, c, shape, p, p + S, B * G, &y);
      if (!st) st = unfold_channels(y, B, node->shape, out);
    }
  }
  mx_array *all[5] = {a, c, y, a0, a1};
  release_all(all, 5);
  return st;
}

/* Windows over a batch: a window of 1 (stride 1, dilation 1) along the batch axis. */
static mx_status vmap_window(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out) {
  mx_op op = (mx_op)node->op;
  int R = node->params->nip / 3;
  int64_t win[MX_MAX_RANK] = {1}, str[MX_MAX_RANK] = {1}, dil[MX_MAX_RANK] = {1};
  if (R + 1 > MX_MAX_RANK) return mx_error(MX_EINVAL, "[vmap] batched rank %d exceeds %d", R + 1, MX_MAX_RANK);
  for (int d = 0; d < R; d++) {
    win[d + 1] = node->params->ip[d];
    str[d + 1] = node->params->ip[R + d];
    dil[d + 1] = node->params->ip[2 * R + d];
  }
  if (is_window(op)) return mx_window_node(op, in[0], win, str, dil, out);
  mx_array *x = NULL, *v = NULL;
  mx_status st = with_batch(in[0], batched[0], B, &x);
  if (!st) st = with_batch(in[1], batched[1], B, &v);
  if (!st) st = mx_window_scatter_node(op, x, v, win, str, dil, node->params->flags & 1, out);
  mx_release(x);
  mx_release(v);
  return st;
}

mx_status mx_vmap_conv_window(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                              int *handled) {
  mx_op op = (mx_op)node->op;
  int conv = op == MX_OP_CONV || op == MX_OP_CONV_INPUT_GRAD || op == MX_OP_CONV_KERNEL_GRAD;
  *handled = conv || is_window(op) || is_scatter(op);
  if (!*handled) return MX_OK;
  return conv ? vmap_conv(node, in, batched, B, out) : vmap_window(node, in, batched, B, out);
}
