/* bandwidth.c: memory bandwidth of the engine's elementwise add and sum on
 * 16M-element f32 arrays, beside plain C references measured in the same run.
 *
 * Traffic is counted as bytes read + bytes written by the program (no
 * write-allocate reads): memcpy 8 B/elem, triad a = b + s*c 12 B/elem,
 * add 12 B/elem, sum 4 B/elem. References: one-thread memcpy, a 2-thread
 * STREAM triad and a 2-thread C sum (the same thread count as the engine's pool).
 * Reps are interleaved, and ratios are taken within each rep, so drift on the
 * shared machine hits both sides of a ratio alike. A compute-bound line (expf,
 * 1 and 2 threads, against the engine's exp) shows whether the split pays.
 *
 * Usage: bandwidth [reps]          human-readable table
 *        bandwidth [reps] --kv     also key=value lines (read by bandwidth.exs) */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "bench_util.h"

#define N ((int64_t)1 << 24) /* 16M elements */
#define NTHREADS 2

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

/* The compute-bound counterpart: expf costs ~2 ns/elem, far above memory traffic. */
static void *exp_part(void *arg) {
  part *p = arg;
  float *restrict a = p->a;
  const float *restrict b = p->b;
  for (int64_t i = p->lo; i < p->hi; i++) a[i] = expf(b[i]);
  return NULL;
}

/* 32 accumulators: enough independent vector chains to be bound by memory, not add latency. */
static void *sum_part(void *arg) {
  part *p = arg;
  const float *restrict b = p->b;
  float acc[32] = {0};
  int64_t i = p->lo;
  for (; i + 32 <= p->hi; i += 32)
    for (int j = 0; j < 32; j++) acc[j] += b[i + j];
  for (; i < p->hi; i++) acc[0] += b[i];
  double s = 0;
  for (int j = 0; j < 32; j++) s += acc[j];
  p->sum = s;
  return NULL;
}

/* A persistent team like the engine's pool: helpers wait on a barrier, the caller
 * takes part 0, so no reference pays thread creation inside its timing. */
static pthread_barrier_t go, done;
static void *(*team_fn)(void *);
static part parts[NTHREADS];

static void *team_main(void *arg) {
  part *p = arg;
  for (;;) {
    pthread_barrier_wait(&go);
    team_fn(p);
    pthread_barrier_wait(&done);
  }
  return NULL;
}

static void team_start(void) {
  pthread_barrier_init(&go, NULL, NTHREADS);
  pthread_barrier_init(&done, NULL, NTHREADS);
  for (int t = 1; t < NTHREADS; t++) {
    pthread_t tid;
    pthread_create(&tid, NULL, team_main, &parts[t]);
    pthread_detach(tid);
  }
}

