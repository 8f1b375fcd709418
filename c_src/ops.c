/* ops.c: the primitive table and the op constructors for elementwise,
 * reduction, scan, sort and matmul ops. A constructor validates its inputs,
 * infers the output shape and dtype, inserts casts where the dtype rule asks
 * for them, and returns a pending node. It never touches data. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mx.h"
#include "autodiff.h"
#include "ops_internal.h"
#include "prim/kernels.h"

#define VJP_D(id) mx_vjp_##id
#define VJP_Z(id) 0
#define VJP_N(id) 0
#define VJP_0(id) 0
#define GRAD_D 'D'
#define GRAD_Z 'Z'
#define GRAD_N 'N'
#define GRAD_0 'N'
const mx_op_info mx_ops[MX_OP_COUNT] = {
#define MX_OP(id, name, family, rule, kernel, vjp, jvp, batch) \
  [MX_OP_##id] = {name, MX_FAM_##family, MX_RULE_##rule, kernel, VJP_##vjp(id), GRAD_##vjp},
#include "ops.def"
#undef MX_OP
};

int mx_op_from_name(const char *name) {
  for (int i = 0; i < MX_OP_COUNT; i++)
    if (strcmp(mx_ops[i].name, name) == 0) return i;
  return -1;
}

/* ---- helpers shared with ops_shape.c ----------------------------------------- */

mx_status mx_cast(mx_array *a, mx_dtype t, mx_array **out) {
  if ((mx_dtype)a->dtype == t) {
    mx_retain(a);
    *out = a;
    return MX_OK;
  }
  /* Implicit casts never drop an imaginary part (explicit as_type may: it takes the real part). */
  if (mx_is_complex((mx_dtype)a->dtype) && !mx_is_complex(t)) {
    char b[128];
    return mx_error(MX_EINVAL,
                    "[as_type] an op needs %s where %s was given and would drop the imaginary part; take "
                    "Mx.real/1 or Mx.abs/1 first, or convert explicitly with as_type",
                    mx_dtype_name(t), mx_describe(a, b, sizeof b));
  }
  return mx_as_type(a, t, out);
}

mx_status mx_check_live(const char *op, int n, mx_array *const *arrays) {
  for (int i = 0; i < n; i++)
    if (atomic_load(&arrays[i]->state) == MX_DISPOSED)
      return mx_error(MX_EDISPOSED, "[%s] input %d was disposed; it cannot be used again", op, i);
  return MX_OK;
}

/* Kernels compute in these dtypes; f16/bf16 are storage and compute in f32. */
mx_dtype mx_compute_type(mx_dtype t) { return (t == MX_F16 || t == MX_BF16) ? MX_F32 : t; }

static mx_dtype float_type(mx_dtype t) { return mx_is_float(t) ? t : MX_F32; }

