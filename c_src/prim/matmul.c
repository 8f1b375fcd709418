/* matmul.c: numpy matmul. in[0] [..., m, k] @ in[1] [..., k, n] -> [..., m, n]
 * with the batch dims right-aligned and broadcast; with MX_MATMUL_TRANS_A/B in the params
 * in[0] is stored [..., k, m] or in[1] [..., n, k] and read transposed (BLAS trans flags).
 * f32/f64 go to BLAS on the caller's buffers (no copies), c64/c128 to cgemm/zgemm;
 * integers and bool use a plain loop. */
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "layout.h"

typedef struct {
  mx_batch2 bt; /* out's batch axes, with a's and b's strides */
  int64_t m, k, n;
  int ta, tb;                /* operands stored transposed */
  int64_t a_si, a_sp, b_sp, b_sj; /* element strides of a[i, p] and b[p, j] */
  const void *a, *b;
  void *c;
} mm_plan;

/* ---- integer and bool: one output row per unit, i-k-j order ---------------------- */

/* The products and sums are formed in uint64_t: their low bits, kept by the
 * cast back to T, are the wrapped result for every integer width. */
#define MM_INT(ID, T)                                                                    \
  static void mm_rows_##ID(void *ctx, int64_t lo, int64_t hi) {                          \
    const mm_plan *P = ctx;                                                              \
    for (int64_t u = lo; u < hi; u++) {                                                  \
      int64_t t = u / P->m, i = u % P->m, ao, bo;                                        \
      mx_batch2_offsets(&P->bt, t, &ao, &bo);                                            \
      const T *ar = (const T *)P->a + ao * P->m * P->k + i * P->a_si;                    \
      const T *bm = (const T *)P->b + bo * P->k * P->n;                                  \
      T *cr = (T *)P->c + u * P->n;                                                      \
      memset(cr, 0, sizeof(T) * (size_t)P->n);                                           \
      for (int64_t p = 0; p < P->k; p++) {                                               \
        uint64_t av = (uint64_t)ar[p * P->a_sp];                                         \
        if (av == 0) continue;                                                           \
        const T *br = bm + p * P->b_sp;                                                  \
        for (int64_t j = 0; j < P->n; j++)                                               \
          cr[j] = (T)((uint64_t)cr[j] + av * (uint64_t)br[j * P->b_sj]);                 \
      }                                                                                  \
    }                                                                                    \
  }
MX_INT_TYPES(MM_INT)
#undef MM_INT

/* bool: out is true where any a[i, p] && b[p, j]. */
static void mm_rows_BOOL(void *ctx, int64_t lo, int64_t hi) {
  const mm_plan *P = ctx;
  for (int64_t u = lo; u < hi; u++) {
    int64_t t = u / P->m, i = u % P->m, ao, bo;
    mx_batch2_offsets(&P->bt, t, &ao, &bo);
    const uint8_t *ar = (const uint8_t *)P->a + ao * P->m * P->k + i * P->a_si;
    const uint8_t *bm = (const uint8_t *)P->b + bo * P->k * P->n;
    uint8_t *cr = (uint8_t *)P->c + u * P->n;
    memset(cr, 0, (size_t)P->n);
    for (int64_t p = 0; p < P->k; p++) {
      if (!ar[p * P->a_sp]) continue;
      const uint8_t *br = bm + p * P->b_sp;
      for (int64_t j = 0; j < P->n; j++) cr[j] |= br[j * P->b_sj] != 0;
    }
  }
}

/* ---- floats: BLAS per batch matrix ------------------------------------------------- */

/* Rows of A per gemm call: a call is one uninterruptible stretch of ~2^29 multiply-adds
 * (~10 ms on two cores; at least 128 rows, below which OpenBLAS loses speed), so a
 * cancelled eval stops between calls. */
static int64_t mm_block_rows(int64_t m, int64_t n, int64_t k) {
  int64_t rows = ((int64_t)1 << 29) / (n * k > 0 ? n * k : 1);
  return rows < 128 ? 128 : rows > m ? m : rows;
}

/* One product C[m, n] = op(A)[m, k] @ op(B)[k, n], A stored [k, m] when ta, B [n, k] when tb;
 * matrix-vector shapes go to gemv (a one-row or one-column operand is contiguous either way). */
#define MM_BLAS(T, gemm, gemv)                                                                      \
  static void mm_one_##T(int ta, int tb, int64_t m, int64_t n, int64_t k, const T *a, const T *b, T *c) { \
    int64_t lda = ta ? m : k, ldb = tb ? k : n;                                                     \
    if (n == 1)                                                                                     \
      gemv(ta, ta ? k : m, ta ? m : k, 1, a, lda, b, 1, 0, c, 1);                                   \
    else if (m == 1)                                                                                \
      gemv(!tb, tb ? n : k, tb ? k : n, 1, b, ldb, a, 1, 0, c, 1);                                  \
    else                                                                                            \
      for (int64_t r = 0, mb = mm_block_rows(m, n, k); r < m && !mx_cancelled(); r += mb)           \
        gemm(ta, tb, r + mb < m ? mb : m - r, n, k, 1, a + r * (ta ? 1 : k), lda, b, ldb, 0, c + r * n, n); \
  }                                                                                                 \
  static void mm_blas_##T(const mm_plan *P) {                                                       \
    for (int64_t t = 0; t < P->bt.batch && !mx_cancelled(); t++) {                                 \
      int64_t ao, bo;                                                                               \
      mx_batch2_offsets(&P->bt, t, &ao, &bo);                                                       \
      mm_one_##T(P->ta, P->tb, P->m, P->n, P->k, (const T *)P->a + ao * P->m * P->k,                \
                 (const T *)P->b + bo * P->k * P->n, (T *)P->c + t * P->m * P->n);                  \
    }                                                                                               \
  }
