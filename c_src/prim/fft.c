/* fft.c: mixed-radix Stockham FFT and Bluestein's algorithm (see fft.h).
 *
 * Stockham stage for radix r (L = product of earlier radices, m = n/(L r)):
 * with Y(t, k) the length-L DFT of x[t + (n/L) u] stored at y[k (n/L) + t],
 *   Y'(t, k + L q) = sum_p w_r^{pq} [w_{Lr}^{pk} Y(t + m p, k)],  t < m, k < L,
 * read at x[k m r + t + m p] and written to y'[k m + t + q L m]. It starts from
 * x itself (L = 1) and ends sorted (m = 1), so there is no bit reversal. Stages
 * ping-pong between two buffers; inverse transforms run the forward one on
 * conjugated data (ifft(x) = conj(fft(conj(x)))), fused into the copies. */
#include "fft.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STAGES 64
#define MAX_GENERIC 61 /* largest odd prime radix run directly; beyond it Bluestein */
#define CACHE_PLANS 64
#define CACHE_BYTES ((size_t)128 << 20)

typedef struct {
  int radix;
  int64_t L, m;
  const double *tw;   /* L*(radix-1) complex: tw[k(radix-1) + p-1] = w_{L radix}^{pk} */
  const double *root; /* generic radix only: (cos, sin)(2 pi j / radix), j < radix */
} fft_stage;

typedef struct {
  int64_t n;
  int nstages;
  fft_stage st[MAX_STAGES];
  double *mem;
} fft_core;

typedef struct {
  mx_fft_plan *half; /* plan of n/2, from the cache */
  double *tw;        /* n/2 complex: w_n^k */
} real_part;

struct mx_fft_plan {
  int64_t n;
  int bluestein;
  fft_core core; /* length n, or M for Bluestein */
  int64_t M;
  double *chirp;   /* n complex: exp(-pi i t^2 / n) */
  double *bfft;    /* M complex: FFT_M of the wrapped conjugate chirp, times 1/M */
  int64_t scratch; /* complex elements of scratch one transform needs */
  size_t bytes;
  /* Tables for real transforms of even n, built on first use. */
  pthread_mutex_t real_lock;
  _Atomic(real_part *) real;
  int64_t refs; /* under cache_lock */
  uint64_t stamp;
};

/* ---- twiddles ------------------------------------------------------------- */

/* exp(-2 pi i k / n), reduced exactly to an angle in [0, pi/4] so sin and cos
 * are evaluated where they are accurate to about an ulp. */
static void twiddle(int64_t k, int64_t n, double *re, double *im) {
  k %= n;
  if (k < 0) k += n;
  int64_t q = (4 * k) / n, r = 4 * k - q * n; /* angle = (pi/2)(q + r/n) */
  double c, s;
  if (2 * r <= n) {
    double a = M_PI_2 * ((double)r / (double)n);
    c = cos(a);
    s = sin(a);
  } else {
    double a = M_PI_2 * ((double)(n - r) / (double)n);
    c = sin(a);
    s = cos(a);
  }
  double C, S;
  switch (q) {
  case 0: C = c, S = s; break;
  case 1: C = -s, S = c; break;
  case 2: C = -c, S = -s; break;
  default: C = s, S = -c; break;
  }
  *re = C;
  *im = -S;
}

/* ---- plan construction ---------------------------------------------------- */

/* Radices of n (8s, then a 4 or 2, then odd primes); -1 if a prime factor is
 * larger than MAX_GENERIC. */
static int factorize(int64_t n, int *r) {
  int k = 0, twos = 0;
  while (n % 2 == 0) twos++, n /= 2;
  for (; twos >= 3; twos -= 3) r[k++] = 8;
  if (twos) r[k++] = 1 << twos;
  for (int p = 3; p <= MAX_GENERIC && n > 1; p += 2)
    while (n % p == 0) r[k++] = p, n /= p;
  return n == 1 ? k : -1;
}

/* Cost per element of one stage, in units of ~0.06 ns measured on x86-64
 * (SSE3): the butterflies' flops plus memory traffic. The generic radix's
 * O(r) sums measure about twice their flop count. */
static double stage_cost(int r) {
  switch (r) {
  case 2: return 5 + 4;
  case 3: return 10 + 4;
  case 4: return 8.5 + 4;
  case 5: return 14.4 + 4;
  case 8: return 12.25 + 4;
  default: return 4.5 * r + 4;
  }
}

static double mixed_cost(int64_t n, const int *r, int k) {
  double c = 0;
  for (int i = 0; i < k; i++) c += stage_cost(r[i]);
  return (double)n * c;
}

/* Bluestein's convolution length: the cheapest 2^a 3^b 5^c >= 2n - 1 by the
 * cost model (a power of two can be up to twice as long as needed). */
