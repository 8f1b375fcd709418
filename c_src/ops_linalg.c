/* ops_linalg.c: constructors for Mx.Linalg. The LAPACK-backed ones build one
 * primitive node (prim/linalg.c); when a primitive has several outputs its node
 * packs them flat in its last axis and the parts are slice + reshape views of
 * it. inv, det, slogdet, norm, cross, outer, trace, diag and diagonal are
 * composites of existing ops: no kernel and, later, no gradient rule of their own. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mx.h"
#include "ops_internal.h"
#include "prim/blas.h"
#include "prim/layout.h"

static mx_dtype float_storage(mx_dtype t) { return mx_is_float(t) ? t : MX_F32; }

/* The LAPACK-backed functions and norm are real-only for now: complex input fails here, not in a cast. */
static mx_status no_complex(const char *op, const mx_array *a) {
  char b[128];
  if (!mx_is_complex((mx_dtype)a->dtype)) return MX_OK;
  return mx_error(MX_EINVAL, "[%s] does not support complex matrices yet, got %s; Mx.Linalg works on real arrays", op,
                  mx_describe(a, b, sizeof b));
}

/* Work estimate (flops) so eval picks a dirty scheduler for large factorizations. */
static void set_cost(mx_array *node, int64_t batch, double flops) {
  double c = (double)batch * flops + 1;
  node->cost = c > 4e18 ? (int64_t)4e18 : (int64_t)c;
}

/* a as a batch of matrices in the compute dtype of `storage`: rank >= 2,
 * square if asked, each matrix within LAPACK's integer range. */
static mx_status as_matrices(const char *op, mx_array *a, int square, mx_dtype storage, mx_array **x) {
  char b1[128];
  mx_status cx = no_complex(op, a);
  if (cx) return cx;
  if (a->ndim < 2)
    return mx_error(MX_EINVAL,
                    "[%s] expects a matrix or a batch of matrices [..., m, n], got %s; reshape a vector to "
                    "[n, 1] or [1, n]",
                    op, mx_describe(a, b1, sizeof b1));
  int64_t m = a->shape[a->ndim - 2], n = a->shape[a->ndim - 1], mn;
  if (square && m != n)
    return mx_error(MX_EINVAL, "[%s] expects square matrices [..., n, n], got %s (%lld x %lld)", op,
                    mx_describe(a, b1, sizeof b1), (long long)m, (long long)n);
  if (__builtin_mul_overflow(m, n, &mn) || mn > MX_LAPACK_INT_MAX || mn > MX_BLAS_INT_MAX)
    return mx_error(MX_EINVAL,
                    "[%s] %s: a %lld x %lld matrix exceeds LAPACK's integer range (%lld elements at most); "
                    "use smaller matrices",
                    op, mx_describe(a, b1, sizeof b1), (long long)m, (long long)n, (long long)MX_LAPACK_INT_MAX);
  return mx_cast(a, mx_compute_type(storage), x);
}

/* A node of op over the matrices x whose last two axes become one packed axis of len. */
static mx_status packed_node(mx_op op, mx_array *x, int64_t len, int flags, double flops, mx_array **out) {
  int64_t shape[MX_MAX_RANK];
  int r = x->ndim - 1;
  for (int i = 0; i < r - 1; i++) shape[i] = x->shape[i];
  shape[r - 1] = len;
  mx_params p = {.flags = flags};
  mx_status st = mx_node_new(op, (mx_dtype)x->dtype, r, shape, 1, &x, &p, out);
  if (!st) set_cost(*out, mx_batch_count(x, 2), flops);
  return st;
}

/* Elements [off, off + prod(shape)) of packed's last axis, as batch ++ shape, in storage. */
static mx_status unpack(mx_array *packed, int64_t off, int nd, const int64_t *shape, mx_dtype storage, mx_array **out) {
  int r = packed->ndim;
  int64_t start[MX_MAX_RANK], stop[MX_MAX_RANK], s2[MX_MAX_RANK], count = 1;
  for (int i = 0; i < nd; i++) count *= shape[i];
  for (int i = 0; i < r - 1; i++) {
    start[i] = 0;
    stop[i] = s2[i] = packed->shape[i];
  }
  start[r - 1] = off;
  stop[r - 1] = off + count;
  for (int i = 0; i < nd; i++) s2[r - 1 + i] = shape[i];
  mx_array *s = NULL, *v = NULL;
  mx_status st = mx_slice(packed, start, stop, NULL, &s);
  if (!st) st = mx_reshape(s, r - 1 + nd, s2, &v);
  if (!st) st = mx_cast(v, storage, out);
  mx_release(s);
  mx_release(v);
  return st;
}

/* One part of a packed node: nd axes of shape at offset off, written to *out. */
typedef struct {
  int64_t off;
  int nd;
  int64_t shape[2];
  mx_array **out;
} packed_part;

