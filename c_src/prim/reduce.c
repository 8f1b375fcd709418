/* reduce.c: reductions (sum, product, max, min, argmax, argmin, all, any) and
 * scans (cumulative sum, product, max, min).
 *
 * A reduction views its input as [outer, R, inner] with R the reduced axes
 * (after dropping unit axes and merging neighbours). inner == 1 folds
 * contiguous rows: pairwise, with several accumulators, long rows in chunks
 * across cores. inner > 1 folds blocks of COLS columns row by row, which
 * vectorizes over the columns. Reduced axes that are not one block are folded
 * one block at a time, last first (each pass shrinks the data), except for
 * argmax/argmin, which copy the reduced axes to the end first. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "complex.h"
#include "elementwise.h"
#include "kernels.h"
#include "layout.h"

#define LANES 16       /* independent accumulators per row: lets gcc vectorize */
#define VBYTES 16      /* vector width for max/min (SSE; gcc splits or widens as needed) */
#define BLOCK 256      /* leaf of the pairwise row fold */
#define COLS 1024      /* columns folded together when inner > 1 (stack arrays: <= 16 KiB) */
#define CHUNK 65536    /* long rows split into chunks of at least this many... */
#define MAX_CHUNKS 64  /* ...and at most this many, folded in parallel */

/* Column folds and scans have no pairwise blocking: f32 (and c64) accumulate in double. */
#define WIDE(T) __typeof__(_Generic((T)0, float: 0.0, double: 0.0, float _Complex: (double _Complex)0, \
                                    double _Complex: (double _Complex)0, default: (uint64_t)0))
/* ACC, ISNAN and the fold steps (STEP_SUM, STEP_PROD, STEP_MAX, STEP_MIN) are in elementwise.h,
 * shared with the generated-C tier (jit.c). */
#define STEP_CPROD(a, b) MX_CMUL(a, b)
/* argmax/argmin columns: v replaces the best b when strictly better or NaN. */
#define BETTER_MAX(v, b) (!((v) <= (b)))
#define BETTER_MIN(v, b) (!((v) >= (b)))
/* STEP_MAX/MIN on gcc vectors (lane masks, since C has no vector ?:). */
#define VSELECT(m, b, a) ((__typeof__(a))(((m) & (__typeof__(m))(b)) | (~(m) & (__typeof__(m))(a))))
#define VSTEP_MAX(a, b) VSELECT(((b) > (a)) | ((b) != (b)), b, a)
#define VSTEP_MIN(a, b) VSELECT(((b) < (a)) | ((b) != (b)), b, a)

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Items per thread so that each thread gets at least MX_PARALLEL_GRAIN elements. */
static inline int64_t grain_for(int64_t per_item) { return max64(1, MX_PARALLEL_GRAIN / max64(1, per_item)); }

/* A long row folds as chunk partials, then the partials; the split depends on
 * n only, so serial and parallel runs give the same bits. */
static inline int64_t chunk_count(int64_t n) { return n < 2 * CHUNK ? 1 : min64(MAX_CHUNKS, n / CHUNK); }
static inline int64_t chunk_lo(int64_t n, int64_t nc, int64_t c) { return c * n / nc; }

/* ---- per-dtype row and column folds ----------------------------------------------- */

/* One reduction for one dtype:
 *   rows(x, n, out, lo, hi): out[k] = fold of row k (n >= 1 contiguous elements), k in [lo, hi)
 *   part(x, n, out):         out[0] = fold of one chunk; NULL when partials can't be refolded
 *   cols(x, n, stride, w, out): out[c] = fold of column c over n rows `stride` apart, c < w <= COLS */
typedef struct {
  void (*rows)(const void *x, int64_t n, void *out, int64_t lo, int64_t hi);
  void (*part)(const void *x, int64_t n, void *out);
  void (*cols)(const void *x, int64_t n, int64_t stride, int64_t w, void *out);
} reducer;

/* Leaf of a row fold (n <= BLOCK) for sum and product: LANES accumulators of
 * type A, which gcc turns into vector adds. Rows shorter than LANES (gradient tapes' 1-10
 * elements) skip the lanes: their combined INITs are a constant gcc folds, so the same
 * steps in the same order give the same bits without LANES - 1 dependent adds. */
