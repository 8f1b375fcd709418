/* blas.h: the one place that knows the CBLAS and LAPACKE ABI (header, integer type, argument
 * order). Kernels call these wrappers with int64_t sizes; they check the sizes
 * fit with mx_blas_fits first. BLAS matrices are row-major; LAPACK's column-major (below). */
#ifndef MX_BLAS_H
#define MX_BLAS_H

#include <cblas.h>
#include <limits.h>
#include <stdint.h>

/* OpenBLAS's cblas.h uses blasint (64-bit in an INTERFACE64 build); netlib's uses int. */
#ifdef OPENBLAS_CONST
typedef blasint mx_blas_int;
#else
typedef int mx_blas_int;
#endif
#define MX_BLAS_INT_MAX (sizeof(mx_blas_int) == 8 ? (int64_t)INT64_MAX : (int64_t)INT_MAX)

static inline int mx_blas_fits(int64_t v) { return v >= 0 && v <= MX_BLAS_INT_MAX; }

static inline enum CBLAS_TRANSPOSE mx_blas_trans(int transposed) { return transposed ? CblasTrans : CblasNoTrans; }

/* C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C. BLAS rejects zero
 * leading dimensions, so callers handle m, n or k == 0 themselves. */
static inline void mx_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                            int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(/* layout = */ CblasRowMajor, /* transa = */ mx_blas_trans(trans_a),
              /* transb = */ mx_blas_trans(trans_b), /* m = */ (mx_blas_int)m, /* n = */ (mx_blas_int)n,
              /* k = */ (mx_blas_int)k, /* alpha = */ alpha, /* a = */ a, /* lda = */ (mx_blas_int)lda,
              /* b = */ b, /* ldb = */ (mx_blas_int)ldb, /* beta = */ beta, /* c = */ c,
              /* ldc = */ (mx_blas_int)ldc);
}

static inline void mx_dgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                            int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
  cblas_dgemm(/* layout = */ CblasRowMajor, /* transa = */ mx_blas_trans(trans_a),
              /* transb = */ mx_blas_trans(trans_b), /* m = */ (mx_blas_int)m, /* n = */ (mx_blas_int)n,
              /* k = */ (mx_blas_int)k, /* alpha = */ alpha, /* a = */ a, /* lda = */ (mx_blas_int)lda,
              /* b = */ b, /* ldb = */ (mx_blas_int)ldb, /* beta = */ beta, /* c = */ c,
              /* ldc = */ (mx_blas_int)ldc);
}

/* Complex C[m, n] = op(A) @ op(B) + beta * C, op a plain transpose (no conjugate), beta 0 or 1, on
 * interleaved (re, im) floats (c64, cgemm) or doubles (c128, zgemm); CBLAS takes alpha and beta by address. */
static inline void mx_cxgemm(int f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                             int64_t lda, const void *b, int64_t ldb, int beta_one, void *c, int64_t ldc) {
  static const float one_f[2] = {1, 0}, zero_f[2] = {0, 0};
  static const double one_d[2] = {1, 0}, zero_d[2] = {0, 0};
  const void *beta = f64 ? (beta_one ? (const void *)one_d : zero_d) : (beta_one ? (const void *)one_f : zero_f);
  (f64 ? cblas_zgemm : cblas_cgemm)(/* layout = */ CblasRowMajor, /* transa = */ mx_blas_trans(trans_a),
                                    /* transb = */ mx_blas_trans(trans_b), /* m = */ (mx_blas_int)m,
                                    /* n = */ (mx_blas_int)n, /* k = */ (mx_blas_int)k,
                                    /* alpha = */ f64 ? (const void *)one_d : one_f, /* a = */ a,
                                    /* lda = */ (mx_blas_int)lda, /* b = */ b, /* ldb = */ (mx_blas_int)ldb,
                                    /* beta = */ beta, /* c = */ c, /* ldc = */ (mx_blas_int)ldc);
}

/* y[rows or cols] = alpha * op(A) @ x + beta * y, with A [rows, cols] row-major. */
static inline void mx_sgemv(int trans_a, int64_t rows, int64_t cols, float alpha, const float *a, int64_t lda,
                            const float *x, int64_t incx, float beta, float *y, int64_t incy) {
  cblas_sgemv(/* layout = */ CblasRowMajor, /* trans = */ mx_blas_trans(trans_a), /* m = */ (mx_blas_int)rows,
              /* n = */ (mx_blas_int)cols, /* alpha = */ alpha, /* a = */ a, /* lda = */ (mx_blas_int)lda,
              /* x = */ x, /* incx = */ (mx_blas_int)incx, /* beta = */ beta, /* y = */ y,
              /* incy = */ (mx_blas_int)incy);
}

