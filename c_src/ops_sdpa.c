/* ops_sdpa.c: fused scaled-dot-product attention, as MLX's mx.fast.scaled_dot_product_attention:
 * softmax(scale q k^T + mask) v over the last two axes, with grouped-query attention (k and v may
 * have fewer heads than q; no repeat is materialized). The constructor takes any rank >= 2
 * ([..., H, L, D], leading axes broadcast), casts f16/bf16 to f32 (softmax and sums in f32, as
 * MLX), turns a boolean mask into an additive one, and folds the leading axes into the kernel's B. */
#include <math.h>
#include <string.h>

#include "ops_internal.h"
#include "ops_sdpa.h"

#define OP "scaled_dot_product_attention"

/* Releases n arrays (NULLs skipped). */
static void release_all(mx_array **a, int n) {
  for (int i = 0; i < n; i++) mx_release(a[i]);
}

/* x [..lead.., H, L, D] (rank r, lead r - 3 axes) broadcast to the common leading axes and
 * reshaped to [B, H, L, D]; rank 2 gets B = H = 1. */
static mx_status to_rank4(mx_array *x, int r, const int64_t *lead, int64_t B, mx_array **out) {
  int64_t full[MX_MAX_RANK], s4[4] = {B, r >= 3 ? x->shape[r - 3] : 1, x->shape[r - 2], x->shape[r - 1]};
  int nl = r > 3 ? r - 3 : 0, same = 1;
  for (int d = 0; d < nl; d++) same &= x->shape[d] == lead[d], full[d] = lead[d];
  memcpy(full + nl, x->shape + nl, sizeof(int64_t) * (size_t)(r - nl));
  mx_array *bx = NULL;
  mx_status st = same ? (mx_retain(x), bx = x, MX_OK) : mx_broadcast_to(x, r, full, &bx);
  if (!st) st = mx_reshape(bx, 4, s4, out);
  mx_release(bx);
  return st;
}

/* The mask (bool: true where attention is allowed; float: added to the scores) as an additive
 * mask of dtype t, [1|B, 1|Hq, 1|Lq, 1|Lk], for scores [lead..., Hq, Lq, Lk] of rank r. */
static mx_status mask_rank4(mx_array *mask, int r, const int64_t *target, int64_t B, mx_dtype t, mx_array **out) {
  char b1[128], b2[128];
  int nl = r > 3 ? r - 3 : 0, ok = mask->ndim <= r;
  int64_t ms[MX_MAX_RANK];
  for (int d = 0; ok && d < r; d++) {
    int src = d - (r - mask->ndim);
    ms[d] = src < 0 ? 1 : mask->shape[src];
    ok = ms[d] == 1 || ms[d] == target[d];
  }
  if (!ok)
    return mx_error(MX_EINVAL,
                    "[" OP "] mask %s does not broadcast to the scores' shape %s ([..., Hq, Lq, Lk]); give it size 1 "
                    "or the scores' size on each axis",
                    mx_describe(mask, b1, sizeof b1), mx_describe_shape(r, target, b2, sizeof b2));
  mx_array *tmp[4] = {0}, *add = NULL;
  mx_status st = MX_OK;
  if (mask->dtype == MX_BOOL) {
    st = mx_full(t, 0, NULL, 0, &tmp[0]);
    if (!st) st = mx_full(t, 0, NULL, -INFINITY, &tmp[1]);
    if (!st) st = mx_select(mask, tmp[0], tmp[1], &add);
  } else if (mx_is_float((mx_dtype)mask->dtype)) {
    st = mx_cast(mask, t, &add);
  } else {
    return mx_error(MX_EINVAL, "[" OP "] mask %s must be boolean (true where attention is allowed) or a float array "
                               "added to the scores",
                    mx_describe(mask, b1, sizeof b1));
  }
  /* leading axes: all 1 stay one, otherwise broadcast to the full leading shape and folded into B */
  int lead_ones = 1;
  for (int d = 0; d < nl; d++) lead_ones &= ms[d] == 1;
  int64_t full[MX_MAX_RANK];
  memcpy(full, ms, sizeof(int64_t) * (size_t)r);
  for (int d = 0; d < nl && !lead_ones; d++) full[d] = target[d];
  if (!st) st = mx_reshape(add, r, ms, &tmp[2]);
  if (!st) st = mx_broadcast_to(tmp[2], r, full, &tmp[3]);
  int64_t s4[4] = {lead_ones ? 1 : B, r >= 3 ? ms[r - 3] : 1, ms[r - 2], ms[r - 1]};
  if (!st) st = mx_reshape(tmp[3], 4, s4, out);
  release_all(tmp, 4);
  mx_release(add);
  return st;
}