#define LANES_LEAF(OP, ID, T, A, INIT, STEP)                                                       \
  static A OP##_leaf_##ID(const T *x, int64_t n) {                                                 \
    if (n < LANES) {                                                                               \
      A r = (A)(INIT);                                                                             \
      for (int j = 1; j < LANES; j++) r = STEP(r, (A)(INIT));                                      \
      for (int64_t i = 0; i < n; i++) r = STEP(r, (A)x[i]);                                        \
      return r;                                                                                    \
    }                                                                                              \
    A acc[LANES];                                                                                  \
    for (int j = 0; j < LANES; j++) acc[j] = (A)(INIT);                                            \
    int64_t i = 0;                                                                                 \
    for (; i + LANES <= n; i += LANES)                                                             \
      for (int j = 0; j < LANES; j++) acc[j] = STEP(acc[j], (A)x[i + j]);                          \
    A r = acc[0];                                                                                  \
    for (int j = 1; j < LANES; j++) r = STEP(r, acc[j]);                                           \
    for (; i < n; i++) r = STEP(r, (A)x[i]);                                                       \
    return r;                                                                                      \
  }

/* Leaf for max and min: gcc won't vectorize a NaN-aware select by itself, so
 * it is written on gcc vectors (4 of them, for independent chains). */
#define VEC_LEAF(OP, ID, T, A, INIT, STEP)                                                         \
  typedef T OP##_vec_##ID __attribute__((vector_size(VBYTES)));                                    \
  static T OP##_leaf_##ID(const T *x, int64_t n) {                                                 \
    enum { W = VBYTES / sizeof(T) };                                                               \
    OP##_vec_##ID acc[4], b;                                                                       \
    for (int j = 0; j < 4; j++) acc[j] = (OP##_vec_##ID){0} + x[0];                                \
    int64_t i = 0;                                                                                 \
    for (; i + 4 * W <= n; i += 4 * W)                                                             \
      for (int j = 0; j < 4; j++) {                                                                \
        memcpy(&b, x + i + j * W, sizeof b);                                                       \
        acc[j] = V##STEP(acc[j], b);                                                               \
      }                                                                                            \
    T r = x[0];                                                                                    \
    for (int j = 0; j < 4; j++)                                                                    \
      for (int l = 0; l < W; l++) r = STEP(r, acc[j][l]);                                          \
    for (; i < n; i++) r = STEP(r, x[i]);                                                          \
    return r;                                                                                      \
  }

/* sum, product, max, min: in dtype T, row accumulator A, column accumulator CA. */
#define DEF_FOLD(OP, ID, T, A, CA, INIT, STEP, LEAF, NEST)                                         \
  LEAF(OP, ID, T, A, INIT, STEP)                                                                   \
  static A OP##_pw_##ID(const T *x, int64_t n) {                                                   \
    if (n <= BLOCK) return OP##_leaf_##ID(x, n);                                                   \
    int64_t h = (n / 2 + BLOCK - 1) / BLOCK * BLOCK;                                               \
    A a = OP##_pw_##ID(x, h), b = OP##_pw_##ID(x + h, n - h);                                      \
    return STEP(a, b);                                                                             \
  }                                                                                                \
  static void OP##_part_##ID(const void *xv, int64_t n, void *out) {                               \
    *(T *)out = (T)OP##_pw_##ID((const T *)xv, n);                                                 \
  }                                                                                                \
  static T OP##_fold_##ID(const T *x, int64_t n) {                                                 \
    int64_t nc = chunk_count(n);                                                                   \
    if (nc == 1) return (T)OP##_pw_##ID(x, n);                                                     \
    T parts[MAX_CHUNKS], r;                                                                        \
    for (int64_t c = 0; c < nc; c++) {                                                             \
      int64_t lo = chunk_lo(n, nc, c);                                                             \
      OP##_part_##ID(x + lo, chunk_lo(n, nc, c + 1) - lo, &parts[c]);                              \
    }                                                                                              \
    OP##_part_##ID(parts, nc, &r);                                                                 \
    return r;                                                                                      \
  }                                                                                                \
  static void OP##_rows_##ID(const void *xv, int64_t n, void *ov, int64_t lo, int64_t hi) {        \
    for (int64_t k = lo; k < hi; k++) ((T *)ov)[k] = OP##_fold_##ID((const T *)xv + k * n, n);     \
  }                                                                                                \
  static void OP##_cols_##ID(const void *xv, int64_t n, int64_t stride, int64_t w, void *ov) {     \
    const T *x = xv;                                                                               \
    CA acc[COLS];                                                                                  \
    for (int64_t c = 0; c < w; c++) acc[c] = (CA)x[c];                                             \
    int64_t r = 1;                                                                                 \
    /* four rows per pass over acc: a quarter of the loads and stores of acc (sum and              \
     * product; gcc won't vectorize the nested NaN-aware max/min selects) */                       \
    for (; NEST && r + 4 <= n; r += 4) {                                                           \
      const T *p0 = x + r * stride, *p1 = p0 + stride, *p2 = p1 + stride, *p3 = p2 + stride;       \
      for (int64_t c = 0; c < w; c++)                                                              \
        acc[c] = STEP(acc[c], STEP(STEP((CA)p0[c], (CA)p1[c]), STEP((CA)p2[c], (CA)p3[c])));       \
    }                                                                                              \
    for (; r < n; r++) {                                                                           \
      const T *row = x + r * stride;                                                               \
      for (int64_t c = 0; c < w; c++) acc[c] = STEP(acc[c], (CA)row[c]);                           \
    }                                                                                              \
    for (int64_t c = 0; c < w; c++) ((T *)ov)[c] = (T)acc[c];                                      \
  }

