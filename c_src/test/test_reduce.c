/* test_reduce.c: reductions, scans, sort and argsort end to end through the op
 * constructors in mx.h and mx_eval, against naive double-precision loops. */
#include <time.h>

#include "test_util.h"

static int same(double a, double b, double tol) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { return xorshift64(&rng); }
static double uniform(void) { return (double)(next() >> 11) * 0x1p-53; }

/* ---- reference reduction ------------------------------------------------------- */

/* Reduces x over the axes in mask, visiting elements in flat order (so for
 * each output the reduced sub-block is visited in row-major order). */
static void ref_reduce(mx_op op, int ndim, const int64_t *shape, const double *x, unsigned mask, double *out,
                       int64_t nout) {
  double *best = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
  int64_t *count = calloc((size_t)(nout ? nout : 1), sizeof(int64_t));
  for (int64_t o = 0; o < nout; o++) {
    out[o] = op == MX_OP_SUM || op == MX_OP_ANY ? 0 : op == MX_OP_PRODUCT || op == MX_OP_ALL ? 1 : NAN;
  }
  int64_t n = numel(ndim, shape);
  for (int64_t i = 0; i < n; i++) {
    int64_t rem = i, o = 0, ostride = 1, r = 0, rstride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t id = rem % shape[d];
      rem /= shape[d];
      if (mask >> d & 1) r += id * rstride, rstride *= shape[d];
      else o += id * ostride, ostride *= shape[d];
    }
    double v = x[i];
    int first = count[o]++ == 0;
    switch (op) {
    case MX_OP_SUM: out[o] += v; break;
    case MX_OP_PRODUCT: out[o] *= v; break;
    case MX_OP_REDUCE_MAX:
    case MX_OP_REDUCE_MIN: /* NaN sticks */
      if (first || (!isnan(out[o]) && (isnan(v) || (op == MX_OP_REDUCE_MAX ? v > out[o] : v < out[o])))) out[o] = v;
      break;
    case MX_OP_ARGMAX:
    case MX_OP_ARGMIN:
      if (first || (!isnan(best[o]) && (isnan(v) || (op == MX_OP_ARGMAX ? v > best[o] : v < best[o]))))
        best[o] = v, out[o] = (double)r;
      break;
    case MX_OP_ALL: out[o] = out[o] && v != 0; break;
    case MX_OP_ANY: out[o] = out[o] || v != 0; break;
    default: break;
    }
  }
  free(best);
  free(count);
}

/* One reduction of one array over the axes in mask, checked against ref_reduce. */
static void check_reduce(mx_op op, mx_dtype t, int ndim, const int64_t *shape, const double *x, unsigned mask,
                         int keep, double tol) {
  int axes[MX_MAX_RANK], naxes = 0, ondim = 0;
  int64_t oshape[MX_MAX_RANK];
  for (int d = 0; d < ndim; d++) {
    if (mask >> d & 1) {
      axes[naxes++] = d;
      if (keep) oshape[ondim++] = 1;
    } else {
      oshape[ondim++] = shape[d];
    }
  }
  int64_t nout = numel(ondim, oshape);
  double *want = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
  /* the reference sees the values as stored in dtype t */
  int64_t n = numel(ndim, shape);
  double *xs = malloc(sizeof(double) * (size_t)(n ? n : 1));
  mx_array *a = arr_values(t, ndim, shape, x);
  for (int64_t i = 0; i < n; i++) xs[i] = value_at(a, i);
  ref_reduce(op, ndim, shape, xs, mask, want, nout);
  char what[160];
  snprintf(what, sizeof what, "%s %s rank %d mask %#x keep %d", mx_ops[op].name, mx_dtype_name(t), ndim, mask, keep);
  mx_array *o = NULL;
  o = run(mx_reduce(op, a, axes, naxes, keep, &o), &o, what);
  if (o) {
    int shape_ok = o->ndim == ondim;
    for (int d = 0; shape_ok && d < ondim; d++) shape_ok = o->shape[d] == oshape[d];
    CHECK(shape_ok, "%s: output shape", what);
    int bad = 0;
    int64_t first_bad = -1;
    for (int64_t i = 0; shape_ok && i < nout; i++)
      if (!same(value_at(o, i), want[i], tol)) bad++, first_bad = first_bad < 0 ? i : first_bad;
    CHECK(bad == 0, "%s: %d of %lld wrong, first at %lld: got %g want %g", what, bad, (long long)nout,
          (long long)first_bad, first_bad >= 0 ? value_at(o, first_bad) : 0.0, first_bad >= 0 ? want[first_bad] : 0.0);
    mx_release(o);
  }
  mx_release(a);
  free(want);
  free(xs);
}

