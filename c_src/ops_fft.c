/* ops_fft.c: constructors of the FFT primitives (numpy's np.fft along one
 * axis). The input is cast (real -> complex for fft), cropped or zero-padded
 * to the transform length with slice/pad, and the primitive node transforms
 * an axis that already has the right length; so the node's vjp only needs the
 * transform itself, and cropping and padding differentiate as slice and pad. */
#include <math.h>
#include <stdio.h>

#include "mx.h"
#include "ops_internal.h"
#include "prim/fft.h"

/* numpy's norm: BACKWARD scales the inverse by 1/n, ORTHO both ways by 1/sqrt(n), FORWARD the forward by 1/n. */
static double norm_scale(mx_fft_norm norm, int inverse, int64_t n) {
  switch (norm) {
  case MX_FFT_ORTHO: return 1 / sqrt((double)n);
  case MX_FFT_FORWARD: return inverse ? 1 : 1 / (double)n;
  default: return inverse ? 1 / (double)n : 1;
  }
}

/* Work estimate for scheduling: ~5 n log2 n flops per transform, weighted like the kernels. */
static int64_t fft_cost(int64_t elements, int64_t n) {
  int64_t lg = 1;
  while (lg < 62 && ((int64_t)1 << lg) < n) lg++;
  return elements * 4 * (lg + 1);
}

static mx_status check_input(const char *op, mx_array *a, int axis, mx_fft_norm norm, int *ax) {
  char b[128];
  mx_status st = mx_check_live(op, 1, &a);
  if (st) return st;
  if ((unsigned)norm > MX_FFT_FORWARD)
    return mx_error(MX_EINVAL, "[%s] unknown norm %d; use backward, ortho or forward", op, (int)norm);
  if (a->ndim == 0)
    return mx_error(MX_EINVAL, "[%s] needs an array of rank >= 1, got %s; reshape a scalar to {1}", op,
                    mx_describe(a, b, sizeof b));
  return mx_normalize_axis(op, a, axis, a->ndim, ax);
}

static mx_status check_length(const char *op, const mx_array *a, int ax, int64_t n) {
  char b[128];
  if (n < 1)
    return mx_error(MX_EINVAL,
                    "[%s] the transform length must be >= 1, got %lld for axis %d of %s; pass n: or transform a "
                    "non-empty axis",
                    op, (long long)n, ax, mx_describe(a, b, sizeof b));
  if (n > MX_FFT_MAX_N)
    return mx_error(MX_EINVAL, "[%s] transform length %lld exceeds the largest supported, 2^40", op, (long long)n);
  return MX_OK;
}

/* a cropped (slice) or zero-padded (pad) along ax to len elements. */
static mx_status fit_length(mx_array *a, int ax, int64_t len, mx_array **out) {
  int64_t have = a->shape[ax];
  if (have == len) {
    mx_retain(a);
    *out = a;
    return MX_OK;
  }
  int64_t lo[MX_MAX_RANK] = {0}, hi[MX_MAX_RANK] = {0};
  hi[ax] = len - have; /* negative crops */
  mx_array *zero = NULL;
  mx_status st = mx_full((mx_dtype)a->dtype, 0, NULL, 0, &zero);
  if (!st) st = mx_pad(a, zero, lo, hi, NULL, out);
  mx_release(zero);
  return st;
}

