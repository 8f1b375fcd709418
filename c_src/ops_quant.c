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

mx_status mx_quantized_matmul_node(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                                   int64_t group_size, int64_t bits, mx_array **out) {
  int64_t rows = w_q->shape[0], cols = scales->shape[1] * group_size, n = transpose ? rows : cols;
  int64_t shape[MX_MAX_RANK];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 1] = n;
  mx_params p = {.nip = 2, .ip = {group_size, bits}, .flags = transpose ? 1 : 0};
  mx_status st = mx_node_new(MX_OP_QUANTIZED_MATMUL, (mx_dtype)x->dtype, x->ndim, shape, 4,
                             (mx_array *[]){x, w_q, scales, biases}, &p, out);
  if (st) return st;
  /* as matmul (~0.025 ns a multiply-add through BLAS) plus dequantizing w once */
  double k = x->shape[x->ndim - 1], m = x->ndim ? (double)x->size / (k > 0 ? k : 1) : 1;
  double cost = m * (double)n * k / 4 + (double)rows * (double)cols * 2;
  (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return MX_OK;
}

mx_status mx_quantized_matmul(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                              int64_t group_size, int64_t bits, mx_array **out) {
  char b1[128], b2[128];
  mx_status st = check_packed("quantized_matmul", w_q, scales, biases, group_size, bits);
  if (st || (st = mx_check_live("quantized_matmul", 1, &x))) return st;
  if (w_q->ndim != 2)
    return mx_error(MX_EINVAL, "[quantized_matmul] w_q must be a matrix (rank 2), got %s",
                    mx_describe(w_q, b1, sizeof b1));
  if (x->dtype != scales->dtype)
    return mx_error(MX_EINVAL, "[quantized_matmul] x %s must have the scales' dtype %s; cast with as_type",
                    mx_describe(x, b1, sizeof b1), mx_dtype_name((mx_dtype)scales->dtype));
  int64_t k = transpose ? scales->shape[1] * group_size : w_q->shape[0];
  if (x->ndim < 1 || x->shape[x->ndim - 1] != k)
    return mx_error(MX_EINVAL,
                    "[quantized_matmul] x %s needs a last axis of %lld to match w (%s, transpose: %s); "
                    "check transpose",
                    mx_describe(x, b1, sizeof b1), (long long)k, mx_describe(w_q, b2, sizeof b2),
                    transpose ? "true" : "false");
  return mx_quantized_matmul_node(x, w_q, scales, biases, transpose, group_size, bits, out);
}

mx_status mx_vmap_quant(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                        int *handled) {
  *handled = node->op == MX_OP_QUANTIZED_MATMUL && batched[0] && !batched[1] && !batched[2] && !batched[3];
  if (!*handled) return MX_OK; /* batched weights: vmap runs per example */
  const mx_params *p = node->params;
  if (node->ndim > 1) return mx_quantized_matmul_node(in[0], in[1], in[2], in[3], p->flags & 1, p->ip[0], p->ip[1], out);
  /* a vector x stays one row per example ([B, 1, K]), so the kernel picks the same path */
  int64_t k = in[0]->shape[1], s3[3] = {B, 1, k}, s2[2] = {B, node->shape[0]};
  mx_array *x3 = NULL, *o3 = NULL;
  mx_status st = mx_reshape(in[0], 3, s3, &x3);
  if (!st) st = mx_quantized_matmul_node(x3, in[1], in[2], in[3], p->flags & 1, p->ip[0], p->ip[1], &o3);
  if (!st) st = mx_reshape(o3, 2, s2, out);
  mx_release(x3);
  mx_release(o3);
  return st;
}