mx_status mx_normalize_axis(const char *op, const mx_array *a, int64_t axis, int rank, int *out) {
  char buf[128];
  if (axis < -rank || axis >= rank)
    return mx_error(MX_EINVAL, "[%s] axis %lld is out of range for %s; axes must be in [%d, %d)", op,
                    (long long)axis, mx_describe(a, buf, sizeof buf), -rank, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return MX_OK;
}

mx_status mx_broadcast_shape(const char *op, int n, mx_array *const *arrays, int *ndim, int64_t *shape) {
  int r = 0;
  for (int i = 0; i < n; i++)
    if (arrays[i]->ndim > r) r = arrays[i]->ndim;
  for (int d = 0; d < r; d++) {
    int64_t dim = 1;
    for (int i = 0; i < n; i++) {
      int j = arrays[i]->ndim - r + d;
      if (j < 0) continue;
      int64_t s = arrays[i]->shape[j];
      if (s == dim || s == 1) continue;
      if (dim != 1) {
        char b1[128], b2[128];
        return mx_error(MX_EINVAL,
                        "[%s] shapes %s and %s cannot be broadcast together: axis %d has sizes %lld and %lld; "
                        "sizes must match or be 1 (reshape or new_axis to align them)",
                        op, mx_describe(arrays[0], b1, sizeof b1), mx_describe(arrays[n > 1 ? 1 : 0], b2, sizeof b2), d,
                        (long long)dim, (long long)s);
      }
      dim = s;
    }
    shape[d] = dim;
  }
  *ndim = r;
  return MX_OK;
}

/* Build a node from computed-dtype inputs, then cast to the storage dtype. */
static mx_status node_then_cast(mx_op op, mx_dtype compute, mx_dtype storage, int ndim, const int64_t *shape, int n_in,
                                mx_array *const *in, const mx_params *p, mx_array **out) {
  mx_array *node;
  mx_status st = mx_node_new(op, compute, ndim, shape, n_in, in, p, &node);
  if (st || compute == storage) {
    if (!st) *out = node;
    return st;
  }
  st = mx_as_type(node, storage, out);
  mx_release(node);
  return st;
}

/* Cost per element in units of ~0.1 ns of one core, so scheduling (inline or dirty)
 * sees the work, not just the size; graph.c adds the bytes written (a unit a byte:
 * memory traffic and first-touch page faults) and a constant per node. Measured by
 * per-thread CPU time under load (bench/scheduling.exs) and rounded up: an overestimate
 * only sends more work to a dirty scheduler. Constructors with a better model
 * (matmul, linalg, fft, sort, reduce) set the cost themselves. */
int64_t mx_op_weight(mx_op op) {
  switch (op) {
  case MX_OP_BETAINC: /* a continued fraction of tens of long double steps */
    return 2048;
  case MX_OP_IGAMMA: case MX_OP_IGAMMAC: case MX_OP_RANDOM_GAMMA: case MX_OP_RANDOM_POISSON:
  case MX_OP_RANDOM_TRUNCATED_NORMAL: /* series, continued fractions, rejection loops */
    return 960;
  case MX_OP_NDTRI: case MX_OP_ERF_INV:
    return 384;
  case MX_OP_TRIGAMMA: case MX_OP_LOG_NDTR: case MX_OP_LGAMMA: case MX_OP_DIGAMMA: case MX_OP_RANDOM_NORMAL:
    return 160;
  case MX_OP_TAKE: case MX_OP_TAKE_ALONG_AXIS: case MX_OP_GATHER: /* random reads: cache and TLB misses */
    return 256;
  case MX_OP_EXP: case MX_OP_EXPM1: case MX_OP_LOG: case MX_OP_LOG1P: case MX_OP_SIN: case MX_OP_COS:
  case MX_OP_TAN: case MX_OP_ASIN: case MX_OP_ACOS: case MX_OP_ATAN: case MX_OP_SINH: case MX_OP_COSH:
  case MX_OP_TANH: case MX_OP_SIGMOID: case MX_OP_ERF: case MX_OP_POW: case MX_OP_ATAN2: case MX_OP_LOGADDEXP:
  case MX_OP_REMAINDER: case MX_OP_ERFC: case MX_OP_RANDOM_BITS: case MX_OP_RANDOM_RANDINT:
  case MX_OP_INDEXED_ADD: case MX_OP_INDEXED_PUT:
    return 48;
  case MX_OP_SELECT: case MX_OP_TRANSPOSE: case MX_OP_AS_TYPE:
    return 16;
  case MX_OP_RESHAPE: case MX_OP_STOP_GRADIENT: case MX_OP_CONSTANT: /* no kernel work */
    return 0;
  default:
    return 2;
  }
}

/* ---- sources ------------------------------------------------------------------ */

static mx_status check_dtype(const char *op, mx_dtype t) {
  if ((unsigned)t >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[%s] unknown dtype id %d", op, (int)t);
  return MX_OK;
}

static mx_status source(mx_op op, mx_dtype t, int ndim, const int64_t *shape, const mx_params *p, mx_array **out) {
  mx_status st = check_dtype(mx_ops[op].name, t);
  if (st) return st;
  return mx_node_new(op, t, ndim, shape, 0, NULL, p, out); /* source kernels write every dtype, f16/bf16 too */
}

mx_status mx_full(mx_dtype t, int ndim, const int64_t *shape, double value, mx_array **out) {
  mx_params p = {.f = {value, 0}};
  return source(MX_OP_FULL, t, ndim, shape, &p, out);
}

mx_status mx_iota(mx_dtype t, int ndim, const int64_t *shape, int axis, mx_array **out) {
  mx_params p = {.axis = -1};
  if (axis >= 0 && axis >= ndim)
    return mx_error(MX_EINVAL, "[iota] axis %d is out of range for rank %d; use an axis in [0, %d) or nil", axis,
                    ndim, ndim);
  p.axis = axis < 0 ? -1 : axis;
  return source(MX_OP_IOTA, t, ndim, shape, &p, out);
}

mx_status mx_arange(mx_dtype t, double start, double step, int64_t n, mx_array **out) {
  if (step == 0 || !isfinite(step)) return mx_error(MX_EINVAL, "[arange] step must be finite and nonzero, got %g", step);
  mx_params p = {.f = {start, step}};
  return source(MX_OP_ARANGE, t, 1, &n, &p, out);
}

mx_status mx_linspace(mx_dtype t, double start, double stop, int64_t n, int endpoint, mx_array **out) {
  mx_params p = {.f = {start, stop}, .flags = endpoint ? 1 : 0};
  return source(MX_OP_LINSPACE, t, 1, &n, &p, out);
}

mx_status mx_eye(mx_dtype t, int64_t n, int64_t m, mx_array **out) {
  int64_t shape[2] = {n, m}, size;
  mx_status st0 = mx_check_shape("eye", 2, shape, &size);
  if (st0) return st0;
  mx_array *r = NULL, *c = NULL, *eq = NULL;
  mx_status st = mx_iota(MX_S64, 2, shape, 0, &r);
  if (!st) st = mx_iota(MX_S64, 2, shape, 1, &c);
  if (!st) st = mx_binary(MX_OP_EQUAL, r, c, &eq);
  if (!st) st = mx_as_type(eq, t, out);
  mx_release(r);
  mx_release(c);
  mx_release(eq);
  return st;
}

mx_status mx_as_type(mx_array *a, mx_dtype t, mx_array **out) {
  mx_status st = check_dtype("as_type", t);
  if (st) return st;
  return mx_node_new(MX_OP_AS_TYPE, t, a->ndim, a->shape, 1, &a, NULL, out);
}

/* ---- elementwise ------------------------------------------------------------- */

static mx_status wrong_family(mx_op op, const char *want) {
  if ((unsigned)op >= MX_OP_COUNT) return mx_error(MX_EINVAL, "unknown op id %d", (int)op);
  return mx_error(MX_EINVAL, "[%s] is not a %s op", mx_ops[op].name, want);
}

mx_status mx_unary(mx_op op, mx_array *a, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || mx_ops[op].family != MX_FAM_UNARY || op == MX_OP_AS_TYPE)
    return wrong_family(op, "unary");
  mx_status live = mx_check_live(mx_ops[op].name, 1, &a);
  if (live) return live;
  if (mx_ops[op].rule == MX_RULE_INT || op == MX_OP_BITCAST) return mx_int_unary(op, a, out); /* ops_bitwise.c */
  if (mx_is_complex((mx_dtype)a->dtype) || op == MX_OP_REAL || op == MX_OP_IMAG || op == MX_OP_CONJUGATE ||
      op == MX_OP_ANGLE)
    return mx_unary_complex(op, a, out); /* ops_complex.c */
  mx_dtype in = (mx_dtype)a->dtype, storage, compute;
  switch (mx_ops[op].rule) {
  case MX_RULE_FLOAT:
    storage = float_type(in);
    compute = mx_compute_type(storage);
    break;
  case MX_RULE_BOOL:
    storage = MX_BOOL;
    compute = MX_BOOL;
    in = mx_compute_type(in);
    break;
  default: /* SAME: bool computes as u8, as Nx stores booleans */
    storage = in == MX_BOOL ? MX_U8 : in;
    compute = mx_compute_type(storage);
    break;
  }
  mx_dtype in_compute = mx_ops[op].rule == MX_RULE_BOOL ? in : compute;
  mx_array *x;
  mx_status st = mx_cast(a, in_compute, &x);
  if (st) return st;
  mx_array *node = NULL;
  st = mx_node_new(op, compute, a->ndim, a->shape, 1, &x, NULL, &node);
  mx_release(x);
  if (st) return st;
  st = mx_cast(node, storage, out);
  mx_release(node);
  return st;
}

mx_status mx_binary(mx_op op, mx_array *a, mx_array *b, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || mx_ops[op].family != MX_FAM_BINARY) return wrong_family(op, "binary");
  mx_array *ab[2] = {a, b};
  int ndim = 0;
  int64_t shape[MX_MAX_RANK];
  mx_status st = mx_check_live(mx_ops[op].name, 2, ab);
  if (!st) st = mx_broadcast_shape(mx_ops[op].name, 2, ab, &ndim, shape);
  if (st) return st;
  if (mx_ops[op].rule == MX_RULE_INT) return mx_int_binary(op, a, b, ndim, shape, out); /* ops_bitwise.c */
  mx_dtype t = mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype), storage, compute;
  if (mx_is_complex(t) || op == MX_OP_COMPLEX) return mx_binary_complex(op, a, b, ndim, shape, out); /* ops_complex.c */
  switch (mx_ops[op].rule) {
  case MX_RULE_FLOAT:
    storage = float_type(t);
    compute = mx_compute_type(storage);
    break;
  case MX_RULE_CMP:
  case MX_RULE_LOGIC:
    compute = mx_compute_type(t);
    storage = MX_BOOL;
    break;
  default: /* ARITH */
    storage = t == MX_BOOL ? MX_U8 : t;
    compute = mx_compute_type(storage);
    break;
  }
  mx_array *x = NULL, *y = NULL, *node = NULL;
  st = mx_cast(a, compute, &x);
  if (!st) st = mx_cast(b, compute, &y);
  mx_array *xy[2] = {x, y};
  mx_dtype node_type = storage == MX_BOOL ? MX_BOOL : compute;
  if (!st) st = mx_node_new(op, node_type, ndim, shape, 2, xy, NULL, &node);
  if (!st) st = mx_cast(node, storage, out);
  mx_release(x);
  mx_release(y);
  mx_release(node);
  return st;
}