#define DEF_SUM(ID, T) DEF_FOLD(sum, ID, T, ACC(T), WIDE(T), 0, STEP_SUM, LANES_LEAF, 1)
#define DEF_PROD(ID, T) DEF_FOLD(prod, ID, T, ACC(T), WIDE(T), 1, STEP_PROD, LANES_LEAF, 1)
#define DEF_MAX(ID, T) DEF_FOLD(max, ID, T, T, T, x[0], STEP_MAX, VEC_LEAF, 0)
#define DEF_MIN(ID, T) DEF_FOLD(min, ID, T, T, T, x[0], STEP_MIN, VEC_LEAF, 0)
MX_COMPUTE_TYPES(DEF_SUM)
MX_COMPUTE_TYPES(DEF_PROD)
#define DEF_CPROD(ID, T) DEF_FOLD(prod, ID, T, ACC(T), WIDE(T), 1, STEP_CPROD, LANES_LEAF, 1)
MX_COMPLEX_TYPES(DEF_SUM)
MX_COMPLEX_TYPES(DEF_CPROD)
MX_COMPUTE_TYPES(DEF_MAX)
MX_COMPUTE_TYPES(DEF_MIN)

/* argmax, argmin: int64 index of the first best element; the first NaN wins.
 * Rows take the max (min) with the vectorized fold, then find its first
 * occurrence, testing blocks of 64 at a time so that the test vectorizes too. */
#define FIND_FIRST(x, n, COND)                                                                     \
  for (int64_t i0 = 0; i0 < (n); i0 += 64) {                                                       \
    int64_t e = min64((n), i0 + 64);                                                               \
    int hit = 0;                                                                                   \
    for (int64_t i = i0; i < e; i++) hit |= (COND(x[i]));                                          \
    if (hit)                                                                                       \
      for (int64_t i = i0; i < e; i++)                                                             \
        if (COND(x[i])) return i;                                                                  \
  }
#define DEF_ARG(OP, ID, T, FOLD, BETTER)                                                           \
  static int64_t OP##_index_##ID(const T *x, int64_t n) {                                          \
    T m = FOLD##_fold_##ID(x, n);                                                                  \
    if (ISNAN(m)) {                                                                                \
      FIND_FIRST(x, n, ISNAN)                                                                      \
    } else {                                                                                       \
      FIND_FIRST(x, n, m ==)                                                                       \
    }                                                                                              \
    return 0;                                                                                      \
  }                                                                                                \
  static void OP##_rows_##ID(const void *xv, int64_t n, void *ov, int64_t lo, int64_t hi) {        \
    for (int64_t k = lo; k < hi; k++) ((int64_t *)ov)[k] = OP##_index_##ID((const T *)xv + k * n, n); \
  }                                                                                                \
  static void OP##_cols_##ID(const void *xv, int64_t n, int64_t stride, int64_t w, void *ov) {     \
    const T *x = xv;                                                                               \
    T b[COLS];                                                                                     \
    int64_t bi[COLS];                                                                              \
    for (int64_t c = 0; c < w; c++) b[c] = x[c], bi[c] = 0;                                        \
    for (int64_t r = 1; r < n; r++) {                                                              \
      const T *row = x + r * stride;                                                               \
      for (int64_t c = 0; c < w; c++)                                                              \
        if (BETTER(row[c], b[c]) && !ISNAN(b[c])) b[c] = row[c], bi[c] = r;                        \
    }                                                                                              \
    memcpy(ov, bi, (size_t)w * sizeof(int64_t));                                                   \
  }

#define DEF_ARGMAX(ID, T) DEF_ARG(argmax, ID, T, max, BETTER_MAX)
#define DEF_ARGMIN(ID, T) DEF_ARG(argmin, ID, T, min, BETTER_MIN)
MX_COMPUTE_TYPES(DEF_ARGMAX)
MX_COMPUTE_TYPES(DEF_ARGMIN)

/* all, any: read any dtype as truthy (NaN is true; -0.0 is false), write bool. */
#define DEF_TRUTHY(ID, T)                                                                          \
  static inline int truthy_##ID(T v) { return v != 0; }
