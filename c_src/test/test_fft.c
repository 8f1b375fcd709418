/* test_fft.c: the FFT component (prim/fft.c) against numpy's np.fft reference
 * values (c_src/test/data/fft_ref.bin, from test/reference/generate_fft.py),
 * against a long-double direct DFT for every n <= 300, round trips, Parseval,
 * strided/batched/in-place layouts, threads, the plan cache and error paths.
 * Prints "N passed, M failed".
 *
 * Tolerance: ||y - ref||_2 / ||ref||_2 <= C eps max(1, log2 n), eps = 2^-52,
 * C = 8. Higham (Accuracy and Stability, 2nd ed., Thm 24.2) bounds the radix-2
 * FFT's normwise relative error by log2(n) eta / (1 - log2(n) eta), with
 * eta = mu + gamma_4 (sqrt 2 + mu) ~ (4 sqrt 2 + 1) u ~ 3.4 eps for twiddles
 * accurate to mu ~ u = eps/2; the numpy reference carries an error of the same
 * size, so the two together stay under ~7 eps log2 n. Radix-3/4/5/odd stages
 * are products of at most log2(r) such levels' worth of roundings. Bluestein
 * runs three FFTs of length M < 4n, so its bound is C eps (3 log2 n + 6). */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mx.h"
#include "../prim/fft.h"

static int npass, nfail;

#define CHECK(cond, ...)                          \
  do {                                            \
    if (cond) {                                   \
      npass++;                                    \
    } else {                                      \
      nfail++;                                    \
      printf("FAIL %s:%d: ", __FILE__, __LINE__); \
      printf(__VA_ARGS__);                        \
      printf("\n");                               \
    }                                             \
  } while (0)

#define C_TOL 8.0

static const int64_t SIZES[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 30, 64, 97, 100, 128, 210, 256, 509, 1000, 1024, 4096, 4099};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

/* ---- helpers -------------------------------------------------------------- */

static double log2n(int64_t n) { return n > 2 ? log2((double)n) : 1.0; }

/* The bound for a plan of length n (three FFTs of length < 4n for Bluestein). */
static double tol_for(int64_t n, int bluestein) {
  return C_TOL * DBL_EPSILON * (bluestein ? 3 * log2n(n) + 6 : log2n(n));
}

static int is_bluestein(int64_t n) {
  mx_fft_plan *p = NULL;
  if (mx_fft_plan_get(n, &p) != MX_OK) return 0;
  int b = mx_fft_plan_is_bluestein(p);
  mx_fft_plan_release(p);
  return b;
}

static double rel_err(const double *y, const double *ref, int64_t len) {
  long double num = 0, den = 0;
  for (int64_t i = 0; i < len; i++) {
    long double d = (long double)y[i] - ref[i];
    num += d * d;
    den += (long double)ref[i] * ref[i];
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return (double)sqrtl(num / den);
}

/* splitmix64, as in generate_fft.py: inputs 2u - 1 with u on the 2^-53 grid. */
typedef struct {
  uint64_t s;
} rng;

static uint64_t rng_next(rng *g) {
  uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void rng_fill(rng *g, double *v, int64_t k) {
  for (int64_t i = 0; i < k; i++) v[i] = 2.0 * ((double)(rng_next(g) >> 11) * 0x1p-53) - 1.0;
}

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    printf("out of memory\n");
    exit(2);
  }
  return p;
}

/* Direct DFT in long double: sign -1 forward, +1 inverse; unnormalized. */
static void naive_dft(const double *x, double *y, int64_t n, int sign) {
  long double *c = xmalloc((size_t)n * sizeof *c), *s = xmalloc((size_t)n * sizeof *s);
  const long double pi = 3.141592653589793238462643383279502884L;
  for (int64_t j = 0; j < n; j++) {
    c[j] = cosl(2 * pi * (long double)j / (long double)n);
    s[j] = sign * sinl(2 * pi * (long double)j / (long double)n);
  }
  for (int64_t k = 0; k < n; k++) {
    long double re = 0, im = 0;
    int64_t idx = 0;
    for (int64_t t = 0; t < n; t++) {
      re += x[2 * t] * c[idx] - x[2 * t + 1] * s[idx];
      im += x[2 * t] * s[idx] + x[2 * t + 1] * c[idx];
      idx += k;
      if (idx >= n) idx -= n;
    }
    y[2 * k] = (double)re;
    y[2 * k + 1] = (double)im;
  }
  free(c);
  free(s);
}

