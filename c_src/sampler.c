/* sampler.c: NUTS, static HMC and MALA on a log density with gradient, with Stan's
 * warmup (step-size heuristic, dual averaging, windowed metric adaptation), all in C.
 *
 * A port of lib/gen/inference/nuts.ex and adapt.ex, operation for operation (same sums
 * in the same order, same random stream), so that on the same target and key the draws
 * are those of the Elixir sampler:
 *   - multinomial NUTS: multinomial sampling inside a subtree, biased progressive
 *     sampling between the old trajectory and the new subtree;
 *   - generalized U-turn criterion with p# = M^-1 p, checked on each merge and on each
 *     half extended by the first point of the other half (Stan >= 2.2x);
 *   - divergence when H - H0 > 1000 or lp / grad is infinite or the target rejects the
 *     point; a NaN lp or gradient stops the same way but is reported as nan_energy.
 * Randomness: iteration i reads key_i = fold_in(key, i) (the step-size searches read
 * fold_in(key, -1) and fold_in(key, -2 - i)); within it, the n-th request for randomness
 * reads fold_in(key_i, n): a block of 64 uniforms (Mx.Random.uniform f64, consumed in
 * order) or one momentum's normals (Mx.Random.normal f64), exactly as nuts.ex does.
 * Beyond nuts.ex, on the same leapfrog, target and warmup code: static HMC and MALA
 * transitions, and a dense metric (M^-1 = the adapted covariance, p = L^-T z). */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx.h"
#include "prim/random.h"

#define MAX_DELTA_H 1000.0
#define TWO_PI 6.283185307179586
#define UNIFORM_BLOCK 64
#define MAX_DEPTH_LIMIT 30

enum { PT_VALID = 0, PT_DIVERGENT, PT_NAN };

/* A phase point; q, p, g point into the sampler's workspace. */
typedef struct {
  double *q, *p, *g;
  double lp;
} point;

/* A subtree: its draw, log weight, summed momentum and the momenta (and p#) at its ends,
 * "beg" adjoining the trajectory it extends, "end" the new outer end. */
typedef struct {
  point propose;
  double log_w;
  double *rho, *p_beg, *p_end, *s_beg, *s_end;
} tree;

typedef struct {
  uint32_t k[2];  /* the iteration's key */
  uint64_t n;     /* requests made so far */
  uint32_t bk[2]; /* the current uniform block's key */
  int pos;        /* next uniform of the block; UNIFORM_BLOCK: none left */
} rng;

/* Dual averaging (adapt.ex DualAveraging) with Stan's constants. */
typedef struct {
  double mu, delta, gamma, t0, kappa, s_bar, x, x_bar;
  int64_t counter;
} dual_avg;

/* Stan's windows (adapt.ex Windows) and the Welford accumulator of the current window. */
typedef struct {
  int64_t num_warmup, init_buffer, term_buffer, base_window, counter, window_size, next_window;
  int64_t n;         /* draws in the accumulator */
  double *mean, *m2; /* m2: d (diag) or d x d (dense) */
} windows;

struct mx_sampler {
  mx_sampler_config cfg; /* pointers in it are not used after mx_sampler_new */
  int64_t d;
  mx_buffer *mem; /* everything below lives in it */
  double *inv;    /* inverse metric: d or d x d */
  double *chol;   /* dense: lower Cholesky factor of inv (momentum p = L^-T z) */
  point z;        /* the chain's current point */
  point left, right, sample, zb, ztmp;
  double *s_left, *s_right, *rho, *tmp1, *tmp2, *normals;
  tree *trees; /* trees[0]: the subtree grow builds; trees[k]: build(k)'s second half */
  tree tree_store[MAX_DEPTH_LIMIT + 1];
  double h0;
  /* per-transition accumulators */
  int64_t n_leapfrog;
  double sum_metro;
  int divergent, nan_energy;
  windows win;
  double step_size;
  double *draws;
  mx_sampler_stats *stats;
  _Atomic int64_t done;
  _Atomic int32_t cancel;
};

/* ---- randomness ------------------------------------------------------------------- */

/* Mx.Random.fold_in(key, data): a subkey from the key's last block, then data as its counter. */
static void fold_in(const uint32_t key[2], uint64_t data, uint32_t out[2]) {
  uint32_t dom[2];
  mx_threefry2x32(key[0], key[1], 0xFFFFFFFFu, 0xFFFFFFFFu, dom);
  mx_threefry2x32(dom[0], dom[1], (uint32_t)data, (uint32_t)(data >> 32), out);
}

static void rng_init(rng *r, const uint32_t key[2], uint64_t data) {
  fold_in(key, data, r->k);
  r->n = 0;
  r->pos = UNIFORM_BLOCK;
}

static double uniform(rng *r) {
  if (r->pos >= UNIFORM_BLOCK) {
    fold_in(r->k, r->n++, r->bk);
    r->pos = 0;
  }
  return mx_u64_to_unit(mx_threefry_u64(r->bk[0], r->bk[1], (uint64_t)r->pos++));
}

