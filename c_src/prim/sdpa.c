/* sdpa.c: fused scaled-dot-product attention (ops_sdpa.c builds the nodes). One unit of work is
 * a (batch, head, block of BQ queries) on the pool: score tiles S = scale Q K^T + mask of BQ x BK
 * keys through BLAS, an online softmax (a running max m and sum l per query row; the output rows
 * are rescaled when m grows) and O += P V, so the Lq x Lk score matrix never exists. The backward
 * recomputes the tiles: pass 1 per query block (logsumexp, rowsum(g o)), pass 2 per (batch, kv
 * head) (dk, dv and the dq rows of the query heads that share the kv head: no two units write the
 * same row).
 * A row that sees no key (mask or causal) gives NaN, as softmax over nothing but -inf does, and so
 * do its dq row and its kv head's dk and dv (as the reference formula's autograd); with no keys at
 * all (Lk = 0) the output is the empty sum, 0. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"

/* The softmax loops vectorize only without trapping math (their selects would be control flow);
 * nothing here reads the floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")

/* Tiles small enough that OpenBLAS runs each product on the calling pool thread: it threads a
 * gemm only past m n k = 65536 * GEMM_MULTITHREAD_THRESHOLD (4, Debian's build), and its threads
 * started from inside our pool were measured 20-100x slower on this 2-core machine. */
#define BQ 32                 /* queries per unit */
#define TILE_MNK ((int64_t)1 << 18) /* BQ x keys x max(D, Dv) per tile */
#define BK_MAX 512

typedef struct {
  const void *q, *k, *v, *mask, *o, *g;
  void *out, *dq, *dk, *dv;
  void *lse, *delta; /* backward: per query row, the logsumexp of its scores and rowsum(g o) */
  int64_t B, Hq, Hkv, Lq, Lk, D, Dv, group, nqb, nkb, bk; /* bk: keys per tile */
  int64_t ms[4]; /* the mask's element strides, 0 on broadcast axes */
  double scale;
  int causal;
  _Atomic int failed; /* a unit could not allocate its scratch */
} sdpa_plan;

/* The first key query i may not see under the causal mask (Lk - Lq offset, MLX's convention). */
static inline int64_t causal_end(const sdpa_plan *P, int64_t i) {
  int64_t e = i + P->Lk - P->Lq + 1;
  return e < 0 ? 0 : e > P->Lk ? P->Lk : e;
}

/* Work unit u of a pass over query blocks: batch b, query head h, rows i0 .. i0 + nq, keys [0, jend). */
static inline void query_block(const sdpa_plan *P, int64_t u, int64_t *b, int64_t *h, int64_t *i0, int64_t *nq,
                               int64_t *jend) {
  *b = u / (P->Hq * P->nqb), *h = u / P->nqb % P->Hq, *i0 = u % P->nqb * BQ;
  *nq = P->Lq - *i0 < BQ ? P->Lq - *i0 : BQ;
  *jend = P->causal ? causal_end(P, *i0 + *nq - 1) : P->Lk;
}

#define BK (P->bk)

/* e^x in f32 without a call, so the softmax's exp loop vectorizes: Cephes's expf (x = n ln 2 + r,
 * |r| <= ln 2 / 2, a polynomial for e^r, times 2^n as two halves so neither overflows nor is
 * subnormal), within 2 ulp of e^x, subnormal results included; 0 below -104 (under half the smallest
 * subnormal) and for -inf without touching subnormal arithmetic, +inf past f32's range, NaN for NaN. */