/* Every subset of axes, with and without keep, for each op and several dtypes. */
static void test_reduce_axes(void) {
  const int64_t shapes[][5] = {{2, 3, 4}, {3, 1, 4, 5}, {5, 70}, {2, 3, 67, 2}, {300, 3}, {7}, {2, 3, 2, 3, 2},
                               {3, 1000, 5}};
  const int ranks[] = {3, 4, 2, 4, 2, 1, 5, 3};
  for (int s = 0; s < 8; s++) {
    int ndim = ranks[s];
    int64_t n = numel(ndim, shapes[s]);
    double *small = malloc(sizeof(double) * n), *pm = malloc(sizeof(double) * n), *ties = malloc(sizeof(double) * n),
           *nans = malloc(sizeof(double) * n), *bits = malloc(sizeof(double) * n);
    const double factors[] = {1, -1, 2, 0.5, 1, -1};
    for (int64_t i = 0; i < n; i++) {
      small[i] = (double)(int)(next() % 19) - 9;  /* exact sums in every dtype */
      pm[i] = factors[next() % 6];                 /* exact products */
      ties[i] = (double)(next() % 5);              /* many ties for arg ops */
      nans[i] = next() % 7 == 0 ? NAN : uniform(); /* NaN handling */
      bits[i] = next() % 4 == 0 ? 0 : 1;           /* all / any */
    }
    if (n > 3) bits[n / 2] = 0;
    for (unsigned mask = 0; mask < (1u << ndim); mask++) {
      for (int keep = 0; keep < 2; keep++) {
        check_reduce(MX_OP_SUM, MX_F32, ndim, shapes[s], small, mask, keep, 0);
        check_reduce(MX_OP_SUM, MX_F64, ndim, shapes[s], small, mask, keep, 0);
        check_reduce(MX_OP_SUM, MX_S32, ndim, shapes[s], small, mask, keep, 0);
        check_reduce(MX_OP_SUM, MX_U8, ndim, shapes[s], ties, mask, keep, 0);
        check_reduce(MX_OP_PRODUCT, MX_F32, ndim, shapes[s], pm, mask, keep, 0);
        check_reduce(MX_OP_PRODUCT, MX_S64, ndim, shapes[s], ties, mask, keep, 0);
        for (int k = 0; k < 4; k++) {
          mx_op op = (mx_op[]){MX_OP_REDUCE_MAX, MX_OP_REDUCE_MIN, MX_OP_ARGMAX, MX_OP_ARGMIN}[k];
          check_reduce(op, MX_F32, ndim, shapes[s], ties, mask, keep, 0);
          check_reduce(op, MX_S16, ndim, shapes[s], small, mask, keep, 0);
          check_reduce(op, MX_U8, ndim, shapes[s], ties, mask, keep, 0);
          check_reduce(op, MX_F64, ndim, shapes[s], nans, mask, keep, 0);
          check_reduce(op, MX_F32, ndim, shapes[s], nans, mask, keep, 0);
        }
        check_reduce(MX_OP_ALL, MX_F32, ndim, shapes[s], bits, mask, keep, 0);
        check_reduce(MX_OP_ANY, MX_F32, ndim, shapes[s], bits, mask, keep, 0);
        check_reduce(MX_OP_ALL, MX_BOOL, ndim, shapes[s], bits, mask, keep, 0);
        check_reduce(MX_OP_ANY, MX_S32, ndim, shapes[s], ties, mask, keep, 0);
        check_reduce(MX_OP_ALL, MX_F64, ndim, shapes[s], nans, mask, keep, 0);
      }
    }
    free(small), free(pm), free(ties), free(nans), free(bits);
  }
}