/* d standard normals: Box-Muller on pairs of blocks, as the RANDOM_NORMAL f64 kernel. */
static void normals(rng *r, int64_t d, double *z) {
  uint32_t k[2];
  fold_in(r->k, r->n++, k);
  for (int64_t j = 0; 2 * j < d; j++) {
    uint64_t x1 = mx_threefry_u64(k[0], k[1], 2 * (uint64_t)j), x2 = mx_threefry_u64(k[0], k[1], 2 * (uint64_t)j + 1);
    double rad = sqrt(-2.0 * log(((double)(x1 >> 11) + 1.0) * 0x1p-53));
    double th = TWO_PI * mx_u64_to_unit(x2);
    z[2 * j] = rad * cos(th);
    if (2 * j + 1 < d) z[2 * j + 1] = rad * sin(th);
  }
}

/* ---- the metric ------------------------------------------------------------------- */

static int dense(const mx_sampler *s) { return s->cfg.metric == MX_METRIC_DENSE; }

/* Lower Cholesky factor of the d x d SPD a (row-major) into l; 0 if a is not positive definite. */
static int cholesky(const double *a, int64_t d, double *l) {
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j <= i; j++) {
      double sum = a[i * d + j];
      for (int64_t k = 0; k < j; k++) sum -= l[i * d + k] * l[j * d + k];
      if (i == j) {
        if (!(sum > 0) || !isfinite(sum)) return 0;
        l[i * d + i] = sqrt(sum);
      } else {
        l[i * d + j] = sum / l[j * d + j];
      }
    }
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = i + 1; j < d; j++) l[i * d + j] = 0.0;
  return 1;
}

/* p# = M^-1 p. */
static void sharp(const mx_sampler *s, const double *p, double *out) {
  int64_t d = s->d;
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) out[i] = p[i] * s->inv[i];
    return;
  }
  for (int64_t i = 0; i < d; i++) {
    double sum = 0.0;
    for (int64_t j = 0; j < d; j++) sum += s->inv[i * d + j] * p[j];
    out[i] = sum;
  }
}

static double dot(const double *a, const double *b, int64_t d) {
  double sum = 0.0;
  for (int64_t i = 0; i < d; i++) sum += a[i] * b[i];
  return sum;
}

/* H = -lp + p M^-1 p / 2 (nuts.ex hamiltonian: the diagonal sum is of (m p) p). */
static double hamiltonian(mx_sampler *s, const point *z) {
  double k = 0.0;
  if (!dense(s)) {
    for (int64_t i = 0; i < s->d; i++) k += s->inv[i] * z->p[i] * z->p[i];
  } else {
    sharp(s, z->p, s->tmp2);
    k = dot(z->p, s->tmp2, s->d);
  }
  return -z->lp + 0.5 * k;
}

/* p ~ N(0, M): p = z / sqrt(m) (diag); p = L^-T z with M^-1 = L L^T (dense). */
static void momentum(mx_sampler *s, rng *r, double *p) {
  int64_t d = s->d;
  normals(r, d, s->normals);
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) p[i] = s->normals[i] / sqrt(s->inv[i]);
    return;
  }
  for (int64_t i = d - 1; i >= 0; i--) {
    double sum = s->normals[i];
    for (int64_t j = i + 1; j < d; j++) sum -= s->chol[j * d + i] * p[j];
    p[i] = sum / s->chol[i * d + i];
  }
}

/* ---- the target ------------------------------------------------------------------- */

static int cancelled(const mx_sampler *s) { return mx_cancelled() || atomic_load(&s->cancel); }

static int all_finite(const double *x, int64_t d) {
  for (int64_t i = 0; i < d; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* lp and grad at z->q; *state PT_VALID, PT_DIVERGENT (infinite, or the target rejected
 * the point) or PT_NAN. Returns a status only for failures that end the run. */
static mx_status evaluate(mx_sampler *s, point *z, int *state) {
  if (cancelled(s)) return mx_error(MX_ECANCELLED, "[sampler] cancelled");
  mx_status st = s->cfg.logp_grad(s->cfg.target, z->q, &z->lp, z->g);
  if (st == MX_ECOMPUTE || st == MX_EINVAL) {
    *state = PT_DIVERGENT;
    return MX_OK;
  }
  if (st != MX_OK) return st;
  if (isnan(z->lp)) {
    *state = PT_NAN;
  } else if (!isfinite(z->lp)) {
    *state = PT_DIVERGENT;
  } else {
    int nan = 0, inf = 0;
    for (int64_t i = 0; i < s->d; i++) nan |= isnan(z->g[i]), inf |= isinf(z->g[i]);
    *state = nan ? PT_NAN : inf ? PT_DIVERGENT : PT_VALID;
  }
  return MX_OK;
}

/* One leapfrog step of signed size e, in place: p += e/2 grad, q += e M^-1 p, p += e/2 grad.
 * A momentum or position that overflows is a point of infinite energy (a divergence). */
static mx_status leapfrog(mx_sampler *s, point *z, double e, int *state) {
  int64_t d = s->d;
  double h = e / 2;
  for (int64_t i = 0; i < d; i++) z->p[i] = z->p[i] + h * z->g[i];
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) z->q[i] = z->q[i] + e * s->inv[i] * z->p[i];
  } else {
    sharp(s, z->p, s->tmp2);
    for (int64_t i = 0; i < d; i++) z->q[i] = z->q[i] + e * s->tmp2[i];
  }
  if (!all_finite(z->p, d) || !all_finite(z->q, d)) {
    *state = PT_DIVERGENT;
    return MX_OK;
  }
  mx_status st = evaluate(s, z, state);
  if (st || *state != PT_VALID) return st;
  for (int64_t i = 0; i < d; i++) z->p[i] = z->p[i] + h * z->g[i];
  if (!all_finite(z->p, d)) *state = PT_DIVERGENT;
  return MX_OK;
}

