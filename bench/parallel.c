/* parallel.c: does the engine's 2-thread split (mx_parallel_for, taken from
 * 2 * MX_PARALLEL_GRAIN = 65536 elements) pay? For f32 add (memory bound)
 * and exp (compute bound), times mx_binary/mx_unary + mx_eval against a plain
 * one-thread C loop over the same data, interleaved rep by rep, medians.
 * 65535 elements runs serial in the engine, 65536 splits: the pair shows the
 * price of the split itself. engine / serial < 1 means the split pays.
 *
 * Usage: parallel [reps] */
#include <math.h>

#include "bench_util.h"

/* noinline: the serial reference must not be folded into the timing loop */
__attribute__((noinline)) static void serial_add(const float *x, float *o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = x[i] + x[i];
}

__attribute__((noinline)) static void serial_exp(const float *x, float *o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = expf(x[i]);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 101;
  if (reps < 1) reps = 101;
  static const int64_t sizes[] = {65535, 65536, 262144, 1048576, 4194304};
  const int nsizes = (int)(sizeof sizes / sizeof *sizes);
  printf("parallel: engine (%d threads) vs a serial C loop, median us of %d interleaved reps\n", mx_num_threads(), reps);
  print_load();
  printf("  %-4s %9s %11s %11s %15s\n", "op", "elements", "engine us", "serial us", "engine/serial");
  double *te = malloc(sizeof(double) * (size_t)reps), *ts = malloc(sizeof(double) * (size_t)reps);
  for (int op = 0; op < 2; op++) {
    for (int si = 0; si < nsizes; si++) {
      int64_t n = sizes[si];
      float *d = malloc(sizeof(float) * (size_t)n), *o = malloc(sizeof(float) * (size_t)n);
      for (int64_t i = 0; i < n; i++) d[i] = (float)(i % 97) * 0.01f, o[i] = 0;
      mx_array *a;
      check(mx_from_data(MX_F32, 1, &n, d, sizeof(float) * (size_t)n, &a), "mx_from_data");
      const float *x = mx_data(a);
      for (int r = -1; r < reps; r++) {
        mx_array *e;
        double t0 = now();
        check(op == 0 ? mx_binary(MX_OP_ADD, a, a, &e) : mx_unary(MX_OP_EXP, a, &e), "build");
        check(mx_eval(&e, 1), "mx_eval");
        double t1 = now();
        mx_release(e);
        double t2 = now();
        if (op == 0)
          serial_add(x, o, n);
        else
          serial_exp(x, o, n);
        double t3 = now();
        if (r < 0) continue;
        te[r] = (t1 - t0) * 1e6;
        ts[r] = (t3 - t2) * 1e6;
      }
      double me = median(te, reps), ms = median(ts, reps);
      printf("  %-4s %9lld %11.1f %11.1f %15.2f\n", op == 0 ? "add" : "exp", (long long)n, me, ms, me / ms);
      mx_release(a);
      free(d);
      free(o);
    }
  }
  free(te);
  free(ts);
  return 0;
}
