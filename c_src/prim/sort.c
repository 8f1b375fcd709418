/* sort.c: stable sort and argsort along an axis.
 *
 * Each row along the axis is copied into scratch with its NaNs set aside (in
 * order), the rest is merge sorted (stable), and the row is written back with
 * the NaNs last when ascending and first when descending. Descending uses the
 * reversed comparison, so equal elements still keep their original order. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels.h"
#include "layout.h"

#define RUN 16 /* insertion-sorted runs before merging */
#define ISNAN(x) _Generic((x), float: isnan((float)(x)), double: isnan((double)(x)), default: 0)

/* Stable merge sort of v[0..n) of element type E using v2 as scratch;
 * returns 1 when the result ended up in v2. */
#define DEF_MSORT(NAME, E, LESS)                                                                   \
  static int NAME(E *v, E *v2, int64_t n) {                                                        \
    for (int64_t lo = 0; lo < n; lo += RUN) {                                                      \
      int64_t hi = lo + RUN < n ? lo + RUN : n;                                                    \
      for (int64_t i = lo + 1; i < hi; i++) {                                                      \
        E t = v[i];                                                                                \
        int64_t j = i;                                                                             \
        for (; j > lo && LESS(t, v[j - 1]); j--) v[j] = v[j - 1];                                  \
        v[j] = t;                                                                                  \
      }                                                                                            \
    }                                                                                              \
    int flip = 0;                                                                                  \
    for (int64_t w = RUN; w < n; w *= 2, flip ^= 1) {                                              \
      const E *s = flip ? v2 : v;                                                                  \
      E *d = flip ? v : v2;                                                                        \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                  \
        int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;               \
        int64_t i = lo, j = mid, k = lo;                                                           \
        if (mid == hi || !LESS(s[mid], s[mid - 1])) {                                              \
          /* runs already in order: the merge is a copy */                                         \
        } else if (hi - mid == w) {                                                                \
          /* equal runs: merge from both ends at once, w steps each, no bounds checks              \
           * needed; two independent chains run twice as fast */                                   \
          int64_t ie = mid - 1, je = hi - 1;                                                       \
          for (int64_t step = 0; step < w; step++) {                                               \
            int right = LESS(s[j], s[i]);                                                          \
            d[lo + step] = s[right ? j : i];                                                       \
            j += right;                                                                            \
            i += !right;                                                                           \
            int left = LESS(s[je], s[ie]);                                                         \
            d[hi - 1 - step] = s[left ? ie : je];                                                  \
            ie -= left;                                                                            \
            je -= !left;                                                                           \
          }                                                                                        \
          continue;                                                                                \
        } else {                                                                                   \
          for (; i < mid && j < hi; k++) { /* branch-free: random data mispredicts */              \
            int right = LESS(s[j], s[i]);                                                          \
            d[k] = s[right ? j : i];                                                               \
            j += right;                                                                            \
            i += !right;                                                                           \
          }                                                                                        \
        }                                                                                          \
        memcpy(d + k, s + i, (size_t)(mid - i) * sizeof(E));                                       \
        memcpy(d + k + (mid - i), s + j, (size_t)(hi - j) * sizeof(E));                            \
      }                                                                                            \
    }                                                                                              \
    return flip;                                                                                   \
  }

typedef struct {
  const char *x;
  char *o;
  int64_t n, inner;
  int desc, arg;
  atomic_int failed;
} sort_ctx;

#define LESS_ASC(a, b) ((a) < (b))
#define LESS_DESC(a, b) ((b) < (a))
#define PLESS_ASC(a, b) ((a).v < (b).v)
#define PLESS_DESC(a, b) ((b).v < (a).v)

/* Rows [lo, hi) of the [outer, n, inner] view, row k = (k / inner, k % inner).
 * sort moves bare values; argsort moves (value, index) pairs. */