MX_COMPUTE_TYPES(DEF_TRUTHY)
static inline int truthy_F16(uint16_t v) { return (v & 0x7fff) != 0; }
static inline int truthy_BF16(uint16_t v) { return (v & 0x7fff) != 0; }
MX_COMPLEX_TYPES(DEF_TRUTHY)
#define LOGIC_TYPES(X) MX_COMPUTE_TYPES(X) X(F16, uint16_t) X(BF16, uint16_t) MX_COMPLEX_TYPES(X)

/* all: stop at the first false; any (ALL = 0): at the first true. */
#define DEF_LOGIC(OP, ID, T, ALL)                                                                  \
  static void OP##_rows_##ID(const void *xv, int64_t n, void *ov, int64_t lo, int64_t hi) {        \
    uint8_t *o = ov;                                                                               \
    for (int64_t k = lo; k < hi; k++) {                                                            \
      const T *x = (const T *)xv + k * n;                                                          \
      int64_t i = 0;                                                                               \
      while (i < n && truthy_##ID(x[i]) == ALL) i++;                                               \
      o[k] = (uint8_t)(i == n ? ALL : !ALL);                                                       \
    }                                                                                              \
  }                                                                                                \
  static void OP##_cols_##ID(const void *xv, int64_t n, int64_t stride, int64_t w, void *ov) {     \
    const T *x = xv;                                                                               \
    uint8_t *o = ov;                                                                               \
    for (int64_t c = 0; c < w; c++) o[c] = ALL;                                                    \
    for (int64_t r = 0; r < n; r++) {                                                              \
      const T *row = x + r * stride;                                                               \
      for (int64_t c = 0; c < w; c++)                                                              \
        o[c] = ALL ? (o[c] & truthy_##ID(row[c])) : (o[c] | truthy_##ID(row[c]));                  \
    }                                                                                              \
  }

#define DEF_ALL(ID, T) DEF_LOGIC(all, ID, T, 1)
#define DEF_ANY(ID, T) DEF_LOGIC(any, ID, T, 0)
LOGIC_TYPES(DEF_ALL)
LOGIC_TYPES(DEF_ANY)

/* Tables indexed by the input dtype; a missing entry is an unsupported dtype. */
#define FOLD_ENTRY(OP, ID) [MX_##ID] = {OP##_rows_##ID, OP##_part_##ID, OP##_cols_##ID},
#define NOPART_ENTRY(OP, ID) [MX_##ID] = {OP##_rows_##ID, NULL, OP##_cols_##ID},
#define SUM_ENTRY(ID, T) FOLD_ENTRY(sum, ID)
#define PROD_ENTRY(ID, T) FOLD_ENTRY(prod, ID)
#define MAX_ENTRY(ID, T) FOLD_ENTRY(max, ID)
#define MIN_ENTRY(ID, T) FOLD_ENTRY(min, ID)
#define ARGMAX_ENTRY(ID, T) NOPART_ENTRY(argmax, ID)
#define ARGMIN_ENTRY(ID, T) NOPART_ENTRY(argmin, ID)
#define ALL_ENTRY(ID, T) NOPART_ENTRY(all, ID)
#define ANY_ENTRY(ID, T) NOPART_ENTRY(any, ID)
static const reducer sum_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(SUM_ENTRY) MX_COMPLEX_TYPES(SUM_ENTRY)};
static const reducer prod_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(PROD_ENTRY) MX_COMPLEX_TYPES(PROD_ENTRY)};
static const reducer max_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(MAX_ENTRY)};
static const reducer min_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(MIN_ENTRY)};
static const reducer argmax_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(ARGMAX_ENTRY)};
static const reducer argmin_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(ARGMIN_ENTRY)};
static const reducer all_tab[MX_DTYPE_COUNT] = {LOGIC_TYPES(ALL_ENTRY)};
static const reducer any_tab[MX_DTYPE_COUNT] = {LOGIC_TYPES(ANY_ENTRY)};

/* ---- layout-generic drivers ------------------------------------------------------- */

typedef struct {
  const reducer *r;
  const char *x;
  char *o;
  int ies, oes; /* element sizes of input and output */
  int64_t n, inner, nblocks;
  void *parts;
} reduce_ctx;

static void rows_task(void *vc, int64_t lo, int64_t hi) {
  reduce_ctx *c = vc;
  c->r->rows(c->x, c->n, c->o, lo, hi);
}

static void chunks_task(void *vc, int64_t lo, int64_t hi) {
  reduce_ctx *c = vc;
  int64_t nc = chunk_count(c->n);
  for (int64_t k = lo; k < hi; k++) {
    int64_t a = chunk_lo(c->n, nc, k), b = chunk_lo(c->n, nc, k + 1);
    c->r->part(c->x + a * c->ies, b - a, (char *)c->parts + k * c->oes);
  }
}

