/* index.c: kernels that move elements without computing on them (transpose,
 * broadcast, slice, pad, reverse, concatenate, take, gather, indexed put) and
 * indexed_add. Moving ops copy elements of mx_dtype_size bytes, so one body
 * serves every dtype, f16/bf16 storage included. */
#include <string.h>

#include "kernels.h"

/* 16-byte elements (c128) move as one struct of two words. */
typedef struct {
  uint64_t lo, hi;
} elem16;

#define TILE 64     /* transpose tile edge; 8 x 8 blocks inside keep the working set in L1 */
#define CHUNK 65536 /* long rows are cut into chunks so that 1-d copies still use every core */

/* ---- walking an index space ---------------------------------------------------
 * A multi-index over `n` dims with two element offsets (destination, source)
 * that follow it; step() is an odometer increment. */
typedef struct {
  int n;
  int64_t shape[MX_MAX_RANK], dstr[MX_MAX_RANK], sstr[MX_MAX_RANK];
} walk_dims;

typedef struct {
  int64_t idx[MX_MAX_RANK];
  int64_t doff, soff;
} walk_pos;

static void walk_seek(const walk_dims *w, int64_t i, walk_pos *p) {
  p->doff = p->soff = 0;
  for (int d = w->n - 1; d >= 0; d--) {
    p->idx[d] = i % w->shape[d];
    i /= w->shape[d];
    p->doff += p->idx[d] * w->dstr[d];
    p->soff += p->idx[d] * w->sstr[d];
  }
}

static inline void walk_step(const walk_dims *w, walk_pos *p) {
  for (int d = w->n - 1; d >= 0; d--) {
    p->doff += w->dstr[d];
    p->soff += w->sstr[d];
    if (++p->idx[d] < w->shape[d]) return;
    p->doff -= w->dstr[d] * w->shape[d];
    p->soff -= w->sstr[d] * w->shape[d];
    p->idx[d] = 0;
  }
}

static int64_t prod(const int64_t *shape, int lo, int hi) {
  int64_t p = 1;
  for (int i = lo; i < hi; i++) p *= shape[i];
  return p;
}

/* ---- element runs -------------------------------------------------------------- */

/* dst[i * ds] = src[i * ss] for i < n (strides in elements; ss may be 0 or negative). */
static void copy_run(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, int es) {
  if (ds == 1 && ss == 1) {
    memcpy(dst, src, (size_t)n * (size_t)es);
    return;
  }
#define RUN(T)                                          \
  {                                                     \
    T *d = (T *)dst;                                    \
    const T *s = (const T *)src;                        \
    if (ss == 0) {                                      \
      T v = *s;                                         \
      if (ds == 1)                                      \
        for (int64_t i = 0; i < n; i++) d[i] = v;       \
      else                                              \
        for (int64_t i = 0; i < n; i++) d[i * ds] = v;  \
    } else if (ds == 1) {                               \
      for (int64_t i = 0; i < n; i++) d[i] = s[i * ss]; \
    } else {                                            \
      for (int64_t i = 0; i < n; i++) d[i * ds] = s[i * ss]; \
    }                                                   \
    return;                                             \
  }
  switch (es) {
  case 1: RUN(uint8_t)
  case 2: RUN(uint16_t)
  case 4: RUN(uint32_t)
  case 8: RUN(uint64_t)
  case 16: RUN(elem16)
  }
#undef RUN
  for (int64_t i = 0; i < n; i++) memcpy(dst + i * ds * es, src + i * ss * es, (size_t)es);
}

/* dst[i * dp + j] = src[i + j * sq] for i < ni, j < nj: one transpose tile,
 * walked in 8 x 8 blocks whose fixed bounds let the compiler unroll them. */
#define TILE_LOOP(T)                                                              \
  {                                                                               \
    T *d = (T *)dst;                                                              \
    const T *s = (const T *)src;                                                  \
    int64_t i8 = ni & ~(int64_t)7, j8 = nj & ~(int64_t)7;                         \
    for (int64_t i0 = 0; i0 < i8; i0 += 8) {                                      \
      for (int64_t j0 = 0; j0 < j8; j0 += 8)                                      \
        for (int64_t i = i0; i < i0 + 8; i++)                                     \
          for (int64_t j = j0; j < j0 + 8; j++) d[i * dp + j] = s[i + j * sq];    \
      for (int64_t i = i0; i < i0 + 8; i++)                                       \
        for (int64_t j = j8; j < nj; j++) d[i * dp + j] = s[i + j * sq];          \
    }                                                                             \
    for (int64_t i = i8; i < ni; i++)                                             \
      for (int64_t j = 0; j < nj; j++) d[i * dp + j] = s[i + j * sq];             \
    return;                                                                       \
  }
