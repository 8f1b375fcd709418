/* compile_chain.c: a compiled chain of 8 elementwise ops over 16M f32 (one fused group:
 * read x once, write the result once, intermediates in L1-sized scratch blocks) beside
 * a STREAM triad on as many threads as the engine's pool, measured in the same run, reps
 * interleaved. The chain runs on
 * both tiers: the interpreter (block by block) and generated C (jit.c: one expression per
 * element in registers, the loop split across the engine's pool), built before timing.
 *
 * Traffic as bandwidth.c counts it (bytes read + written by the program): the chain
 * 8 B/elem (x in, y out; its repeated reads of x hit the block in cache), triad 12 B/elem.
 * Also timed: the same chain uncompiled (8 kernels through mx_eval, each a full pass).
 *
 * Usage: compile_chain [reps] [--kv]  (MX_JIT=0: the generated tier is skipped) */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define N ((int64_t)1 << 24)
#define MAX_THREADS 256
/* The triad's threads: as many as the engine's pool (mx_num_threads), so both use the same cores. */
static int NTHREADS;

typedef struct {
  float *a;
  const float *b, *c;
  int64_t lo, hi;
} part;

static void *triad_part(void *arg) {
  part *p = arg;
  float *restrict a = p->a;
  const float *restrict b = p->b, *restrict c = p->c;
  for (int64_t i = p->lo; i < p->hi; i++) a[i] = b[i] + 3.0f * c[i];
  return NULL;
}

/* A persistent team (as bandwidth.c): the caller takes part 0. */
static pthread_barrier_t go, done;
static part parts[MAX_THREADS];

static void *team_main(void *arg) {
  for (;;) {
    pthread_barrier_wait(&go);
    triad_part(arg);
    pthread_barrier_wait(&done);
  }
  return NULL;
}

static void triad(float *a, const float *b, const float *c) {
  for (int t = 0; t < NTHREADS; t++) parts[t] = (part){a, b, c, N * t / NTHREADS, N * (t + 1) / NTHREADS};
  pthread_barrier_wait(&go);
  triad_part(&parts[0]);
  pthread_barrier_wait(&done);
}

/* The process's CPU seconds (all threads): bandwidth per CPU-second of NTHREADS threads is
 * what each part would reach with its cores to itself, the figure load distorts least. */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static mx_array *scalar(float v) {
  mx_array *s;
  check(mx_full(MX_F32, 0, NULL, v, &s), "full");
  return s;
}

/* y = op(y, b) (unary when b is NULL), dropping the old y. */
static void step(mx_op op, mx_array **y, mx_array *b) {
  mx_array *o;
  check(b ? mx_binary(op, *y, b, &o) : mx_unary(op, *y, &o), mx_ops[op].name);
  mx_release(*y);
  *y = o;
}