static void copy_point(mx_sampler *s, point *dst, const point *src) {
  size_t n = (size_t)s->d * sizeof(double);
  memcpy(dst->q, src->q, n);
  memcpy(dst->p, src->p, n);
  memcpy(dst->g, src->g, n);
  dst->lp = src->lp;
}

static void copy_vec(double *dst, const double *src, int64_t d) { memcpy(dst, src, (size_t)d * sizeof(double)); }

static void add_vec(const double *a, const double *b, double *out, int64_t d) {
  for (int64_t i = 0; i < d; i++) out[i] = a[i] + b[i];
}

static double log_add(double a, double b) { return a > b ? a + log(1.0 + exp(b - a)) : b + log(1.0 + exp(a - b)); }

/* No U-turn yet: both ends still move along the summed momentum. */
static int uturn_ok(const double *s_minus, const double *s_plus, const double *rho, int64_t d) {
  return dot(s_plus, rho, d) > 0 && dot(s_minus, rho, d) > 0;
}

/* ---- NUTS ------------------------------------------------------------------------- */

/* A subtree of 2^depth leapfrogs of signed size e from s->zb (left at its last point) into t;
 * *ok: valid and without a U-turn inside. */
static mx_status build(mx_sampler *s, int depth, double e, tree *t, rng *r, int *ok) {
  int64_t d = s->d;
  *ok = 0;
  if (depth == 0) {
    int state;
    mx_status st = leapfrog(s, &s->zb, e, &state);
    if (st) return st;
    s->n_leapfrog++;
    if (state == PT_DIVERGENT) {
      s->divergent = 1;
      return MX_OK;
    }
    if (state == PT_NAN) { /* stops as a divergence, but the cause is a NaN in the model */
      s->nan_energy = 1;
      return MX_OK;
    }
    double dh = s->h0 - hamiltonian(s, &s->zb);
    s->sum_metro += dh > 0 ? 1.0 : exp(dh);
    if (-dh > MAX_DELTA_H) {
      s->divergent = 1;
      return MX_OK;
    }
    copy_point(s, &t->propose, &s->zb);
    t->log_w = dh;
    copy_vec(t->rho, s->zb.p, d);
    copy_vec(t->p_beg, s->zb.p, d);
    copy_vec(t->p_end, s->zb.p, d);
    sharp(s, s->zb.p, t->s_beg);
    copy_vec(t->s_end, t->s_beg, d);
    *ok = 1;
    return MX_OK;
  }
  int ok1, ok2;
  mx_status st = build(s, depth - 1, e, t, r, &ok1);
  if (st || !ok1) return st;
  tree *t2 = &s->trees[depth];
  if ((st = build(s, depth - 1, e, t2, r, &ok2)) || !ok2) return st;
  double log_w = log_add(t->log_w, t2->log_w);
  /* Multinomial within the subtree: the second half with probability w2 / (w1 + w2). */
  if (t2->log_w > log_w || uniform(r) < exp(t2->log_w - log_w)) copy_point(s, &t->propose, &t2->propose);
  add_vec(t->rho, t2->rho, s->tmp1, d);
  int persist = uturn_ok(t->s_beg, t2->s_end, s->tmp1, d);
  add_vec(t->rho, t2->p_beg, s->tmp2, d);
  persist = persist && uturn_ok(t->s_beg, t2->s_beg, s->tmp2, d);
  add_vec(t2->rho, t->p_end, s->tmp2, d);
  persist = persist && uturn_ok(t->s_end, t2->s_end, s->tmp2, d);
  t->log_w = log_w;
  copy_vec(t->rho, s->tmp1, d);
  copy_vec(t->p_end, t2->p_end, d);
  copy_vec(t->s_end, t2->s_end, d);
  *ok = persist;
  return MX_OK;
}

static void reset_acc(mx_sampler *s) {
  s->n_leapfrog = 0;
  s->sum_metro = 0.0;
  s->divergent = s->nan_energy = 0;
}

