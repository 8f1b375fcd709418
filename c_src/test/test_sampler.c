/* test_sampler.c: the C samplers (sampler.c) on hand-written densities: moments within
 * 4 Monte-Carlo standard errors (from the ESS), the dense metric's adaptation, dual
 * averaging, divergences, determinism, cancellation, rejected points, the tape target. */
#include <pthread.h>
#include <time.h>

#include "test_util.h"

/* ---- targets --------------------------------------------------------------------------- */

typedef struct {
  int64_t d;
  double reject_above; /* q[0] > this: the target fails (MX_ECOMPUTE), as a Cholesky failure would */
  double nan_above;    /* q[0] > this: lp is NaN */
  double rho;          /* 2-d Gaussian correlation */
  _Atomic int64_t calls;
  int slow_ns;
} target;

static mx_status std_normal(void *ctx, const double *q, double *lp, double *g) {
  target *t = ctx;
  atomic_fetch_add(&t->calls, 1);
  if (t->slow_ns) nanosleep(&(struct timespec){0, t->slow_ns}, NULL);
  if (q[0] > t->reject_above) return mx_error(MX_ECOMPUTE, "[test] not positive definite at q[0] = %g", q[0]);
  double s = 0.0;
  for (int64_t i = 0; i < t->d; i++) s += q[i] * q[i], g[i] = -q[i];
  *lp = q[0] > t->nan_above ? NAN : -0.5 * s;
  return MX_OK;
}

/* Correlated 2-d Gaussian, unit variances, correlation rho. */
static mx_status corr_normal(void *ctx, const double *q, double *lp, double *g) {
  target *t = ctx;
  double r = t->rho, c = 1.0 / (1.0 - r * r);
  *lp = -0.5 * c * (q[0] * q[0] - 2 * r * q[0] * q[1] + q[1] * q[1]);
  g[0] = -c * (q[0] - r * q[1]);
  g[1] = -c * (q[1] - r * q[0]);
  return MX_OK;
}

/* Neal's funnel: v ~ N(0, 3), x_i ~ N(0, exp(v / 2)), i = 1..d-1. */
static mx_status funnel(void *ctx, const double *q, double *lp, double *g) {
  target *t = ctx;
  double v = q[0], s = 0.0;
  *lp = -v * v / 18.0;
  g[0] = -v / 9.0;
  for (int64_t i = 1; i < t->d; i++) {
    s += q[i] * q[i];
    g[i] = -q[i] * exp(-v);
  }
  *lp += -0.5 * s * exp(-v) - 0.5 * (double)(t->d - 1) * v;
  g[0] += 0.5 * s * exp(-v) - 0.5 * (double)(t->d - 1);
  return MX_OK;
}

/* ---- Monte-Carlo error --------------------------------------------------------------- */

/* Effective sample size by Geyer's initial monotone sequence estimator. */
static double ess(const double *x, int64_t n) {
  double mean = 0.0, c0 = 0.0;
  for (int64_t i = 0; i < n; i++) mean += x[i];
  mean /= (double)n;
  for (int64_t i = 0; i < n; i++) c0 += (x[i] - mean) * (x[i] - mean);
  c0 /= (double)n;
  if (c0 == 0) return (double)n;
  double tau = -1.0, prev = INFINITY;
  for (int64_t k = 0; 2 * k + 1 < n; k++) {
    double pair = 0.0;
    for (int64_t lag = 2 * k; lag <= 2 * k + 1; lag++) {
      double c = 0.0;
      for (int64_t i = 0; i + lag < n; i++) c += (x[i] - mean) * (x[i + lag] - mean);
      pair += c / (double)n / c0;
    }
    if (pair <= 0) break;
    pair = fmin(pair, prev);
    prev = pair;
    tau += 2 * pair;
  }
  return (double)n / fmax(tau, 1.0 / (double)n);
}

/* Mean of f(x) and its standard error from the ESS. */
static void mc_mean(const double *x, int64_t n, double *mean, double *se) {
  double m = 0.0, v = 0.0;
  for (int64_t i = 0; i < n; i++) m += x[i];
  m /= (double)n;
  for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  v /= (double)(n - 1);
  *mean = m;
  *se = sqrt(v / ess(x, n));
}

/* ---- helpers ---------------------------------------------------------------------------- */

