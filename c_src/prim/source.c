/* source.c: kernels that make data (constant, full, iota, arange, linspace)
 * and as_type, which converts between any two dtypes.
 *
 * Conversions go through a canonical chunk: values are loaded as double
 * (floats, f16, bf16), int64 (signed, bool) or uint64 (unsigned), then stored
 * into the target type. That keeps 13 x 13 conversions at 13 + 13 loops and
 * every int64/uint64 value exact. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "special.h"

#define CHUNK 256

typedef enum { CANON_F64, CANON_S64, CANON_U64 } canon_kind;
typedef union {
  double f[CHUNK];
  int64_t s[CHUNK];
  uint64_t u[CHUNK];
} canon;

/* A constant per type, so it compiles for complex T too (the X-macros instantiate every dtype). */
#define IS_SIGNED(T) _Generic((T)0, int8_t: 1, int16_t: 1, int32_t: 1, int64_t: 1, default: 0)

/* Float -> integer saturates (out-of-range C casts are undefined) and maps NaN to 0. */
static inline int64_t sat_s64(double x, int bits) {
  double hi = (double)(UINT64_C(1) << (bits - 1)); /* exclusive bound, exact */
  int64_t max = (int64_t)((UINT64_C(1) << (bits - 1)) - 1);
  if (x != x) return 0;
  if (x >= hi) return max;
  if (x <= -hi) return -max - 1;
  return (int64_t)x;
}

static inline uint64_t sat_u64(double x, int bits) {
  double hi = bits == 64 ? 18446744073709551616.0 : (double)(UINT64_C(1) << bits);
  if (!(x > 0)) return 0; /* NaN too */
  if (x >= hi) return bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
  return (uint64_t)x;
}

#define SAT(T, x) (IS_SIGNED(T) ? (T)sat_s64((x), 8 * (int)sizeof(T)) : (T)sat_u64((x), 8 * (int)sizeof(T)))

/* Reads n elements of src (dtype t) from index lo into c; returns the canonical kind. */
static canon_kind load_chunk(const void *src, mx_dtype t, int64_t lo, int64_t n, canon *c) {
  switch (t) {
#define LOAD(ID, name, T, bytes, kind)                                                     \
  case MX_##ID: {                                                                          \
    const T *p = (const T *)src + lo;                                                      \
    if (kind == 'f' || kind == 'c') { /* complex -> real keeps the real part, as numpy */ \
      for (int64_t i = 0; i < n; i++) c->f[i] = (double)p[i];                              \
      return CANON_F64;                                                                    \
    } else if (kind == 'h') {                                                              \
      for (int64_t i = 0; i < n; i++)                                                      \
        c->f[i] = MX_##ID == MX_F16 ? mx_f16_to_f64((uint16_t)p[i]) : mx_bf16_to_f64((uint16_t)p[i]); \
      return CANON_F64;                                                                    \
    } else if (kind == 'u') {                                                              \
      for (int64_t i = 0; i < n; i++) c->u[i] = (uint64_t)p[i];                            \
      return CANON_U64;                                                                    \
    } else if (kind == 's') {                                                              \
      for (int64_t i = 0; i < n; i++) c->s[i] = (int64_t)p[i];                             \
      return CANON_S64;                                                                    \
    } else {                                                                               \
      for (int64_t i = 0; i < n; i++) c->s[i] = p[i] != 0;                                 \
      return CANON_S64;                                                                    \
    }                                                                                      \
  }
    MX_DTYPES(LOAD)
#undef LOAD
  default:
    break;
  }
  return CANON_S64;
}

/* Writes n canonical values of kind k into dst (dtype t) from index lo. */
/* An integer as a double rounded to odd (bits lost past 53 set the last bit),
 * so rounding that double again to f16/bf16 gives the correctly rounded result. */
