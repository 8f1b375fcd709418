/* binary.c: elementwise kernels of two inputs (the BINARY family) and SELECT.
 *
 * One driver serves every op. It collapses the broadcast iteration space to
 * the fewest dims (same-shape contiguous inputs become one flat row, a scalar
 * side becomes stride 0), splits large outputs across cores, and hands each
 * innermost row to a per-dtype row function whose loops are specialised for
 * strides 0 and 1 so the compiler vectorizes them. An op is one table line. */
#include <math.h>

#include "complex.h"
#include "elementwise.h"
#include "kernels.h"
#include "special.h"

/* The scalar semantics and the op tables (ARITH_OPS, FLOAT_OPS, CMP_OPS) are in
 * elementwise.h, shared with the generated-C tier (jit.c). */

/* ---- the driver --------------------------------------------------------------- */

typedef struct bctx bctx;
/* Computes m rows of n contiguous outputs at o; input k starts at p[k] and
 * steps c->inner[k] along a row, c->outer[k] from row to row. */
typedef void (*row_fn)(const bctx *c, void *o, const void *const *p, int64_t n, int64_t m);

struct bctx {
  mx_op op;
  mx_dtype pdtype; /* SELECT: the predicate's dtype */
  int nin, ndim;   /* ndim >= 1 after collapsing */
  int64_t shape[MX_MAX_RANK];
  int64_t st[3][MX_MAX_RANK]; /* element strides of each input */
  int64_t inner[3], outer[3]; /* st[k][ndim - 1], st[k][ndim - 2] */
  const char *src[3];
  int isz[3];
  char *dst;
  int osz;
  row_fn row;
};

/* Computes the flat output range [lo, hi) with an index counter. Whole rows
 * go to the row function in blocks along the next-to-last dim, so short rows
 * ([N,1] + [1,4]) do not pay a call per row. */
static void run_range(void *ctx, int64_t lo, int64_t hi) {
  const bctx *c = ctx;
  const int last = c->ndim - 1;
  if (last == 0) { /* one collapsed row (same shapes or a scalar side): a single row call */
    const void *p[3] = {0, 0, 0};
    for (int k = 0; k < c->nin; k++) p[k] = c->src[k] + lo * c->st[k][0] * c->isz[k];
    c->row(c, c->dst + lo * c->osz, p, hi - lo, 1);
    return;
  }
  const int64_t len = c->shape[last];
  int64_t idx[MX_MAX_RANK] = {0}, off[3] = {0, 0, 0}, r = lo;
  for (int i = last; i >= 0 && r; i--) { /* lo == 0 (small arrays): no divisions */
    idx[i] = r % c->shape[i];
    r /= c->shape[i];
    for (int k = 0; k < c->nin; k++) off[k] += idx[i] * c->st[k][i];
  }
  for (int64_t pos = lo; pos < hi;) {
    int64_t n = len - idx[last], m = 1;
    if (n > hi - pos) {
      n = hi - pos;
    } else if (idx[last] == 0 && last > 0) {
      m = c->shape[last - 1] - idx[last - 1];
      if (m > (hi - pos) / len) m = (hi - pos) / len;
    }
    const void *p[3] = {0, 0, 0};
    for (int k = 0; k < c->nin; k++) p[k] = c->src[k] + off[k] * c->isz[k];
    c->row(c, c->dst + pos * c->osz, p, n, m);
    pos += n * m;
    int i = last;
    if (m == 1) {
      idx[last] += n;
      for (int k = 0; k < c->nin; k++) off[k] += n * c->st[k][last];
    } else {
      i = last - 1;
      idx[i] += m;
      for (int k = 0; k < c->nin; k++) off[k] += m * c->st[k][i];
    }
    for (; i > 0 && idx[i] == c->shape[i]; i--) {
      idx[i] = 0;
      idx[i - 1]++;
      for (int k = 0; k < c->nin; k++) off[k] += c->st[k][i - 1] - c->shape[i] * c->st[k][i];
    }
  }
}

static void bind_range(void *ctx, char *dst, const char *const *src) {
  bctx *c = ctx;
  c->dst = dst;
  for (int k = 0; k < c->nin; k++) c->src[k] = src[k];
}