static mx_sampler_config config(mx_sampler_algorithm alg, int64_t d, const double *q0, mx_logp_grad_fn f, void *t) {
  return (mx_sampler_config){.algorithm = alg,
                             .d = d,
                             .warmup = 1000,
                             .samples = 4000,
                             .q0 = q0,
                             .key = {0, 42},
                             .target_accept = 0.8,
                             .step_size = 1.0,
                             .max_depth = 10,
                             .n_leapfrog = 10,
                             .adapt_metric = 1,
                             .metric = MX_METRIC_DIAG,
                             .logp_grad = f,
                             .target = t};
}

static mx_sampler *run_sampler(const mx_sampler_config *c, mx_status *st) {
  mx_sampler *s = NULL;
  *st = mx_sampler_new(c, &s);
  if (*st) return NULL;
  *st = mx_sampler_run(s);
  return s;
}

/* Column i of the draws, or a function of it (power 1 or 2). */
static double *column(const mx_sampler *s, int64_t n, int64_t d, int64_t i, int power) {
  double *x = malloc((size_t)n * sizeof(double));
  const double *dr = mx_sampler_draws(s);
  for (int64_t k = 0; k < n; k++) x[k] = power == 2 ? dr[k * d + i] * dr[k * d + i] : dr[k * d + i];
  return x;
}

/* Every coordinate's mean 0 and E[x^2] 1 within 4 standard errors. */
static void check_std_normal_moments(const char *what, const mx_sampler *s, int64_t n, int64_t d) {
  for (int64_t i = 0; i < d; i++) {
    double m, se, m2, se2;
    double *x = column(s, n, d, i, 1), *x2 = column(s, n, d, i, 2);
    mc_mean(x, n, &m, &se);
    mc_mean(x2, n, &m2, &se2);
    CHECK(fabs(m) < 4 * se, "%s: mean of x%lld = %g, 4 SE = %g", what, (long long)i, m, 4 * se);
    CHECK(fabs(m2 - 1.0) < 4 * se2, "%s: E[x%lld^2] = %g, 4 SE = %g", what, (long long)i, m2, 4 * se2);
    free(x), free(x2);
  }
}

static double mean_stat(const mx_sampler *s, int64_t from, int64_t n, int field) {
  const mx_sampler_stats *st = mx_sampler_stats_of(s);
  double sum = 0.0;
  for (int64_t i = from; i < from + n; i++)
    sum += field == 0 ? st[i].accept_stat : field == 1 ? st[i].divergent : field == 2 ? st[i].nan_energy : st[i].n_leapfrog;
  return sum / (double)n;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_nuts_normal(void) {
  double q0[5] = {1, -1, 0.5, 2, 0};
  target t = {.d = 5, .reject_above = INFINITY, .nan_above = INFINITY};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 5, q0, std_normal, &t);
  mx_status st;
  mx_sampler *s = run_sampler(&c, &st);
  CHECK(st == MX_OK, "nuts normal: %s", mx_last_error());
  if (st) return mx_sampler_free(s);
  check_std_normal_moments("nuts d=5", s, c.samples, 5);
  const mx_sampler_stats *ss = mx_sampler_stats_of(s);
  int bad = 0, div = 0;
  for (int64_t i = 0; i < c.warmup + c.samples; i++) {
    bad += ss[i].n_leapfrog < 1 || ss[i].tree_depth > c.max_depth || ss[i].n_leapfrog >= (2 << ss[i].tree_depth) ||
           !(ss[i].accept_stat >= 0 && ss[i].accept_stat <= 1) || !isfinite(ss[i].energy);
    div += i >= c.warmup && ss[i].divergent;
  }
  CHECK(bad == 0, "nuts normal: %d iterations with inconsistent stats", bad);
  CHECK(div == 0, "nuts normal: %d divergences after warmup", div);
  CHECK(ss[c.warmup].step_size == mx_sampler_step_size(s), "sampling uses the final step size");
  /* the adapted diagonal metric estimates the unit variances (last window: 500 draws, 4 SE of a variance ~ 0.25) */
  const double *inv = mx_sampler_inv_metric(s);
  for (int i = 0; i < 5; i++) CHECK(fabs(inv[i] - 1.0) < 0.3, "adapted inv_metric[%d] = %g", i, inv[i]);
  mx_sampler_free(s);
}

