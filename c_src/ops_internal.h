/* ops_internal.h: helpers shared by the op constructors (ops.c, ops_shape.c). */
#ifndef MX_OPS_INTERNAL_H
#define MX_OPS_INTERNAL_H

#include "mx.h"

/* a itself (retained) when it already has dtype t, else an as_type node. */
mx_status mx_cast(mx_array *a, mx_dtype t, mx_array **out);
/* Fails naming op if an input was disposed (before any internal cast names itself). */
mx_status mx_check_live(const char *op, int n, mx_array *const *arrays);
/* The dtype kernels compute in: f16/bf16 compute in f32. */
mx_dtype mx_compute_type(mx_dtype t);
/* Negative axes count from the end; out-of-range axes are an error naming op. */
mx_status mx_normalize_axis(const char *op, const mx_array *a, int64_t axis, int rank, int *out);
/* numpy broadcasting of n arrays' shapes. */
mx_status mx_broadcast_shape(const char *op, int n, mx_array *const *arrays, int *ndim, int64_t *shape);

/* Complex operands (ops_complex.c): mx_unary/mx_binary hand them over; the
 * error for an op that complex numbers do not support, naming op and dtype. */
mx_status mx_unary_complex(mx_op op, mx_array *a, mx_array **out);
mx_status mx_binary_complex(mx_op op, mx_array *a, mx_array *b, int ndim, const int64_t *shape, mx_array **out);
mx_status mx_complex_unsupported(mx_op op, const mx_array *a);

/* Rule INT ops (ops_bitwise.c): mx_unary/mx_binary hand them over. */
mx_status mx_int_unary(mx_op op, mx_array *a, mx_array **out);
mx_status mx_int_binary(mx_op op, mx_array *a, mx_array *b, int ndim, const int64_t *shape, mx_array **out);

#endif