/* Validates shapes, collapses dims, and runs c->row over the output. */
static mx_status run(bctx *c, const char *name, mx_array *out, mx_array *const *in) {
  char s1[96], s2[96];
  for (int k = 0; k < c->nin; k++) {
    const mx_array *a = in[k];
    int ok = a->ndim <= out->ndim;
    for (int i = 0; ok && i < a->ndim; i++) {
      int64_t d = a->shape[a->ndim - 1 - i];
      ok = d == 1 || d == out->shape[out->ndim - 1 - i];
    }
    if (!ok)
      return mx_error(MX_EINVAL, "[%s] input %s does not broadcast to the output %s; broadcast the inputs first", name,
                      mx_describe(a, s1, sizeof s1), mx_describe(out, s2, sizeof s2));
  }
  if (out->size == 0) return MX_OK;
  c->dst = mx_data(out);
  c->osz = mx_dtype_size((mx_dtype)out->dtype);
  for (int k = 0; k < c->nin; k++) {
    c->src[k] = mx_data(in[k]);
    c->isz[k] = mx_dtype_size((mx_dtype)in[k]->dtype);
    if (!c->src[k]) return mx_error(MX_EINVAL, "[%s] input %d has no data; evaluate it first", name, k);
  }
  if (!c->dst) return mx_error(MX_EINVAL, "[%s] the output has no buffer", name);

  /* Drop size-1 dims and merge neighbours that every input walks contiguously. */
  int64_t bs[3][MX_MAX_RANK];
  for (int k = 0; k < c->nin; k++) mx_broadcast_strides(in[k], out, bs[k]);
  int d = 0;
  for (int i = 0; i < out->ndim; i++) {
    int64_t len = out->shape[i];
    if (len == 1) continue;
    int merge = d > 0;
    for (int k = 0; merge && k < c->nin; k++) merge = c->st[k][d - 1] == bs[k][i] * len;
    if (merge) {
      c->shape[d - 1] *= len;
      for (int k = 0; k < c->nin; k++) c->st[k][d - 1] = bs[k][i];
    } else {
      c->shape[d] = len;
      for (int k = 0; k < c->nin; k++) c->st[k][d] = bs[k][i];
      d++;
    }
  }
  if (d == 0) { /* rank 0 or all dims 1: one element */
    c->shape[0] = 1;
    for (int k = 0; k < c->nin; k++) c->st[k][0] = 0;
    d = 1;
  }
  c->ndim = d;
  for (int k = 0; k < c->nin; k++) {
    c->inner[k] = c->st[k][d - 1];
    c->outer[k] = d > 1 ? c->st[k][d - 2] : 0;
  }

  if (mx_ew_capture) return mx_ew_keep(c, sizeof *c, run_range, bind_range, mx_grain(out));
  if (out->size >= 2 * mx_grain(out))
    mx_parallel_for(out->size, mx_grain(out), run_range, c);
  else
    run_range(c, 0, out->size);
  return MX_OK;
}

/* ---- binary rows ---------------------------------------------------------------- */

/* One op over m rows; the stride-1 and scalar-side loops are the ones that vectorize. */
#define ROW_LOOP(O, EXPR)                                                                \
  do {                                                                                   \
    O *o = o_;                                                                           \
    const T *pa = p[0], *pb = p[1];                                                      \
    if (n == 1 && m == 1) { /* one element (scalars in gradient tapes): no loop setup */ \
      const T a = pa[0], b = pb[0];                                                      \
      o[0] = (O)(EXPR);                                                                  \
      break;                                                                             \
    }                                                                                    \
    for (int64_t r = 0; r < m; r++, o += n, pa += c->outer[0], pb += c->outer[1]) {     \
      if (sa == 1 && sb == 1) {                                                          \
        for (int64_t i = 0; i < n; i++) {                                                \
          T a = pa[i], b = pb[i];                                                        \
          o[i] = (O)(EXPR);                                                              \
        }                                                                                \
      } else if (sa == 0 && sb == 1) {                                                   \
        const T a = pa[0];                                                               \
        for (int64_t i = 0; i < n; i++) {                                                \
          T b = pb[i];                                                                   \
          o[i] = (O)(EXPR);                                                              \
        }                                                                                \
      } else if (sa == 1 && sb == 0) {                                                   \
        const T b = pb[0];                                                               \
        for (int64_t i = 0; i < n; i++) {                                                \
          T a = pa[i];                                                                   \
          o[i] = (O)(EXPR);                                                              \
        }                                                                                \
      } else { /* both 0: a single element (strides are 0 or 1 after collapsing) */      \
        const T a = pa[0], b = pb[0];                                                    \
        const O v = (O)(EXPR);                                                           \
        for (int64_t i = 0; i < n; i++) o[i] = v;                                        \
      }                                                                                  \
    }                                                                                    \
  } while (0)