static int64_t bluestein_size(int64_t n) {
  const int64_t need = 2 * n - 1;
  int64_t best = 1;
  while (best < need) best *= 2;
  int r[MAX_STAGES];
  double best_cost = mixed_cost(best, r, factorize(best, r));
  for (int64_t p5 = 1; p5 < best; p5 *= 5)
    for (int64_t p3 = p5; p3 < best; p3 *= 3) {
      int64_t M = p3;
      while (M < need) M *= 2;
      if (M >= best) continue;
      double c = mixed_cost(M, r, factorize(M, r));
      if (c < best_cost) best = M, best_cost = c;
    }
  return best;
}

static double bluestein_cost(int64_t n) {
  int64_t M = bluestein_size(n);
  int r[MAX_STAGES];
  int k = factorize(M, r);
  return 2 * mixed_cost(M, r, k) + 8.0 * (double)M + 16.0 * (double)n;
}

static mx_status oom(const char *what, int64_t bytes) {
  return mx_error(MX_ENOMEM, "[fft] out of memory allocating %s (%lld bytes)", what, (long long)bytes);
}

static mx_status core_build(int64_t n, const int *r, int k, fft_core *c, size_t *bytes) {
  c->n = n;
  c->nstages = k;
  c->mem = NULL;
  int64_t total = 0, L = 1;
  for (int s = 0; s < k; s++) {
    total += L * (r[s] - 1) + (r[s] > 5 && r[s] % 2 ? r[s] : 0);
    L *= r[s];
  }
  if (total > 0) {
    c->mem = malloc((size_t)total * 2 * sizeof(double));
    if (!c->mem) return oom("FFT twiddles", total * 16);
  }
  *bytes += (size_t)total * 2 * sizeof(double);
  double *w = c->mem;
  L = 1;
  for (int s = 0; s < k; s++) {
    fft_stage *st = &c->st[s];
    int64_t len = L * r[s];
    st->radix = r[s];
    st->L = L;
    st->m = n / len;
    st->tw = w;
    for (int64_t q = 0; q < L; q++)
      for (int p = 1; p < r[s]; p++, w += 2) twiddle(p * q, len, &w[0], &w[1]);
    st->root = NULL;
    if (r[s] > 5 && r[s] % 2) {
      st->root = w;
      for (int j = 0; j < r[s]; j++, w += 2) {
        twiddle(j, r[s], &w[0], &w[1]);
        w[1] = -w[1];
      }
    }
    L = len;
  }
  return MX_OK;
}

/* ---- complex arithmetic --------------------------------------------------- */

/* One complex double per SSE register where available (x86-64 always has
 * SSE2; SSE3's addsub makes the product 4 instructions); plain C elsewhere.
 * Both compute the same roundings: each product is ar*br - ai*bi, ar*bi + ai*br. */
#define INLINE static inline __attribute__((always_inline))
#if defined(__SSE3__)
#include <pmmintrin.h>
typedef __m128d cx;
INLINE cx cx_load(const double *p) { return _mm_loadu_pd(p); }
INLINE void cx_store(double *p, cx a) { _mm_storeu_pd(p, a); }
INLINE cx cx_add(cx a, cx b) { return _mm_add_pd(a, b); }
INLINE cx cx_sub(cx a, cx b) { return _mm_sub_pd(a, b); }
INLINE cx cx_scale(cx a, double s) { return _mm_mul_pd(a, _mm_set1_pd(s)); }
INLINE cx cx_zero(void) { return _mm_setzero_pd(); }
INLINE cx cx_conj(cx a) { return _mm_xor_pd(a, _mm_set_pd(-0.0, 0.0)); }
INLINE cx cx_real(cx a) { return _mm_move_sd(_mm_setzero_pd(), a); }
INLINE cx cx_mul(cx a, cx w) {
  cx wr = _mm_movedup_pd(w), wi = _mm_unpackhi_pd(w, w);
  return _mm_addsub_pd(_mm_mul_pd(a, wr), _mm_mul_pd(_mm_shuffle_pd(a, a, 1), wi));
}
/* -i a = (ai, -ar) and +i a = (-ai, ar): a swap and a sign flip. */
INLINE cx cx_mul_negi(cx a) { return _mm_xor_pd(_mm_shuffle_pd(a, a, 1), _mm_set_pd(-0.0, 0.0)); }
INLINE cx cx_mul_posi(cx a) { return _mm_xor_pd(_mm_shuffle_pd(a, a, 1), _mm_set_pd(0.0, -0.0)); }
#else
typedef struct {
  double re, im;
} cx;
INLINE cx cx_load(const double *p) { return (cx){p[0], p[1]}; }
INLINE void cx_store(double *p, cx a) { p[0] = a.re, p[1] = a.im; }
INLINE cx cx_add(cx a, cx b) { return (cx){a.re + b.re, a.im + b.im}; }
INLINE cx cx_sub(cx a, cx b) { return (cx){a.re - b.re, a.im - b.im}; }
INLINE cx cx_scale(cx a, double s) { return (cx){a.re * s, a.im * s}; }
INLINE cx cx_zero(void) { return (cx){0, 0}; }
INLINE cx cx_conj(cx a) { return (cx){a.re, -a.im}; }
INLINE cx cx_real(cx a) { return (cx){a.re, 0}; }
INLINE cx cx_mul(cx a, cx w) { return (cx){a.re * w.re - a.im * w.im, a.im * w.re + a.re * w.im}; }
INLINE cx cx_mul_negi(cx a) { return (cx){a.im, -a.re}; }
INLINE cx cx_mul_posi(cx a) { return (cx){-a.im, a.re}; }
#endif

