/* blas.h: the one place that knows the CBLAS ABI (header, integer type, argument
 * order). Kernels call these wrappers with int64_t sizes; they check the sizes
 * fit with mx_blas_fits first. All matrices are row-major. */
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

#endif