static void fill_stats(mx_sampler *s, mx_sampler_stats *st, double eps, int depth, double accept, double energy) {
  st->step_size = eps;
  st->tree_depth = depth;
  st->n_leapfrog = (int32_t)s->n_leapfrog;
  st->divergent = (uint8_t)s->divergent;
  st->nan_energy = (uint8_t)s->nan_energy;
  st->accept_stat = accept;
  st->energy = energy;
}

/* One NUTS transition from s->z (its momentum ignored); s->z becomes the draw. */
static mx_status nuts_transition(mx_sampler *s, double eps, rng *r, mx_sampler_stats *out) {
  int64_t d = s->d;
  momentum(s, r, s->z.p);
  s->h0 = hamiltonian(s, &s->z);
  copy_point(s, &s->left, &s->z);
  copy_point(s, &s->right, &s->z);
  copy_point(s, &s->sample, &s->z);
  sharp(s, s->z.p, s->s_left);
  copy_vec(s->s_right, s->s_left, d);
  copy_vec(s->rho, s->z.p, d);
  double log_w = 0.0;
  reset_acc(s);
  int depth = 0;
  tree *t = &s->trees[0];
  while (depth < s->cfg.max_depth) {
    int forward = uniform(r) > 0.5, ok;
    copy_point(s, &s->zb, forward ? &s->right : &s->left);
    mx_status st = build(s, depth, forward ? eps : -eps, t, r, &ok);
    if (st) return st;
    if (!ok) break;
    /* Biased progressive sampling: the new subtree replaces the draw with probability min(1, w_new / w_old). */
    if (t->log_w > log_w || uniform(r) < exp(t->log_w - log_w)) copy_point(s, &s->sample, &t->propose);
    double *rho_new = s->tmp1, *ext = s->tmp2;
    add_vec(s->rho, t->rho, rho_new, d);
    int persist;
    if (forward) {
      persist = uturn_ok(s->s_left, t->s_end, rho_new, d);
      add_vec(s->rho, t->p_beg, ext, d);
      persist = persist && uturn_ok(s->s_left, t->s_beg, ext, d);
      add_vec(t->rho, s->right.p, ext, d);
      persist = persist && uturn_ok(s->s_right, t->s_end, ext, d);
      copy_point(s, &s->right, &s->zb);
      copy_vec(s->s_right, t->s_end, d);
    } else {
      persist = uturn_ok(t->s_end, s->s_right, rho_new, d);
      add_vec(s->rho, t->p_beg, ext, d);
      persist = persist && uturn_ok(t->s_beg, s->s_right, ext, d);
      add_vec(t->rho, s->left.p, ext, d);
      persist = persist && uturn_ok(t->s_end, s->s_left, ext, d);
      copy_point(s, &s->left, &s->zb);
      copy_vec(s->s_left, t->s_end, d);
    }
    copy_vec(s->rho, rho_new, d);
    log_w = log_add(log_w, t->log_w);
    depth++;
    if (!persist) break;
  }
  copy_point(s, &s->z, &s->sample);
  fill_stats(s, out, eps, depth, s->sum_metro / (double)s->n_leapfrog, hamiltonian(s, &s->z));
  return MX_OK;
}

/* ---- static HMC and MALA ------------------------------------------------------------ */

/* n leapfrogs from a fresh momentum, accepted with probability min(1, exp(H0 - H)). MALA is
 * the case n = 1: its proposal q + (e^2/2) M^-1 grad + e M^-1/2 z, with the Langevin MH ratio. */
static mx_status hmc_transition(mx_sampler *s, double eps, int n, rng *r, mx_sampler_stats *out) {
  momentum(s, r, s->z.p);
  double h0 = hamiltonian(s, &s->z);
  copy_point(s, &s->zb, &s->z);
  reset_acc(s);
  int state = PT_VALID;
  for (int k = 0; k < n && state == PT_VALID; k++) {
    mx_status st = leapfrog(s, &s->zb, eps, &state);
    if (st) return st;
    s->n_leapfrog++;
  }
  double accept = 0.0, h = INFINITY;
  if (state == PT_VALID) {
    h = hamiltonian(s, &s->zb);
    double dh = h0 - h;
    accept = dh > 0 ? 1.0 : exp(dh);
    if (-dh > MAX_DELTA_H) s->divergent = 1;
  } else if (state == PT_NAN) {
    s->nan_energy = 1;
  } else {
    s->divergent = 1;
  }
  int take = uniform(r) < accept;
  if (take) copy_point(s, &s->z, &s->zb);
  fill_stats(s, out, eps, 0, accept, take ? h : h0);
  return MX_OK;
}

static mx_status transition(mx_sampler *s, double eps, rng *r, mx_sampler_stats *out) {
  switch (s->cfg.algorithm) {
  case MX_SAMPLER_NUTS: return nuts_transition(s, eps, r, out);
  case MX_SAMPLER_HMC: return hmc_transition(s, eps, s->cfg.n_leapfrog, r, out);
  default: return hmc_transition(s, eps, 1, r, out);
  }
}

