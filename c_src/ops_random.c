/* ops_random.c: the constructor of the random primitives. It checks the key
 * (u32[2]), the output shape and dtype, and that each parameter broadcasts to
 * the output shape; casts parameters to the dtype the kernel reads; and
 * returns a pending node (cast to the requested storage dtype when the kernel
 * computes in another). The kernels and the counter layout are in prim/random.c. */
#include <stdio.h>
#include <string.h>

#include "mx.h"
#include "ops_internal.h"
#include "prim/random.h"

/* Elements whose sampler runs its own counter stream (index in the high word). */
#define MAX_STREAM_ELEMENTS ((int64_t)1 << 32)

static int is_random_op(mx_op op) {
  return op == MX_OP_RANDOM_BITS || op == MX_OP_RANDOM_NORMAL || op == MX_OP_RANDOM_TRUNCATED_NORMAL ||
         op == MX_OP_RANDOM_GAMMA || op == MX_OP_RANDOM_POISSON || op == MX_OP_RANDOM_RANDINT;
}

static mx_status check_key(const char *op, const mx_array *key, const char *what) {
  char buf[128];
  if ((mx_dtype)key->dtype != MX_U32 || key->ndim != 1 || key->shape[0] != 2)
    return mx_error(MX_EINVAL, "[%s] %s must be u32[2], got %s; make keys with Mx.Random.key/1, split/2 or fold_in/2",
                    op, what, mx_describe(key, buf, sizeof buf));
  return MX_OK;
}

/* A parameter may have fewer axes or size-1 axes, but never makes the output larger. */
static mx_status check_param(const char *op, const mx_array *p, int i, int ndim, const int64_t *shape) {
  char b1[128], b2[128];
  if (mx_is_complex((mx_dtype)p->dtype))
    return mx_error(MX_EINVAL, "[%s] parameter %d is complex (%s); distribution parameters are real", op, i + 1,
                    mx_describe(p, b1, sizeof b1));
  int ok = p->ndim <= ndim;
  for (int d = 0; ok && d < p->ndim; d++) {
    int64_t s = p->shape[p->ndim - 1 - d];
    ok = s == 1 || s == shape[ndim - 1 - d];
  }
  if (!ok)
    return mx_error(MX_EINVAL,
                    "[%s] parameter %d (%s) does not broadcast to the output shape %s; give a shape: that its "
                    "shape broadcasts to, or reshape the parameter",
                    op, i + 1, mx_describe(p, b1, sizeof b1), mx_describe_shape(ndim, shape, b2, sizeof b2));
  return MX_OK;
}

static mx_status bad_dtype(const char *op, mx_dtype t, const char *allowed) {
  return mx_error(MX_EINVAL, "[%s] cannot draw dtype %s; %s", op, mx_dtype_name(t), allowed);
}

/* The dtype the kernel writes for a requested dtype t, or -1 if op cannot draw t. */
static int kernel_dtype(mx_op op, mx_dtype t, int flags) {
  switch (op) {
  case MX_OP_RANDOM_BITS:
    if (t == MX_U32 || t == MX_U64) return flags & MX_RANDOM_OPEN ? -1 : (int)t;
    return mx_is_float(t) ? (int)mx_compute_type(t) : -1;
  case MX_OP_RANDOM_NORMAL:
  case MX_OP_RANDOM_TRUNCATED_NORMAL:
  case MX_OP_RANDOM_GAMMA:
    return mx_is_float(t) ? (int)mx_compute_type(t) : -1;
  case MX_OP_RANDOM_POISSON:
    if (mx_is_float(t)) return MX_F64;
    return mx_is_int(t) ? MX_S64 : -1;
  case MX_OP_RANDOM_RANDINT:
    if (t == MX_U64) return MX_U64;
    return mx_is_int(t) ? MX_S64 : -1;
  default:
    return -1;
  }
}

static const char *allowed_dtypes(mx_op op) {
  switch (op) {
  case MX_OP_RANDOM_BITS: return "use u32 or u64 for raw bits, or a float type for uniforms";
  case MX_OP_RANDOM_POISSON: return "use an integer type (default s64) or a float type";
  case MX_OP_RANDOM_RANDINT: return "use an integer type";
  default: return "use a float type (f32, f64, f16 or bf16)";
  }
}