static inline float exp_f32(float x) {
  float xc = x >= -104.0f ? (x < 89.0f ? x : 89.0f) : 0.0f; /* NaN and -inf compute e^0, replaced below */
  float n = rintf(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n1 = (int32_t)n / 2, n2 = (int32_t)n - n1;
  union {
    uint32_t u;
    float f;
  } s1 = {.u = (uint32_t)(n1 + 127) << 23}, s2 = {.u = (uint32_t)(n2 + 127) << 23};
  float y = p * s1.f * s2.f;
  return x >= -104.0f ? y : x != x ? x : 0.0f;
}
#define SDPA_KERNELS(T, GEMM, EXP, LOG)                                                                  \
  /* C = alpha op(A) op(B) + beta C, where BLAS would reject an empty dimension. */                       \
  static void gemm_##T(int ta, int tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a, int64_t lda, \
                       const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {                             \
    if (m == 0 || n == 0) return;                                                                        \
    if (k == 0) {                                                                                        \
      for (int64_t i = 0; i < m; i++)                                                                    \
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];          \
      return;                                                                                            \
    }                                                                                                    \
    GEMM(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);                                          \
  }                                                                                                      \
                                                                                                         \
  /* S [nq, nk] = scale Q[i0 .. i0+nq) K[j0 .. j0+nk)^T + mask; -inf where the causal mask hides a key. */ \
  static void scores_##T(const sdpa_plan *P, int64_t b, int64_t h, int64_t i0, int64_t nq, int64_t j0,     \
                         int64_t nk, T *S) {                                                             \
    const T *Q = (const T *)P->q + ((b * P->Hq + h) * P->Lq + i0) * P->D;                                \
    const T *K = (const T *)P->k + ((b * P->Hkv + h / P->group) * P->Lk + j0) * P->D;                    \
    gemm_##T(0, 1, nq, nk, P->D, (T)P->scale, Q, P->D, K, P->D, 0, S, nk);                               \
    if (P->mask) {                                                                                       \
      const T *M = (const T *)P->mask + b * P->ms[0] + h * P->ms[1];                                     \
      for (int64_t i = 0; i < nq; i++)                                                                   \
        for (int64_t j = 0; j < nk; j++) S[i * nk + j] += M[(i0 + i) * P->ms[2] + (j0 + j) * P->ms[3]];   \
    }                                                                                                    \
    if (P->causal)                                                                                       \
      for (int64_t i = 0; i < nq; i++)                                                                   \
        for (int64_t j = causal_end(P, i0 + i) - j0; j < nk; j++)                                        \
          if (j >= 0) S[i * nk + j] = -INFINITY;                                                         \
  }                                                                                                      \
                                                                                                         \
  /* Online softmax step for a tile row: folds row into (m, l), leaves exp(row - m_new) in row and      \
   * returns the factor by which earlier sums (and output rows) shrink. Max, exp and sum are separate   \
   * loops (8 running lanes each) that the compiler vectorizes, for AVX2 too where the CPU has it (no   \
   * FMA: the same roundings either way). */                                                            \
  __attribute__((target_clones("avx2", "default"))) static T online_row_##T(T *row, int64_t nk, T *m,   \
                                                                            T *l) {                     \
    T mxs[8], sums[8];                                                                                   \
    int nans[8];                                                                                         \
    for (int u = 0; u < 8; u++) mxs[u] = -INFINITY, sums[u] = 0, nans[u] = 0;                            \
    int64_t n8 = nk - nk % 8;                                                                            \
    for (int64_t j = 0; j < n8; j += 8)                                                                  \
      for (int u = 0; u < 8; u++) {                                                                      \
        T r = row[j + u];                                                                                \
        mxs[u] = r > mxs[u] ? r : mxs[u];                                                                \
        nans[u] |= r != r;                                                                               \
      }                                                                                                  \
    for (int64_t j = n8; j < nk; j++) {                                                                  \
      mxs[0] = row[j] > mxs[0] ? row[j] : mxs[0];                                                        \
      nans[0] |= row[j] != row[j];                                                                       \
    }                                                                                                    \
    T mx = mxs[0];                                                                                       \
    int nan = nans[0];                                                                                   \
    for (int u = 1; u < 8; u++) mx = mxs[u] > mx ? mxs[u] : mx, nan |= nans[u];                          \
    T mn = *m > mx ? *m : mx;                                                                            \
    if (mn == -INFINITY) { /* no key visible yet: the tile adds nothing (a NaN score poisons the row) */ \
      memset(row, 0, sizeof(T) * (size_t)nk);                                                            \
      if (nan) *l = NAN;                                                                                 \
      return 1;                                                                                          \
    }                                                                                                    \
    for (int64_t j = 0; j < nk; j++) row[j] = EXP(row[j] - mn);                                          \
    for (int64_t j = 0; j < n8; j += 8)                                                                  \
      for (int u = 0; u < 8; u++) sums[u] += row[j + u];                                                 \
    for (int64_t j = n8; j < nk; j++) sums[0] += row[j];                                                 \
    T sum = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));    \
    T alpha = EXP(*m - mn);                                                                              \
    *l = *l * alpha + sum;                                                                               \
    *m = mn;                                                                                             \
    return alpha;                                                                                        \
  }                                                                                                      \
                                                                                                         \
  static void fwd_##T(void *ctx, int64_t lo, int64_t hi) {                                               \
    sdpa_plan *P = ctx;                                                                                  \
    T *S = malloc(sizeof(T) * (BQ * BK + 2 * BQ)), *m = S + BQ * BK, *l = m + BQ;                        \
    if (!S) {                                                                                            \
      atomic_store(&P->failed, 1);                                                                       \
      return;                                                                                            \
    }                                                                                                    \
    for (int64_t u = lo; u < hi && !mx_cancelled(); u++) {                                               \
      int64_t b, h, i0, nq, jend;                                                                        \
      query_block(P, u, &b, &h, &i0, &nq, &jend);                                                        \
      T *O = (T *)P->out + ((b * P->Hq + h) * P->Lq + i0) * P->Dv;                                       \
      const T *V = (const T *)P->v + (b * P->Hkv + h / P->group) * P->Lk * P->Dv;                        \
      memset(O, 0, sizeof(T) * (size_t)(nq * P->Dv));                                                    \
      for (int64_t i = 0; i < nq; i++) m[i] = -INFINITY, l[i] = 0;                                       \
      for (int64_t j0 = 0; j0 < jend; j0 += BK) {                                                        \
        int64_t nk = jend - j0 < BK ? jend - j0 : BK;                                                    \
        scores_##T(P, b, h, i0, nq, j0, nk, S);                                                          \
        for (int64_t i = 0; i < nq; i++) {                                                               \
          T alpha = online_row_##T(S + i * nk, nk, &m[i], &l[i]);                                        \
          if (alpha != 1)                                                                                \
            for (int64_t d = 0; d < P->Dv; d++) O[i * P->Dv + d] *= alpha;                               \
        }                                                                                                \
        gemm_##T(0, 0, nq, P->Dv, nk, 1, S, nk, V + j0 * P->Dv, P->Dv, 1, O, P->Dv);                     \
      }                                                                                                  \
      for (int64_t i = 0; i < nq; i++)                                                                   \
        for (int64_t d = 0; d < P->Dv; d++) O[i * P->Dv + d] /= l[i]; /* l = 0: no key seen, NaN */      \
    }                                                                                                    \
    free(S);                                                                                             \
  }                                                                                                      \
                                                                                                         \
  /* Backward pass 1, per query block: delta = rowsum(g o) and the logsumexp of each row's scores;    \
   * dq starts at 0, or NaN for a row that saw no key (as its output). */                               \
  static void bwd_stats_##T(void *ctx, int64_t lo, int64_t hi) {                                         \
    sdpa_plan *P = ctx;                                                                                  \
    T *S = malloc(sizeof(T) * (BQ * BK + 2 * BQ)), *m = S + BQ * BK, *l = m + BQ;                        \
    if (!S) {                                                                                            \
      atomic_store(&P->failed, 1);                                                                       \
      return;                                                                                            \
    }                                                                                                    \
    for (int64_t u = lo; u < hi && !mx_cancelled(); u++) {                                               \
      int64_t b, h, i0, nq, jend;                                                                        \
      query_block(P, u, &b, &h, &i0, &nq, &jend);                                                        \
      int64_t row0 = (b * P->Hq + h) * P->Lq + i0;                                                       \
      const T *G = (const T *)P->g + row0 * P->Dv, *O = (const T *)P->o + row0 * P->Dv;                  \
      T *lse = (T *)P->lse + row0, *delta = (T *)P->delta + row0, *dQ = (T *)P->dq + row0 * P->D;        \
      for (int64_t i = 0; i < nq; i++) {                                                                 \
        T s = 0;                                                                                         \
        for (int64_t d = 0; d < P->Dv; d++) s += G[i * P->Dv + d] * O[i * P->Dv + d];                    \
        delta[i] = s, m[i] = -INFINITY, l[i] = 0;                                                        \
      }                                                                                                  \
      for (int64_t j0 = 0; j0 < jend; j0 += BK) {                                                        \
        int64_t nk = jend - j0 < BK ? jend - j0 : BK;                                                    \
        scores_##T(P, b, h, i0, nq, j0, nk, S);                                                          \
        for (int64_t i = 0; i < nq; i++) online_row_##T(S + i * nk, nk, &m[i], &l[i]);                   \
      }                                                                                                  \
      for (int64_t i = 0; i < nq; i++) {                                                                 \
        lse[i] = m[i] + LOG(l[i]);                                                                       \
        for (int64_t d = 0; d < P->D; d++) dQ[i * P->D + d] = l[i] == 0 ? (T)NAN : 0;                    \
      }                                                                                                  \
    }                                                                                                    \
    free(S);                                                                                             \
  }                                                                                                      \
                                                                                                         \
  /* Backward pass 2, per (batch, kv head), key tile by key tile over every query head of its group    \
   * and every query that sees the tile: P = exp(S - lse), dP = g V^T, dS = P (dP - delta), then        \
   * dv += P^T g, dk += scale dS^T Q and dq += scale dS K (this unit's heads' rows only). */             \
  static void bwd_kv_##T(void *ctx, int64_t lo, int64_t hi) {                                            \
    sdpa_plan *P = ctx;                                                                                  \
    T *S = malloc(sizeof(T) * (2 * BQ * BK)), *dP = S + BQ * BK;                                          \
    if (!S) {                                                                                            \
      atomic_store(&P->failed, 1);                                                                       \
      return;                                                                                            \
    }                                                                                                    \
    for (int64_t u = lo; u < hi; u++)                                                                    \
      for (int64_t j0 = 0; j0 < P->Lk && !mx_cancelled(); j0 += BK) {                                    \
        int64_t b = u / P->Hkv, kvh = u % P->Hkv, nk = P->Lk - j0 < BK ? P->Lk - j0 : BK;                \
        int64_t krow0 = u * P->Lk + j0;                                                                  \
        const T *V = (const T *)P->v + krow0 * P->Dv, *K = (const T *)P->k + krow0 * P->D;               \
        T *dK = (T *)P->dk + krow0 * P->D, *dV = (T *)P->dv + krow0 * P->Dv;                             \
        /* under the causal mask, query i sees key j0 once i + Lk - Lq >= j0; with Lq > Lk the first    \
         * rows see no key and are visited anyway, so their NaN reaches dk and dv as the reference's */ \
        int64_t istart = P->causal && P->Lk >= P->Lq ? j0 - (P->Lk - P->Lq) : 0;                         \
        istart = istart < 0 ? 0 : istart;                                                                \
        for (int64_t h = kvh * P->group; h < (kvh + 1) * P->group; h++)                                  \
          for (int64_t i0 = istart; i0 < P->Lq; i0 += BQ) {                                              \
            int64_t nq = P->Lq - i0 < BQ ? P->Lq - i0 : BQ, row0 = (b * P->Hq + h) * P->Lq + i0;         \
            const T *G = (const T *)P->g + row0 * P->Dv, *Q = (const T *)P->q + row0 * P->D;             \
            const T *lse = (const T *)P->lse + row0, *delta = (const T *)P->delta + row0;                \
            T *dQ = (T *)P->dq + row0 * P->D;                                                            \
            scores_##T(P, b, h, i0, nq, j0, nk, S);                                                      \
            gemm_##T(0, 1, nq, nk, P->Dv, 1, G, P->Dv, V, P->Dv, 0, dP, nk);                             \
            for (int64_t i = 0; i < nq; i++)                                                             \
              for (int64_t j = 0; j < nk; j++) {                                                         \
                T p = S[i * nk + j] = EXP(S[i * nk + j] - lse[i]);                                       \
                dP[i * nk + j] = p * (dP[i * nk + j] - delta[i]);                                        \
              }                                                                                          \
            gemm_##T(1, 0, nk, P->Dv, nq, 1, S, nk, G, P->Dv, 1, dV, P->Dv);                             \
            gemm_##T(1, 0, nk, P->D, nq, (T)P->scale, dP, nk, Q, P->D, 1, dK, P->D);                     \
            gemm_##T(0, 0, nq, P->D, nk, (T)P->scale, dP, nk, K, P->D, 1, dQ, P->D);                     \
          }                                                                                              \
      }                                                                                                  \
    free(S);                                                                                             \
  }
