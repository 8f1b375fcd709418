/* test_linalg.c: the linalg ops end to end through mx.h and mx_eval, checked by
 * the defining identities in double precision (L L^T = A, A X = B, Q R = A with
 * Q^T Q = I, U S Vt = A, V diag(w) V^T = A), batched and broadcast, against
 * the unbatched results (so splitting the batch across threads changes no
 * bit), and the failure paths: messages that name the op and the first
 * failing matrix. Tolerances: backward-stable factorizations reproduce A to
 * c·n·u·|A| (u = 2^-24 or 2^-53); we allow 64·n·u·max|A| (solves: times κ). */
#include "test_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
/* Uniform on [-1, 1). */
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }

static double unit_roundoff(mx_dtype t) { return t == MX_F64 ? 0x1p-53 : 0x1p-24; }

/* The values of an evaluated array as doubles (malloc'd); NULL and a failure if eval fails. */
static double *values(mx_array *a, const char *what) {
  if (mx_eval(&a, 1) != MX_OK) {
    failed++;
    printf("FAIL %s: %s\n", what, mx_last_error());
    return NULL;
  }
  double *v = malloc(sizeof(double) * (size_t)(a->size ? a->size : 1));
  for (int64_t i = 0; i < a->size; i++) v[i] = value_at(a, i);
  return v;
}

/* A constructor's status and, when it built something, the evaluation's: MX_OK only if both pass. */
static mx_status eval_status(mx_status st, mx_array *x) {
  if (st) return st;
  st = mx_eval(&x, 1);
  mx_release(x);
  return st;
}

static void expect_error(mx_status st, mx_status want, const char *needle, const char *what) {
  CHECK(st == want && strstr(mx_last_error(), needle) != NULL, "%s: status %d (want %d), message \"%s\" lacks \"%s\"",
        what, st, want, st ? mx_last_error() : "", needle);
}

/* C[m, n] = op(A)[m, k] op(B)[k, n] in double; row-major. */
static void mm(int m, int n, int k, const double *a, int ta, const double *b, int tb, double *c) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = s;
    }
}

static double max_abs(const double *x, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static double max_diff(const double *x, const double *y, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = isnan(x[i]) || isnan(y[i]) ? INFINITY : fmax(m, fabs(x[i] - y[i]));
  return m;
}

/* |Q^T Q - I| for Q [m, k] (cols) or |Q Q^T - I| (rows). */
static double orth_error(const double *q, int m, int k, int rows) {
  double e = 0;
  int d = rows ? m : k;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0;
      for (int p = 0; p < (rows ? k : m); p++) s += rows ? q[i * k + p] * q[j * k + p] : q[p * k + i] * q[p * k + j];
      e = fmax(e, fabs(s - (i == j)));
    }
  return e;
}

static void random_fill(double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = uniform();
}

/* batch SPD matrices M M^T + n I. */
static void spd(double *a, int batch, int n) {
  double *m = malloc(sizeof(double) * (size_t)(n * n + 1));
  for (int b = 0; b < batch; b++) {
    random_fill(m, n * n);
    mm(n, n, n, m, 0, m, 1, a + b * n * n);
    for (int i = 0; i < n; i++) a[b * n * n + i * n + i] += n;
  }
  free(m);
}

/* batch well-conditioned general matrices: random + n I on the diagonal, rows shuffled by sign. */
static void general(double *a, int batch, int n) {
  random_fill(a, (int64_t)batch * n * n);
  for (int b = 0; b < batch; b++)
    for (int i = 0; i < n; i++) a[b * n * n + i * n + (i * 3 + b) % n] += (i % 2 ? -1 : 1) * (double)n;
}

static const mx_dtype types[2] = {MX_F32, MX_F64};

/* ---- cholesky ------------------------------------------------------------------------------ */