mx_status mx_random(mx_op op, mx_array *key, int n_params, mx_array *const *params, mx_dtype t, int flags, int ndim,
                    const int64_t *shape, mx_array **out) {
  if ((unsigned)op >= MX_OP_COUNT || !is_random_op(op))
    return mx_error(MX_EINVAL, "[random] op %d is not a random primitive", (int)op);
  const char *name = mx_ops[op].name;
  if ((unsigned)t >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[%s] unknown dtype id %d", name, (int)t);
  mx_status st = check_key(name, key, "the key");
  if (st) return st;
  int64_t size;
  st = mx_check_shape(name, ndim, shape, &size);
  if (st) return st;

  int want_lo = 0, want_hi = 0;
  switch (op) {
  case MX_OP_RANDOM_BITS: want_lo = 0, want_hi = 1; break;
  case MX_OP_RANDOM_NORMAL: break;
  case MX_OP_RANDOM_GAMMA:
  case MX_OP_RANDOM_POISSON: want_lo = want_hi = 1; break;
  default: want_lo = want_hi = 2; break;
  }
  if (n_params < want_lo || n_params > want_hi)
    return mx_error(MX_EINVAL, "[%s] takes %d parameter array(s), got %d", name, want_hi, n_params);
  if ((flags & ~(MX_RANDOM_OPEN | MX_RANDOM_LOG)) || ((flags & MX_RANDOM_OPEN) && op != MX_OP_RANDOM_BITS) ||
      ((flags & MX_RANDOM_LOG) && op != MX_OP_RANDOM_GAMMA))
    return mx_error(MX_EINVAL,
                    "[%s] flags %d are not supported: open applies to random_bits floats, log to random_gamma", name,
                    flags);
  int kt = kernel_dtype(op, t, flags);
  if (kt < 0) return bad_dtype(name, t, allowed_dtypes(op));
  if (op != MX_OP_RANDOM_BITS && op != MX_OP_RANDOM_NORMAL && size > MAX_STREAM_ELEMENTS) {
    char buf[128];
    return mx_error(MX_EINVAL,
                    "[%s] shape %s has more than 2^32 elements, the most one key can draw here; split the key and "
                    "draw in parts",
                    name, mx_describe_shape(ndim, shape, buf, sizeof buf));
  }

  /* Parameters: the block offset of random_bits is u32[2]; the others broadcast and take the kernel's dtype. */
  mx_array *in[3] = {key, NULL, NULL};
  mx_status pst = MX_OK;
  int n_in = 1;
  for (int i = 0; i < n_params && pst == MX_OK; i++) {
    mx_array *p = params[i];
    if (op == MX_OP_RANDOM_BITS) {
      pst = check_key(name, p, "the counter offset");
      if (!pst) {
        mx_retain(p);
        in[n_in++] = p;
      }
      continue;
    }
    pst = check_param(name, p, i, ndim, shape);
    mx_dtype pt = op == MX_OP_RANDOM_POISSON ? MX_F64 : (mx_dtype)kt;
    if (!pst && op == MX_OP_RANDOM_RANDINT && !mx_is_int((mx_dtype)p->dtype)) {
      char buf[128];
      pst = mx_error(MX_EINVAL, "[%s] bound %d must be an integer array, got %s; round it and cast with as_type", name,
                     i + 1, mx_describe(p, buf, sizeof buf));
    }
    if (!pst) pst = mx_cast(p, pt, &in[n_in]);
    if (!pst) n_in++;
  }
  mx_array *node = NULL;
  mx_params prm = {.flags = flags | (op == MX_OP_RANDOM_BITS && n_in > 1 ? MX_RANDOM_HAS_OFFSET : 0)};
  if (!pst) pst = mx_node_new(op, (mx_dtype)kt, ndim, shape, n_in, in, &prm, &node);
  for (int i = 1; i < n_in; i++) mx_release(in[i]);
  if (pst) return pst;
  if ((mx_dtype)kt == t) {
    *out = node;
    return MX_OK;
  }
  st = mx_as_type(node, t, out);
  mx_release(node);
  return st;
}