static void test_reduce_edge(void) {
  /* rank 0 */
  double v = 2.5;
  int64_t none[1] = {0};
  for (int k = 0; k < 8; k++) {
    mx_op op = MX_OP_SUM + k;
    check_reduce(op, MX_F64, 0, none, &v, 0, 0, 0);
    check_reduce(op, MX_F64, 0, none, &v, 0, 1, 0);
  }
  /* empty arrays: sum 0, product 1, all true, any false */
  int64_t shape[2] = {0, 3};
  for (unsigned mask = 0; mask < 4; mask++)
    for (int keep = 0; keep < 2; keep++) {
      check_reduce(MX_OP_SUM, MX_F32, 2, shape, NULL, mask, keep, 0);
      check_reduce(MX_OP_SUM, MX_S32, 2, shape, NULL, mask, keep, 0);
      check_reduce(MX_OP_PRODUCT, MX_F64, 2, shape, NULL, mask, keep, 0);
      check_reduce(MX_OP_ALL, MX_F32, 2, shape, NULL, mask, keep, 0);
      check_reduce(MX_OP_ANY, MX_U8, 2, shape, NULL, mask, keep, 0);
    }
  check_reduce(MX_OP_REDUCE_MAX, MX_F32, 2, shape, NULL, 2, 0, 0); /* [0] result: fine */
  mx_array *a = arr_values(MX_F32, 2, shape, NULL), *o = NULL;
  int ax = 0;
  CHECK(mx_reduce(MX_OP_REDUCE_MAX, a, &ax, 1, 0, &o) != MX_OK, "max over an empty axis must be rejected");
  CHECK(mx_reduce(MX_OP_ARGMIN, a, NULL, -1, 0, &o) != MX_OK, "argmin of an empty array must be rejected");
  mx_release(a);

  /* NaN: max/min propagate, arg ops return the first NaN */
  double x[6] = {1, NAN, 7, NAN, -3, 2};
  int64_t s6[1] = {6};
  mx_array *b = arr_values(MX_F32, 1, s6, x);
  mx_op ops[4] = {MX_OP_REDUCE_MAX, MX_OP_REDUCE_MIN, MX_OP_ARGMAX, MX_OP_ARGMIN};
  for (int k = 0; k < 4; k++) {
    o = run(mx_reduce(ops[k], b, NULL, -1, 0, &o), &o, "nan reduce");
    if (!o) continue;
    double got = value_at(o, 0);
    CHECK(k < 2 ? isnan(got) : got == 1, "%s with NaN: got %g", mx_ops[ops[k]].name, got);
    mx_release(o);
  }
  mx_release(b);

  /* integer sums wrap like the dtype */
  double big[3] = {9.0e18, 9.0e18, 1};
  int64_t s3[1] = {3};
  mx_array *c = arr_values(MX_S64, 1, s3, big);
  o = run(mx_reduce(MX_OP_SUM, c, NULL, -1, 0, &o), &o, "s64 wrap");
  if (o) {
    int64_t want = (int64_t)((uint64_t)9000000000000000000ll * 2 + 1);
    CHECK(((int64_t *)mx_data(o))[0] == want, "s64 sum wraps");
    mx_release(o);
  }
  mx_release(c);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 16M f32 summed to within a few ulps of the double sum, plus long columns. */
static void test_reduce_large(void) {
  int64_t n = 16 << 20;
  float *x = malloc(sizeof(float) * n);
  double exact = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = (float)uniform();
    exact += x[i];
  }
  mx_array *a = arr(MX_F32, 1, &n, x), *o = NULL;
  double best = 1e9, rel = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now();
    o = run(mx_reduce(MX_OP_SUM, a, NULL, -1, 0, &o), &o, "16M sum");
    double t = now() - t0;
    best = t < best ? t : best;
    if (!o) break;
    double got = ((float *)mx_data(o))[0];
    rel = fabs(got - exact) / exact;
    if (rep == 0)
      CHECK(fabs(got - exact) <= 2e-7 * exact, "16M f32 sum: got %.9g want %.9g (rel err %.2e)", got, exact,
            fabs(got - exact) / exact);
    mx_release(o);
  }
  /* a triad on the same amount of memory, as the bandwidth yardstick */
  float *y = malloc(sizeof(float) * n), *z = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) y[i] = z[i] = 1.0f;
  double tri = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now();
    for (int64_t i = 0; i < n; i++) z[i] = x[i] + 1.5f * y[i];
    double t = now() - t0;
    tri = t < tri ? t : tri;
  }
  printf("16M f32 sum: %.2f ms (%.1f GB/s), rel. error %.1e; serial triad %.2f ms (%.1f GB/s)\n", best * 1e3,
         4.0 * n / best / 1e9, rel, tri * 1e3, 12.0 * n / tri / 1e9);
  free(y), free(z);

  /* [n/4, 4] over axis 0 (long columns) and [4, n/4] over axis 1 (parallel rows) */
  int64_t s2[2] = {n / 4, 4}, s2t[2] = {4, n / 4};
  double col[4] = {0}, row[4] = {0};
  for (int64_t i = 0; i < n; i++) col[i % 4] += x[i], row[i / (n / 4)] += x[i];
  mx_array *b = NULL, *c = NULL;
  mx_reshape(a, 2, s2, &b);
  mx_reshape(a, 2, s2t, &c);
  int ax0 = 0, ax1 = 1;
  o = run(mx_reduce(MX_OP_SUM, b, &ax0, 1, 0, &o), &o, "column sums");
  if (o) {
    for (int j = 0; j < 4; j++)
      CHECK(fabs(((float *)mx_data(o))[j] - col[j]) <= 2e-7 * col[j], "column %d sum: got %.9g want %.9g", j,
            ((float *)mx_data(o))[j], col[j]);
    mx_release(o);
  }
  o = run(mx_reduce(MX_OP_SUM, c, &ax1, 1, 0, &o), &o, "row sums");
  if (o) {
    for (int j = 0; j < 4; j++)
      CHECK(fabs(((float *)mx_data(o))[j] - row[j]) <= 2e-7 * row[j], "row %d sum: got %.9g want %.9g", j,
            ((float *)mx_data(o))[j], row[j]);
    mx_release(o);
  }
  /* the same row sum whether or not it is split across threads */
  mx_array *r0 = NULL, *s = NULL;
  int64_t start[2] = {0, 0}, stop[2] = {1, n / 4}, stride[2] = {1, 1};
  if (mx_slice(c, start, stop, stride, &r0) == MX_OK) {
    s = run(mx_reduce(MX_OP_SUM, r0, NULL, -1, 0, &s), &s, "one row");
    o = run(mx_reduce(MX_OP_SUM, c, &ax1, 1, 0, &o), &o, "row sums again");
    if (s && o) CHECK(((float *)mx_data(s))[0] == ((float *)mx_data(o))[0], "row sum independent of threading");
    if (s) mx_release(s);
    if (o) mx_release(o);
    mx_release(r0);
  }
  mx_release(b), mx_release(c), mx_release(a);
  free(x);
}