/* ---- the reference file ----------------------------------------------------- */

typedef struct {
  char kind[8];
  int64_t n, count;
  double *v;
} ref_rec;

static ref_rec *refs;
static int nrefs;

static int host_little_endian(void) {
  uint16_t x = 1;
  unsigned char b;
  memcpy(&b, &x, 1);
  return b == 1;
}

static FILE *open_ref(void) {
  const char *env = getenv("MX_FFT_REF");
  if (env) return fopen(env, "rb");
  FILE *f = fopen("c_src/test/data/fft_ref.bin", "rb");
  if (f) return f;
  /* Next to this source file, wherever the binary runs from. */
  char path[4096];
  const char *src = __FILE__, *slash = strrchr(src, '/');
  int len = slash ? (int)(slash - src) : 0;
  snprintf(path, sizeof path, "%.*s%sdata/fft_ref.bin", len, src, slash ? "/" : "");
  return fopen(path, "rb");
}

static int load_refs(void) {
  FILE *f = open_ref();
  if (!f) return 0;
  char line[128];
  int count = 0;
  if (!fgets(line, sizeof line, f) || sscanf(line, "MXFFT1 %d", &count) != 1 || count <= 0 || count > 10000) {
    fclose(f);
    return 0;
  }
  refs = calloc((size_t)count, sizeof *refs);
  int le = host_little_endian();
  for (int i = 0; i < count; i++) {
    long long n, c;
    if (!fgets(line, sizeof line, f) || sscanf(line, "%7s %lld %lld", refs[i].kind, &n, &c) != 3 || c < 0 ||
        c > 1 << 24)
      break;
    refs[i].n = n;
    refs[i].count = c;
    refs[i].v = xmalloc((size_t)c * sizeof(double));
    if (fread(refs[i].v, sizeof(double), (size_t)c, f) != (size_t)c) break;
    if (!le)
      for (long long j = 0; j < c; j++) {
        unsigned char b[8], r[8];
        memcpy(b, &refs[i].v[j], 8);
        for (int q = 0; q < 8; q++) r[q] = b[7 - q];
        memcpy(&refs[i].v[j], r, 8);
      }
    nrefs = i + 1;
  }
  fclose(f);
  return nrefs == count;
}

static const double *find_ref(const char *kind, int64_t n, int64_t count) {
  for (int i = 0; i < nrefs; i++)
    if (refs[i].n == n && strcmp(refs[i].kind, kind) == 0) return refs[i].count == count ? refs[i].v : NULL;
  return NULL;
}

/* ---- tests ---------------------------------------------------------------- */

static double worst_ratio[2]; /* max err / (eps log2 n) seen: mixed, Bluestein */

static void note(double err, int64_t n, int blue) {
  double r = err / (DBL_EPSILON * log2n(n));
  if (r > worst_ratio[blue]) worst_ratio[blue] = r;
}