/* All n parts of packed in storage, or none (and the first error). */
static mx_status unpack_parts(mx_array *packed, mx_dtype storage, int n, const packed_part *parts) {
  mx_array *got[3] = {NULL, NULL, NULL};
  mx_status st = n <= 3 ? MX_OK : mx_error(MX_EINVAL, "[unpack] at most 3 parts, got %d", n);
  for (int i = 0; i < n && !st; i++) st = unpack(packed, parts[i].off, parts[i].nd, parts[i].shape, storage, &got[i]);
  for (int i = 0; i < n && i < 3; i++) {
    if (st) mx_release(got[i]);
    else *parts[i].out = got[i];
  }
  return st;
}

static mx_status reduce1(mx_op op, mx_array *a, int axis, int keep, mx_array **out) {
  return mx_reduce(op, a, &axis, 1, keep, out);
}

/* ---- cholesky ------------------------------------------------------------------------- */

mx_status mx_cholesky(mx_array *a, mx_array **out) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL;
  mx_status st = as_matrices("cholesky", a, 1, storage, &x);
  if (!st) st = mx_node_new(MX_OP_CHOLESKY, (mx_dtype)x->dtype, x->ndim, x->shape, 1, &x, NULL, &node);
  if (!st) {
    double n = (double)a->shape[a->ndim - 1];
    set_cost(node, mx_batch_count(a, 2), n * n * n / 3);
    st = mx_cast(node, storage, out);
  }
  mx_release(x);
  mx_release(node);
  return st;
}

/* ---- solve, inv, triangular_solve ------------------------------------------------------ */

/* a [..., n, n] with b [..., n] / [..., n, k] (left) or [..., k, n] (right), batch axes
 * broadcast. With vectors set, b is a vector when it is 1-d, and a batch of vectors
 * when its shape is a's without the last axis (as torch.linalg.solve decides). */
static mx_status solve_like(const char *op, mx_op prim, int flags, int left, int vectors, mx_array *a, mx_array *b,
                            mx_array **out) {
  char b1[128], b2[128];
  mx_status cx = no_complex(op, a);
  if (!cx) cx = no_complex(op, b);
  if (cx) return cx;
  if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2])
    return mx_error(MX_EINVAL, "[%s] a must be a square matrix or a batch of them [..., n, n], got %s", op,
                    mx_describe(a, b1, sizeof b1));
  int64_t n = a->shape[a->ndim - 1];
  int vector = vectors && (b->ndim == 1 ||
                           (b->ndim == a->ndim - 1 && !memcmp(b->shape, a->shape, sizeof(int64_t) * (size_t)b->ndim)));
  if (!vector && b->ndim < 2)
    return mx_error(MX_EINVAL, "[%s] b must be [..., n] or [..., n, k] (a is %s), got %s", op,
                    mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2));
  if (vector && b->ndim + 1 > MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[%s] b %s has too many axes; ranks go up to %d", op, mx_describe(b, b2, sizeof b2),
                    MX_MAX_RANK - 1);
  int64_t rows = vector ? (left ? b->shape[b->ndim - 1] : 1) : b->shape[b->ndim - 2];
  int64_t cols = vector ? (left ? 1 : b->shape[b->ndim - 1]) : b->shape[b->ndim - 1];
  if ((left ? rows : cols) != n)
    return mx_error(MX_EINVAL,
                    "[%s] b %s does not fit a %s: %s; b is [..., n]%s for a [..., n, n]", op,
                    mx_describe(b, b2, sizeof b2), mx_describe(a, b1, sizeof b1),
                    left ? "b's rows (or a vector's length) must equal n" : "b's columns must equal n",
                    left ? " or [..., n, k]" : " or [..., k, n]");
  /* Broadcast the batch axes (all but the last two), right-aligned. */
  int bx = a->ndim - 2, by = vector ? b->ndim - 1 : b->ndim - 2, nb = bx > by ? bx : by;
  if (nb + 2 > MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[%s] the result would have rank %d; ranks go up to %d", op, nb + 2, MX_MAX_RANK);
  int64_t shape[MX_MAX_RANK], batch = 1;
  for (int d = 0; d < nb; d++) {
    int i = bx - nb + d, j = by - nb + d;
    int64_t sa = i >= 0 ? a->shape[i] : 1, sb = j >= 0 ? b->shape[j] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return mx_error(MX_EINVAL,
                      "[%s] batch axes of a %s and b %s cannot be broadcast (%lld vs %lld); leading axes must "
                      "match or be 1",
                      op, mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2), (long long)sa, (long long)sb);
    shape[d] = sa == 1 ? sb : sa;
    batch *= shape[d];
  }
  shape[nb] = rows;
  shape[nb + 1] = cols;
  int64_t rc, nn;
  if (__builtin_mul_overflow(rows, cols, &rc) || rc > MX_LAPACK_INT_MAX || rc > MX_BLAS_INT_MAX ||
      __builtin_mul_overflow(n, n, &nn) || nn > MX_LAPACK_INT_MAX || nn > MX_BLAS_INT_MAX)
    return mx_error(MX_EINVAL, "[%s] a %s and b %s exceed LAPACK's integer range (%lld elements per matrix at most)",
                    op, mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2), (long long)MX_LAPACK_INT_MAX);
  mx_dtype storage = float_storage(mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype));
  mx_dtype compute = mx_compute_type(storage);
  mx_array *xa = NULL, *xb = NULL, *bm = NULL, *node = NULL, *cast = NULL;
  mx_status st = MX_OK;
  if (vector) {
    int64_t s[MX_MAX_RANK];
    for (int i = 0; i < b->ndim - 1; i++) s[i] = b->shape[i];
    s[b->ndim - 1] = rows;
    s[b->ndim] = cols;
    st = mx_reshape(b, b->ndim + 1, s, &bm);
  } else {
    mx_retain(b);
    bm = b;
  }
  if (!st) st = mx_cast(a, compute, &xa);
  if (!st) st = mx_cast(bm, compute, &xb);
  mx_params p = {.flags = flags};
  mx_array *in[2] = {xa, xb};
  if (!st) st = mx_node_new(prim, compute, nb + 2, shape, 2, in, &p, &node);
  if (!st) {
    double fn = (double)n, k = (double)(left ? cols : rows);
    set_cost(node, batch, prim == MX_OP_SOLVE ? 2 * fn * fn * fn / 3 + 2 * fn * fn * k : fn * fn * k);
    st = mx_cast(node, storage, &cast);
  }
  if (!st && vector) {
    shape[nb] = left ? rows : cols;
    st = mx_reshape(cast, nb + 1, shape, out);
  } else if (!st) {
    mx_retain(cast);
    *out = cast;
  }
  mx_release(xa);
  mx_release(xb);
  mx_release(bm);
  mx_release(node);
  mx_release(cast);
  return st;
}