/* Dual averaging from iteration `from` (its start or last restart) to the end of warmup:
 * s-bar_t = sum_i (delta - a_i) / (t + t0) and x_t = mu - sqrt(t) s-bar_t / gamma, so the
 * mean acceptance (capped at 1) of those t iterations is exactly
 * delta - (t + t0) gamma (mu - x_t) / (t sqrt t), x_t the log step size of the next one. */
static void check_da_identity(const char *what, const mx_sampler *s, const mx_sampler_config *c, int64_t from, double mu) {
  const mx_sampler_stats *ss = mx_sampler_stats_of(s);
  int64_t n = c->warmup - 1 - from;
  double sum = 0.0;
  for (int64_t i = from; i < c->warmup - 1; i++) sum += fmin(ss[i].accept_stat, 1.0);
  double want = c->target_accept - ((double)n + 10.0) * 0.05 * (mu - log(ss[c->warmup - 1].step_size)) / ((double)n * sqrt((double)n));
  CHECK(fabs(sum / (double)n - want) < 1e-9, "%s: warmup mean acceptance %.12g, dual averaging's identity gives %.12g", what,
        sum / (double)n, want);
}

/* Dual averaging (no metric adaptation, so no restarts): s-bar_t = sum_i (delta - a_i) / (t + t0)
 * and x_t = mu - sqrt(t) s-bar_t / gamma, so the mean acceptance over the first t iterations is
 * exactly delta - (t + t0) gamma (mu - x_t) / (t sqrt t), which the stats let us check. Sampling
 * then runs at exp(x-bar), x-bar averaging the late iterates: its acceptance lies at delta up to
 * the spread of a(eps) over them (Stan's runs on Gaussians land 0 to +0.1 above delta). */
static void test_dual_averaging(void) {
  double q0[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
  double deltas[2] = {0.65, 0.9}, got[2];
  for (int k = 0; k < 2; k++) {
    target t = {.d = 5, .reject_above = INFINITY, .nan_above = INFINITY};
    mx_sampler_config c = config(MX_SAMPLER_NUTS, 5, q0, std_normal, &t);
    c.target_accept = deltas[k];
    c.adapt_metric = 0;
    mx_status st;
    mx_sampler *s = run_sampler(&c, &st);
    CHECK(st == MX_OK, "dual averaging: %s", mx_last_error());
    if (st) return mx_sampler_free(s);
    check_da_identity("nuts", s, &c, 0, log(10 * c.step_size));
    double warm = mean_stat(s, 0, c.warmup - 1, 0);
    CHECK(fabs(warm - deltas[k]) < 0.01, "delta %g: warmup mean acceptance %g", deltas[k], warm);
    got[k] = mean_stat(s, c.warmup, c.samples, 0);
    CHECK(got[k] > deltas[k] - 0.03 && got[k] < deltas[k] + 0.1, "delta %g: mean accept_stat over sampling %g", deltas[k],
          got[k]);
    mx_sampler_free(s);
  }
  CHECK(got[0] < got[1], "a higher target gives a higher acceptance: %g vs %g", got[0], got[1]);
}

static void test_dense_metric(void) {
  double q0[2] = {0.5, -0.5};
  target t = {.d = 2, .rho = 0.9};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 2, q0, corr_normal, &t);
  c.metric = MX_METRIC_DENSE;
  c.samples = 8000;
  mx_status st;
  mx_sampler *s = run_sampler(&c, &st);
  CHECK(st == MX_OK, "dense: %s", mx_last_error());
  if (st) return mx_sampler_free(s);
  int64_t n = c.samples;
  const double *dr = mx_sampler_draws(s);
  double *x0 = column(s, n, 2, 0, 1), *x1 = column(s, n, 2, 1, 1), *x01 = malloc((size_t)n * sizeof(double));
  for (int64_t k = 0; k < n; k++) x01[k] = dr[2 * k] * dr[2 * k + 1];
  double m, se, e0 = ess(x0, n), e1 = ess(x1, n);
  mc_mean(x0, n, &m, &se);
  CHECK(fabs(m) < 4 * se, "dense: mean x0 %g (4 SE %g)", m, 4 * se);
  mc_mean(x01, n, &m, &se);
  CHECK(fabs(m - 0.9) < 4 * se, "dense: E[x0 x1] %g (4 SE %g)", m, 4 * se);
  /* The last window (warmup 1000: iterations 450..949, 500 draws) estimates the covariance;
   * an entry's variance is (S_ii S_jj + S_ij^2) / n_eff, n_eff = 500 times the sampling
   * phase's ESS fraction (the same metric quality), plus Stan's shrinkage by n/(n+5). */
  double frac = fmin(e0, e1) / (double)n, neff = 500 * fmin(frac, 1.0);
  const double *inv = mx_sampler_inv_metric(s);
  double want[4] = {1, 0.9, 0.9, 1};
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      double sd = sqrt((want[i * 3] * want[j * 3] + want[i * 2 + j] * want[i * 2 + j]) / neff);
      double tol = 4 * sd + want[i * 2 + j] * 5.0 / 505.0;
      CHECK(fabs(inv[i * 2 + j] - want[i * 2 + j]) < tol, "dense metric [%d][%d] = %g, want %g +- %g", i, j,
            inv[i * 2 + j], want[i * 2 + j], tol);
    }
  CHECK(inv[1] == inv[2], "the dense metric is symmetric");
  /* with the right metric the correlated target is as easy as a standard normal: short trees */
  CHECK(mean_stat(s, c.warmup, n, 3) < 8, "dense: mean n_leapfrog %g", mean_stat(s, c.warmup, n, 3));
  free(x0), free(x1), free(x01);
  mx_sampler_free(s);
}