mx_status mx_sdpa_node(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale, int causal,
                       mx_array **out) {
  mx_params p = {.f = {scale, 0}, .flags = causal ? 1 : 0};
  int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
  mx_array *in[4] = {q, k, v, mask};
  mx_status st = mx_node_new(MX_OP_SDPA, (mx_dtype)q->dtype, 4, shape, mask ? 4 : 3, in, &p, out);
  if (st) return st;
  /* as matmul (~0.025 ns a multiply-add through BLAS) for both products, plus ~2 ns an exp */
  double pairs = (double)q->shape[0] * q->shape[1] * q->shape[2] * k->shape[2];
  double cost = pairs * (double)(q->shape[3] + v->shape[3]) / 4 + pairs * 20;
  (*out)->cost = cost < 4e18 ? (int64_t)cost : (int64_t)4e18;
  return MX_OK;
}

static mx_status sdpa_ranked(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale, int causal,
                             mx_array **out);

mx_status mx_scaled_dot_product_attention(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale,
                                          int causal, mx_array **out) {
  char b1[128], b2[128], b3[128];
  mx_array *qkv[4] = {q, k, v, mask};
  mx_status st = mx_check_live(OP, mask ? 4 : 3, qkv);
  if (st) return st;
  if (!isfinite(scale)) return mx_error(MX_EINVAL, "[" OP "] scale must be finite, got %g", scale);
  if (causal && mask)
    return mx_error(MX_EINVAL, "[" OP "] give either the causal mask or a mask array, not both; fold the causal "
                               "pattern into the array");
  mx_dtype t = (mx_dtype)q->dtype;
  if (!mx_is_float(t) || (mx_dtype)k->dtype != t || (mx_dtype)v->dtype != t)
    return mx_error(MX_EINVAL, "[" OP "] q %s, k %s and v %s must share one float dtype (f16, bf16, f32 or f64); "
                               "cast with as_type",
                    mx_describe(q, b1, sizeof b1), mx_describe(k, b2, sizeof b2), mx_describe(v, b3, sizeof b3));
  int r = q->ndim > k->ndim ? q->ndim : k->ndim;
  r = r > v->ndim ? r : v->ndim;
  if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
    return mx_error(MX_EINVAL, "[" OP "] q %s, k %s and v %s must have rank >= 2 ([..., heads, length, dim])",
                    mx_describe(q, b1, sizeof b1), mx_describe(k, b2, sizeof b2), mx_describe(v, b3, sizeof b3));
  /* lower ranks get leading unit axes (numpy broadcasting; a missing heads axis is one kv head) */
  mx_array *full[3] = {0};
  for (int i = 0; i < 3 && !st; i++) {
    int64_t sh[MX_MAX_RANK];
    int pad = r - qkv[i]->ndim;
    for (int d = 0; d < r; d++) sh[d] = d < pad ? 1 : qkv[i]->shape[d - pad];
    st = mx_reshape(qkv[i], r, sh, &full[i]);
  }
  if (!st) st = sdpa_ranked(full[0], full[1], full[2], mask, scale, causal, out);
  release_all(full, 3);
  return st;
}