static void test_cholesky(void) {
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    for (int n = 0; n <= 9; n++) {
      int batch = 37; /* enough small matrices to split across the pool */
      int64_t shape[3] = {batch, n, n};
      double *a = malloc(sizeof(double) * (size_t)(batch * n * n + 1));
      spd(a, batch, n);
      /* Garbage in the strict upper triangle: only the lower one may be read. */
      for (int b = 0; b < batch; b++)
        for (int i = 0; i < n; i++)
          for (int j = i + 1; j < n; j++) a[b * n * n + i * n + j] = 1e3 * uniform();
      mx_array *x = arr_values(t, 3, shape, a), *l = NULL;
      CHECK(mx_cholesky(x, &l) == MX_OK, "cholesky build: %s", mx_last_error());
      double *lv = l ? values(l, "cholesky") : NULL;
      if (lv) {
        double err = 0, upper = 0, neg = 0;
        double *rec = malloc(sizeof(double) * (size_t)(n * n + 1));
        for (int b = 0; b < batch; b++) {
          const double *L = lv + b * n * n, *A = a + b * n * n;
          mm(n, n, n, L, 0, L, 1, rec);
          for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) err = fmax(err, fabs(rec[i * n + j] - A[i * n + j]) / (2.0 * n));
          for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) upper = fmax(upper, fabs(L[i * n + j]));
            if (L[i * n + i] <= 0) neg++;
          }
        }
        CHECK(err <= 64 * n * unit_roundoff(t) + 1e-300, "cholesky %s n=%d: |L L^T - A| / max|A| = %g", mx_dtype_name(t),
              n, err);
        CHECK(upper == 0 && neg == 0, "cholesky %s n=%d: upper %g, nonpositive diagonal %g", mx_dtype_name(t), n, upper,
              neg);
        /* The batched result equals the unbatched one bit for bit, wherever the pool ran it. */
        int same = 1;
        for (int b = 0; b < batch && same; b += 9) {
          int64_t s2[2] = {n, n};
          mx_array *one = arr_values(t, 2, s2, a + b * n * n), *l1 = NULL;
          mx_cholesky(one, &l1);
          double *v1 = values(l1, "cholesky single");
          same = v1 && memcmp(v1, lv + b * n * n, sizeof(double) * (size_t)(n * n)) == 0;
          free(v1);
          mx_release(one);
          mx_release(l1);
        }
        CHECK(same, "cholesky %s n=%d: batched and single results differ", mx_dtype_name(t), n);
        free(rec);
      }
      free(lv);
      mx_release(l);
      mx_release(x);
      free(a);
    }
  }

  /* The input is not modified, and ints compute in f32. */
  double a[4] = {4, 2, 2, 2};
  int64_t s2[2] = {2, 2};
  mx_array *x = arr_values(MX_S64, 2, s2, a), *l = NULL;
  CHECK(mx_cholesky(x, &l) == MX_OK && l->dtype == MX_F32, "cholesky of s64 gives f32");
  double *lv = values(l, "cholesky s64");
  CHECK(lv && lv[0] == 2 && lv[1] == 0 && lv[2] == 1 && lv[3] == 1, "cholesky [[4,2],[2,2]] = [[2,0],[1,1]]");
  free(lv);
  mx_release(l);
  mx_release(x);

  /* Failures: the first non-PD matrix in batch order is named, even with the batch split across threads. */
  int batch = 200, n = 4;
  int64_t shape[3] = {batch, n, n};
  double *m = malloc(sizeof(double) * (size_t)(batch * n * n));
  spd(m, batch, n);
  m[57 * n * n + 1 * n + 1] = -100; /* leading minor of order 2 fails */
  m[150 * n * n] = -1;
  for (int ti = 0; ti < 2; ti++) {
    mx_array *bad = arr_values(types[ti], 3, shape, m), *out = NULL;
    mx_status st = mx_cholesky(bad, &out);
    expect_error(eval_status(st, out), MX_ECOMPUTE,
                 "matrix 57 of the batch f", "cholesky names the first non-PD matrix");
    CHECK(strstr(mx_last_error(), "leading minor of order 2") != NULL, "cholesky names the minor: %s", mx_last_error());
    mx_release(bad);
  }
  free(m);

  /* Deeper batches name the position too; NaN gives NaN, not an error. */
  double eye[4] = {1, 0, 0, 1}, quad[16];
  for (int i = 0; i < 4; i++) memcpy(quad + 4 * i, eye, sizeof eye);
  quad[12] = -1;
  int64_t s4[4] = {2, 2, 2, 2};
  mx_array *q = arr_values(MX_F64, 4, s4, quad), *qo = NULL;
  mx_status st = mx_cholesky(q, &qo);
  expect_error(eval_status(st, qo), MX_ECOMPUTE, "matrix 3 [1][1] of the batch f64[2][2][2][2]", "deep batch index");
  mx_release(q);
  double nan_m[4] = {NAN, 0, 0, 1};
  mx_array *nm = arr_values(MX_F64, 2, s2, nan_m), *no = NULL;
  mx_cholesky(nm, &no);
  double *nv = values(no, "cholesky nan");
  CHECK(nv && isnan(nv[0]) && isnan(nv[3]), "cholesky of a NaN matrix is NaN");
  free(nv);
  mx_release(no);
  mx_release(nm);

  /* Shape errors at construction. */
  int64_t s23[2] = {2, 3}, s1[1] = {3};
  double z[6] = {0};
  mx_array *r = arr_values(MX_F32, 2, s23, z), *v = arr_values(MX_F32, 1, s1, z), *o = NULL;
  expect_error(mx_cholesky(r, &o), MX_EINVAL, "[cholesky] expects square matrices [..., n, n], got f32[2][3]", "non-square");
  expect_error(mx_cholesky(v, &o), MX_EINVAL, "[cholesky] expects a matrix or a batch", "rank 1");
  mx_release(r);
  mx_release(v);
}