static void cols_task(void *vc, int64_t lo, int64_t hi) {
  reduce_ctx *c = vc;
  for (int64_t k = lo; k < hi; k++) {
    int64_t o = k / c->nblocks, c0 = k % c->nblocks * COLS;
    int64_t w = min64(COLS, c->inner - c0);
    c->r->cols(c->x + (o * c->n * c->inner + c0) * c->ies, c->n, c->inner, w, c->o + (o * c->inner + c0) * c->oes);
  }
}

/* Folds x viewed as [outer, n, inner] (n >= 1) into o[outer, inner]. */
static void reduce_view(const reducer *r, const void *x, int ies, void *o, int oes, int64_t outer, int64_t n,
                        int64_t inner) {
  reduce_ctx c = {.r = r, .x = x, .o = o, .ies = ies, .oes = oes, .n = n, .inner = inner};
  if (inner > 1) {
    c.nblocks = (inner + COLS - 1) / COLS;
    mx_parallel_for(outer * c.nblocks, grain_for(n * min64(inner, COLS)), cols_task, &c);
  } else if (outer == 1 && r->part && chunk_count(n) > 1) {
#define PART_MEMBER(ID, T) T ID[MAX_CHUNKS];
    union { MX_COMPUTE_TYPES(PART_MEMBER) MX_COMPLEX_TYPES(PART_MEMBER) } parts; /* MAX_CHUNKS partials of any dtype */
#undef PART_MEMBER
    int64_t nc = chunk_count(n);
    c.parts = &parts;
    mx_parallel_for(nc, 1, chunks_task, &c);
    r->part(&parts, nc, o);
  } else {
    mx_parallel_for(outer, grain_for(n), rows_task, &c);
  }
}

/* Strided copy of a view (shape, element strides into src) into contiguous dst. */
typedef struct {
  const char *src;
  char *dst;
  int es, nd;
  int64_t shape[MX_MAX_RANK], stride[MX_MAX_RANK];
} gather_ctx;

#define COPY_RUN(T)                                                                                \
  for (int64_t j = 0; j < run; j++) ((T *)d)[j] = ((const T *)s)[j * st];

static void gather_task(void *vc, int64_t lo, int64_t hi) {
  gather_ctx *g = vc;
  int last = g->nd - 1;
  int64_t idx[MX_MAX_RANK], off = 0, rem = lo;
  for (int d = last; d >= 0; d--) {
    idx[d] = rem % g->shape[d];
    rem /= g->shape[d];
    off += idx[d] * g->stride[d];
  }
  for (int64_t k = lo; k < hi;) {
    int64_t run = min64(g->shape[last] - idx[last], hi - k), st = g->stride[last];
    const char *s = g->src + off * g->es;
    char *d = g->dst + k * g->es;
    switch (g->es) {
    case 1: COPY_RUN(uint8_t) break;
    case 2: COPY_RUN(uint16_t) break;
    case 4: COPY_RUN(uint32_t) break;
    default: COPY_RUN(uint64_t) break;
    }
    k += run;
    off += run * st;
    idx[last] += run;
    for (int d = last; d > 0 && idx[d] == g->shape[d]; d--) {
      off += g->stride[d - 1] - idx[d] * g->stride[d];
      idx[d] = 0;
      idx[d - 1]++;
    }
  }
}

static void fill(void *o, mx_dtype t, int64_t n, double v) {
  switch (t) {
#define FILL(ID, T)                                                                                \
  case MX_##ID:                                                                                    \
    for (int64_t i = 0; i < n; i++) ((T *)o)[i] = (T)v;                                            \
    break;
    MX_COMPUTE_TYPES(FILL)
    MX_COMPLEX_TYPES(FILL)
#undef FILL
  default:
    break;
  }
}

/* Scratch from the engine's allocator: counted, cached, under the memory limit. */
static mx_status scratch(const char *name, int64_t n, int es, mx_buffer **out) {
  if (mx_buffer_alloc((size_t)n * (size_t)es, out) == MX_OK) return MX_OK;
  char why[256];
  snprintf(why, sizeof why, "%s", mx_last_error());
  return mx_error(MX_ENOMEM, "[%s] scratch of %lld elements: %s", name, (long long)n, why);
}

/* out_t: the required output dtype, or -1 for the input's. empty: the result
 * of an empty reduction, NAN when it has none. arg: argmax/argmin, whose
 * reduced axes must be folded together. */
