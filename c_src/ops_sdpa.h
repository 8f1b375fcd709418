/* ops_sdpa.h: the attention primitives' node builder, vjp and batching rule, shared with
 * autodiff.c and vmap.c. */
#ifndef MX_OPS_SDPA_H
#define MX_OPS_SDPA_H

#include "mx.h"

/* An SDPA node on rank-4 inputs already checked and cast (mask NULL or additive [1|B, 1|Hq, 1|Lq, 1|Lk]). */
mx_status mx_sdpa_node(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale, int causal,
                       mx_array **out);
/* The cotangents of q, k and v for an SDPA node (one SDPA_VJP node, sliced). */
mx_status mx_sdpa_vjp(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gq, mx_array **gk, mx_array **gv);
/* The vjp of an SDPA_VJP node with respect to its cotangent input (in[4]): the attention's jvp along
 * the packed tangents cot, composed from Mx ops. */
mx_status mx_sdpa_vjp_vjp(mx_array *node, mx_array *const *in, mx_array *cot, mx_array **g_cot);
/* vmap's rule: the batch axis folds into B; sets *handled. */
mx_status mx_vmap_sdpa(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out,
                       int *handled);

#endif
