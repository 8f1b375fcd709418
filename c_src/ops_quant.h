/* ops_quant.h: the quantization primitives' node builder and batching rule, shared with
 * autodiff.c (quantized_matmul's vjp) and vmap.c. */
#ifndef MX_OPS_QUANT_H
#define MX_OPS_QUANT_H

#include "mx.h"

/* A QUANTIZED_MATMUL node after mx_quantized_matmul's checks (x already in scales' dtype). */
mx_status mx_quantized_matmul_node(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                                   int64_t group_size, int64_t bits, mx_array **out);
/* vmap's rule: quantized_matmul batched only in x is one node over the larger x; sets *handled. */
mx_status mx_vmap_quant(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                        int *handled);

#endif
