/* sampler.c: the C samplers' own cost per leapfrog (c_src/sampler.c), apart from the
 * gradient's. NUTS (warmup + sampling, diagonal and dense metric) on a d-dimensional
 * standard normal, its gradient hand-written (a few ns) or replayed from a compiled tape
 * (mx_tape_run_raw). Per leapfrog: the run's time over its gradient calls; the gradient
 * alone timed in a loop at the same d; the difference is the sampler's overhead.
 * Usage: sampler [rounds]  (median over rounds). */
#include <math.h>
#include <string.h>

#include "bench_util.h"

typedef struct {
  int64_t d, calls;
} target;

static mx_status normal(void *ctx, const double *q, double *lp, double *g) {
  target *t = ctx;
  t->calls++;
  double s = 0.0;
  for (int64_t i = 0; i < t->d; i++) s += q[i] * q[i], g[i] = -q[i];
  *lp = -0.5 * s;
  return MX_OK;
}

typedef struct {
  mx_tape *tape;
  int64_t calls;
} tape_target;

static mx_status tape_fn(void *ctx, const double *q, double *lp, double *g) {
  tape_target *t = ctx;
  t->calls++;
  return mx_tape_logp_grad(t->tape, q, lp, g);
}

/* -|q|^2/2 and its gradient as a tape, as Mx.compile(Mx.value_and_grad(f)) makes it. */
static mx_tape *normal_tape(int64_t d) {
  int64_t shape[1] = {d};
  mx_array *ph, *x, *sq, *sum, *half, *lp, *one, *g;
  check(mx_placeholder(MX_F64, 1, shape, &ph), "placeholder");
  check(mx_trace_input(ph, &x), "trace_input");
  check(mx_binary(MX_OP_MULTIPLY, x, x, &sq), "multiply");
  check(mx_reduce(MX_OP_SUM, sq, NULL, -1, 0, &sum), "sum");
  check(mx_full(MX_F64, 0, NULL, -0.5, &half), "full");
  check(mx_binary(MX_OP_MULTIPLY, sum, half, &lp), "multiply");
  check(mx_full(MX_F64, 0, NULL, 1.0, &one), "full");
  check(mx_vjp(&lp, &one, 1, &x, 1, &g), "vjp");
  mx_array *outs[2] = {lp, g};
  mx_tape *t;
  check(mx_tape_capture(&ph, 1, outs, 2, &t), "capture");
  mx_array *all[] = {ph, x, sq, sum, half, lp, one, g};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
  return t;
}

typedef struct {
  mx_sampler *s;
} job;

static mx_status run_job(void *ctx) { return mx_sampler_run(((job *)ctx)->s); }

/* Seconds per gradient call of one run: NUTS, warmup 500 + samples. */
static double run_once(int64_t d, mx_metric_kind metric, mx_logp_grad_fn f, void *t, int64_t *calls, int64_t samples) {
  double *q0 = calloc((size_t)d, sizeof(double));
  for (int64_t i = 0; i < d; i++) q0[i] = 0.3 * (double)(i % 3) - 0.2;
  mx_sampler_config c = {.algorithm = MX_SAMPLER_NUTS, .d = d, .warmup = 500, .samples = samples, .q0 = q0,
                         .key = {0, 1}, .target_accept = 0.8, .step_size = 1.0, .max_depth = 10, .adapt_metric = 1,
                         .metric = metric, .logp_grad = f, .target = t};
  job j;
  check(mx_sampler_new(&c, &j.s), "sampler_new");
  *calls = 0;
  double t0 = now();
  check(mx_run_engine(run_job, &j), "sampler_run");
  double dt = now() - t0;
  mx_sampler_free(j.s);
  free(q0);
  return dt / (double)*calls;
}

typedef struct {
  mx_logp_grad_fn f;
  void *t;
  int64_t d, n;
  double secs;
} grad_job;

/* The gradient alone, n calls at a moving point (on an engine thread, as in the run). */
static mx_status time_grad(void *ctx) {
  grad_job *g = ctx;
  double *q = calloc((size_t)g->d, sizeof(double)), *gr = calloc((size_t)g->d, sizeof(double)), lp, acc = 0;
  double t0 = now();
  for (int64_t k = 0; k < g->n; k++) {
    q[k % g->d] = 1e-3 * (double)(k % 7);
    mx_status st = g->f(g->t, q, &lp, gr);
    if (st) return st;
    acc += lp;
  }
  g->secs = (now() - t0) / (double)g->n;
  if (acc == 12345.678) printf(" "); /* keep the loop */
  free(q), free(gr);
  return MX_OK;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1) rounds = 1;
  printf("C samplers: NUTS on a d-dim standard normal, 500 warmup + 20000 draws, median of %d rounds (us per leapfrog)\n",
         rounds);
  printf("  %-24s %4s %12s %12s %14s\n", "gradient", "d", "per leapfrog", "gradient", "sampler itself");
  int64_t dims[2] = {2, 10};
  for (int k = 0; k < 2; k++)
    for (int which = 0; which < 3; which++) {
      int64_t d = dims[k];
      target ht = {.d = d};
      tape_target tt = {.tape = which == 2 ? normal_tape(d) : NULL};
      mx_logp_grad_fn f = which == 2 ? tape_fn : normal;
      void *t = which == 2 ? (void *)&tt : (void *)&ht;
      int64_t *calls = which == 2 ? &tt.calls : &ht.calls;
      mx_metric_kind metric = which == 1 ? MX_METRIC_DENSE : MX_METRIC_DIAG;
      double per[64], grad[64];
      int r = rounds > 64 ? 64 : rounds;
      for (int i = 0; i < r; i++) {
        per[i] = run_once(d, metric, f, t, calls, 20000);
        grad_job g = {f, t, d, 200000, 0};
        check(mx_run_engine(time_grad, &g), "gradient");
        grad[i] = g.secs;
      }
      double p = median(per, r), gr = median(grad, r);
      const char *name = which == 0 ? "hand-written, diag" : which == 1 ? "hand-written, dense" : "compiled tape, diag";
      printf("  %-24s %4lld %12.3f %12.3f %14.3f\n", name, (long long)d, 1e6 * p, 1e6 * gr, 1e6 * (p - gr));
      if (tt.tape) mx_tape_release(tt.tape);
    }
  print_load();
  return 0;
}