mx_status mx_fft_node(mx_op op, mx_array *x, int axis, int64_t n, int inverse, double scale, mx_array **out) {
  char b[128];
  const char *name = (unsigned)op < MX_OP_COUNT ? mx_ops[op].name : "fft";
  if (op != MX_OP_FFT && op != MX_OP_RFFT && op != MX_OP_IRFFT)
    return mx_error(MX_EINVAL, "[%s] is not an FFT primitive", name);
  if (axis < 0 || axis >= x->ndim || n < 1 || !isfinite(scale))
    return mx_error(MX_EINVAL, "[%s] bad node parameters: axis %d of %s, length %lld, scale %g", name, axis,
                    mx_describe(x, b, sizeof b), (long long)n, scale);
  mx_dtype t = (mx_dtype)x->dtype, ot;
  int64_t want_in = op == MX_OP_IRFFT ? n / 2 + 1 : n, len_out = op == MX_OP_RFFT ? n / 2 + 1 : n;
  int ok_type = op == MX_OP_RFFT ? (t == MX_F32 || t == MX_F64) : mx_is_complex(t);
  if (!ok_type || x->shape[axis] != want_in)
    return mx_error(MX_EINVAL, "[%s] a length-%lld node needs %lld %s elements along axis %d, got %s", name, (long long)n,
                    (long long)want_in, op == MX_OP_RFFT ? "f32/f64" : "complex", axis, mx_describe(x, b, sizeof b));
  if (op == MX_OP_FFT) ot = t;
  else if (op == MX_OP_RFFT) ot = t == MX_F64 ? MX_C128 : MX_C64;
  else ot = t == MX_C128 ? MX_F64 : MX_F32;
  int64_t shape[MX_MAX_RANK];
  for (int d = 0; d < x->ndim; d++) shape[d] = d == axis ? len_out : x->shape[d];
  mx_params p = {.axis = axis, .flags = op == MX_OP_FFT && inverse ? 1 : 0, .nip = 1, .ip = {n}, .f = {scale, 0}};
  mx_status st = mx_node_new(op, ot, x->ndim, shape, 1, &x, &p, out);
  if (!st) (*out)->cost = fft_cost(x->size + (*out)->size, n);
  return st;
}

mx_status mx_fft(mx_array *a, int axis, int64_t n, int inverse, mx_fft_norm norm, mx_array **out) {
  const char *op = inverse ? "ifft" : "fft";
  int ax = 0;
  mx_status st = check_input(op, a, axis, norm, &ax);
  if (st) return st;
  if (n <= 0) n = a->shape[ax];
  if ((st = check_length(op, a, ax, n))) return st;
  mx_dtype in = (mx_dtype)a->dtype;
  mx_dtype ct = mx_is_complex(in) ? in : in == MX_F64 ? MX_C128 : MX_C64; /* real input becomes complex */
  mx_array *x = NULL, *fitted = NULL;
  st = mx_cast(a, ct, &x);
  if (!st) st = fit_length(x, ax, n, &fitted);
  if (!st) st = mx_fft_node(MX_OP_FFT, fitted, ax, n, inverse, norm_scale(norm, inverse, n), out);
  mx_release(x);
  mx_release(fitted);
  return st;
}

mx_status mx_rfft(mx_array *a, int axis, int64_t n, mx_fft_norm norm, mx_array **out) {
  char b[128];
  int ax = 0;
  mx_status st = check_input("rfft", a, axis, norm, &ax);
  if (st) return st;
  mx_dtype in = (mx_dtype)a->dtype;
  if (mx_is_complex(in))
    return mx_error(MX_EINVAL, "[rfft] takes real input, got %s; use fft for complex input (or take Mx.real/1 first)",
                    mx_describe(a, b, sizeof b));
  if (n <= 0) n = a->shape[ax];
  if ((st = check_length("rfft", a, ax, n))) return st;
  mx_array *x = NULL, *fitted = NULL;
  st = mx_cast(a, in == MX_F64 ? MX_F64 : MX_F32, &x);
  if (!st) st = fit_length(x, ax, n, &fitted);
  if (!st) st = mx_fft_node(MX_OP_RFFT, fitted, ax, n, 0, norm_scale(norm, 0, n), out);
  mx_release(x);
  mx_release(fitted);
  return st;
}

mx_status mx_irfft(mx_array *a, int axis, int64_t n, mx_fft_norm norm, mx_array **out) {
  int ax = 0;
  mx_status st = check_input("irfft", a, axis, norm, &ax);
  if (st) return st;
  if (n <= 0) n = 2 * (a->shape[ax] - 1); /* numpy's default: the input holds bins 0..n/2 of an even length */
  if ((st = check_length("irfft", a, ax, n))) return st;
  mx_dtype in = (mx_dtype)a->dtype;
  mx_dtype ct = mx_is_complex(in) ? in : in == MX_F64 ? MX_C128 : MX_C64;
  mx_array *x = NULL, *fitted = NULL;
  st = mx_cast(a, ct, &x);
  if (!st) st = fit_length(x, ax, n / 2 + 1, &fitted);
  if (!st) st = mx_fft_node(MX_OP_IRFFT, fitted, ax, n, 1, norm_scale(norm, 1, n), out);
  mx_release(x);
  mx_release(fitted);
  return st;
}