/* Runs fn over [0, N) split in NTHREADS contiguous parts; returns the summed part results. */
static double run_threads(void *(*fn)(void *), float *a, const float *b, const float *c) {
  for (int t = 0; t < NTHREADS; t++)
    parts[t] = (part){.a = a, .b = b, .c = c, .s = 3.0f, .lo = N * t / NTHREADS, .hi = N * (t + 1) / NTHREADS};
  team_fn = fn;
  pthread_barrier_wait(&go);
  fn(&parts[0]);
  pthread_barrier_wait(&done);
  double s = 0;
  for (int t = 0; t < NTHREADS; t++) s += parts[t].sum;
  return s;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  int kv = argc > 2 && strcmp(argv[2], "--kv") == 0;
  if (reps < 1) reps = 20;

  const size_t bytes = (size_t)N * sizeof(float);
  float *a = xalloc(bytes), *b = xalloc(bytes), *c = xalloc(bytes);
  team_start();
  for (int64_t i = 0; i < N; i++) {
    a[i] = 0.0f;
    b[i] = (float)(i % 1000) * 0.5f;
    c[i] = (float)(i % 7);
  }
  mx_array *x, *y;
  int64_t shape[1] = {N};
  check(mx_from_data(MX_F32, 1, shape, b, (size_t)N * 4, &x), "mx_from_data");
  check(mx_from_data(MX_F32, 1, shape, c, (size_t)N * 4, &y), "mx_from_data");

  enum { MEMCPY, TRIAD, CSUM, ADD, SUM, NMEM, CEXP1 = NMEM, CEXP2, EXP, NK };
  static const char *names[NK] = {"memcpy (1 thread)", "STREAM triad (2 threads)", "C sum (2 threads)",
                                  "engine add f32",    "engine sum f32",           "C expf loop (1 thread)",
                                  "C expf loop (2 threads)", "engine exp f32"};
  static const char *keys[NK] = {"memcpy", "triad", "csum", "add", "sum", "cexp1", "cexp2", "exp"};
  static const double bytes_per_elem[NK] = {8, 12, 4, 12, 4, 8, 8, 8};
  double *t[NK];
  for (int k = 0; k < NK; k++) t[k] = calloc((size_t)reps, sizeof(double));
  double *ratio[5];
  for (int k = 0; k < 5; k++) ratio[k] = calloc((size_t)reps, sizeof(double));
  volatile double sink = 0;

  /* One untimed round warms pages, the engine's thread pool and its buffer cache.
   * Each engine kernel runs next to its reference, in an order that flips every
   * rep, so a ratio within one rep compares kernels under the same load and
   * neither side owns a slot; the medians of those ratios are reported. */
  static const int order[2][NK] = {{TRIAD, ADD, CSUM, SUM, MEMCPY, CEXP2, EXP, CEXP1},
                                   {ADD, TRIAD, SUM, CSUM, MEMCPY, EXP, CEXP2, CEXP1}};
  for (int r = -1; r < reps; r++) {
    double dt[NK];
    for (int i = 0; i < NK; i++) {
      int k = order[r & 1][i];
      mx_array *out = NULL;
      double t0 = now();
      switch (k) {
      case MEMCPY: memcpy(a, b, (size_t)N * 4); break;
      case TRIAD: run_threads(triad_part, a, b, c); break;
      case CSUM: sink += run_threads(sum_part, a, b, c); break;
      case CEXP1: parts[0] = (part){.a = a, .b = c, .lo = 0, .hi = N}; exp_part(&parts[0]); break;
      case CEXP2: run_threads(exp_part, a, c, c); break;
      case ADD:
        check(mx_binary(MX_OP_ADD, x, y, &out), "mx_binary");
        check(mx_eval(&out, 1), "mx_eval add");
        break;
      case SUM:
        check(mx_reduce(MX_OP_SUM, x, NULL, -1, 0, &out), "mx_reduce");
        check(mx_eval(&out, 1), "mx_eval sum");
        break;
      case EXP:
        check(mx_unary(MX_OP_EXP, y, &out), "mx_unary");
        check(mx_eval(&out, 1), "mx_eval exp");
        break;
      }
      dt[k] = now() - t0;
      if (out) sink += ((float *)mx_data(out))[out->size - 1];
      mx_release(out); /* returns the buffer to the engine's cache, as an inference loop would */
    }
    if (r < 0) continue;
    for (int k = 0; k < NK; k++) t[k][r] = dt[k];
    ratio[0][r] = (12 / dt[ADD]) / (12 / dt[TRIAD]);
    ratio[1][r] = (4 / dt[SUM]) / (12 / dt[TRIAD]);
    ratio[2][r] = dt[CSUM] / dt[SUM];
    ratio[3][r] = dt[CEXP2] / dt[EXP];
    ratio[4][r] = dt[CEXP1] / dt[CEXP2];
  }

  double gbs[NK];
  for (int k = 0; k < NK; k++) gbs[k] = bytes_per_elem[k] * (double)N / median(t[k], reps) / 1e9;
  printf("bandwidth: %lld f32 elements (%.0f MiB per array), %d reps, %d engine threads, median of reps\n",
         (long long)N, (double)N * 4 / (1 << 20), reps, mx_num_threads());
  print_load();
  printf("  %-26s %8s %10s %10s\n", "kernel", "B/elem", "GB/s", "vs triad");
  for (int k = 0; k < NMEM; k++)
    printf("  %-26s %8.0f %10.2f %9.1f%%\n", names[k], bytes_per_elem[k], gbs[k], 100 * gbs[k] / gbs[TRIAD]);
  double r_add = median(ratio[0], reps), r_sum = median(ratio[1], reps), r_csum = median(ratio[2], reps);
  printf("  median of per-rep ratios: engine add / triad = %.1f%% (target >= 70%%: %s)\n", 100 * r_add,
         r_add >= 0.7 ? "met" : "NOT met");
  printf("                            engine sum / triad = %.1f%%, engine sum / C sum = %.1f%%\n", 100 * r_sum,
         100 * r_csum);
  printf("  compute-bound, does the pool split pay? (ns per element)\n");
  for (int k = NMEM; k < NK; k++) printf("  %-26s %8.2f\n", names[k], 1e9 * median(t[k], reps) / (double)N);
  printf("  median of per-rep ratios: engine exp / C 2-thread expf = %.1f%%; C 2 threads / 1 thread = %.2fx\n",
         100 * median(ratio[3], reps), median(ratio[4], reps));
  if (kv) {
    for (int k = 0; k < NK; k++) printf("kv %s_gbs=%.4f\n", keys[k], gbs[k]);
    for (int k = 0; k < NK; k++) printf("kv %s_ms=%.4f\n", keys[k], 1e3 * bytes_per_elem[k] * (double)N / gbs[k] / 1e9);
    printf("kv add_over_triad=%.4f\nkv sum_over_triad=%.4f\n", r_add, r_sum);
  }
  if (sink == 12345.678) printf("(sink)\n");

  mx_release(x);
  mx_release(y);
  for (int k = 0; k < NK; k++) free(t[k]);
  for (int k = 0; k < 5; k++) free(ratio[k]);
  free(a);
  free(b);
  free(c);
  return 0;
}
