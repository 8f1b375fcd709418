/* linalg.c: the LAPACK-backed kernels. Each loops over the batch of matrices
 * held in its input's last two axes (f32 or f64 only: ops_linalg.c casts).
 *
 * Layout: the engine is row-major and LAPACK is called column-major (blas.h).
 * A row-major buffer read column-major is the transpose; each kernel either
 * uses that (symmetric inputs, the SVD of A^T, row-major trsm on LU factors)
 * or undoes it with an O(n^2) transposed copy. Inputs are never written:
 * LAPACK works in the output buffer or in a malloc'd workspace.
 *
 * Parameters and packed outputs (a node has one buffer; parts lie flat in its last axis):
 *   CHOLESKY          [..., n, n] -> [..., n, n] lower L; reads the input's lower triangle
 *   LU                [..., n, n] -> [..., n*n + n]: L\U of P A = L U row-major (unit diagonal of
 *                     L implied), then pivots: row i was swapped with row piv[i] (0-based, as
 *                     floats). A zero pivot is not an error here (det 0).
 *   SOLVE             in[0] [..., n, n], in[1] [..., n, k], batch axes broadcast (right-aligned)
 *                     to out [..., n, k]; flags & 1 solves A^T X = B; flags & 2 names the op "inv"
 *   TRIANGULAR_SOLVE  in[0] [..., n, n], in[1] [..., m, k] (m = n left, k = n right), batch
 *                     broadcast; flags: 1 lower, 2 left side, 4 transpose a, 8 unit diagonal
 *   QR                [..., m, n] -> [..., m*k + k*n]: Q [m, k], then R [k, n]; k = min(m, n)
 *   SVD               [..., m, n] -> [..., m*p + k + q*n]: U [m, p], S [k] descending, Vt [q, n];
 *                     p = q = k, or flags & 1 (full): p = m, q = n; flags & 2: S only, [..., k]
 *   EIGH              [..., n, n] -> [..., n + n*n]: eigenvalues ascending, then the eigenvectors
 *                     as columns of [n, n]; flags & 1: eigenvalues only, [..., n]. Reads the lower
 *                     triangle.
 *
 * A matrix holding NaN or infinity (where it is read) gets an all-NaN result
 * without calling LAPACK, whose iterations are unspecified on them. Failures
 * report the first failing matrix in batch order, even when the batch is
 * split across threads. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "layout.h"

/* ---- element helpers: f64 picks double, else float ------------------------------- */

