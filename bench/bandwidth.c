/* bandwidth.c: memory bandwidth of the engine's elementwise add and sum on
 * 16M-element f32 arrays, beside plain C references measured in the same run.
 *
 * Traffic is counted as bytes read + bytes written by the program (no
 * write-allocate reads): memcpy 8 B/elem, triad a = b + s*c 12 B/elem,
 * add 12 B/elem, sum 4 B/elem. References: one-thread memcpy, a 2-thread
 * STREAM triad and a 2-thread C sum (the same thread count as the engine's pool).
 * Reps are interleaved so drift on the shared machine hits every kernel alike.
 *
 * Usage: bandwidth [reps]          human-readable table
 *        bandwidth [reps] --kv     also key=value lines (read by bandwidth.exs) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx.h"

#define N ((int64_t)1 << 24) /* 16M elements */
#define NTHREADS 2

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

static float *xalloc(void) {
  void *p = NULL;
  if (posix_memalign(&p, 64, (size_t)N * sizeof(float)) != 0) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* ---- C references: each thread takes one contiguous half ------------------------ */

typedef struct {
  float *a;
  const float *b, *c;
  float s;
  int64_t lo, hi;
  double sum;
} part;

static void *triad_part(void *arg) {
  part *p = arg;
  float *restrict a = p->a;
  const float *restrict b = p->b, *restrict c = p->c;
  const float s = p->s;
  for (int64_t i = p->lo; i < p->hi; i++) a[i] = b[i] + s * c[i];
  return NULL;
}

/* Eight accumulators so the loop vectorizes without -ffast-math. */
static void *sum_part(void *arg) {
  part *p = arg;
  const float *restrict b = p->b;
  float acc[8] = {0};
  int64_t i = p->lo;
  for (; i + 8 <= p->hi; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += b[i + j];
  for (; i < p->hi; i++) acc[0] += b[i];
  double s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  p->sum = s;
  return NULL;
}

/* Runs fn over [0, N) on NTHREADS threads (the caller takes the first part, like mx_parallel_for). */
static double run_threads(void *(*fn)(void *), float *a, const float *b, const float *c) {
  part parts[NTHREADS];
  pthread_t tid[NTHREADS];
  for (int t = 0; t < NTHREADS; t++)
    parts[t] = (part){.a = a, .b = b, .c = c, .s = 3.0f, .lo = N * t / NTHREADS, .hi = N * (t + 1) / NTHREADS};
  for (int t = 1; t < NTHREADS; t++) pthread_create(&tid[t], NULL, fn, &parts[t]);
  fn(&parts[0]);
  double s = parts[0].sum;
  for (int t = 1; t < NTHREADS; t++) {
    pthread_join(tid[t], NULL);
    s += parts[t].sum;
  }
  return s;
}

static void check(mx_status st, const char *what) {
  if (st != MX_OK) {
    fprintf(stderr, "%s failed: %s\n", what, mx_last_error());
    exit(1);
  }
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  int kv = argc > 2 && strcmp(argv[2], "--kv") == 0;
  if (reps < 1) reps = 20;

  float *a = xalloc(), *b = xalloc(), *c = xalloc();
  for (int64_t i = 0; i < N; i++) {
    a[i] = 0.0f;
    b[i] = (float)(i % 1000) * 0.5f;
    c[i] = (float)(i % 7);
  }
  mx_array *x, *y;
  int64_t shape[1] = {N};
  check(mx_from_data(MX_F32, 1, shape, b, (size_t)N * 4, &x), "mx_from_data");
  check(mx_from_data(MX_F32, 1, shape, c, (size_t)N * 4, &y), "mx_from_data");

  enum { MEMCPY, TRIAD, CSUM, ADD, SUM, NK };
  static const char *names[NK] = {"memcpy (1 thread)", "STREAM triad (2 threads)", "C sum (2 threads)",
                                  "engine add f32", "engine sum f32"};
  static const char *keys[NK] = {"memcpy", "triad", "csum", "add", "sum"};
  static const double bytes_per_elem[NK] = {8, 12, 4, 12, 4};
  double *t[NK];
  for (int k = 0; k < NK; k++) t[k] = calloc((size_t)reps, sizeof(double));
  volatile double sink = 0;

  /* One untimed round warms pages, the engine's thread pool and its buffer cache. */
  for (int r = -1; r < reps; r++) {
    double t0 = now();
    memcpy(a, b, (size_t)N * 4);
    double t1 = now();
    run_threads(triad_part, a, b, c);
    double t2 = now();
    sink += run_threads(sum_part, a, b, c);
    double t3 = now();

    mx_array *s = NULL, *z = NULL;
    double t4 = now();
    check(mx_binary(MX_OP_ADD, x, y, &z), "mx_binary");
    check(mx_eval(&z, 1), "mx_eval add");
    double t5 = now();
    check(mx_reduce(MX_OP_SUM, x, NULL, -1, 0, &s), "mx_reduce");
    check(mx_eval(&s, 1), "mx_eval sum");
    double t6 = now();
    sink += ((float *)mx_data(z))[N - 1] + *(float *)mx_data(s);
    mx_release(z); /* returns the buffer to the engine's cache, as an inference loop would */
    mx_release(s);
    if (r < 0) continue;
    t[MEMCPY][r] = t1 - t0;
    t[TRIAD][r] = t2 - t1;
    t[CSUM][r] = t3 - t2;
    t[ADD][r] = t5 - t4;
    t[SUM][r] = t6 - t5;
  }

  double gbs[NK];
  for (int k = 0; k < NK; k++) gbs[k] = bytes_per_elem[k] * (double)N / median(t[k], reps) / 1e9;
  printf("bandwidth: %lld f32 elements (%.0f MiB per array), %d reps, %d engine threads, median of reps\n",
         (long long)N, (double)N * 4 / (1 << 20), reps, mx_num_threads());
  printf("  %-26s %8s %10s %10s\n", "kernel", "B/elem", "GB/s", "vs triad");
  for (int k = 0; k < NK; k++)
    printf("  %-26s %8.0f %10.2f %9.1f%%\n", names[k], bytes_per_elem[k], gbs[k], 100 * gbs[k] / gbs[TRIAD]);
  printf("  engine add / triad = %.1f%% (target >= 70%%)\n", 100 * gbs[ADD] / gbs[TRIAD]);
  printf("  engine sum / triad = %.1f%%, engine sum / C sum = %.1f%%\n", 100 * gbs[SUM] / gbs[TRIAD],
         100 * gbs[SUM] / gbs[CSUM]);
  if (kv) {
    for (int k = 0; k < NK; k++) printf("kv %s_gbs=%.4f\n", keys[k], gbs[k]);
    for (int k = 0; k < NK; k++) printf("kv %s_ms=%.4f\n", keys[k], 1e3 * bytes_per_elem[k] * (double)N / gbs[k] / 1e9);
  }
  if (sink == 12345.678) printf("(sink)\n");

  mx_release(x);
  mx_release(y);
  for (int k = 0; k < NK; k++) free(t[k]);
  free(a);
  free(b);
  free(c);
  return 0;
}