static inline double u64_to_double_odd(uint64_t u) {
  if (u < (UINT64_C(1) << 53)) return (double)u;
  int shift = 64 - __builtin_clzll(u) - 53;
  uint64_t keep = u >> shift;
  if (u & ((UINT64_C(1) << shift) - 1)) keep |= 1;
  return ldexp((double)keep, shift);
}
static inline double s64_to_double_odd(int64_t s) {
  return s < 0 ? -u64_to_double_odd(0 - (uint64_t)s) : u64_to_double_odd((uint64_t)s);
}
static inline double same_double(double d) { return d; }
#define TO_DOUBLE_ODD(v) _Generic((v), double: same_double, int64_t: s64_to_double_odd, uint64_t: u64_to_double_odd)(v)

static void store_chunk(void *dst, mx_dtype t, int64_t lo, int64_t n, const canon *c, canon_kind k) {
/* q[i] = expr, with v the i-th canonical value in its own type. */
#define EACH(expr)                                                                 \
  do {                                                                             \
    if (k == CANON_F64)                                                            \
      for (int64_t i = 0; i < n; i++) {                                            \
        double v = c->f[i];                                                        \
        q[i] = (expr);                                                             \
      }                                                                            \
    else if (k == CANON_S64)                                                       \
      for (int64_t i = 0; i < n; i++) {                                            \
        int64_t v = c->s[i];                                                       \
        q[i] = (expr);                                                             \
      }                                                                            \
    else                                                                           \
      for (int64_t i = 0; i < n; i++) {                                            \
        uint64_t v = c->u[i];                                                      \
        q[i] = (expr);                                                             \
      }                                                                            \
  } while (0)
#define TO_HALF(ID, d) (MX_##ID == MX_F16 ? mx_f64_to_f16(d) : mx_f64_to_bf16(d))
  switch (t) {
#define STORE(ID, name, T, bytes, kind)                                    \
  case MX_##ID: {                                                          \
    T *q = (T *)dst + lo;                                                  \
    if (kind == 'b')                                                       \
      EACH(v != 0);                                                        \
    else if (kind == 'h')                                                  \
      EACH((T)TO_HALF(ID, TO_DOUBLE_ODD(v)));                                     \
    else if (kind == 'f' || kind == 'c') /* real -> complex: imaginary 0 */ \
      EACH((T)v);                                                          \
    else if (k == CANON_F64) /* float -> int saturates */                  \
      for (int64_t i = 0; i < n; i++) q[i] = SAT(T, c->f[i]);              \
    else /* int -> int wraps, like numpy and Nx */                         \
      EACH((T)v);                                                          \
    return;                                                                \
  }
    MX_DTYPES(STORE)
#undef STORE
#undef TO_HALF
#undef EACH
  default:
    break;
  }
}

/* ---- as_type ------------------------------------------------------------------ */

/* f16/bf16 <-> f32 directly: every f16 op computes in f32, so these are hot. */
typedef void (*direct_fn)(const void *src, void *dst, int64_t lo, int64_t n);
#define DIRECT(name, S, D, f)                                             \
  static void name(const void *src, void *dst, int64_t lo, int64_t n) {  \
    const S *p = (const S *)src + lo;                                     \
    D *q = (D *)dst + lo;                                                 \
    for (int64_t i = 0; i < n; i++) q[i] = f(p[i]);                       \
  }
DIRECT(f32_to_f16, float, uint16_t, mx_f32_to_f16)
DIRECT(f32_to_bf16, float, uint16_t, mx_f32_to_bf16)
DIRECT(f16_to_f32, uint16_t, float, mx_f16_to_f32)
DIRECT(bf16_to_f32, uint16_t, float, mx_bf16_to_f32)
/* Complex to complex keeps both parts (the canonical chunk holds one real value). */
static inline double _Complex widen_c(float _Complex z) { return (double _Complex)z; }
static inline float _Complex narrow_c(double _Complex z) { return (float _Complex)z; }
DIRECT(c64_to_c128, float _Complex, double _Complex, widen_c)
DIRECT(c128_to_c64, double _Complex, float _Complex, narrow_c)
/* Complex -> bool is true when either part is nonzero (the canonical chunk sees only the real part). */
static inline uint8_t nonzero_cf(float _Complex z) { return z != 0; }
static inline uint8_t nonzero_c(double _Complex z) { return z != 0; }
DIRECT(c64_to_bool, float _Complex, uint8_t, nonzero_cf)
DIRECT(c128_to_bool, double _Complex, uint8_t, nonzero_c)