static void test_numpy(void) {
  int ok = load_refs();
  CHECK(ok, "could not read the reference file c_src/test/data/fft_ref.bin (run from the repository root, or set "
            "MX_FFT_REF; regenerate with /usr/bin/python3 test/reference/generate_fft.py)");
  if (!ok) return;
  printf("%6s %4s %10s %10s %10s %10s %10s %10s   (err / (eps log2 n))\n", "n", "alg", "fft", "ifft", "rfft",
         "irfft", "roundtrip", "parseval");
  for (int si = 0; si < NSIZES; si++) {
    int64_t n = SIZES[si], h = n / 2;
    rng g = {0x5EED0000ull + (uint64_t)n};
    double *x = xmalloc((size_t)(2 * n) * 8), *r = xmalloc((size_t)n * 8), *yc = xmalloc((size_t)(2 * (h + 1)) * 8);
    rng_fill(&g, x, 2 * n);
    rng_fill(&g, r, n);
    rng_fill(&g, yc, 2 * (h + 1));
    double *X = xmalloc((size_t)(2 * n) * 8), *xi = xmalloc((size_t)(2 * n) * 8), *back = xmalloc((size_t)(2 * n) * 8);
    double *R = xmalloc((size_t)(2 * (h + 1)) * 8), *yr = xmalloc((size_t)n * 8);
    mx_fft_plan *p = NULL;
    mx_status st = mx_fft_plan_get(n, &p);
    CHECK(st == MX_OK, "plan %lld: %s", (long long)n, mx_last_error());
    if (st != MX_OK) continue;
    int blue = mx_fft_plan_is_bluestein(p);
    double tol = tol_for(n, blue);
    const double *rf = find_ref("fft", n, 2 * n), *ri = find_ref("ifft", n, 2 * n);
    const double *rr = find_ref("rfft", n, 2 * (h + 1)), *rir = find_ref("irfft", n, n);
    CHECK(rf && ri && rr && rir, "reference records for n = %lld missing", (long long)n);
    if (!(rf && ri && rr && rir)) continue;

    CHECK(mx_fft_c2c(p, x, X, 1, 1, n, 0, 1.0) == MX_OK, "c2c: %s", mx_last_error());
    double e_f = rel_err(X, rf, 2 * n);
    CHECK(e_f <= tol, "fft n=%lld: rel err %.3g > %.3g", (long long)n, e_f, tol);
    CHECK(mx_fft_c2c(p, x, xi, 1, 1, n, 1, 1.0 / (double)n) == MX_OK, "ifft: %s", mx_last_error());
    double e_i = rel_err(xi, ri, 2 * n);
    CHECK(e_i <= tol, "ifft n=%lld: rel err %.3g > %.3g", (long long)n, e_i, tol);
    CHECK(mx_fft_r2c(p, r, R, 1, 1, n, 1.0) == MX_OK, "r2c: %s", mx_last_error());
    double e_r = rel_err(R, rr, 2 * (h + 1));
    CHECK(e_r <= tol, "rfft n=%lld: rel err %.3g > %.3g", (long long)n, e_r, tol);
    CHECK(mx_fft_c2r(p, yc, yr, 1, 1, h + 1, 1.0 / (double)n) == MX_OK, "c2r: %s", mx_last_error());
    double e_ir = rel_err(yr, rir, n);
    CHECK(e_ir <= tol, "irfft n=%lld: rel err %.3g > %.3g", (long long)n, e_ir, tol);

    /* Round trip: ifft(fft(x)) = x; two transforms, so twice the bound. */
    CHECK(mx_fft_c2c(p, X, back, 1, 1, n, 1, 1.0 / (double)n) == MX_OK, "ifft: %s", mx_last_error());
    double e_rt = rel_err(back, x, 2 * n);
    CHECK(e_rt <= 2 * tol, "round trip n=%lld: rel err %.3g > %.3g", (long long)n, e_rt, 2 * tol);
    /* Parseval: sum |X|^2 = n sum |x|^2. Squaring doubles the relative error. */
    long double ex = 0, eX = 0;
    for (int64_t i = 0; i < 2 * n; i++) ex += (long double)x[i] * x[i], eX += (long double)X[i] * X[i];
    double e_p = (double)fabsl(eX / (ex * n) - 1);
    CHECK(e_p <= 2 * tol, "parseval n=%lld: rel err %.3g > %.3g", (long long)n, e_p, 2 * tol);

    printf("%6lld %4s %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f\n", (long long)n, blue ? "blu" : "mix",
           e_f / (DBL_EPSILON * log2n(n)), e_i / (DBL_EPSILON * log2n(n)), e_r / (DBL_EPSILON * log2n(n)),
           e_ir / (DBL_EPSILON * log2n(n)), e_rt / (DBL_EPSILON * log2n(n)), e_p / (DBL_EPSILON * log2n(n)));
    note(e_f, n, blue), note(e_i, n, blue), note(e_r, n, blue), note(e_ir, n, blue);
    mx_fft_plan_release(p);
    free(x), free(r), free(yc), free(X), free(xi), free(back), free(R), free(yr);
  }
}