static void copy_tile(char *dst, int64_t dp, const char *src, int64_t sq, int64_t ni, int64_t nj, int es) {
  switch (es) {
  case 1: TILE_LOOP(uint8_t)
  case 2: TILE_LOOP(uint16_t)
  case 4: TILE_LOOP(uint32_t)
  case 8: TILE_LOOP(uint64_t)
  case 16: TILE_LOOP(elem16)
  }
  for (int64_t i = 0; i < ni; i++) copy_run(dst + i * dp * es, 1, src + i * es, sq, nj, es);
}
#undef TILE_LOOP

/* ---- strided copy -----------------------------------------------------------------
 * dst[sum idx*dstr] = src[sum idx*sstr] over a shape. Runs either row by row
 * (innermost dim) or, when the source is contiguous along some other dim
 * (a transpose), in TILE x TILE tiles over that dim and the innermost. */
typedef struct {
  char *dst;
  const char *src;
  int es;
  walk_dims outer;    /* dims walked per unit */
  int64_t n;          /* row path: innermost length; tile path: length of the tiled source dim */
  int64_t ds, ss;     /* row path: innermost strides */
  int64_t nq, dp, sq; /* tile path: innermost length, dst stride of the tiled dim, src stride of innermost */
  int64_t nsplit;     /* units per outer position (row chunks or tile rows) */
  int tiled;
} copy_plan;

static void copy_units(void *ctx, int64_t lo, int64_t hi) {
  const copy_plan *P = ctx;
  walk_pos pos;
  int es = P->es;
  if (P->tiled) {
    for (int64_t u = lo; u < hi; u++) {
      walk_seek(&P->outer, u / P->nsplit, &pos);
      int64_t i0 = (u % P->nsplit) * TILE, ni = P->n - i0 < TILE ? P->n - i0 : TILE;
      for (int64_t j0 = 0; j0 < P->nq; j0 += TILE) {
        int64_t nj = P->nq - j0 < TILE ? P->nq - j0 : TILE;
        copy_tile(P->dst + (pos.doff + i0 * P->dp + j0) * es, P->dp, P->src + (pos.soff + i0 + j0 * P->sq) * es, P->sq,
                  ni, nj, es);
      }
    }
  } else if (P->nsplit == 1) {
    walk_seek(&P->outer, lo, &pos);
    for (int64_t u = lo; u < hi; u++) {
      copy_run(P->dst + pos.doff * es, P->ds, P->src + pos.soff * es, P->ss, P->n, es);
      walk_step(&P->outer, &pos);
    }
  } else {
    for (int64_t u = lo; u < hi; u++) {
      walk_seek(&P->outer, u / P->nsplit, &pos);
      int64_t c0 = (u % P->nsplit) * CHUNK, nc = P->n - c0 < CHUNK ? P->n - c0 : CHUNK;
      copy_run(P->dst + (pos.doff + c0 * P->ds) * es, P->ds, P->src + (pos.soff + c0 * P->ss) * es, P->ss, nc, es);
    }
  }
}