static mx_status reduce(const char *name, const reducer *tab, int out_t, double empty, int arg, mx_array *out,
                        mx_array *const *in) {
  const mx_array *a = in[0];
  const mx_params *p = out->params;
  mx_dtype it = (mx_dtype)a->dtype, ot = (mx_dtype)out->dtype;
  if (a->dtype < 0 || a->dtype >= MX_DTYPE_COUNT || !tab[a->dtype].rows)
    return mx_error(MX_EINVAL, "[%s] dtype %s is not supported; cast to f32 first", name, mx_dtype_name(it));
  if ((int)ot != (out_t < 0 ? (int)it : out_t))
    return mx_error(MX_EINVAL, "[%s] output dtype %s does not match input dtype %s", name, mx_dtype_name(ot),
                    mx_dtype_name(it));
  int reduced[MX_MAX_RANK] = {0};
  int nip = p ? p->nip : 0;
  for (int k = 0; k < nip; k++) {
    int64_t ax = p->ip[k];
    if (ax < 0 || ax >= a->ndim || (k > 0 && ax <= p->ip[k - 1]))
      return mx_error(MX_EINVAL, "[%s] reduced axes must be sorted, distinct and in [0, %d)", name, a->ndim);
    reduced[ax] = 1;
  }
  if (out->size == 0) return MX_OK;
  if (a->size == 0) {
    if (isnan(empty))
      return mx_error(MX_EINVAL, "[%s] cannot reduce over an empty axis; use a non-empty array", name);
    fill(mx_data(out), ot, out->size, empty);
    return MX_OK;
  }

  /* Drop unit axes and merge neighbours of the same kind: kept/reduced groups alternate. */
  int64_t dims[MX_MAX_RANK];
  int red[MX_MAX_RANK], m = 0, groups = 0;
  for (int d = 0; d < a->ndim; d++) {
    if (a->shape[d] == 1) continue;
    if (m > 0 && red[m - 1] == reduced[d]) {
      dims[m - 1] *= a->shape[d];
    } else {
      dims[m] = a->shape[d];
      red[m++] = reduced[d];
      groups += reduced[d];
    }
  }
  int oes = mx_dtype_size(ot);
  const void *src = mx_data(a);
  mx_dtype st = it; /* dtype of src */
  mx_buffer *prev = NULL;
  mx_status status = MX_OK;

  if (groups > 1 && arg) {
    /* argmax/argmin over several groups: copy with kept axes first, reduced axes last */
    gather_ctx g = {.src = src, .es = mx_dtype_size(it), .nd = m};
    int64_t strides[MX_MAX_RANK], kept = 1, n = 1;
    mx_contiguous_strides(m, dims, strides);
    for (int pass = 0, j = 0; pass < 2; pass++)
      for (int k = 0; k < m; k++)
        if (red[k] == pass) {
          g.shape[j] = dims[k];
          g.stride[j++] = strides[k];
          if (pass) n *= dims[k];
          else kept *= dims[k];
        }
    if ((status = scratch(name, a->size, g.es, &prev))) return status;
    g.dst = prev->data;
    mx_parallel_for(a->size, MX_PARALLEL_GRAIN, gather_task, &g);
    src = prev->data;
    dims[0] = kept, dims[1] = n, red[0] = 0, red[1] = 1, m = 2, groups = 1;
  }
  /* Otherwise fold the last reduced group at a time (each pass shrinks the data)
   * until one group is left. */
  while (groups > 1) {
    int j = m - 1;
    while (!red[j]) j--;
    int64_t outer, len, inner;
    mx_axis_split(m, dims, j, &outer, &len, &inner);
    mx_buffer *next;
    if ((status = scratch(name, outer * inner, oes, &next))) break;
    reduce_view(&tab[st], src, mx_dtype_size(st), next->data, oes, outer, len, inner);
    if (prev) mx_buffer_release(prev);
    prev = next, src = next->data, st = ot;
    /* drop group j; the kept groups around it become neighbours */
    if (j + 1 < m) {
      dims[j - 1] *= dims[j + 1];
      for (int k = j + 2; k < m; k++) dims[k - 2] = dims[k], red[k - 2] = red[k];
      m -= 2;
    } else {
      m -= 1;
    }
    groups--;
  }
  if (status == MX_OK) {
    int64_t outer = 1, n = 1, inner = 1;
    for (int k = 0, seen = 0; k < m; k++) {
      if (red[k]) n = dims[k], seen = 1;
      else if (seen) inner *= dims[k];
      else outer *= dims[k];
    }
    reduce_view(&tab[st], src, mx_dtype_size(st), mx_data(out), oes, outer, n, inner);
  }
  if (prev) mx_buffer_release(prev);
  return status;
}