mx_status mx_solve(mx_array *a, mx_array *b, mx_array **out) {
  return solve_like("solve", MX_OP_SOLVE, 0, 1, 1, a, b, out);
}

mx_status mx_triangular_solve(mx_array *a, mx_array *b, int lower, int left_side, int transpose_a, int unit_diagonal,
                              mx_array **out) {
  int flags = (lower ? 1 : 0) | (left_side ? 2 : 0) | (transpose_a ? 4 : 0) | (unit_diagonal ? 8 : 0);
  return solve_like("triangular_solve", MX_OP_TRIANGULAR_SOLVE, flags, left_side, 1, a, b, out);
}

/* inv(a) = solve(a, I): the identity broadcasts over a's batch without being copied. */
mx_status mx_inv(mx_array *a, mx_array **out) {
  mx_array *x = NULL, *eye = NULL;
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_status st = as_matrices("inv", a, 1, storage, &x);
  if (!st) st = mx_eye((mx_dtype)x->dtype, a->shape[a->ndim - 1], a->shape[a->ndim - 1], &eye);
  mx_array *r = NULL;
  if (!st) st = solve_like("inv", MX_OP_SOLVE, 2, 1, 0, x, eye, &r);
  if (!st) st = mx_cast(r, storage, out);
  mx_release(x);
  mx_release(eye);
  mx_release(r);
  return st;
}

/* ---- det and slogdet from the LU primitive ------------------------------------------------ */

/* U's diagonal [..., n] and the sign of the row permutation [...], in the compute dtype. */
static mx_status lu_diag_sign(const char *op, mx_array *a, mx_dtype storage, mx_array **diag, mx_array **psign) {
  mx_array *x = NULL, *lu = NULL, *piv = NULL, *idx = NULL, *moved = NULL, *count = NULL, *two = NULL, *odd = NULL,
           *m2 = NULL, *one = NULL, *sgn = NULL;
  mx_status st = as_matrices(op, a, 1, storage, &x);
  if (st) return st;
  mx_dtype t = (mx_dtype)x->dtype;
  int64_t n = a->shape[a->ndim - 1], nn = n * n;
  st = packed_node(MX_OP_LU, x, nn + n, 0, 2.0 * (double)n * n * n / 3, &lu);
  if (!st) { /* U[i][i] sits every n + 1 elements of the row-major factors */
    int r = lu->ndim;
    int64_t start[MX_MAX_RANK], stop[MX_MAX_RANK], stride[MX_MAX_RANK];
    for (int i = 0; i < r; i++) {
      start[i] = 0;
      stop[i] = lu->shape[i];
      stride[i] = 1;
    }
    stop[r - 1] = nn;
    stride[r - 1] = n + 1;
    st = mx_slice(lu, start, stop, stride, diag);
  }
  /* The permutation is odd when an odd number of rows moved: sign = 1 - 2 (count mod 2). */
  int64_t shape_n[1] = {n};
  if (!st) st = unpack(lu, nn, 1, shape_n, t, &piv);
  if (!st) st = mx_arange(t, 0, 1, n, &idx);
  if (!st) st = mx_binary(MX_OP_NOT_EQUAL, piv, idx, &moved);
  if (!st) st = reduce1(MX_OP_SUM, moved, -1, 0, &count);
  if (!st) st = mx_full(MX_S64, 0, NULL, 2, &two);
  if (!st) st = mx_binary(MX_OP_REMAINDER, count, two, &odd);
  if (!st) st = mx_full(MX_S64, 0, NULL, -2, &m2);
  if (!st) st = mx_binary(MX_OP_MULTIPLY, odd, m2, &sgn);
  if (!st) st = mx_full(MX_S64, 0, NULL, 1, &one);
  mx_array *s1 = NULL;
  if (!st) st = mx_binary(MX_OP_ADD, sgn, one, &s1);
  if (!st) st = mx_as_type(s1, t, psign);
  if (st && *diag) {
    mx_release(*diag);
    *diag = NULL;
  }
  mx_release(s1);
  mx_release(x);
  mx_release(lu);
  mx_release(piv);
  mx_release(idx);
  mx_release(moved);
  mx_release(count);
  mx_release(two);
  mx_release(odd);
  mx_release(m2);
  mx_release(one);
  mx_release(sgn);
  return st;
}