#define INT_CASE(OP, name, iexpr, fexpr) \
  case MX_OP_##OP: ROW_LOOP(T, iexpr); break;
#define FLOAT_CASE(OP, name, iexpr, fexpr) \
  case MX_OP_##OP: ROW_LOOP(T, fexpr); break;
#define FLOAT_ONLY_CASE(OP, name, fexpr) \
  case MX_OP_##OP: ROW_LOOP(T, fexpr); break;
#define CMP_CASE(OP, name, expr) \
  case MX_OP_##OP: ROW_LOOP(uint8_t, expr); break;
#define INT_ONLY_CASE(OP, name, expr) \
  case MX_OP_##OP: ROW_LOOP(T, expr); break;

/* row_<ID>: every op for one input dtype (T is a typedef so the tables can name it). */
#define INT_ROW(ID, CT)                                                                \
  static void row_##ID(const bctx *c, void *o_, const void *const *p, int64_t n,       \
                       int64_t m) {                                                    \
    typedef CT T;                                                                      \
    const int64_t sa = c->inner[0], sb = c->inner[1];                                  \
    switch (c->op) {                                                                   \
      ARITH_OPS(INT_CASE)                                                              \
      CMP_OPS(CMP_CASE)                                                                \
      INT_BINARY_OPS(INT_ONLY_CASE)                                                    \
      default: break;                                                                  \
    }                                                                                  \
  }
#define FLOAT_ROW(ID, CT)                                                              \
  static void row_##ID(const bctx *c, void *o_, const void *const *p, int64_t n,       \
                       int64_t m) {                                                    \
    typedef CT T;                                                                      \
    const int64_t sa = c->inner[0], sb = c->inner[1];                                  \
    switch (c->op) {                                                                   \
      ARITH_OPS(FLOAT_CASE)                                                            \
      FLOAT_OPS(FLOAT_ONLY_CASE)                                                       \
      CMP_OPS(CMP_CASE)                                                                \
      default: break;                                                                  \
    }                                                                                  \
  }
MX_INT_TYPES(INT_ROW)
MX_FLOAT_TYPES(FLOAT_ROW)

/* Complex operands: the ops that are defined for them (ops_complex.c rejects the rest
 * when the graph is built). Truthy means either part is nonzero. */
#define COMPLEX_ROW(ID, CT)                                                            \
  static void row_##ID(const bctx *c, void *o_, const void *const *p, int64_t n,       \
                       int64_t m) {                                                    \
    typedef CT T;                                                                      \
    const int64_t sa = c->inner[0], sb = c->inner[1];                                  \
    switch (c->op) {                                                                   \
      case MX_OP_ADD: ROW_LOOP(T, a + b); break;                                       \
      case MX_OP_SUBTRACT: ROW_LOOP(T, a - b); break;                                  \
      case MX_OP_MULTIPLY: ROW_LOOP(T, MX_CMUL(a, b)); break;                          \
      case MX_OP_DIVIDE: ROW_LOOP(T, MX_CDIV(a, b)); break;                            \
      case MX_OP_EQUAL: ROW_LOOP(uint8_t, a == b); break;                              \
      case MX_OP_NOT_EQUAL: ROW_LOOP(uint8_t, a != b); break;                          \
      case MX_OP_LOGICAL_AND: ROW_LOOP(uint8_t, (a != 0) & (b != 0)); break;           \
      case MX_OP_LOGICAL_OR: ROW_LOOP(uint8_t, (a != 0) | (b != 0)); break;            \
      default: break;                                                                  \
    }                                                                                  \
  }
MX_COMPLEX_TYPES(COMPLEX_ROW)