/* dst and src point at element (0, ..., 0); strides in elements. */
static void copy_strided(int es, int nd, const int64_t *shape, char *dst, const int64_t *dstr, const char *src,
                         const int64_t *sstr) {
  int64_t sh[MX_MAX_RANK], ds[MX_MAX_RANK], ss[MX_MAX_RANK];
  int m = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    /* merge with the previous dim when together they step like one dim */
    if (m > 0 && ds[m - 1] == dstr[d] * shape[d] && ss[m - 1] == sstr[d] * shape[d]) {
      sh[m - 1] *= shape[d];
      ds[m - 1] = dstr[d];
      ss[m - 1] = sstr[d];
    } else {
      sh[m] = shape[d];
      ds[m] = dstr[d];
      ss[m] = sstr[d];
      m++;
    }
  }
  if (m == 0) {
    sh[0] = 1;
    ds[0] = ss[0] = 0;
    m = 1;
  }

  copy_plan P = {.dst = dst, .src = src, .es = es};
  int q = m - 1, p = -1;
  if (m >= 2 && ds[q] == 1 && ss[q] != 1 && ss[q] != 0 && sh[q] >= 8)
    for (int d = 0; d < q; d++)
      if (ss[d] == 1 && sh[d] >= 8) p = d;
  int64_t unit_elems;
  if (p >= 0) {
    P.tiled = 1;
    for (int d = 0; d < q; d++) {
      if (d == p) continue;
      P.outer.shape[P.outer.n] = sh[d];
      P.outer.dstr[P.outer.n] = ds[d];
      P.outer.sstr[P.outer.n] = ss[d];
      P.outer.n++;
    }
    P.n = sh[p];
    P.dp = ds[p];
    P.nq = sh[q];
    P.sq = ss[q];
    P.nsplit = (P.n + TILE - 1) / TILE;
    unit_elems = TILE * P.nq;
  } else {
    for (int d = 0; d < q; d++) {
      P.outer.shape[d] = sh[d];
      P.outer.dstr[d] = ds[d];
      P.outer.sstr[d] = ss[d];
    }
    P.outer.n = q;
    P.n = sh[q];
    P.ds = ds[q];
    P.ss = ss[q];
    P.nsplit = (P.n + CHUNK - 1) / CHUNK;
    unit_elems = P.n < CHUNK ? P.n : CHUNK;
  }
  int64_t units = prod(P.outer.shape, 0, P.outer.n) * P.nsplit;
  int64_t grain = MX_PARALLEL_GRAIN / unit_elems;
  mx_parallel_for(units, grain > 0 ? grain : 1, copy_units, &P);
}

/* A contiguous copy of n elements, split across cores when large. */
static void copy_contiguous(char *dst, const char *src, int64_t n, int es) {
  int64_t one = 1;
  copy_strided(es, 1, &n, dst, &one, src, &one);
}

/* ---- checks shared by the kernels -------------------------------------------------- */

static mx_status check_same_dtype(const char *op, const mx_array *out, const mx_array *a) {
  if (a->dtype != out->dtype)
    return mx_error(MX_EINVAL, "[%s] input dtype %s differs from output dtype %s; cast with as_type first", op,
                    mx_dtype_name((mx_dtype)a->dtype), mx_dtype_name((mx_dtype)out->dtype));
  return MX_OK;
}

static mx_status check_params(const char *op, const mx_array *out) {
  if (!out->params) return mx_error(MX_EINVAL, "[%s] the node has no parameters; build it with its constructor", op);
  return MX_OK;
}

static mx_status check_index_dtype(const char *op, const mx_array *idx) {
  if (idx->dtype != MX_S64)
    return mx_error(MX_EINVAL, "[%s] indices must be s64, got %s; cast them with as_type", op,
                    mx_dtype_name((mx_dtype)idx->dtype));
  return MX_OK;
}

/* Every index in [0, size), checked before anything is written. */
static mx_status check_indices(const char *op, const int64_t *idx, int64_t n, int64_t stride, int axis, int64_t size) {
  for (int64_t i = 0; i < n; i++) {
    int64_t v = idx[i * stride];
    if (v < 0 || v >= size)
      return mx_error(MX_EINVAL, "[%s] index %lld is out of bounds for axis %d of size %lld; indices must be in [0, size)",
                      op, (long long)v, axis, (long long)size);
  }
  return MX_OK;
}

static mx_status check_out_size(const char *op, const mx_array *out, int64_t expect) {
  if (out->size != expect)
    return mx_error(MX_EINVAL, "[%s] output has %lld elements but the inputs give %lld; build the node with its constructor",
                    op, (long long)out->size, (long long)expect);
  return MX_OK;
}

#define TRY(x)                     \
  do {                             \
    mx_status st_ = (x);           \
    if (st_ != MX_OK) return st_;  \
  } while (0)

/* ---- shape kernels ----------------------------------------------------------------- */

mx_status mx_k_reshape(mx_array *out, mx_array *const *in) {
  /* graph.c makes out share in[0]'s buffer; copy only if it ever does not */
  if (mx_data(out) != mx_data(in[0]) && out->size > 0) {
    TRY(check_same_dtype("reshape", out, in[0]));
    TRY(check_out_size("reshape", out, in[0]->size));
    copy_contiguous(mx_data(out), mx_data(in[0]), out->size, mx_dtype_size((mx_dtype)out->dtype));
  }
  return MX_OK;
}

/* stop_gradient is the identity on values: it shares its input's buffer like reshape. */
mx_status mx_k_stop_gradient(mx_array *out, mx_array *const *in) { return mx_k_reshape(out, in); }