/* Every n <= 300 (radices 2, 3, 4, 5, 8, generic odd radices 7..59, Bluestein
 * for larger prime factors, real packing over a Bluestein half) against a direct DFT. */
static void test_direct(void) {
  int bad = 0;
  for (int64_t n = 1; n <= 300; n++) {
    int64_t h = n / 2;
    rng g = {0xD1CEull * (uint64_t)n};
    double *x = xmalloc((size_t)(2 * n) * 8), *y = xmalloc((size_t)(2 * n) * 8), *ref = xmalloc((size_t)(2 * n) * 8);
    double *r = xmalloc((size_t)(2 * n) * 8), *R = xmalloc((size_t)(2 * (h + 1)) * 8), *yr = xmalloc((size_t)n * 8);
    rng_fill(&g, x, 2 * n);
    mx_fft_plan *p = NULL;
    if (mx_fft_plan_get(n, &p) != MX_OK) {
      CHECK(0, "plan %lld: %s", (long long)n, mx_last_error());
      continue;
    }
    int blue = mx_fft_plan_is_bluestein(p);
    double tol = tol_for(n, blue);
    for (int inv = 0; inv < 2; inv++) {
      naive_dft(x, ref, n, inv ? 1 : -1);
      mx_status st = mx_fft_c2c(p, x, y, 1, 1, n, inv, 1.0);
      double e = rel_err(y, ref, 2 * n);
      note(e, n, blue);
      if (st != MX_OK || !(e <= tol)) {
        bad++;
        CHECK(0, "direct %s n=%lld (%s): rel err %.3g > %.3g", inv ? "inverse" : "forward", (long long)n,
              blue ? "bluestein" : "mixed", e, tol);
      }
    }
    /* r2c of a real vector: the first h+1 bins of the complex DFT. */
    for (int64_t t = 0; t < n; t++) r[2 * t] = x[2 * t], r[2 * t + 1] = 0;
    naive_dft(r, ref, n, -1);
    for (int64_t t = 0; t < n; t++) r[t] = x[2 * t];
    mx_status st = mx_fft_r2c(p, r, R, 1, 1, n, 1.0);
    double e = rel_err(R, ref, 2 * (h + 1));
    note(e, n, blue);
    if (st != MX_OK || !(e <= tol)) {
      bad++;
      CHECK(0, "direct r2c n=%lld: rel err %.3g > %.3g", (long long)n, e, tol);
    }
    /* c2r of the Hermitian half of ref, with junk in the ignored imaginary parts. */
    memcpy(R, ref, (size_t)(2 * (h + 1)) * 8);
    R[1] = 0.75;
    if (n % 2 == 0) R[2 * h + 1] = -0.5;
    st = mx_fft_c2r(p, R, yr, 1, 1, h + 1, 1.0 / (double)n);
    e = rel_err(yr, r, n);
    note(e, n, blue);
    if (st != MX_OK || !(e <= 2 * tol)) {
      bad++;
      CHECK(0, "direct c2r n=%lld: rel err %.3g > %.3g", (long long)n, e, 2 * tol);
    }
    mx_fft_plan_release(p);
    free(x), free(y), free(ref), free(r), free(R), free(yr);
  }
  CHECK(bad == 0, "%d direct-DFT comparisons failed", bad);
}

/* Large lengths (mixed 2^18, Bluestein at the prime 262147): round trip and
 * Parseval normwise, plus a few bins against direct sums (long double
 * accumulation; twiddles from exactly reduced angles). A single
 * bin's error is at most the normwise error, so |dX_k| <= tol ||X||_2 holds,
 * while an indexing bug would be of the order of the RMS bin ||X||_2 / sqrt n. */
