/* layout.h: index arithmetic on row-major shapes shared by the kernels (and
 * ops_linalg.c): an axis split, batches of matrices, and the batch axes of two
 * matrix operands broadcast to an output's. */
#ifndef MX_LAYOUT_H
#define MX_LAYOUT_H

#include "../mx.h"

/* shape [ndim] seen as [outer, len, inner] around axis (len 1 for rank 0). */
static inline void mx_axis_split(int ndim, const int64_t *shape, int axis, int64_t *outer, int64_t *len,
                                 int64_t *inner) {
  *outer = *len = *inner = 1;
  for (int d = 0; d < ndim; d++) {
    if (d < axis) *outer *= shape[d];
    else if (d == axis) *len = shape[d];
    else *inner *= shape[d];
  }
}

/* The number of matrices (or vectors) in a: the product of all but its last `trailing` axes. */
static inline int64_t mx_batch_count(const mx_array *a, int trailing) {
  int64_t b = 1;
  for (int i = 0; i < a->ndim - trailing; i++) b *= a->shape[i];
  return b;
}

/* Batch strides (in matrices) of x's leading axes seen through nb right-aligned
 * batch axes, 0 where x has size 1 or lacks the axis; returns x's matrix count. */
static inline int64_t mx_batch_strides(const mx_array *x, int nb, int64_t *str) {
  int64_t s = 1;
  for (int i = nb - 1, j = x->ndim - 3; i >= 0; i--, j--) {
    if (j >= 0) {
      str[i] = x->shape[j] == 1 ? 0 : s;
      s *= x->shape[j];
    } else {
      str[i] = 0;
    }
  }
  return s;
}

/* Two matrix operands a [..., r, c] and b [..., r', c'] whose batch axes broadcast to out's. */
typedef struct {
  int nb;                                       /* batch rank: out's rank - 2 */
  int64_t shape[MX_MAX_RANK];                   /* out's batch axes */
  int64_t astr[MX_MAX_RANK], bstr[MX_MAX_RANK]; /* strides in matrices; 0 where broadcast */
  int64_t batch, acount, bcount;                /* matrices in out, a and b */
} mx_batch2;

/* Plans B for out (rank >= 2) and a, b (ranks in [2, out's rank]). Returns the first
 * batch axis where a or b has neither size 1 nor out's size, or -1 when all fit. */
static inline int mx_batch2_plan(const mx_array *out, const mx_array *a, const mx_array *b, mx_batch2 *B) {
  B->nb = out->ndim - 2;
  B->batch = 1;
  for (int d = 0; d < B->nb; d++) B->batch *= B->shape[d] = out->shape[d];
  B->acount = mx_batch_strides(a, B->nb, B->astr);
  B->bcount = mx_batch_strides(b, B->nb, B->bstr);
  for (int d = 0; d < B->nb; d++)
    if ((B->astr[d] && a->shape[a->ndim - 2 - B->nb + d] != B->shape[d]) ||
        (B->bstr[d] && b->shape[b->ndim - 2 - B->nb + d] != B->shape[d]))
      return d;
  return -1;
}

/* Matrix offsets (in matrices) of a and b for output batch index t. */
static inline void mx_batch2_offsets(const mx_batch2 *B, int64_t t, int64_t *ao, int64_t *bo) {
  *ao = *bo = 0;
  for (int d = B->nb - 1; d >= 0; d--) {
    int64_t i = t % B->shape[d];
    t /= B->shape[d];
    *ao += i * B->astr[d];
    *bo += i * B->bstr[d];
  }
}

#endif