/* ---- scans ------------------------------------------------------------------------- */

static void check_scan(mx_op op, mx_dtype t, int ndim, const int64_t *shape, const double *x, int axis, int reverse) {
  int64_t n = numel(ndim, shape), outer = 1, len = shape[axis], inner = 1;
  for (int d = 0; d < axis; d++) outer *= shape[d];
  for (int d = axis + 1; d < ndim; d++) inner *= shape[d];
  mx_array *a = arr_values(t, ndim, shape, x);
  double *want = malloc(sizeof(double) * n);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double acc = 0;
      for (int64_t k = 0; k < len; k++) {
        int64_t r = reverse ? len - 1 - k : k, at = (o * len + r) * inner + i;
        double v = value_at(a, at);
        if (k == 0) acc = v;
        else if (op == MX_OP_CUMULATIVE_SUM) acc += v;
        else if (op == MX_OP_CUMULATIVE_PRODUCT) acc *= v;
        else if (op == MX_OP_CUMULATIVE_MAX) acc = isnan(acc) ? acc : (isnan(v) || v > acc ? v : acc);
        else acc = isnan(acc) ? acc : (isnan(v) || v < acc ? v : acc);
        want[at] = acc;
      }
    }
  char what[128];
  snprintf(what, sizeof what, "%s %s rank %d axis %d reverse %d", mx_ops[op].name, mx_dtype_name(t), ndim, axis,
           reverse);
  mx_array *o = NULL;
  o = run(mx_scan(op, a, axis, reverse, &o), &o, what);
  if (o) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !same(value_at(o, i), want[i], 0);
    CHECK(bad == 0 && o->size == n, "%s: %d wrong", what, bad);
    mx_release(o);
  }
  mx_release(a);
  free(want);
}

