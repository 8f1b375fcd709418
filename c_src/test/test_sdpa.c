/* test_sdpa.c: mx_scaled_dot_product_attention and its vjp end to end against a long double
 * loop, at the kernel's tile edges (32 queries, 512 keys a tile or 128 for D = 64: sizes just
 * below, at and past them), with grouped-query heads, the causal mask (Lq < Lk and Lq > Lk, whose first rows see
 * nothing and are NaN), additive masks broadcast on each axis, f32 and f64; and the error paths. */
#include <math.h>

#include "test_util.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }

typedef struct {
  int64_t B, Hq, Hkv, Lq, Lk, D, Dv;
  int causal;
  int64_t mshape[4]; /* additive mask shape, all 0 for none */
} spec;

static double gamma_n(double n, mx_dtype t) {
  double u = t == MX_F64 ? 0x1p-53 : 0x1p-24;
  return n * u / (1 - n * u);
}

/* The reference: out, dq, dk, dv (for cotangent g) in long double; abs_out = sum_j p |v| and A, the
 * row's largest |scale| sum |q||k| + |mask|, for the forward bound; bq, bk, bv the gradients' bounds
 * of generate_sdpa.py: (4 g(D + 2) A + g(2 Lk + 2 Dv + 2 G Lq + 8)) times each sum's absolute terms. */
static void reference(const spec *s, mx_dtype t, const double *q, const double *k, const double *v, const double *m,
                      const int64_t *ms, double scale, const double *g, long double *out, long double *dq,
                      long double *dk, long double *dv, double *abs_out, double *A, double *bq, double *bk,
                      double *bv) {
  int64_t G = s->Hq / s->Hkv;
  long double *p = malloc(sizeof(long double) * (size_t)s->Lk);
  double *pa = malloc(sizeof(double) * (size_t)s->Lk);
  memset(dk, 0, sizeof(long double) * (size_t)(s->B * s->Hkv * s->Lk * s->D));
  memset(dv, 0, sizeof(long double) * (size_t)(s->B * s->Hkv * s->Lk * s->Dv));
  memset(bk, 0, sizeof(double) * (size_t)(s->B * s->Hkv * s->Lk * s->D));
  memset(bv, 0, sizeof(double) * (size_t)(s->B * s->Hkv * s->Lk * s->Dv));
  for (int64_t b = 0; b < s->B; b++)
    for (int64_t h = 0; h < s->Hq; h++)
      for (int64_t i = 0; i < s->Lq; i++) {
        int64_t row = (b * s->Hq + h) * s->Lq + i, kv = b * s->Hkv + h / G;
        const double *qi = q + row * s->D;
        long double mx = -INFINITY, sum = 0;
        A[row] = 0;
        for (int64_t j = 0; j < s->Lk; j++) {
          const double *kj = k + (kv * s->Lk + j) * s->D;
          long double sc = 0;
          double sa = 0;
          for (int64_t d = 0; d < s->D; d++) sc += (long double)qi[d] * kj[d], sa += fabs(qi[d] * kj[d]);
          sc *= scale;
          sa *= fabs(scale);
          if (m) {
            double mv = m[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
            sc += mv;
            sa += isfinite(mv) ? fabs(mv) : 0;
          }
          if (s->causal && j > i + s->Lk - s->Lq) sc = -INFINITY;
          p[j] = sc;
          if (sc != -INFINITY) A[row] = fmax(A[row], sa);
          mx = sc > mx ? sc : mx;
        }
        for (int64_t j = 0; j < s->Lk; j++) sum += p[j] = mx == -INFINITY ? NAN : expl(p[j] - mx);
        for (int64_t j = 0; j < s->Lk; j++) p[j] /= sum, pa[j] = (double)p[j];
        long double delta = 0;
        for (int64_t d = 0; d < s->Dv; d++) {
          long double o = 0;
          double oa = 0;
          for (int64_t j = 0; j < s->Lk; j++) {
            double vj = v[(kv * s->Lk + j) * s->Dv + d];
            o += p[j] * vj, oa += pa[j] * fabs(vj);
          }
          out[row * s->Dv + d] = o, abs_out[row * s->Dv + d] = oa;
          delta += o * g[row * s->Dv + d];
        }
        double adelta = 0, rel = 4 * gamma_n((double)s->D + 2, t) * A[row] +
                                    gamma_n(2.0 * (double)(s->Lk + s->Dv + G * s->Lq) + 8, t);
        for (int64_t d = 0; d < s->Dv; d++) adelta += fabs(g[row * s->Dv + d] * (double)out[row * s->Dv + d]);
        for (int64_t d = 0; d < s->D; d++) dq[row * s->D + d] = 0, bq[row * s->D + d] = 0;
        for (int64_t j = 0; j < s->Lk; j++) {
          long double dp = 0;
          double adp = 0;
          for (int64_t d = 0; d < s->Dv; d++) {
            double gd = g[row * s->Dv + d], vj = v[(kv * s->Lk + j) * s->Dv + d];
            dp += (long double)gd * vj, adp += fabs(gd * vj);
            dv[(kv * s->Lk + j) * s->Dv + d] += p[j] * gd;
            bv[(kv * s->Lk + j) * s->Dv + d] += rel * pa[j] * fabs(gd);
          }
          long double ds = p[j] * (dp - delta) * scale;
          double ads = rel * fabs(scale) * pa[j] * (adp + adelta);
          for (int64_t d = 0; d < s->D; d++) {
            dq[row * s->D + d] += ds * k[(kv * s->Lk + j) * s->D + d];
            dk[(kv * s->Lk + j) * s->D + d] += ds * qi[d];
            bq[row * s->D + d] += ads * fabs(k[(kv * s->Lk + j) * s->D + d]);
            bk[(kv * s->Lk + j) * s->D + d] += ads * fabs(qi[d]);
          }
        }
      }
  free(p);
  free(pa);
}

static double *randoms(int64_t n) {
  double *x = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) x[i] = 1.5 * uniform();
  return x;
}