static inline void mx_dgemv(int trans_a, int64_t rows, int64_t cols, double alpha, const double *a, int64_t lda,
                            const double *x, int64_t incx, double beta, double *y, int64_t incy) {
  cblas_dgemv(/* layout = */ CblasRowMajor, /* trans = */ mx_blas_trans(trans_a), /* m = */ (mx_blas_int)rows,
              /* n = */ (mx_blas_int)cols, /* alpha = */ alpha, /* a = */ a, /* lda = */ (mx_blas_int)lda,
              /* x = */ x, /* incx = */ (mx_blas_int)incx, /* beta = */ beta, /* y = */ y,
              /* incy = */ (mx_blas_int)incy);
}

/* Solves op(A) X = alpha B (left) or X op(A) = alpha B (right) in place in B,
 * A triangular [n, n] row-major. trsm never checks for a zero diagonal. */
static inline void mx_trsm(int f64, int left, int lower, int trans_a, int unit, int64_t m, int64_t n, const void *a,
                           int64_t lda, void *b, int64_t ldb) {
  enum CBLAS_SIDE side = left ? CblasLeft : CblasRight;
  enum CBLAS_UPLO uplo = lower ? CblasLower : CblasUpper;
  enum CBLAS_DIAG diag = unit ? CblasUnit : CblasNonUnit;
  if (f64)
    cblas_dtrsm(/* layout = */ CblasRowMajor, /* side = */ side, /* uplo = */ uplo, /* transa = */ mx_blas_trans(trans_a),
                /* diag = */ diag, /* m = */ (mx_blas_int)m, /* n = */ (mx_blas_int)n, /* alpha = */ 1.0,
                /* a = */ (const double *)a, /* lda = */ (mx_blas_int)lda, /* b = */ (double *)b,
                /* ldb = */ (mx_blas_int)ldb);
  else
    cblas_strsm(/* layout = */ CblasRowMajor, /* side = */ side, /* uplo = */ uplo, /* transa = */ mx_blas_trans(trans_a),
                /* diag = */ diag, /* m = */ (mx_blas_int)m, /* n = */ (mx_blas_int)n, /* alpha = */ 1.0f,
                /* a = */ (const float *)a, /* lda = */ (mx_blas_int)lda, /* b = */ (float *)b,
                /* ldb = */ (mx_blas_int)ldb);
}

/* x = op(A)^-1 x for one vector x (stride incx), A triangular [n, n] row-major: trsm's one-column case. */
static inline void mx_trsv(int f64, int lower, int trans_a, int unit, int64_t n, const void *a, int64_t lda, void *x,
                           int64_t incx) {
  enum CBLAS_UPLO uplo = lower ? CblasLower : CblasUpper;
  enum CBLAS_DIAG diag = unit ? CblasUnit : CblasNonUnit;
  if (f64)
    cblas_dtrsv(/* layout = */ CblasRowMajor, /* uplo = */ uplo, /* transa = */ mx_blas_trans(trans_a), /* diag = */ diag,
                /* n = */ (mx_blas_int)n, /* a = */ (const double *)a, /* lda = */ (mx_blas_int)lda, /* x = */ (double *)x,
                /* incx = */ (mx_blas_int)incx);
  else
    cblas_strsv(/* layout = */ CblasRowMajor, /* uplo = */ uplo, /* transa = */ mx_blas_trans(trans_a), /* diag = */ diag,
                /* n = */ (mx_blas_int)n, /* a = */ (const float *)a, /* lda = */ (mx_blas_int)lda, /* x = */ (float *)x,
                /* incx = */ (mx_blas_int)incx);
}

/* ---- LAPACK through LAPACKE ----------------------------------------------------------
 * Always column-major (LAPACK's own layout) and always the _work entry points:
 * no hidden transposed copies, no hidden allocation, no NaN scan. A row-major
 * matrix read as column-major is its transpose; prim/linalg.c says per kernel
 * how it uses that. `f64` picks the d (else s) routine; matrices are void *.
 * The return value is LAPACK's info: 0 ok, < 0 bad argument -info, > 0 the
 * routine's own failure (documented at each wrapper). */