/* x*1.0001 + 0.5, * x, - 0.25, abs, min 4, * 0.5, + x: cheap ops, so memory decides. */
static mx_array *chain(mx_array *x) {
  mx_array *c[4] = {scalar(1.0001f), scalar(0.5f), scalar(0.25f), scalar(4.0f)}, *y = x;
  mx_retain(y);
  step(MX_OP_MULTIPLY, &y, c[0]);
  step(MX_OP_ADD, &y, c[1]);
  step(MX_OP_MULTIPLY, &y, x);
  step(MX_OP_SUBTRACT, &y, c[2]);
  step(MX_OP_ABS, &y, NULL);
  step(MX_OP_MIN, &y, c[3]);
  step(MX_OP_MULTIPLY, &y, c[1]);
  step(MX_OP_ADD, &y, x);
  for (int i = 0; i < 4; i++) mx_release(c[i]);
  return y;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 15;
  int kv = argc > 2 && strcmp(argv[2], "--kv") == 0;
  if (reps < 1 || reps > 200) reps = 15;
  NTHREADS = mx_num_threads() < MAX_THREADS ? mx_num_threads() : MAX_THREADS;
  pthread_barrier_init(&go, NULL, NTHREADS);
  pthread_barrier_init(&done, NULL, NTHREADS);
  for (int t = 1; t < NTHREADS; t++) {
    pthread_t tid;
    pthread_create(&tid, NULL, team_main, &parts[t]);
    pthread_detach(tid);
  }
  const size_t bytes = (size_t)N * sizeof(float);
  float *a = xalloc(bytes), *b = xalloc(bytes), *c = xalloc(bytes), *out = xalloc(bytes);
  for (int64_t i = 0; i < N; i++) a[i] = 0, b[i] = (float)(i % 1000) * 0.002f - 1, c[i] = (float)(i % 7), out[i] = 0;
  int64_t shape[1] = {N};
  mx_array *x, *holder;
  check(mx_from_data(MX_F32, 1, shape, b, bytes, &x), "from_data");
  check(mx_placeholder(MX_F32, 1, shape, &holder), "placeholder");
  mx_array *traced = chain(holder);
  mx_tape *t;
  double t0 = now();
  check(mx_tape_capture(&holder, 1, &traced, 1, &t), "capture");
  double capture_us = (now() - t0) * 1e6;
  mx_tape_info info;
  mx_tape_info_get(t, &info);

  /* the compiled result equals the uncompiled one bit for bit */
  mx_array *want = chain(x), *got;
  check(mx_eval(&want, 1), "eval");
  check(mx_tape_run(t, &x, 1, 0, &got), "run");
  if (memcmp(mx_data(got), mx_data(want), bytes)) {
    fprintf(stderr, "compiled chain differs from eval\n");
    return 1;
  }
  mx_release(got), mx_release(want);

  /* the generated-C tier: a second tape of the chain, built before timing */
  mx_tape *tn = NULL;
  check(mx_tape_capture(&holder, 1, &traced, 1, &tn), "capture");
  check(mx_tape_jit_start(tn, NULL), "jit start");
  mx_tier tier = mx_tape_jit_wait(tn, (int64_t)300 * 1000000000);
  mx_jit_info jinfo;
  mx_tape_jit_info(tn, &jinfo);
  int native = tier == MX_TIER_NATIVE;
  if (!native) printf("  (generated tier not timed: tier %d, %s)\n", tier, jinfo.reason);
  if (native) { /* it equals the interpreter bit for bit (same expressions, no contraction) */
    float *o2 = xalloc(bytes);
    const void *nin[1] = {b};
    void *nout[1] = {o2};
    check(mx_tape_run_raw(t, nin, nout), "run_raw");
    check(mx_tape_run_raw(tn, nin, (void *[]){out}), "native run_raw");
    if (memcmp(o2, out, bytes)) {
      fprintf(stderr, "generated tier differs from the interpreter\n");
      return 1;
    }
    free(o2);
  }
  double gb_triad[200], gb_run[200], gb_raw[200], gb_eval[200], r_run[200], r_raw[200], cpu_triad[200], cpu_raw[200],
      r_cpu[200], gb_nat[200], r_nat[200], cpu_nat[200], r_cpu_nat[200], gb_natrun[200];
  const void *in[1] = {b};
  void *outs[1] = {out};
  check(mx_tape_run_raw(t, in, outs), "run_raw");
  for (int r = 0; r < reps; r++) {
    double u0 = cpu_now(), s0 = now();
    triad(a, b, c);
    double s1 = now(), u1 = cpu_now();
    check(mx_tape_run(t, &x, 1, 0, &got), "run");
    double s2 = now();
    mx_release(got);
    double u3 = cpu_now(), s3 = now();
    check(mx_tape_run_raw(t, in, outs), "run_raw");
    double s4 = now(), u4 = cpu_now();
    mx_array *y = chain(x);
    double s5 = now();
    check(mx_eval(&y, 1), "eval");
    double s6 = now();
    mx_release(y);
    if (native) {
      double n0 = cpu_now(), w0 = now();
      check(mx_tape_run_raw(tn, in, outs), "native run_raw");
      double w1 = now(), n1 = cpu_now();
      check(mx_tape_run(tn, &x, 1, 0, &got), "native run");
      double w2 = now();
      mx_release(got);
      gb_nat[r] = 8.0 * N / (w1 - w0) / 1e9;
      gb_natrun[r] = 8.0 * N / (w2 - w1) / 1e9;
      cpu_nat[r] = 8.0 * N / ((n1 - n0) / NTHREADS) / 1e9;
    }
    gb_triad[r] = 12.0 * N / (s1 - s0) / 1e9;
    gb_run[r] = 8.0 * N / (s2 - s1) / 1e9;
    gb_raw[r] = 8.0 * N / (s4 - s3) / 1e9;
    gb_eval[r] = 8.0 * N / (s6 - s5) / 1e9;
    r_run[r] = gb_run[r] / gb_triad[r];
    r_raw[r] = gb_raw[r] / gb_triad[r];
    cpu_triad[r] = 12.0 * N / ((u1 - u0) / NTHREADS) / 1e9;
    cpu_raw[r] = 8.0 * N / ((u4 - u3) / NTHREADS) / 1e9;
    r_cpu[r] = cpu_raw[r] / cpu_triad[r];
    if (native) r_nat[r] = gb_nat[r] / gb_triad[r], r_cpu_nat[r] = cpu_nat[r] / cpu_triad[r];
  }
  printf("compile_chain: 8 elementwise ops over 16M f32, %d threads, median of %d reps\n", mx_num_threads(), reps);
  print_load();
  printf("  tape: %d instructions, %d fused in %d group(s), arena %lld bytes, capture %.0f us\n", info.n_instructions,
         info.fused, info.groups, (long long)info.arena_bytes, capture_us);
  double mt = median(gb_triad, reps), mrun = median(gb_run, reps), mraw = median(gb_raw, reps), mev = median(gb_eval, reps);
  printf("  STREAM triad (%d threads, 12 B/elem)%*s %8.2f GB/s\n", NTHREADS, NTHREADS < 10 ? 5 : 4, "", mt);
  printf("  %-40s %8.2f GB/s  %5.1f%% of triad (median of per-rep ratios %.1f%%)\n", "compiled, mx_tape_run (8 B/elem)", mrun,
         100 * mrun / mt, 100 * median(r_run, reps));
  printf("  %-40s %8.2f GB/s  %5.1f%% of triad (median of per-rep ratios %.1f%%)\n", "compiled, mx_tape_run_raw (8 B/elem)",
         mraw, 100 * mraw / mt, 100 * median(r_raw, reps));
  printf("  %-40s %8.2f GB/s  %5.1f%% of triad\n", "uncompiled, mx_eval (8 B/elem equiv.)", mev, 100 * mev / mt);
  double ct = median(cpu_triad, reps), cr = median(cpu_raw, reps);
  printf("  per CPU-second of %d threads (bytes / (process CPU time / %d)): triad %.2f GB/s, compiled run_raw %.2f GB/s:\n"
         "  %.1f%% of triad (median of per-rep ratios %.1f%%)\n",
         NTHREADS, NTHREADS, ct, cr, 100 * cr / ct, 100 * median(r_cpu, reps));
  double mn = native ? median(gb_nat, reps) : 0, mnr = native ? median(gb_natrun, reps) : 0;
  double cn = native ? median(cpu_nat, reps) : 0, rn = native ? median(r_nat, reps) : 0,
         rcn = native ? median(r_cpu_nat, reps) : 0;
  if (native) {
    printf("  generated C (jit.c, built in %.0f ms wall, %.0f ms compiler CPU%s):\n", jinfo.wall_ns / 1e6, jinfo.cpu_ns / 1e6,
           jinfo.cache_hit ? ", disk-cache hit" : "");
    printf("  %-40s %8.2f GB/s  %5.1f%% of triad (median of per-rep ratios %.1f%%)\n", "generated, mx_tape_run_raw (8 B/elem)",
           mn, 100 * mn / mt, 100 * rn);
    printf("  %-40s %8.2f GB/s  %5.1f%% of triad\n", "generated, mx_tape_run (8 B/elem)", mnr, 100 * mnr / mt);
    printf("  per CPU-second: generated run_raw %.2f GB/s: %.1f%% of triad (median of per-rep ratios %.1f%%)\n", cn,
           100 * cn / ct, 100 * rcn);
  }
  if (kv && native)
    printf("kv native_gbs=%.3f\nkv native_run_gbs=%.3f\nkv native_over_triad=%.4f\nkv cpu_native_over_triad=%.4f\n", mn, mnr,
           rn, rcn);
  if (kv)
    printf("kv triad_gbs=%.3f\nkv run_gbs=%.3f\nkv raw_gbs=%.3f\nkv eval_gbs=%.3f\nkv run_over_triad=%.4f\n"
           "kv raw_over_triad=%.4f\nkv capture_us=%.1f\nkv cpu_raw_over_triad=%.4f\n",
           mt, mrun, mraw, mev, median(r_run, reps), median(r_raw, reps), capture_us, median(r_cpu, reps));
  mx_tape_release(t);
  mx_tape_release(tn);
  mx_release(traced), mx_release(holder), mx_release(x);
  return 0;
}
