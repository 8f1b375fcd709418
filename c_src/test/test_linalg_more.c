/* test_linalg_more.c: mx_lu (real and complex), complete QR and mx_eig through mx.h and
 * mx_eval, checked by their defining identities in double (P A = L U, Q R = A with
 * Q^T Q = I, A v = w v with |v| = 1), batched against single matrices, and the failure
 * paths. Tolerances: backward-stable factorizations reproduce A to c·n·u·|A|; we allow
 * 64·n·u·max|A| (u = 2^-24 or 2^-53), as test_linalg.c. */
#include <complex.h>

#include "test_util.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }

/* Zeroed test data; a test cannot go on without it. */
static void *zalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    printf("out of memory for test data\n");
    exit(2);
  }
  return p;
}
static double unit_roundoff(mx_dtype t) { return t == MX_F64 || t == MX_C128 ? 0x1p-53 : 0x1p-24; }

/* Element i of an evaluated real or complex array as a complex double. */
static double complex cvalue(const mx_array *a, int64_t i) {
  if (a->dtype == MX_C128) return ((const double complex *)mx_data(a))[i];
  if (a->dtype == MX_C64) return ((const float complex *)mx_data(a))[i];
  return value_at(a, i);
}

/* P A = L U for batch b of n x n matrices in a (values av), factors f (L\U) and perm. */
static void check_lu(mx_dtype t, int b, int n) {
  int64_t shape[3] = {b, n, n};
  int64_t count = (int64_t)b * n * n;
  int cplx = t == MX_C64 || t == MX_C128;
  size_t es = (size_t)mx_dtype_size(t);
  char *buf = zalloc((size_t)count, es);
  double complex *av = zalloc((size_t)count, sizeof *av);
  for (int64_t i = 0; i < count; i++) {
    double complex z = uniform() + (cplx ? uniform() * I : 0);
    av[i] = z;
    if (t == MX_C128) ((double complex *)buf)[i] = z;
    else if (t == MX_C64) ((float complex *)buf)[i] = (float complex)z;
    else if (t == MX_F64) ((double *)buf)[i] = creal(z);
    else ((float *)buf)[i] = (float)creal(z);
  }
  mx_array *a = arr(t, 3, shape, buf);
  for (int64_t i = 0; i < count; i++) av[i] = cvalue(a, i); /* as stored (rounded for f32/c64) */
  mx_array *f = NULL, *perm = NULL;
  mx_status st = mx_lu(a, &f, &perm);
  char what[64];
  snprintf(what, sizeof what, "lu %s [%d, %d, %d]", mx_dtype_name(t), b, n, n);
  mx_array *roots[2] = {f, perm};
  if (!st) st = mx_eval(roots, 2);
  CHECK(st == MX_OK, "%s: %s", what, st ? mx_last_error() : "");
  if (!st) {
    CHECK((mx_dtype)f->dtype == t && (mx_dtype)perm->dtype == MX_S64, "%s: dtypes %s and %s", what, mx_dtype_name((mx_dtype)f->dtype),
          mx_dtype_name((mx_dtype)perm->dtype));
    double err = 0, amax = 0;
    const int64_t *p = mx_data(perm);
    for (int k = 0; k < b; k++)
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
          double complex s = 0; /* (L U)[i][j] */
          for (int q = 0; q <= (i < j ? i : j); q++) {
            double complex l = q == i ? 1 : cvalue(f, (int64_t)k * n * n + i * n + q);
            s += l * cvalue(f, (int64_t)k * n * n + q * n + j);
          }
          double complex want = av[(int64_t)k * n * n + p[k * n + i] * n + j];
          err = fmax(err, cabs(s - want));
          amax = fmax(amax, cabs(want));
        }
    CHECK(err <= 64 * n * unit_roundoff(t) * amax * (cplx ? 2 : 1), "%s: |P A - L U| = %g", what, err);
  }
  mx_release(f);
  mx_release(perm);
  mx_release(a);
  free(buf);
  free(av);
}