MM_BLAS(float, mx_sgemm, mx_sgemv)
MM_BLAS(double, mx_dgemm, mx_dgemv)
#undef MM_BLAS

/* c64/c128: cgemm/zgemm per batch matrix (es: bytes per element). */
static void mm_blas_complex(const mm_plan *P, int f64) {
  size_t es = f64 ? 16 : 8;
  for (int64_t t = 0; t < P->bt.batch && !mx_cancelled(); t++) {
    int64_t ao, bo;
    mx_batch2_offsets(&P->bt, t, &ao, &bo);
    mx_cxgemm(f64, P->ta, P->tb, P->m, P->n, P->k, (const char *)P->a + (size_t)(ao * P->m * P->k) * es,
              P->ta ? P->m : P->k, (const char *)P->b + (size_t)(bo * P->k * P->n) * es, P->tb ? P->k : P->n,
              /* beta_one = */ 0, (char *)P->c + (size_t)(t * P->m * P->n) * es, P->n);
  }
}

mx_status mx_k_matmul(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0], *b = in[1];
  if (a->ndim < 2 || b->ndim < 2 || out->ndim < 2)
    return mx_error(MX_EINVAL, "[matmul] inputs and output need rank >= 2 (got %d, %d -> %d); add axes with new_axis",
                    a->ndim, b->ndim, out->ndim);
  if (a->dtype != out->dtype || b->dtype != out->dtype)
    return mx_error(MX_EINVAL, "[matmul] input dtypes %s and %s must equal the output dtype %s; cast with as_type",
                    mx_dtype_name((mx_dtype)a->dtype), mx_dtype_name((mx_dtype)b->dtype),
                    mx_dtype_name((mx_dtype)out->dtype));
  int nb = out->ndim - 2, flags = out->params ? out->params->flags : 0;
  int ta = !!(flags & MX_MATMUL_TRANS_A), tb = !!(flags & MX_MATMUL_TRANS_B);
  mm_plan P = {.m = a->shape[a->ndim - 2 + ta], .k = a->shape[a->ndim - 1 - ta], .n = b->shape[b->ndim - 1 - tb],
               .ta = ta, .tb = tb, .a = mx_data(a), .b = mx_data(b), .c = mx_data(out)};
  P.a_si = ta ? 1 : P.k, P.a_sp = ta ? P.m : 1, P.b_sp = tb ? 1 : P.n, P.b_sj = tb ? P.k : 1;
  if (b->shape[b->ndim - 2 + tb] != P.k || out->shape[nb] != P.m || out->shape[nb + 1] != P.n ||
      a->ndim > out->ndim || b->ndim > out->ndim)
    return mx_error(MX_EINVAL, "[matmul] shapes do not chain: op(a) [..., %lld, %lld], op(b) [..., %lld, %lld], out [..., %lld, %lld]",
                    (long long)P.m, (long long)P.k, (long long)b->shape[b->ndim - 2 + tb], (long long)P.n,
                    (long long)out->shape[nb], (long long)out->shape[nb + 1]);
  int bad = mx_batch2_plan(out, a, b, &P.bt);
  if (bad >= 0)
    return mx_error(MX_EINVAL, "[matmul] batch axis %d does not broadcast to the output's size %lld", bad,
                    (long long)P.bt.shape[bad]);
  if (out->size == 0) return MX_OK;
  if (P.k == 0) { /* empty sums: all-zero bytes are 0 in every dtype */
    memset(P.c, 0, mx_nbytes(out));
    return MX_OK;
  }

  switch ((mx_dtype)out->dtype) {
  case MX_F32:
  case MX_F64:
  case MX_C64:
  case MX_C128:
    /* a full stack of A against one B is a single [batch * m, k] @ [k, n] product */
    if (!ta && P.bt.bcount == 1 && P.bt.acount == P.bt.batch) {
      P.m *= P.bt.batch;
      P.bt.batch = 1;
      P.bt.nb = 0;
    }
    if (!mx_blas_fits(P.m) || !mx_blas_fits(P.n) || !mx_blas_fits(P.k))
      return mx_error(MX_EINVAL, "[matmul] dims m=%lld, n=%lld, k=%lld exceed BLAS's integer range", (long long)P.m,
                      (long long)P.n, (long long)P.k);
    if (out->dtype == MX_F32)
      mm_blas_float(&P);
    else if (out->dtype == MX_F64)
      mm_blas_double(&P);
    else
      mm_blas_complex(&P, out->dtype == MX_C128);
    return MX_OK;
#define CASE_INT(ID, T)                                                          \
  case MX_##ID: {                                                                \
    int64_t grain = MX_PARALLEL_GRAIN / (P.k * P.n);                             \
    mx_parallel_for(P.bt.batch * P.m, grain > 0 ? grain : 1, mm_rows_##ID, &P);  \
    return MX_OK;                                                                \
  }
    MX_INT_TYPES(CASE_INT)
    CASE_INT(BOOL, uint8_t)
#undef CASE_INT
  default:
    return mx_error(MX_EINVAL, "[matmul] dtype %s is storage only; cast to f32 with as_type first",
                    mx_dtype_name((mx_dtype)out->dtype));
  }
}