mx_status mx_k_sum(mx_array *out, mx_array *const *in) { return reduce("sum", sum_tab, -1, 0.0, 0, out, in); }
double mx_sum_f64(const double *x, int64_t n) { return sum_fold_F64(x, n); }
mx_status mx_k_product(mx_array *out, mx_array *const *in) { return reduce("product", prod_tab, -1, 1.0, 0, out, in); }
mx_status mx_k_reduce_max(mx_array *out, mx_array *const *in) {
  return reduce("reduce_max", max_tab, -1, NAN, 0, out, in);
}
mx_status mx_k_reduce_min(mx_array *out, mx_array *const *in) {
  return reduce("reduce_min", min_tab, -1, NAN, 0, out, in);
}
mx_status mx_k_argmax(mx_array *out, mx_array *const *in) {
  return reduce("argmax", argmax_tab, MX_S64, NAN, 1, out, in);
}
mx_status mx_k_argmin(mx_array *out, mx_array *const *in) {
  return reduce("argmin", argmin_tab, MX_S64, NAN, 1, out, in);
}
mx_status mx_k_all(mx_array *out, mx_array *const *in) { return reduce("all", all_tab, MX_BOOL, 1.0, 0, out, in); }
mx_status mx_k_any(mx_array *out, mx_array *const *in) { return reduce("any", any_tab, MX_BOOL, 0.0, 0, out, in); }

/* ---- scans ------------------------------------------------------------------------ */

/* One scan for one dtype; step is +-1 (rows) or +-stride (cols) so that a
 * reverse scan walks from the end:
 *   row(x, n, step, out):      out[i*step] = fold of x[0], ..., x[i*step]
 *   row4(x, n, step, rs, out): the same for 4 rows rs elements apart, whose
 *                              independent chains hide the latency of each step
 *   cols(x, n, step, w, out):  the same for w <= COLS adjacent columns */
typedef struct {
  void (*row)(const void *x, int64_t n, int64_t step, void *out);
  void (*row4)(const void *x, int64_t n, int64_t step, int64_t rs, void *out);
  void (*cols)(const void *x, int64_t n, int64_t step, int64_t w, void *out);
} scanner;

#define DEF_SCAN(OP, ID, T, A, STEP)                                                               \
  static void OP##_srow_##ID(const void *xv, int64_t n, int64_t step, void *ov) {                  \
    const T *x = xv;                                                                               \
    T *o = ov;                                                                                     \
    A acc = (A)x[0];                                                                               \
    o[0] = (T)acc;                                                                                 \
    for (int64_t i = 1; i < n; i++) {                                                              \
      acc = STEP(acc, (A)x[i * step]);                                                             \
      o[i * step] = (T)acc;                                                                        \
    }                                                                                              \
  }                                                                                                \
  static void OP##_srow4_##ID(const void *xv, int64_t n, int64_t step, int64_t rs, void *ov) {     \
    const T *x = xv;                                                                               \
    T *o = ov;                                                                                     \
    A acc[4];                                                                                      \
    for (int j = 0; j < 4; j++) acc[j] = (A)x[j * rs], o[j * rs] = (T)acc[j];                      \
    for (int64_t i = 1; i < n; i++)                                                                \
      for (int j = 0; j < 4; j++) {                                                                \
        acc[j] = STEP(acc[j], (A)x[j * rs + i * step]);                                            \
        o[j * rs + i * step] = (T)acc[j];                                                          \
      }                                                                                            \
  }                                                                                                \
  static void OP##_scols_##ID(const void *xv, int64_t n, int64_t step, int64_t w, void *ov) {      \
    const T *x = xv;                                                                               \
    T *o = ov;                                                                                     \
    A acc[COLS];                                                                                   \
    for (int64_t c = 0; c < w; c++) acc[c] = (A)x[c], o[c] = (T)acc[c];                            \
    for (int64_t r = 1; r < n; r++) {                                                              \
      const T *xr = x + r * step;                                                                  \
      T *orow = o + r * step;                                                                      \
      for (int64_t c = 0; c < w; c++) {                                                            \
        acc[c] = STEP(acc[c], (A)xr[c]);                                                           \
        orow[c] = (T)acc[c];                                                                       \
      }                                                                                            \
    }                                                                                              \
  }

#define DEF_CUMSUM(ID, T) DEF_SCAN(cumsum, ID, T, WIDE(T), STEP_SUM)
#define DEF_CUMPROD(ID, T) DEF_SCAN(cumprod, ID, T, WIDE(T), STEP_PROD)
#define DEF_CUMMAX(ID, T) DEF_SCAN(cummax, ID, T, T, STEP_MAX)
#define DEF_CUMMIN(ID, T) DEF_SCAN(cummin, ID, T, T, STEP_MIN)
MX_COMPUTE_TYPES(DEF_CUMSUM)
MX_COMPUTE_TYPES(DEF_CUMPROD)
#define DEF_CCUMPROD(ID, T) DEF_SCAN(cumprod, ID, T, WIDE(T), STEP_CPROD)
MX_COMPLEX_TYPES(DEF_CUMSUM)
MX_COMPLEX_TYPES(DEF_CCUMPROD)
MX_COMPUTE_TYPES(DEF_CUMMAX)
MX_COMPUTE_TYPES(DEF_CUMMIN)

