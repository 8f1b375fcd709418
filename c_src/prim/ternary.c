/* ternary.c: elementwise kernels of three float inputs that broadcast to the
 * output (betainc). The scalar functions cost hundreds of ns each, so the
 * driver is a plain index counter per chunk rather than binary.c's collapsed rows. */
#include <string.h>

#include "kernels.h"
#include "special.h"

typedef struct {
  int ndim;
  int64_t shape[MX_MAX_RANK]; /* out's (a copy: prepared plans outlive the node) */
  const char *src[3];
  int64_t st[3][MX_MAX_RANK]; /* element strides of each input seen through out's shape */
  char *dst;
  mx_dtype t;
} tctx;

static void ternary_range(void *vctx, int64_t lo, int64_t hi) {
  const tctx *c = vctx;
  const int r = c->ndim;
  int64_t idx[MX_MAX_RANK], off[3] = {0, 0, 0}, rem = lo;
  for (int i = r - 1; i >= 0; i--) {
    idx[i] = rem % c->shape[i];
    rem /= c->shape[i];
    for (int k = 0; k < 3; k++) off[k] += idx[i] * c->st[k][i];
  }
  for (int64_t pos = lo; pos < hi; pos++) {
    if (c->t == MX_F64) {
      const double *a = (const double *)c->src[0], *b = (const double *)c->src[1], *x = (const double *)c->src[2];
      ((double *)c->dst)[pos] = mx_ibeta(a[off[0]], b[off[1]], x[off[2]]);
    } else {
      const float *a = (const float *)c->src[0], *b = (const float *)c->src[1], *x = (const float *)c->src[2];
      ((float *)c->dst)[pos] = mx_ibetaf(a[off[0]], b[off[1]], x[off[2]]);
    }
    for (int i = r - 1; i >= 0; i--) { /* odometer step */
      for (int k = 0; k < 3; k++) off[k] += c->st[k][i];
      if (++idx[i] < c->shape[i]) break;
      for (int k = 0; k < 3; k++) off[k] -= idx[i] * c->st[k][i];
      idx[i] = 0;
    }
  }
}

static void ternary_bind(void *ctx, char *dst, const char *const *src) {
  tctx *c = ctx;
  c->dst = dst;
  for (int k = 0; k < 3; k++) c->src[k] = src[k];
}

/* in[0] a, in[1] b, in[2] x: all of out's dtype (f32 or f64), each broadcasting to out. */
mx_status mx_k_betainc(mx_array *out, mx_array *const *in) {
  char s1[96], s2[96];
  mx_dtype t = (mx_dtype)out->dtype;
  if (t != MX_F32 && t != MX_F64)
    return mx_error(MX_EINVAL, "[betainc] output dtype %s is not f32 or f64; build it with mx_betainc", mx_dtype_name(t));
  tctx c = {.ndim = out->ndim, .dst = mx_data(out), .t = t};
  memcpy(c.shape, out->shape, sizeof c.shape);
  for (int k = 0; k < 3; k++) {
    const mx_array *a = in[k];
    int ok = (mx_dtype)a->dtype == t && a->ndim <= out->ndim;
    for (int i = 0; ok && i < a->ndim; i++) {
      int64_t d = a->shape[a->ndim - 1 - i];
      ok = d == 1 || d == out->shape[out->ndim - 1 - i];
    }
    if (!ok)
      return mx_error(MX_EINVAL, "[betainc] input %d (%s) does not match the output %s in dtype or broadcast shape; "
                      "build it with mx_betainc", k, mx_describe(a, s1, sizeof s1), mx_describe(out, s2, sizeof s2));
    c.src[k] = mx_data(a);
    if (!c.src[k] && out->size > 0) return mx_error(MX_EINVAL, "[betainc] input %d has no data; evaluate it first", k);
    mx_broadcast_strides(a, out, c.st[k]);
  }
  if (out->size == 0) return MX_OK;
  if (!c.dst) return mx_error(MX_EINVAL, "[betainc] the output has no buffer");
  if (mx_ew_capture) return mx_ew_keep(&c, sizeof c, ternary_range, ternary_bind, 256);
  mx_parallel_for(out->size, 256, ternary_range, &c); /* ~0.4 us an element: small chunks already pay off */
  return MX_OK;
}