SDPA_KERNELS(float, mx_sgemm, exp_f32, logf)
SDPA_KERNELS(double, mx_dgemm, exp, log)
#undef SDPA_KERNELS
#undef BK

/* Reads the sizes from q, k, v (and the mask) and checks them against out_rows x out_cols; the
 * op constructor has validated them, so a mismatch here is an internal error. */
static mx_status plan_sdpa(const char *op, mx_array *const *in, int n_in, const mx_array *out, sdpa_plan *P) {
  const mx_array *q = in[0], *k = in[1], *v = in[2], *mask = n_in > 3 ? in[3] : NULL;
  int ok = q->ndim == 4 && k->ndim == 4 && v->ndim == 4 && out->params && (out->dtype == MX_F32 || out->dtype == MX_F64);
  for (int i = 0; ok && i < n_in; i++) ok = in[i]->dtype == out->dtype;
  if (ok) {
    *P = (sdpa_plan){.q = mx_data(q), .k = mx_data(k), .v = mx_data(v), .B = q->shape[0], .Hq = q->shape[1],
                     .Hkv = k->shape[1], .Lq = q->shape[2], .Lk = k->shape[2], .D = q->shape[3], .Dv = v->shape[3],
                     .scale = out->params->f[0], .causal = out->params->flags & 1};
    ok = k->shape[0] == P->B && v->shape[0] == P->B && v->shape[1] == P->Hkv && k->shape[3] == P->D &&
         v->shape[2] == P->Lk && (P->Hkv > 0 ? P->Hq % P->Hkv == 0 : P->Hq == 0);
    P->group = P->Hkv > 0 ? P->Hq / P->Hkv : 1;
    P->nqb = (P->Lq + BQ - 1) / BQ;
    int64_t wide = P->D > P->Dv ? P->D : P->Dv;
    P->bk = TILE_MNK / BQ / (wide > 0 ? wide : 1);
    P->bk = P->bk < 8 ? 8 : P->bk > BK_MAX ? BK_MAX : P->bk;
    P->nkb = (P->Lk + P->bk - 1) / P->bk;
  }
  if (ok && mask) {
    int64_t full[4] = {P->B, P->Hq, P->Lq, P->Lk}, s = 1;
    ok = mask->ndim == 4;
    for (int d = 3; ok && d >= 0; d--) {
      ok = mask->shape[d] == full[d] || mask->shape[d] == 1;
      P->ms[d] = mask->shape[d] == 1 ? 0 : s;
      s *= mask->shape[d];
    }
    P->mask = mx_data(mask);
  }
  if (!ok)
    return mx_error(MX_EINVAL, "[%s] inputs do not fit q [B, Hq, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv]", op);
  if (!mx_blas_fits(P->Lq) || !mx_blas_fits(P->Lk) || !mx_blas_fits(P->D) || !mx_blas_fits(P->Dv))
    return mx_error(MX_EINVAL, "[%s] sizes exceed BLAS's integer range", op);
  return MX_OK;
}