mx_status mx_det(mx_array *a, mx_array **out) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *diag = NULL, *psign = NULL, *prod = NULL, *d = NULL;
  mx_status st = lu_diag_sign("det", a, storage, &diag, &psign);
  if (!st) st = reduce1(MX_OP_PRODUCT, diag, -1, 0, &prod);
  if (!st) st = mx_binary(MX_OP_MULTIPLY, prod, psign, &d);
  if (!st) st = mx_cast(d, storage, out);
  mx_release(diag);
  mx_release(psign);
  mx_release(prod);
  mx_release(d);
  return st;
}

/* sign = sign(P) prod sign(U_ii); log|det| = sum log|U_ii| (-inf and sign 0 when singular). */
mx_status mx_slogdet(mx_array *a, mx_array **sign, mx_array **logabsdet) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *diag = NULL, *psign = NULL, *sd = NULL, *ps = NULL, *s = NULL, *ad = NULL, *ld = NULL, *l = NULL,
           *so = NULL;
  mx_status st = lu_diag_sign("slogdet", a, storage, &diag, &psign);
  if (!st) st = mx_unary(MX_OP_SIGN, diag, &sd);
  if (!st) st = reduce1(MX_OP_PRODUCT, sd, -1, 0, &ps);
  if (!st) st = mx_binary(MX_OP_MULTIPLY, ps, psign, &s);
  if (!st) st = mx_unary(MX_OP_ABS, diag, &ad);
  if (!st) st = mx_unary(MX_OP_LOG, ad, &ld);
  if (!st) st = reduce1(MX_OP_SUM, ld, -1, 0, &l);
  if (!st) st = mx_cast(s, storage, &so);
  if (!st) st = mx_cast(l, storage, logabsdet);
  if (!st) {
    *sign = so;
    so = NULL;
  }
  mx_release(so);
  mx_release(diag);
  mx_release(psign);
  mx_release(sd);
  mx_release(ps);
  mx_release(s);
  mx_release(ad);
  mx_release(ld);
  mx_release(l);
  return st;
}

/* ---- qr, svd, eigh: packed outputs ------------------------------------------------------------ */

mx_status mx_qr(mx_array *a, mx_array **q, mx_array **r) { return mx_qr_mode(a, 0, q, r); }

mx_status mx_qr_mode(mx_array *a, int complete, mx_array **q, mx_array **r) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL;
  mx_status st = as_matrices("qr", a, 0, storage, &x);
  if (st) return st;
  int64_t m = a->shape[a->ndim - 2], n = a->shape[a->ndim - 1], k = m < n ? m : n, p = complete ? m : k, mp;
  if (__builtin_mul_overflow(m, p, &mp) || mp > MX_LAPACK_INT_MAX) {
    mx_release(x);
    return mx_error(MX_EINVAL, "[qr] mode: :complete for a %lld x %lld matrix exceeds LAPACK's integer range; use "
                    "mode: :reduced", (long long)m, (long long)n);
  }
  st = packed_node(MX_OP_QR, x, m * p + p * n, complete ? 1 : 0, 4.0 * (double)m * n * k, &node);
  if (!st) st = unpack_parts(node, storage, 2, (packed_part[]){{0, 2, {m, p}, q}, {m * p, 2, {p, n}, r}});
  mx_release(x);
  mx_release(node);
  return st;
}

static mx_status svd_node(const char *op, mx_array *a, int flags, mx_dtype storage, mx_array **node) {
  mx_array *x = NULL;
  mx_status st = as_matrices(op, a, 0, storage, &x);
  if (st) return st;
  int64_t m = a->shape[a->ndim - 2], n = a->shape[a->ndim - 1], k = m < n ? m : n;
  int64_t p = flags & 1 ? m : k, q = flags & 1 ? n : k, pp, qq;
  if (__builtin_mul_overflow(p, p, &pp) || __builtin_mul_overflow(q, q, &qq) || pp > MX_LAPACK_INT_MAX ||
      qq > MX_LAPACK_INT_MAX) {
    mx_release(x);
    return mx_error(MX_EINVAL, "[%s] full_matrices for a %lld x %lld matrix exceeds LAPACK's integer range; use "
                    "full_matrices: false", op, (long long)m, (long long)n);
  }
  int64_t len = flags & 2 ? k : m * p + k + q * n;
  st = packed_node(MX_OP_SVD, x, len, flags, 12.0 * (double)m * n * k, node);
  mx_release(x);
  return st;
}