static void test_scans(void) {
  const int64_t shapes[][3] = {{2, 3, 4}, {3, 70, 2}, {1000, 1, 1}, {4, 1, 130}};
  for (int s = 0; s < 4; s++) {
    int64_t n = numel(3, shapes[s]);
    double *small = malloc(sizeof(double) * n), *pm = malloc(sizeof(double) * n), *nans = malloc(sizeof(double) * n);
    const double factors[] = {1, -1, 2, 0.5, 1, -1};
    for (int64_t i = 0; i < n; i++) {
      small[i] = (double)(int)(next() % 19) - 9;
      pm[i] = factors[next() % 6];
      nans[i] = next() % 50 == 0 ? NAN : (double)(int)(next() % 19) - 9;
    }
    for (int axis = 0; axis < 3; axis++)
      for (int rev = 0; rev < 2; rev++) {
        check_scan(MX_OP_CUMULATIVE_SUM, MX_F32, 3, shapes[s], small, axis, rev);
        check_scan(MX_OP_CUMULATIVE_SUM, MX_S32, 3, shapes[s], small, axis, rev);
        check_scan(MX_OP_CUMULATIVE_PRODUCT, MX_F64, 3, shapes[s], pm, axis, rev);
        check_scan(MX_OP_CUMULATIVE_MAX, MX_F32, 3, shapes[s], nans, axis, rev);
        check_scan(MX_OP_CUMULATIVE_MIN, MX_F64, 3, shapes[s], nans, axis, rev);
        check_scan(MX_OP_CUMULATIVE_MAX, MX_U8, 3, shapes[s], pm, axis, rev);
        check_scan(MX_OP_CUMULATIVE_MIN, MX_S16, 3, shapes[s], small, axis, rev);
      }
    free(small), free(pm), free(nans);
  }
  int64_t empty[2] = {0, 4};
  check_scan(MX_OP_CUMULATIVE_SUM, MX_F32, 2, empty, NULL, 1, 0);
  check_scan(MX_OP_CUMULATIVE_SUM, MX_F32, 2, empty, NULL, 0, 1);
}

/* ---- sort and argsort ------------------------------------------------------------- */

/* a before b: NaN is the largest; descending is the reversed comparison. */
static int before(double a, double b, int desc) {
  if (desc) {
    double t = a;
    a = b, b = t;
  }
  return isnan(a) ? 0 : isnan(b) ? 1 : a < b;
}