/* ---- solve, inv, triangular_solve ----------------------------------------------------------------- */

/* The largest |op(A_i) X_ij - B_j| / (max|A_i| max|X|) of x [3, 4, n, k] solving a [3, n, n]
 * (op = transpose if trans) against b [4, n, k]. */
static double broadcast_residual(const double *a, int trans, const double *x, const double *b, int n, int k) {
  double err = 0, *r = malloc(sizeof(double) * (size_t)(n * k));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) {
      mm(n, k, n, a + i * n * n, trans, x + (i * 4 + j) * n * k, 0, r);
      err = fmax(err, max_diff(r, b + j * n * k, n * k) / (max_abs(a + i * n * n, n * n) * max_abs(x, 12 * n * k)));
    }
  free(r);
  return err;
}

static void test_solve(void) {
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    double u = unit_roundoff(t);
    /* a [3, 1, n, n] broadcast against b [4, n, k]: out [3, 4, n, k]. */
    for (int n = 1; n <= 7; n += 3) {
      int k = 2;
      int64_t sa[4] = {3, 1, n, n}, sb[3] = {4, n, k};
      double *a = malloc(sizeof(double) * (size_t)(3 * n * n)), *b = malloc(sizeof(double) * (size_t)(4 * n * k));
      general(a, 3, n);
      random_fill(b, 4 * n * k);
      mx_array *xa = arr_values(t, 4, sa, a), *xb = arr_values(t, 3, sb, b), *x = NULL;
      CHECK(mx_solve(xa, xb, &x) == MX_OK && x->ndim == 4 && x->shape[0] == 3 && x->shape[1] == 4,
            "solve broadcast shape");
      double *xv = x ? values(x, "solve") : NULL;
      if (xv) {
        double err = broadcast_residual(a, 0, xv, b, n, k);
        /* LU with partial pivoting is backward stable: the residual is c·n·u·|A||x|. */
        CHECK(err <= 64 * n * u, "solve %s n=%d: residual %g", mx_dtype_name(t), n, err);
      }
      free(xv);
      mx_release(x);

      /* Transposed solve through the primitive's flag: A^T X = B. */
      mx_params p = {.flags = 1};
      int64_t so[4] = {3, 4, n, k};
      mx_array *in[2] = {xa, xb}, *xt = NULL;
      CHECK(mx_node_new(MX_OP_SOLVE, t, 4, so, 2, in, &p, &xt) == MX_OK, "solve^T node");
      double *tv = values(xt, "solve^T");
      if (tv) {
        double err = broadcast_residual(a, 1, tv, b, n, k);
        CHECK(err <= 64 * n * u, "solve^T %s n=%d: residual %g", mx_dtype_name(t), n, err);
      }
      free(tv);
      mx_release(xt);

      /* inv: A inv(A) = I. */
      mx_array *ia = NULL;
      CHECK(mx_inv(xa, &ia) == MX_OK, "inv build");
      double *iv = ia ? values(ia, "inv") : NULL;
      if (iv) {
        double err = 0, *r = malloc(sizeof(double) * (size_t)(n * n));
        for (int i = 0; i < 3; i++) {
          mm(n, n, n, a + i * n * n, 0, iv + i * n * n, 0, r);
          for (int q = 0; q < n * n; q++) err = fmax(err, fabs(r[q] - (q % (n + 1) == 0)));
        }
        CHECK(err <= 64 * n * n * u * 4, "inv %s n=%d: |A inv(A) - I| = %g", mx_dtype_name(t), n, err);
        free(r);
      }
      free(iv);
      mx_release(ia);
      mx_release(xa);
      mx_release(xb);
      free(a);
      free(b);
    }
  }

  /* Vectors: b [n] and a batch of vectors b [B, n] for a [B, n, n]. */
  double a2[8] = {2, 1, 1, 3, 4, 0, 0, 2}, b1[2] = {3, 5}, b2[4] = {3, 5, 8, 2};
  int64_t sa[3] = {2, 2, 2}, sv[1] = {2}, sbv[2] = {2, 2};
  mx_array *xa = arr_values(MX_F64, 3, sa, a2), *v1 = arr_values(MX_F64, 1, sv, b1),
           *v2 = arr_values(MX_F64, 2, sbv, b2), *x1 = NULL, *x2 = NULL;
  CHECK(mx_solve(xa, v1, &x1) == MX_OK && x1->ndim == 2 && x1->shape[1] == 2, "solve with a 1-d b broadcasts");
  CHECK(mx_solve(xa, v2, &x2) == MX_OK && x2->ndim == 2 && x2->shape[0] == 2, "solve with a batch of vectors");
  double *r1 = values(x1, "solve vec"), *r2 = values(x2, "solve vecs");
  CHECK(r1 && fabs(r1[0] - 0.8) < 1e-15 && fabs(r1[1] - 1.4) < 1e-15 && r1[2] == 0.75 && r1[3] == 2.5, "solve vec values");
  CHECK(r2 && fabs(r2[0] - 0.8) < 1e-15 && r2[2] == 2 && r2[3] == 1, "solve vecs values");
  free(r1);
  free(r2);
  mx_release(x1);
  mx_release(x2);
  mx_release(v1);
  mx_release(v2);
  mx_release(xa);

  /* Singular: the first exactly-zero pivot is named. Broadcasting names a's own matrix. */
  double sing[12] = {1, 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 4};
  int64_t s3[3] = {3, 2, 2}, sb[4] = {2, 1, 2, 1};
  double bb[4] = {1, 2, 3, 4};
  mx_array *sa3 = arr_values(MX_F32, 3, s3, sing), *sb4 = arr_values(MX_F32, 4, sb, bb), *o = NULL;
  mx_status st = mx_solve(sa3, sb4, &o);
  expect_error(eval_status(st, o), MX_ECOMPUTE, "[solve] matrix 2 of the batch f32[3][2][2] is singular (pivot 1 of its LU",
               "solve names the singular matrix");
  o = NULL;
  st = mx_inv(sa3, &o);
  expect_error(eval_status(st, o), MX_ECOMPUTE, "[inv] matrix 2 of the batch", "inv names itself");
  mx_release(sb4);

  /* Shape errors. */
  int64_t s32[2] = {3, 2}, s4v[1] = {4}, s23[3] = {2, 2, 2};
  double z[16] = {0};
  mx_array *rect = arr_values(MX_F32, 2, s32, z), *v4 = arr_values(MX_F32, 1, s4v, z),
           *b22 = arr_values(MX_F32, 3, s23, z);
  expect_error(mx_solve(rect, v4, &o), MX_EINVAL, "[solve] a must be a square matrix", "solve non-square");
  expect_error(mx_solve(sa3, v4, &o), MX_EINVAL, "[solve] b f32[4] does not fit a f32[3][2][2]", "solve mismatch");
  expect_error(mx_solve(sa3, b22, &o), MX_EINVAL, "cannot be broadcast (3 vs 2)", "solve batch mismatch");
  mx_release(rect);
  mx_release(v4);
  mx_release(b22);
  mx_release(sa3);
}