mx_status mx_k_transpose(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  TRY(check_params("transpose", out));
  TRY(check_same_dtype("transpose", out, a));
  const int64_t *perm = out->params->ip;
  int r = out->ndim, seen[MX_MAX_RANK] = {0};
  if (a->ndim != r) return mx_error(MX_EINVAL, "[transpose] input rank %d differs from output rank %d", a->ndim, r);
  int64_t astr[MX_MAX_RANK], ostr[MX_MAX_RANK], sstr[MX_MAX_RANK];
  mx_contiguous_strides(r, a->shape, astr);
  mx_contiguous_strides(r, out->shape, ostr);
  for (int i = 0; i < r; i++) {
    if (perm[i] < 0 || perm[i] >= r || seen[perm[i]]++ || out->shape[i] != a->shape[perm[i]])
      return mx_error(MX_EINVAL, "[transpose] parameter %d (%lld) is not a permutation of the input's axes matching the output",
                      i, (long long)perm[i]);
    sstr[i] = astr[perm[i]];
  }
  if (out->size == 0) return MX_OK;
  copy_strided(mx_dtype_size((mx_dtype)out->dtype), r, out->shape, mx_data(out), ostr, mx_data(a), sstr);
  return MX_OK;
}

mx_status mx_k_broadcast(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  TRY(check_same_dtype("broadcast", out, a));
  if (a->ndim > out->ndim)
    return mx_error(MX_EINVAL, "[broadcast] input rank %d exceeds output rank %d", a->ndim, out->ndim);
  for (int i = 0; i < a->ndim; i++) {
    int64_t ad = a->shape[i], od = out->shape[out->ndim - a->ndim + i];
    if (ad != 1 && ad != od)
      return mx_error(MX_EINVAL, "[broadcast] input axis %d of size %lld cannot broadcast to %lld; it must be 1 or equal",
                      i, (long long)ad, (long long)od);
  }
  if (out->size == 0) return MX_OK;
  int64_t ostr[MX_MAX_RANK], sstr[MX_MAX_RANK];
  mx_contiguous_strides(out->ndim, out->shape, ostr);
  mx_broadcast_strides(a, out, sstr);
  copy_strided(mx_dtype_size((mx_dtype)out->dtype), out->ndim, out->shape, mx_data(out), ostr, mx_data(a), sstr);
  return MX_OK;
}

mx_status mx_k_concatenate(mx_array *out, mx_array *const *in) {
  TRY(check_params("concatenate", out));
  int axis = out->params->axis, r = out->ndim, n = out->n_in;
  if (axis < 0 || axis >= r)
    return mx_error(MX_EINVAL, "[concatenate] axis %d is out of range for rank %d", axis, r);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    TRY(check_same_dtype("concatenate", out, in[i]));
    if (in[i]->ndim != r) return mx_error(MX_EINVAL, "[concatenate] input %d has rank %d, expected %d", i, in[i]->ndim, r);
    for (int d = 0; d < r; d++)
      if (d != axis && in[i]->shape[d] != out->shape[d])
        return mx_error(MX_EINVAL, "[concatenate] input %d has size %lld on axis %d, expected %lld", i,
                        (long long)in[i]->shape[d], d, (long long)out->shape[d]);
    total += in[i]->shape[axis];
  }
  if (total != out->shape[axis])
    return mx_error(MX_EINVAL, "[concatenate] inputs sum to %lld along axis %d but the output has %lld", (long long)total,
                    axis, (long long)out->shape[axis]);
  if (out->size == 0) return MX_OK;
  int es = mx_dtype_size((mx_dtype)out->dtype);
  int64_t outer = prod(out->shape, 0, axis), inner = prod(out->shape, axis + 1, r), off = 0;
  /* each input is a [outer, len] block of out's [outer, row] rows */
  for (int i = 0; i < n; i++) {
    int64_t len = in[i]->shape[axis] * inner;
    if (len > 0) {
      int64_t shape[2] = {outer, len}, dstr[2] = {out->shape[axis] * inner, 1}, sstr[2] = {len, 1};
      copy_strided(es, 2, shape, (char *)mx_data(out) + off * es, dstr, mx_data(in[i]), sstr);
    }
    off += len;
  }
  return MX_OK;
}