mx_status mx_select(mx_array *pred, mx_array *on_true, mx_array *on_false, mx_array **out) {
  mx_array *all[3] = {pred, on_true, on_false};
  int ndim = 0;
  int64_t shape[MX_MAX_RANK];
  mx_status st = mx_check_live("select", 3, all);
  if (!st) st = mx_broadcast_shape("select", 3, all, &ndim, shape);
  if (st) return st;
  mx_dtype storage = mx_promote((mx_dtype)on_true->dtype, (mx_dtype)on_false->dtype);
  mx_dtype compute = mx_compute_type(storage);
  mx_array *p = NULL, *x = NULL, *y = NULL;
  st = mx_cast(pred, mx_compute_type((mx_dtype)pred->dtype), &p);
  if (!st) st = mx_cast(on_true, compute, &x);
  if (!st) st = mx_cast(on_false, compute, &y);
  mx_array *in[3] = {p, x, y};
  if (!st) st = node_then_cast(MX_OP_SELECT, compute, storage, ndim, shape, 3, in, NULL, out);
  mx_release(p);
  mx_release(x);
  mx_release(y);
  return st;
}

mx_status mx_clip(mx_array *a, mx_array *lo, mx_array *hi, mx_array **out) {
  mx_array *m;
  mx_status st = mx_binary(MX_OP_MAX, a, lo, &m);
  if (st) return st;
  st = mx_binary(MX_OP_MIN, m, hi, out);
  mx_release(m);
  return st;
}