/* ---- butterflies: a[0..r) in, y[0..r) out, y_q = sum_p a_p w_r^{pq} ---------- */

INLINE void bfly2(const cx *a, cx *y) {
  y[0] = cx_add(a[0], a[1]);
  y[1] = cx_sub(a[0], a[1]);
}

INLINE void bfly3(const cx *a, cx *y) {
  const double s3 = 0.86602540378443864676; /* sin(2 pi / 3) */
  cx s = cx_add(a[1], a[2]), b = cx_sub(a[0], cx_scale(s, 0.5));
  cx d = cx_mul_negi(cx_scale(cx_sub(a[1], a[2]), s3));
  y[0] = cx_add(a[0], s);
  y[1] = cx_add(b, d);
  y[2] = cx_sub(b, d);
}

INLINE void bfly4(const cx *a, cx *y) {
  cx t0 = cx_add(a[0], a[2]), t1 = cx_sub(a[0], a[2]);
  cx t2 = cx_add(a[1], a[3]), t3 = cx_mul_negi(cx_sub(a[1], a[3]));
  y[0] = cx_add(t0, t2);
  y[1] = cx_add(t1, t3);
  y[2] = cx_sub(t0, t2);
  y[3] = cx_sub(t1, t3);
}

INLINE void bfly5(const cx *a, cx *y) {
  const double c1 = 0.30901699437494742410, c2 = -0.80901699437494742410; /* cos(2 pi/5), cos(4 pi/5) */
  const double s1 = 0.95105651629515357212, s2 = 0.58778525229247312917; /* sin(2 pi/5), sin(4 pi/5) */
  cx s14 = cx_add(a[1], a[4]), d14 = cx_sub(a[1], a[4]);
  cx s23 = cx_add(a[2], a[3]), d23 = cx_sub(a[2], a[3]);
  cx A1 = cx_add(a[0], cx_add(cx_scale(s14, c1), cx_scale(s23, c2)));
  cx A2 = cx_add(a[0], cx_add(cx_scale(s14, c2), cx_scale(s23, c1)));
  cx B1 = cx_mul_negi(cx_add(cx_scale(d14, s1), cx_scale(d23, s2))); /* -i B */
  cx B2 = cx_mul_negi(cx_sub(cx_scale(d14, s2), cx_scale(d23, s1)));
  y[0] = cx_add(a[0], cx_add(s14, s23));
  y[1] = cx_add(A1, B1);
  y[4] = cx_sub(A1, B1);
  y[2] = cx_add(A2, B2);
  y[3] = cx_sub(A2, B2);
}

/* Radix 8 as two radix-4 halves joined by w_8^q (q = 1, 3 cost two adds and a scale). */
INLINE void bfly8(const cx *a, cx *y) {
  const double h = 0.70710678118654752440; /* 1/sqrt(2) */
  cx e[4], o[4], E[4], O[4];
  for (int i = 0; i < 4; i++) e[i] = a[2 * i], o[i] = a[2 * i + 1];
  bfly4(e, E);
  bfly4(o, O);
  cx n1 = cx_mul_negi(O[1]), n3 = cx_mul_negi(O[3]);
  cx w1 = cx_scale(cx_add(O[1], n1), h); /* (1 - i)/sqrt2 O1 */
  cx w2 = cx_mul_negi(O[2]);
  cx w3 = cx_scale(cx_sub(n3, O[3]), h); /* (-1 - i)/sqrt2 O3 */
  y[0] = cx_add(E[0], O[0]);
  y[4] = cx_sub(E[0], O[0]);
  y[1] = cx_add(E[1], w1);
  y[5] = cx_sub(E[1], w1);
  y[2] = cx_add(E[2], w2);
  y[6] = cx_sub(E[2], w2);
  y[3] = cx_add(E[3], w3);
  y[7] = cx_sub(E[3], w3);
}

/* ---- stages --------------------------------------------------------------- */

/* A radix-R stage over k in [k0, k1), t in [t0, t1): for each k, twiddles
 * w_{LR}^{pk} (ones at k = 0, skipped). */