mx_status mx_k_slice(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  TRY(check_params("slice", out));
  TRY(check_same_dtype("slice", out, a));
  int r = out->ndim;
  if (a->ndim != r) return mx_error(MX_EINVAL, "[slice] input rank %d differs from output rank %d", a->ndim, r);
  const int64_t *start = out->params->ip, *stride = out->params->ip + r;
  int64_t astr[MX_MAX_RANK], ostr[MX_MAX_RANK], sstr[MX_MAX_RANK], base = 0;
  mx_contiguous_strides(r, a->shape, astr);
  mx_contiguous_strides(r, out->shape, ostr);
  for (int d = 0; d < r; d++) {
    if (stride[d] < 1) return mx_error(MX_EINVAL, "[slice] stride %lld on axis %d must be >= 1", (long long)stride[d], d);
    int64_t last = start[d] + (out->shape[d] - 1) * stride[d];
    if (out->shape[d] > 0 && (start[d] < 0 || last >= a->shape[d]))
      return mx_error(MX_EINVAL, "[slice] axis %d reads indices %lld..%lld of a size %lld axis; start and stop must be in bounds",
                      d, (long long)start[d], (long long)last, (long long)a->shape[d]);
    base += start[d] * astr[d];
    sstr[d] = out->shape[d] > 1 ? astr[d] * stride[d] : 0; /* a huge stride over one element would overflow */
  }
  if (out->size == 0) return MX_OK;
  int es = mx_dtype_size((mx_dtype)out->dtype);
  copy_strided(es, r, out->shape, mx_data(out), ostr, (const char *)mx_data(a) + base * es, sstr);
  return MX_OK;
}

static int64_t floor_div(int64_t a, int64_t b) { /* b > 0 */
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

mx_status mx_k_pad(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0], *v = in[1];
  TRY(check_params("pad", out));
  TRY(check_same_dtype("pad", out, a));
  TRY(check_same_dtype("pad", out, v));
  int r = out->ndim;
  if (a->ndim != r) return mx_error(MX_EINVAL, "[pad] input rank %d differs from output rank %d", a->ndim, r);
  if (v->size != 1) return mx_error(MX_EINVAL, "[pad] the pad value must be a scalar, got %lld elements", (long long)v->size);
  const int64_t *lo = out->params->ip, *hi = out->params->ip + r, *interior = out->params->ip + 2 * r;
  int64_t astr[MX_MAX_RANK], ostr[MX_MAX_RANK];
  int64_t shape[MX_MAX_RANK], dstr[MX_MAX_RANK], sstr[MX_MAX_RANK], dbase = 0, sbase = 0;
  int any_pad = 0, any_copy = 1;
  mx_contiguous_strides(r, a->shape, astr);
  mx_contiguous_strides(r, out->shape, ostr);
  for (int d = 0; d < r; d++) {
    int64_t n = a->shape[d], s = interior[d] + 1;
    if (interior[d] < 0 || out->shape[d] != lo[d] + hi[d] + n + (n > 0 ? (n - 1) * interior[d] : 0))
      return mx_error(MX_EINVAL, "[pad] axis %d: lo %lld, hi %lld, interior %lld do not give the output size %lld", d,
                      (long long)lo[d], (long long)hi[d], (long long)interior[d], (long long)out->shape[d]);
    any_pad |= lo[d] != 0 || hi[d] != 0 || interior[d] != 0;
    /* input positions c land at lo + c * s; keep those inside [0, out) */
    int64_t cmin = lo[d] < 0 ? (-lo[d] + s - 1) / s : 0;
    int64_t cmax = floor_div(out->shape[d] - 1 - lo[d], s);
    if (cmax > n - 1) cmax = n - 1;
    if (cmax < cmin) any_copy = 0;
    shape[d] = cmax - cmin + 1;
    dbase += (lo[d] + cmin * s) * ostr[d];
    dstr[d] = s * ostr[d];
    sbase += cmin * astr[d];
    sstr[d] = astr[d];
  }
  if (out->size == 0) return MX_OK;
  int es = mx_dtype_size((mx_dtype)out->dtype);
  if (any_pad) {
    int64_t zero[MX_MAX_RANK] = {0};
    copy_strided(es, r, out->shape, mx_data(out), ostr, mx_data(v), zero);
  }
  if (any_copy) copy_strided(es, r, shape, (char *)mx_data(out) + dbase * es, dstr, (const char *)mx_data(a) + sbase * es, sstr);
  return MX_OK;
}

