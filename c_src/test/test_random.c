/* test_random.c: the Threefry-2x32 generator against Random123's known-answer
 * vectors, the counter layout of every random primitive, independence of
 * results from threading, f64 normals against Box-Muller with libm's sin and cos, the normal log-CDF and its inverse against scipy,
 * moments of each sampler within Monte-Carlo standard errors, and the error
 * paths. Prints "N passed, M failed". */
#include "../prim/kernels.h"
#include "../prim/random.h"
#include "test_util.h"

static mx_array *key_of(uint32_t k0, uint32_t k1) {
  uint32_t k[2] = {k0, k1};
  return arr(MX_U32, 1, (int64_t[]){2}, k);
}

static mx_array *scalar(mx_dtype t, double v) {
  mx_array *a = NULL;
  if (mx_full(t, 0, NULL, v, &a) != MX_OK) printf("mx_full: %s\n", mx_last_error());
  return a;
}

/* Builds and evaluates a draw; NULL (and a failed check) if either step fails. */
static mx_array *draw(mx_op op, mx_array *key, int np, mx_array *const *params, mx_dtype t, int flags, int ndim,
                      const int64_t *shape) {
  mx_array *out = NULL;
  mx_status st = mx_random(op, key, np, params, t, flags, ndim, shape, &out);
  return run_check(st, &out, mx_ops[op].name);
}

static void moments(const mx_array *a, double *mean, double *var) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < a->size; i++) s += value_at(a, i);
  *mean = s / (double)a->size;
  for (int64_t i = 0; i < a->size; i++) s2 += (value_at(a, i) - *mean) * (value_at(a, i) - *mean);
  *var = s2 / (double)(a->size - 1);
}

/* Sample mean within 5 standard errors of mu (a correct sampler fails with p < 6e-7);
 * sample variance within 5 of its own standard errors, from the fourth central moment m4. */
static void check_moments(const char *what, const mx_array *a, double mu, double var, double m4) {
  double m, v, n = (double)a->size;
  moments(a, &m, &v);
  double se_mean = sqrt(var / n), se_var = sqrt((m4 - var * var) / n);
  CHECK(fabs(m - mu) < 5 * se_mean, "%s: mean %.6g, want %.6g +- %.3g", what, m, mu, 5 * se_mean);
  CHECK(fabs(v - var) < 5 * se_var, "%s: variance %.6g, want %.6g +- %.3g", what, v, var, 5 * se_var);
}

/* ---- Threefry ------------------------------------------------------------------------ */

static void test_kat(void) {
  /* Random123 distribution, tests/kat_vectors, lines "threefry2x32 20 ctr0 ctr1 key0 key1 out0 out1". */
  static const uint32_t kat[3][6] = {
      {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6b200159, 0x99ba4efe},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x1cb996fc, 0xbb002be7},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xc4923a9c, 0x483df7a0},
  };
  for (int i = 0; i < 3; i++) {
    uint32_t out[2];
    mx_threefry2x32(kat[i][2], kat[i][3], kat[i][0], kat[i][1], out);
    CHECK(out[0] == kat[i][4] && out[1] == kat[i][5], "threefry2x32_20 vector %d: got %08x %08x", i, out[0], out[1]);
  }
  /* The same vectors through the engine: random_bits with the counter offset as ctr. */
  for (int i = 0; i < 3; i++) {
    mx_array *key = key_of(kat[i][2], kat[i][3]), *off = key_of(kat[i][0], kat[i][1]);
    int64_t shape[1] = {2};
    mx_array *b = draw(MX_OP_RANDOM_BITS, key, 1, &off, MX_U32, 0, 1, shape);
    if (b) {
      const uint32_t *w = mx_data(b);
      CHECK(w[0] == kat[i][4] && w[1] == kat[i][5], "random_bits vector %d: got %08x %08x", i, w[0], w[1]);
    }
    mx_release(b);
    mx_release(key);
    mx_release(off);
  }
}

/* Element i of u32 bits is word i%2 of block i/2; u64 element i is block i (word 0 low);
 * floats take the top bits. Checked on a size big enough to run on several threads. */