static inline double get_el(int f64, const void *p, int64_t i) {
  return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static inline void set_el(int f64, void *p, int64_t i, double v) {
  if (f64)
    ((double *)p)[i] = v;
  else
    ((float *)p)[i] = (float)v;
}

static inline char *at(int f64, const void *p, int64_t i) { return (char *)p + i * (f64 ? 8 : 4); }

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: the row-major
 * [rows, cols] src becomes its transpose, i.e. src in column-major order.
 * 32 x 32 tiles keep both sides in cache (a plain loop misses on every write). */
#define TILE 32
static void transpose_copy(int f64, int64_t rows, int64_t cols, const void *src, int64_t lds, void *dst, int64_t ldd) {
  for (int64_t i0 = 0; i0 < rows; i0 += TILE)
    for (int64_t j0 = 0; j0 < cols; j0 += TILE) {
      int64_t i1 = i0 + TILE < rows ? i0 + TILE : rows, j1 = j0 + TILE < cols ? j0 + TILE : cols;
      if (f64) {
        const double *s = src;
        double *d = dst;
        for (int64_t i = i0; i < i1; i++)
          for (int64_t j = j0; j < j1; j++) d[j * ldd + i] = s[i * lds + j];
      } else {
        const float *s = src;
        float *d = dst;
        for (int64_t i = i0; i < i1; i++)
          for (int64_t j = j0; j < j1; j++) d[j * ldd + i] = s[i * lds + j];
      }
    }
}

/* Whether n elements are finite: x - x is 0 for finite x, NaN otherwise (a loop that vectorizes). */
static int finite_run(int f64, const void *p, int64_t n) {
  int bad = 0;
  if (f64) {
    const double *x = p;
    for (int64_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
  } else {
    const float *x = p;
    for (int64_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
  }
  return !bad;
}

/* Whether a row-major [rows, cols] matrix is finite: all of it, or (lower) its lower triangle. */
static int finite_matrix(int f64, const void *p, int64_t rows, int64_t cols, int lower) {
  int ok = 1;
  for (int64_t i = 0; i < rows; i++)
    ok &= finite_run(f64, at(f64, p, i * cols), lower && i + 1 < cols ? i + 1 : cols);
  return ok;
}

/* dst = src, row by row, checking each row while it is in cache; returns finite_matrix(src). */
static int copy_finite(int f64, void *dst, const void *src, int64_t rows, int64_t cols, int lower) {
  int ok = 1;
  size_t row = (size_t)cols * (f64 ? 8 : 4);
  for (int64_t i = 0; i < rows; i++) {
    memcpy(at(f64, dst, i * cols), at(f64, src, i * cols), row);
    ok &= finite_run(f64, at(f64, dst, i * cols), lower && i + 1 < cols ? i + 1 : cols);
  }
  return ok;
}

static void fill_nan(int f64, void *p, int64_t n) {
  for (int64_t i = 0; i < n; i++) set_el(f64, p, i, NAN);
}

static void set_identity(int f64, void *p, int64_t n) {
  memset(p, 0, (size_t)(n * n) * (f64 ? 8 : 4));
  for (int64_t i = 0; i < n; i++) set_el(f64, p, i * n + i, 1.0);
}

/* Zeros below the diagonal of a row-major [rows, cols] matrix. */
static void zero_below_diagonal(int f64, void *p, int64_t rows, int64_t cols) {
  for (int64_t i = 1; i < rows; i++) memset(at(f64, p, i * cols), 0, (size_t)(i < cols ? i : cols) * (f64 ? 8 : 4));
}

/* ---- failures and batch plumbing --------------------------------------------------------- */

#define INFO_NOMEM INT64_MIN

/* The first failure in batch order: chunks run in any order, each stops at its
 * own first failure, and the smallest index wins. */
typedef struct {
  pthread_mutex_t lock;
  int64_t index; /* output batch index, -1 if none */
  int64_t which; /* the input matrix that failed (differs from index under broadcasting) */
  int64_t info;  /* LAPACK's info, or INFO_NOMEM */
  int64_t bytes; /* workspace size, for INFO_NOMEM */
} la_fail;

static void fail_init(la_fail *f) {
  pthread_mutex_init(&f->lock, NULL);
  f->index = -1;
  f->which = -1;
  f->info = 0;
  f->bytes = 0;
}

static void fail_at(la_fail *f, int64_t index, int64_t which, int64_t info, int64_t bytes) {
  pthread_mutex_lock(&f->lock);
  if (f->index < 0 || index < f->index) {
    f->index = index;
    f->which = which;
    f->info = info;
    f->bytes = bytes;
  }
  pthread_mutex_unlock(&f->lock);
}

/* "matrix 3 of the batch f64[5][4][4]" ("matrix 5 [1][2] of ..." for deeper batches). */
static const char *which_matrix(const mx_array *a, int64_t t, char *dst, size_t cap) {
  char d[128], idx[96] = "";
  int nb = a->ndim - 2;
  if (nb > 1) {
    int64_t rest = t;
    char part[24];
    for (int i = nb - 1; i >= 0; i--) {
      int64_t s = a->shape[i] > 0 ? a->shape[i] : 1;
      snprintf(part, sizeof part, "[%lld]", (long long)(rest % s));
      size_t len = strlen(part), have = strlen(idx);
      if (have + len + 1 < sizeof idx) {
        memmove(idx + len, idx, have + 1);
        memcpy(idx, part, len);
      }
      rest /= s;
    }
  }
  if (nb == 0)
    snprintf(dst, cap, "the matrix %s", mx_describe(a, d, sizeof d));
  else
    snprintf(dst, cap, "matrix %lld%s%s of the batch %s", (long long)t, nb > 1 ? " " : "", idx,
             mx_describe(a, d, sizeof d));
  return dst;
}

/* Errors common to every kernel, those with info < 0 (INFO_NOMEM included): no memory,
 * a rejected argument (a bug here). */
static mx_status common_failure(const char *op, const la_fail *f) {
  if (f->info == INFO_NOMEM)
    return mx_error(MX_ENOMEM, "[%s] out of memory allocating a %lld-byte LAPACK workspace", op, (long long)f->bytes);
  return mx_error(MX_ECOMPUTE, "[%s] LAPACK rejected argument %lld (an internal error in Mx; please report it)", op,
                  (long long)-f->info);
}

static void *work_alloc(la_fail *f, int64_t t, int64_t bytes) {
  void *p = malloc(bytes > 0 ? (size_t)bytes : 1);
  if (!p) fail_at(f, t, t, INFO_NOMEM, bytes);
  return p;
}

/* Small matrices split the batch across the pool (LAPACK is thread-safe and
 * OpenBLAS runs such sizes single-threaded); large ones are threaded by OpenBLAS. */
static void run_batch(int64_t batch, int64_t dim, double flops, mx_range_fn fn, void *ctx) {
  int64_t grain = batch;
  if (dim <= 64 && flops < 64.0 * 64 * 64) {
    grain = (int64_t)(65536.0 / (flops + 64.0));
    if (grain < 1) grain = 1;
  }
  mx_parallel_for(batch, grain, fn, ctx);
}

/* Runs fn over the batch with *fail (inside ctx) fresh; whether any matrix failed. */
static int batch_failed(la_fail *fail, int64_t batch, int64_t dim, double flops, mx_range_fn fn, void *ctx) {
  fail_init(fail);
  run_batch(batch, dim, flops, fn, ctx);
  pthread_mutex_destroy(&fail->lock);
  return fail->index >= 0;
}

/* Dtype and LAPACK-range checks every kernel makes before touching data. */
static mx_status check_float(const char *op, const mx_array *out, mx_array *const *in, int n_in) {
  for (int i = 0; i < n_in; i++)
    if (in[i]->dtype != out->dtype || (out->dtype != MX_F32 && out->dtype != MX_F64))
      return mx_error(MX_EINVAL, "[%s] kernel needs f32 or f64 inputs of the output's dtype, got %s and %s", op,
                      mx_dtype_name((mx_dtype)in[i]->dtype), mx_dtype_name((mx_dtype)out->dtype));
  for (int i = 0; i < n_in; i++)
    if (in[i]->ndim < 2) return mx_error(MX_EINVAL, "[%s] kernel needs matrices, got rank %d", op, in[i]->ndim);
  return MX_OK;
}

static mx_status check_range(const char *op, int64_t rows, int64_t cols) {
  int64_t prod;
  if (!mx_lapack_fits(rows) || !mx_lapack_fits(cols) || __builtin_mul_overflow(rows, cols, &prod) ||
      !mx_lapack_fits(prod) || !mx_blas_fits(prod))
    return mx_error(MX_EINVAL,
                    "[%s] a %lld x %lld matrix exceeds LAPACK's integer range (%lld elements at most); "
                    "split the problem into smaller matrices",
                    op, (long long)rows, (long long)cols, (long long)MX_LAPACK_INT_MAX);
  return MX_OK;
}

static mx_status workspace_too_large(const char *op, int64_t m, int64_t n) {
  return mx_error(MX_EINVAL, "[%s] LAPACK's workspace for a %lld x %lld matrix exceeds its integer range; use smaller matrices",
                  op, (long long)m, (long long)n);
}

/* A workspace size a query wrote to w[0] (a float or a double, per f64); -1 if
 * it does not fit LAPACK's integers. */
static int64_t queried(int f64, const void *w) {
  double v = ceil(get_el(f64, w, 0));
  if (!(v >= 1)) v = 1;
  return v > (double)MX_LAPACK_INT_MAX ? -1 : (int64_t)v;
}

/* ---- CHOLESKY ------------------------------------------------------------------------- */

/* One square matrix in, one result out per batch index (CHOLESKY, LU). */
typedef struct {
  int f64;
  int64_t n;
  const void *a;
  void *out;
  la_fail fail;
} square_job;

static void chol_range(void *ctx, int64_t lo, int64_t hi) {
  square_job *J = ctx;
  int64_t n = J->n, nn = n * n;
  size_t es = J->f64 ? 8 : 4, bytes = ((size_t)nn * es + 63) & ~(size_t)63;
  /* OpenBLAS's kernels on some CPUs sum in an order set by the data's alignment: a matrix not on a
   * 64-byte boundary is factored in an aligned scratch, so its result does not depend on its batch index. */
  void *scratch = NULL;
  for (int64_t t = lo; t < hi; t++) {
    void *o = at(J->f64, J->out, t * nn), *w = o;
    if ((uintptr_t)o % 64) {
      if (!scratch && !(scratch = aligned_alloc(64, bytes))) {
        fail_at(&J->fail, t, t, INFO_NOMEM, (int64_t)bytes);
        return;
      }
      w = scratch;
    }
    /* The lower triangle (all potrf reads and writes) and zeros above it, in one pass. */
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
      memcpy(at(J->f64, w, i * n), at(J->f64, J->a, t * nn + i * n), (size_t)(i + 1) * es);
      memset(at(J->f64, w, i * n + i + 1), 0, (size_t)(n - i - 1) * es);
      ok &= finite_run(J->f64, at(J->f64, w, i * n), i + 1);
    }
    if (!ok) {
      fill_nan(J->f64, o, nn);
      continue;
    }
    /* Column-major upper is row-major lower: U with A = U^T U, read row-major, is L. */
    int64_t info = mx_potrf(J->f64, /* upper = */ 1, n, w, n);
    if (info != 0) {
      fail_at(&J->fail, t, t, info, 0);
      free(scratch);
      return;
    }
    if (w != o) memcpy(o, w, (size_t)nn * es);
  }
  free(scratch);
}

mx_status mx_k_cholesky(mx_array *out, mx_array *const *in) {
  mx_status st = check_float("cholesky", out, in, 1);
  if (st) return st;
  int64_t n = in[0]->shape[in[0]->ndim - 1];
  if (in[0]->shape[in[0]->ndim - 2] != n || out->size != in[0]->size)
    return mx_error(MX_EINVAL, "[cholesky] kernel needs square matrices and an output of the input's shape");
  if ((st = check_range("cholesky", n, n))) return st;
  if (out->size == 0) return MX_OK;
  square_job J = {.f64 = out->dtype == MX_F64, .n = n, .a = mx_data(in[0]), .out = mx_data(out)};
  if (!batch_failed(&J.fail, mx_batch_count(in[0], 2), n, (double)n * n * n / 3, chol_range, &J)) return MX_OK;
  if (J.fail.info < 0) return common_failure("cholesky", &J.fail);
  char w[256];
  return mx_error(MX_ECOMPUTE,
                  "[cholesky] %s is not positive definite (its leading minor of order %lld is not positive); "
                  "cholesky needs a symmetric positive-definite matrix: check the input, or add a small "
                  "multiple of the identity",
                  which_matrix(in[0], J.fail.which, w, sizeof w), (long long)J.fail.info);
}

/* ---- LU --------------------------------------------------------------------------------- */

static void lu_range(void *ctx, int64_t lo, int64_t hi) {
  square_job *J = ctx;
  int f64 = J->f64;
  int64_t n = J->n, nn = n * n, es = f64 ? 8 : 4;
  void *w = work_alloc(&J->fail, lo, nn * es);
  mx_lapack_int *ipiv = work_alloc(&J->fail, lo, n * (int64_t)sizeof *ipiv);
  for (int64_t t = lo; t < hi && w && ipiv; t++) {
    const void *a = at(f64, J->a, t * nn);
    void *o = at(f64, J->out, t * (nn + n));
    if (!finite_matrix(f64, a, n, n, 0)) {
      fill_nan(f64, o, nn);
      for (int64_t i = 0; i < n; i++) set_el(f64, o, nn + i, (double)i);
      continue;
    }
    transpose_copy(f64, n, n, a, n, w, n);
    int64_t info = mx_getrf(f64, n, n, w, n, ipiv); /* info > 0: an exact zero pivot, det 0 */
    if (info < 0) {
      fail_at(&J->fail, t, t, info, 0);
      break;
    }
    transpose_copy(f64, n, n, w, n, o, n);
    for (int64_t i = 0; i < n; i++) set_el(f64, o, nn + i, (double)(ipiv[i] - 1));
  }
  free(w);
  free(ipiv);
}

/* Complex LU: the packed output holds complex factors, then the pivots as complex (index, 0). */
static void lu_complex_range(void *ctx, int64_t lo, int64_t hi) {
  square_job *J = ctx;
  int z = J->f64; /* c128 */
  int64_t n = J->n, nn = n * n, es = z ? 16 : 8;
  mx_lapack_int *ipiv = work_alloc(&J->fail, lo, n * (int64_t)sizeof *ipiv);
  for (int64_t t = lo; t < hi && ipiv; t++) {
    const void *a = (const char *)J->a + t * nn * es;
    void *o = (char *)J->out + t * (nn + n) * es;
    int finite = finite_run(z, a, 2 * nn); /* parts as 2 nn reals */
    int64_t info = 0;
    if (finite) {
      memcpy(o, a, (size_t)(nn * es));
      info = mx_complex_getrf(z, n, o, ipiv); /* info > 0: an exact zero pivot, det 0 */
      if (info < 0) {
        fail_at(&J->fail, t, t, info, 0);
        break;
      }
    } else {
      fill_nan(z, o, 2 * nn);
    }
    for (int64_t i = 0; i < n; i++) {
      set_el(z, o, 2 * (nn + i), finite ? (double)(ipiv[i] - 1) : (double)i);
      set_el(z, o, 2 * (nn + i) + 1, 0.0);
    }
  }
  free(ipiv);
}

mx_status mx_k_lu(mx_array *out, mx_array *const *in) {
  if ((out->dtype == MX_C64 || out->dtype == MX_C128) && in[0]->dtype == out->dtype && in[0]->ndim >= 2) {
    int64_t n = in[0]->shape[in[0]->ndim - 1];
    if (in[0]->shape[in[0]->ndim - 2] != n || out->shape[out->ndim - 1] != n * n + n)
      return mx_error(MX_EINVAL, "[lu] kernel needs square matrices and a packed output [..., n*n + n]");
    mx_status cs = check_range("lu", n, n);
    if (cs) return cs;
    if (out->size == 0) return MX_OK;
    square_job J = {.f64 = out->dtype == MX_C128, .n = n, .a = mx_data(in[0]), .out = mx_data(out)};
    return batch_failed(&J.fail, mx_batch_count(in[0], 2), n, 8.0 * n * n * n / 3, lu_complex_range, &J)
               ? common_failure("lu", &J.fail)
               : MX_OK;
  }
  mx_status st = check_float("lu", out, in, 1);
  if (st) return st;
  int64_t n = in[0]->shape[in[0]->ndim - 1];
  if (in[0]->shape[in[0]->ndim - 2] != n || out->shape[out->ndim - 1] != n * n + n)
    return mx_error(MX_EINVAL, "[lu] kernel needs square matrices and a packed output [..., n*n + n]");
  if ((st = check_range("lu", n, n))) return st;
  if (out->size == 0) return MX_OK;
  square_job J = {.f64 = out->dtype == MX_F64, .n = n, .a = mx_data(in[0]), .out = mx_data(out)};
  return batch_failed(&J.fail, mx_batch_count(in[0], 2), n, 2.0 * n * n * n / 3, lu_range, &J)
             ? common_failure("lu", &J.fail)
             : MX_OK;
}

/* ---- SOLVE and TRIANGULAR_SOLVE: batch axes of a and b broadcast ------------------------------ */

typedef struct {
  int f64, flags;
  mx_batch2 bt;    /* out's batch axes, with a's and b's strides */
  int64_t n, m, k; /* a [n, n]; b and out [m, k] */
  const void *a, *b;
  void *out;
  la_fail fail;
} solve_job;

static mx_status solve_plan(const char *op, mx_array *out, mx_array *const *in, solve_job *J) {
  mx_status st = check_float(op, out, in, 2);
  if (st) return st;
  const mx_array *a = in[0], *b = in[1];
  J->f64 = out->dtype == MX_F64;
  J->n = a->shape[a->ndim - 1];
  J->m = out->shape[out->ndim - 2];
  J->k = out->shape[out->ndim - 1];
  if (a->shape[a->ndim - 2] != J->n || b->shape[b->ndim - 2] != J->m || b->shape[b->ndim - 1] != J->k ||
      a->ndim > out->ndim || b->ndim > out->ndim)
    return mx_error(MX_EINVAL, "[%s] kernel shapes do not fit: a needs [..., n, n], b and out [..., m, k]", op);
  int bad = mx_batch2_plan(out, a, b, &J->bt);
  if (bad >= 0)
    return mx_error(MX_EINVAL, "[%s] batch axis %d does not broadcast to the output's size %lld", op, bad,
                    (long long)J->bt.shape[bad]);
  if ((st = check_range(op, J->n, J->n)) || (st = check_range(op, J->m, J->k))) return st;
  J->a = mx_data(a);
  J->b = mx_data(b);
  J->out = mx_data(out);
  return MX_OK;
}

/* trsm, or trsv for a single right-hand side (a vector's case is much faster there).
 * x op(A) = b with one row is op(A)^T x^T = b^T. */
static void tri_solve(int f64, int left, int lower, int trans, int unit, int64_t m, int64_t k, const void *a, int64_t lda,
                      void *b) {
  if (left && k == 1)
    mx_trsv(f64, lower, trans, unit, m, a, lda, b, 1);
  else if (!left && m == 1)
    mx_trsv(f64, lower, !trans, unit, k, a, lda, b, 1);
  else
    mx_trsm(f64, left, lower, trans, unit, m, k, a, lda, b, k);
}

/* Row swaps of a row-major [n, k] block by getrf's ipiv, in order (forward) or in reverse. */
static void swap_rows(int f64, void *x, int64_t n, int64_t k, const mx_lapack_int *ipiv, int backward) {
  size_t row = (size_t)k * (f64 ? 8 : 4);
  char tmp[256];
  for (int64_t s = 0; s < n; s++) {
    int64_t i = backward ? n - 1 - s : s, p = ipiv[i] - 1;
    if (p == i) continue;
    char *ri = at(f64, x, i * k), *rp = at(f64, x, p * k);
    for (size_t off = 0; off < row; off += sizeof tmp) {
      size_t len = row - off < sizeof tmp ? row - off : sizeof tmp;
      memcpy(tmp, ri + off, len);
      memcpy(ri + off, rp + off, len);
      memcpy(rp + off, tmp, len);
    }
  }
}

static void solve_range(void *ctx, int64_t lo, int64_t hi) {
  solve_job *J = ctx;
  int f64 = J->f64;
  int64_t n = J->n, k = J->k, nn = n * n, es = f64 ? 8 : 4;
  void *w = work_alloc(&J->fail, lo, nn * es);
  mx_lapack_int *ipiv = work_alloc(&J->fail, lo, n * (int64_t)sizeof *ipiv);
  int64_t have = -1; /* the a matrix factored in w: a broadcast a is factored once per chunk */
  int bad = 0;
  for (int64_t t = lo; t < hi && w && ipiv; t++) {
    int64_t ao, bo;
    mx_batch2_offsets(&J->bt, t, &ao, &bo);
    void *o = at(f64, J->out, t * n * k);
    memcpy(o, at(f64, J->b, bo * n * k), (size_t)(n * k * es));
    if (ao != have) {
      have = ao;
      /* w = a row-major, i.e. A^T column-major: getrf gives A^T = P L U with no transposed copy. */
      bad = !copy_finite(f64, w, at(f64, J->a, ao * nn), n, n, 0);
      if (!bad) {
        int64_t info = mx_getrf(f64, n, n, w, n, ipiv);
        if (info != 0) {
          fail_at(&J->fail, t, ao, info, 0);
          break;
        }
      }
    }
    /* Read row-major, w is (L\U)^T: U^T on and below the diagonal, L^T (unit) above it. */
    if (bad) {
      fill_nan(f64, o, n * k);
    } else if (!(J->flags & 1)) { /* A X = B with A = U^T L^T P^T: X = P L^-T U^-T B */
      tri_solve(f64, /* left = */ 1, /* lower = */ 1, /* trans_a = */ 0, /* unit = */ 0, n, k, w, n, o);
      tri_solve(f64, /* left = */ 1, /* lower = */ 0, /* trans_a = */ 0, /* unit = */ 1, n, k, w, n, o);
      swap_rows(f64, o, n, k, ipiv, /* backward = */ 1);
    } else { /* A^T X = B with A^T = P L U: X = U^-1 L^-1 P^T B */
      swap_rows(f64, o, n, k, ipiv, /* backward = */ 0);
      tri_solve(f64, /* left = */ 1, /* lower = */ 0, /* trans_a = */ 1, /* unit = */ 1, n, k, w, n, o);
      tri_solve(f64, /* left = */ 1, /* lower = */ 1, /* trans_a = */ 1, /* unit = */ 0, n, k, w, n, o);
    }
  }
  free(w);
  free(ipiv);
}

mx_status mx_k_solve(mx_array *out, mx_array *const *in) {
  int flags = out->params ? out->params->flags : 0;
  const char *op = flags & 2 ? "inv" : "solve";
  solve_job J = {.flags = flags};
  mx_status st = solve_plan(op, out, in, &J);
  if (st) return st;
  if (J.m != J.n) return mx_error(MX_EINVAL, "[%s] kernel needs b with n rows", op);
  if (out->size == 0) return MX_OK;
  if (!batch_failed(&J.fail, J.bt.batch, J.n > J.k ? J.n : J.k, 2.0 * J.n * J.n * J.n / 3 + 2.0 * J.n * J.n * J.k,
                    solve_range, &J))
    return MX_OK;
  if (J.fail.info < 0) return common_failure(op, &J.fail);
  char w[256];
  long long z = (long long)J.fail.info - 1;
  return mx_error(MX_ECOMPUTE,
                  "[%s] %s is singular (pivot %lld of its LU factorization is exactly zero); "
                  "a must be invertible: check the input for linearly dependent rows or columns",
                  op, which_matrix(in[0], J.fail.which, w, sizeof w), z);
}

static void trsolve_range(void *ctx, int64_t lo, int64_t hi) {
  solve_job *J = ctx;
  int f64 = J->f64, lower = J->flags & 1, left = (J->flags & 2) != 0, trans = (J->flags & 4) != 0,
      unit = (J->flags & 8) != 0;
  int64_t n = J->n, m = J->m, k = J->k, es = f64 ? 8 : 4;
  for (int64_t t = lo; t < hi; t++) {
    int64_t ao, bo;
    mx_batch2_offsets(&J->bt, t, &ao, &bo);
    const void *a = at(f64, J->a, ao * n * n);
    void *o = at(f64, J->out, t * m * k);
    if (!unit)
      for (int64_t i = 0; i < n; i++)
        if (get_el(f64, a, i * n + i) == 0) {
          fail_at(&J->fail, t, ao, i + 1, 0);
          return;
        }
    memcpy(o, at(f64, J->b, bo * m * k), (size_t)(m * k * es));
    tri_solve(f64, left, lower, trans, unit, m, k, a, n, o);
  }
}

mx_status mx_k_triangular_solve(mx_array *out, mx_array *const *in) {
  int flags = out->params ? out->params->flags : 0;
  solve_job J = {.flags = flags};
  mx_status st = solve_plan("triangular_solve", out, in, &J);
  if (st) return st;
  if ((flags & 2 ? J.m : J.k) != J.n) return mx_error(MX_EINVAL, "[triangular_solve] kernel needs b to match a's order");
  if (out->size == 0 || J.n == 0) return MX_OK;
  if (!batch_failed(&J.fail, J.bt.batch, J.n, (double)J.n * J.n * (flags & 2 ? J.k : J.m), trsolve_range, &J))
    return MX_OK;
  char w[256];
  long long z = (long long)J.fail.info - 1;
  return mx_error(MX_ECOMPUTE,
                  "[triangular_solve] %s is singular (a[%lld][%lld] is exactly zero); a triangular matrix needs "
                  "a nonzero diagonal (or pass unit_diagonal: true if its diagonal is implicitly 1)",
                  which_matrix(in[0], J.fail.which, w, sizeof w), z, z);
}

/* ---- QR ---------------------------------------------------------------------------------- */

/* Reduced (flags 0): Q [m, k], R [k, n]; complete (flags & 1): Q [m, m], R [m, n]. p is Q's
 * column count and R's row count. */
typedef struct {
  int f64;
  int64_t m, n, k, p, lwork;
  const void *a;
  void *out;
  la_fail fail;
} qr_job;

static void qr_range(void *ctx, int64_t lo, int64_t hi) {
  qr_job *J = ctx;
  int f64 = J->f64;
  int64_t m = J->m, n = J->n, k = J->k, p = J->p, es = f64 ? 8 : 4, stride = m * p + p * n;
  int64_t wn = (n > p ? n : p) * m; /* A [m, n], then Q's p columns, column-major with ld m */
  void *w = work_alloc(&J->fail, lo, (wn + k + J->lwork) * es);
  void *tau = w ? at(f64, w, wn) : NULL, *work = w ? at(f64, w, wn + k) : NULL;
  for (int64_t t = lo; t < hi && w; t++) {
    const void *a = at(f64, J->a, t * m * n);
    void *q = at(f64, J->out, t * stride), *r = at(f64, q, m * p);
    if (!finite_matrix(f64, a, m, n, 0)) {
      fill_nan(f64, q, stride);
      continue;
    }
    transpose_copy(f64, m, n, a, n, w, m); /* w: a column-major, [m, n] with ld m */
    int64_t info = mx_geqrf(f64, m, n, w, m, tau, work, J->lwork);
    if (info == 0) {
      transpose_copy(f64, n, k, w, m, r, n); /* r[i][j] = w(i, j) for the first k rows */
      zero_below_diagonal(f64, r, p, n);     /* and rows k..p-1 (complete, m > n) are zero */
      info = mx_orgqr(f64, m, p, k, w, m, tau, work, J->lwork);
    }
    if (info != 0) {
      fail_at(&J->fail, t, t, info, 0);
      break;
    }
    transpose_copy(f64, p, m, w, m, q, p); /* q[i][j] = w(i, j) */
  }
  free(w);
}

mx_status mx_k_qr(mx_array *out, mx_array *const *in) {
  mx_status st = check_float("qr", out, in, 1);
  if (st) return st;
  int f64 = out->dtype == MX_F64, complete = out->params ? out->params->flags & 1 : 0;
  int64_t m = in[0]->shape[in[0]->ndim - 2], n = in[0]->shape[in[0]->ndim - 1], k = m < n ? m : n;
  int64_t p = complete ? m : k;
  if (out->shape[out->ndim - 1] != m * p + p * n)
    return mx_error(MX_EINVAL, "[qr] kernel needs a packed output [..., m*p + p*n] (p = k reduced, m complete)");
  if ((st = check_range("qr", m, n > p ? n : p))) return st;
  if (out->size == 0) return MX_OK;
  /* Workspace queries: the larger of geqrf's and orgqr's. */
  double q1 = 0, q2 = 0, dummy[2] = {0, 0};
  if (mx_geqrf(f64, m, n, dummy, m, dummy, &q1, -1) != 0 || mx_orgqr(f64, m, p, k, dummy, m, dummy, &q2, -1) != 0)
    return mx_error(MX_ECOMPUTE, "[qr] LAPACK's workspace query failed for %lld x %lld", (long long)m, (long long)n);
  int64_t l1 = queried(f64, &q1), l2 = queried(f64, &q2);
  if (l1 < 0 || l2 < 0) return workspace_too_large("qr", m, n);
  qr_job J = {.f64 = f64, .m = m, .n = n, .k = k, .p = p, .lwork = l1 > l2 ? l1 : l2, .a = mx_data(in[0]),
              .out = mx_data(out)};
  return batch_failed(&J.fail, mx_batch_count(in[0], 2), m > n ? m : n, 4.0 * m * n * k, qr_range, &J)
             ? common_failure("qr", &J.fail)
             : MX_OK;
}

/* ---- SVD: of A^T, whose column-major factors are A's row-major ones -------------------------
 * A read column-major is A^T [n, m] = U' S V'^T, so A = V' S U'^T: gesdd's
 * VT' (column-major, ld p) is U row-major and its U' (ld n) is Vt row-major,
 * written straight into the packed output. */

typedef struct {
  int f64, full, values;
  int64_t m, n, k, p, q, lwork, stride;
  const void *a;
  void *out;
  la_fail fail;
} svd_job;

static char svd_jobz(const svd_job *J) { return J->values ? 'N' : J->full ? 'A' : 'S'; }

static void svd_range(void *ctx, int64_t lo, int64_t hi) {
  svd_job *J = ctx;
  int f64 = J->f64;
  int64_t m = J->m, n = J->n, k = J->k, p = J->p, es = f64 ? 8 : 4;
  void *w = work_alloc(&J->fail, lo, (m * n + J->lwork) * es);
  mx_lapack_int *iwork = work_alloc(&J->fail, lo, (8 * k + 1) * (int64_t)sizeof *iwork);
  for (int64_t t = lo; t < hi && w && iwork; t++) {
    const void *a = at(f64, J->a, t * m * n);
    void *o = at(f64, J->out, t * J->stride);
    void *u = J->values ? w : o, *s = J->values ? o : at(f64, o, m * p), *vt = J->values ? w : at(f64, o, m * p + k);
    if (k == 0) { /* an empty matrix: S is empty, the full U and Vt are identities */
      if (!J->values && J->full) {
        set_identity(f64, u, m);
        set_identity(f64, vt, n);
      }
      continue;
    }
    if (!finite_matrix(f64, a, m, n, 0)) {
      fill_nan(f64, o, J->stride);
      continue;
    }
    memcpy(w, a, (size_t)(m * n * es));
    int64_t info = mx_gesdd(f64, svd_jobz(J), /* m = */ n, /* n = */ m, w, n, s, /* u = */ vt, /* ldu = */ n,
                            /* vt = */ u, /* ldvt = */ J->values ? 1 : p, at(f64, w, m * n), J->lwork, iwork);
    if (info != 0) {
      fail_at(&J->fail, t, t, info, 0);
      break;
    }
  }
  free(w);
  free(iwork);
}

mx_status mx_k_svd(mx_array *out, mx_array *const *in) {
  mx_status st = check_float("svd", out, in, 1);
  if (st) return st;
  int flags = out->params ? out->params->flags : 0;
  svd_job J = {.f64 = out->dtype == MX_F64, .full = flags & 1, .values = (flags & 2) != 0};
  J.m = in[0]->shape[in[0]->ndim - 2];
  J.n = in[0]->shape[in[0]->ndim - 1];
  J.k = J.m < J.n ? J.m : J.n;
  J.p = J.full ? J.m : J.k;
  J.q = J.full ? J.n : J.k;
  J.stride = J.values ? J.k : J.m * J.p + J.k + J.q * J.n;
  if (out->shape[out->ndim - 1] != J.stride)
    return mx_error(MX_EINVAL, "[svd] kernel needs a packed output [..., %lld]", (long long)J.stride);
  if ((st = check_range("svd", J.m, J.n)) || (st = check_range("svd", J.p, J.p)) || (st = check_range("svd", J.q, J.q)))
    return st;
  if (out->size == 0) return MX_OK;
  J.lwork = 1;
  if (J.k > 0) {
    double q = 0, dummy[2] = {0, 0};
    mx_lapack_int idummy[2];
    if (mx_gesdd(J.f64, svd_jobz(&J), J.n, J.m, dummy, J.n, dummy, dummy, J.n, dummy, J.values ? 1 : J.p, &q, -1,
                 idummy) != 0)
      return mx_error(MX_ECOMPUTE, "[svd] LAPACK's workspace query failed for %lld x %lld", (long long)J.m,
                      (long long)J.n);
    if ((J.lwork = queried(J.f64, &q)) < 0) return workspace_too_large("svd", J.m, J.n);
  }
  J.a = mx_data(in[0]);
  J.out = mx_data(out);
  if (!batch_failed(&J.fail, mx_batch_count(in[0], 2), J.m > J.n ? J.m : J.n, 12.0 * J.m * J.n * J.k, svd_range, &J))
    return MX_OK;
  if (J.fail.info < 0) return common_failure("svd", &J.fail);
  char w[256];
  return mx_error(MX_ECOMPUTE,
                  "[svd] the SVD of %s did not converge (LAPACK gesdd info %lld); check the input for values "
                  "of extreme range, or rescale it",
                  which_matrix(in[0], J.fail.which, w, sizeof w), (long long)J.fail.info);
}

/* ---- EIGH ---------------------------------------------------------------------------------- */

typedef struct {
  int f64, values;
  int64_t n, lwork, liwork, stride;
  const void *a;
  void *out;
  la_fail fail;
} eigh_job;

static void eigh_range(void *ctx, int64_t lo, int64_t hi) {
  eigh_job *J = ctx;
  int f64 = J->f64;
  int64_t n = J->n, nn = n * n, es = f64 ? 8 : 4;
  void *w = work_alloc(&J->fail, lo, (nn + J->lwork) * es);
  mx_lapack_int *iwork = work_alloc(&J->fail, lo, J->liwork * (int64_t)sizeof *iwork);
  for (int64_t t = lo; t < hi && w && iwork; t++) {
    const void *a = at(f64, J->a, t * nn);
    void *o = at(f64, J->out, t * J->stride);
    if (!finite_matrix(f64, a, n, n, 1)) {
      fill_nan(f64, o, J->stride);
      continue;
    }
    memcpy(w, a, (size_t)(nn * es));
    /* Column-major upper is the row-major lower triangle, the one numpy's eigh reads. */
    int64_t info = mx_syevd(f64, J->values ? 'N' : 'V', /* upper = */ 1, n, w, n, o, at(f64, w, nn), J->lwork, iwork,
                            J->liwork);
    if (info != 0) {
      fail_at(&J->fail, t, t, info, 0);
      break;
    }
    if (!J->values) transpose_copy(f64, n, n, w, n, at(f64, o, n), n); /* eigenvectors as columns */
  }
  free(w);
  free(iwork);
}

mx_status mx_k_eigh(mx_array *out, mx_array *const *in) {
  mx_status st = check_float("eigh", out, in, 1);
  if (st) return st;
  int flags = out->params ? out->params->flags : 0;
  eigh_job J = {.f64 = out->dtype == MX_F64, .values = flags & 1};
  J.n = in[0]->shape[in[0]->ndim - 1];
  J.stride = J.values ? J.n : J.n + J.n * J.n;
  if (in[0]->shape[in[0]->ndim - 2] != J.n || out->shape[out->ndim - 1] != J.stride)
    return mx_error(MX_EINVAL, "[eigh] kernel needs square matrices and a packed output [..., %lld]", (long long)J.stride);
  if ((st = check_range("eigh", J.n, J.n))) return st;
  if (out->size == 0) return MX_OK;
  double q = 0, dummy[2] = {0, 0};
  mx_lapack_int iq = 0;
  if (mx_syevd(J.f64, J.values ? 'N' : 'V', 1, J.n, dummy, J.n, dummy, &q, -1, &iq, -1) != 0)
    return mx_error(MX_ECOMPUTE, "[eigh] LAPACK's workspace query failed for n = %lld", (long long)J.n);
  if ((J.lwork = queried(J.f64, &q)) < 0) return workspace_too_large("eigh", J.n, J.n);
  J.liwork = iq > 1 ? iq : 1;
  J.a = mx_data(in[0]);
  J.out = mx_data(out);
  if (!batch_failed(&J.fail, mx_batch_count(in[0], 2), J.n, 9.0 * J.n * J.n * J.n, eigh_range, &J)) return MX_OK;
  if (J.fail.info < 0) return common_failure("eigh", &J.fail);
  char w[256];
  return mx_error(MX_ECOMPUTE,
                  "[eigh] the eigensolver did not converge for %s (LAPACK syevd info %lld); check the input "
                  "for values of extreme range, or rescale it",
                  which_matrix(in[0], J.fail.which, w, sizeof w), (long long)J.fail.info);
}

/* LU_PERMUTATION: the row swaps "row i with row piv[i]" (pivots as floats, as LU packs
 * them) composed into perm, with (P A)[i] = A[perm[i]]: the LU vjp needs P as a gather. */
mx_status mx_k_lu_permutation(mx_array *out, mx_array *const *in) {
  const mx_array *piv = in[0];
  int f64 = piv->dtype == MX_F64;
  if ((piv->dtype != MX_F32 && !f64) || out->dtype != MX_S64 || out->size != piv->size || piv->ndim < 1)
    return mx_error(MX_EINVAL, "[lu_permutation] expects f32/f64 pivots and an s64 output of the same shape");
  int64_t n = piv->shape[piv->ndim - 1], batch = n ? piv->size / n : 0;
  int64_t *perm = mx_data(out);
  for (int64_t b = 0; b < batch; b++) {
    int64_t *p = perm + b * n;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = 0; i < n; i++) {
      double v = get_el(f64, mx_data(piv), b * n + i);
      if (!(v >= 0 && v < (double)n))
        return mx_error(MX_EINVAL, "[lu_permutation] pivot %g of row %lld is outside [0, %lld)", v, (long long)i, (long long)n);
      int64_t j = (int64_t)v, t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
  }
  return MX_OK;
}

/* ---- EIG: general real matrices, complex results (geev) -------------------------------------- */

typedef struct {
  int f64, values;
  int64_t n, lwork, stride; /* stride in complex elements */
  const void *a;
  void *out; /* interleaved re, im */
  la_fail fail;
} eig_job;

static void eig_range(void *ctx, int64_t lo, int64_t hi) {
  eig_job *J = ctx;
  int f64 = J->f64;
  int64_t n = J->n, nn = n * n, es = f64 ? 8 : 4;
  /* a (col-major), vr, wr, wi, work */
  void *w = work_alloc(&J->fail, lo, (2 * nn + 2 * n + J->lwork) * es);
  void *vr = w ? at(f64, w, nn) : NULL, *wr = w ? at(f64, w, 2 * nn) : NULL, *wi = w ? at(f64, w, 2 * nn + n) : NULL;
  void *work = w ? at(f64, w, 2 * nn + 2 * n) : NULL;
  for (int64_t t = lo; t < hi && w; t++) {
    const void *a = at(f64, J->a, t * nn);
    void *o = at(f64, J->out, 2 * t * J->stride);
    if (!finite_matrix(f64, a, n, n, 0)) {
      fill_nan(f64, o, 2 * J->stride);
      continue;
    }
    transpose_copy(f64, n, n, a, n, w, n);
    int64_t info = mx_geev(f64, J->values ? 'N' : 'V', n, w, n, wr, wi, vr, n, work, J->lwork);
    if (info != 0) {
      fail_at(&J->fail, t, t, info, 0);
      break;
    }
    for (int64_t i = 0; i < n; i++) {
      set_el(f64, o, 2 * i, get_el(f64, wr, i));
      set_el(f64, o, 2 * i + 1, get_el(f64, wi, i));
    }
    if (J->values) continue;
    /* Column j of V at row r: vr(r, j) if real; a pair j, j+1 is vr(:, j) +- i vr(:, j+1). */
    for (int64_t j = 0; j < n; j++) {
      double im = get_el(f64, wi, j);
      int second = im < 0 && j > 0; /* geev lists a pair's positive imaginary part first */
      int64_t re_col = second ? j - 1 : j;
      for (int64_t r = 0; r < n; r++) {
        double vre = get_el(f64, vr, r + re_col * n), vim = im == 0 ? 0 : get_el(f64, vr, r + (re_col + 1) * n);
        int64_t idx = n + r * n + j;
        set_el(f64, o, 2 * idx, vre);
        set_el(f64, o, 2 * idx + 1, second ? -vim : vim);
      }
    }
  }
  free(w);
}

mx_status mx_k_eig(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  if ((a->dtype != MX_F32 && a->dtype != MX_F64) || out->dtype != (a->dtype == MX_F64 ? MX_C128 : MX_C64))
    return mx_error(MX_EINVAL, "[eig] kernel needs an f32/f64 input and its complex output type");
  int flags = out->params ? out->params->flags : 0;
  eig_job J = {.f64 = a->dtype == MX_F64, .values = flags & 1};
  J.n = a->shape[a->ndim - 1];
  J.stride = J.values ? J.n : J.n + J.n * J.n;
  if (a->shape[a->ndim - 2] != J.n || out->shape[out->ndim - 1] != J.stride)
    return mx_error(MX_EINVAL, "[eig] kernel needs square matrices and a packed output [..., %lld]", (long long)J.stride);
  mx_status st = check_range("eig", J.n, J.n);
  if (st) return st;
  if (out->size == 0) return MX_OK;
  double q = 0, dummy[2] = {0, 0};
  if (mx_geev(J.f64, J.values ? 'N' : 'V', J.n, dummy, J.n, dummy, dummy, dummy, J.n, &q, -1) != 0)
    return mx_error(MX_ECOMPUTE, "[eig] LAPACK's workspace query failed for n = %lld", (long long)J.n);
  if ((J.lwork = queried(J.f64, &q)) < 0) return workspace_too_large("eig", J.n, J.n);
  J.a = mx_data(in[0]);
  J.out = mx_data(out);
  if (!batch_failed(&J.fail, mx_batch_count(in[0], 2), J.n, 25.0 * J.n * J.n * J.n, eig_range, &J)) return MX_OK;
  if (J.fail.info < 0) return common_failure("eig", &J.fail);
  char w[256];
  return mx_error(MX_ECOMPUTE,
                  "[eig] the QR iteration did not converge for %s (LAPACK geev info %lld); check the input for "
                  "values of extreme range, or rescale it",
                  which_matrix(in[0], J.fail.which, w, sizeof w), (long long)J.fail.info);
}