#define SCAN_ENTRY(OP, ID) [MX_##ID] = {OP##_srow_##ID, OP##_srow4_##ID, OP##_scols_##ID},
#define CUMSUM_ENTRY(ID, T) SCAN_ENTRY(cumsum, ID)
#define CUMPROD_ENTRY(ID, T) SCAN_ENTRY(cumprod, ID)
#define CUMMAX_ENTRY(ID, T) SCAN_ENTRY(cummax, ID)
#define CUMMIN_ENTRY(ID, T) SCAN_ENTRY(cummin, ID)
static const scanner cumsum_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(CUMSUM_ENTRY) MX_COMPLEX_TYPES(CUMSUM_ENTRY)};
static const scanner cumprod_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(CUMPROD_ENTRY) MX_COMPLEX_TYPES(CUMPROD_ENTRY)};
static const scanner cummax_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(CUMMAX_ENTRY)};
static const scanner cummin_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(CUMMIN_ENTRY)};

typedef struct {
  const scanner *s;
  const char *x;
  char *o;
  int es, reverse;
  int64_t n, inner, nblocks;
} scan_ctx;

static void scan_rows_task(void *vc, int64_t lo, int64_t hi) {
  scan_ctx *c = vc;
  int64_t start = c->reverse ? c->n - 1 : 0, step = c->reverse ? -1 : 1;
  for (int64_t k = lo; k < hi;) {
    int64_t off = (k * c->n + start) * c->es;
    if (k + 4 <= hi) {
      c->s->row4(c->x + off, c->n, step, c->n, c->o + off);
      k += 4;
    } else {
      c->s->row(c->x + off, c->n, step, c->o + off);
      k++;
    }
  }
}

static void scan_cols_task(void *vc, int64_t lo, int64_t hi) {
  scan_ctx *c = vc;
  int64_t start = c->reverse ? c->n - 1 : 0, step = c->reverse ? -c->inner : c->inner;
  for (int64_t k = lo; k < hi; k++) {
    int64_t o = k / c->nblocks, c0 = k % c->nblocks * COLS;
    int64_t off = ((o * c->n + start) * c->inner + c0) * c->es;
    c->s->cols(c->x + off, c->n, step, min64(COLS, c->inner - c0), c->o + off);
  }
}

static mx_status scan(const char *name, const scanner *tab, mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  const mx_params *p = out->params;
  mx_dtype t = (mx_dtype)a->dtype;
  if (a->dtype < 0 || a->dtype >= MX_DTYPE_COUNT || !tab[a->dtype].row)
    return mx_error(MX_EINVAL, "[%s] dtype %s is not supported; cast to f32 first", name, mx_dtype_name(t));
  if (out->dtype != a->dtype || out->size != a->size)
    return mx_error(MX_EINVAL, "[%s] output must match the input's dtype and shape", name);
  int axis = p ? p->axis : 0;
  if (a->ndim > 0 && (axis < 0 || axis >= a->ndim))
    return mx_error(MX_EINVAL, "[%s] axis %d is out of range for rank %d", name, axis, a->ndim);
  if (out->size == 0) return MX_OK;
  scan_ctx c = {.s = &tab[t], .x = mx_data(a), .o = mx_data(out), .es = mx_dtype_size(t),
                .reverse = p && (p->flags & MX_F_REVERSE)};
  int64_t outer;
  mx_axis_split(a->ndim, a->shape, axis, &outer, &c.n, &c.inner);
  if (c.inner > 1) {
    c.nblocks = (c.inner + COLS - 1) / COLS;
    mx_parallel_for(outer * c.nblocks, grain_for(c.n * min64(c.inner, COLS)), scan_cols_task, &c);
  } else {
    mx_parallel_for(outer, grain_for(c.n), scan_rows_task, &c);
  }
  return MX_OK;
}

mx_status mx_k_cumulative_sum(mx_array *out, mx_array *const *in) {
  return scan("cumulative_sum", cumsum_tab, out, in);
}
mx_status mx_k_cumulative_product(mx_array *out, mx_array *const *in) {
  return scan("cumulative_product", cumprod_tab, out, in);
}
mx_status mx_k_cumulative_max(mx_array *out, mx_array *const *in) {
  return scan("cumulative_max", cummax_tab, out, in);
}
mx_status mx_k_cumulative_min(mx_array *out, mx_array *const *in) {
  return scan("cumulative_min", cummin_tab, out, in);
}