/* Compares got with want elementwise: NaN where want is NaN, else within bound(i). */
static int close_all(const char *what, const mx_array *got, const long double *want, int64_t n, double rel,
                     const double *scale_of) {
  int bad = 0;
  for (int64_t i = 0; i < n && !bad; i++) {
    double x = value_at(got, i), w = (double)want[i];
    if (isnan(w)) {
      bad = !isnan(x);
      CHECK(!bad, "%s: element %lld is %.17g, the reference NaN", what, (long long)i, x);
    } else {
      double bound = rel * (scale_of ? scale_of[i] : 1) + 1e-300;
      bad = !(fabs(x - w) <= bound);
      CHECK(!bad, "%s: element %lld is %.17g, the reference %.17g (bound %.3g)", what, (long long)i, x, w, bound);
    }
  }
  return !bad;
}

static void test_case(mx_dtype t, spec s, double scale) {
  char what[160];
  snprintf(what, sizeof what, "sdpa %s B%lld Hq%lld Hkv%lld Lq%lld Lk%lld D%lld Dv%lld causal %d mask [%lld %lld %lld %lld]",
           mx_dtype_name(t), (long long)s.B, (long long)s.Hq, (long long)s.Hkv, (long long)s.Lq, (long long)s.Lk,
           (long long)s.D, (long long)s.Dv, s.causal, (long long)s.mshape[0], (long long)s.mshape[1],
           (long long)s.mshape[2], (long long)s.mshape[3]);
  int64_t qs[4] = {s.B, s.Hq, s.Lq, s.D}, ks[4] = {s.B, s.Hkv, s.Lk, s.D}, vs[4] = {s.B, s.Hkv, s.Lk, s.Dv};
  int64_t os[4] = {s.B, s.Hq, s.Lq, s.Dv}, nq = numel(4, qs), nk = numel(4, ks), nv = numel(4, vs), no = numel(4, os);
  int has_mask = s.mshape[0] > 0;
  double *q = randoms(nq), *k = randoms(nk), *v = randoms(nv), *g = randoms(no), *m = NULL;
  int64_t ms[4] = {0};
  if (has_mask) {
    int64_t n = numel(4, s.mshape), st = 1;
    m = randoms(n);
    for (int64_t i = 0; s.mshape[3] > 1 && i < n; i += 7) m[i] = -INFINITY; /* some keys hidden */
    for (int d = 3; d >= 0; d--) ms[d] = s.mshape[d] == 1 ? 0 : st, st *= s.mshape[d];
  }
  /* the inputs as stored (f32 rounds them), so the reference sees the same values */
  mx_array *qa = arr_values(t, 4, qs, q), *ka = arr_values(t, 4, ks, k), *va = arr_values(t, 4, vs, v);
  mx_array *ga = arr_values(t, 4, os, g), *ma = has_mask ? arr_values(t, 4, s.mshape, m) : NULL;
  for (int64_t i = 0; i < nq; i++) q[i] = t == MX_F32 ? (float)q[i] : q[i];
  for (int64_t i = 0; i < nk; i++) k[i] = t == MX_F32 ? (float)k[i] : k[i];
  for (int64_t i = 0; i < nv; i++) v[i] = t == MX_F32 ? (float)v[i] : v[i];
  for (int64_t i = 0; i < no; i++) g[i] = t == MX_F32 ? (float)g[i] : g[i];
  for (int64_t i = 0; m && i < numel(4, s.mshape); i++) m[i] = t == MX_F32 ? (float)m[i] : m[i];
  long double *out = malloc(sizeof(long double) * (size_t)(no + nq + nk + nv + 1));
  long double *dq = out + no, *dk = dq + nq, *dv = dk + nk;
  double *abs_out = malloc(sizeof(double) * (size_t)(no + 1)), *A = malloc(sizeof(double) * (size_t)(s.B * s.Hq * s.Lq + 1));
  double *bq = malloc(sizeof(double) * (size_t)(nq + nk + nv + 1)), *bk = bq + nq, *bv = bk + nk;
  reference(&s, t, q, k, v, m, ms, scale, g, out, dq, dk, dv, abs_out, A, bq, bk, bv);

  mx_array *tq = NULL, *tk = NULL, *tv = NULL, *o = NULL, *grads[3] = {0};
  mx_status st = mx_trace_input(qa, &tq);
  if (!st) st = mx_trace_input(ka, &tk);
  if (!st) st = mx_trace_input(va, &tv);
  if (!st) st = mx_scaled_dot_product_attention(tq, tk, tv, ma, scale, s.causal, &o);
  mx_array *wrt[3] = {tq, tk, tv};
  if (!st) st = mx_vjp(&o, &ga, 1, wrt, 3, grads);
  if (!st) st = mx_eval(grads, 3);
  o = run_check(st, &o, what);
  if (o) {
    /* the forward bound of generate_sdpa.py: (4 g(D + 2) A + g(2 Lk + 8)) sum_j p |v| */
    double *sc = malloc(sizeof(double) * (size_t)(no + 1));
    for (int64_t r = 0; r < s.B * s.Hq * s.Lq; r++) {
      for (int64_t d = 0; d < s.Dv; d++)
        sc[r * s.Dv + d] = (4 * gamma_n((double)s.D + 2, t) * A[r] + gamma_n(2.0 * (double)s.Lk + 8, t)) * abs_out[r * s.Dv + d];
    }
    close_all(what, o, out, no, 1, sc);
    free(sc);
    long double *want[3] = {dq, dk, dv};
    double *bounds[3] = {bq, bk, bv};
    int64_t n[3] = {nq, nk, nv};
    const char *name[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
      char w2[200];
      snprintf(w2, sizeof w2, "%s %s", what, name[i]);
      close_all(w2, grads[i], want[i], n[i], 1, bounds[i]);
    }
  }
  mx_release(o);
  for (int i = 0; i < 3; i++) mx_release(grads[i]);
  mx_release(tq), mx_release(tk), mx_release(tv);
  mx_release(qa), mx_release(ka), mx_release(va), mx_release(ga), mx_release(ma);
  free(q), free(k), free(v), free(g), free(m), free(out), free(abs_out), free(A), free(bq);
}