static void test_funnel(void) {
  double q0[3] = {0, 1, -1};
  target t = {.d = 3};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 3, q0, funnel, &t);
  mx_status st;
  mx_sampler *s = run_sampler(&c, &st);
  CHECK(st == MX_OK, "funnel: %s", mx_last_error());
  if (st) return mx_sampler_free(s);
  double div = mean_stat(s, c.warmup, c.samples, 1);
  CHECK(div > 0, "the funnel's neck produces divergences (fraction %g)", div);
  int finite = 1;
  for (int64_t k = 0; k < c.samples * 3; k++) finite &= isfinite(mx_sampler_draws(s)[k]);
  CHECK(finite, "funnel draws are finite");
  mx_sampler_free(s);
}

static void test_hmc_mala(void) {
  double q0[5] = {1, -1, 0.5, 2, 0};
  mx_sampler_algorithm algs[2] = {MX_SAMPLER_HMC, MX_SAMPLER_MALA};
  const char *names[2] = {"hmc", "mala"};
  for (int k = 0; k < 2; k++) {
    target t = {.d = 5, .reject_above = INFINITY, .nan_above = INFINITY};
    mx_sampler_config c = config(algs[k], 5, q0, std_normal, &t);
    c.n_leapfrog = 5;
    c.samples = k ? 20000 : 4000;
    mx_status st;
    mx_sampler *s = run_sampler(&c, &st);
    CHECK(st == MX_OK, "%s: %s", names[k], mx_last_error());
    if (st) return mx_sampler_free(s);
    check_std_normal_moments(names[k], s, c.samples, 5);
    const mx_sampler_stats *ss = mx_sampler_stats_of(s);
    CHECK(ss[c.warmup].n_leapfrog == (k ? 1 : 5) && ss[c.warmup].tree_depth == 0, "%s: stats n_leapfrog %d", names[k],
          ss[c.warmup].n_leapfrog);
    /* warmup 1000: the last window ends at 949, and dual averaging restarts at 950 */
    check_da_identity(names[k], s, &c, 950, log(10 * ss[950].step_size));
    /* a sanity bound only: sampling runs at exp(x-bar) of the 50 iterations since the restart */
    double a = mean_stat(s, c.warmup, c.samples, 0);
    CHECK(a > 0.6 && a < 0.95, "%s: dual averaging to 0.8 gives mean acceptance %g", names[k], a);
    mx_sampler_free(s);
  }
}