static void test_triangular_solve(void) {
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    int n = 5, k = 3;
    double a[25], b[15];
    random_fill(a, 25);
    for (int i = 0; i < n; i++) a[i * n + i] = 2 + i; /* well conditioned */
    random_fill(b, 15);
    int64_t sa[2] = {n, n}, sl[2] = {n, k}, sr[2] = {k, n};
    mx_array *xa = arr_values(t, 2, sa, a), *bl = arr_values(t, 2, sl, b), *br = arr_values(t, 2, sr, b);
    for (int flags = 0; flags < 16; flags++) {
      int lower = flags & 1, left = flags >> 1 & 1, trans = flags >> 2 & 1, unit = flags >> 3 & 1;
      /* The matrix the solve uses: one triangle, maybe a unit diagonal, maybe transposed. */
      double tri[25], op[25];
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) tri[i * n + j] = (lower ? j <= i : j >= i) ? (i == j && unit ? 1 : a[i * n + j]) : 0;
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) op[i * n + j] = trans ? tri[j * n + i] : tri[i * n + j];
      mx_array *x = NULL;
      CHECK(mx_triangular_solve(xa, left ? bl : br, lower, left, trans, unit, &x) == MX_OK, "trsolve build %d", flags);
      double *xv = x ? values(x, "triangular_solve") : NULL;
      if (xv) {
        double r[15];
        if (left) mm(n, k, n, op, 0, xv, 0, r);
        else mm(k, n, n, xv, 0, op, 0, r);
        double err = max_diff(r, b, 15) / (max_abs(op, 25) * max_abs(xv, 15));
        CHECK(err <= 64 * n * unit_roundoff(t), "triangular_solve %s flags %d: residual %g", mx_dtype_name(t), flags, err);
      }
      free(xv);
      mx_release(x);
    }
    mx_release(xa);
    mx_release(bl);
    mx_release(br);
  }
  /* A zero on the diagonal fails unless the diagonal is taken as ones. */
  double a[8] = {1, 0, 0, 1, 3, 0, 1, 0}, b[2] = {1, 1};
  int64_t sa[3] = {2, 2, 2}, sb[1] = {2};
  mx_array *xa = arr_values(MX_F64, 3, sa, a), *xb = arr_values(MX_F64, 1, sb, b), *x = NULL;
  mx_status st = mx_triangular_solve(xa, xb, 1, 1, 0, 0, &x);
  expect_error(eval_status(st, x), MX_ECOMPUTE, "[triangular_solve] matrix 1 of the batch f64[2][2][2] is singular (a[1][1]",
               "triangular zero diagonal");
  x = NULL;
  st = mx_triangular_solve(xa, xb, 1, 1, 0, 1, &x);
  CHECK(eval_status(st, x) == MX_OK, "unit_diagonal skips the zero");
  mx_release(xa);
  mx_release(xb);
}