#define DEF_SORT_ROWS(ID, T)                                                                       \
  typedef struct {                                                                                 \
    T v;                                                                                           \
    int64_t i;                                                                                     \
  } pair_##ID;                                                                                     \
  DEF_MSORT(sort_asc_##ID, T, LESS_ASC)                                                            \
  DEF_MSORT(sort_desc_##ID, T, LESS_DESC)                                                          \
  DEF_MSORT(argsort_asc_##ID, pair_##ID, PLESS_ASC)                                                \
  DEF_MSORT(argsort_desc_##ID, pair_##ID, PLESS_DESC)                                              \
  static void sort_rows_##ID(void *vc, int64_t lo, int64_t hi) {                                   \
    sort_ctx *c = vc;                                                                              \
    int64_t n = c->n, inner = c->inner;                                                            \
    mx_buffer *buf;                                                                                \
    if (mx_buffer_alloc((size_t)n * 2 * (c->arg ? sizeof(pair_##ID) : sizeof(T)), &buf)) {         \
      atomic_store(&c->failed, 1);                                                                 \
      return;                                                                                      \
    }                                                                                              \
    for (int64_t k = lo; k < hi; k++) {                                                            \
      int64_t base = k / inner * n * inner + k % inner, m = 0;                                     \
      const T *x = (const T *)c->x + base;                                                         \
      /* sorted values go to [first, first + m), NaNs (in order) around them */                    \
      int64_t first, nan_at;                                                                       \
      if (c->arg) {                                                                                \
        pair_##ID *v = buf->data, *v2 = v + n;                                                     \
        for (int64_t i = 0; i < n; i++)                                                            \
          if (!ISNAN(x[i * inner])) v[m++] = (pair_##ID){x[i * inner], i};                         \
        int flip = (c->desc ? argsort_desc_##ID : argsort_asc_##ID)(v, v2, m);                     \
        const pair_##ID *sv = flip ? v2 : v;                                                       \
        int64_t *o = (int64_t *)c->o + base;                                                       \
        first = c->desc ? n - m : 0, nan_at = c->desc ? 0 : m;                                     \
        for (int64_t i = 0; i < m; i++) o[(first + i) * inner] = sv[i].i;                          \
        for (int64_t i = 0; i < n && m < n; i++)                                                   \
          if (ISNAN(x[i * inner])) o[nan_at++ * inner] = i;                                        \
      } else {                                                                                     \
        T *v = buf->data, *v2 = v + n;                                                             \
        for (int64_t i = 0; i < n; i++)                                                            \
          if (!ISNAN(x[i * inner])) v[m++] = x[i * inner];                                         \
        int flip = (c->desc ? sort_desc_##ID : sort_asc_##ID)(v, v2, m);                           \
        const T *sv = flip ? v2 : v;                                                               \
        T *o = (T *)c->o + base;                                                                   \
        first = c->desc ? n - m : 0, nan_at = c->desc ? 0 : m;                                     \
        for (int64_t i = 0; i < m; i++) o[(first + i) * inner] = sv[i];                            \
        for (int64_t i = 0; i < n && m < n; i++)                                                   \
          if (ISNAN(x[i * inner])) o[nan_at++ * inner] = x[i * inner];                             \
      }                                                                                            \
    }                                                                                              \
    mx_buffer_release(buf);                                                                        \
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
  sort_ctx c = {.x = mx_data(a), .o = mx_data(out), .desc = p && (p->flags & MX_F_DESC), .arg = arg};
  int64_t outer;
  mx_axis_split(a->ndim, a->shape, axis, &outer, &c.n, &c.inner);
  atomic_init(&c.failed, 0);
  int64_t rows = outer * c.inner, grain = MX_PARALLEL_GRAIN / c.n + 1;
  mx_parallel_for(rows, grain, sort_tab[t], &c);
  if (atomic_load(&c.failed))
    return mx_error(MX_ENOMEM,
                    "[%s] out of memory for the scratch of a %lld-element row; dispose arrays you no longer "
                    "need or raise the memory limit",
                    name, (long long)c.n);
  return MX_OK;
}

mx_status mx_k_sort(mx_array *out, mx_array *const *in) { return sort_axis("sort", 0, out, in); }
mx_status mx_k_argsort(mx_array *out, mx_array *const *in) { return sort_axis("argsort", 1, out, in); }