static int complex_op(mx_op op) {
  return op == MX_OP_ADD || op == MX_OP_SUBTRACT || op == MX_OP_MULTIPLY || op == MX_OP_DIVIDE || op == MX_OP_EQUAL ||
         op == MX_OP_NOT_EQUAL || op == MX_OP_LOGICAL_AND || op == MX_OP_LOGICAL_OR;
}

static row_fn binary_row(mx_dtype t) {
  switch (t) {
    case MX_BOOL: return row_U8; /* same storage; arithmetic on bool wraps like u8 */
#define ROW_CASE(ID, CT) \
    case MX_##ID: return row_##ID;
    MX_INT_TYPES(ROW_CASE)
    MX_FLOAT_TYPES(ROW_CASE)
    MX_COMPLEX_TYPES(ROW_CASE)
#undef ROW_CASE
    default: return NULL;
  }
}

enum { K_ARITH, K_FLOAT, K_CMP, K_INT };

static mx_status binary_kernel(mx_op op, int kind, mx_array *out, mx_array *const *in) {
  const char *name = mx_ops[op].name;
  mx_dtype t = (mx_dtype)in[0]->dtype, ot = (mx_dtype)out->dtype;
  if ((mx_dtype)in[1]->dtype != t)
    return mx_error(MX_EINVAL, "[%s] input dtypes differ (%s vs %s); cast both to the promoted dtype first", name,
                    mx_dtype_name(t), mx_dtype_name((mx_dtype)in[1]->dtype));
  bctx c = {.op = op, .nin = 2, .row = binary_row(t)};
  if (!c.row)
    return mx_error(MX_EINVAL, "[%s] dtype %s is storage only; cast to f32 first", name, mx_dtype_name(t));
  if (mx_is_complex(t) && !complex_op(op))
    return mx_error(MX_EINVAL, "[%s] is not defined for complex inputs (%s)", name, mx_dtype_name(t));
  if (kind == K_FLOAT && !mx_is_float(t) && !(mx_is_complex(t) && op == MX_OP_DIVIDE))
    return mx_error(MX_EINVAL, "[%s] expects float inputs, got %s; cast to a float dtype first", name,
                    mx_dtype_name(t));
  if (kind == K_INT && !mx_is_int(t) && t != MX_BOOL)
    return mx_error(MX_EINVAL, "[%s] expects integer inputs, got %s; build it with mx_binary", name, mx_dtype_name(t));
  mx_dtype want = kind == K_CMP ? MX_BOOL : t;
  if (ot != want)
    return mx_error(MX_EINVAL, "[%s] output dtype %s should be %s for %s inputs", name, mx_dtype_name(ot),
                    mx_dtype_name(want), mx_dtype_name(t));
  return run(&c, name, out, in);
}

#define ARITH_KERNEL(OP, name, iexpr, fexpr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return binary_kernel(MX_OP_##OP, K_ARITH, out, in); }
#define FLOAT_KERNEL(OP, name, fexpr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return binary_kernel(MX_OP_##OP, K_FLOAT, out, in); }
#define CMP_KERNEL(OP, name, expr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return binary_kernel(MX_OP_##OP, K_CMP, out, in); }
ARITH_OPS(ARITH_KERNEL)
FLOAT_OPS(FLOAT_KERNEL)
CMP_OPS(CMP_KERNEL)
#define INT_KERNEL(OP, name, expr) \
  mx_status mx_k_##name(mx_array *out, mx_array *const *in) { return binary_kernel(MX_OP_##OP, K_INT, out, in); }
INT_BINARY_OPS(INT_KERNEL)

/* complex(re, im): two real parts of one float dtype make the complex dtype of that width. */
#define PACK_ROW(ID, RT, CT, PACK)                                                                  \
  static void pack_row_##ID(const bctx *c, void *o_, const void *const *p, int64_t n, int64_t m) { \
    typedef RT T;                                                                                   \
    const int64_t sa = c->inner[0], sb = c->inner[1];                                               \
    ROW_LOOP(CT, PACK(a, b));                                                                       \
  }
PACK_ROW(F32, float, float _Complex, mx_cpackf)
PACK_ROW(F64, double, double _Complex, mx_cpack)