static void test_determinism(void) {
  double q0[3] = {0.3, -0.2, 1.0};
  target t = {.d = 3, .reject_above = INFINITY, .nan_above = INFINITY};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 3, q0, std_normal, &t);
  c.warmup = 200, c.samples = 300;
  mx_status st1, st2, st3;
  mx_sampler *a = run_sampler(&c, &st1), *b = run_sampler(&c, &st2);
  c.key[1] = 43;
  mx_sampler *x = run_sampler(&c, &st3);
  CHECK(!st1 && !st2 && !st3, "determinism runs: %s", mx_last_error());
  if (!st1 && !st2 && !st3) {
    size_t nd = (size_t)c.samples * 3 * sizeof(double), ns = (size_t)(c.warmup + c.samples) * sizeof(mx_sampler_stats);
    CHECK(!memcmp(mx_sampler_draws(a), mx_sampler_draws(b), nd), "same key: bit-identical draws");
    CHECK(!memcmp(mx_sampler_stats_of(a), mx_sampler_stats_of(b), ns), "same key: identical stats");
    CHECK(memcmp(mx_sampler_draws(a), mx_sampler_draws(x), nd), "another key: other draws");
  }
  mx_sampler_free(a), mx_sampler_free(b), mx_sampler_free(x);
}

/* mx_sampler_position is the chain's last point: the last draw; with samples = 0 (warmup only) the
 * end of a warmup identical to the full run's. */
static void test_position(void) {
  double q0[3] = {0.3, -0.2, 1.0};
  target t = {.d = 3, .reject_above = INFINITY, .nan_above = INFINITY};
  mx_sampler_config c = config(MX_SAMPLER_HMC, 3, q0, std_normal, &t);
  c.warmup = 0, c.samples = 3, c.n_leapfrog = 3, c.step_size = 0.5;
  mx_status st1, st2, st3;
  mx_sampler *a = run_sampler(&c, &st1);
  c.warmup = 300, c.samples = 0, c.adapt_metric = 0;
  mx_sampler *w = run_sampler(&c, &st2);
  c.samples = 1;
  mx_sampler *full = run_sampler(&c, &st3);
  CHECK(!st1 && !st2 && !st3, "position runs: %s", mx_last_error());
  if (!st1 && !st2 && !st3) {
    CHECK(!memcmp(mx_sampler_position(a), mx_sampler_draws(a) + 2 * 3, 3 * sizeof(double)), "position: the last draw");
    CHECK(!memcmp(mx_sampler_stats_of(w), mx_sampler_stats_of(full), 300 * sizeof(mx_sampler_stats)) &&
              mx_sampler_step_size(w) == mx_sampler_step_size(full) && mx_sampler_iterations_done(w) == 300,
          "samples = 0: the full run's warmup");
    const double *p = mx_sampler_position(w);
    CHECK(isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]) && memcmp(p, q0, sizeof q0), "samples = 0: the chain moved");
  }
  mx_sampler_free(a), mx_sampler_free(w), mx_sampler_free(full);
}

static mx_status run_task(void *ctx) { return mx_sampler_run(ctx); }
static void free_task(void *ctx) { mx_sampler_free(ctx); }

static void test_cancel(void) {
  double q0[4] = {0.1, 0.2, 0.3, 0.4};
  target t = {.d = 4, .reject_above = INFINITY, .nan_above = INFINITY, .slow_ns = 20000};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 4, q0, std_normal, &t);
  c.samples = 1000000; /* far more than runs before the cancel */
  mx_memory_stats m0, m1;
  mx_memory_stats_get(&m0);
  for (int abandon = 0; abandon < 2; abandon++) {
    mx_sampler *s = NULL;
    mx_status st = mx_sampler_new(&c, &s);
    CHECK(st == MX_OK, "cancel: new: %s", mx_last_error());
    if (st) return;
    mx_memory_stats_get(&m1);
    CHECK(m1.active_bytes >= m0.active_bytes + c.samples * 4 * 8, "the sampler's memory is counted by mx_memory_stats");
    mx_task *task;
    if ((st = mx_task_start(run_task, s, free_task, &task))) {
      CHECK(0, "task start: %s", mx_last_error());
      return;
    }
    while (mx_sampler_iterations_done(s) < 3) nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (abandon) {
      mx_task_abandon(task); /* the task's cancel flag; the sampler is freed when the run ends */
    } else {
      mx_sampler_cancel(s);
      st = mx_task_finish(task);
      CHECK(st == MX_ECANCELLED, "a cancelled run returns MX_ECANCELLED, got %d (%s)", st, mx_last_error());
    }
    for (int i = 0; i < 5000; i++) {
      mx_memory_stats_get(&m1);
      if (m1.active_bytes <= m0.active_bytes) break;
      nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    CHECK(m1.active_bytes <= m0.active_bytes, "%s run frees its memory: %lld -> %lld bytes", abandon ? "an abandoned" : "a cancelled",
          (long long)m0.active_bytes, (long long)m1.active_bytes);
  }
}