static void test_lu(void) {
  mx_dtype types[4] = {MX_F32, MX_F64, MX_C64, MX_C128};
  for (int i = 0; i < 4; i++) {
    check_lu(types[i], 1, 1);
    check_lu(types[i], 3, 5);
    check_lu(types[i], 2, 17);
  }
  /* non-square and NaN */
  int64_t s23[2] = {2, 3};
  mx_array *a = arr_values(MX_F64, 2, s23, (double[]){1, 2, 3, 4, 5, 6}), *f = NULL, *p = NULL;
  mx_status st = mx_lu(a, &f, &p);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[lu]"), "lu of a 2 x 3 matrix: status %d", st);
  mx_release(a);
  int64_t s22[2] = {2, 2};
  a = arr(MX_C128, 2, s22, (double complex[]){1, NAN, 3, 4});
  st = mx_lu(a, &f, &p);
  mx_array *r = f;
  if (!st) st = mx_eval(&r, 1);
  CHECK(st == MX_OK && isnan(creal(cvalue(f, 0))), "complex lu of a NaN matrix gives NaN factors");
  if (!st) {
    mx_release(f);
    mx_release(p);
  }
  mx_release(a);
}

/* Complete QR of [m, n]: Q [m, m] orthogonal, R [m, n] upper triangular, Q R = A. */
static void check_qr_complete(mx_dtype t, int m, int n) {
  int64_t shape[3] = {2, m, n};
  int64_t count = 2LL * m * n;
  double *v = zalloc((size_t)count, sizeof *v);
  for (int64_t i = 0; i < count; i++) v[i] = uniform();
  mx_array *a = arr_values(t, 3, shape, v), *q = NULL, *r = NULL;
  for (int64_t i = 0; i < count; i++) v[i] = value_at(a, i);
  char what[64];
  snprintf(what, sizeof what, "qr complete %s [2, %d, %d]", mx_dtype_name(t), m, n);
  mx_status st = mx_qr_mode(a, 1, &q, &r);
  mx_array *roots[2] = {q, r};
  if (!st) st = mx_eval(roots, 2);
  CHECK(st == MX_OK, "%s: %s", what, st ? mx_last_error() : "");
  if (!st) {
    CHECK(q->shape[1] == m && q->shape[2] == m && r->shape[1] == m && r->shape[2] == n, "%s: shapes", what);
    double err = 0, orth = 0, below = 0, amax = 0;
    for (int k = 0; k < 2; k++) {
      const int64_t qo = (int64_t)k * m * m, ro = (int64_t)k * m * n;
      for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
          double s = 0;
          for (int p = 0; p < m; p++) s += value_at(q, qo + i * m + p) * value_at(r, ro + p * n + j);
          err = fmax(err, fabs(s - v[ro + i * n + j]));
          amax = fmax(amax, fabs(v[ro + i * n + j]));
          if (i > j) below = fmax(below, fabs(value_at(r, ro + i * n + j)));
        }
      for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
          double s = 0;
          for (int p = 0; p < m; p++) s += value_at(q, qo + p * m + i) * value_at(q, qo + p * m + j);
          orth = fmax(orth, fabs(s - (i == j)));
        }
    }
    double u = unit_roundoff(t);
    CHECK(err <= 64 * m * n * u * amax, "%s: |Q R - A| = %g", what, err);
    CHECK(orth <= 64 * m * m * u, "%s: |Q^T Q - I| = %g", what, orth);
    CHECK(below == 0, "%s: R has %g below the diagonal", what, below);
  }
  mx_release(q);
  mx_release(r);
  mx_release(a);
  free(v);
}