#define DEFINE_STAGE(R)                                                                               \
  static void stage##R(const fft_stage *s, const double *restrict x, double *restrict y, int64_t k0, \
                       int64_t k1, int64_t t0, int64_t t1) {                                          \
    const int64_t m = s->m, ys = s->L * m;                                                            \
    for (int64_t k = k0; k < k1; k++) {                                                               \
      const double *xk = x + 2 * (k * m * (R));                                                       \
      double *yk = y + 2 * (k * m);                                                                   \
      cx a[R], o[R], w[R];                                                                            \
      if (k == 0) {                                                                                   \
        for (int64_t t = t0; t < t1; t++) {                                                           \
          for (int p = 0; p < (R); p++) a[p] = cx_load(xk + 2 * (t + p * m));                         \
          bfly##R(a, o);                                                                              \
          for (int q = 0; q < (R); q++) cx_store(yk + 2 * (t + q * ys), o[q]);                        \
        }                                                                                             \
        continue;                                                                                     \
      }                                                                                               \
      for (int p = 1; p < (R); p++) w[p] = cx_load(s->tw + 2 * (((R)-1) * k + p - 1));                 \
      for (int64_t t = t0; t < t1; t++) {                                                             \
        a[0] = cx_load(xk + 2 * t);                                                                   \
        for (int p = 1; p < (R); p++) a[p] = cx_mul(cx_load(xk + 2 * (t + p * m)), w[p]);             \
        bfly##R(a, o);                                                                                \
        for (int q = 0; q < (R); q++) cx_store(yk + 2 * (t + q * ys), o[q]);                          \
      }                                                                                               \
    }                                                                                                 \
  }

DEFINE_STAGE(2)
DEFINE_STAGE(3)
DEFINE_STAGE(4)
DEFINE_STAGE(5)
DEFINE_STAGE(8)

/* Odd radix r: outputs q and r-q share the sums over pairs (j, r-j):
 * y_q = A - iB, y_{r-q} = A + iB with A = a0 + sum cos(.) (a_j + a_{r-j}),
 * B = sum sin(.) (a_j - a_{r-j}). */
static void stage_generic(const fft_stage *s, const double *restrict x, double *restrict y, int64_t k0, int64_t k1,
                          int64_t t0, int64_t t1) {
  const int r = s->radix, h = (r - 1) / 2;
  const int64_t m = s->m, ys = s->L * m;
  const double *cs = s->root;
  cx a[MAX_GENERIC], sm[MAX_GENERIC], df[MAX_GENERIC];
  for (int64_t k = k0; k < k1; k++) {
    const double *w = s->tw + 2 * (r - 1) * k;
    for (int64_t t = t0; t < t1; t++) {
      const double *xt = x + 2 * (k * m * r + t);
      a[0] = cx_load(xt);
      for (int p = 1; p < r; p++) a[p] = cx_mul(cx_load(xt + 2 * p * m), cx_load(w + 2 * (p - 1)));
      cx y0 = a[0];
      for (int j = 1; j <= h; j++) {
        sm[j] = cx_add(a[j], a[r - j]);
        df[j] = cx_sub(a[j], a[r - j]);
        y0 = cx_add(y0, sm[j]);
      }
      double *o = y + 2 * (k * m + t);
      cx_store(o, y0);
      for (int q = 1; q <= h; q++) {
        cx A = a[0], B = cx_zero();
        int idx = 0;
        for (int j = 1; j <= h; j++) {
          idx += q;
          if (idx >= r) idx -= r;
          A = cx_add(A, cx_scale(sm[j], cs[2 * idx]));
          B = cx_add(B, cx_scale(df[j], cs[2 * idx + 1]));
        }
        B = cx_mul_negi(B);
        cx_store(o + 2 * q * ys, cx_add(A, B));
        cx_store(o + 2 * (r - q) * ys, cx_sub(A, B));
      }
    }
  }
}

static void run_stage(const fft_stage *s, const double *restrict x, double *restrict y, int64_t k0, int64_t k1,
                      int64_t t0, int64_t t1) {
  switch (s->radix) {
  case 2: stage2(s, x, y, k0, k1, t0, t1); break;
  case 3: stage3(s, x, y, k0, k1, t0, t1); break;
  case 4: stage4(s, x, y, k0, k1, t0, t1); break;
  case 5: stage5(s, x, y, k0, k1, t0, t1); break;
  case 8: stage8(s, x, y, k0, k1, t0, t1); break;
  default: stage_generic(s, x, y, k0, k1, t0, t1); break;
  }
}

/* Lengths from which one transform's stages are split across threads: a
 * stage then takes ~0.2 ms; at 2^15..2^17 the hand-off cost more than it saved. */
#define PAR_MIN_N ((int64_t)1 << 18)

typedef struct {
  const fft_stage *s;
  const double *x;
  double *y;
  int by_k;
} stage_job;

static void stage_range(void *ctx, int64_t lo, int64_t hi) {
  const stage_job *j = ctx;
  if (j->by_k)
    run_stage(j->s, j->x, j->y, lo, hi, 0, j->s->m);
  else
    run_stage(j->s, j->x, j->y, 0, j->s->L, lo, hi);
}

/* Forward transform of x by the stages; returns x or y, whichever holds it.
 * A stage's outputs are disjoint across k and t, so either splits; when the
 * pool is already busy (a batch split over transforms) this runs serially. */
static double *core_run(const fft_core *c, double *x, double *y) {
  for (int s = 0; s < c->nstages; s++) {
    const fft_stage *st = &c->st[s];
    if (c->n >= PAR_MIN_N) {
      stage_job j = {st, x, y, st->L >= st->m};
      int64_t count = j.by_k ? st->L : st->m, per = c->n / count;
      mx_parallel_for(count, 8192 / per + 1, stage_range, &j);
    } else {
      run_stage(st, x, y, 0, st->L, 0, st->m);
    }
    double *t = x;
    x = y;
    y = t;
  }
  return x;
}