/* Units of about MX_PARALLEL_GRAIN multiply-adds or more each. */
static int64_t unit_grain(const sdpa_plan *P, int64_t rows, int64_t cols) {
  int64_t work = rows * cols * (P->D + P->Dv + 1);
  return work >= MX_PARALLEL_GRAIN ? 1 : MX_PARALLEL_GRAIN / (work > 0 ? work : 1);
}

mx_status mx_k_sdpa(mx_array *out, mx_array *const *in) {
  sdpa_plan P;
  mx_status st = plan_sdpa("scaled_dot_product_attention", in, out->n_in, out, &P);
  if (st) return st;
  if (out->ndim != 4 || out->shape[0] != P.B || out->shape[1] != P.Hq || out->shape[2] != P.Lq || out->shape[3] != P.Dv)
    return mx_error(MX_EINVAL, "[scaled_dot_product_attention] the output does not fit [B, Hq, Lq, Dv]");
  if (out->size == 0) return MX_OK;
  if (P.Lk == 0) { /* an empty sum over keys */
    memset(mx_data(out), 0, mx_nbytes(out));
    return MX_OK;
  }
  P.out = mx_data(out);
  mx_parallel_for(P.B * P.Hq * P.nqb, unit_grain(&P, BQ, P.Lk), out->dtype == MX_F64 ? fwd_double : fwd_float, &P);
  if (atomic_load(&P.failed)) return mx_error(MX_ENOMEM, "[scaled_dot_product_attention] out of memory for a score tile");
  return MX_OK;
}