/* ---- det, slogdet ----------------------------------------------------------------------------- */

static void test_det(void) {
  /* Permutations (sign), a triangular product, a singular matrix, the empty matrix. */
  double m[4][9] = {{0, 1, 0, 0, 0, 1, 1, 0, 0},   /* cyclic: det +1 */
                    {0, 1, 0, 1, 0, 0, 0, 0, 1},   /* one swap: det -1 */
                    {2, 0, 0, 5, 3, 0, 7, 8, -4},  /* triangular: -24 */
                    {1, 2, 3, 4, 5, 6, 7, 8, 9}};  /* singular */
  double want[4] = {1, -1, -24, 0};
  int64_t s[3] = {4, 3, 3};
  for (int ti = 0; ti < 2; ti++) {
    mx_array *a = arr_values(types[ti], 3, s, &m[0][0]), *d = NULL, *sg = NULL, *ld = NULL;
    CHECK(mx_det(a, &d) == MX_OK && mx_slogdet(a, &sg, &ld) == MX_OK, "det build");
    double *dv = values(d, "det"), *sv = values(sg, "slogdet sign"), *lv = values(ld, "slogdet log");
    if (dv && sv && lv) {
      for (int i = 0; i < 3; i++) {
        CHECK(fabs(dv[i] - want[i]) <= 1e-5 * fabs(want[i]), "det %d = %g, want %g", i, dv[i], want[i]);
        CHECK(sv[i] == (want[i] > 0 ? 1 : -1) && fabs(lv[i] - log(fabs(want[i]))) < 1e-5, "slogdet %d = (%g, %g)", i,
              sv[i], lv[i]);
      }
      /* [[1,2,3],[4,5,6],[7,8,9]] is singular but its LU pivot is tiny, not zero, in floating point. */
      CHECK(fabs(dv[3]) < 1e-5, "det of the singular matrix %g", dv[3]);
    }
    free(dv);
    free(sv);
    free(lv);
    mx_release(a);
    mx_release(d);
    mx_release(sg);
    mx_release(ld);
  }
  /* Exactly singular: 0 and (0, -inf). The empty matrix: 1 and (1, 0). */
  double z[4] = {1, 2, 2, 4};
  int64_t s2[2] = {2, 2}, s0[2] = {0, 0};
  mx_array *a = arr_values(MX_F64, 2, s2, z), *e = arr_values(MX_F64, 2, s0, z), *d = NULL, *sg = NULL, *ld = NULL,
           *de = NULL, *se = NULL, *le = NULL;
  mx_det(a, &d);
  mx_slogdet(a, &sg, &ld);
  mx_det(e, &de);
  mx_slogdet(e, &se, &le);
  double *dv = values(d, "det0"), *sv = values(sg, "sign0"), *lv = values(ld, "log0"), *dev = values(de, "det empty"),
         *sev = values(se, "sign empty"), *lev = values(le, "log empty");
  CHECK(dv && dv[0] == 0 && sv[0] == 0 && lv[0] == -INFINITY, "singular: det 0, slogdet (0, -inf)");
  CHECK(dev && dev[0] == 1 && sev[0] == 1 && lev[0] == 0, "empty: det 1, slogdet (1, 0)");
  free(dv), free(sv), free(lv), free(dev), free(sev), free(lev);
  mx_release(a), mx_release(e), mx_release(d), mx_release(sg), mx_release(ld), mx_release(de), mx_release(se),
      mx_release(le);
}

/* ---- qr, svd, eigh -------------------------------------------------------------------------------- */