mx_status mx_k_complex(mx_array *out, mx_array *const *in) {
  mx_dtype t = (mx_dtype)in[0]->dtype, ot = (mx_dtype)out->dtype;
  if ((mx_dtype)in[1]->dtype != t || (t != MX_F32 && t != MX_F64))
    return mx_error(MX_EINVAL, "[complex] expects two f32 or two f64 parts, got %s and %s; build it with mx_binary",
                    mx_dtype_name(t), mx_dtype_name((mx_dtype)in[1]->dtype));
  mx_dtype want = t == MX_F32 ? MX_C64 : MX_C128;
  if (ot != want)
    return mx_error(MX_EINVAL, "[complex] output dtype %s should be %s for %s parts", mx_dtype_name(ot),
                    mx_dtype_name(want), mx_dtype_name(t));
  bctx c = {.op = MX_OP_COMPLEX, .nin = 2, .row = t == MX_F32 ? pack_row_F32 : pack_row_F64};
  return run(&c, "complex", out, in);
}

/* ---- select ------------------------------------------------------------------------ */

/* Select only moves bits, so values are copied by width; the predicate keeps its
 * dtype because truthiness is not bitwise for floats (-0.0 is false, NaN true). */
#define SEL_CASE(ID, P)                                                                        \
  case MX_##ID: {                                                                              \
    const P *pp = p[0];                                                                        \
    const V *pa = p[1], *pb = p[2];                                                            \
    V *o = o_;                                                                                 \
    for (int64_t r = 0; r < m; r++, o += n, pp += c->outer[0], pa += c->outer[1], pb += c->outer[2]) { \
      if (s0 == 1 && s1 == 1 && s2 == 1)                                                       \
        for (int64_t i = 0; i < n; i++) o[i] = SELECT_EXPR(pp[i], pa[i], pb[i]);                \
      else                                                                                     \
        for (int64_t i = 0; i < n; i++) o[i] = SELECT_EXPR(pp[i * s0], pa[i * s1], pb[i * s2]);\
    }                                                                                          \
    break;                                                                                     \
  }
#define SEL_ROW_V(BITS, VT)                                                                    \
  static void sel_row_##BITS(const bctx *c, void *o_, const void *const *p, int64_t n, int64_t m) { \
    typedef VT V;                                                                              \
    const int64_t s0 = c->inner[0], s1 = c->inner[1], s2 = c->inner[2];                        \
    switch (c->pdtype) {                                                                       \
      MX_COMPUTE_TYPES(SEL_CASE)                                                               \
      MX_COMPLEX_TYPES(SEL_CASE)                                                               \
      default: break;                                                                          \
    }                                                                                          \
  }
#define SEL_ROW(BITS) SEL_ROW_V(BITS, uint##BITS##_t)
typedef struct { uint64_t lo, hi; } sel_u128; /* c128 values */
SEL_ROW(8)
SEL_ROW(16)
SEL_ROW(32)
SEL_ROW(64)
SEL_ROW_V(128, sel_u128)

mx_status mx_k_select(mx_array *out, mx_array *const *in) {
  mx_dtype pt = (mx_dtype)in[0]->dtype, ot = (mx_dtype)out->dtype;
  if ((mx_dtype)in[1]->dtype != ot || (mx_dtype)in[2]->dtype != ot)
    return mx_error(MX_EINVAL, "[select] branch dtypes (%s, %s) must equal the output dtype %s; cast them first",
                    mx_dtype_name((mx_dtype)in[1]->dtype), mx_dtype_name((mx_dtype)in[2]->dtype), mx_dtype_name(ot));
  if (!binary_row(pt))
    return mx_error(MX_EINVAL, "[select] predicate dtype %s is storage only; cast it to bool first", mx_dtype_name(pt));
  bctx c = {.op = MX_OP_SELECT, .pdtype = pt, .nin = 3};
  switch (mx_dtype_size(ot)) {
    case 1: c.row = sel_row_8; break;
    case 2: c.row = sel_row_16; break;
    case 4: c.row = sel_row_32; break;
    case 8: c.row = sel_row_64; break;
    case 16: c.row = sel_row_128; break;
    default: return mx_error(MX_EINVAL, "[select] unsupported output dtype %s", mx_dtype_name(ot));
  }
  return run(&c, "select", out, in);
}