static void test_large(void) {
  const int64_t ns[] = {1 << 18, 262147};
  for (int ni = 0; ni < 2; ni++) {
    int64_t n = ns[ni];
    mx_fft_plan *p = NULL;
    if (mx_fft_plan_get(n, &p) != MX_OK) {
      CHECK(0, "plan %lld: %s", (long long)n, mx_last_error());
      continue;
    }
    int blue = mx_fft_plan_is_bluestein(p);
    double tol = tol_for(n, blue);
    double *x = xmalloc((size_t)(2 * n) * 8), *X = xmalloc((size_t)(2 * n) * 8), *b = xmalloc((size_t)(2 * n) * 8);
    rng g = {n};
    rng_fill(&g, x, 2 * n);
    CHECK(mx_fft_c2c(p, x, X, 1, 1, n, 0, 1.0) == MX_OK, "large c2c: %s", mx_last_error());
    CHECK(mx_fft_c2c(p, X, b, 1, 1, n, 1, 1.0 / (double)n) == MX_OK, "large inverse: %s", mx_last_error());
    double e_rt = rel_err(b, x, 2 * n);
    CHECK(e_rt <= 2 * tol, "large round trip n=%lld: %.3g > %.3g", (long long)n, e_rt, 2 * tol);
    long double ex = 0, eX = 0;
    for (int64_t i = 0; i < 2 * n; i++) ex += (long double)x[i] * x[i], eX += (long double)X[i] * X[i];
    double e_p = (double)fabsl(eX / (ex * n) - 1);
    CHECK(e_p <= 2 * tol, "large parseval n=%lld: %.3g > %.3g", (long long)n, e_p, 2 * tol);
    const long double pi = 3.141592653589793238462643383279502884L;
    const int64_t bins[] = {0, 1, n / 2 + 1, n - 3};
    double worst = 0;
    for (int bi = 0; bi < 4; bi++) {
      int64_t k = bins[bi], idx = 0;
      long double re = 0, im = 0;
      for (int64_t t = 0; t < n; t++) {
        double a = (double)(2 * pi * (long double)idx / (long double)n), c = cos(a), s = -sin(a);
        re += x[2 * t] * c - x[2 * t + 1] * s;
        im += x[2 * t] * s + x[2 * t + 1] * c;
        idx += k;
        if (idx >= n) idx -= n;
      }
      double d = (double)sqrtl((X[2 * k] - re) * (X[2 * k] - re) + (X[2 * k + 1] - im) * (X[2 * k + 1] - im));
      if (d > worst) worst = d;
    }
    double normX = (double)sqrtl(eX);
    CHECK(worst <= tol * normX, "large n=%lld: bin error %.3g > %.3g", (long long)n, worst, tol * normX);
    printf("large n=%lld (%s): err / (eps log2 n): round trip %.3f, parseval %.3f; worst of 4 bins: %.2f eps times "
           "the RMS bin\n",
           (long long)n, blue ? "bluestein" : "mixed", e_rt / (DBL_EPSILON * log2n(n)), e_p / (DBL_EPSILON * log2n(n)),
           worst / (normX / sqrt((double)n)) / DBL_EPSILON);
    mx_fft_plan_release(p);
    free(x), free(X), free(b);
  }
}