static void test_qr(void) {
  int dims[5][2] = {{5, 3}, {3, 5}, {4, 4}, {1, 6}, {6, 1}};
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    double u = unit_roundoff(t);
    for (int c = 0; c < 5; c++) {
      int m = dims[c][0], n = dims[c][1], k = m < n ? m : n, batch = 6;
      int64_t s[3] = {batch, m, n};
      double *a = malloc(sizeof(double) * (size_t)(batch * m * n));
      random_fill(a, batch * m * n);
      mx_array *x = arr_values(t, 3, s, a), *q = NULL, *r = NULL;
      CHECK(mx_qr(x, &q, &r) == MX_OK && q->shape[2] == k && r->shape[1] == k, "qr shapes %dx%d", m, n);
      double *qv = values(q, "qr q"), *rv = values(r, "qr r");
      if (qv && rv) {
        double rec = 0, orth = 0, low = 0, *p = malloc(sizeof(double) * (size_t)(m * n));
        for (int b = 0; b < batch; b++) {
          mm(m, n, k, qv + b * m * k, 0, rv + b * k * n, 0, p);
          rec = fmax(rec, max_diff(p, a + b * m * n, m * n));
          orth = fmax(orth, orth_error(qv + b * m * k, m, k, 0));
          for (int i = 0; i < k; i++)
            for (int j = 0; j < i && j < n; j++) low = fmax(low, fabs(rv[b * k * n + i * n + j]));
        }
        CHECK(rec <= 64 * m * n * u && orth <= 64 * m * n * u && low == 0, "qr %s %dx%d: |QR-A| %g, |Q^TQ-I| %g, lower %g",
              mx_dtype_name(t), m, n, rec, orth, low);
        free(p);
      }
      free(qv);
      free(rv);
      mx_release(x);
      mx_release(q);
      mx_release(r);
      free(a);
    }
  }
}

static void test_svd(void) {
  int dims[5][2] = {{5, 3}, {3, 5}, {4, 4}, {1, 6}, {7, 1}};
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    double u = unit_roundoff(t);
    for (int c = 0; c < 5; c++)
      for (int full = 0; full < 2; full++) {
        int m = dims[c][0], n = dims[c][1], k = m < n ? m : n, batch = 5, p = full ? m : k, q = full ? n : k;
        int64_t s[3] = {batch, m, n};
        double *a = malloc(sizeof(double) * (size_t)(batch * m * n));
        random_fill(a, batch * m * n);
        mx_array *x = arr_values(t, 3, s, a), *uu = NULL, *ss = NULL, *vt = NULL, *sv = NULL;
        CHECK(mx_svd(x, full, &uu, &ss, &vt) == MX_OK && uu->shape[2] == p && vt->shape[1] == q, "svd shapes");
        CHECK(mx_svdvals(x, &sv) == MX_OK, "svdvals build");
        double *U = values(uu, "svd u"), *S = values(ss, "svd s"), *V = values(vt, "svd vt"), *S2 = values(sv, "svdvals");
        if (U && S && V && S2) {
          double rec = 0, orth = 0, order = 0, vals = 0;
          double *us = malloc(sizeof(double) * (size_t)(m * k)), *pr = malloc(sizeof(double) * (size_t)(m * n));
          for (int b = 0; b < batch; b++) {
            for (int i = 0; i < m; i++)
              for (int j = 0; j < k; j++) us[i * k + j] = U[b * m * p + i * p + j] * S[b * k + j];
            /* U[:, :k] S Vt[:k, :] = A: Vt's first k rows are its first k*n elements. */
            mm(m, n, k, us, 0, V + b * q * n, 0, pr);
            rec = fmax(rec, max_diff(pr, a + b * m * n, m * n));
            orth = fmax(orth, fmax(orth_error(U + b * m * p, m, p, 0), orth_error(V + b * q * n, q, n, 1)));
            for (int j = 1; j < k; j++) order += S[b * k + j] > S[b * k + j - 1];
          }
          vals = max_diff(S, S2, batch * k);
          CHECK(rec <= 64 * m * n * u && orth <= 64 * m * n * u && order == 0 && vals <= 64 * m * n * u,
                "svd %s %dx%d full=%d: |USVt-A| %g, orth %g, unsorted %g, |s - svdvals| %g", mx_dtype_name(t), m, n, full,
                rec, orth, order, vals);
          free(us);
          free(pr);
        }
        free(U), free(S), free(V), free(S2);
        mx_release(x), mx_release(uu), mx_release(ss), mx_release(vt), mx_release(sv);
        free(a);
      }
  }
  /* Empty: full U and Vt are identities, S is empty. */
  int64_t s30[2] = {3, 0};
  double z[1] = {0};
  mx_array *e = arr_values(MX_F64, 2, s30, z), *uu = NULL, *ss = NULL, *vt = NULL;
  CHECK(mx_svd(e, 1, &uu, &ss, &vt) == MX_OK && uu->shape[1] == 3 && ss->shape[0] == 0 && vt->shape[0] == 0, "empty svd");
  double *U = values(uu, "empty svd u");
  CHECK(U && U[0] == 1 && U[1] == 0 && U[4] == 1 && U[8] == 1, "empty svd: U = I");
  free(U);
  mx_release(e), mx_release(uu), mx_release(ss), mx_release(vt);
}