/* ---- warmup: Stan's step-size heuristic, dual averaging, windows ---------------------- */

/* H0 - H after one leapfrog of size eps from s->z with a fresh momentum; -1e300 when invalid. */
static mx_status one_step_dh(mx_sampler *s, double eps, rng *r, double *dh) {
  copy_point(s, &s->ztmp, &s->z);
  momentum(s, r, s->ztmp.p);
  double h0 = hamiltonian(s, &s->ztmp);
  int state;
  mx_status st = leapfrog(s, &s->ztmp, eps, &state);
  if (st) return st;
  double h = state == PT_VALID ? hamiltonian(s, &s->ztmp) : INFINITY;
  *dh = isfinite(h) ? h0 - h : -1.0e300;
  return MX_OK;
}

/* Stan's init_stepsize: double or halve eps until one leapfrog's acceptance crosses 0.8. */
static mx_status init_step_size(mx_sampler *s, double eps, rng *r, double *out) {
  const double log08 = log(0.8);
  double dh;
  mx_status st = one_step_dh(s, eps, r, &dh);
  if (st) return st;
  int dir = dh > log08 ? 1 : -1;
  for (;;) {
    if ((st = one_step_dh(s, eps, r, &dh))) return st;
    if ((dir == 1 && !(dh > log08)) || (dir == -1 && !(dh < log08))) break;
    eps = dir == 1 ? eps * 2 : eps * 0.5;
    if (eps > 1.0e7)
      return mx_error(MX_EINVAL, "[sampler] the step-size search diverged (step size > 1e7): the posterior looks improper; "
                                 "check the log density");
    if (eps < 1.0e-300)
      return mx_error(MX_EINVAL, "[sampler] no step size gives a finite leapfrog step from the current point; "
                                 "check that the gradient is finite there");
  }
  *out = eps;
  return MX_OK;
}

static void da_start(dual_avg *da, double eps0, double delta, double eps) {
  *da = (dual_avg){.mu = log(10 * eps0), .delta = delta, .gamma = 0.05, .t0 = 10.0, .kappa = 0.75, .x = log(eps)};
}

static void da_restart(dual_avg *da, double eps) {
  da->mu = log(10 * eps);
  da->counter = 0;
  da->s_bar = 0.0;
  da->x = log(eps);
  da->x_bar = 0.0;
}

/* adapt.ex learn_step_size: the acceptance capped at 1, NaN counting as 0. */
static void da_learn(dual_avg *da, double accept) {
  double a = isnan(accept) ? 0.0 : fmin(accept, 1.0);
  int64_t t = da->counter + 1;
  double eta = 1.0 / ((double)t + da->t0);
  da->s_bar = (1.0 - eta) * da->s_bar + eta * (da->delta - a);
  da->x = da->mu - da->s_bar * sqrt((double)t) / da->gamma;
  double x_eta = pow((double)t, -da->kappa);
  da->x_bar = (1.0 - x_eta) * da->x_bar + x_eta * da->x;
  da->counter = t;
}

static double da_final(const dual_avg *da) { return da->counter == 0 ? exp(da->x) : exp(da->x_bar); }

static void windows_init(windows *w, int64_t n) {
  int64_t init = 75, term = 50, base = 25;
  if (n < 20) { /* too short to adapt a metric: the windows never open */
    init = n, term = 0, base = 0;
  } else if (init + base + term > n) {
    init = (int64_t)(0.15 * (double)n);
    term = (int64_t)(0.1 * (double)n);
    base = n - (init + term);
  }
  w->num_warmup = n;
  w->init_buffer = init;
  w->term_buffer = term;
  w->base_window = base;
  w->counter = 0;
  w->window_size = base;
  w->next_window = base == 0 ? -1 : init + base - 1;
  w->n = 0;
}

static void welford_add(mx_sampler *s, const double *x) {
  windows *w = &s->win;
  int64_t d = s->d;
  if (w->n == 0) {
    copy_vec(w->mean, x, d);
    memset(w->m2, 0, (size_t)(dense(s) ? d * d : d) * sizeof(double));
    w->n = 1;
    return;
  }
  int64_t n = ++w->n;
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) {
      double delta = x[i] - w->mean[i];
      w->mean[i] = w->mean[i] + delta / (double)n;
      w->m2[i] = w->m2[i] + delta * (x[i] - w->mean[i]);
    }
    return;
  }
  double *delta = s->tmp1;
  for (int64_t i = 0; i < d; i++) {
    delta[i] = x[i] - w->mean[i];
    w->mean[i] = w->mean[i] + delta[i] / (double)n;
  }
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) w->m2[i * d + j] += (x[i] - w->mean[i]) * delta[j];
}

/* The window's regularized (co)variances as the new inverse metric, as Stan shrinks them:
 * (n/(n+5)) var + 1e-3 (5/(n+5)) on the diagonal. */