/* As mx_scaled_dot_product_attention, on q, k and v of one rank r >= 2 and one float dtype. */
static mx_status sdpa_ranked(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale, int causal,
                             mx_array **out) {
  char b1[128], b2[128], b3[128];
  mx_array *qkv[3] = {q, k, v};
  mx_status st = MX_OK;
  mx_dtype t = (mx_dtype)q->dtype;
  int r = q->ndim;
  int64_t Hq = r >= 3 ? q->shape[r - 3] : 1, Hkv = r >= 3 ? k->shape[r - 3] : 1;
  int ok = k->shape[r - 1] == q->shape[r - 1] && v->shape[r - 2] == k->shape[r - 2] &&
           (r < 3 || v->shape[r - 3] == Hkv) && (Hkv > 0 ? Hq % Hkv == 0 : Hq == 0);
  /* leading axes broadcast (numpy rules) */
  int nl = r > 3 ? r - 3 : 0;
  int64_t target[MX_MAX_RANK], B = 1;
  for (int d = 0; ok && d < nl; d++) {
    int64_t a = q->shape[d], b = k->shape[d], c = v->shape[d], m = a > b ? a : b;
    m = m > c ? m : c;
    if (a == 0 || b == 0 || c == 0) m = 0;
    ok = (a == m || a == 1) && (b == m || b == 1) && (c == m || c == 1);
    target[d] = m, B *= m;
  }
  if (!ok)
    return mx_error(MX_EINVAL,
                    "[" OP "] shapes do not fit: q %s, k %s, v %s; need q [..., Hq, Lq, D], k [..., Hkv, Lk, D], v "
                    "[..., Hkv, Lk, Dv] with Hq a multiple of Hkv and the leading axes broadcastable",
                    mx_describe(q, b1, sizeof b1), mx_describe(k, b2, sizeof b2), mx_describe(v, b3, sizeof b3));
  if (r >= 3) target[r - 3] = Hq;
  target[r - 2] = q->shape[r - 2], target[r - 1] = k->shape[r - 2];
  mx_dtype compute = mx_compute_type(t);
  mx_array *tmp[10] = {0}, *node = NULL;
  for (int i = 0; i < 3 && !st; i++) st = mx_cast(qkv[i], compute, &tmp[i]);
  for (int i = 0; i < 3 && !st; i++) st = to_rank4(tmp[i], r, target, B, &tmp[3 + i]);
  if (!st && mask) st = mask_rank4(mask, r, target, B, compute, &tmp[6]);
  if (!st) st = mx_sdpa_node(tmp[3], tmp[4], tmp[5], tmp[6], scale, causal, &node);
  if (!st) st = mx_cast(node, t, &tmp[7]);
  int64_t oshape[MX_MAX_RANK];
  memcpy(oshape, target, sizeof(int64_t) * (size_t)r);
  oshape[r - 1] = v->shape[r - 1];
  if (!st) st = mx_reshape(tmp[7], r, oshape, out);
  release_all(tmp, 10);
  mx_release(node);
  return st;
}

/* The vjp: one SDPA_VJP node (packed [dq | dk | dv]) sliced into the three cotangents. */
mx_status mx_sdpa_vjp(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gq, mx_array **gk, mx_array **gv) {
  mx_array *q = in[0], *k = in[1], *v = in[2], *gc = NULL, *packed = NULL;
  int64_t nq = q->size, nk = k->size, nv = v->size, total = nq + nk + nv;
  mx_array *ins[6] = {q, k, v, node, NULL, node->n_in > 3 ? in[3] : NULL};
  mx_status st = mx_cast(g, (mx_dtype)node->dtype, &gc);
  ins[4] = gc;
  if (!st) st = mx_node_new(MX_OP_SDPA_VJP, (mx_dtype)node->dtype, 1, &total, node->n_in > 3 ? 6 : 5, ins,
                            node->params, &packed);
  if (!st) packed->cost = node->cost * 3;
  mx_array **outs[3] = {gq, gk, gv}, *like[3] = {q, k, v};
  int64_t start = 0;
  for (int i = 0; i < 3; i++) *outs[i] = NULL;
  for (int i = 0; i < 3 && !st; i++) {
    int64_t stop = start + like[i]->size, one = 1;
    mx_array *flat = NULL;
    st = mx_slice(packed, &start, &stop, &one, &flat);
    if (!st) st = mx_reshape(flat, like[i]->ndim, like[i]->shape, outs[i]);
    mx_release(flat);
    start = stop;
  }
  if (st)
    for (int i = 0; i < 3; i++) mx_release(*outs[i]), *outs[i] = NULL;
  mx_release(gc);
  mx_release(packed);
  return st;
}