/* jvp as the vjp of the vjp (the backward primitive's rule in its cotangent) against central
 * differences of the forward along the same tangents, f64: the error, about eps^2 times the third
 * derivative plus u |f| / eps, is far under 1e-8 for these O(1) values. */
static void test_jvp(int causal) {
  int64_t qs[4] = {1, 4, 3, 2}, ks[4] = {1, 2, 5, 2}, vs[4] = {1, 2, 5, 3}, os[4] = {1, 4, 3, 3};
  int64_t nq = numel(4, qs), nk = numel(4, ks), nv = numel(4, vs), no = numel(4, os), n = nq + nk + nv;
  double *x = randoms(n), *tv = randoms(n), *u = randoms(no), eps = 1e-5;
  mx_array *in[3], *tr[3], *ud = arr_values(MX_F64, 4, os, u), *tu = NULL, *o = NULL, *gr[3] = {0}, *cat = NULL;
  mx_array *jv = NULL, *fl[3] = {0};
  int64_t *shapes[3] = {qs, ks, vs}, off[3] = {0, nq, nq + nk};
  mx_status st = MX_OK;
  for (int i = 0; i < 3; i++) in[i] = arr_values(MX_F64, 4, shapes[i], x + off[i]), tr[i] = NULL;
  for (int i = 0; i < 3 && !st; i++) st = mx_trace_input(in[i], &tr[i]);
  if (!st) st = mx_trace_input(ud, &tu);
  if (!st) st = mx_scaled_dot_product_attention(tr[0], tr[1], tr[2], NULL, 0.8, causal, &o);
  if (!st) st = mx_vjp(&o, &tu, 1, tr, 3, gr);
  for (int i = 0; i < 3 && !st; i++) st = mx_reshape(gr[i], 1, (int64_t[]){gr[i]->size}, &fl[i]);
  if (!st) st = mx_concatenate(fl, 3, 0, &cat);
  mx_array *tan = arr_values(MX_F64, 1, &n, tv);
  if (!st) st = mx_vjp(&cat, &tan, 1, &tu, 1, &jv);
  jv = run_check(st, &jv, "jvp through sdpa_vjp's vjp");
  if (jv) {
    double *xp = malloc(sizeof(double) * (size_t)n), *fd[2];
    for (int sgn = 0; sgn < 2; sgn++) {
      for (int64_t i = 0; i < n; i++) xp[i] = x[i] + (sgn ? -eps : eps) * tv[i];
      mx_array *a[3], *y = NULL;
      for (int i = 0; i < 3; i++) a[i] = arr_values(MX_F64, 4, shapes[i], xp + off[i]);
      y = run(mx_scaled_dot_product_attention(a[0], a[1], a[2], NULL, 0.8, causal, &y), &y, "jvp forward");
      fd[sgn] = malloc(sizeof(double) * (size_t)no);
      for (int64_t i = 0; i < no; i++) fd[sgn][i] = y ? value_at(y, i) : NAN;
      mx_release(y);
      for (int i = 0; i < 3; i++) mx_release(a[i]);
    }
    for (int64_t i = 0; i < no; i++) {
      double want = (fd[0][i] - fd[1][i]) / (2 * eps), got = value_at(jv, i);
      CHECK(fabs(got - want) <= 1e-8, "jvp causal %d element %lld: %.17g, central difference %.17g", causal,
            (long long)i, got, want);
    }
    free(fd[0]), free(fd[1]), free(xp);
  }
  for (int i = 0; i < 3; i++) mx_release(in[i]), mx_release(tr[i]), mx_release(gr[i]), mx_release(fl[i]);
  mx_release(ud), mx_release(tu), mx_release(o), mx_release(cat), mx_release(tan), mx_release(jv);
  free(x), free(tv), free(u);
}