mx_status mx_svd(mx_array *a, int full_matrices, mx_array **u, mx_array **s, mx_array **vt) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *node = NULL;
  mx_status st = svd_node("svd", a, full_matrices ? 1 : 0, storage, &node);
  if (st) return st;
  int64_t m = a->shape[a->ndim - 2], n = a->shape[a->ndim - 1], k = m < n ? m : n;
  int64_t p = full_matrices ? m : k, q = full_matrices ? n : k;
  st = unpack_parts(node, storage, 3,
                    (packed_part[]){{0, 2, {m, p}, u}, {m * p, 1, {k}, s}, {m * p + k, 2, {q, n}, vt}});
  mx_release(node);
  return st;
}

mx_status mx_svdvals(mx_array *a, mx_array **s) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *node = NULL;
  mx_status st = svd_node("svdvals", a, 2, storage, &node);
  if (!st) st = mx_cast(node, storage, s);
  mx_release(node);
  return st;
}

mx_status mx_eigh(mx_array *a, mx_array **w, mx_array **v) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL;
  mx_status st = as_matrices("eigh", a, 1, storage, &x);
  if (st) return st;
  int64_t n = a->shape[a->ndim - 1];
  st = packed_node(MX_OP_EIGH, x, n + n * n, 0, 9.0 * (double)n * n * n, &node);
  if (!st) st = unpack_parts(node, storage, 2, (packed_part[]){{0, 1, {n}, w}, {n, 2, {n, n}, v}});
  mx_release(x);
  mx_release(node);
  return st;
}

mx_status mx_eigvalsh(mx_array *a, mx_array **w) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL;
  mx_status st = as_matrices("eigvalsh", a, 1, storage, &x);
  if (st) return st;
  double n = (double)a->shape[a->ndim - 1];
  st = packed_node(MX_OP_EIGH, x, a->shape[a->ndim - 1], 1, 4.0 * n * n * n / 3, &node);
  if (!st) st = mx_cast(node, storage, w);
  mx_release(x);
  mx_release(node);
  return st;
}

/* ---- diagonal, trace, diag: strided views of the flattened matrix ------------------------------- */

static mx_status diagonal_of(const char *op, mx_array *a, int64_t offset, mx_array **out) {
  char b1[128];
  if (a->ndim < 2)
    return mx_error(MX_EINVAL, "[%s] expects a matrix or a batch of matrices [..., m, n], got %s", op,
                    mx_describe(a, b1, sizeof b1));
  int r = a->ndim;
  int64_t m = a->shape[r - 2], n = a->shape[r - 1], d = 0, first = 0, mn;
  if (__builtin_mul_overflow(m, n, &mn))
    return mx_error(MX_EINVAL, "[%s] the matrices of %s are too large to index", op, mx_describe(a, b1, sizeof b1));
  if (offset >= 0 && offset < n) {
    d = n - offset < m ? n - offset : m;
    first = offset;
  } else if (offset < 0 && offset > -m) {
    d = m + offset < n ? m + offset : n;
    first = -offset * n;
  }
  /* The diagonal of a row-major [m, n] matrix is every (n + 1)-th element from `first`. */
  int64_t flat[MX_MAX_RANK], start[MX_MAX_RANK], stop[MX_MAX_RANK], stride[MX_MAX_RANK];
  for (int i = 0; i < r - 1; i++) {
    flat[i] = stop[i] = a->shape[i];
    start[i] = 0;
    stride[i] = 1;
  }
  flat[r - 2] = mn;
  stop[r - 2] = flat[r - 2];
  start[r - 2] = d > 0 ? first : 0;
  stop[r - 2] = d > 0 ? first + (d - 1) * (n + 1) + 1 : 0;
  stride[r - 2] = n + 1;
  mx_array *f = NULL;
  mx_status st = mx_reshape(a, r - 1, flat, &f);
  if (!st) st = mx_slice(f, start, stop, stride, out);
  mx_release(f);
  return st;
}

mx_status mx_diagonal(mx_array *a, int64_t offset, mx_array **out) { return diagonal_of("diagonal", a, offset, out); }

mx_status mx_trace(mx_array *a, int64_t offset, mx_array **out) {
  mx_array *d = NULL;
  mx_status st = diagonal_of("trace", a, offset, &d);
  if (!st) st = reduce1(MX_OP_SUM, d, -1, 0, out);
  mx_release(d);
  return st;
}

/* The vector padded with n + |k| zeros between elements lands on diagonal k of the flattened square. */
mx_status mx_diag(mx_array *v, int64_t k, mx_array **out) {
  char b1[128];
  if (v->ndim < 1 || v->ndim + 1 > MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[diag] expects a vector or a batch of vectors [..., n] of rank 1..%d, got %s",
                    MX_MAX_RANK - 1, mx_describe(v, b1, sizeof b1));
  int r = v->ndim;
  int64_t n = v->shape[r - 1], ak = k < 0 ? -k : k, N, NN;
  if (k == INT64_MIN || __builtin_add_overflow(n, ak, &N) || __builtin_mul_overflow(N, N, &NN) ||
      NN > ((int64_t)1 << 48))
    return mx_error(MX_EINVAL, "[diag] offset %lld makes a %s too large a matrix; use a smaller offset", (long long)k,
                    mx_describe(v, b1, sizeof b1));
  int64_t lo[MX_MAX_RANK] = {0}, hi[MX_MAX_RANK] = {0}, interior[MX_MAX_RANK] = {0}, shape[MX_MAX_RANK];
  int64_t first = k >= 0 ? k : ak * N;
  lo[r - 1] = n > 0 ? first : 0;
  interior[r - 1] = N;
  hi[r - 1] = n > 0 ? NN - (first + (n - 1) * (N + 1) + 1) : NN;
  for (int i = 0; i < r - 1; i++) shape[i] = v->shape[i];
  shape[r - 1] = N;
  shape[r] = N;
  mx_array *zero = NULL, *p = NULL;
  mx_status st = mx_full((mx_dtype)v->dtype, 0, NULL, 0, &zero);
  if (!st) st = mx_pad(v, zero, lo, hi, interior, &p);
  if (!st) st = mx_reshape(p, r + 1, shape, out);
  mx_release(zero);
  mx_release(p);
  return st;
}