static void test_eigh(void) {
  for (int ti = 0; ti < 2; ti++) {
    mx_dtype t = types[ti];
    double u = unit_roundoff(t);
    for (int n = 1; n <= 8; n += 7) {
      int batch = 11;
      int64_t s[3] = {batch, n, n};
      double *a = malloc(sizeof(double) * (size_t)(batch * n * n)), *sym = malloc(sizeof(double) * (size_t)(batch * n * n));
      random_fill(a, batch * n * n);
      /* The symmetric matrix from the lower triangle; the upper one of the input is garbage. */
      for (int b = 0; b < batch; b++)
        for (int i = 0; i < n; i++)
          for (int j = 0; j < n; j++) {
            double v = a[b * n * n + (i > j ? i * n + j : j * n + i)];
            sym[b * n * n + i * n + j] = v;
            if (j > i) a[b * n * n + i * n + j] = 100;
          }
      mx_array *x = arr_values(t, 3, s, a), *w = NULL, *v = NULL, *w2 = NULL;
      CHECK(mx_eigh(x, &w, &v) == MX_OK && mx_eigvalsh(x, &w2) == MX_OK, "eigh build");
      double *W = values(w, "eigh w"), *V = values(v, "eigh v"), *W2 = values(w2, "eigvalsh");
      if (W && V && W2) {
        double rec = 0, orth = 0, order = 0, *vw = malloc(sizeof(double) * (size_t)(n * n)),
               *pr = malloc(sizeof(double) * (size_t)(n * n));
        for (int b = 0; b < batch; b++) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) vw[i * n + j] = V[b * n * n + i * n + j] * W[b * n + j];
          mm(n, n, n, vw, 0, V + b * n * n, 1, pr);
          rec = fmax(rec, max_diff(pr, sym + b * n * n, n * n));
          orth = fmax(orth, orth_error(V + b * n * n, n, n, 0));
          for (int j = 1; j < n; j++) order += W[b * n + j] < W[b * n + j - 1];
        }
        double vals = max_diff(W, W2, batch * n);
        CHECK(rec <= 64 * n * n * u && orth <= 64 * n * n * u && order == 0 && vals <= 64 * n * n * u,
              "eigh %s n=%d: |V w V^T - A| %g, orth %g, unsorted %g, |w - eigvalsh| %g", mx_dtype_name(t), n, rec, orth,
              order, vals);
        free(vw);
        free(pr);
      }
      free(W), free(V), free(W2);
      mx_release(x), mx_release(w), mx_release(v), mx_release(w2);
      free(a);
      free(sym);
    }
  }
  /* A NaN in the lower triangle gives NaN; one in the (unread) upper triangle does not. */
  double m[8] = {1, 0, NAN, 1, 2, NAN, 0, 3};
  int64_t s[3] = {2, 2, 2};
  mx_array *x = arr_values(MX_F64, 3, s, m), *w = NULL;
  mx_eigvalsh(x, &w);
  double *W = values(w, "eigvalsh nan");
  CHECK(W && isnan(W[0]) && isnan(W[1]) && W[2] == 2 && W[3] == 3, "eigvalsh NaN handling");
  free(W);
  mx_release(x), mx_release(w);
}

/* ---- composites ----------------------------------------------------------------------------- */

