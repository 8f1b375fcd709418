/* complex.c: elementwise kernels of one complex input (c64, c128), and the
 * complex-only primitives real, imag, conjugate and angle. unary.c hands every
 * complex input here; the constructors (ops_complex.c) only build the ops below.
 * Transcendentals call glibc's cexp/clog/csqrt (what numpy calls too). */
#include <complex.h>
#include <math.h>
#include <string.h>

#include "complex.h"

typedef void (*cx_fn)(const void *a, void *o, int64_t n);

typedef struct {
  cx_fn fn;
  const char *a;
  char *o;
  size_t asz, osz;
} cx_ctx;

static void cx_range(void *vctx, int64_t lo, int64_t hi) {
  const cx_ctx *c = vctx;
  c->fn(c->a + (size_t)lo * c->asz, c->o + (size_t)lo * c->osz, hi - lo);
}

/* Runs fn over in[0] into out after checking dtypes (out must be `want`) and sizes. */
static mx_status run(mx_array *out, mx_array *const *in, const char *op, cx_fn fn, mx_dtype want) {
  mx_dtype t = (mx_dtype)in[0]->dtype;
  if (!fn)
    return mx_error(MX_EINVAL, "[%s] has no kernel for %s input; build it with its constructor, which checks dtypes", op,
                    mx_dtype_name(t));
  if ((mx_dtype)out->dtype != want)
    return mx_error(MX_EINVAL, "[%s] output dtype %s does not match the expected %s for %s input", op,
                    mx_dtype_name((mx_dtype)out->dtype), mx_dtype_name(want), mx_dtype_name(t));
  if (in[0]->size != out->size)
    return mx_error(MX_EINVAL, "[%s] input has %lld elements but output %lld", op, (long long)in[0]->size,
                    (long long)out->size);
  if (out->size == 0) return MX_OK;
  cx_ctx c = {fn, mx_data(in[0]), mx_data(out), (size_t)mx_dtype_size(t), (size_t)mx_dtype_size(want)};
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN, cx_range, &c);
  return MX_OK;
}

/* One loop per (op, complex dtype): X(name, out type O, expression of x). */
#define CX_LOOP(name, ID, T, R, O, expr)                         \
  static void name##_##ID(const void *va, void *vo, int64_t n) { \
    const T *a = va;                                             \
    O *o = vo;                                                   \
    for (int64_t i = 0; i < n; i++) {                            \
      T x = a[i];                                                \
      o[i] = (O)(expr);                                          \
    }                                                            \
  }

/* F(fn, x): the float or double variant of a libm function by x's type. */
#define CF(fn, x) _Generic((x), float _Complex: fn##f, default: fn)(x)
#define RF(fn, x) _Generic((x), float: fn##f, default: fn)
#define RE(x) _Generic((x), float _Complex: crealf, default: creal)(x)
#define IM(x) _Generic((x), float _Complex: cimagf, default: cimag)(x)

/* name, output (S same complex, R real part type, B bool), expression. numpy's rules:
 * abs is hypot; square and multiplication are the textbook formula; is_nan/is_infinity
 * test either part; logical_not is x == 0; reciprocal divides 1 by x with Smith's algorithm. */
#define CX_OPS(X, ID, T, R)                                                     \
  X(negate, ID, T, R, T, -x)                                                    \
  X(conjugate, ID, T, R, T, CF(conj, x))                                        \
  X(square, ID, T, R, T, MX_CMUL(x, x))                                         \
  X(reciprocal, ID, T, R, T, MX_CDIV((T)1, x))                                  \
  X(exp, ID, T, R, T, CF(cexp, x))                                              \
  X(log, ID, T, R, T, CF(clog, x))                                              \
  X(sqrt, ID, T, R, T, CF(csqrt, x))                                            \
  X(abs, ID, T, R, R, RF(hypot, RE(x))(RE(x), IM(x)))                           \
  X(real, ID, T, R, R, RE(x))                                                   \
  X(imag, ID, T, R, R, IM(x))                                                   \
  X(angle, ID, T, R, R, RF(atan2, RE(x))(IM(x), RE(x)))                         \
  X(is_nan, ID, T, R, uint8_t, isnan(RE(x)) || isnan(IM(x)))                   \
  X(is_infinity, ID, T, R, uint8_t, isinf(RE(x)) || isinf(IM(x)))              \
  X(logical_not, ID, T, R, uint8_t, x == 0)

#define CX_LOOPS(ID, T, R) CX_OPS(CX_LOOP, ID, T, R)
CX_LOOPS(C64, float _Complex, float)
CX_LOOPS(C128, double _Complex, double)

/* angle of a real input: atan2(0, x) is 0 or pi (pi for -0, NaN for NaN), as numpy. */
static void angle_F32(const void *va, void *vo, int64_t n) {
  const float *a = va;
  float *o = vo;
  for (int64_t i = 0; i < n; i++) o[i] = atan2f(0.0f, a[i]);
}
static void angle_F64(const void *va, void *vo, int64_t n) {
  const double *a = va;
  double *o = vo;
  for (int64_t i = 0; i < n; i++) o[i] = atan2(0.0, a[i]);
}

typedef struct {
  const char *name;
  cx_fn c64, c128;
  char out; /* 'S' same dtype, 'R' the real dtype of the parts, 'B' bool */
} cx_op;

#define CX_ENTRY(name, ID, T, R, O, expr) {#name, name##_C64, name##_C128, _Generic((O)0, uint8_t: 'B', float _Complex: 'S', double _Complex: 'S', default: 'R')},
static const cx_op cx_ops[] = {CX_OPS(CX_ENTRY, C64, float _Complex, float)};
#undef CX_ENTRY

static mx_dtype part_type(mx_dtype t) { return t == MX_C128 ? MX_F64 : MX_F32; }

static const cx_op *find(const char *op) {
  for (size_t i = 0; i < sizeof cx_ops / sizeof cx_ops[0]; i++)
    if (strcmp(cx_ops[i].name, op) == 0) return &cx_ops[i];
  return NULL;
}

mx_status mx_complex_unary(mx_array *out, mx_array *const *in, const char *op) {
  mx_dtype t = (mx_dtype)in[0]->dtype;
  const cx_op *e = find(op);
  if (!mx_is_complex(t)) return mx_error(MX_EINVAL, "[%s] expects a complex input, got %s", op, mx_dtype_name(t));
  if (!e)
    return mx_error(MX_EINVAL, "[%s] is not defined for complex input (%s); build it with mx_unary, which says why", op,
                    mx_dtype_name(t));
  mx_dtype want = e->out == 'S' ? t : e->out == 'B' ? MX_BOOL : part_type(t);
  return run(out, in, op, t == MX_C64 ? e->c64 : e->c128, want);
}

/* real, imag, conjugate: complex input only (the constructor handles real inputs). */
mx_status mx_k_real(mx_array *out, mx_array *const *in) { return mx_complex_unary(out, in, "real"); }
mx_status mx_k_imag(mx_array *out, mx_array *const *in) { return mx_complex_unary(out, in, "imag"); }
mx_status mx_k_conjugate(mx_array *out, mx_array *const *in) { return mx_complex_unary(out, in, "conjugate"); }

mx_status mx_k_angle(mx_array *out, mx_array *const *in) {
  mx_dtype t = (mx_dtype)in[0]->dtype;
  if (t == MX_F32) return run(out, in, "angle", angle_F32, MX_F32);
  if (t == MX_F64) return run(out, in, "angle", angle_F64, MX_F64);
  return mx_complex_unary(out, in, "angle");
}