/* ---- reductions, scans, sorts ------------------------------------------------ */

static mx_dtype aggregate_type(mx_dtype t) {
  if (t == MX_BOOL) return MX_S64;
  if (mx_is_int(t)) return mx_is_unsigned(t) ? MX_U64 : MX_S64;
  return t;
}

mx_status mx_reduce(mx_op op, mx_array *a, const int *axes, int naxes, int keep, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || mx_ops[op].family != MX_FAM_REDUCE) return wrong_family(op, "reduction");
  const char *name = mx_ops[op].name;
  mx_status live = mx_check_live(name, 1, &a);
  if (live) return live;
  if (mx_is_complex((mx_dtype)a->dtype) && mx_ops[op].rule != MX_RULE_AGG && mx_ops[op].rule != MX_RULE_BOOL)
    return mx_complex_unsupported(op, a); /* max, min, argmax, argmin need an order */
  int reduced[MX_MAX_RANK] = {0};
  mx_params p = {.flags = keep ? MX_F_KEEP : 0};
  if (axes == NULL || naxes < 0) {
    for (int i = 0; i < a->ndim; i++) reduced[i] = 1;
  } else {
    for (int i = 0; i < naxes; i++) {
      int ax = 0;
      mx_status st = mx_normalize_axis(name, a, axes[i], a->ndim, &ax);
      if (st) return st;
      if (reduced[ax]) return mx_error(MX_EINVAL, "[%s] axis %d is listed twice; list each axis once", name, ax);
      reduced[ax] = 1;
    }
  }
  int ndim = 0;
  int64_t shape[MX_MAX_RANK];
  int64_t rsize = 1;
  for (int i = 0; i < a->ndim; i++) {
    if (reduced[i]) {
      p.ip[p.nip++] = i;
      rsize *= a->shape[i];
      if (keep) shape[ndim++] = 1;
    } else {
      shape[ndim++] = a->shape[i];
    }
  }
  mx_rule rule = mx_ops[op].rule;
  int64_t out_size = 1;
  for (int i = 0; i < ndim; i++) out_size *= shape[i];
  if (rsize == 0 && out_size > 0 && (rule == MX_RULE_SAME || rule == MX_RULE_INDEX)) {
    char buf[128];
    return mx_error(MX_EINVAL, "[%s] cannot reduce %s over empty axes: the result is undefined; use a non-empty array",
                    name, mx_describe(a, buf, sizeof buf));
  }
  mx_dtype in = (mx_dtype)a->dtype, storage, compute, in_compute;
  switch (rule) {
  case MX_RULE_AGG:
    storage = aggregate_type(in);
    compute = in_compute = mx_compute_type(storage);
    break;
  case MX_RULE_INDEX:
    storage = compute = MX_S64;
    in_compute = mx_compute_type(in);
    break;
  case MX_RULE_BOOL:
    storage = compute = MX_BOOL;
    in_compute = mx_compute_type(in);
    break;
  default:
    storage = in;
    compute = in_compute = mx_compute_type(in);
    break;
  }
  mx_array *x;
  mx_status st = mx_cast(a, in_compute, &x);
  if (st) return st;
  mx_array *node;
  st = mx_node_new(op, compute, ndim, shape, 1, &x, &p, &node);
  mx_release(x);
  if (st) return st;
  node->cost = (int64_t)mx_nbytes(a); /* reads all of a */
  st = mx_cast(node, storage, out);
  mx_release(node);
  return st;
}