/* vmap: batched inputs carry the batch axis first; unbatched k, v and mask get a unit axis there
 * (the constructor broadcasts it and folds the extra axis into B); an unbatched q is broadcast to
 * the batch, so the output always carries it, whichever inputs do. */
mx_status mx_vmap_sdpa(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                       int *handled) {
  *handled = node->op == MX_OP_SDPA;
  if (!*handled) return MX_OK;
  mx_array *lifted[4] = {0}, *unit = NULL;
  mx_status st = MX_OK;
  for (int i = 0; i < node->n_in && !st; i++) {
    if (batched[i]) {
      mx_retain(in[i]);
      lifted[i] = in[i];
    } else if (i > 0) {
      st = mx_new_axis(in[i], 0, &lifted[i]);
    } else {
      int64_t shape[MX_MAX_RANK] = {B};
      memcpy(shape + 1, in[0]->shape, sizeof(int64_t) * (size_t)in[0]->ndim);
      st = mx_new_axis(in[0], 0, &unit);
      if (!st) st = mx_broadcast_to(unit, in[0]->ndim + 1, shape, &lifted[0]);
      mx_release(unit);
    }
  }
  if (!st)
    st = mx_scaled_dot_product_attention(lifted[0], lifted[1], lifted[2], lifted[3], node->params->f[0],
                                         node->params->flags & 1, out);
  release_all(lifted, 4);
  return st;
}

/* ---- sdpa_vjp's own vjp, for its cotangent only: jvp (= the vjp of the vjp) ---------------- */

/* A chain of ops with a sticky status; every result is kept in t[] and released at the end. */
typedef struct {
  mx_status st;
  int n;
  mx_array *t[64];
} chain;

/* Takes &result so the status is computed before the result is read. */
static mx_array *kept(chain *c, mx_status st, mx_array **ap) {
  mx_array *a = *ap;
  if (c->st) return NULL;
  if (st || c->n == 64) {
    mx_release(a);
    c->st = st ? st : mx_error(MX_ENOMEM, "[" OP "_vjp] its jvp built too many temporaries");
    return NULL;
  }
  return c->t[c->n++] = a;
}
#define STEP(c, call) (c->st ? NULL : (o = NULL, kept(c, call, &o)))

/* [B, Hkv, L, d] -> [B, Hq, L, d], kv head h / G for query head h (only inside this rule, where
 * the composed form materializes the scores anyway). */
static mx_array *expand_heads(chain *c, mx_array *x, int64_t G) {
  mx_array *o = NULL;
  if (c->st || G == 1) return x;
  int64_t B = x->shape[0], H = x->shape[1], L = x->shape[2], d = x->shape[3];
  int64_t s5[5] = {B, H, 1, L, d}, b5[5] = {B, H, G, L, d}, s4[4] = {B, H * G, L, d};
  mx_array *r = STEP(c, mx_reshape(x, 5, s5, &o));
  mx_array *e = r ? STEP(c, mx_broadcast_to(r, 5, b5, &o)) : NULL;
  return e ? STEP(c, mx_reshape(e, 4, s4, &o)) : NULL;
}

static mx_array *matmul_t(chain *c, mx_array *a, mx_array *b, int transpose_b) {
  mx_array *o = NULL;
  static const int perm[4] = {0, 1, 3, 2};
  if (c->st || !a || !b) return NULL;
  if (transpose_b && !(b = STEP(c, mx_transpose(b, perm, &o)))) return NULL;
  return STEP(c, mx_matmul(a, b, &o));
}

static mx_array *bin2(chain *c, mx_op op, mx_array *a, mx_array *b) {
  mx_array *o = NULL;
  return c->st || !a || !b ? NULL : STEP(c, mx_binary(op, a, b, &o));
}