/* ---- plans ---------------------------------------------------------------- */

static void plan_free(mx_fft_plan *p) {
  if (!p) return;
  real_part *r = atomic_load(&p->real);
  if (r) {
    mx_fft_plan_release(r->half);
    free(r->tw);
    free(r);
  }
  pthread_mutex_destroy(&p->real_lock);
  free(p->core.mem);
  free(p->chirp);
  free(p->bfft);
  free(p);
}

static mx_status bluestein_build(mx_fft_plan *p) {
  int64_t n = p->n, M = bluestein_size(n);
  int r[MAX_STAGES];
  int k = factorize(M, r);
  mx_status st = core_build(M, r, k, &p->core, &p->bytes);
  if (st != MX_OK) return st;
  p->M = M;
  p->chirp = malloc((size_t)n * 2 * sizeof(double));
  p->bfft = malloc((size_t)M * 2 * sizeof(double));
  double *tmp = malloc((size_t)M * 2 * sizeof(double));
  if (!p->chirp || !p->bfft || !tmp) {
    free(tmp);
    return oom("a Bluestein chirp", (n + 2 * M) * 16);
  }
  p->bytes += (size_t)(n + M) * 2 * sizeof(double);
  /* t^2 mod 2n, kept exact by (t+1)^2 = t^2 + 2t + 1. */
  int64_t sq = 0;
  for (int64_t t = 0; t < n; t++) {
    twiddle(sq, 2 * n, &p->chirp[2 * t], &p->chirp[2 * t + 1]);
    sq += 2 * t + 1;
    while (sq >= 2 * n) sq -= 2 * n;
  }
  double *b = p->bfft;
  memset(b, 0, (size_t)M * 2 * sizeof(double));
  for (int64_t j = 0; j < n; j++) {
    b[2 * j] = p->chirp[2 * j];
    b[2 * j + 1] = -p->chirp[2 * j + 1];
    if (j > 0) {
      b[2 * (M - j)] = b[2 * j];
      b[2 * (M - j) + 1] = b[2 * j + 1];
    }
  }
  double *res = core_run(&p->core, b, tmp);
  for (int64_t i = 0; i < 2 * M; i++) b[i] = res[i] / (double)M;
  free(tmp);
  p->scratch = 2 * M;
  return MX_OK;
}

static mx_status plan_build(int64_t n, mx_fft_plan **out) {
  mx_fft_plan *p = calloc(1, sizeof *p);
  if (!p) return oom("an FFT plan", (int64_t)sizeof *p);
  p->n = n;
  pthread_mutex_init(&p->real_lock, NULL);
  atomic_init(&p->real, NULL);
  p->bytes = sizeof *p;
  int r[MAX_STAGES];
  int k = factorize(n, r);
  mx_status st;
  if (k >= 0 && mixed_cost(n, r, k) <= bluestein_cost(n)) {
    st = core_build(n, r, k, &p->core, &p->bytes);
    p->scratch = n;
  } else {
    p->bluestein = 1;
    st = bluestein_build(p);
  }
  if (st != MX_OK) {
    plan_free(p);
    return st;
  }
  *out = p;
  return MX_OK;
}

/* Forward transform of the n complex values in x, using scr (p->scratch
 * complex); returns x or scr, whichever holds the result. */
static double *forward(const mx_fft_plan *p, double *x, double *scr) {
  if (!p->bluestein) return core_run(&p->core, x, scr);
  const int64_t n = p->n, M = p->M;
  const double *c = p->chirp, *B = p->bfft;
  double *a = scr, *b = scr + 2 * M;
  for (int64_t t = 0; t < n; t++) cx_store(a + 2 * t, cx_mul(cx_load(x + 2 * t), cx_load(c + 2 * t)));
  memset(a + 2 * n, 0, (size_t)(M - n) * 2 * sizeof(double));
  double *r = core_run(&p->core, a, b), *o = r == a ? b : a;
  /* Convolution: ifft(A B) = conj(fft(conj(A B))); 1/M is in B. */
  for (int64_t k = 0; k < M; k++) cx_store(r + 2 * k, cx_conj(cx_mul(cx_load(r + 2 * k), cx_load(B + 2 * k))));
  double *v = core_run(&p->core, r, o);
  for (int64_t k = 0; k < n; k++) cx_store(x + 2 * k, cx_mul(cx_conj(cx_load(v + 2 * k)), cx_load(c + 2 * k)));
  return x;
}

/* ---- the cache ------------------------------------------------------------ */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static mx_fft_plan *cache[CACHE_PLANS];
static int cache_count;
static size_t cache_bytes;
static uint64_t cache_clock;

static mx_fft_plan *cache_find(int64_t n) {
  for (int i = 0; i < cache_count; i++)
    if (cache[i]->n == n) {
      cache[i]->refs++;
      cache[i]->stamp = ++cache_clock;
      return cache[i];
    }
  return NULL;
}