static void check_sort(mx_dtype t, int ndim, const int64_t *shape, const double *x, int axis, int desc) {
  int64_t n = numel(ndim, shape), outer = 1, len = shape[axis], inner = 1;
  for (int d = 0; d < axis; d++) outer *= shape[d];
  for (int d = axis + 1; d < ndim; d++) inner *= shape[d];
  mx_array *a = arr_values(t, ndim, shape, x);
  /* reference: stable insertion sort of indices */
  int64_t *want = malloc(sizeof(int64_t) * (n ? n : 1)), *perm = malloc(sizeof(int64_t) * (len ? len : 1));
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      for (int64_t k = 0; k < len; k++) {
        int64_t j = k;
        double v = value_at(a, (o * len + k) * inner + i);
        for (; j > 0 && before(v, value_at(a, (o * len + perm[j - 1]) * inner + i), desc); j--) perm[j] = perm[j - 1];
        perm[j] = k;
      }
      for (int64_t k = 0; k < len; k++) want[(o * len + k) * inner + i] = perm[k];
    }
  char what[128];
  snprintf(what, sizeof what, "sort %s rank %d [%lld] axis %d desc %d", mx_dtype_name(t), ndim,
           (long long)shape[axis], axis, desc);
  mx_array *s = NULL, *g = NULL;
  s = run(mx_sort(a, axis, desc, &s), &s, what);
  g = run(mx_argsort(a, axis, desc, &g), &g, what);
  if (s && g) {
    int bad_s = 0, bad_g = 0;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t k = 0; k < len; k++)
        for (int64_t i = 0; i < inner; i++) {
          int64_t at = (o * len + k) * inner + i, src = (o * len + want[at]) * inner + i;
          bad_s += !same(value_at(s, at), value_at(a, src), 0);
          bad_g += ((int64_t *)mx_data(g))[at] != want[at];
        }
    CHECK(bad_s == 0 && s->dtype == a->dtype, "%s: %d values wrong", what, bad_s);
    CHECK(bad_g == 0 && g->dtype == MX_S64, "%s: %d argsort indices wrong", what, bad_g);
  }
  if (s) mx_release(s);
  if (g) mx_release(g);
  mx_release(a);
  free(want), free(perm);
}

static void test_sort(void) {
  const int64_t shapes[][3] = {{7, 9, 1}, {3, 4, 5}, {1, 100, 3}, {2, 1, 1}, {1, 1000, 1}};
  for (int s = 0; s < 5; s++) {
    int64_t n = numel(3, shapes[s]);
    double *ties = malloc(sizeof(double) * n), *nans = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
      ties[i] = (double)(int)(next() % 7) - 3;
      nans[i] = next() % 6 == 0 ? NAN : next() % 9 == 0 ? -0.0 : (double)(int)(next() % 11) - 5;
    }
    for (int axis = 0; axis < 3; axis++)
      for (int desc = 0; desc < 2; desc++) {
        check_sort(MX_F32, 3, shapes[s], nans, axis, desc);
        check_sort(MX_F64, 3, shapes[s], nans, axis, desc);
        check_sort(MX_S32, 3, shapes[s], ties, axis, desc);
        check_sort(MX_U8, 3, shapes[s], ties, axis, desc);
        check_sort(MX_BOOL, 3, shapes[s], ties, axis, desc);
      }
    free(ties), free(nans);
  }
  int64_t empty[2] = {0, 5};
  check_sort(MX_F32, 2, empty, NULL, 0, 0);
  check_sort(MX_F32, 2, empty, NULL, 1, 1);

  /* a large row: sorted, and argsort agrees with sort */
  int64_t n = 1 << 20;
  double *x = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) x[i] = next() % 1000 == 0 ? NAN : uniform() - 0.5;
  mx_array *a = arr_values(MX_F64, 1, &n, x), *s = NULL, *g = NULL;
  double ts = 1e9, tg = 1e9;
  for (int rep = 0; rep < 3; rep++) {
    if (s) mx_release(s);
    if (g) mx_release(g);
    double t0 = now();
    s = run(mx_sort(a, 0, 0, &s), &s, "large sort");
    double t1 = now();
    g = run(mx_argsort(a, 0, 0, &g), &g, "large argsort");
    double t2 = now();
    ts = fmin(ts, t1 - t0), tg = fmin(tg, t2 - t1);
  }
  printf("1M f64 sort %.1f ms, argsort %.1f ms\n", ts * 1e3, tg * 1e3);
  if (s && g) {
    const double *y = mx_data(s);
    const int64_t *p = mx_data(g);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
      if (i > 0) bad += before(y[i], y[i - 1], 0);
      bad += !same(y[i], x[p[i]], 0);
    }
    CHECK(bad == 0, "1M sort/argsort: %d wrong", bad);
  }
  if (s) mx_release(s);
  if (g) mx_release(g);
  mx_release(a);
  free(x);
}

int main(void) {
  test_reduce_axes();
  test_reduce_edge();
  test_reduce_large();
  test_scans();
  test_sort();
  return test_summary("");
}