/* ---- outer and cross ---------------------------------------------------------------------------- */

mx_status mx_outer(mx_array *a, mx_array *b, mx_array **out) {
  int64_t sa[2] = {a->size, 1}, sb[2] = {1, b->size};
  mx_array *x = NULL, *y = NULL;
  mx_status st = mx_reshape(a, 2, sa, &x);
  if (!st) st = mx_reshape(b, 2, sb, &y);
  if (!st) st = mx_binary(MX_OP_MULTIPLY, x, y, out);
  mx_release(x);
  mx_release(y);
  return st;
}

static mx_status component(mx_array *a, int axis, int64_t i, mx_array **out) {
  int64_t start[MX_MAX_RANK], stop[MX_MAX_RANK];
  for (int d = 0; d < a->ndim; d++) {
    start[d] = d == axis ? i : 0;
    stop[d] = d == axis ? i + 1 : a->shape[d];
  }
  return mx_slice(a, start, stop, NULL, out);
}

/* c_i = a_j b_k - a_k b_j for (i, j, k) cyclic, along axis; other axes broadcast. */
mx_status mx_cross(mx_array *a, mx_array *b, int axis, mx_array **out) {
  char b1[128], b2[128];
  mx_array *ab[2] = {a, b};
  int r = 0;
  int64_t bshape[MX_MAX_RANK];
  if (a->ndim == 0 || b->ndim == 0)
    return mx_error(MX_EINVAL, "[cross] expects vectors of 3 components along an axis, got %s and %s",
                    mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2));
  mx_status st = mx_broadcast_shape("cross", 2, ab, &r, bshape);
  if (st) return st;
  int ax = 0;
  mx_array *x = NULL, *y = NULL;
  /* Same rank for both (leading unit axes), so axis names the same axis in each. */
  int64_t s[MX_MAX_RANK];
  for (int i = 0; i < r; i++) s[i] = i < r - a->ndim ? 1 : a->shape[i - (r - a->ndim)];
  st = mx_reshape(a, r, s, &x);
  for (int i = 0; i < r; i++) s[i] = i < r - b->ndim ? 1 : b->shape[i - (r - b->ndim)];
  if (!st) st = mx_reshape(b, r, s, &y);
  if (!st) st = mx_normalize_axis("cross", x, axis, r, &ax);
  if (!st && (x->shape[ax] != 3 || y->shape[ax] != 3))
    st = mx_error(MX_EINVAL, "[cross] axis %d must have 3 components in both inputs, got %s and %s", axis,
                  mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2));
  mx_array *ac[3] = {0}, *bc[3] = {0}, *c[3] = {0};
  for (int i = 0; i < 3 && !st; i++) {
    st = component(x, ax, i, &ac[i]);
    if (!st) st = component(y, ax, i, &bc[i]);
  }
  for (int i = 0; i < 3 && !st; i++) {
    int j = (i + 1) % 3, k = (i + 2) % 3;
    mx_array *p = NULL, *q = NULL;
    st = mx_binary(MX_OP_MULTIPLY, ac[j], bc[k], &p);
    if (!st) st = mx_binary(MX_OP_MULTIPLY, ac[k], bc[j], &q);
    if (!st) st = mx_binary(MX_OP_SUBTRACT, p, q, &c[i]);
    mx_release(p);
    mx_release(q);
  }
  if (!st) st = mx_concatenate(c, 3, ax, out);
  for (int i = 0; i < 3; i++) {
    mx_release(ac[i]);
    mx_release(bc[i]);
    mx_release(c[i]);
  }
  mx_release(x);
  mx_release(y);
  return st;
}

/* ---- norm ------------------------------------------------------------------------------------- */

/* sqrt(sum(x^2)) over axes (NULL: all). */
static mx_status two_norm(mx_array *x, const int *axes, int naxes, int keep, mx_array **out) {
  mx_array *sq = NULL, *s = NULL;
  mx_status st = mx_unary(MX_OP_SQUARE, x, &sq);
  if (!st) st = mx_reduce(MX_OP_SUM, sq, axes, naxes, keep, &s);
  if (!st) st = mx_unary(MX_OP_SQRT, s, out);
  mx_release(sq);
  mx_release(s);
  return st;
}

static mx_status scalar_like(mx_array *x, double v, mx_array **out) {
  return mx_full((mx_dtype)x->dtype, 0, NULL, v, out);
}