mx_status mx_fft_plan_get(int64_t n, mx_fft_plan **out) {
  if (!out) return mx_error(MX_EINVAL, "[fft] plan_get: out is NULL");
  *out = NULL;
  if (n < 1 || n > MX_FFT_MAX_N)
    return mx_error(MX_EINVAL, "[fft] transform length must be in 1..2^40, got %lld", (long long)n);
  pthread_mutex_lock(&cache_lock);
  mx_fft_plan *p = cache_find(n);
  pthread_mutex_unlock(&cache_lock);
  if (p) {
    *out = p;
    return MX_OK;
  }
  /* Built outside the lock: large plans take a while and may themselves use the cache. */
  mx_fft_plan *fresh = NULL;
  mx_status st = plan_build(n, &fresh);
  if (st != MX_OK) return st;
  mx_fft_plan *victims[CACHE_PLANS + 1];
  int nv = 0;
  pthread_mutex_lock(&cache_lock);
  p = cache_find(n);
  if (p) {
    victims[nv++] = fresh; /* another thread won the race */
  } else if (fresh->bytes > CACHE_BYTES) {
    p = fresh; /* too big to keep: lives while in use */
    p->refs = 1;
  } else {
    while (cache_count >= CACHE_PLANS || (cache_count > 0 && cache_bytes + fresh->bytes > CACHE_BYTES)) {
      int lru = 0;
      for (int i = 1; i < cache_count; i++)
        if (cache[i]->stamp < cache[lru]->stamp) lru = i;
      mx_fft_plan *e = cache[lru];
      cache[lru] = cache[--cache_count];
      cache_bytes -= e->bytes;
      if (--e->refs == 0) victims[nv++] = e;
    }
    p = fresh;
    p->refs = 2; /* the cache's and the caller's */
    p->stamp = ++cache_clock;
    cache[cache_count++] = p;
    cache_bytes += p->bytes;
  }
  pthread_mutex_unlock(&cache_lock);
  /* Freed outside the lock: a plan's release of its half plan takes it. */
  for (int i = 0; i < nv; i++) plan_free(victims[i]);
  *out = p;
  return MX_OK;
}

void mx_fft_plan_release(mx_fft_plan *p) {
  if (!p) return;
  pthread_mutex_lock(&cache_lock);
  int last = --p->refs == 0;
  pthread_mutex_unlock(&cache_lock);
  if (last) plan_free(p);
}

void mx_fft_cache_clear(void) {
  mx_fft_plan *victims[CACHE_PLANS];
  int nv = 0;
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < cache_count; i++)
    if (--cache[i]->refs == 0) victims[nv++] = cache[i];
  cache_count = 0;
  cache_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
  for (int i = 0; i < nv; i++) plan_free(victims[i]);
}

int64_t mx_fft_plan_length(const mx_fft_plan *p) { return p ? p->n : 0; }
int mx_fft_plan_is_bluestein(const mx_fft_plan *p) { return p ? p->bluestein : 0; }

/* Packing tables for even n (plan of n/2 and w_n^k), built once under the plan's lock. */
static mx_status real_tables(const mx_fft_plan *cp, const real_part **out) {
  mx_fft_plan *p = (mx_fft_plan *)cp; /* the lazily built part is internal state */
  real_part *r = atomic_load_explicit(&p->real, memory_order_acquire);
  if (r) {
    *out = r;
    return MX_OK;
  }
  mx_status st = MX_OK;
  pthread_mutex_lock(&p->real_lock);
  r = atomic_load_explicit(&p->real, memory_order_relaxed);
  if (!r) {
    int64_t h = p->n / 2;
    r = calloc(1, sizeof *r);
    if (r) r->tw = malloc((size_t)h * 2 * sizeof(double));
    if (!r || !r->tw) {
      st = oom("real-FFT twiddles", h * 16);
    } else {
      st = mx_fft_plan_get(h, &r->half);
      for (int64_t k = 0; st == MX_OK && k < h; k++) twiddle(k, p->n, &r->tw[2 * k], &r->tw[2 * k + 1]);
    }
    if (st == MX_OK) {
      atomic_store_explicit(&p->real, r, memory_order_release);
    } else {
      if (r) free(r->tw);
      free(r);
      r = NULL;
    }
  }
  pthread_mutex_unlock(&p->real_lock);
  *out = r;
  return st;
}

/* ---- transforms ----------------------------------------------------------- */

/* Checks a call's arguments; every index the transforms touch (times two for
 * complex, plus the n/2+1 outputs of r2c) must fit in int64 with room to spare. */