static void test_bits_layout(void) {
  mx_array *key = key_of(7, 123456789);
  int64_t n = 300001, shape[1] = {n};
  mx_array *u32 = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_U32, 0, 1, shape);
  mx_array *u64 = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_U64, 0, 1, shape);
  mx_array *f32 = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_F32, 0, 1, shape);
  mx_array *f32o = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_F32, MX_RANDOM_OPEN, 1, shape);
  mx_array *f64 = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_F64, 0, 1, shape);
  mx_array *f64o = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_F64, MX_RANDOM_OPEN, 1, shape);
  if (!u32 || !u64 || !f32 || !f32o || !f64 || !f64o) goto out;
  int bad = 0;
  double fmin = 1, fmax = 0, omin = 1, omax = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t w[2];
    mx_threefry2x32(7, 123456789, (uint32_t)(i / 2), 0, w);
    uint32_t word = w[i % 2];
    uint64_t x = mx_threefry_u64(7, 123456789, (uint64_t)i);
    float f = ((float *)mx_data(f32))[i], fo = ((float *)mx_data(f32o))[i];
    double d = ((double *)mx_data(f64))[i], dob = ((double *)mx_data(f64o))[i];
    if (((uint32_t *)mx_data(u32))[i] != word || ((uint64_t *)mx_data(u64))[i] != x) bad++;
    if (f != (float)(word >> 8) * 0x1p-24f || fo != ((float)(word >> 9) + 0.5f) * 0x1p-23f) bad++;
    if (d != (double)(x >> 11) * 0x1p-53 || dob != ((double)(x >> 12) + 0.5) * 0x1p-52) bad++;
    fmin = fmin < f ? fmin : f, fmax = fmax > f ? fmax : f;
    omin = omin < fo ? omin : fo, omax = omax > fo ? omax : fo;
  }
  CHECK(bad == 0, "bits layout: %d mismatches", bad);
  CHECK(fmin >= 0 && fmax < 1 && omin > 0 && omax < 1, "float ranges: [%g, %g] and (%g, %g)", fmin, fmax, omin, omax);
  /* u64 bits of size n are u32 bits of size 2n read in pairs (little-endian). */
  int64_t shape2[1] = {2 * n};
  mx_array *u32b = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_U32, 0, 1, shape2);
  if (u32b) CHECK(memcmp(mx_data(u32b), mx_data(u64), (size_t)n * 8) == 0, "u64 bits = u32 bits in pairs");
  mx_release(u32b);
  /* Determinism: the same key and shape give identical bytes, serially or in parallel. */
  mx_array *again = draw(MX_OP_RANDOM_BITS, key, 0, NULL, MX_F32, 0, 1, shape);
  if (again) CHECK(memcmp(mx_data(again), mx_data(f32), (size_t)n * 4) == 0, "repeat draw identical");
  mx_release(again);
out:
  mx_release(u32), mx_release(u64), mx_release(f32), mx_release(f32o), mx_release(f64), mx_release(f64o);
  mx_release(key);
}

/* Element i is a function of the key and i alone: a small draw is the prefix of a large
 * one (of any shape), however the large one was split across threads. */