static void test_errors(void) {
  int64_t s4[4] = {1, 2, 3, 4}, s3[4] = {1, 3, 3, 4}, s1[1] = {4}, s33[2] = {3, 3};
  mx_array *a = NULL, *b = NULL, *c = NULL, *i32 = NULL, *one = NULL, *o = NULL;
  mx_full(MX_F32, 4, s4, 1, &a);
  mx_full(MX_F64, 4, s4, 1, &b);
  mx_full(MX_F32, 4, s3, 1, &c);
  mx_full(MX_S32, 2, s33, 1, &i32);
  mx_full(MX_F32, 1, s1, 1, &one);
  CHECK(mx_scaled_dot_product_attention(a, b, a, NULL, 0.5, 0, &o) == MX_EINVAL &&
            strstr(mx_last_error(), "[scaled_dot_product_attention] q f32[1][2][3][4], k f64[1][2][3][4]"),
        "mixed dtypes: %s", mx_last_error());
  CHECK(mx_scaled_dot_product_attention(c, a, a, NULL, 0.5, 0, &o) == MX_EINVAL &&
            strstr(mx_last_error(), "Hq a multiple of Hkv"),
        "heads: %s", mx_last_error());
  CHECK(mx_scaled_dot_product_attention(one, one, one, NULL, 0.5, 0, &o) == MX_EINVAL &&
            strstr(mx_last_error(), "rank >= 2"),
        "rank 1: %s", mx_last_error());
  CHECK(mx_scaled_dot_product_attention(a, a, a, i32, 0.5, 0, &o) == MX_EINVAL && strstr(mx_last_error(), "mask s32[3][3] must be boolean"),
        "int mask: %s", mx_last_error());
  CHECK(mx_scaled_dot_product_attention(a, a, a, a, 0.5, 1, &o) == MX_EINVAL && strstr(mx_last_error(), "not both"),
        "causal and a mask: %s", mx_last_error());
  CHECK(mx_scaled_dot_product_attention(a, a, a, NULL, NAN, 0, &o) == MX_EINVAL && strstr(mx_last_error(), "finite"),
        "NaN scale: %s", mx_last_error());
  mx_release(a), mx_release(b), mx_release(c), mx_release(i32), mx_release(one);
}