static mx_status vector_norm(mx_array *x, mx_norm_kind kind, double p, int ax, int keep, mx_array **out) {
  if (kind == MX_NORM_FRO || kind == MX_NORM_NUC)
    return mx_error(MX_EINVAL, "[norm] ord %s is a matrix norm; vector norms take a number, :infinity or "
                    ":neg_infinity (or give two axes)", kind == MX_NORM_FRO ? ":fro" : ":nuc");
  if (kind == MX_NORM_DEFAULT || p == 2) return two_norm(x, &ax, 1, keep, out);
  mx_array *ab = NULL, *t = NULL, *u = NULL, *e = NULL, *f = NULL;
  mx_status st;
  if (p == 0) { /* the number of nonzero entries */
    st = scalar_like(x, 0, &e);
    if (!st) st = mx_binary(MX_OP_NOT_EQUAL, x, e, &t);
    if (!st) st = reduce1(MX_OP_SUM, t, ax, keep, &u);
    if (!st) st = mx_as_type(u, (mx_dtype)x->dtype, out);
  } else {
    st = mx_unary(MX_OP_ABS, x, &ab);
    if (!st && isinf(p)) {
      st = reduce1(p > 0 ? MX_OP_REDUCE_MAX : MX_OP_REDUCE_MIN, ab, ax, keep, out);
    } else if (!st && p == 1) {
      st = reduce1(MX_OP_SUM, ab, ax, keep, out);
    } else if (!st) { /* (sum |x|^p)^(1/p) */
      st = scalar_like(x, p, &e);
      if (!st) st = mx_binary(MX_OP_POW, ab, e, &t);
      if (!st) st = reduce1(MX_OP_SUM, t, ax, keep, &u);
      if (!st) st = scalar_like(x, 1 / p, &f);
      if (!st) st = mx_binary(MX_OP_POW, u, f, out);
    }
  }
  mx_release(ab);
  mx_release(t);
  mx_release(u);
  mx_release(e);
  mx_release(f);
  return st;
}

static mx_status matrix_norm(mx_array *x, mx_norm_kind kind, double p, int ra, int ca, int keep, mx_array **out) {
  int both[2] = {ra < ca ? ra : ca, ra < ca ? ca : ra};
  if (kind == MX_NORM_DEFAULT || kind == MX_NORM_FRO) return two_norm(x, both, 2, keep, out);
  mx_status st = MX_OK;
  mx_array *ab = NULL, *s = NULL, *t = NULL, *m = NULL;
  if (kind == MX_NORM_P && (p == 1 || p == -1 || isinf(p))) {
    /* 1: the largest column sum of |x| (sum over rows); inf: the largest row sum. */
    int sum_axis = isinf(p) ? ca : ra, pick_axis = isinf(p) ? ra : ca;
    st = mx_unary(MX_OP_ABS, x, &ab);
    if (!st) st = reduce1(MX_OP_SUM, ab, sum_axis, 1, &s);
    if (!st) st = reduce1(p > 0 ? MX_OP_REDUCE_MAX : MX_OP_REDUCE_MIN, s, pick_axis, 1, keep ? out : &m);
    if (!st && !keep) st = mx_squeeze(m, both, 2, out);
  } else if (kind == MX_NORM_NUC || (kind == MX_NORM_P && (p == 2 || p == -2))) {
    /* From the singular values: matrix axes last, then reduce them. */
    int perm[MX_MAX_RANK], r = 0;
    for (int i = 0; i < x->ndim; i++)
      if (i != ra && i != ca) perm[r++] = i;
    perm[r++] = ra;
    perm[r++] = ca;
    mx_op op = kind == MX_NORM_NUC ? MX_OP_SUM : p > 0 ? MX_OP_REDUCE_MAX : MX_OP_REDUCE_MIN;
    st = mx_transpose(x, perm, &t);
    if (!st) st = mx_svdvals(t, &s);
    if (!st) st = reduce1(op, s, -1, 0, keep ? &m : out);
    if (!st && keep) {
      int64_t shape[MX_MAX_RANK];
      for (int i = 0; i < x->ndim; i++) shape[i] = i == ra || i == ca ? 1 : x->shape[i];
      st = mx_reshape(m, x->ndim, shape, out);
    }
  } else {
    st = mx_error(MX_EINVAL, "[norm] ord %g is not a matrix norm; matrix norms take :fro, :nuc, 1, -1, 2, -2, "
                  ":infinity or :neg_infinity", p);
  }
  mx_release(ab);
  mx_release(s);
  mx_release(t);
  mx_release(m);
  return st;
}

