/* ops_complex.c: dtype rules for complex arrays (c64, c128). mx_unary and
 * mx_binary (ops.c) hand over complex operands and the complex-only ops
 * (real, imag, conjugate, angle, complex) here. Ops that are not defined for
 * complex numbers (orderings, rounding) or have no complex kernel yet fail
 * when the graph is built, naming the op and the dtype, rather than casting
 * the imaginary part away. */
#include <stdio.h>
#include <string.h>

#include "mx.h"
#include "ops_internal.h"

/* The float dtype of a complex dtype's parts, and the complex dtype of a float. */
static mx_dtype part_type(mx_dtype t) { return t == MX_C128 ? MX_F64 : MX_F32; }
static mx_dtype complex_of(mx_dtype t) { return t == MX_F64 ? MX_C128 : MX_C64; }

static int ordered_op(mx_op op) {
  switch (op) {
  case MX_OP_SIGN: case MX_OP_FLOOR: case MX_OP_CEIL: case MX_OP_ROUND: case MX_OP_MAX: case MX_OP_MIN:
  case MX_OP_REMAINDER: case MX_OP_LESS: case MX_OP_LESS_EQUAL: case MX_OP_GREATER: case MX_OP_GREATER_EQUAL:
  case MX_OP_REDUCE_MAX: case MX_OP_REDUCE_MIN: case MX_OP_ARGMAX: case MX_OP_ARGMIN: case MX_OP_CUMULATIVE_MAX:
  case MX_OP_CUMULATIVE_MIN: case MX_OP_SORT: case MX_OP_ARGSORT:
    return 1;
  default:
    return 0;
  }
}

mx_status mx_complex_unsupported(mx_op op, const mx_array *a) {
  char b[128];
  const char *name = (unsigned)op < MX_OP_COUNT ? mx_ops[op].name : "?";
  if (ordered_op(op))
    return mx_error(MX_EINVAL,
                    "[%s] is not defined for complex input %s: complex numbers have no order; apply it to "
                    "Mx.real/1, Mx.imag/1 or Mx.abs/1",
                    name, mx_describe(a, b, sizeof b));
  return mx_error(MX_EINVAL,
                  "[%s] does not support complex input %s; complex arrays support +, -, *, /, negate, square, "
                  "reciprocal, exp, log, sqrt, abs, real, imag, conjugate, angle, equality, sum, product and fft "
                  "(use Mx.real/1 and Mx.imag/1 to work on the parts)",
                  name, mx_describe(a, b, sizeof b));
}

/* Relative cost per element for scheduling (see op_weight in ops.c). */
static int64_t weight(mx_op op) {
  switch (op) {
  case MX_OP_EXP: case MX_OP_LOG: case MX_OP_SQRT: case MX_OP_ANGLE: case MX_OP_ABS:
    return 48;
  case MX_OP_DIVIDE: case MX_OP_RECIPROCAL:
    return 8;
  default:
    return 2;
  }
}

static mx_status node(mx_op op, mx_dtype t, int ndim, const int64_t *shape, int n, mx_array *const *in, mx_array **out) {
  mx_status st = mx_node_new(op, t, ndim, shape, n, in, NULL, out);
  if (!st) (*out)->cost = (*out)->size * weight(op);
  return st;
}

/* Real-only inputs of real/imag/conjugate/angle: numpy's answers without a kernel
 * where none is needed (imag is 0, conjugate the identity; integers become f32). */
static mx_status real_input(mx_op op, mx_array *a, mx_array **out) {
  mx_dtype in = (mx_dtype)a->dtype, ft = mx_is_float(in) ? in : MX_F32;
  switch (op) {
  case MX_OP_REAL:
    return mx_cast(a, ft, out);
  case MX_OP_IMAG:
    return mx_full(ft, a->ndim, a->shape, 0, out);
  case MX_OP_CONJUGATE:
    mx_retain(a);
    *out = a;
    return MX_OK;
  default: { /* ANGLE: 0 or pi by the sign, computed in f32/f64 */
    mx_dtype ct = mx_compute_type(ft);
    mx_array *x = NULL, *n = NULL;
    mx_status st = mx_cast(a, ct, &x);
    if (!st) st = node(MX_OP_ANGLE, ct, a->ndim, a->shape, 1, &x, &n);
    if (!st) st = mx_cast(n, ft, out);
    mx_release(x);
    mx_release(n);
    return st;
  }
  }
}

mx_status mx_unary_complex(mx_op op, mx_array *a, mx_array **out) {
  mx_dtype in = (mx_dtype)a->dtype, t;
  if (!mx_is_complex(in)) return real_input(op, a, out);
  switch (op) {
  case MX_OP_NEGATE: case MX_OP_SQUARE: case MX_OP_RECIPROCAL: case MX_OP_EXP: case MX_OP_LOG: case MX_OP_SQRT:
  case MX_OP_CONJUGATE:
    t = in;
    break;
  case MX_OP_ABS: case MX_OP_REAL: case MX_OP_IMAG: case MX_OP_ANGLE:
    t = part_type(in);
    break;
  case MX_OP_IS_NAN: case MX_OP_IS_INFINITY: case MX_OP_LOGICAL_NOT:
    t = MX_BOOL;
    break;
  default:
    return mx_complex_unsupported(op, a);
  }
  return node(op, t, a->ndim, a->shape, 1, &a, out);
}

mx_status mx_binary_complex(mx_op op, mx_array *a, mx_array *b, int ndim, const int64_t *shape, mx_array **out) {
  mx_dtype t = mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype), storage;
  char b1[128], b2[128];
  if (op == MX_OP_COMPLEX) {
    if (mx_is_complex((mx_dtype)a->dtype) || mx_is_complex((mx_dtype)b->dtype))
      return mx_error(MX_EINVAL,
                      "[complex] builds a complex array from real and imaginary parts, got %s and %s; the parts "
                      "must be real (use add and multiply to combine complex arrays)",
                      mx_describe(a, b1, sizeof b1), mx_describe(b, b2, sizeof b2));
    t = mx_compute_type(mx_is_float(t) ? t : MX_F32); /* f16/bf16/int parts compute in f32 */
    storage = complex_of(t);
  } else {
    switch (op) {
    case MX_OP_ADD: case MX_OP_SUBTRACT: case MX_OP_MULTIPLY: case MX_OP_DIVIDE:
      storage = t;
      break;
    case MX_OP_EQUAL: case MX_OP_NOT_EQUAL: case MX_OP_LOGICAL_AND: case MX_OP_LOGICAL_OR:
      storage = MX_BOOL;
      break;
    default:
      return mx_complex_unsupported(op, mx_is_complex((mx_dtype)a->dtype) ? a : b);
    }
  }
  mx_array *x = NULL, *y = NULL;
  mx_status st = mx_cast(a, t, &x);
  if (!st) st = mx_cast(b, t, &y);
  mx_array *xy[2] = {x, y};
  if (!st) st = node(op, storage, ndim, shape, 2, xy, out);
  mx_release(x);
  mx_release(y);
  return st;
}