static mx_status set_metric_from_window(mx_sampler *s) {
  windows *w = &s->win;
  int64_t d = s->d, n = w->n;
  if (n < 2) return mx_error(MX_EINVAL, "[sampler] a metric window holds %lld draws; it needs at least 2", (long long)n);
  double a = (double)n / ((double)n + 5.0), b = 1.0e-3 * (5.0 / ((double)n + 5.0));
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) s->inv[i] = a * (w->m2[i] / (double)(n - 1)) + b;
  } else {
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++) {
        double c = 0.5 * (w->m2[i * d + j] + w->m2[j * d + i]) / (double)(n - 1);
        s->inv[i * d + j] = a * c + (i == j ? b : 0.0);
      }
    if (!cholesky(s->inv, d, s->chol))
      return mx_error(MX_ECOMPUTE, "[sampler] the adapted dense metric is not positive definite (a window of %lld draws)",
                      (long long)n);
  }
  if (!all_finite(s->inv, dense(s) ? d * d : d))
    return mx_error(MX_ECOMPUTE, "[sampler] the adapted metric is not finite: the warmup draws diverged");
  return MX_OK;
}

static void next_window(windows *w) {
  int64_t last = w->num_warmup - w->term_buffer - 1;
  if (w->next_window == last) return;
  int64_t size = w->window_size * 2, next = w->counter + size;
  /* A window that would leave less than twice its size before the terminal buffer absorbs the rest. */
  if (next != last && next + 2 * size >= w->num_warmup - w->term_buffer) next = last;
  w->window_size = size;
  w->next_window = next;
}

/* adapt.ex learn_variance: feeds warmup iteration counter's draw; *updated at a window's end. */
static mx_status learn_variance(mx_sampler *s, const double *q, int *updated) {
  windows *w = &s->win;
  int64_t c = w->counter;
  *updated = 0;
  if (c >= w->init_buffer && c < w->num_warmup - w->term_buffer && c != w->num_warmup) welford_add(s, q);
  mx_status st = MX_OK;
  if (c == w->next_window && c != w->num_warmup && w->base_window > 0) {
    next_window(w);
    st = set_metric_from_window(s);
    w->n = 0;
    *updated = 1;
  }
  w->counter = c + 1;
  return st;
}

/* ---- the run ------------------------------------------------------------------------ */

static mx_status iteration(mx_sampler *s, int64_t i, double eps, mx_sampler_stats *st) {
  rng r;
  rng_init(&r, s->cfg.key, (uint64_t)i);
  mx_status status = transition(s, eps, &r, st);
  if (status) return status;
  if (s->cfg.on_iteration) s->cfg.on_iteration(s->cfg.iteration_ctx, i, st);
  atomic_store(&s->done, i + 1);
  return MX_OK;
}

mx_status mx_sampler_run(mx_sampler *s) {
  mx_status st = s->cfg.logp_grad(s->cfg.target, s->z.q, &s->z.lp, s->z.g);
  if (st) { /* unlike a proposal, a failure at the start is the model's, and ends the run */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mx_last_error());
    return mx_error(st, "[sampler] the log density fails at the starting point: %s", msg);
  }
  int nan = isnan(s->z.lp), finite = isfinite(s->z.lp);
  for (int64_t i = 0; i < s->d; i++) nan |= isnan(s->z.g[i]), finite &= isfinite(s->z.g[i]);
  if (nan)
    return mx_error(MX_EINVAL, "[sampler] the log density or its gradient is NaN at the starting point; check the model's "
                               "parameters there");
  if (!finite)
    return mx_error(MX_EINVAL, "[sampler] the log density or its gradient is not finite at the starting point; start "
                               "where the density is finite");
  int64_t warmup = s->cfg.warmup, samples = s->cfg.samples, d = s->d;
  double eps0 = s->cfg.step_size, eps = eps0;
  rng r;
  if (warmup > 0) {
    rng_init(&r, s->cfg.key, UINT64_MAX); /* fold_in(key, -1) */
    if ((st = init_step_size(s, eps0, &r, &eps))) return st;
  }
  dual_avg da;
  da_start(&da, eps0, s->cfg.target_accept, eps);
  windows_init(&s->win, warmup);
  for (int64_t i = 0; i < warmup; i++) {
    mx_sampler_stats *stat = &s->stats[i];
    if ((st = iteration(s, i, exp(da.x), stat))) return st;
    da_learn(&da, stat->accept_stat);
    int updated = 0;
    if (s->cfg.adapt_metric && (st = learn_variance(s, s->z.q, &updated))) return st;
    if (updated) { /* a new metric: re-run the step-size heuristic and restart dual averaging around it */
      rng_init(&r, s->cfg.key, (uint64_t)(-2 - i));
      if ((st = init_step_size(s, exp(da.x), &r, &eps))) return st;
      da_restart(&da, eps);
    }
  }
  if (warmup > 0) eps = da_final(&da);
  s->step_size = eps;
  for (int64_t j = 0; j < samples; j++) {
    if ((st = iteration(s, warmup + j, eps, &s->stats[warmup + j]))) return st;
    copy_vec(s->draws + j * d, s->z.q, d);
  }
  return MX_OK;
}