/* Eigenpairs of a general real matrix: |A v_j - w_j v_j| small, |v_j| = 1, conjugate pairs. */
static void check_eig(mx_dtype t, int n) {
  int64_t shape[3] = {3, n, n};
  int64_t count = 3LL * n * n;
  double *v = zalloc((size_t)count, sizeof *v);
  for (int64_t i = 0; i < count; i++) v[i] = uniform();
  mx_array *a = arr_values(t, 3, shape, v), *w = NULL, *vec = NULL, *w_only = NULL;
  for (int64_t i = 0; i < count; i++) v[i] = value_at(a, i);
  char what[64];
  snprintf(what, sizeof what, "eig %s [3, %d, %d]", mx_dtype_name(t), n, n);
  mx_status st = mx_eig(a, &w, &vec);
  if (!st) st = mx_eig(a, &w_only, NULL);
  mx_array *roots[3] = {w, vec, w_only};
  if (!st) st = mx_eval(roots, 3);
  CHECK(st == MX_OK, "%s: %s", what, st ? mx_last_error() : "");
  if (!st) {
    mx_dtype ct = t == MX_F64 ? MX_C128 : MX_C64;
    CHECK((mx_dtype)w->dtype == ct && (mx_dtype)vec->dtype == ct && (mx_dtype)w_only->dtype == ct, "%s: complex results", what);
    double resid = 0, norm_err = 0, same = 0, amax = 0;
    for (int64_t i = 0; i < count; i++) amax = fmax(amax, fabs(v[i]));
    for (int k = 0; k < 3; k++)
      for (int j = 0; j < n; j++) {
        double complex wj = cvalue(w, (int64_t)k * n + j), nrm = 0;
        same = fmax(same, cabs(wj - cvalue(w_only, (int64_t)k * n + j)));
        for (int i = 0; i < n; i++) {
          double complex s = 0;
          for (int p = 0; p < n; p++) s += v[(int64_t)k * n * n + i * n + p] * cvalue(vec, (int64_t)k * n * n + p * n + j);
          resid = fmax(resid, cabs(s - wj * cvalue(vec, (int64_t)k * n * n + i * n + j)));
          nrm += pow(cabs(cvalue(vec, (int64_t)k * n * n + i * n + j)), 2);
        }
        norm_err = fmax(norm_err, fabs(sqrt(creal(nrm)) - 1));
        if (cimag(wj) > 0 && j + 1 < n) /* the pair's second member is the conjugate */
          same = fmax(same, cabs(conj(wj) - cvalue(w, (int64_t)k * n + j + 1)));
      }
    double u = unit_roundoff(t);
    CHECK(resid <= 64 * n * u * amax * n, "%s: |A v - w v| = %g", what, resid);
    CHECK(norm_err <= 64 * n * u, "%s: |v| - 1 = %g", what, norm_err);
    /* eigvals runs geev without vectors: the same Hessenberg QR, so the same values to rounding */
    CHECK(same <= 64 * n * u * amax * n, "%s: eigvals and conjugate pairs differ by %g", what, same);
  }
  mx_release(w);
  mx_release(vec);
  mx_release(w_only);
  mx_release(a);
  free(v);
}

static void test_eig_errors(void) {
  int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
  mx_array *a = arr_values(MX_F64, 2, s23, (double[]){1, 2, 3, 4, 5, 6}), *w = NULL, *v = NULL;
  mx_status st = mx_eig(a, &w, &v);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[eig] expects square"), "eig of 2 x 3: %s", mx_last_error());
  mx_release(a);
  a = arr(MX_C128, 2, s22, (double complex[]){1, 2, 3, 4});
  st = mx_eig(a, &w, NULL);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[eigvals] does not support complex"), "eigvals of c128: %s",
        mx_last_error());
  mx_release(a);
  a = arr_values(MX_F32, 2, s22, (double[]){1, NAN, 0, 1});
  st = mx_eig(a, &w, &v);
  mx_array *roots[2] = {w, v};
  if (!st) st = mx_eval(roots, 2);
  CHECK(st == MX_OK && isnan(creal(cvalue(w, 0))) && isnan(cimag(cvalue(v, 3))), "eig of a NaN matrix gives NaN");
  if (!st) {
    mx_release(w);
    mx_release(v);
  }
  mx_release(a);
}

int main(void) {
  test_lu();
  for (int i = 0; i < 2; i++) {
    mx_dtype t = i ? MX_F64 : MX_F32;
    check_qr_complete(t, 5, 3);
    check_qr_complete(t, 3, 5);
    check_qr_complete(t, 4, 4);
    check_qr_complete(t, 1, 1);
    check_eig(t, 1);
    check_eig(t, 4);
    check_eig(t, 9);
  }
  test_eig_errors();
  return test_summary("test_linalg_more: ");
}
