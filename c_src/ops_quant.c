/* ops_quant.c: MLX's affine quantization (mlx.core.quantize / dequantize / quantized_matmul).
 * Groups of group_size consecutive elements of the last axis share a scale and a bias; each
 * value is an unsigned bits-wide integer q with w ~ scale * q + bias, packed 32/bits to a u32
 * word with the first value in the lowest bits (MLX's layout, so its checkpoints load as is). */
#include <string.h>

#include "ops_internal.h"
#include "ops_quant.h"

static mx_status check_scheme(const char *op, int64_t group_size, int64_t bits) {
  if (group_size != 32 && group_size != 64 && group_size != 128)
    return mx_error(MX_EINVAL, "[%s] group_size must be 32, 64 or 128 (MLX's), got %lld", op, (long long)group_size);
  if (bits != 2 && bits != 4 && bits != 8)
    return mx_error(MX_EINVAL, "[%s] bits must be 2, 4 or 8, got %lld", op, (long long)bits);
  return MX_OK;
}

static int is_f32_f64(const mx_array *a) { return a->dtype == MX_F32 || a->dtype == MX_F64; }

mx_status mx_quantize(mx_array *w, int64_t group_size, int64_t bits, mx_array **w_q, mx_array **scales,
                      mx_array **biases) {
  char b1[128];
  mx_status st = mx_check_live("quantize", 1, &w);
  if (st || (st = check_scheme("quantize", group_size, bits))) return st;
  if (!is_f32_f64(w))
    return mx_error(MX_EINVAL, "[quantize] w must be f32 or f64, got %s; cast with as_type", mx_describe(w, b1, sizeof b1));
  int r = w->ndim;
  if (r < 1 || w->shape[r - 1] % group_size)
    return mx_error(MX_EINVAL,
                    "[quantize] the last axis of w %s must be a multiple of group_size %lld; pad it or pick a "
                    "group_size that divides it",
                    mx_describe(w, b1, sizeof b1), (long long)group_size);
  int64_t shape[MX_MAX_RANK];
  memcpy(shape, w->shape, sizeof(int64_t) * (size_t)r);
  mx_array *outs[3] = {0};
  for (int k = 0; k < 3 && !st; k++) {
    mx_params p = {.nip = 2, .ip = {group_size, bits}, .flags = k};
    shape[r - 1] = k == 0 ? w->shape[r - 1] * bits / 32 : w->shape[r - 1] / group_size;
    st = mx_node_new(MX_OP_QUANTIZE, k == 0 ? MX_U32 : (mx_dtype)w->dtype, r, shape, 1, &w, &p, &outs[k]);
    if (!st) outs[k]->cost = w->size * 4;
  }
  if (st) {
    for (int k = 0; k < 3; k++) mx_release(outs[k]);
    return st;
  }
  *w_q = outs[0], *scales = outs[1], *biases = outs[2];
  return MX_OK;
}

/* w_q [..., P] with scales and biases [..., G] of one float dtype, where P = G * group_size * bits / 32. */
static mx_status check_packed(const char *op, mx_array *w_q, mx_array *scales, mx_array *biases, int64_t group_size,
                              int64_t bits) {
  char b1[128], b2[128], b3[128];
  mx_array *all[3] = {w_q, scales, biases};
  mx_status st = mx_check_live(op, 3, all);
  if (st || (st = check_scheme(op, group_size, bits))) return st;
  if (w_q->dtype != MX_U32)
    return mx_error(MX_EINVAL, "[%s] w_q must be u32 (packed words from quantize), got %s", op,
                    mx_describe(w_q, b1, sizeof b1));
  if (!is_f32_f64(scales) || biases->dtype != scales->dtype)
    return mx_error(MX_EINVAL, "[%s] scales %s and biases %s must both be f32 or both f64; cast with as_type", op,
                    mx_describe(scales, b1, sizeof b1), mx_describe(biases, b2, sizeof b2));
  int r = w_q->ndim, same = r >= 1 && scales->ndim == r && biases->ndim == r;
  for (int d = 0; same && d < r - 1; d++) same = scales->shape[d] == w_q->shape[d] && biases->shape[d] == w_q->shape[d];
  if (!same || biases->shape[r - 1] != scales->shape[r - 1] ||
      w_q->shape[r - 1] * 32 != scales->shape[r - 1] * group_size * bits)
    return mx_error(MX_EINVAL,
                    "[%s] w_q %s, scales %s and biases %s do not fit group_size %lld and bits %lld: w_q's last axis "
                    "must be K*bits/32 and the scales' K/group_size, other axes equal; pass the group_size and bits "
                    "quantize used",
                    op, mx_describe(w_q, b1, sizeof b1), mx_describe(scales, b2, sizeof b2),
                    mx_describe(biases, b3, sizeof b3), (long long)group_size, (long long)bits);
  return MX_OK;
}