mx_status mx_scan(mx_op op, mx_array *a, int axis, int reverse, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || mx_ops[op].family != MX_FAM_SCAN) return wrong_family(op, "scan");
  int ax = 0;
  mx_status st = mx_check_live(mx_ops[op].name, 1, &a);
  if (!st && mx_is_complex((mx_dtype)a->dtype) && mx_ops[op].rule != MX_RULE_AGG) st = mx_complex_unsupported(op, a);
  if (!st) st = mx_normalize_axis(mx_ops[op].name, a, axis, a->ndim, &ax);
  if (st) return st;
  mx_params p = {.axis = ax, .flags = reverse ? MX_F_REVERSE : 0};
  mx_dtype storage = mx_ops[op].rule == MX_RULE_AGG ? aggregate_type((mx_dtype)a->dtype) : (mx_dtype)a->dtype;
  mx_dtype compute = mx_compute_type(storage);
  mx_array *x;
  st = mx_cast(a, compute, &x);
  if (st) return st;
  st = node_then_cast(op, compute, storage, a->ndim, a->shape, 1, &x, &p, out);
  mx_release(x);
  return st;
}

static mx_status sort_node(mx_op op, mx_array *a, int axis, int descending, mx_array **out) {
  int ax = 0;
  mx_status st = mx_check_live(mx_ops[op].name, 1, &a);
  if (!st && mx_is_complex((mx_dtype)a->dtype)) st = mx_complex_unsupported(op, a);
  if (!st) st = mx_normalize_axis(mx_ops[op].name, a, axis, a->ndim, &ax);
  if (st) return st;
  mx_params p = {.axis = ax, .flags = descending ? MX_F_DESC : 0};
  mx_dtype in = mx_compute_type((mx_dtype)a->dtype);
  mx_dtype storage = op == MX_OP_SORT ? (mx_dtype)a->dtype : MX_S64;
  mx_dtype compute = op == MX_OP_SORT ? in : MX_S64;
  mx_array *x, *node = NULL;
  st = mx_cast(a, in, &x);
  if (st) return st;
  st = mx_node_new(op, compute, a->ndim, a->shape, 1, &x, &p, &node);
  mx_release(x);
  if (st) return st;
  int64_t len = a->ndim ? a->shape[axis < 0 ? axis + a->ndim : axis] : 1, passes = 1;
  while (passes < 62 && ((int64_t)1 << passes) < len) passes++;
  node->cost = node->size * 32 * passes; /* a merge sort: log2(n) passes of ~3 ns an element */
  st = mx_cast(node, storage, out);
  mx_release(node);
  return st;
}

