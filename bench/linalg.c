/* linalg.c: GFLOP/s of the engine's f64 cholesky and solve (mx_cholesky /
 * mx_solve + mx_eval, a fresh node each run) beside LAPACKE called directly in
 * the same run, interleaved run by run (the order flips each run).
 *
 * Direct calls do what a careful caller would with a row-major matrix: copy
 * it (LAPACK works in place) and call the column-major routine on the
 * transpose: dpotrf('U') for cholesky; dgetrf + dgetrs('T') for solve.
 * Flops: cholesky n^3/3; solve (one right-hand side) 2n^3/3 + 2n^2.
 * Times and ratios are medians over the runs.
 *
 * Usage: linalg [reps] */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "bench_util.h"

/* One op at one size: median GFLOP/s of both paths, the median paired ratio, and the
 * largest difference between their results relative to the largest entry. */
static void bench(int solve, int n, int reps) {
  size_t nn = (size_t)n * (size_t)n;
  double *a = xalloc(nn * 8), *b = xalloc((size_t)n * 8), *w = xalloc(nn * 8), *x = xalloc((size_t)n * 8);
  lapack_int *ipiv = xalloc((size_t)n * sizeof *ipiv);
  /* SPD for cholesky (M M^T / n + I), diagonally weighted for solve: both well conditioned. */
  for (size_t i = 0; i < nn; i++) w[i] = sin(0.37 * (double)i);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0 / n, w, n, w, n, 0.0, a, n);
  for (int i = 0; i < n; i++) a[(size_t)i * n + i] += 1.0 + (solve ? 0.5 * n : 0.0), b[i] = cos(i);
  int64_t sa[2] = {n, n}, sb[1] = {n};
  mx_array *xa, *xb;
  check(mx_from_data(MX_F64, 2, sa, a, nn * 8, &xa), "mx_from_data");
  check(mx_from_data(MX_F64, 1, sb, b, (size_t)n * 8, &xb), "mx_from_data");

  double *te = calloc((size_t)reps, sizeof(double)), *td = calloc((size_t)reps, sizeof(double));
  double *ratio = calloc((size_t)reps, sizeof(double)), maxdiff = 0, scale = 0;
  for (int r = -1; r < reps; r++) { /* r = -1 warms up both paths */
    double dt[2] = {0, 0};
    mx_array *z = NULL;
    for (int i = 0; i < 2; i++) {
      int engine = (i + r) & 1;
      double t0 = now();
      if (!engine) {
        memcpy(w, a, nn * 8); /* row-major a read column-major is a^T */
        lapack_int info;
        if (solve) {
          memcpy(x, b, (size_t)n * 8);
          info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, n, n, w, n, ipiv);
          if (!info) info = LAPACKE_dgetrs_work(LAPACK_COL_MAJOR, 'T', n, 1, w, n, ipiv, x, n);
        } else {
          info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', n, w, n);
        }
        dt[0] = now() - t0;
        if (info) {
          fprintf(stderr, "LAPACK info %d\n", (int)info);
          exit(1);
        }
        continue;
      }
      check(solve ? mx_solve(xa, xb, &z) : mx_cholesky(xa, &z), "build");
      check(mx_eval(&z, 1), "mx_eval");
      dt[1] = now() - t0;
    }
    if (r == -1) { /* same answer: L = U^T (only the lower triangle), or x */
      const double *e = mx_data(z);
      for (int i = 0; i < (solve ? 1 : n); i++)
        for (int j = 0; j < (solve ? n : i + 1); j++) {
          double want = solve ? x[j] : w[(size_t)i * n + j], got = solve ? e[j] : e[(size_t)i * n + j];
          maxdiff = fmax(maxdiff, fabs(got - want));
          scale = fmax(scale, fabs(want));
        }
    }
    mx_release(z);
    if (r < 0) continue;
    td[r] = dt[0];
    te[r] = dt[1];
    ratio[r] = dt[0] / dt[1];
  }
  double fn = (double)n, flops = solve ? 2 * fn * fn * fn / 3 + 2 * fn * fn : fn * fn * fn / 3;
  double md = median(td, reps), me = median(te, reps);
  printf("  %-8s %5d %12.2f %12.2f %10.1f%% %12.1f %12.1f   %.1e\n", solve ? "solve" : "cholesky", n, flops / me / 1e9,
         flops / md / 1e9, 100 * median(ratio, reps), 1e6 * me, 1e6 * md, maxdiff / scale);
  mx_release(xa);
  mx_release(xb);
  free(te), free(td), free(ratio), free(a), free(b), free(w), free(x), free(ipiv);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 15;
  if (reps < 1) reps = 15;
  const char *core = getenv("OPENBLAS_CORETYPE");
  printf("linalg f64: %d reps, medians; %s, %d threads, OPENBLAS_CORETYPE=%s\n", reps, openblas_get_config(),
         openblas_get_num_threads(), core ? core : "(unset)");
  print_load();
  printf("  %-8s %5s %12s %12s %11s %12s %12s   %s\n", "op", "n", "engine GF/s", "LAPACKE GF/s", "ratio", "engine us",
         "LAPACKE us", "max |diff| / max");
  int sizes[3] = {64, 256, 1024};
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < 3; i++) bench(s, sizes[i], sizes[i] >= 1024 ? (reps + 2) / 3 : reps);
  return 0;
}