mx_status mx_dequantize(mx_array *w_q, mx_array *scales, mx_array *biases, int64_t group_size, int64_t bits,
                        mx_array **out) {
  mx_status st = check_packed("dequantize", w_q, scales, biases, group_size, bits);
  if (st) return st;
  int r = w_q->ndim;
  int64_t shape[MX_MAX_RANK];
  memcpy(shape, w_q->shape, sizeof(int64_t) * (size_t)r);
  shape[r - 1] = scales->shape[r - 1] * group_size;
  mx_params p = {.nip = 2, .ip = {group_size, bits}};
  st = mx_node_new(MX_OP_DEQUANTIZE, (mx_dtype)scales->dtype, r, shape, 3, (mx_array *[]){w_q, scales, biases}, &p,
                   out);
  if (!st) (*out)->cost = (*out)->size * 2;
  return st;
}

/* The batch axes (all but the last two) of a, b, c, d broadcast right-aligned into shape[0..*nb);
 * 0 if they do not broadcast. */
static int broadcast_batch(mx_array *const *a, int n, int64_t *shape, int *nb) {
  *nb = 0;
  for (int i = 0; i < n; i++) *nb = a[i]->ndim - 2 > *nb ? a[i]->ndim - 2 : *nb;
  for (int d = 0; d < *nb; d++) shape[d] = 1;
  for (int i = 0; i < n; i++)
    for (int d = 0; d < a[i]->ndim - 2; d++) {
      int64_t v = a[i]->shape[d], *o = &shape[*nb - (a[i]->ndim - 2) + d];
      if (v != 1 && *o != 1 && v != *o) return 0;
      if (v != 1) *o = v;
    }
  return 1;
}

