/* unary.c: elementwise kernels of one input (as_type lives in source.c).
 * Each op is one line below; the macros turn it into simple loops over
 * contiguous arrays (one per dtype) that large inputs split across cores. */
#include <math.h>
#include <string.h>

#include "complex.h"
#include "elementwise.h"
#include "kernels.h"
#include "special.h"

typedef void (*unary_fn)(const void *a, void *o, int64_t n);

typedef struct {
  unary_fn fn;
  const char *a;
  char *o;
  size_t asz, osz;
} unary_ctx;

static void unary_range(void *vctx, int64_t lo, int64_t hi) {
  const unary_ctx *c = vctx;
  c->fn(c->a + (size_t)lo * c->asz, c->o + (size_t)lo * c->osz, hi - lo);
}

static void unary_bind(void *vctx, char *dst, const char *const *src) {
  unary_ctx *c = vctx;
  c->a = src[0];
  c->o = dst;
}

static mx_status run(mx_array *out, mx_array *const *in, const char *op, unary_fn fn) {
  if (!fn)
    return mx_error(MX_EINVAL, "[%s] has no kernel for %s input; build it with mx_unary, which casts to a computable dtype",
                    op, mx_dtype_name((mx_dtype)in[0]->dtype));
  if (in[0]->size != out->size)
    return mx_error(MX_EINVAL, "[%s] input has %lld elements but output %lld; build it with mx_unary", op,
                    (long long)in[0]->size, (long long)out->size);
  if (out->size == 0) return MX_OK;
  unary_ctx c = {fn, mx_data(in[0]), mx_data(out), (size_t)mx_dtype_size((mx_dtype)in[0]->dtype),
                 (size_t)mx_dtype_size((mx_dtype)out->dtype)};
  if (mx_ew_capture) return mx_ew_keep(&c, sizeof c, unary_range, unary_bind, mx_grain(out));
  mx_parallel_for(out->size, mx_grain(out), unary_range, &c);
  return MX_OK;
}

/* The kernel for in[0]'s dtype from a per-dtype table; out must have `want` (or in's dtype if want < 0). */
static mx_status dispatch(mx_array *out, mx_array *const *in, const char *op, const unary_fn *fns, int want) {
  mx_dtype t = (mx_dtype)in[0]->dtype;
  if (mx_is_complex(t)) return mx_complex_unary(out, in, op); /* complex kernels live in complex.c */
  mx_dtype o = want < 0 ? t : (mx_dtype)want;
  if ((mx_dtype)out->dtype != o)
    return mx_error(MX_EINVAL, "[%s] output dtype %s does not match the expected %s; build it with mx_unary", op,
                    mx_dtype_name((mx_dtype)out->dtype), mx_dtype_name(o));
  return run(out, in, op, (unsigned)t < MX_DTYPE_COUNT ? fns[t] : NULL);
}

static void copy_u8(const void *a, void *o, int64_t n) { memcpy(o, a, (size_t)n); }

/* SAME_OPS, BOOL_OPS and FLOAT_UNARY_OPS (the per-element expressions) are in
 * elementwise.h, shared with the generated-C tier (jit.c). */

/* One loop per (op, dtype): integers take the integer expression, floats the float one. */
#define SAME_LOOP(name, ID, T, expr)                             \
  static void name##_##ID(const void *va, void *vo, int64_t n) { \
    const T *a = va;                                             \
    T *o = vo;                                                   \
    for (int64_t i = 0; i < n; i++) {                            \
      T x = a[i];                                                \
      o[i] = (T)(expr);                                          \
    }                                                            \
  }
#define SAME_INT(name, ID, T, iexpr, fexpr) SAME_LOOP(name, ID, T, iexpr)
#define SAME_FLOAT(name, ID, T, iexpr, fexpr) SAME_LOOP(name, ID, T, fexpr)
#define SAME_INT_LOOPS(ID, T) SAME_OPS(SAME_INT, ID, T)
#define SAME_FLOAT_LOOPS(ID, T) SAME_OPS(SAME_FLOAT, ID, T)
MX_INT_TYPES(SAME_INT_LOOPS)
MX_FLOAT_TYPES(SAME_FLOAT_LOOPS)

#define SAME_ENUM(name, ID, T, iexpr, fexpr) SAME_##name,
enum { SAME_OPS(SAME_ENUM, _, _) N_SAME };

#define SAME_ENTRY(name, ID, T, iexpr, fexpr) [SAME_##name][MX_##ID] = name##_##ID,
#define SAME_ROW(ID, T) SAME_OPS(SAME_ENTRY, ID, T)
#define SAME_BOOL(name, ID, T, iexpr, fexpr) [SAME_##name][MX_BOOL] = copy_u8,
static const unary_fn same_fns[N_SAME][MX_DTYPE_COUNT] = {
    MX_INT_TYPES(SAME_ROW) MX_FLOAT_TYPES(SAME_ROW) SAME_OPS(SAME_BOOL, _, _)};

#define SAME_KERNEL(name, ID, T, iexpr, fexpr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return dispatch(out, in, #name, same_fns[SAME_##name], -1); }
SAME_OPS(SAME_KERNEL, _, _)

#define BOOL_LOOP(name, ID, T, expr)                             \
  static void name##_##ID(const void *va, void *vo, int64_t n) { \
    const T *a = va;                                             \
    uint8_t *o = vo;                                             \
    for (int64_t i = 0; i < n; i++) {                            \
      T x = a[i];                                                \
      (void)x;                                                   \
      o[i] = (uint8_t)(expr);                                    \
    }                                                            \
  }