/* A target that fails where q[0] > 1 rejects those points: the chain stays below, with
 * the truncated normal's mean -phi(1)/Phi(1) in x0; NaN densities count as nan_energy. */
static void test_rejecting_target(void) {
  double q0[2] = {0.0, 0.0};
  target t = {.d = 2, .reject_above = 1.0, .nan_above = INFINITY};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 2, q0, std_normal, &t);
  c.samples = 8000;
  mx_status st;
  mx_sampler *s = run_sampler(&c, &st);
  CHECK(st == MX_OK, "rejecting target: %s", mx_last_error());
  if (st) return mx_sampler_free(s);
  double *x0 = column(s, c.samples, 2, 0, 1), mx = -INFINITY, m, se;
  for (int64_t k = 0; k < c.samples; k++) mx = fmax(mx, x0[k]);
  CHECK(mx <= 1.0, "no draw where the target fails: max x0 %g", mx);
  mc_mean(x0, c.samples, &m, &se);
  double want = -0.24197072451914337 / 0.8413447460685429;
  CHECK(fabs(m - want) < 4 * se, "truncated mean %g, want %g (4 SE %g)", m, want, 4 * se);
  CHECK(mean_stat(s, c.warmup, c.samples, 1) > 0, "rejected points count as divergences");
  CHECK(mean_stat(s, 0, c.warmup + c.samples, 2) == 0, "and not as NaN energies");
  free(x0);
  mx_sampler_free(s);

  t.reject_above = INFINITY, t.nan_above = 1.0;
  s = run_sampler(&c, &st);
  CHECK(st == MX_OK, "nan target: %s", mx_last_error());
  if (st) return mx_sampler_free(s);
  CHECK(mean_stat(s, c.warmup, c.samples, 2) > 0, "a NaN density is reported as nan_energy");
  x0 = column(s, c.samples, 2, 0, 1);
  mx = -INFINITY;
  for (int64_t k = 0; k < c.samples; k++) mx = fmax(mx, x0[k]);
  CHECK(mx <= 1.0, "no draw where the density is NaN: max x0 %g", mx);
  free(x0);
  mx_sampler_free(s);

  /* at the start, a failure or a NaN is an error naming the start */
  q0[0] = 2.0;
  s = run_sampler(&c, &st);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "NaN at the starting point"), "nan at start: %s", mx_last_error());
  mx_sampler_free(s);
  t.nan_above = INFINITY, t.reject_above = 1.0;
  s = run_sampler(&c, &st);
  CHECK(st == MX_ECOMPUTE && strstr(mx_last_error(), "fails at the starting point") && strstr(mx_last_error(), "not positive definite"),
        "failure at start: %s", mx_last_error());
  mx_sampler_free(s);
}

static void test_config_errors(void) {
  double q0[2] = {0, 0}, bad_inv[4] = {1, 0.5, 0.4, 1}, npd[4] = {1, 2, 2, 1};
  target t = {.d = 2};
  mx_sampler *s = NULL;
  struct {
    const char *field, *msg;
    mx_sampler_config c;
  } cases[8];
  for (int i = 0; i < 8; i++) cases[i].c = config(MX_SAMPLER_NUTS, 2, q0, corr_normal, &t);
  cases[0].field = "d", cases[0].msg = "d must lie", cases[0].c.d = 0;
  cases[1].field = "target_accept", cases[1].msg = "target_accept must lie in (0, 1)", cases[1].c.target_accept = 1.0;
  cases[2].field = "max_depth", cases[2].msg = "max_depth must lie in 1..30", cases[2].c.max_depth = 0;
  cases[3].field = "step_size", cases[3].msg = "step_size must be a positive", cases[3].c.step_size = -1;
  cases[4].field = "dense asym", cases[4].msg = "not symmetric", cases[4].c.metric = MX_METRIC_DENSE, cases[4].c.inv_metric = bad_inv;
  cases[5].field = "dense npd", cases[5].msg = "not positive definite", cases[5].c.metric = MX_METRIC_DENSE, cases[5].c.inv_metric = npd;
  cases[6].field = "n_leapfrog", cases[6].msg = "n_leapfrog must be", cases[6].c.algorithm = MX_SAMPLER_HMC, cases[6].c.n_leapfrog = 0;
  cases[7].field = "samples", cases[7].msg = "samples must be >= 0", cases[7].c.samples = -1;
  for (int i = 0; i < 8; i++) {
    mx_status st = mx_sampler_new(&cases[i].c, &s);
    CHECK(st == MX_EINVAL && strstr(mx_last_error(), cases[i].msg) && strstr(mx_last_error(), "[sampler]"), "%s: %s",
          cases[i].field, mx_last_error());
    CHECK(s == NULL, "no sampler on error");
  }
}