mx_status mx_k_sdpa_vjp(mx_array *out, mx_array *const *in) {
  const char *op = "scaled_dot_product_attention_vjp";
  /* in: q, k, v, out, cotangent[, mask] */
  mx_array *qkv_mask[4] = {in[0], in[1], in[2], out->n_in > 5 ? in[5] : NULL};
  sdpa_plan P;
  mx_status st = plan_sdpa(op, qkv_mask, out->n_in > 5 ? 4 : 3, out, &P);
  if (st) return st;
  int64_t nq = P.B * P.Hq * P.Lq, nk = P.B * P.Hkv * P.Lk;
  if (out->ndim != 1 || out->shape[0] != nq * P.D + nk * P.D + nk * P.Dv)
    return mx_error(MX_EINVAL, "[%s] the output does not fit the packed [dq | dk | dv]", op);
  for (int i = 3; i < 5; i++)
    if (in[i]->dtype != out->dtype || in[i]->size != nq * P.Dv)
      return mx_error(MX_EINVAL, "[%s] the output and its cotangent must be [B, Hq, Lq, Dv]", op);
  size_t es = out->dtype == MX_F64 ? 8 : 4;
  char *base = mx_data(out);
  P.dq = base, P.dk = base + (size_t)(nq * P.D) * es, P.dv = base + (size_t)(nq * P.D + nk * P.D) * es;
  P.o = mx_data(in[3]), P.g = mx_data(in[4]);
  if (out->size == 0) return MX_OK;
  memset(base, 0, mx_nbytes(out)); /* rows no unit writes (Lq or Lk 0) stay 0 */
  if (nq == 0 || P.Lk == 0) return MX_OK;
  void *scratch = malloc((size_t)(2 * nq) * es);
  if (!scratch) return mx_error(MX_ENOMEM, "[%s] out of memory for %lld row statistics", op, (long long)(2 * nq));
  P.lse = scratch, P.delta = (char *)scratch + (size_t)nq * es;
  int f64 = out->dtype == MX_F64;
  mx_parallel_for(P.B * P.Hq * P.nqb, unit_grain(&P, BQ, P.Lk), f64 ? bwd_stats_double : bwd_stats_float, &P);
  if (!atomic_load(&P.failed) && !mx_cancelled())
    mx_parallel_for(P.B * P.Hkv, unit_grain(&P, P.Lk, P.group * P.Lq), f64 ? bwd_kv_double : bwd_kv_float, &P);
  free(scratch);
  if (atomic_load(&P.failed)) return mx_error(MX_ENOMEM, "[%s] out of memory for a score tile", op);
  return MX_OK;
}
