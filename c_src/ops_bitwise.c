/* ops_bitwise.c: constructors of the rule-INT ops (bitwise not/and/or/xor, shifts,
 * count_leading_zeros, population_count, quotient) and of bitcast. mx_unary and
 * mx_binary hand rule-INT ops over here. Kernels: prim/unary.c and prim/binary.c
 * from elementwise.h's INT_UNARY_OPS and INT_BINARY_OPS. */
#include "mx.h"
#include "ops_internal.h"

/* Bitwise not/and/or/xor of bools stay bool (logical meaning, as numpy); the other
 * ops read bool as u8, as Nx stores booleans. */
static int keeps_bool(mx_op op) {
  return op == MX_OP_BITWISE_NOT || op == MX_OP_BITWISE_AND || op == MX_OP_BITWISE_OR || op == MX_OP_BITWISE_XOR;
}

static mx_status not_integer(mx_op op, const mx_array *a) {
  char b[128];
  const char *name = mx_ops[op].name;
  if (op == MX_OP_QUOTIENT)
    return mx_error(MX_EINVAL,
                    "[quotient] is integer division truncating toward zero and needs integer inputs, got %s; for "
                    "floats use divide (then floor or ceil), or cast to an integer type with as_type first",
                    mx_describe(a, b, sizeof b));
  return mx_error(MX_EINVAL,
                  "[%s] works on the bits of integer (or bool) inputs, got %s; cast to an integer type with as_type "
                  "first, or read a float's bits with bitcast (e.g. f32 -> s32)",
                  name, mx_describe(a, b, sizeof b));
}

static int int_or_bool(mx_dtype t) { return t == MX_BOOL || mx_is_int(t); }

mx_status mx_int_unary(mx_op op, mx_array *a, mx_array **out) {
  if (op == MX_OP_BITCAST)
    return mx_error(MX_EINVAL, "[bitcast] is not a unary op of one input alone: it needs a target dtype; build "
                               "it with mx_bitcast (Mx.bitcast/2)");
  mx_dtype t = (mx_dtype)a->dtype;
  if (!int_or_bool(t)) return not_integer(op, a);
  mx_dtype compute = t == MX_BOOL && !keeps_bool(op) ? MX_U8 : t;
  mx_array *x;
  mx_status st = mx_cast(a, compute, &x);
  if (st) return st;
  st = mx_node_new(op, compute, a->ndim, a->shape, 1, &x, NULL, out);
  mx_release(x);
  return st;
}

mx_status mx_int_binary(mx_op op, mx_array *a, mx_array *b, int ndim, const int64_t *shape, mx_array **out) {
  if (!int_or_bool((mx_dtype)a->dtype)) return not_integer(op, a);
  if (!int_or_bool((mx_dtype)b->dtype)) return not_integer(op, b);
  mx_dtype t = mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype);
  if (t == MX_BOOL && !keeps_bool(op)) t = MX_U8;
  mx_array *x = NULL, *y = NULL;
  mx_status st = mx_cast(a, t, &x);
  if (!st) st = mx_cast(b, t, &y);
  mx_array *xy[2] = {x, y};
  if (!st) st = mx_node_new(op, t, ndim, shape, 2, xy, NULL, out);
  mx_release(x);
  mx_release(y);
  return st;
}

mx_status mx_bitcast(mx_array *a, mx_dtype t, mx_array **out) {
  mx_status st = mx_check_live("bitcast", 1, &a);
  if (st) return st;
  if ((unsigned)t >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[bitcast] unknown dtype id %d", (int)t);
  mx_dtype from = (mx_dtype)a->dtype;
  char b[128];
  /* A bool must be 0 or 1, so no bit pattern may become one; convert with as_type instead. */
  if (from == MX_BOOL || t == MX_BOOL)
    return mx_error(MX_EINVAL, "[bitcast] cannot reinterpret %s as %s: bool holds only 0 and 1; convert with as_type",
                    mx_describe(a, b, sizeof b), mx_dtype_name(t));
  if (mx_is_complex(from) || mx_is_complex(t)) /* as Nx: take real and imag parts instead */
    return mx_error(MX_EINVAL, "[bitcast] cannot reinterpret %s as %s: complex types are not bit patterns here; "
                    "bitcast the real and imag parts", mx_describe(a, b, sizeof b), mx_dtype_name(t));
  if (mx_dtype_size(from) != mx_dtype_size(t))
    return mx_error(MX_EINVAL,
                    "[bitcast] cannot reinterpret %s as %s: %d-bit and %d-bit types differ in width; bitcast "
                    "between types of one width (e.g. s32, u32, f32), or convert values with as_type",
                    mx_describe(a, b, sizeof b), mx_dtype_name(t), mx_dtype_bits(from), mx_dtype_bits(t));
  if (from == t) {
    mx_retain(a);
    *out = a;
    return MX_OK;
  }
  return mx_node_new(MX_OP_BITCAST, t, a->ndim, a->shape, 1, &a, NULL, out);
}