static direct_fn direct_cast(mx_dtype from, mx_dtype to) {
  if (from == MX_F32 && to == MX_F16) return f32_to_f16;
  if (from == MX_F32 && to == MX_BF16) return f32_to_bf16;
  if (from == MX_F16 && to == MX_F32) return f16_to_f32;
  if (from == MX_BF16 && to == MX_F32) return bf16_to_f32;
  if (from == MX_C64 && to == MX_C128) return c64_to_c128;
  if (from == MX_C128 && to == MX_C64) return c128_to_c64;
  if (from == MX_C64 && to == MX_BOOL) return c64_to_bool;
  if (from == MX_C128 && to == MX_BOOL) return c128_to_bool;
  return NULL;
}

typedef struct {
  const void *src;
  void *dst;
  mx_dtype from, to;
  direct_fn direct;
} cast_ctx;

static void cast_range(void *vctx, int64_t lo, int64_t hi) {
  const cast_ctx *ctx = vctx;
  if (ctx->direct) {
    ctx->direct(ctx->src, ctx->dst, lo, hi - lo);
    return;
  }
  canon c;
  for (int64_t i = lo; i < hi; i += CHUNK) {
    int64_t n = hi - i < CHUNK ? hi - i : CHUNK;
    canon_kind k = load_chunk(ctx->src, ctx->from, i, n, &c);
    store_chunk(ctx->dst, ctx->to, i, n, &c, k);
  }
}

static void cast_bind(void *vctx, char *dst, const char *const *src) {
  cast_ctx *c = vctx;
  c->src = src[0];
  c->dst = dst;
}

mx_status mx_k_as_type(mx_array *out, mx_array *const *in) {
  mx_dtype from = (mx_dtype)in[0]->dtype, to = (mx_dtype)out->dtype;
  if (in[0]->size != out->size)
    return mx_error(MX_EINVAL, "[as_type] input has %lld elements but output %lld; build it with mx_as_type",
                    (long long)in[0]->size, (long long)out->size);
  if ((unsigned)from >= MX_DTYPE_COUNT || (unsigned)to >= MX_DTYPE_COUNT)
    return mx_error(MX_EINVAL, "[as_type] unknown dtype id %d -> %d", (int)from, (int)to);
  if (out->size == 0) return MX_OK;
  if (from == to) {
    memcpy(mx_data(out), mx_data(in[0]), mx_nbytes(out));
    return MX_OK;
  }
  cast_ctx ctx = {mx_data(in[0]), mx_data(out), from, to, direct_cast(from, to)};
  if (mx_ew_capture) return mx_ew_keep(&ctx, sizeof ctx, cast_range, cast_bind, MX_PARALLEL_GRAIN);
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN, cast_range, &ctx);
  return MX_OK;
}

/* ---- sources ------------------------------------------------------------------ */

mx_status mx_k_constant(mx_array *out, mx_array *const *in) {
  (void)out;
  (void)in;
  return MX_OK; /* a leaf: its buffer was filled when it was made */
}

static mx_status need_params(const mx_array *out, const char *op) {
  if (!out->params) return mx_error(MX_EINVAL, "[%s] node has no parameters; build it with mx_%s", op, op);
  return MX_OK;
}