mx_status mx_k_reverse(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0];
  TRY(check_params("reverse", out));
  TRY(check_same_dtype("reverse", out, a));
  int r = out->ndim, flip[MX_MAX_RANK] = {0};
  if (a->ndim != r || memcmp(a->shape, out->shape, sizeof(int64_t) * (size_t)r) != 0)
    return mx_error(MX_EINVAL, "[reverse] the output must have the input's shape; build the node with mx_reverse");
  for (int i = 0; i < out->params->nip; i++) {
    int64_t ax = out->params->ip[i];
    if (ax < 0) ax += r;
    if (ax < 0 || ax >= r)
      return mx_error(MX_EINVAL, "[reverse] axis %lld is out of range for rank %d", (long long)out->params->ip[i], r);
    flip[ax] = 1;
  }
  if (out->size == 0) return MX_OK;
  int64_t ostr[MX_MAX_RANK], sstr[MX_MAX_RANK], base = 0;
  mx_contiguous_strides(r, out->shape, ostr);
  mx_contiguous_strides(r, a->shape, sstr);
  for (int d = 0; d < r; d++)
    if (flip[d]) {
      base += (a->shape[d] - 1) * sstr[d];
      sstr[d] = -sstr[d];
    }
  int es = mx_dtype_size((mx_dtype)out->dtype);
  copy_strided(es, r, out->shape, mx_data(out), ostr, (const char *)mx_data(a) + base * es, sstr);
  return MX_OK;
}

/* ---- index kernels ------------------------------------------------------------------ */

/* Rows of `inner` elements: row u of dst comes from src row offsets[u] (elements). */
typedef struct {
  char *dst;
  const char *src;
  int es;
  int64_t inner;
  /* take: row u = (o, j) reads src row o * dim + idx[j] */
  const int64_t *idx;
  int64_t nidx, dim;
  /* gather: row u reads src at sum_d idx[u * k + d] * astr[d] */
  int k;
  int64_t astr[MX_MAX_RANK];
} rows_ctx;

static inline void copy_row_or_elem(char *dst, const char *src, int64_t inner, int es) {
  if (inner != 1) {
    memcpy(dst, src, (size_t)inner * (size_t)es);
    return;
  }
  switch (es) {
  case 1: *(uint8_t *)dst = *(const uint8_t *)src; return;
  case 2: *(uint16_t *)dst = *(const uint16_t *)src; return;
  case 4: *(uint32_t *)dst = *(const uint32_t *)src; return;
  case 8: *(uint64_t *)dst = *(const uint64_t *)src; return;
  case 16: *(elem16 *)dst = *(const elem16 *)src; return;
  }
  memcpy(dst, src, (size_t)es);
}

static void take_rows(void *ctx, int64_t lo, int64_t hi) {
  const rows_ctx *c = ctx;
  int64_t row = c->inner * c->es;
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / c->nidx, j = u % c->nidx;
    copy_row_or_elem(c->dst + u * row, c->src + (o * c->dim + c->idx[j]) * row, c->inner, c->es);
  }
}

mx_status mx_k_take(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0], *ix = in[1];
  TRY(check_params("take", out));
  TRY(check_same_dtype("take", out, a));
  TRY(check_index_dtype("take", ix));
  int axis = out->params->axis;
  if (axis < 0 || axis >= a->ndim) return mx_error(MX_EINVAL, "[take] axis %d is out of range for rank %d", axis, a->ndim);
  rows_ctx c = {.dst = mx_data(out), .src = mx_data(a), .es = mx_dtype_size((mx_dtype)out->dtype), .idx = mx_data(ix),
                .nidx = ix->size, .dim = a->shape[axis], .inner = prod(a->shape, axis + 1, a->ndim)};
  int64_t outer = prod(a->shape, 0, axis);
  TRY(check_out_size("take", out, outer * c.nidx * c.inner));
  TRY(check_indices("take", c.idx, c.nidx, 1, axis, c.dim));
  if (out->size == 0) return MX_OK;
  int64_t grain = MX_PARALLEL_GRAIN / c.inner;
  mx_parallel_for(outer * c.nidx, grain > 0 ? grain : 1, take_rows, &c);
  return MX_OK;
}

static void gather_rows(void *ctx, int64_t lo, int64_t hi) {
  const rows_ctx *c = ctx;
  int64_t row = c->inner * c->es;
  for (int64_t u = lo; u < hi; u++) {
    int64_t off = 0;
    for (int d = 0; d < c->k; d++) off += c->idx[u * c->k + d] * c->astr[d];
    copy_row_or_elem(c->dst + u * row, c->src + off * c->es, c->inner, c->es);
  }
}