/* ---- construction ------------------------------------------------------------------- */

static mx_status config_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static mx_status config_error(const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mx_error(MX_EINVAL, "[sampler] %s", msg);
}

static mx_status check_config(const mx_sampler_config *c) {
  if (c->algorithm != MX_SAMPLER_NUTS && c->algorithm != MX_SAMPLER_HMC && c->algorithm != MX_SAMPLER_MALA)
    return config_error("unknown algorithm %d (NUTS, HMC or MALA)", (int)c->algorithm);
  if (c->d < 1 || c->d > (1 << 24)) return config_error("d must lie in 1..2^24, got %lld", (long long)c->d);
  if (c->warmup < 0) return config_error("warmup must be >= 0, got %lld", (long long)c->warmup);
  if (c->samples < 0) return config_error("samples must be >= 0, got %lld", (long long)c->samples);
  if (!(c->target_accept > 0 && c->target_accept < 1))
    return config_error("target_accept must lie in (0, 1), got %g", c->target_accept);
  if (!(c->step_size > 0) || !isfinite(c->step_size))
    return config_error("step_size must be a positive finite number, got %g", c->step_size);
  if (c->algorithm == MX_SAMPLER_NUTS && (c->max_depth < 1 || c->max_depth > MAX_DEPTH_LIMIT))
    return config_error("max_depth must lie in 1..%d, got %d", MAX_DEPTH_LIMIT, c->max_depth);
  if (c->algorithm == MX_SAMPLER_HMC && c->n_leapfrog < 1)
    return config_error("n_leapfrog must be a positive integer, got %d", c->n_leapfrog);
  if (c->metric != MX_METRIC_DIAG && c->metric != MX_METRIC_DENSE)
    return config_error("unknown metric %d (diagonal or dense)", (int)c->metric);
  if (!c->q0) return config_error("q0 is missing");
  if (!c->logp_grad) return config_error("the target's log density function is missing");
  for (int64_t i = 0; i < c->d; i++)
    if (!isfinite(c->q0[i])) return config_error("q0[%lld] is %g; the starting point must be finite", (long long)i, c->q0[i]);
  return MX_OK;
}

/* The metric as given (or unit), validated; the dense one also factored. */
static mx_status init_metric(mx_sampler *s, const double *given) {
  int64_t d = s->d;
  if (!dense(s)) {
    for (int64_t i = 0; i < d; i++) {
      s->inv[i] = given ? given[i] : 1.0;
      if (!(s->inv[i] > 0) || !isfinite(s->inv[i]))
        return config_error("inv_metric[%lld] is %g; a diagonal inverse metric must be positive and finite", (long long)i,
                            s->inv[i]);
    }
    return MX_OK;
  }
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) s->inv[i * d + j] = given ? given[i * d + j] : (i == j ? 1.0 : 0.0);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < i; j++) {
      double a = s->inv[i * d + j], b = s->inv[j * d + i];
      if (!isfinite(a) || !(fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b))))
        return config_error("the dense inv_metric is not symmetric: [%lld][%lld] = %g but [%lld][%lld] = %g", (long long)i,
                            (long long)j, a, (long long)j, (long long)i, b);
    }
  if (!cholesky(s->inv, d, s->chol))
    return config_error("the dense inv_metric (%lld x %lld) is not positive definite", (long long)d, (long long)d);
  return MX_OK;
}