static void test_composites(void) {
  double m[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  int64_t s34[2] = {3, 4}, s3[1] = {3}, s23[2] = {2, 3};
  mx_array *a = arr_values(MX_S64, 2, s34, m), *d = NULL, *tr = NULL;
  int64_t offs[5] = {0, 1, 3, -2, 7};
  double want_d[5][3] = {{0, 5, 10}, {1, 6, 11}, {3}, {8}, {0}};
  int want_n[5] = {3, 3, 1, 1, 0};
  double want_tr[5] = {15, 18, 3, 8, 0};
  for (int i = 0; i < 5; i++) {
    CHECK(mx_diagonal(a, offs[i], &d) == MX_OK && d->shape[0] == want_n[i], "diagonal %lld shape", (long long)offs[i]);
    CHECK(mx_trace(a, offs[i], &tr) == MX_OK, "trace build");
    int64_t *dv = NULL, *tv = NULL;
    if (mx_eval(&d, 1) == MX_OK && mx_eval(&tr, 1) == MX_OK) {
      dv = mx_data(d);
      tv = mx_data(tr);
      int ok = tv[0] == (int64_t)want_tr[i];
      for (int j = 0; j < want_n[i]; j++) ok = ok && dv[j] == (int64_t)want_d[i][j];
      CHECK(ok, "diagonal/trace offset %lld", (long long)offs[i]);
    }
    mx_release(d);
    mx_release(tr);
  }
  /* diag of a batch of vectors, with offsets. */
  mx_array *v = arr_values(MX_F32, 2, s23, m), *dg = NULL;
  CHECK(mx_diag(v, -1, &dg) == MX_OK && dg->ndim == 3 && dg->shape[1] == 4 && dg->shape[2] == 4, "diag shape");
  double *dgv = values(dg, "diag");
  CHECK(dgv && dgv[4] == 0 && dgv[9] == 1 && dgv[14] == 2 && dgv[16 + 4] == 3 && dgv[16 + 14] == 5 && dgv[0] == 0 &&
            dgv[5] == 0,
        "diag values");
  free(dgv);
  mx_release(dg);
  /* cross with broadcasting; outer flattens. */
  double x3[3] = {1, 2, 3}, y3[6] = {4, 5, 6, 1, 0, 0};
  int64_t s23b[2] = {2, 3};
  mx_array *cx = arr_values(MX_F64, 1, s3, x3), *cy = arr_values(MX_F64, 2, s23b, y3), *c = NULL, *o = NULL;
  CHECK(mx_cross(cx, cy, -1, &c) == MX_OK && c->ndim == 2, "cross build");
  double *cv = values(c, "cross");
  CHECK(cv && cv[0] == -3 && cv[1] == 6 && cv[2] == -3 && cv[3] == 0 && cv[4] == 3 && cv[5] == -2, "cross values");
  free(cv);
  mx_release(c);
  CHECK(mx_outer(cx, cy, &o) == MX_OK && o->shape[0] == 3 && o->shape[1] == 6, "outer shape");
  double *ov = values(o, "outer");
  CHECK(ov && ov[0] == 4 && ov[6 + 2] == 12 && ov[17] == 0, "outer values");
  free(ov);
  mx_release(o);
  expect_error(mx_cross(a, a, -1, &o), MX_EINVAL, "[cross] axis -1 must have 3 components", "cross size");
  /* norms */
  double nv[4] = {3, -4, 0, 0};
  int64_t s4[1] = {4}, s22[2] = {2, 2};
  mx_array *vec = arr_values(MX_F64, 1, s4, nv), *mat = arr_values(MX_F64, 2, s22, nv), *r = NULL;
  struct {
    mx_array *x;
    mx_norm_kind kind;
    double p, want;
  } cases[] = {{vec, MX_NORM_DEFAULT, 0, 5},       {vec, MX_NORM_P, 1, 7},         {vec, MX_NORM_P, INFINITY, 4},
               {vec, MX_NORM_P, -INFINITY, 0},     {vec, MX_NORM_P, 0, 2},         {vec, MX_NORM_P, 3, cbrt(91)},
               {mat, MX_NORM_FRO, 0, 5},           {mat, MX_NORM_P, 1, 4},         {mat, MX_NORM_P, INFINITY, 7},
               {mat, MX_NORM_P, 2, 5},             {mat, MX_NORM_P, -2, 0},        {mat, MX_NORM_NUC, 0, 5},
               {mat, MX_NORM_P, -1, 3},            {mat, MX_NORM_P, -INFINITY, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mx_status st = mx_norm(cases[i].x, cases[i].kind, cases[i].p, NULL, -1, 0, &r);
    double *rv = st ? NULL : values(r, "norm");
    CHECK(rv && fabs(rv[0] - cases[i].want) <= 1e-14 * fmax(1, cases[i].want), "norm case %zu: %g, want %g (%s)", i,
          rv ? rv[0] : NAN, cases[i].want, st ? mx_last_error() : "");
    free(rv);
    if (!st) mx_release(r);
  }
  expect_error(mx_norm(vec, MX_NORM_FRO, 0, NULL, -1, 0, &r), MX_EINVAL, "[norm] ord :fro is a matrix norm", "fro of vector");
  expect_error(mx_norm(mat, MX_NORM_P, 3, NULL, -1, 0, &r), MX_EINVAL, "[norm] ord 3 is not a matrix norm", "ord 3 matrix");
  mx_release(vec), mx_release(mat), mx_release(cx), mx_release(cy), mx_release(v), mx_release(a);
}

int main(void) {
  test_cholesky();
  test_solve();
  test_triangular_solve();
  test_det();
  test_qr();
  test_svd();
  test_eigh();
  test_composites();
  return test_summary("test_linalg: ");
}