mx_status mx_k_gather(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0], *ix = in[1];
  TRY(check_same_dtype("gather", out, a));
  TRY(check_index_dtype("gather", ix));
  if (ix->ndim < 1) return mx_error(MX_EINVAL, "[gather] indices must have rank >= 1 ([..., k]), got a scalar");
  int64_t k = ix->shape[ix->ndim - 1];
  if (k > a->ndim)
    return mx_error(MX_EINVAL, "[gather] indices address %lld axes but the input has rank %d", (long long)k, a->ndim);
  rows_ctx c = {.dst = mx_data(out), .src = mx_data(a), .es = mx_dtype_size((mx_dtype)out->dtype), .idx = mx_data(ix),
                .k = (int)k, .inner = prod(a->shape, (int)k, a->ndim)};
  mx_contiguous_strides(a->ndim, a->shape, c.astr);
  int64_t rows = prod(ix->shape, 0, ix->ndim - 1);
  TRY(check_out_size("gather", out, rows * c.inner));
  for (int d = 0; d < c.k; d++) TRY(check_indices("gather", c.idx + d, rows, k, d, a->shape[d]));
  if (out->size == 0) return MX_OK;
  int64_t grain = MX_PARALLEL_GRAIN / c.inner;
  mx_parallel_for(rows, grain > 0 ? grain : 1, gather_rows, &c);
  return MX_OK;
}

/* take_along_axis: walk out's elements; the source offset is the walk's offset
 * (axis stride 0, broadcast dims stride 0) plus index * the axis stride. */
typedef struct {
  char *dst;
  const char *src;
  const int64_t *idx;
  int es;
  int64_t axis_stride;
  walk_dims w;
} along_ctx;

static void along_elems(void *ctx, int64_t lo, int64_t hi) {
  const along_ctx *c = ctx;
  walk_pos pos;
  walk_seek(&c->w, lo, &pos);
  for (int64_t e = lo; e < hi; e++) {
    copy_row_or_elem(c->dst + e * c->es, c->src + (pos.soff + c->idx[e] * c->axis_stride) * c->es, 1, c->es);
    walk_step(&c->w, &pos);
  }
}

mx_status mx_k_take_along_axis(mx_array *out, mx_array *const *in) {
  const mx_array *a = in[0], *ix = in[1];
  TRY(check_params("take_along_axis", out));
  TRY(check_same_dtype("take_along_axis", out, a));
  TRY(check_index_dtype("take_along_axis", ix));
  int axis = out->params->axis, r = out->ndim;
  if (axis < 0 || axis >= r || a->ndim != r || ix->ndim != r)
    return mx_error(MX_EINVAL, "[take_along_axis] input, indices and output must share rank with axis %d in range (ranks %d, %d, %d)",
                    axis, a->ndim, ix->ndim, r);
  for (int d = 0; d < r; d++) {
    if (ix->shape[d] != out->shape[d])
      return mx_error(MX_EINVAL, "[take_along_axis] indices must have the output's shape; axis %d is %lld, expected %lld", d,
                      (long long)ix->shape[d], (long long)out->shape[d]);
    if (d != axis && a->shape[d] != out->shape[d] && a->shape[d] != 1)
      return mx_error(MX_EINVAL, "[take_along_axis] input axis %d of size %lld does not match the output's %lld", d,
                      (long long)a->shape[d], (long long)out->shape[d]);
  }
  if (out->size == 0) return MX_OK;
  TRY(check_indices("take_along_axis", mx_data(ix), ix->size, 1, axis, a->shape[axis]));
  along_ctx c = {.dst = mx_data(out), .src = mx_data(a), .idx = mx_data(ix), .es = mx_dtype_size((mx_dtype)out->dtype)};
  int64_t astr[MX_MAX_RANK];
  mx_contiguous_strides(r, a->shape, astr);
  c.axis_stride = astr[axis];
  c.w.n = r;
  for (int d = 0; d < r; d++) {
    c.w.shape[d] = out->shape[d];
    c.w.dstr[d] = 0;
    c.w.sstr[d] = d == axis || a->shape[d] == 1 ? 0 : astr[d];
  }
  mx_parallel_for(out->size, MX_PARALLEL_GRAIN, along_elems, &c);
  return MX_OK;
}