/* The tangent of the attention output for tangents cq, ck, cv of q, k, v (packed in cot):
 * P = softmax(S), dS = scale (cq k^T + q ck^T), t = (P (dS - rowsum(P dS))) v + P cv. Linear
 * in cot, so it is the vjp of sdpa_vjp with respect to its cotangent input. */
mx_status mx_sdpa_vjp_vjp(mx_array *node, mx_array *const *in, mx_array *cot, mx_array **g_cot) {
  chain cc = {0}, *c = &cc;
  mx_array *o = NULL, *q = in[0], *k = in[1], *v = in[2], *mask = node->n_in > 5 ? in[5] : NULL;
  const mx_params *p = node->params;
  mx_dtype t = (mx_dtype)node->dtype;
  int64_t G = k->shape[1] > 0 ? q->shape[1] / k->shape[1] : 1, start = 0, one = 1;
  mx_array *tan[3], *like[3] = {q, k, v};
  for (int i = 0; i < 3; i++) {
    int64_t stop = start + like[i]->size;
    mx_array *flat = STEP(c, mx_slice(cot, &start, &stop, &one, &o));
    tan[i] = flat ? STEP(c, mx_reshape(flat, 4, like[i]->shape, &o)) : NULL;
    start = stop;
  }
  mx_array *ke = expand_heads(c, k, G), *ve = expand_heads(c, v, G);
  mx_array *cke = expand_heads(c, tan[1], G), *cve = expand_heads(c, tan[2], G);
  mx_array *scale = STEP(c, mx_full(t, 0, NULL, p->f[0], &o));
  mx_array *S = bin2(c, MX_OP_MULTIPLY, matmul_t(c, q, ke, 1), scale);
  if (mask) S = bin2(c, MX_OP_ADD, S, mask);
  if (p->flags & 1 && !c->st) { /* key j visible to query i when j <= i + Lk - Lq */
    int64_t Lq = q->shape[2], Lk = k->shape[2], si[2] = {Lq, 1}, sj[2] = {1, Lk};
    mx_array *i = STEP(c, mx_iota(MX_S64, 2, si, 0, &o)), *j = STEP(c, mx_iota(MX_S64, 2, sj, 1, &o));
    mx_array *off = STEP(c, mx_full(MX_S64, 0, NULL, (double)(Lk - Lq), &o));
    mx_array *seen = bin2(c, MX_OP_LESS_EQUAL, j, bin2(c, MX_OP_ADD, i, off));
    mx_array *ninf = STEP(c, mx_full(t, 0, NULL, -INFINITY, &o));
    S = seen && S && ninf ? STEP(c, mx_select(seen, S, ninf, &o)) : NULL;
  }
  int last = 3;
  mx_array *mx = S ? STEP(c, mx_reduce(MX_OP_REDUCE_MAX, S, &last, 1, 1, &o)) : NULL;
  mx_array *e = bin2(c, MX_OP_SUBTRACT, S, mx);
  e = e ? STEP(c, mx_unary(MX_OP_EXP, e, &o)) : NULL;
  mx_array *z = e ? STEP(c, mx_reduce(MX_OP_SUM, e, &last, 1, 1, &o)) : NULL;
  mx_array *P = bin2(c, MX_OP_DIVIDE, e, z);
  mx_array *dS = bin2(c, MX_OP_MULTIPLY, bin2(c, MX_OP_ADD, matmul_t(c, tan[0], ke, 1), matmul_t(c, q, cke, 1)), scale);
  mx_array *PdS = bin2(c, MX_OP_MULTIPLY, P, dS);
  mx_array *rs = PdS ? STEP(c, mx_reduce(MX_OP_SUM, PdS, &last, 1, 1, &o)) : NULL;
  mx_array *dP = bin2(c, MX_OP_MULTIPLY, P, bin2(c, MX_OP_SUBTRACT, dS, rs));
  mx_array *res = bin2(c, MX_OP_ADD, matmul_t(c, dP, ve, 0), matmul_t(c, P, cve, 0));
  if (!c->st && res) mx_retain(res);
  *g_cot = c->st ? NULL : res;
  for (int i = 0; i < c->n; i++) mx_release(c->t[i]);
  return c->st;
}
