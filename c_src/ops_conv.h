/* ops_conv.h: the convolution and window primitives' node builders, shared by their vjp
 * rules (autodiff.c) and batching rules (vmap.c). Inputs already have the compute dtype. */
#ifndef MX_OPS_CONV_H
#define MX_OPS_CONV_H

#include "mx.h"

/* A CONV node: x [N, C, s...] and w [O, C / groups, k...] of one float or complex dtype. */
mx_status mx_conv_node(mx_array *x, mx_array *w, const int64_t *strides, const int64_t *kernel_dilation,
                       int64_t groups, mx_array **out);
/* conv's gradients as nodes: x's [N, C, s] = x_shape from g [N, O, o] and w; w's [O, C / groups, k] = w_shape
 * from x and g. Strides, dilations and groups are the forward conv's. */
mx_status mx_conv_input_grad_node(mx_array *g, mx_array *w, const int64_t *x_shape, const int64_t *strides,
                                  const int64_t *kernel_dilation, int64_t groups, mx_array **out);
mx_status mx_conv_kernel_grad_node(mx_array *x, mx_array *g, const int64_t *w_shape, const int64_t *strides,
                                   const int64_t *kernel_dilation, int64_t groups, mx_array **out);
/* A WINDOW_SUM/PRODUCT/MAX/MIN node over x (no padding). */
mx_status mx_window_node(mx_op op, mx_array *x, const int64_t *window, const int64_t *strides,
                         const int64_t *dilations, mx_array **out);
/* A WINDOW_SCATTER_MAX/MIN node: v is the source (transposed 0) or x-shaped (transposed 1). */
mx_status mx_window_scatter_node(mx_op op, mx_array *x, mx_array *v, const int64_t *window, const int64_t *strides,
                                 const int64_t *dilations, int transposed, mx_array **out);
/* vmap's rule for these ops: sets *handled when node is one of them. */
mx_status mx_vmap_conv_window(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                              int *handled);

#endif