/* ---- the tape target: -|q|^2/2 and its gradient, compiled ----------------------------- */

static mx_tape *normal_tape(int64_t d, mx_dtype t) {
  int64_t shape[1] = {d};
  mx_array *ph = NULL, *x = NULL, *sq = NULL, *sum = NULL, *half = NULL, *lp = NULL, *one = NULL, *g = NULL;
  mx_tape *tape = NULL;
  if (mx_placeholder(t, 1, shape, &ph) || mx_trace_input(ph, &x) || mx_binary(MX_OP_MULTIPLY, x, x, &sq) ||
      mx_reduce(MX_OP_SUM, sq, NULL, -1, 0, &sum) || mx_full(t, 0, NULL, -0.5, &half) ||
      mx_binary(MX_OP_MULTIPLY, sum, half, &lp) || mx_full(t, 0, NULL, 1.0, &one) || mx_vjp(&lp, &one, 1, &x, 1, &g)) {
    printf("building the tape: %s\n", mx_last_error());
    exit(2);
  }
  mx_array *outs[2] = {lp, g};
  if (mx_tape_capture(&ph, 1, outs, 2, &tape)) {
    printf("capture: %s\n", mx_last_error());
    exit(2);
  }
  mx_array *all[] = {ph, x, sq, sum, half, lp, one, g};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
  return tape;
}

static mx_status run_engine(void *ctx) { return mx_sampler_run(ctx); }

static void test_tape_target(void) {
  mx_tape *tape = normal_tape(3, MX_F64), *wrong = normal_tape(3, MX_F32);
  CHECK(mx_sampler_check_tape(tape, 3) == MX_OK, "a value_and_grad tape passes: %s", mx_last_error());
  mx_status st = mx_sampler_check_tape(tape, 4);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "must map (f64[4])") && strstr(mx_last_error(), "it maps (f64[3]) to (f64[], f64[3])"),
        "wrong d: %s", mx_last_error());
  st = mx_sampler_check_tape(wrong, 3);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "it maps (f32[3]) to (f32[], f32[3])"), "f32 tape: %s", mx_last_error());
  double q0[3] = {0.5, -0.3, 1.2};
  target t = {.d = 3, .reject_above = INFINITY, .nan_above = INFINITY};
  mx_sampler_config c = config(MX_SAMPLER_NUTS, 3, q0, mx_tape_logp_grad, tape);
  c.warmup = 300, c.samples = 2000;
  mx_sampler *a = NULL, *b = NULL;
  st = mx_sampler_new(&c, &a);
  if (!st) st = mx_run_engine(run_engine, a);
  CHECK(st == MX_OK, "tape target: %s", mx_last_error());
  c.logp_grad = std_normal, c.target = &t;
  b = run_sampler(&c, &st);
  if (a && b && !st) {
    check_std_normal_moments("tape", a, c.samples, 3);
    /* the same density by hand: the same trajectories up to the rounding of lp's sum */
    double diff = 0.0;
    for (int64_t k = 0; k < 3 * 50; k++) diff = fmax(diff, fabs(mx_sampler_draws(a)[k] - mx_sampler_draws(b)[k]));
    CHECK(diff < 1e-9, "tape and hand-written targets give the same first 50 draws (max diff %g)", diff);
  }
  mx_sampler_free(a), mx_sampler_free(b);
  mx_tape_release(tape), mx_tape_release(wrong);
}

int main(void) {
  test_nuts_normal();
  test_dual_averaging();
  test_dense_metric();
  test_funnel();
  test_hmc_mala();
  test_determinism();
  test_position();
  test_cancel();
  test_rejecting_target();
  test_config_errors();
  test_tape_target();
  return test_summary("test_sampler: ");
}
