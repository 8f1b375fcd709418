/* sort.c: stable sort and argsort along an axis.
 *
 * Each row along the axis is copied into scratch with its NaNs set aside (in
 * order), the rest is merge sorted (stable), and the row is written back with
 * the NaNs last when ascending and first when descending. Descending uses the
 * reversed comparison, so equal elements still keep their original order. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kernels.h"

#define RUN 16 /* insertion-sorted runs before merging */
#define ISNAN(x) _Generic((x), float: isnan((float)(x)), double: isnan((double)(x)), default: 0)
#define LESS_ASC(a, b) ((a) < (b))
#define LESS_DESC(a, b) ((b) < (a))

/* Stable merge sort of v[0..n) (and ix alongside when PAIRS) using v2/ix2 as
 * scratch; returns 1 when the result ended up in v2/ix2. */
#define DEF_MSORT(NAME, T, LESS, PAIRS)                                                   \
  static int NAME(T *v, int64_t *ix, T *v2, int64_t *ix2, int64_t n) {                    \
    for (int64_t lo = 0; lo < n; lo += RUN) {                                             \
      int64_t hi = lo + RUN < n ? lo + RUN : n;                                           \
      for (int64_t i = lo + 1; i < hi; i++) {                                             \
        T t = v[i];                                                                       \
        int64_t ti = PAIRS ? ix[i] : 0, j = i;                                            \
        for (; j > lo && LESS(t, v[j - 1]); j--) {                                        \
          v[j] = v[j - 1];                                                                \
          if (PAIRS) ix[j] = ix[j - 1];                                                   \
        }                                                                                 \
        v[j] = t;                                                                         \
        if (PAIRS) ix[j] = ti;                                                            \
      }                                                                                   \
    }                                                                                     \
    int flip = 0;                                                                         \
    for (int64_t w = RUN; w < n; w *= 2, flip ^= 1) {                                     \
      T *s = flip ? v2 : v, *d = flip ? v : v2;                                           \
      int64_t *si = flip ? ix2 : ix, *di = flip ? ix : ix2;                               \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                                         \
        int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;      \
        int64_t i = lo, j = mid, k = lo;                                                  \
        /* runs already in order merge by copying */                                      \
        if (mid < hi && LESS(s[mid], s[mid - 1]))                                         \
          for (; i < mid && j < hi; k++) { /* branch-free: random data mispredicts */     \
            int right = LESS(s[j], s[i]);                                                 \
            int64_t src = right ? j : i;                                                  \
            d[k] = s[src];                                                                \
            if (PAIRS) di[k] = si[src];                                                   \
            j += right;                                                                   \
            i += !right;                                                                  \
          }                                                                               \
        for (; i < mid; i++, k++) {                                                       \
          d[k] = s[i];                                                                    \
          if (PAIRS) di[k] = si[i];                                                       \
        }                                                                                 \
        for (; j < hi; j++, k++) {                                                        \
          d[k] = s[j];                                                                    \
          if (PAIRS) di[k] = si[j];                                                       \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
    return flip;                                                                          \
  }

typedef struct {
  const char *x;
  char *o;
  int64_t n, inner;
  int desc, arg;
  atomic_int failed;
} sort_ctx;

/* Rows [lo, hi) of the [outer, n, inner] view, row k = (k / inner, k % inner). */
#define DEF_SORT_ROWS(ID, T)                                                              \
  DEF_MSORT(sort_asc_##ID, T, LESS_ASC, 0)                                                \
  DEF_MSORT(sort_desc_##ID, T, LESS_DESC, 0)                                              \
  DEF_MSORT(argsort_asc_##ID, T, LESS_ASC, 1)                                             \
  DEF_MSORT(argsort_desc_##ID, T, LESS_DESC, 1)                                           \
  static void sort_rows_##ID(void *vc, int64_t lo, int64_t hi) {                          \
    sort_ctx *c = vc;                                                                     \
    int64_t n = c->n, inner = c->inner;                                                   \
    char *mem = malloc((size_t)n * 2 * (sizeof(T) + (c->arg ? sizeof(int64_t) : 0)));     \
    if (!mem) {                                                                           \
      atomic_store(&c->failed, 1);                                                        \
      return;                                                                             \
    }                                                                                     \
    /* indices first: they need 8-byte alignment */                                       \
    int64_t *ix = c->arg ? (int64_t *)mem : NULL, *ix2 = c->arg ? ix + n : NULL;          \
    T *v = (T *)(mem + (c->arg ? 2 * n * sizeof(int64_t) : 0)), *v2 = v + n;              \
    for (int64_t k = lo; k < hi; k++) {                                                   \
      int64_t base = k / inner * n * inner + k % inner;                                   \
      const T *x = (const T *)c->x + base;                                                \
      int64_t m = 0;                                                                      \
      for (int64_t i = 0; i < n; i++) {                                                   \
        T t = x[i * inner];                                                               \
        if (ISNAN(t)) continue;                                                           \
        v[m] = t;                                                                         \
        if (ix) ix[m] = i;                                                                \
        m++;                                                                              \
      }                                                                                   \
      int flip = c->arg ? (c->desc ? argsort_desc_##ID : argsort_asc_##ID)(v, ix, v2, ix2, m) \
                        : (c->desc ? sort_desc_##ID : sort_asc_##ID)(v, ix, v2, ix2, m);  \
      const T *sv = flip ? v2 : v;                                                        \
      const int64_t *si = flip ? ix2 : ix;                                                \
      /* sorted values at [first, first + m), NaNs (in order) around them */            \
      int64_t first = c->desc ? n - m : 0, nan_at = c->desc ? 0 : m;                      \
      if (c->arg) {                                                                       \
        int64_t *o = (int64_t *)c->o + base;                                              \
        for (int64_t i = 0; i < m; i++) o[(first + i) * inner] = si[i];                   \
        for (int64_t i = 0; i < n && m < n; i++)                                          \
          if (ISNAN(x[i * inner])) o[nan_at++ * inner] = i;                               \
      } else {                                                                            \
        T *o = (T *)c->o + base;                                                          \
        for (int64_t i = 0; i < m; i++) o[(first + i) * inner] = sv[i];                   \
        for (int64_t i = 0; i < n && m < n; i++)                                          \
          if (ISNAN(x[i * inner])) o[nan_at++ * inner] = x[i * inner];                    \
      }                                                                                   \
    }                                                                                     \
    free(mem);                                                                            \
  }
MX_COMPUTE_TYPES(DEF_SORT_ROWS)

#define SORT_ENTRY(ID, T) [MX_##ID] = sort_rows_##ID,
static const mx_range_fn sort_tab[MX_DTYPE_COUNT] = {MX_COMPUTE_TYPES(SORT_ENTRY)};

static mx_status sort_axis(const char *name, int arg, mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  const mx_params *p = out->params;
  mx_dtype t = (mx_dtype)a->dtype;
  if (a->dtype < 0 || a->dtype >= MX_DTYPE_COUNT || !sort_tab[t])
    return mx_error(MX_EINVAL, "[%s] dtype %s is not supported; cast to f32 first", name, mx_dtype_name(t));
  if (out->size != a->size || out->dtype != (arg ? MX_S64 : a->dtype))
    return mx_error(MX_EINVAL, "[%s] output must have the input's shape and dtype %s", name,
                    arg ? "s64" : mx_dtype_name(t));
  int axis = p ? p->axis : 0;
  if (a->ndim > 0 && (axis < 0 || axis >= a->ndim))
    return mx_error(MX_EINVAL, "[%s] axis %d is out of range for rank %d", name, axis, a->ndim);
  if (out->size == 0) return MX_OK;
  sort_ctx c = {.x = mx_data(a), .o = mx_data(out), .n = 1, .inner = 1, .desc = p && (p->flags & MX_F_DESC),
                .arg = arg};
  int64_t outer = 1;
  for (int d = 0; d < a->ndim; d++) {
    if (d < axis) outer *= a->shape[d];
    else if (d == axis) c.n = a->shape[d];
    else c.inner *= a->shape[d];
  }
  atomic_init(&c.failed, 0);
  int64_t rows = outer * c.inner, grain = MX_PARALLEL_GRAIN / c.n + 1;
  mx_parallel_for(rows, grain, sort_tab[t], &c);
  if (atomic_load(&c.failed))
    return mx_error(MX_ENOMEM, "[%s] out of memory for the scratch of a %lld-element row", name, (long long)c.n);
  return MX_OK;
}

mx_status mx_k_sort(mx_array *out, mx_array *const *in) { return sort_axis("sort", 0, out, in); }
mx_status mx_k_argsort(mx_array *out, mx_array *const *in) { return sort_axis("argsort", 1, out, in); }
