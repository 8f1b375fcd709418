/* fft.c: speed of the engine's FFT component (c_src/prim/fft.c) on complex
 * doubles: one transform at a time (serial), for n = 1024, 4096, 65536 and the
 * prime 4099 (Bluestein), plus the real forward transform (r2c) at the same n.
 * Reports ns per transform, best and median over the runs (the machine is
 * shared, so the best run is the better estimate of the code's own speed), and
 * "5 n log2 n / t" GFLOP/s from the best run (r2c counted as half of that);
 * then the same with work split across threads (a batch; one 2^20 transform).
 *
 * Usage: fft [runs] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mx.h"
#include "prim/fft.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void check(mx_status st, const char *what) {
  if (st != MX_OK) {
    fprintf(stderr, "%s failed: %s\n", what, mx_last_error());
    exit(1);
  }
}

/* Seconds per transform, best and median; each run repeats it for ~5 ms. */
static void time_one(const mx_fft_plan *p, int64_t n, int real, const double *x, double *y, int runs, double *best,
                     double *med) {
  double *t = malloc((size_t)runs * sizeof *t);
  int reps = 1;
  for (;;) { /* calibrate the repetitions per run */
    double t0 = now();
    for (int r = 0; r < reps; r++)
      check(real ? mx_fft_r2c(p, x, y, 1, 1, n, 1.0) : mx_fft_c2c(p, x, y, 1, 1, n, 0, 1.0), "fft");
    if (now() - t0 > 0.005 || reps > (1 << 24)) break;
    reps *= 2;
  }
  for (int i = 0; i < runs; i++) {
    double t0 = now();
    for (int r = 0; r < reps; r++)
      check(real ? mx_fft_r2c(p, x, y, 1, 1, n, 1.0) : mx_fft_c2c(p, x, y, 1, 1, n, 0, 1.0), "fft");
    t[i] = (now() - t0) / reps;
  }
  *med = median(t, runs);
  *best = t[0]; /* sorted by median() */
  free(t);
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 41;
  if (runs < 1) runs = 1;
  const int64_t sizes[] = {1024, 4096, 65536, 4099};
  printf("FFT, double, one transform per call (serial), %d runs; ns best/median, GFLOP/s of the best\n", runs);
  printf("%8s %10s %18s %8s %18s %8s\n", "n", "algorithm", "c2c ns", "GFLOP/s", "r2c ns", "GFLOP/s");
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    int64_t n = sizes[i];
    mx_fft_plan *p = NULL;
    check(mx_fft_plan_get(n, &p), "plan");
    double *x = malloc((size_t)(2 * n) * sizeof *x), *y = malloc((size_t)(2 * n + 2) * sizeof *y);
    for (int64_t k = 0; k < 2 * n; k++) x[k] = sin(0.37 * (double)k) + 0.25 * cos(1.3 * (double)k);
    double tc, tcm, tr, trm;
    time_one(p, n, 0, x, y, runs, &tc, &tcm);
    time_one(p, n, 1, x, y, runs, &tr, &trm);
    double flops = 5.0 * (double)n * log2((double)n);
    printf("%8lld %10s %8.0f /%8.0f %8.2f %8.0f /%8.0f %8.2f\n", (long long)n,
           mx_fft_plan_is_bluestein(p) ? "bluestein" : "mixed", tc * 1e9, tcm * 1e9, flops / tc * 1e-9, tr * 1e9,
           trm * 1e9, 0.5 * flops / tr * 1e-9);
    mx_fft_plan_release(p);
    free(x);
    free(y);
  }
  /* Work split across threads: a batch of transforms, and one long transform
   * whose stages split (from 2^18). Best of the runs, wall time. */
  printf("threads: %d\n", mx_num_threads());
  const int64_t bn[] = {1024, 1 << 20}, bh[] = {256, 1};
  for (int i = 0; i < 2; i++) {
    int64_t n = bn[i], hm = bh[i];
    mx_fft_plan *p = NULL;
    check(mx_fft_plan_get(n, &p), "plan");
    double *x = malloc((size_t)(2 * n * hm) * sizeof *x), *y = malloc((size_t)(2 * n * hm) * sizeof *y);
    for (int64_t k = 0; k < 2 * n * hm; k++) x[k] = sin(0.37 * (double)k);
    double best = 1e30;
    for (int r = 0; r < runs / 4 + 3; r++) {
      double t0 = now();
      check(mx_fft_c2c(p, x, y, hm, 1, n, 0, 1.0), "fft");
      double t = (now() - t0) / (double)hm;
      if (t < best) best = t;
    }
    printf("%8lld x %-5lld c2c: %10.0f ns per transform, %6.2f GFLOP/s\n", (long long)n, (long long)hm, best * 1e9,
           5.0 * (double)n * log2((double)n) / best * 1e-9);
    mx_fft_plan_release(p);
    free(x);
    free(y);
  }
  return 0;
}