mx_status mx_quantized_matmul_node(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                                   int64_t group_size, int64_t bits, mx_array **out) {
  int64_t rows = w_q->shape[w_q->ndim - 2], cols = scales->shape[scales->ndim - 1] * group_size;
  int64_t n = transpose ? rows : cols, shape[MX_MAX_RANK];
  int batched = w_q->ndim > 2 || scales->ndim > 2 || biases->ndim > 2, r = x->ndim;
  if (!batched) {
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  } else { /* x [..., M, K] against w [..., N, K] (or [..., K, N]): the batch axes broadcast */
    int nb = 0;
    if (x->ndim < 2 || !broadcast_batch((mx_array *[]){x, w_q, scales, biases}, 4, shape, &nb) || nb + 2 > MX_MAX_RANK)
      return mx_error(MX_EINVAL, "[quantized_matmul] the batch axes of x and the weights do not broadcast");
    r = nb + 2;
    shape[nb] = x->shape[x->ndim - 2];
  }
  shape[r - 1] = n;
  mx_params p = {.nip = 2, .ip = {group_size, bits}, .flags = transpose ? 1 : 0};
  mx_status st = mx_node_new(MX_OP_QUANTIZED_MATMUL, (mx_dtype)x->dtype, r, shape, 4,
                             (mx_array *[]){x, w_q, scales, biases}, &p, out);
  if (st) return st;
  /* as matmul (~0.025 ns a multiply-add through BLAS) plus dequantizing w once a product */
  double k = x->shape[x->ndim - 1], m = k > 0 ? (double)(*out)->size / (double)(n > 0 ? n : 1) : 0;
  double products = batched ? (double)(*out)->size / (double)((*out)->shape[r - 2] * n > 0 ? (*out)->shape[r - 2] * n : 1) : 1;
  double cost = m * (double)n * k / 4 + products * (double)rows * (double)cols * 2;
  (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return MX_OK;
}

mx_status mx_quantized_matmul(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                              int64_t group_size, int64_t bits, mx_array **out) {
  char b1[128], b2[128];
  mx_status st = check_packed("quantized_matmul", w_q, scales, biases, group_size, bits);
  if (st || (st = mx_check_live("quantized_matmul", 1, &x))) return st;
  if (w_q->ndim < 2)
    return mx_error(MX_EINVAL, "[quantized_matmul] w_q must be a matrix or a batch of matrices (rank >= 2), got %s",
                    mx_describe(w_q, b1, sizeof b1));
  if (x->dtype != scales->dtype)
    return mx_error(MX_EINVAL, "[quantized_matmul] x %s must have the scales' dtype %s; cast with as_type",
                    mx_describe(x, b1, sizeof b1), mx_dtype_name((mx_dtype)scales->dtype));
  int r = w_q->ndim;
  int64_t k = transpose ? scales->shape[r - 1] * group_size : w_q->shape[r - 2];
  if (x->ndim < 1 || x->shape[x->ndim - 1] != k)
    return mx_error(MX_EINVAL,
                    "[quantized_matmul] x %s needs a last axis of %lld to match w (%s, transpose: %s); "
                    "check transpose",
                    mx_describe(x, b1, sizeof b1), (long long)k, mx_describe(w_q, b2, sizeof b2),
                    transpose ? "true" : "false");
  if (r == 2) return mx_quantized_matmul_node(x, w_q, scales, biases, transpose, group_size, bits, out);
  /* batched weights: x's axes but the last two are a batch (as matmul); a vector x is one row */
  int64_t bshape[MX_MAX_RANK];
  int nb = 0;
  mx_array *x2 = x, *o = NULL;
  if (x->ndim >= 2 && !broadcast_batch((mx_array *[]){x, w_q}, 2, bshape, &nb))
    return mx_error(MX_EINVAL,
                    "[quantized_matmul] the batch axes of x %s and w_q %s do not broadcast (x's axes before its last "
                    "two against w_q's before its last two); reshape x or the weights",
                    mx_describe(x, b1, sizeof b1), mx_describe(w_q, b2, sizeof b2));
  if (x->ndim == 1 && (st = mx_reshape(x, 2, (int64_t[]){1, k}, &x2))) return st;
  st = mx_quantized_matmul_node(x2, w_q, scales, biases, transpose, group_size, bits, &o);
  if (x2 != x) mx_release(x2);
  if (st || x->ndim >= 2) {
    *out = o;
    return st;
  }
  int64_t shape[MX_MAX_RANK]; /* drop the vector's row axis */
  memcpy(shape, o->shape, sizeof(int64_t) * (size_t)(o->ndim - 2));
  shape[o->ndim - 2] = o->shape[o->ndim - 1];
  st = mx_reshape(o, o->ndim - 1, shape, out);
  mx_release(o);
  return st;
}

mx_status mx_vmap_quant(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                        int *handled) {
  *handled = node->op == MX_OP_QUANTIZED_MATMUL && (batched[0] || batched[1] || batched[2] || batched[3]);
  if (!*handled) return MX_OK;
  const mx_params *p = node->params;
  int t = p->flags & 1, weights_batched = batched[1] || batched[2] || batched[3];
  if (!weights_batched && in[1]->ndim == 2 && in[2]->ndim == 2 && in[3]->ndim == 2) {
    /* batched only in x: one node over the larger x */
    if (node->ndim > 1) return mx_quantized_matmul_node(in[0], in[1], in[2], in[3], t, p->ip[0], p->ip[1], out);
    /* a vector x stays one row per example ([B, 1, K]), so the kernel picks the same path */
    int64_t k = in[0]->shape[1], s3[3] = {B, 1, k}, s2[2] = {B, node->shape[0]};
    mx_array *x3 = NULL, *o3 = NULL;
    mx_status st = mx_reshape(in[0], 3, s3, &x3);
    if (!st) st = mx_quantized_matmul_node(x3, in[1], in[2], in[3], t, p->ip[0], p->ip[1], &o3);
    if (!st) st = mx_reshape(o3, 2, s2, out);
    mx_release(x3);
    mx_release(o3);
    return st;
  }
  /* Batched weights: every input as a (batch of) matrices, the example axis B first and 1s up to the
   * example's batch rank nbo, so the kernel's broadcasting pairs example i's x with its weights. */
  int rank[4], nbo = 0;
  for (int i = 0; i < 4; i++) {
    rank[i] = in[i]->ndim - batched[i];
    if (i == 0 && rank[0] < 2) rank[0] = 2; /* a vector x is one row */
    nbo = rank[i] - 2 > nbo ? rank[i] - 2 : nbo;
  }
  if (nbo + 3 > MX_MAX_RANK) return mx_error(MX_EINVAL, "[vmap] quantized_matmul: too many batch axes");
  mx_array *r[4] = {0}, *o = NULL;
  mx_status st = MX_OK;
  for (int i = 0; i < 4 && !st; i++) {
    int64_t shape[MX_MAX_RANK];
    int pe = in[i]->ndim - batched[i], nd = 0; /* pe: the example's own rank */
    if (batched[i]) {
      shape[nd++] = B;
      for (int d = 0; d < nbo - (rank[i] - 2); d++) shape[nd++] = 1;
    }
    if (pe < rank[i]) shape[nd++] = 1;
    for (int d = 0; d < pe; d++) shape[nd++] = in[i]->shape[batched[i] + d];
    st = mx_reshape(in[i], nd, shape, &r[i]);
  }
  if (!st) st = mx_quantized_matmul_node(r[0], r[1], r[2], r[3], t, p->ip[0], p->ip[1], &o);
  if (!st) {
    int64_t shape[MX_MAX_RANK] = {B};
    memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)node->ndim);
    st = mx_reshape(o, node->ndim + 1, shape, out);
  }
  for (int i = 0; i < 4; i++) mx_release(r[i]);
  mx_release(o);
  return st;
}