/* Shared checks for indexed_add/put: indices [n, k], updates [n] ++ a.shape[k:]. */
static mx_status indexed_setup(const char *op, mx_array *out, mx_array *const *in, int64_t *n, int *k, int64_t *inner,
                               int64_t *astr) {
  const mx_array *a = in[0], *ix = in[1], *up = in[2];
  TRY(check_same_dtype(op, out, a));
  TRY(check_same_dtype(op, out, up));
  TRY(check_index_dtype(op, ix));
  TRY(check_out_size(op, out, a->size));
  if (ix->ndim != 2 || ix->shape[1] > a->ndim)
    return mx_error(MX_EINVAL, "[%s] indices must be [n, k] with k <= input rank %d; got rank %d", op, a->ndim, ix->ndim);
  *n = ix->shape[0];
  *k = (int)ix->shape[1];
  *inner = prod(a->shape, *k, a->ndim);
  if (up->size != *n * *inner)
    return mx_error(MX_EINVAL, "[%s] updates have %lld elements, expected %lld (n rows of input.shape[k:])", op,
                    (long long)up->size, (long long)(*n * *inner));
  mx_contiguous_strides(a->ndim, a->shape, astr);
  const int64_t *idx = mx_data(ix);
  for (int d = 0; d < *k; d++) TRY(check_indices(op, idx + d, *n, *k, d, a->shape[d]));
  if (out->size > 0 && mx_data(out) != mx_data(a))
    copy_contiguous(mx_data(out), mx_data(a), a->size, mx_dtype_size((mx_dtype)out->dtype));
  return MX_OK;
}

static inline int64_t row_offset(const int64_t *idx, int k, const int64_t *astr) {
  int64_t off = 0;
  for (int d = 0; d < k; d++) off += idx[d] * astr[d];
  return off;
}

/* Rows go in order, so with duplicate indices the last write wins. */
mx_status mx_k_indexed_put(mx_array *out, mx_array *const *in) {
  int64_t n, inner, astr[MX_MAX_RANK];
  int k;
  TRY(indexed_setup("indexed_put", out, in, &n, &k, &inner, astr));
  if (out->size == 0 || inner == 0) return MX_OK;
  int es = mx_dtype_size((mx_dtype)out->dtype);
  const int64_t *idx = mx_data(in[1]);
  const char *up = mx_data(in[2]);
  char *o = mx_data(out);
  for (int64_t j = 0; j < n; j++)
    copy_row_or_elem(o + row_offset(idx + j * k, k, astr) * es, up + j * inner * es, inner, es);
  return MX_OK;
}

/* o[i] = COMBINE(T, o[i], u[i]) along each indexed row of out and its row of updates. */
#define ADD_ROWS(T, COMBINE)                                                 \
  for (int64_t j = 0; j < n; j++) {                                          \
    T *o = (T *)mx_data(out) + row_offset(idx + j * k, k, astr);             \
    const T *u = (const T *)mx_data(in[2]) + j * inner;                      \
    for (int64_t i = 0; i < inner; i++) o[i] = COMBINE(T, o[i], u[i]);      \
  }                                                                          \
  return MX_OK;
/* Integers wrap (the sum is formed in uint64_t, whose low bits are exact); bool ORs. */
#define WRAP_ADD(T, x, y) (T)((uint64_t)(x) + (uint64_t)(y))
#define PLUS(T, x, y) ((x) + (y))
#define OR(T, x, y) ((x) || (y))
#define ADD_INT(ID, T) \
  case MX_##ID: ADD_ROWS(T, WRAP_ADD)
#define ADD_FLOAT(ID, T) \
  case MX_##ID: ADD_ROWS(T, PLUS)

mx_status mx_k_indexed_add(mx_array *out, mx_array *const *in) {
  int64_t n, inner, astr[MX_MAX_RANK];
  int k;
  TRY(indexed_setup("indexed_add", out, in, &n, &k, &inner, astr));
  if (out->size == 0 || inner == 0) return MX_OK;
  const int64_t *idx = mx_data(in[1]);
  switch ((mx_dtype)out->dtype) {
  case MX_BOOL:
    ADD_ROWS(uint8_t, OR)
    MX_INT_TYPES(ADD_INT)
    MX_FLOAT_TYPES(ADD_FLOAT)
    MX_COMPLEX_TYPES(ADD_FLOAT)
  default:
    return mx_error(MX_EINVAL, "[indexed_add] dtype %s is storage only; cast to f32 with as_type first",
                    mx_dtype_name((mx_dtype)out->dtype));
  }
}
#undef ADD_ROWS
#undef WRAP_ADD
#undef PLUS
#undef OR
#undef ADD_INT
#undef ADD_FLOAT