int main(void) {
  mx_dtype types[2] = {MX_F64, MX_F32};
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    test_case(t, (spec){1, 1, 1, 1, 1, 3, 2, 0, {0}}, 0.5);
    test_case(t, (spec){1, 2, 2, 256, 512, 4, 4, 0, {0}}, 0.5);           /* exactly one tile each */
    test_case(t, (spec){2, 4, 2, 257, 513, 3, 5, 1, {0}}, 0.4);           /* one past, GQA, causal Lq < Lk */
    test_case(t, (spec){1, 2, 1, 300, 70, 2, 3, 1, {0}}, 0.6);            /* causal Lq > Lk: NaN rows */
    test_case(t, (spec){2, 3, 3, 255, 600, 4, 2, 0, {2, 1, 255, 600}}, 0.5); /* mask per batch */
    test_case(t, (spec){1, 4, 1, 70, 1100, 2, 2, 0, {1, 4, 1, 1100}}, 0.7); /* mask per head and key */
    test_case(t, (spec){1, 2, 2, 5, 520, 1, 1, 0, {1, 1, 5, 1}}, 1.0);     /* D = Dv = 1, mask per query */
    test_case(t, (spec){1, 2, 1, 33, 257, 64, 64, 1, {0}}, 0.125);        /* D = 64: 128-key tiles */
    /* scores up to about +-100 (f32's exp: terms under e^-87.3 flush to 0; the running max jumps) */
    test_case(t, (spec){1, 2, 1, 40, 300, 4, 3, 1, {0}}, 40.0);
  }
  test_jvp(0);
  test_jvp(1);
  test_errors();
  return test_summary("test_sdpa: ");
}