mx_status mx_sampler_new(const mx_sampler_config *cfg, mx_sampler **out) {
  *out = NULL;
  mx_status st = check_config(cfg);
  if (st) return st;
  int64_t d = cfg->d, iters = cfg->warmup + cfg->samples, depth = cfg->max_depth > 0 ? cfg->max_depth : 1;
  int64_t mdim = cfg->metric == MX_METRIC_DENSE ? d * d : d;
  /* doubles: metric and its factor, 6 points of 3d, 5 vectors, the normals, (depth + 1) trees of 8d,
   * Welford's mean and m2, the draws */
  int64_t draws_n;
  if (__builtin_mul_overflow(cfg->samples, d, &draws_n) || iters < cfg->samples || iters > (INT64_C(1) << 40))
    return config_error("samples x d is too large (%lld x %lld)", (long long)cfg->samples, (long long)d);
  int64_t ndouble = 2 * mdim + 18 * d + 5 * d + (d + 1) + (depth + 1) * 8 * d + d + mdim;
  size_t nbytes;
  if (__builtin_add_overflow((size_t)ndouble, (size_t)draws_n, &nbytes) || __builtin_mul_overflow(nbytes, sizeof(double), &nbytes) ||
      __builtin_add_overflow(nbytes, (size_t)iters * sizeof(mx_sampler_stats), &nbytes))
    return config_error("the sampler's memory overflows (d = %lld, %lld iterations)", (long long)d, (long long)iters);
  mx_sampler *s = calloc(1, sizeof *s);
  if (!s) return mx_error(MX_ENOMEM, "[sampler] out of memory");
  s->cfg = *cfg;
  s->d = d;
  if ((st = mx_buffer_alloc(nbytes, &s->mem))) {
    free(s);
    return st;
  }
  s->stats = s->mem->data; /* first: the buffer is 64-byte aligned */
  memset(s->stats, 0, (size_t)iters * sizeof(mx_sampler_stats)); /* padding too: runs compare bytewise */
  double *m = (double *)(s->stats + iters);
#define TAKE(n) (m += (n), m - (n))
  s->inv = TAKE(mdim);
  s->chol = TAKE(mdim);
  point *pts[] = {&s->z, &s->left, &s->right, &s->sample, &s->zb, &s->ztmp};
  for (size_t k = 0; k < sizeof pts / sizeof *pts; k++) pts[k]->q = TAKE(d), pts[k]->p = TAKE(d), pts[k]->g = TAKE(d);
  s->s_left = TAKE(d), s->s_right = TAKE(d), s->rho = TAKE(d), s->tmp1 = TAKE(d), s->tmp2 = TAKE(d);
  s->normals = TAKE(d + 1);
  s->trees = s->tree_store;
  for (int64_t k = 0; k <= depth; k++) {
    tree *t = &s->trees[k];
    t->propose.q = TAKE(d), t->propose.p = TAKE(d), t->propose.g = TAKE(d);
    t->rho = TAKE(d), t->p_beg = TAKE(d), t->p_end = TAKE(d), t->s_beg = TAKE(d), t->s_end = TAKE(d);
  }
  s->win.mean = TAKE(d);
  s->win.m2 = TAKE(mdim);
  s->draws = TAKE(draws_n);
#undef TAKE
  if ((st = init_metric(s, cfg->inv_metric))) {
    mx_sampler_free(s);
    return st;
  }
  copy_vec(s->z.q, cfg->q0, d);
  s->step_size = cfg->step_size;
  s->cfg.q0 = NULL;
  s->cfg.inv_metric = NULL;
  *out = s;
  return MX_OK;
}

void mx_sampler_cancel(mx_sampler *s) { atomic_store(&s->cancel, 1); }

void mx_sampler_free(mx_sampler *s) {
  if (!s) return;
  mx_buffer_release(s->mem);
  free(s);
}

int64_t mx_sampler_iterations_done(const mx_sampler *s) { return atomic_load(&((mx_sampler *)s)->done); }
const double *mx_sampler_draws(const mx_sampler *s) { return s->draws; }
const mx_sampler_stats *mx_sampler_stats_of(const mx_sampler *s) { return s->stats; }
double mx_sampler_step_size(const mx_sampler *s) { return s->step_size; }
const double *mx_sampler_inv_metric(const mx_sampler *s) { return s->inv; }
const double *mx_sampler_position(const mx_sampler *s) { return s->z.q; }

/* ---- the tape target ---------------------------------------------------------------- */

static int is_vector(const mx_array *a, int64_t d) { return a && a->dtype == MX_F64 && a->ndim == 1 && a->shape[0] == d; }

mx_status mx_sampler_check_tape(const mx_tape *t, int64_t d) {
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  const mx_array *in = mx_tape_input(t, 0), *lp = mx_tape_output(t, 0), *g = mx_tape_output(t, 1);
  int ok = info.n_inputs == 1 && info.n_outputs == 2 && is_vector(in, d) && lp && lp->dtype == MX_F64 && lp->ndim == 0 &&
           is_vector(g, d);
  if (ok) return MX_OK;
  char sig[256] = "", buf[64];
  size_t n = 0;
  for (int i = 0; i < info.n_inputs && n < sizeof sig - 80; i++)
    n += (size_t)snprintf(sig + n, sizeof sig - n, "%s%s", i ? ", " : "", mx_describe(mx_tape_input(t, i), buf, sizeof buf));
  n += (size_t)snprintf(sig + n, sizeof sig - n, ") to (");
  for (int j = 0; j < info.n_outputs && n < sizeof sig - 80; j++)
    n += (size_t)snprintf(sig + n, sizeof sig - n, "%s%s", j ? ", " : "", mx_describe(mx_tape_output(t, j), buf, sizeof buf));
  return mx_error(MX_EINVAL,
                  "[sampler] the target's tape must map (f64[%lld]) to (f64[] log density, f64[%lld] gradient), "
                  "as Mx.compile(Mx.value_and_grad(f)) traced on an f64[%lld] vector does; it maps (%s)",
                  (long long)d, (long long)d, (long long)d, sig);
}

mx_status mx_tape_logp_grad(void *tape, const double *q, double *lp, double *grad) {
  const void *in[1] = {q};
  void *out[2] = {lp, grad};
  return mx_tape_run_raw(tape, in, out);
}