static void test_prefix(void) {
  mx_array *key = key_of(1, 2);
  mx_array *alpha = scalar(MX_F64, 2.5), *rate = scalar(MX_F64, 30);
  mx_array *lo = scalar(MX_S64, -5), *hi = scalar(MX_S64, 1000);
  mx_array *tl = scalar(MX_F64, -1), *tu = scalar(MX_F64, 2);
  mx_array *lohi[2] = {lo, hi}, *tb[2] = {tl, tu};
  struct {
    mx_op op;
    int np;
    mx_array **p;
    mx_dtype t;
  } cases[] = {
      {MX_OP_RANDOM_NORMAL, 0, NULL, MX_F32},         {MX_OP_RANDOM_NORMAL, 0, NULL, MX_F64},
      {MX_OP_RANDOM_GAMMA, 1, &alpha, MX_F64},        {MX_OP_RANDOM_POISSON, 1, &rate, MX_S64},
      {MX_OP_RANDOM_RANDINT, 2, lohi, MX_S64},        {MX_OP_RANDOM_TRUNCATED_NORMAL, 2, tb, MX_F64},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t big[1] = {200001}, small[2] = {3, 7};
    mx_array *a = draw(cases[c].op, key, cases[c].np, cases[c].p, cases[c].t, 0, 1, big);
    mx_array *b = draw(cases[c].op, key, cases[c].np, cases[c].p, cases[c].t, 0, 2, small);
    if (a && b) {
      int same = 1;
      for (int64_t i = 0; i < 21; i++) same &= value_at(a, i) == value_at(b, i);
      CHECK(same, "%s %s: a draw of 21 elements is the prefix of one of 200001", mx_ops[cases[c].op].name,
            mx_dtype_name(cases[c].t));
    }
    mx_release(a);
    mx_release(b);
  }
  mx_release(alpha), mx_release(rate), mx_release(lo), mx_release(hi), mx_release(tl), mx_release(tu);
  mx_release(key);
}

/* ---- the normal CDF in logs, against scipy.special.log_ndtr / ndtri ------------------- */

static void test_log_ndtr(void) {
  static const double ref[][2] = {
      {-100, -5005.524208694205}, {-40, -804.6084420137539},     {-37.5, -707.6689893175072},
      {-36.9, -685.3328831653507}, {-20, -203.9171553710973},    {-5, -15.064998393988727},
      {-1, -1.841021645009264},    {0, -0.6931471805599453},     {0.5, -0.3689464152886563},
      {3, -0.001350809964748193},  {10, -7.619853024160473e-24},
  };
  for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
    double g = mx_random_log_ndtr(ref[i][0]);
    CHECK(fabs(g - ref[i][1]) <= 1e-13 * fabs(ref[i][1]), "log_ndtr(%g) = %.17g, want %.17g", ref[i][0], g, ref[i][1]);
  }
  static const double inv[][2] = {
      {1e-300, -37.0470962993612}, {1e-20, -9.262340089798409}, {1e-05, -4.264890793922825},
      {0.01, -2.3263478740408408}, {0.3, -0.5244005127080409},  {0.5, 0.0},
  };
  for (size_t i = 0; i < sizeof inv / sizeof inv[0]; i++) {
    double g = mx_ndtri_log(log(inv[i][0]));
    CHECK(fabs(g - inv[i][1]) <= 1e-13 * fabs(inv[i][1]) + 1e-15, "ndtri(%g) = %.17g, want %.17g", inv[i][0], g,
          inv[i][1]);
  }
  /* Far past where p underflows: log Phi(-200) and back. */
  double x = mx_ndtri_log(mx_random_log_ndtr(-200));
  CHECK(fabs(x + 200) < 1e-11, "ndtri_log(log_ndtr(-200)) = %.17g", x);
}

/* ---- samplers: moments within Monte-Carlo standard errors ------------------------------- */

static void test_normal_moments(void) {
  mx_array *key = key_of(42, 0);
  int64_t shape[1] = {400000};
  for (int f = 0; f < 2; f++) {
    mx_array *z = draw(MX_OP_RANDOM_NORMAL, key, 0, NULL, f ? MX_F64 : MX_F32, 0, 1, shape);
    if (z) check_moments(f ? "normal f64" : "normal f32", z, 0, 1, 3);
    mx_release(z);
  }
  mx_release(key);
}

/* f64 pair j is Box-Muller on blocks 2j (radius) and 2j + 1 (angle), element 2j the cosine
 * side: every element of an odd-length draw split across threads equals the formula with
 * libm's sin and cos called apart (the kernel calls sincos: 2^21 angles in [0, 2 pi), bit for bit). */