/* Batched, strided, scaled and in-place calls equal one contiguous call per transform. */
static void test_layouts(void) {
  const int64_t ns[] = {1, 6, 16, 45, 97, 128, 134, 1000};
  for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
    int64_t n = ns[ni], h = n / 2, hm = 5, stride = 3, dist = 3 * n + 7;
    mx_fft_plan *p = NULL;
    if (mx_fft_plan_get(n, &p) != MX_OK) {
      CHECK(0, "plan: %s", mx_last_error());
      continue;
    }
    rng g = {77 + (uint64_t)n};
    int64_t span = 2 * ((hm - 1) * dist + (n - 1) * stride + 1);
    double *in = xmalloc((size_t)span * 8), *out = xmalloc((size_t)(2 * n * hm) * 8);
    double *one = xmalloc((size_t)(2 * n) * 8), *y = xmalloc((size_t)(2 * n) * 8);
    rng_fill(&g, in, span);
    for (int inv = 0; inv < 2; inv++) {
      double scale = inv ? 1.0 / (double)n : 0.5;
      CHECK(mx_fft_c2c(p, in, out, hm, stride, dist, inv, scale) == MX_OK, "strided c2c: %s", mx_last_error());
      int same = 1;
      for (int64_t j = 0; j < hm; j++) {
        for (int64_t k = 0; k < n; k++) {
          one[2 * k] = in[2 * (j * dist + k * stride)];
          one[2 * k + 1] = in[2 * (j * dist + k * stride) + 1];
        }
        mx_fft_c2c(p, one, y, 1, 1, n, inv, scale);
        same &= memcmp(y, out + 2 * j * n, (size_t)(2 * n) * 8) == 0;
      }
      CHECK(same, "strided c2c n=%lld inverse=%d differs from contiguous", (long long)n, inv);
    }
    /* In place: stride 1, dist n. */
    memcpy(out, in, (size_t)(2 * n * hm) * 8);
    CHECK(mx_fft_c2c(p, out, out, hm, 1, n, 0, 1.0) == MX_OK, "in-place: %s", mx_last_error());
    int same = 1;
    for (int64_t j = 0; j < hm; j++) {
      mx_fft_c2c(p, in + 2 * j * n, y, 1, 1, n, 0, 1.0);
      same &= memcmp(y, out + 2 * j * n, (size_t)(2 * n) * 8) == 0;
    }
    CHECK(same, "in-place c2c n=%lld differs", (long long)n);
    /* Real transforms, strided: r2c reads reals at stride, c2r complex at stride. */
    double *R = xmalloc((size_t)(2 * (h + 1) * hm) * 8), *ro = xmalloc((size_t)(n * hm) * 8);
    double *r1 = xmalloc((size_t)n * 8), *R1 = xmalloc((size_t)(2 * (h + 1)) * 8);
    CHECK(mx_fft_r2c(p, in, R, hm, stride, dist, 2.0) == MX_OK, "strided r2c: %s", mx_last_error());
    CHECK(mx_fft_c2r(p, in, ro, hm, stride, dist, 0.25) == MX_OK, "strided c2r: %s", mx_last_error());
    int same_r = 1, same_c = 1;
    for (int64_t j = 0; j < hm; j++) {
      for (int64_t k = 0; k < n; k++) r1[k] = in[j * dist + k * stride];
      mx_fft_r2c(p, r1, R1, 1, 1, n, 2.0);
      same_r &= memcmp(R1, R + 2 * j * (h + 1), (size_t)(2 * (h + 1)) * 8) == 0;
      for (int64_t k = 0; k <= h; k++) {
        R1[2 * k] = in[2 * (j * dist + k * stride)];
        R1[2 * k + 1] = in[2 * (j * dist + k * stride) + 1];
      }
      mx_fft_c2r(p, R1, r1, 1, 1, h + 1, 0.25);
      same_c &= memcmp(r1, ro + j * n, (size_t)n * 8) == 0;
    }
    CHECK(same_r, "strided r2c n=%lld differs", (long long)n);
    CHECK(same_c, "strided c2r n=%lld differs", (long long)n);
    /* dist 0: every transform reads the same input. */
    CHECK(mx_fft_c2c(p, in, out, 3, 1, 0, 0, 1.0) == MX_OK, "dist 0: %s", mx_last_error());
    CHECK(memcmp(out, out + 2 * n, (size_t)(2 * n) * 8) == 0 && memcmp(out, out + 4 * n, (size_t)(2 * n) * 8) == 0,
          "dist 0 n=%lld: transforms differ", (long long)n);
    mx_fft_plan_release(p);
    free(in), free(out), free(one), free(y), free(R), free(ro), free(r1), free(R1);
  }
}

/* A batch large enough to split across threads gives the serial results. */
static void test_parallel_batch(void) {
  const int64_t ns[] = {16, 17, 509};
  for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
    int64_t n = ns[ni], hm = 40000 / n + 64;
    mx_fft_plan *p = NULL;
    if (mx_fft_plan_get(n, &p) != MX_OK) continue;
    double *in = xmalloc((size_t)(2 * n * hm) * 8), *out = xmalloc((size_t)(2 * n * hm) * 8),
           *y = xmalloc((size_t)(2 * n) * 8);
    rng g = {5};
    rng_fill(&g, in, 2 * n * hm);
    CHECK(mx_fft_c2c(p, in, out, hm, 1, n, 0, 1.0) == MX_OK, "batch: %s", mx_last_error());
    int same = 1;
    for (int64_t j = 0; j < hm; j++) {
      mx_fft_c2c(p, in + 2 * j * n, y, 1, 1, n, 0, 1.0);
      same &= memcmp(y, out + 2 * j * n, (size_t)(2 * n) * 8) == 0;
    }
    CHECK(same, "batched c2c of %lld transforms of n=%lld differs from serial", (long long)hm, (long long)n);
    mx_fft_plan_release(p);
    free(in), free(out), free(y);
  }
}