mx_status mx_sort(mx_array *a, int axis, int descending, mx_array **out) {
  return sort_node(MX_OP_SORT, a, axis, descending, out);
}

mx_status mx_argsort(mx_array *a, int axis, int descending, mx_array **out) {
  return sort_node(MX_OP_ARGSORT, a, axis, descending, out);
}

/* ---- matmul -------------------------------------------------------------------- */

/* The input of x, retained, when x is a pending transpose of its last two axes only (the
 * matmul reads that input with a BLAS transpose flag instead of the copy); else NULL. */
static mx_array *swapped_input(mx_array *x) {
  int r = x->ndim;
  if (x->op != MX_OP_TRANSPOSE || r < 2 || !x->params || x->params->ip[r - 2] != r - 1 ||
      x->params->ip[r - 1] != r - 2)
    return NULL;
  for (int d = 0; d < r - 2; d++)
    if (x->params->ip[d] != d) return NULL;
  mx_array *in = NULL;
  mx_graph_lock(); /* an eval on another thread detaches the inputs of what it computes */
  if (atomic_load(&x->state) == MX_PENDING && x->in && x->n_in == 1) mx_retain(in = x->in[0]);
  mx_graph_unlock();
  return in;
}

/* numpy matmul: 1-d operands gain a unit axis that is dropped afterwards;
 * batch axes broadcast. */
