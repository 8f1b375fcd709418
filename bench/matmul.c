/* matmul.c: GFLOP/s of the engine's 1024x1024 f32 and f64 matmul (mx_matmul +
 * mx_eval, a fresh output node each run) beside cblas_sgemm/dgemm called
 * directly in the same run, interleaved run by run (the order flips each run).
 * Flops: 2 n^3. The ratio is the median of per-run ratios.
 *
 * Usage: matmul [reps] [n] */
#include <cblas.h>

#include "bench_util.h"

/* Runs one dtype: returns the engine's and BLAS's median GFLOP/s; checks they agree. */
static void bench(mx_dtype t, int n, int reps, double *engine_gf, double *blas_gf, double *paired) {
  size_t elems = (size_t)n * (size_t)n, esz = (size_t)mx_dtype_size(t);
  void *a = xalloc(elems * esz), *b = xalloc(elems * esz), *c = xalloc(elems * esz);
  for (size_t i = 0; i < elems; i++) {
    double va = (double)((i * 7) % 13) / 13.0 - 0.5, vb = (double)((i * 5) % 11) / 11.0 - 0.5;
    if (t == MX_F32) {
      ((float *)a)[i] = (float)va;
      ((float *)b)[i] = (float)vb;
      ((float *)c)[i] = 0;
    } else {
      ((double *)a)[i] = va;
      ((double *)b)[i] = vb;
      ((double *)c)[i] = 0;
    }
  }
  int64_t shape[2] = {n, n};
  mx_array *x, *y;
  check(mx_from_data(t, 2, shape, a, elems * esz, &x), "mx_from_data");
  check(mx_from_data(t, 2, shape, b, elems * esz, &y), "mx_from_data");

  double *te = calloc((size_t)reps, sizeof(double)), *tb = calloc((size_t)reps, sizeof(double));
  double *ratio = calloc((size_t)reps, sizeof(double));
  double maxdiff = 0;
  for (int r = -1; r < reps; r++) { /* r = -1 warms up both paths */
    double dt[2] = {0, 0};
    mx_array *z = NULL;
    /* The order flips every rep so neither side owns a slot. */
    for (int i = 0; i < 2; i++) {
      int engine = (i + r) & 1;
      double t0 = now();
      if (!engine) {
        if (t == MX_F32)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else
          cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
        dt[0] = now() - t0;
        continue;
      }
      check(mx_matmul(x, y, &z), "mx_matmul");
      check(mx_eval(&z, 1), "mx_eval");
      dt[1] = now() - t0;
    }
    if (r == -1) /* the same BLAS call underneath: the results must agree exactly */
      for (size_t j = 0; j < elems; j++) {
        double d = t == MX_F32 ? (double)((float *)mx_data(z))[j] - ((float *)c)[j]
                               : ((double *)mx_data(z))[j] - ((double *)c)[j];
        if (d < 0) d = -d;
        if (d > maxdiff) maxdiff = d;
      }
    mx_release(z);
    if (r < 0) continue;
    tb[r] = dt[0];
    te[r] = dt[1];
    ratio[r] = dt[0] / dt[1];
  }
  double flops = 2.0 * n * (double)n * n;
  *engine_gf = flops / median(te, reps) / 1e9;
  *blas_gf = flops / median(tb, reps) / 1e9;
  *paired = median(ratio, reps);
  if (maxdiff != 0) printf("  WARNING: %s engine and BLAS results differ by up to %g\n", mx_dtype_name(t), maxdiff);
  mx_release(x);
  mx_release(y);
  free(te);
  free(tb);
  free(ratio);
  free(a);
  free(b);
  free(c);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 10;
  int n = argc > 2 ? atoi(argv[2]) : 1024;
  if (reps < 1) reps = 10;
  if (n < 1) n = 1024;
  const char *core = getenv("OPENBLAS_CORETYPE");
  printf("matmul: %dx%d @ %dx%d, %d reps, median; %s, %d threads, OPENBLAS_CORETYPE=%s\n", n, n, n, n,
         reps, openblas_get_config(), openblas_get_num_threads(), core ? core : "(unset)");
  print_load();
  printf("  %-6s %12s %12s %18s\n", "dtype", "engine GF/s", "cblas GF/s", "median paired ratio");
  mx_dtype types[2] = {MX_F32, MX_F64};
  for (int i = 0; i < 2; i++) {
    double e, b, p;
    bench(types[i], n, reps, &e, &b, &p);
    printf("  %-6s %12.1f %12.1f %17.1f%%  (target >= 95%%: %s)\n", mx_dtype_name(types[i]), e, b, 100 * p,
           p >= 0.95 ? "met" : "NOT met");
  }
  return 0;
}