/* Threads getting, using and releasing plans of overlapping lengths while the
 * cache churns (more lengths than it holds): results stay exact. */
typedef struct {
  int id, bad;
} thr_arg;

static void *thr_main(void *v) {
  thr_arg *a = v;
  double x[2 * 300], y[2 * 300], ref[2 * 300];
  for (int it = 0; it < 120; it++) {
    int64_t n = 1 + (it * 37 + a->id * 11) % 150;
    rng g = {(uint64_t)n};
    rng_fill(&g, x, 2 * n);
    mx_fft_plan *p = NULL;
    if (mx_fft_plan_get(n, &p) != MX_OK) {
      a->bad++;
      continue;
    }
    if (mx_fft_c2c(p, x, y, 1, 1, n, 0, 1.0) != MX_OK) a->bad++;
    if (it % 7 == 0) mx_fft_cache_clear();
    naive_dft(x, ref, n, -1);
    if (!(rel_err(y, ref, 2 * n) <= tol_for(n, mx_fft_plan_is_bluestein(p)))) a->bad++;
    mx_fft_plan_release(p);
  }
  return NULL;
}

static void test_threads(void) {
  pthread_t t[4];
  thr_arg a[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (thr_arg){i, 0};
    pthread_create(&t[i], NULL, thr_main, &a[i]);
  }
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    bad += a[i].bad;
  }
  CHECK(bad == 0, "%d failures in concurrent plan use", bad);
}

static void test_cache(void) {
  mx_fft_plan *a = NULL, *b = NULL;
  CHECK(mx_fft_plan_get(360, &a) == MX_OK && mx_fft_plan_get(360, &b) == MX_OK && a == b,
        "the same length gives the cached plan");
  CHECK(mx_fft_plan_length(a) == 360, "plan length");
  mx_fft_plan_release(b);
  /* Churn 100 other lengths through the 64-slot cache; `a` stays usable. */
  for (int64_t n = 1000; n < 1100; n++) {
    mx_fft_plan *q = NULL;
    CHECK(mx_fft_plan_get(n, &q) == MX_OK, "plan %lld", (long long)n);
    mx_fft_plan_release(q);
  }
  mx_fft_cache_clear();
  double x[720], y[720], ref[720];
  rng g = {360};
  rng_fill(&g, x, 720);
  CHECK(mx_fft_c2c(a, x, y, 1, 1, 360, 0, 1.0) == MX_OK, "evicted plan still in use: %s", mx_last_error());
  naive_dft(x, ref, 360, -1);
  CHECK(rel_err(y, ref, 720) <= tol_for(360, 0), "evicted plan computes");
  mx_fft_plan_release(a);
  /* Which algorithm each test length runs, for the record. */
  CHECK(!is_bluestein(4096) && !is_bluestein(1000) && !is_bluestein(17) && is_bluestein(4099) && is_bluestein(509),
        "algorithm choice for 4096, 1000, 17 (mixed) and 4099, 509 (Bluestein)");
}

static int mentions_fft(void) { return strstr(mx_last_error(), "[fft]") != NULL; }

