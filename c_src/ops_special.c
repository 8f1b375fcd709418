/* ops_special.c: the constructor of the special functions that take three
 * inputs (betainc). Unary and binary special functions (trigamma, erfc,
 * log_ndtr, ndtri, igamma, igammac) are ordinary rows built by mx_unary and
 * mx_binary; the scalar code of all of them is prim/special.c. */
#include <stdio.h>

#include "mx.h"
#include "ops_internal.h"

/* I_x(a, b): the three broadcast together; the promoted dtype becomes float
 * (integers and bool compute in f32, f16/bf16 in f32 and round back). */
mx_status mx_betainc(mx_array *a, mx_array *b, mx_array *x, mx_array **out) {
  mx_array *all[3] = {a, b, x};
  int ndim = 0;
  int64_t shape[MX_MAX_RANK];
  mx_status st = mx_check_live("betainc", 3, all);
  if (!st) st = mx_broadcast_shape("betainc", 3, all, &ndim, shape);
  if (st) return st;
  mx_dtype t = mx_promote(mx_promote((mx_dtype)a->dtype, (mx_dtype)b->dtype), (mx_dtype)x->dtype);
  for (int i = 0; i < 3; i++)
    if (mx_is_complex((mx_dtype)all[i]->dtype)) {
      char buf[128];
      return mx_error(MX_EINVAL, "[betainc] is defined for real inputs only, got %s as input %d; take Mx.real/1 first",
                      mx_describe(all[i], buf, sizeof buf), i);
    }
  mx_dtype storage = mx_is_float(t) ? t : MX_F32, compute = mx_compute_type(storage);
  mx_array *in[3] = {NULL, NULL, NULL}, *node = NULL;
  for (int i = 0; i < 3 && !st; i++) st = mx_cast(all[i], compute, &in[i]);
  if (!st) st = mx_node_new(MX_OP_BETAINC, compute, ndim, shape, 3, in, NULL, &node);
  if (!st) {
    st = mx_cast(node, storage, out);
  }
  for (int i = 0; i < 3; i++) mx_release(in[i]);
  mx_release(node);
  return st;
}