static mx_status check_args(const char *fn, const mx_fft_plan *p, const void *in, const void *out, int64_t howmany,
                            int64_t stride, int64_t dist) {
  if (!p) return mx_error(MX_EINVAL, "[fft] %s: plan is NULL", fn);
  if (howmany < 0) return mx_error(MX_EINVAL, "[fft] %s: howmany must be >= 0, got %lld", fn, (long long)howmany);
  if (howmany == 0) return MX_OK;
  if (!in || !out) return mx_error(MX_EINVAL, "[fft] %s: input or output pointer is NULL", fn);
  if (stride < 1 || dist < 0)
    return mx_error(MX_EINVAL, "[fft] %s: stride must be >= 1 and dist >= 0, got stride %lld, dist %lld", fn,
                    (long long)stride, (long long)dist);
  int64_t a, b, c;
  const int64_t lim = INT64_MAX / 4;
  if (__builtin_mul_overflow(howmany - 1, dist, &a) || __builtin_mul_overflow(p->n, stride, &b) ||
      __builtin_add_overflow(a, b, &c) || c > lim || __builtin_mul_overflow(howmany, p->n + 2, &a) || a > lim)
    return mx_error(MX_EINVAL, "[fft] %s: %lld transforms of length %lld at stride %lld, dist %lld overflow int64 indexing",
                    fn, (long long)howmany, (long long)p->n, (long long)stride, (long long)dist);
  return MX_OK;
}

/* Small transforms take their scratch (complex elements) from the stack. */
#define STACK_SCRATCH 256

typedef struct {
  const mx_fft_plan *p;
  const real_part *rp;
  const double *in;
  double *out;
  int64_t stride, dist, scratch;
  int inverse;
  double scale;
  atomic_int failed;
} fft_job;

/* A chunk's scratch: the stack for small transforms, else the engine's
 * allocator (its size-class cache reuses large blocks instead of faulting
 * fresh pages in every call, and its memory limit applies). NULL: failed. */
static double *scratch_get(fft_job *J, double *stack, mx_buffer **b) {
  *b = NULL;
  if (J->scratch <= STACK_SCRATCH) return stack;
  if (mx_buffer_alloc((size_t)J->scratch * 2 * sizeof(double), b) != MX_OK) {
    atomic_store(&J->failed, 1);
    return NULL;
  }
  return (*b)->data;
}

static void c2c_range(void *ctx, int64_t lo, int64_t hi) {
  fft_job *J = ctx;
  const mx_fft_plan *p = J->p;
  const int64_t n = p->n, st = J->stride;
  const double sc = J->scale, isc = J->inverse ? -sc : sc, sgn = J->inverse ? -1.0 : 1.0;
  const int odd = !p->bluestein && (p->core.nstages & 1);
  double stack[2 * STACK_SCRATCH];
  mx_buffer *sb = NULL;
  double *scr = scratch_get(J, stack, &sb);
  if (!scr) return;
  for (int64_t j = lo; j < hi; j++) {
    const double *x = J->in + 2 * j * J->dist;
    double *y = J->out + 2 * j * n;
    /* Start in the buffer that makes the last stage land in y. */
    double *a = odd ? scr : y, *b = odd ? y : scr;
    for (int64_t k = 0; k < n; k++) {
      a[2 * k] = x[2 * k * st];
      a[2 * k + 1] = sgn * x[2 * k * st + 1];
    }
    forward(p, a, b);
    if (sc != 1.0 || J->inverse)
      for (int64_t k = 0; k < n; k++) {
        y[2 * k] *= sc;
        y[2 * k + 1] *= isc;
      }
  }
  mx_buffer_release(sb);
}

static void r2c_range(void *ctx, int64_t lo, int64_t hi) {
  fft_job *J = ctx;
  const mx_fft_plan *p = J->p;
  const int64_t n = p->n, h = n / 2, st = J->stride;
  const double sc = J->scale;
  double stack[2 * STACK_SCRATCH];
  mx_buffer *sb = NULL;
  double *buf = scratch_get(J, stack, &sb);
  if (!buf) return;
  for (int64_t j = lo; j < hi; j++) {
    const double *x = J->in + j * J->dist;
    double *y = J->out + 2 * j * (h + 1);
    if (n % 2 == 0) {
      /* z_t = x_2t + i x_2t+1; X_k = E_k + w^k O_k from Z_k and conj(Z_{h-k}). */
      const double *w = J->rp->tw;
      for (int64_t t = 0; t < h; t++) {
        buf[2 * t] = x[2 * t * st];
        buf[2 * t + 1] = x[(2 * t + 1) * st];
      }
      const double *Z = forward(J->rp->half, buf, buf + 2 * h);
      y[0] = (Z[0] + Z[1]) * sc;
      y[1] = 0;
      y[2 * h] = (Z[0] - Z[1]) * sc;
      y[2 * h + 1] = 0;
      for (int64_t k = 1; k < h; k++) {
        cx zk = cx_load(Z + 2 * k), zc = cx_conj(cx_load(Z + 2 * (h - k)));
        cx e = cx_scale(cx_add(zk, zc), 0.5), o = cx_mul_negi(cx_scale(cx_sub(zk, zc), 0.5));
        cx_store(y + 2 * k, cx_scale(cx_add(e, cx_mul(o, cx_load(w + 2 * k))), sc));
      }
    } else {
      for (int64_t t = 0; t < n; t++) {
        buf[2 * t] = x[t * st];
        buf[2 * t + 1] = 0;
      }
      const double *X = forward(p, buf, buf + 2 * n);
      for (int64_t k = 0; k <= h; k++) {
        y[2 * k] = X[2 * k] * sc;
        y[2 * k + 1] = X[2 * k + 1] * sc;
      }
    }
  }
  mx_buffer_release(sb);
}