mx_status mx_matmul(mx_array *a, mx_array *b, mx_array **out) {
  char b1[128], b2[128];
  if (a->ndim == 0 || b->ndim == 0)
    return mx_error(MX_EINVAL, "[matmul] operands must have rank >= 1, got %s and %s; use multiply for scalars",
                    mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2));
  mx_array *x = NULL, *y = NULL, *node = NULL, *cast = NULL;
  mx_array *ab[2] = {a, b};
  mx_status st = mx_check_live("matmul", 2, ab);
  if (st) return st;
  if (a->ndim == 1) {
    int64_t s[2] = {1, a->shape[0]};
    st = mx_reshape(a, 2, s, &x);
  } else {
    mx_retain(a);
    x = a;
  }
  if (!st && b->ndim == 1) {
    int64_t s[2] = {b->shape[0], 1};
    st = mx_reshape(b, 2, s, &y);
  } else if (!st) {
    mx_retain(b);
    y = b;
  }
  if (st) goto done;
  int64_t m = x->shape[x->ndim - 2], k = x->shape[x->ndim - 1], k2 = y->shape[y->ndim - 2], n = y->shape[y->ndim - 1];
  if (k != k2) {
    st = mx_error(MX_EINVAL,
                  "[matmul] contraction sizes differ: %s has %lld columns but %s has %lld rows; "
                  "the last axis of a must match the second-to-last of b",
                  mx_describe(a, b1, sizeof b1), (long long)k, mx_describe(b, b2, sizeof b2), (long long)k2);
    goto done;
  }
  /* Broadcast the batch axes (all but the last two). */
  int bx = x->ndim - 2, by = y->ndim - 2, nb = bx > by ? bx : by;
  int64_t shape[MX_MAX_RANK];
  int64_t batch = 1;
  for (int d = 0; d < nb; d++) {
    int i = bx - nb + d, j = by - nb + d;
    int64_t sx = i >= 0 ? x->shape[i] : 1, sy = j >= 0 ? y->shape[j] : 1;
    if (sx != sy && sx != 1 && sy != 1) {
      st = mx_error(MX_EINVAL, "[matmul] batch axes of %s and %s cannot be broadcast (%lld vs %lld)",
                    mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2), (long long)sx, (long long)sy);
      goto done;
    }
    shape[d] = sx == 1 ? sy : sx;
    batch *= shape[d];
  }
  shape[nb] = m;
  shape[nb + 1] = n;
  mx_dtype storage = mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype);
  if (storage == MX_BOOL) storage = MX_U8;
  mx_dtype compute = mx_compute_type(storage);
  mx_array *cx = NULL, *cy = NULL, *sx = swapped_input(x), *sy = swapped_input(y);
  mx_params p = {.flags = (sx ? MX_MATMUL_TRANS_A : 0) | (sy ? MX_MATMUL_TRANS_B : 0)};
  st = mx_cast(sx ? sx : x, compute, &cx);
  if (!st) st = mx_cast(sy ? sy : y, compute, &cy);
  mx_array *in[2] = {cx, cy};
  if (!st) st = mx_node_new(MX_OP_MATMUL, compute, nb + 2, shape, 2, in, p.flags ? &p : NULL, &node);
  mx_release(sx);
  mx_release(sy);
  mx_release(cx);
  mx_release(cy);
  if (st) goto done;
  /* ~0.025 ns a multiply-add through BLAS, ~1 ns in the integer loops; at least the bytes read
   * (a matrix-vector product is memory bound) */
  node->cost = batch * m * n * (k > 0 ? k : 1) / 4 * (mx_is_float(compute) || mx_is_complex(compute) ? 1 : 40);
  if (node->cost < (int64_t)(mx_nbytes(cx) + mx_nbytes(cy))) node->cost = (int64_t)(mx_nbytes(cx) + mx_nbytes(cy));
  st = mx_cast(node, storage, &cast);
  if (st) goto done;
  /* Drop the unit axes added for 1-d operands. */
  if (a->ndim == 1 || b->ndim == 1) {
    int r = 0;
    int64_t s[MX_MAX_RANK];
    for (int d = 0; d < nb; d++) s[r++] = shape[d];
    if (a->ndim != 1) s[r++] = m;
    if (b->ndim != 1) s[r++] = n;
    st = mx_reshape(cast, r, s, out);
  } else {
    mx_retain(cast);
    *out = cast;
  }
done:
  mx_release(x);
  mx_release(y);
  mx_release(node);
  mx_release(cast);
  return st;
}