static void test_normal_f64_layout(void) {
  uint32_t k0 = 0x9e3779b9u, k1 = 77;
  mx_array *key = key_of(k0, k1);
  int64_t n = ((int64_t)1 << 22) + 1, shape[1] = {n}, bad = 0, first_bad = -1;
  mx_array *z = draw(MX_OP_RANDOM_NORMAL, key, 0, NULL, MX_F64, 0, 1, shape);
  if (z) {
    const double *o = mx_data(z);
    for (int64_t i = 0; i < n; i++) {
      uint64_t j = (uint64_t)(i / 2), x1 = mx_threefry_u64(k0, k1, 2 * j), x2 = mx_threefry_u64(k0, k1, 2 * j + 1);
      double r = sqrt(-2.0 * log(((double)(x1 >> 11) + 1.0) * 0x1p-53)), th = 6.283185307179586 * mx_u64_to_unit(x2);
      double want = i % 2 ? r * sin(th) : r * cos(th);
      if (memcmp(&want, &o[i], sizeof want) && !bad++) first_bad = i;
    }
    CHECK(bad == 0, "normal f64: %lld of %lld elements differ from r cos / r sin, the first at %lld", (long long)bad,
          (long long)n, (long long)first_bad);
  }
  mx_release(z);
  mx_release(key);
}

static void test_truncated_normal(void) {
  /* scipy.stats.truncnorm(a, b).mean() and .var() */
  static const double ref[][4] = {
      {10, INFINITY, 10.098093233962564, 0.009445377825130441},
      {50, 60, 50.019984031902176, 0.00039904336013207864},
      {-INFINITY, -30, -30.033259667436372, 0.0011037714308590463},
      {-1, 2, 0.22963717909132902, 0.5197625392115339},
      {3, 3.5, 3.185594398400676, 0.01822872191110747},
  };
  mx_array *key = key_of(3, 4);
  int64_t shape[1] = {100000};
  for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
    mx_array *lo = scalar(MX_F64, ref[i][0]), *hi = scalar(MX_F64, ref[i][1]), *p[2] = {lo, hi};
    mx_array *x = draw(MX_OP_RANDOM_TRUNCATED_NORMAL, key, 2, p, MX_F64, 0, 1, shape);
    if (x) {
      int inside = 1;
      for (int64_t j = 0; j < x->size; j++) inside &= value_at(x, j) >= ref[i][0] && value_at(x, j) <= ref[i][1];
      CHECK(inside, "truncated_normal [%g, %g]: a draw outside the interval", ref[i][0], ref[i][1]);
      /* log-concave laws have m4 <= 9 var^2 (the exponential's): a conservative standard error. */
      char what[64];
      snprintf(what, sizeof what, "truncated_normal [%g, %g]", ref[i][0], ref[i][1]);
      check_moments(what, x, ref[i][2], ref[i][3], 9 * ref[i][3] * ref[i][3]);
    }
    mx_release(x), mx_release(lo), mx_release(hi);
  }
  mx_release(key);
}

static void test_gamma_moments(void) {
  static const double alphas[] = {0.1, 0.5, 1, 3.7, 100};
  mx_array *key = key_of(5, 6);
  int64_t shape[1] = {200000};
  for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; i++) {
    double a = alphas[i];
    mx_array *al = scalar(MX_F64, a);
    mx_array *x = draw(MX_OP_RANDOM_GAMMA, key, 1, &al, MX_F64, 0, 1, shape);
    char what[64];
    snprintf(what, sizeof what, "gamma(%g)", a);
    /* gamma: mean a, variance a, fourth central moment 3a^2 + 6a */
    if (x) check_moments(what, x, a, a, 3 * a * a + 6 * a);
    mx_release(x);
    /* log-space draws are the logs of the same draws */
    mx_array *lx = draw(MX_OP_RANDOM_GAMMA, key, 1, &al, MX_F64, MX_RANDOM_LOG, 1, shape);
    mx_array *x2 = draw(MX_OP_RANDOM_GAMMA, key, 1, &al, MX_F64, 0, 1, shape);
    if (lx && x2) {
      int ok = 1;
      for (int64_t j = 0; j < 1000; j++) ok &= fabs(exp(value_at(lx, j)) - value_at(x2, j)) <= 1e-12 * value_at(x2, j);
      CHECK(ok, "%s: log flag gives log of the draw", what);
    }
    mx_release(lx), mx_release(x2), mx_release(al);
  }
  /* Invalid shapes give NaN; infinity stays infinity. */
  CHECK(isnan(mx_sample_gamma(1, 2, 0, 0, 0)) && isnan(mx_sample_gamma(1, 2, 0, -1, 0)) &&
            isnan(mx_sample_gamma(1, 2, 0, NAN, 0)) && mx_sample_gamma(1, 2, 0, INFINITY, 0) == INFINITY,
        "gamma edge parameters");
  /* Tiny alpha: log-space stays finite where the draw itself underflows. */
  double l = mx_sample_gamma(1, 2, 0, 1e-3, 1);
  CHECK(isfinite(l), "log gamma(1e-3) finite: %g", l);
  mx_release(key);
}