static void c2r_range(void *ctx, int64_t lo, int64_t hi) {
  fft_job *J = ctx;
  const mx_fft_plan *p = J->p;
  const int64_t n = p->n, h = n / 2, st = J->stride;
  const double sc = J->scale;
  double stack[2 * STACK_SCRATCH];
  mx_buffer *sb = NULL;
  double *buf = scratch_get(J, stack, &sb);
  if (!buf) return;
  for (int64_t j = lo; j < hi; j++) {
    const double *X = J->in + 2 * j * J->dist;
    double *y = J->out + j * n;
    if (n % 2 == 0) {
      /* Z_k = E_k + i O_k with E = X_k + conj(X_{h-k}), O = (X_k - conj(X_{h-k})) w^-k;
       * z = ifft_h(Z) holds x_2t + i x_2t+1. Stored conjugated for the forward run. */
      const double *w = J->rp->tw;
      for (int64_t k = 0; k < h; k++) {
        cx xk = cx_load(X + 2 * k * st), xc = cx_conj(cx_load(X + 2 * (h - k) * st));
        if (k == 0) xk = cx_real(xk), xc = cx_real(xc);
        cx e = cx_add(xk, xc), o = cx_mul(cx_sub(xk, xc), cx_conj(cx_load(w + 2 * k)));
        cx_store(buf + 2 * k, cx_conj(cx_add(e, cx_mul_posi(o))));
      }
      const double *z = forward(J->rp->half, buf, buf + 2 * h);
      for (int64_t t = 0; t < h; t++) {
        y[2 * t] = z[2 * t] * sc;
        y[2 * t + 1] = -z[2 * t + 1] * sc;
      }
    } else {
      /* The Hermitian extension, conjugated: x = Re fft(conj(Y)). */
      buf[0] = X[0];
      buf[1] = 0;
      for (int64_t k = 1; k <= h; k++) {
        double xr = X[2 * k * st], xi = X[2 * k * st + 1];
        buf[2 * k] = xr;
        buf[2 * k + 1] = -xi;
        buf[2 * (n - k)] = xr;
        buf[2 * (n - k) + 1] = xi;
      }
      const double *z = forward(p, buf, buf + 2 * n);
      for (int64_t t = 0; t < n; t++) y[t] = z[2 * t] * sc;
    }
  }
  mx_buffer_release(sb);
}

/* Runs howmany transforms, split across threads when there is enough work. */
static mx_status run_job(const char *fn, fft_job *J, int64_t howmany, mx_range_fn range) {
  atomic_init(&J->failed, 0);
  int64_t grain = 32768 / (J->p->n + 1) + 1;
  mx_parallel_for(howmany, grain, range, J);
  if (atomic_load(&J->failed))
    return mx_error(MX_ENOMEM,
                    "[fft] %s: cannot allocate %lld bytes of scratch for a length-%lld transform (out of memory or "
                    "over the memory limit; free arrays or raise Mx.Memory.set_memory_limit/1)",
                    fn, (long long)J->scratch * 16, (long long)J->p->n);
  return MX_OK;
}

mx_status mx_fft_c2c(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, int inverse, double scale) {
  mx_status st = check_args("c2c", p, in, out, howmany, stride, dist);
  if (st != MX_OK || howmany == 0) return st;
  fft_job J = {.p = p, .in = in, .out = out, .stride = stride, .dist = dist, .inverse = inverse != 0, .scale = scale,
               .scratch = p->scratch};
  return run_job("c2c", &J, howmany, c2c_range);
}

/* Scratch for one real transform: the packed half-length vector and its plan's
 * scratch (even n), or a full complex vector and the plan's scratch (odd n). */
static mx_status real_setup(const mx_fft_plan *p, fft_job *J) {
  if (p->n % 2 == 0) {
    mx_status st = real_tables(p, &J->rp);
    if (st != MX_OK) return st;
    J->scratch = p->n / 2 + J->rp->half->scratch;
  } else {
    J->scratch = p->n + p->scratch;
  }
  return MX_OK;
}

mx_status mx_fft_r2c(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, double scale) {
  mx_status st = check_args("r2c", p, in, out, howmany, stride, dist);
  if (st != MX_OK || howmany == 0) return st;
  fft_job J = {.p = p, .in = in, .out = out, .stride = stride, .dist = dist, .scale = scale};
  st = real_setup(p, &J);
  if (st != MX_OK) return st;
  return run_job("r2c", &J, howmany, r2c_range);
}

mx_status mx_fft_c2r(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, double scale) {
  mx_status st = check_args("c2r", p, in, out, howmany, stride, dist);
  if (st != MX_OK || howmany == 0) return st;
  fft_job J = {.p = p, .in = in, .out = out, .stride = stride, .dist = dist, .scale = scale};
  st = real_setup(p, &J);
  if (st != MX_OK) return st;
  return run_job("c2r", &J, howmany, c2r_range);
}