#include <lapacke.h>

typedef lapack_int mx_lapack_int;
#define MX_LAPACK_INT_MAX (sizeof(mx_lapack_int) == 8 ? (int64_t)INT64_MAX : (int64_t)INT32_MAX)

static inline int mx_lapack_fits(int64_t v) { return v >= 0 && v <= MX_LAPACK_INT_MAX; }

/* Cholesky A = U^T U (upper) or L L^T; info > 0: the leading minor of that order is not positive. */
static inline int64_t mx_potrf(int f64, int upper, int64_t n, void *a, int64_t lda) {
  char uplo = upper ? 'U' : 'L';
  return f64 ? LAPACKE_dpotrf_work(/* layout = */ LAPACK_COL_MAJOR, /* uplo = */ uplo, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda)
             : LAPACKE_spotrf_work(/* layout = */ LAPACK_COL_MAJOR, /* uplo = */ uplo, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda);
}

/* P A = L U with partial pivoting; ipiv is 1-based; info > 0: U[info-1][info-1] is exactly zero. */
static inline int64_t mx_getrf(int f64, int64_t m, int64_t n, void *a, int64_t lda, mx_lapack_int *ipiv) {
  return f64 ? LAPACKE_dgetrf_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda, /* ipiv = */ ipiv)
             : LAPACKE_sgetrf_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda, /* ipiv = */ ipiv);
}

/* Householder QR: R in the upper triangle, reflectors below it and in tau. lwork -1 queries into work[0]. */
static inline int64_t mx_geqrf(int f64, int64_t m, int64_t n, void *a, int64_t lda, void *tau, void *work,
                               int64_t lwork) {
  return f64 ? LAPACKE_dgeqrf_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda, /* tau = */ (double *)tau,
                                   /* work = */ (double *)work, /* lwork = */ (mx_lapack_int)lwork)
             : LAPACKE_sgeqrf_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda, /* tau = */ (float *)tau,
                                   /* work = */ (float *)work, /* lwork = */ (mx_lapack_int)lwork);
}

/* Forms the first n columns of Q [m, n] from k reflectors of geqrf, in place. */
static inline int64_t mx_orgqr(int f64, int64_t m, int64_t n, int64_t k, void *a, int64_t lda, const void *tau,
                               void *work, int64_t lwork) {
  return f64 ? LAPACKE_dorgqr_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* k = */ (mx_lapack_int)k, /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* tau = */ (const double *)tau, /* work = */ (double *)work,
                                   /* lwork = */ (mx_lapack_int)lwork)
             : LAPACKE_sorgqr_work(/* layout = */ LAPACK_COL_MAJOR, /* m = */ (mx_lapack_int)m, /* n = */ (mx_lapack_int)n,
                                   /* k = */ (mx_lapack_int)k, /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* tau = */ (const float *)tau, /* work = */ (float *)work,
                                   /* lwork = */ (mx_lapack_int)lwork);
}

/* Divide-and-conquer SVD A = U S VT (jobz 'N' values only, 'S' reduced, 'A' full);
 * a is destroyed; iwork holds 8 min(m, n) ints; info > 0: did not converge. */
static inline int64_t mx_gesdd(int f64, char jobz, int64_t m, int64_t n, void *a, int64_t lda, void *s, void *u,
                               int64_t ldu, void *vt, int64_t ldvt, void *work, int64_t lwork, mx_lapack_int *iwork) {
  return f64 ? LAPACKE_dgesdd_work(/* layout = */ LAPACK_COL_MAJOR, /* jobz = */ jobz, /* m = */ (mx_lapack_int)m,
                                   /* n = */ (mx_lapack_int)n, /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* s = */ (double *)s, /* u = */ (double *)u, /* ldu = */ (mx_lapack_int)ldu,
                                   /* vt = */ (double *)vt, /* ldvt = */ (mx_lapack_int)ldvt, /* work = */ (double *)work,
                                   /* lwork = */ (mx_lapack_int)lwork, /* iwork = */ iwork)
             : LAPACKE_sgesdd_work(/* layout = */ LAPACK_COL_MAJOR, /* jobz = */ jobz, /* m = */ (mx_lapack_int)m,
                                   /* n = */ (mx_lapack_int)n, /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* s = */ (float *)s, /* u = */ (float *)u, /* ldu = */ (mx_lapack_int)ldu,
                                   /* vt = */ (float *)vt, /* ldvt = */ (mx_lapack_int)ldvt, /* work = */ (float *)work,
                                   /* lwork = */ (mx_lapack_int)lwork, /* iwork = */ iwork);
}

