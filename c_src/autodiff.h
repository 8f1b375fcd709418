/* autodiff.h: prototypes of the vjp rules named by ops.def's vjp column. */
#ifndef MX_AUTODIFF_H
#define MX_AUTODIFF_H

#include "mx.h"

#define MX_VJP_DECL_D(id) mx_status mx_vjp_##id(mx_array *node, mx_array *const *in, mx_array *cot, mx_array **in_cots);
#define MX_VJP_DECL_Z(id)
#define MX_VJP_DECL_N(id)
#define MX_VJP_DECL_0(id)
#define MX_OP(id, name, family, rule, kernel, vjp, jvp, batch) MX_VJP_DECL_##vjp(id)
#include "ops.def"
#undef MX_OP

#endif