static void test_errors(void) {
  mx_fft_plan *p = NULL;
  CHECK(mx_fft_plan_get(0, &p) == MX_EINVAL && p == NULL && mentions_fft(), "n = 0: %s", mx_last_error());
  CHECK(mx_fft_plan_get(-5, &p) == MX_EINVAL && mentions_fft(), "n < 0");
  CHECK(mx_fft_plan_get(MX_FFT_MAX_N + 1, &p) == MX_EINVAL && mentions_fft(), "n too large: %s", mx_last_error());
  CHECK(mx_fft_plan_get(INT64_MAX, &p) == MX_EINVAL, "n = INT64_MAX");
  CHECK(mx_fft_plan_get(8, NULL) == MX_EINVAL, "NULL out");
  double x[16] = {0}, y[16];
  CHECK(mx_fft_c2c(NULL, x, y, 1, 1, 8, 0, 1) == MX_EINVAL && mentions_fft(), "NULL plan");
  CHECK(mx_fft_plan_get(8, &p) == MX_OK, "plan 8");
  CHECK(mx_fft_c2c(p, x, y, -1, 1, 8, 0, 1) == MX_EINVAL && mentions_fft(), "howmany < 0: %s", mx_last_error());
  CHECK(mx_fft_c2c(p, x, y, 0, 1, 8, 0, 1) == MX_OK, "howmany 0 is a no-op");
  CHECK(mx_fft_c2c(p, NULL, y, 0, 1, 8, 0, 1) == MX_OK, "howmany 0 with NULL buffers");
  CHECK(mx_fft_c2c(p, NULL, y, 1, 1, 8, 0, 1) == MX_EINVAL && mentions_fft(), "NULL input");
  CHECK(mx_fft_r2c(p, x, NULL, 1, 1, 8, 1) == MX_EINVAL && mentions_fft(), "NULL output");
  CHECK(mx_fft_c2c(p, x, y, 1, 0, 8, 0, 1) == MX_EINVAL && mentions_fft(), "stride 0: %s", mx_last_error());
  CHECK(mx_fft_c2r(p, x, y, 1, -2, 8, 1) == MX_EINVAL && mentions_fft(), "negative stride");
  CHECK(mx_fft_c2c(p, x, y, 1, 1, -1, 0, 1) == MX_EINVAL && mentions_fft(), "negative dist");
  CHECK(mx_fft_c2c(p, x, y, INT64_MAX / 2, 1, INT64_MAX / 4, 0, 1) == MX_EINVAL && mentions_fft(),
        "index overflow: %s", mx_last_error());
  CHECK(mx_fft_r2c(p, x, y, 2, INT64_MAX / 4, 1, 1) == MX_EINVAL && mentions_fft(), "stride overflow");
  /* Non-finite inputs compute (NaN/Inf propagate) rather than fail. */
  x[0] = NAN;
  x[3] = INFINITY;
  CHECK(mx_fft_c2c(p, x, y, 1, 1, 8, 0, 1) == MX_OK && isnan(y[0]), "NaN propagates");
  mx_fft_plan_release(p);
  /* Scratch beyond the stack comes from the engine's allocator: over its limit is MX_ENOMEM. */
  double *big = xmalloc(2 * 4096 * 8), *bo = xmalloc(2 * 4096 * 8);
  memset(big, 0, 2 * 4096 * 8);
  CHECK(mx_fft_plan_get(4096, &p) == MX_OK, "plan 4096");
  mx_memory_set_memory_limit(1024);
  CHECK(mx_fft_c2c(p, big, bo, 1, 1, 4096, 0, 1) == MX_ENOMEM && mentions_fft(), "scratch over the memory limit: %s",
        mx_last_error());
  CHECK(mx_fft_r2c(p, big, bo, 1, 1, 4096, 1) == MX_ENOMEM && mentions_fft(), "r2c scratch over the limit");
  mx_memory_set_memory_limit(-1);
  CHECK(mx_fft_c2c(p, big, bo, 1, 1, 4096, 0, 1) == MX_OK, "works again without the limit");
  mx_fft_plan_release(p);
  free(big), free(bo);
  mx_fft_plan_release(NULL);
  CHECK(mx_fft_plan_length(NULL) == 0, "length of NULL");
}

int main(void) {
  test_numpy();
  test_direct();
  test_large();
  test_layouts();
  test_parallel_batch();
  test_threads();
  test_cache();
  test_errors();
  printf("worst err / (eps log2 n): mixed radix %.3f (bound %.0f), Bluestein %.3f (bound %.0f (3 + 6 / log2 n))\n",
         worst_ratio[0], C_TOL, worst_ratio[1], C_TOL);
  mx_fft_cache_clear();
  printf("test_fft: %d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