#define BOOL_INT(name, ID, T, iexpr, fexpr) BOOL_LOOP(name, ID, T, iexpr)
#define BOOL_FLOAT(name, ID, T, iexpr, fexpr) BOOL_LOOP(name, ID, T, fexpr)
#define BOOL_INT_LOOPS(ID, T) BOOL_OPS(BOOL_INT, ID, T)
#define BOOL_FLOAT_LOOPS(ID, T) BOOL_OPS(BOOL_FLOAT, ID, T)
BOOL_INT_LOOPS(BOOL, uint8_t)
MX_INT_TYPES(BOOL_INT_LOOPS)
MX_FLOAT_TYPES(BOOL_FLOAT_LOOPS)

#define BOOL_ENUM(name, ID, T, iexpr, fexpr) BOOL_##name,
enum { BOOL_OPS(BOOL_ENUM, _, _) N_BOOL };

#define BOOL_ENTRY(name, ID, T, iexpr, fexpr) [BOOL_##name][MX_##ID] = name##_##ID,
#define BOOL_ROW(ID, T) BOOL_OPS(BOOL_ENTRY, ID, T)
static const unary_fn bool_fns[N_BOOL][MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(BOOL_ROW)};

#define BOOL_KERNEL(name, ID, T, iexpr, fexpr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return dispatch(out, in, #name, bool_fns[BOOL_##name], MX_BOOL); }
BOOL_OPS(BOOL_KERNEL, _, _)

/* ---- FLOAT ops: f32 and f64 only (mx_unary casts integers to f32). f32 uses
 * the float libm functions so results match numpy's float32 within an ulp or two. */

#define UNARY_FLOAT(name, f32_expr, f64_expr)                                       \
  static void name##_F32(const void *va, void *vo, int64_t n) {                     \
    const float *a = va;                                                            \
    float *o = vo;                                                                  \
    for (int64_t i = 0; i < n; i++) {                                               \
      float x = a[i];                                                               \
      o[i] = f32_expr;                                                              \
    }                                                                               \
  }                                                                                 \
  static void name##_F64(const void *va, void *vo, int64_t n) {                     \
    const double *a = va;                                                           \
    double *o = vo;                                                                 \
    for (int64_t i = 0; i < n; i++) {                                               \
      double x = a[i];                                                              \
      o[i] = f64_expr;                                                              \
    }                                                                               \
  }                                                                                 \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) {                       \
    static const unary_fn fns[MX_DTYPE_COUNT] = {[MX_F32] = name##_F32, [MX_F64] = name##_F64}; \
    return dispatch(out, in, #name, fns, -1);                                       \
  }

FLOAT_UNARY_OPS(UNARY_FLOAT)

/* ---- rule INT ops (ops_bitwise.c): integer dtypes; bitwise_not also bool (logical not) */

#define INT_UNARY_LOOP(name, ID, T, expr) SAME_LOOP(name, ID, T, expr)
#define INT_UNARY_LOOPS(ID, T) INT_UNARY_OPS(INT_UNARY_LOOP, ID, T)
MX_INT_TYPES(INT_UNARY_LOOPS)

static void bitwise_not_BOOL(const void *va, void *vo, int64_t n) {
  const uint8_t *a = va;
  uint8_t *o = vo;
  for (int64_t i = 0; i < n; i++) o[i] = a[i] == 0;
}

#define INT_UNARY_ENUM(name, ID, T, expr) INT_##name,
enum { INT_UNARY_OPS(INT_UNARY_ENUM, _, _) N_INT_UNARY };

#define INT_UNARY_ENTRY(name, ID, T, expr) [INT_##name][MX_##ID] = name##_##ID,
#define INT_UNARY_ROW(ID, T) INT_UNARY_OPS(INT_UNARY_ENTRY, ID, T)
static const unary_fn int_unary_fns[N_INT_UNARY][MX_DTYPE_COUNT] = {
    MX_INT_TYPES(INT_UNARY_ROW)[INT_bitwise_not][MX_BOOL] = bitwise_not_BOOL};

#define INT_UNARY_KERNEL(name, ID, T, expr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return dispatch(out, in, #name, int_unary_fns[INT_##name], -1); }
INT_UNARY_OPS(INT_UNARY_KERNEL, _, _)

/* bitcast: the bytes unchanged, typed as out's dtype (mx_bitcast checked the widths). */
static void copy_range(void *vctx, int64_t lo, int64_t hi) {
  const unary_ctx *c = vctx;
  memcpy(c->o + (size_t)lo * c->osz, c->a + (size_t)lo * c->asz, (size_t)(hi - lo) * c->osz);
}

mx_status mx_k_bitcast(mx_array *out, mx_array *const *in) {
  size_t isz = (size_t)mx_dtype_size((mx_dtype)in[0]->dtype), osz = (size_t)mx_dtype_size((mx_dtype)out->dtype);
  if (isz != osz || in[0]->size != out->size)
    return mx_error(MX_EINVAL, "[bitcast] input %s x %lld and output %s x %lld differ in bytes; build it with mx_bitcast",
                    mx_dtype_name((mx_dtype)in[0]->dtype), (long long)in[0]->size,
                    mx_dtype_name((mx_dtype)out->dtype), (long long)out->size);
  if (out->size == 0) return MX_OK;
  unary_ctx c = {NULL, mx_data(in[0]), mx_data(out), isz, osz};
  mx_parallel_for(out->size, mx_grain(out), copy_range, &c);
  return MX_OK;
}