/* Symmetric eigensolver (divide and conquer): eigenvalues ascending in w; with jobz 'V'
 * the eigenvectors replace a as columns. Lwork/liwork -1 query; info > 0: did not converge. */
static inline int64_t mx_syevd(int f64, char jobz, int upper, int64_t n, void *a, int64_t lda, void *w, void *work,
                               int64_t lwork, mx_lapack_int *iwork, int64_t liwork) {
  char uplo = upper ? 'U' : 'L';
  return f64 ? LAPACKE_dsyevd_work(/* layout = */ LAPACK_COL_MAJOR, /* jobz = */ jobz, /* uplo = */ uplo,
                                   /* n = */ (mx_lapack_int)n, /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* w = */ (double *)w, /* work = */ (double *)work, /* lwork = */ (mx_lapack_int)lwork,
                                   /* iwork = */ iwork, /* liwork = */ (mx_lapack_int)liwork)
             : LAPACKE_ssyevd_work(/* layout = */ LAPACK_COL_MAJOR, /* jobz = */ jobz, /* uplo = */ uplo,
                                   /* n = */ (mx_lapack_int)n, /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda,
                                   /* w = */ (float *)w, /* work = */ (float *)work, /* lwork = */ (mx_lapack_int)lwork,
                                   /* iwork = */ iwork, /* liwork = */ (mx_lapack_int)liwork);
}

/* General real eigenproblem: eigenvalues wr + i wi; with jobvr 'V' right eigenvectors in vr
 * (a complex pair j, j+1 stored as vr(:, j) +- i vr(:, j+1)); a is destroyed; info > 0: the
 * QR iteration did not converge. lwork -1 queries. */
static inline int64_t mx_geev(int f64, char jobvr, int64_t n, void *a, int64_t lda, void *wr, void *wi, void *vr,
                              int64_t ldvr, void *work, int64_t lwork) {
  return f64 ? LAPACKE_dgeev_work(/* layout = */ LAPACK_COL_MAJOR, /* jobvl = */ 'N', /* jobvr = */ jobvr,
                                  /* n = */ (mx_lapack_int)n, /* a = */ (double *)a, /* lda = */ (mx_lapack_int)lda,
                                  /* wr = */ (double *)wr, /* wi = */ (double *)wi, /* vl = */ NULL, /* ldvl = */ 1,
                                  /* vr = */ (double *)vr, /* ldvr = */ (mx_lapack_int)ldvr, /* work = */ (double *)work,
                                  /* lwork = */ (mx_lapack_int)lwork)
             : LAPACKE_sgeev_work(/* layout = */ LAPACK_COL_MAJOR, /* jobvl = */ 'N', /* jobvr = */ jobvr,
                                  /* n = */ (mx_lapack_int)n, /* a = */ (float *)a, /* lda = */ (mx_lapack_int)lda,
                                  /* wr = */ (float *)wr, /* wi = */ (float *)wi, /* vl = */ NULL, /* ldvl = */ 1,
                                  /* vr = */ (float *)vr, /* ldvr = */ (mx_lapack_int)ldvr, /* work = */ (float *)work,
                                  /* lwork = */ (mx_lapack_int)lwork);
}

/* Complex LU with partial pivoting of a row-major [n, n] c64 (c128 if z) matrix in place
 * (LAPACKE transposes for the Fortran call); info > 0: an exact zero pivot. */
static inline int64_t mx_complex_getrf(int z, int64_t n, void *a, mx_lapack_int *ipiv) {
  return z ? LAPACKE_zgetrf(/* layout = */ LAPACK_ROW_MAJOR, /* m = */ (mx_lapack_int)n, /* n = */ (mx_lapack_int)n,
                            /* a = */ (lapack_complex_double *)a, /* lda = */ (mx_lapack_int)n, /* ipiv = */ ipiv)
           : LAPACKE_cgetrf(/* layout = */ LAPACK_ROW_MAJOR, /* m = */ (mx_lapack_int)n, /* n = */ (mx_lapack_int)n,
                            /* a = */ (lapack_complex_float *)a, /* lda = */ (mx_lapack_int)n, /* ipiv = */ ipiv);
}

#endif