static void test_poisson_moments(void) {
  static const double rates[] = {0.5, 4, 9.99, 10, 30, 1000, 1e7};
  mx_array *key = key_of(8, 9);
  int64_t shape[1] = {200000};
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    double r = rates[i];
    mx_array *ra = scalar(MX_F64, r);
    mx_array *x = draw(MX_OP_RANDOM_POISSON, key, 1, &ra, MX_S64, 0, 1, shape);
    char what[64];
    snprintf(what, sizeof what, "poisson(%g)", r);
    if (x) check_moments(what, x, r, r, 3 * r * r + r); /* fourth central moment r(1 + 3r) */
    mx_release(x), mx_release(ra);
  }
  CHECK(mx_sample_poisson(1, 2, 3, 0) == 0 && isnan(mx_sample_poisson(1, 2, 3, -1)) &&
            isnan(mx_sample_poisson(1, 2, 3, INFINITY)),
        "poisson edge rates");
  mx_release(key);
}

static void test_randint(void) {
  mx_array *key = key_of(10, 11);
  /* A range of 3 with 60000 draws: each count within 5 binomial standard errors of 20000. */
  mx_array *lo = scalar(MX_S64, -1), *hi = scalar(MX_S64, 2), *p[2] = {lo, hi};
  int64_t shape[1] = {60000};
  mx_array *x = draw(MX_OP_RANDOM_RANDINT, key, 2, p, MX_S32, 0, 1, shape);
  if (x) {
    CHECK((mx_dtype)x->dtype == MX_S32, "randint s32 dtype");
    int64_t count[3] = {0, 0, 0}, other = 0;
    for (int64_t i = 0; i < x->size; i++) {
      int64_t v = (int64_t)value_at(x, i);
      if (v >= -1 && v <= 1) count[v + 1]++;
      else other++;
    }
    double se = sqrt(60000 * (1.0 / 3) * (2.0 / 3));
    CHECK(other == 0, "randint values outside [-1, 2): %lld", (long long)other);
    for (int k = 0; k < 3; k++)
      CHECK(fabs(count[k] - 20000.0) < 5 * se, "randint count[%d] = %lld", k, (long long)count[k]);
  }
  mx_release(x), mx_release(lo), mx_release(hi);
  /* The full s64 range and a range just above 2^63, where half the draws are rejected. */
  mx_array *l2 = scalar(MX_S64, -9.223372036854775808e18), *h2 = scalar(MX_S64, 9.223372036854775807e18);
  mx_array *p2[2] = {l2, h2};
  int64_t s2[1] = {1000};
  x = draw(MX_OP_RANDOM_RANDINT, key, 2, p2, MX_S64, 0, 1, s2);
  if (x) {
    int64_t neg = 0;
    for (int64_t i = 0; i < x->size; i++) neg += ((int64_t *)mx_data(x))[i] < 0;
    CHECK(neg > 400 && neg < 600, "randint over all of s64: %lld of 1000 negative", (long long)neg);
  }
  mx_release(x), mx_release(l2), mx_release(h2);
  mx_release(key);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void expect_error(const char *what, mx_status st, mx_array *out, const char *needle) {
  CHECK(st != MX_OK && strstr(mx_last_error(), needle), "%s: status %d, message '%s'", what, (int)st,
        st ? mx_last_error() : "");
  if (st == MX_OK) mx_release(out);
}

static void test_errors(void) {
  mx_array *key = key_of(1, 1), *out = NULL;
  int64_t shape[1] = {4}, wrong[1] = {3};
  mx_array *f = NULL;
  mx_full(MX_F32, 1, shape, 1, &f);
  expect_error("float key", mx_random(MX_OP_RANDOM_BITS, f, 0, NULL, MX_U32, 0, 1, shape, &out), out, "u32[2]");
  expect_error("normal as int", mx_random(MX_OP_RANDOM_NORMAL, key, 0, NULL, MX_S32, 0, 1, shape, &out), out,
               "cannot draw dtype s32");
  expect_error("gamma without alpha", mx_random(MX_OP_RANDOM_GAMMA, key, 0, NULL, MX_F32, 0, 1, shape, &out), out,
               "parameter");
  expect_error("alpha too big for shape", mx_random(MX_OP_RANDOM_GAMMA, key, 1, &f, MX_F32, 0, 1, wrong, &out), out,
               "does not broadcast");
  expect_error("open u32", mx_random(MX_OP_RANDOM_BITS, key, 0, NULL, MX_U32, MX_RANDOM_OPEN, 1, shape, &out), out,
               "cannot draw");
  expect_error("log normal", mx_random(MX_OP_RANDOM_NORMAL, key, 0, NULL, MX_F32, MX_RANDOM_LOG, 1, shape, &out), out,
               "flags");
  expect_error("not random", mx_random(MX_OP_ADD, key, 0, NULL, MX_F32, 0, 1, shape, &out), out, "not a random");
  mx_array *fp[2] = {f, f};
  expect_error("float randint bounds", mx_random(MX_OP_RANDOM_RANDINT, key, 2, fp, MX_S64, 0, 1, shape, &out), out,
               "integer array");
  int64_t huge[2] = {1 << 20, 1 << 13};
  mx_array *one = scalar(MX_F32, 1);
  expect_error("stream too long", mx_random(MX_OP_RANDOM_GAMMA, key, 1, &one, MX_F32, 0, 2, huge, &out), out, "2^32");

  /* Errors found while evaluating: an empty randint range, an invalid Poisson rate as an integer. */
  mx_array *lo = scalar(MX_S64, 5), *hi = scalar(MX_S64, 5), *p[2] = {lo, hi};
  mx_status st = mx_random(MX_OP_RANDOM_RANDINT, key, 2, p, MX_S64, 0, 1, shape, &out);
  if (st == MX_OK) {
    expect_error("empty randint range", mx_eval(&out, 1), NULL, "empty range at element 0");
    mx_release(out);
  }
  mx_array *neg = scalar(MX_F64, -2);
  st = mx_random(MX_OP_RANDOM_POISSON, key, 1, &neg, MX_S64, 0, 1, shape, &out);
  if (st == MX_OK) {
    expect_error("negative poisson rate", mx_eval(&out, 1), NULL, "rate -2");
    mx_release(out);
  }
  mx_array *nan_draw = draw(MX_OP_RANDOM_POISSON, key, 1, &neg, MX_F32, 0, 1, shape);
  if (nan_draw) CHECK(isnan(value_at(nan_draw, 0)), "negative poisson rate as f32 is NaN");
  mx_release(nan_draw);
  mx_release(lo), mx_release(hi), mx_release(neg), mx_release(one), mx_release(f), mx_release(key);
}

/* f16/bf16 draws compute in f32 and convert. */
static void test_half(void) {
  mx_array *key = key_of(2, 2);
  int64_t shape[1] = {1000};
  mx_array *x = draw(MX_OP_RANDOM_NORMAL, key, 0, NULL, MX_BF16, 0, 1, shape);
  if (x) CHECK((mx_dtype)x->dtype == MX_BF16 && x->size == 1000, "bf16 normal");
  mx_release(x), mx_release(key);
}

int main(void) {
  test_kat();
  test_bits_layout();
  test_prefix();
  test_log_ndtr();
  test_normal_moments();
  test_normal_f64_layout();
  test_truncated_normal();
  test_gamma_moments();
  test_poisson_moments();
  test_randint();
  test_errors();
  test_half();
  return test_summary("test_random: ");
}