mx_status mx_norm(mx_array *a, mx_norm_kind kind, double p, const int *axes, int naxes, int keep, mx_array **out) {
  char b1[128];
  if ((unsigned)kind > MX_NORM_P || (kind == MX_NORM_P && isnan(p)))
    return mx_error(MX_EINVAL, "[norm] unknown norm order; use nil, :fro, :nuc or a number");
  mx_status cx = no_complex("norm", a);
  if (cx) return cx;
  int ax[2] = {0, 0}, nax;
  mx_status st = MX_OK;
  if (axes == NULL || naxes < 0) {
    if (kind == MX_NORM_DEFAULT || (kind == MX_NORM_P && p == 2 && a->ndim == 1) ||
        (kind == MX_NORM_FRO && a->ndim == 2)) {
      mx_array *x = NULL;
      st = mx_cast(a, float_storage((mx_dtype)a->dtype), &x);
      if (!st) st = two_norm(x, NULL, -1, keep, out);
      mx_release(x);
      return st;
    }
    if (a->ndim != 1 && a->ndim != 2)
      return mx_error(MX_EINVAL,
                      "[norm] ord needs axes for %s: pass axes: [i] for a vector norm or [i, j] for a matrix norm",
                      mx_describe(a, b1, sizeof b1));
    nax = a->ndim;
    ax[1] = 1;
  } else {
    if (naxes != 1 && naxes != 2)
      return mx_error(MX_EINVAL, "[norm] takes one axis (vector norms) or two (matrix norms), got %d", naxes);
    nax = naxes;
    for (int i = 0; i < naxes && !st; i++) st = mx_normalize_axis("norm", a, axes[i], a->ndim, &ax[i]);
    if (st) return st;
    if (nax == 2 && ax[0] == ax[1])
      return mx_error(MX_EINVAL, "[norm] the two matrix axes must differ, got %d twice", ax[0]);
  }
  mx_array *x = NULL;
  st = mx_cast(a, float_storage((mx_dtype)a->dtype), &x);
  if (!st) st = nax == 1 ? vector_norm(x, kind, p, ax[0], keep, out) : matrix_norm(x, kind, p, ax[0], ax[1], keep, out);
  mx_release(x);
  return st;
}

/* ---- lu and eig ------------------------------------------------------------------------------ */

/* Real or complex (cgetrf/zgetrf; the pivots then sit in the real parts). */
mx_status mx_lu(mx_array *a, mx_array **factors, mx_array **perm) {
  int cplx = mx_is_complex((mx_dtype)a->dtype);
  mx_dtype storage = cplx ? (mx_dtype)a->dtype : float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL, *piv = NULL, *pr = NULL, *f = NULL;
  mx_status st = MX_OK;
  if (cplx) { /* as_matrices without its real-only check */
    char b1[128];
    int64_t nn;
    if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2])
      return mx_error(MX_EINVAL, "[lu] expects square matrices [..., n, n], got %s", mx_describe(a, b1, sizeof b1));
    if (__builtin_mul_overflow(a->shape[a->ndim - 1], a->shape[a->ndim - 1], &nn) || nn > MX_LAPACK_INT_MAX)
      return mx_error(MX_EINVAL, "[lu] %s exceeds LAPACK's integer range; use smaller matrices", mx_describe(a, b1, sizeof b1));
    mx_retain(a);
    x = a;
  } else {
    st = as_matrices("lu", a, 1, storage, &x);
  }
  if (st) return st;
  int64_t n = a->shape[a->ndim - 1], nn = n * n, shape_n[1] = {n};
  st = packed_node(MX_OP_LU, x, nn + n, 0, (cplx ? 8.0 : 2.0) * (double)n * n * n / 3, &node);
  if (!st) st = unpack(node, 0, 2, (int64_t[]){n, n}, storage, &f);
  if (!st) st = unpack(node, nn, 1, shape_n, (mx_dtype)x->dtype, &pr);
  if (!st && cplx) st = mx_unary(MX_OP_REAL, pr, &piv);
  else if (!st) {
    mx_retain(pr);
    piv = pr;
  }
  if (!st) st = mx_node_new(MX_OP_LU_PERMUTATION, MX_S64, piv->ndim, piv->shape, 1, &piv, NULL, perm);
  if (!st) {
    *factors = f;
    f = NULL;
  }
  mx_release(x);
  mx_release(node);
  mx_release(piv);
  mx_release(pr);
  mx_release(f);
  return st;
}

mx_status mx_eig(mx_array *a, mx_array **w, mx_array **v) {
  mx_dtype storage = float_storage((mx_dtype)a->dtype);
  mx_array *x = NULL, *node = NULL;
  mx_status st = as_matrices(v ? "eig" : "eigvals", a, 1, storage, &x);
  if (st) return st;
  /* geev runs in f32 or f64 (f16/bf16 in f32); results are the matching complex type. */
  mx_dtype ct = x->dtype == MX_F64 ? MX_C128 : MX_C64;
  int64_t n = a->shape[a->ndim - 1], len = v ? n + n * n : n, shape[MX_MAX_RANK];
  int r = x->ndim - 1;
  for (int i = 0; i < r - 1; i++) shape[i] = x->shape[i];
  shape[r - 1] = len;
  mx_params p = {.flags = v ? 0 : 1};
  st = mx_node_new(MX_OP_EIG, ct, r, shape, 1, &x, &p, &node);
  if (!st) set_cost(node, mx_batch_count(x, 2), 25.0 * (double)n * n * n);
  if (!st && v) st = unpack_parts(node, ct, 2, (packed_part[]){{0, 1, {n}, w}, {n, 2, {n, n}, v}});
  else if (!st) {
    mx_retain(node);
    *w = node;
  }
  mx_release(x);
  mx_release(node);
  return st;
}
