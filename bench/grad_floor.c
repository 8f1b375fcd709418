/* grad_floor.c: a hand-written C log density and gradient of the `simple` and
 * `eight_schools_nc` models, the floor that a compiled gradient tape is compared with
 * (bench/compile.exs runs it in the same session). The functions are the ones of
 * Bench.NutsModels.simple_densities/2 and eight_schools_nc_densities/2 (direct, up to
 * constants): compile.exs checks the values against the replayed tapes.
 *
 * Usage: grad_floor DATA_FILE [reps]
 *   DATA_FILE: three lines of numbers: simple's y, eight schools' y, eight schools' sigma.
 * Prints `kv <model>_ns=<median ns per gradient>` and `kv <model>_out=<lp,grad...>`. */
#include <math.h>
#include <string.h>

#include "bench_util.h"

#define MAXN 4096

static int read_line(FILE *f, double *v) {
  char line[65536];
  if (!fgets(line, sizeof line, f)) return 0;
  int n = 0;
  for (char *p = strtok(line, " \t\n"); p && n < MAXN; p = strtok(NULL, " \t\n")) v[n++] = atof(p);
  return n;
}

/* simple: mu ~ N(0, 10), sigma = exp(ls) ~ Exp(1) (+ Jacobian ls), y ~ N(mu, sigma). */
static double simple_lp(const double *y, int n, const double *q, double *g) {
  double mu = q[0], ls = q[1], sig = exp(ls), inv = 1 / sig, sz = 0, szz = 0;
  for (int i = 0; i < n; i++) {
    double z = (y[i] - mu) * inv;
    sz += z;
    szz += z * z;
  }
  g[0] = sz * inv - 0.01 * mu;
  g[1] = szz - n - sig + 1;
  return -0.5 * szz - ls * n - 0.005 * mu * mu - sig + ls;
}

/* eight_schools_nc: mu ~ N(0, 5), tau = exp(lt) ~ N+(0, 5) (+ lt), tt ~ N(0, 1),
 * y ~ N(mu + tau tt, sigma). q = (mu, lt, tt[8]). */
static double eight_lp(const double *y, const double *s, int n, const double *q, double *g) {
  double mu = q[0], lt = q[1], tau = exp(lt), stt = 0, srr = 0, dmu = 0, dtau = 0;
  for (int j = 0; j < n; j++) {
    double tt = q[2 + j], r = (y[j] - mu - tau * tt) / s[j], rs = r / s[j];
    stt += tt * tt;
    srr += r * r;
    dmu += rs;
    dtau += rs * tt;
    g[2 + j] = -tt + rs * tau;
  }
  g[0] = -mu / 25 + dmu;
  g[1] = tau * (-tau / 25 + dtau) + 1;
  return lt - 0.5 * (mu * mu / 25 + tau * tau / 25) - 0.5 * (stt + srr);
}

static volatile double sink;

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: grad_floor DATA_FILE [reps]\n");
    return 1;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  static double ys[MAXN], ye[MAXN], se[MAXN];
  int n_s = read_line(f, ys), n_e = read_line(f, ye), n_e2 = read_line(f, se);
  fclose(f);
  if (!n_s || !n_e || n_e != n_e2 || n_e > 64) {
    fprintf(stderr, "bad data file\n");
    return 1;
  }
  int reps = argc > 2 ? atoi(argv[2]) : 9;
  const long iters = 1000000;
  double t_s[64], t_e[64], q[66], g[66];
  if (reps > 64) reps = 64;
  for (int r = 0; r < reps; r++) {
    /* the point moves a little each call so nothing is hoisted out of the loop */
    double t0 = now();
    for (long i = 0; i < iters; i++) {
      q[0] = 0.5 + 1e-12 * (double)i, q[1] = 0.2;
      sink = simple_lp(ys, n_s, q, g) + g[0] + g[1];
    }
    double t1 = now();
    for (long i = 0; i < iters; i++) {
      q[0] = 1.5 + 1e-12 * (double)i, q[1] = 0.4;
      for (int j = 0; j < n_e; j++) q[2 + j] = 0.1 * j - 0.3;
      sink = eight_lp(ye, se, n_e, q, g) + g[0] + g[1] + g[2];
    }
    double t2 = now();
    t_s[r] = (t1 - t0) / iters * 1e9;
    t_e[r] = (t2 - t1) / iters * 1e9;
  }
  printf("grad_floor: hand-written C log density + gradient, median of %d x %ld calls\n", reps, iters);
  print_load();
  printf("kv simple_ns=%.2f\nkv eight_schools_nc_ns=%.2f\n", median(t_s, reps), median(t_e, reps));
  q[0] = 0.5, q[1] = 0.2;
  double lp = simple_lp(ys, n_s, q, g);
  printf("kv simple_out=%.17g,%.17g,%.17g\n", lp, g[0], g[1]);
  q[0] = 1.5, q[1] = 0.4;
  for (int j = 0; j < n_e; j++) q[2 + j] = 0.1 * j - 0.3;
  lp = eight_lp(ye, se, n_e, q, g);
  printf("kv eight_schools_nc_out=%.17g", lp);
  for (int j = 0; j < 2 + n_e; j++) printf(",%.17g", g[j]);
  printf("\n");
  return 0;
}