mx_status mx_k_full(mx_array *out, mx_array *const *in) {
  (void)in;
  mx_status st = need_params(out, "full");
  if (st || out->size == 0) return st;
  /* Convert the value once, then replicate its bytes. */
  canon c;
  c.f[0] = out->params->f[0];
  unsigned char v[16];
  store_chunk(v, (mx_dtype)out->dtype, 0, 1, &c, CANON_F64);
  int64_t n = out->size;
  switch (mx_dtype_size((mx_dtype)out->dtype)) {
  case 1:
    memset(mx_data(out), v[0], (size_t)n);
    break;
  case 2: {
    uint16_t x, *q = mx_data(out);
    memcpy(&x, v, 2);
    for (int64_t i = 0; i < n; i++) q[i] = x;
    break;
  }
  case 4: {
    uint32_t x, *q = mx_data(out);
    memcpy(&x, v, 4);
    for (int64_t i = 0; i < n; i++) q[i] = x;
    break;
  }
  case 8: {
    uint64_t x, *q = mx_data(out);
    memcpy(&x, v, 8);
    for (int64_t i = 0; i < n; i++) q[i] = x;
    break;
  }
  default: { /* c128: value in the real part, 0 in the imaginary */
    uint64_t x[2], *q = mx_data(out);
    memcpy(x, v, 16);
    for (int64_t i = 0; i < n; i++) q[2 * i] = x[0], q[2 * i + 1] = x[1];
    break;
  }
  }
  return MX_OK;
}

/* iota, arange and linspace: element i's value computed in double, then stored. */
typedef enum { GEN_IOTA, GEN_ARANGE, GEN_LINSPACE } gen_kind;
typedef struct {
  gen_kind kind;
  void *dst;
  mx_dtype t;
  int64_t n;
  int64_t inner, dim; /* iota: value = (i / inner) % dim */
  double start, step, stop;
  int endpoint;
} gen_ctx;

static void gen_range(void *vctx, int64_t lo, int64_t hi) {
  const gen_ctx *g = vctx;
  canon c;
  for (int64_t i0 = lo; i0 < hi; i0 += CHUNK) {
    int64_t n = hi - i0 < CHUNK ? hi - i0 : CHUNK;
    if (g->kind == GEN_IOTA) {
      for (int64_t i = 0; i < n; i++) c.f[i] = (double)(((i0 + i) / g->inner) % g->dim);
    } else {
      for (int64_t i = 0; i < n; i++) c.f[i] = g->start + (double)(i0 + i) * g->step;
      if (g->kind == GEN_LINSPACE && g->endpoint && g->n > 1 && i0 + n == g->n) c.f[n - 1] = g->stop;
    }
    store_chunk(g->dst, g->t, i0, n, &c, CANON_F64);
  }
}

static mx_status generate(mx_array *out, gen_ctx *g) {
  g->dst = mx_data(out);
  g->t = (mx_dtype)out->dtype;
  g->n = out->size;
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN, gen_range, g);
  return MX_OK;
}

mx_status mx_k_iota(mx_array *out, mx_array *const *in) {
  (void)in;
  gen_ctx g = {.kind = GEN_IOTA, .inner = 1, .dim = out->size > 0 ? out->size : 1};
  int axis = out->params ? out->params->axis : -1;
  if (axis >= out->ndim) return mx_error(MX_EINVAL, "[iota] axis %d is out of range for rank %d", axis, out->ndim);
  if (axis >= 0) {
    g.dim = out->shape[axis];
    for (int d = axis + 1; d < out->ndim; d++) g.inner *= out->shape[d];
    if (g.dim == 0 || g.inner == 0) return MX_OK; /* empty */
  }
  return generate(out, &g);
}

mx_status mx_k_arange(mx_array *out, mx_array *const *in) {
  (void)in;
  mx_status st = need_params(out, "arange");
  if (st) return st;
  gen_ctx g = {.kind = GEN_ARANGE, .start = out->params->f[0], .step = out->params->f[1]};
  return generate(out, &g);
}

/* numpy's linspace: step = (stop - start) / (n - 1) with the endpoint, else / n;
 * the last element is exactly stop when the endpoint is included. */
mx_status mx_k_linspace(mx_array *out, mx_array *const *in) {
  (void)in;
  mx_status st = need_params(out, "linspace");
  if (st) return st;
  double start = out->params->f[0], stop = out->params->f[1];
  int endpoint = out->params->flags & 1;
  int64_t n = out->size, div = endpoint ? n - 1 : n;
  gen_ctx g = {.kind = GEN_LINSPACE, .start = start, .stop = stop, .endpoint = endpoint};
  g.step = div > 0 ? (stop - start) / (double)div : 0;
  return generate(out, &g);
}
