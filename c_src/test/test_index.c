/* test_index.c: the index and matmul kernels end to end, through the op
 * constructors in mx.h and mx_eval, against naive loops. */
#include "test_util.h"

/* Pseudo-random values that are exact in every dtype used here. */
static void fill_f32(float *x, int64_t n, int seed) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37 + seed * 11) % 19) - 9.0f;
}

/* ---- transpose ----------------------------------------------------------------- */

static void test_transpose_3d(void) {
  int64_t shape[3] = {2, 3, 4};
  float x[24];
  for (int i = 0; i < 24; i++) x[i] = (float)i;
  mx_array *a = arr(MX_F32, 3, shape, x);
  int perms[3][3] = {{2, 0, 1}, {1, 0, 2}, {2, 1, 0}};
  for (int t = 0; t < 3; t++) {
    const int *p = perms[t];
    mx_array *o = NULL;
    o = run(mx_transpose(a, p, &o), &o, "transpose 3-d");
    if (!o) continue;
    int64_t os[3] = {shape[p[0]], shape[p[1]], shape[p[2]]};
    CHECK(same_shape(o, 3, os), "transpose perm %d shape", t);
    const float *y = mx_data(o);
    int bad = 0;
    for (int i = 0; i < os[0]; i++)
      for (int j = 0; j < os[1]; j++)
        for (int k = 0; k < os[2]; k++) {
          int64_t idx[3];
          idx[p[0]] = i;
          idx[p[1]] = j;
          idx[p[2]] = k;
          bad += y[(i * os[1] + j) * os[2] + k] != x[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
        }
    CHECK(bad == 0, "transpose perm (%d,%d,%d): %d wrong", p[0], p[1], p[2], bad);
    mx_release(o);
  }
  mx_release(a);
}

/* A large 2-d transpose (tiled, split across cores) and a 4-d one, in 2-byte
 * (f16 storage) and 8-byte elements. */
static void test_transpose_large(void) {
  int64_t shape[2] = {301, 517}, n = 301 * 517;
  uint16_t *h = malloc(sizeof(uint16_t) * n);
  double *d = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) {
    h[i] = (uint16_t)(i * 7919);
    d[i] = (double)i * 0.5;
  }
  mx_array *a = arr(MX_F16, 2, shape, h), *b = arr(MX_F64, 2, shape, d);
  int perm[2] = {1, 0};
  mx_array *ta = NULL, *tb = NULL;
  ta = run(mx_transpose(a, perm, &ta), &ta, "transpose f16");
  tb = run(mx_transpose(b, perm, &tb), &tb, "transpose f64");
  if (ta && tb) {
    const uint16_t *y = mx_data(ta);
    const double *z = mx_data(tb);
    int bad = 0;
    for (int64_t i = 0; i < shape[1]; i++)
      for (int64_t j = 0; j < shape[0]; j++) {
        bad += y[i * shape[0] + j] != h[j * shape[1] + i];
        bad += z[i * shape[0] + j] != d[j * shape[1] + i];
      }
    CHECK(bad == 0 && ta->dtype == MX_F16, "large 2-d transpose: %d wrong", bad);
  }
  if (ta) mx_release(ta);
  if (tb) mx_release(tb);
  mx_release(a);
  mx_release(b);

  int64_t s4[4] = {5, 12, 9, 40}, n4 = 5 * 12 * 9 * 40;
  int32_t *x = malloc(sizeof(int32_t) * n4);
  for (int64_t i = 0; i < n4; i++) x[i] = (int32_t)i;
  mx_array *c = arr(MX_S32, 4, s4, x);
  int p4[4] = {3, 1, 0, 2};
  mx_array *o = NULL;
  o = run(mx_transpose(c, p4, &o), &o, "transpose 4-d");
  if (o) {
    const int32_t *y = mx_data(o);
    int64_t os[4] = {s4[3], s4[1], s4[0], s4[2]};
    int bad = 0, e = 0;
    for (int64_t i0 = 0; i0 < os[0]; i0++)
      for (int64_t i1 = 0; i1 < os[1]; i1++)
        for (int64_t i2 = 0; i2 < os[2]; i2++)
          for (int64_t i3 = 0; i3 < os[3]; i3++) {
            /* out (i0,i1,i2,i3) = in [i2][i1][i3][i0] */
            bad += y[e++] != x[((i2 * s4[1] + i1) * s4[2] + i3) * s4[3] + i0];
          }
    CHECK(bad == 0, "4-d transpose: %d wrong", bad);
    mx_release(o);
  }
  mx_release(c);
  free(h);
  free(d);
  free(x);
}

/* ---- broadcast, slice, pad, reverse, concatenate ---------------------------------- */

static void test_broadcast(void) {
  int64_t shape[2] = {3, 1}, os[3] = {2, 3, 4};
  int32_t x[3] = {7, -8, 9};
  mx_array *a = arr(MX_S32, 2, shape, x), *o = NULL;
  o = run(mx_broadcast_to(a, 3, os, &o), &o, "broadcast");
  if (o) {
    const int32_t *y = mx_data(o);
    int bad = 0;
    for (int i = 0; i < 24; i++) bad += y[i] != x[(i / 4) % 3];
    CHECK(bad == 0 && same_shape(o, 3, os), "broadcast [3,1] -> [2,3,4]: %d wrong", bad);
    mx_release(o);
  }
  mx_release(a);

  /* a scalar broadcast to a large array (one long fill, split across cores) */
  int64_t big[1] = {200000};
  uint8_t v = 5;
  mx_array *s = arr(MX_U8, 0, NULL, &v);
  o = NULL;
  o = run(mx_broadcast_to(s, 1, big, &o), &o, "broadcast scalar");
  if (o) {
    const uint8_t *y = mx_data(o);
    int bad = 0;
    for (int64_t i = 0; i < big[0]; i++) bad += y[i] != 5;
    CHECK(bad == 0, "broadcast scalar: %d wrong", bad);
    mx_release(o);
  }
  mx_release(s);
}

static void test_slice(void) {
  int64_t shape[2] = {5, 7};
  int64_t x[35];
  for (int i = 0; i < 35; i++) x[i] = i * 10;
  mx_array *a = arr(MX_S64, 2, shape, x), *o = NULL;
  int64_t start[2] = {1, 0}, stop[2] = {5, 7}, stride[2] = {2, 3};
  o = run(mx_slice(a, start, stop, stride, &o), &o, "slice");
  if (o) {
    int64_t os[2] = {2, 3};
    const int64_t *y = mx_data(o);
    int bad = 0;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++) bad += y[i * 3 + j] != x[(1 + 2 * i) * 7 + 3 * j];
    CHECK(bad == 0 && same_shape(o, 2, os), "strided slice: %d wrong", bad);
    mx_release(o);
  }
  /* an empty slice */
  int64_t start2[2] = {2, 3}, stop2[2] = {2, 7};
  o = NULL;
  o = run(mx_slice(a, start2, stop2, NULL, &o), &o, "empty slice");
  if (o) {
    CHECK(o->size == 0 && o->shape[0] == 0 && o->shape[1] == 4, "empty slice shape");
    mx_release(o);
  }
  mx_release(a);
}

static void test_pad(void) {
  int64_t shape[1] = {4};
  float x[4] = {1, 2, 3, 4}, pv = -1;
  mx_array *a = arr(MX_F32, 1, shape, x), *v = arr(MX_F32, 0, NULL, &pv), *o = NULL;
  /* lo -1 crops the first element; interior 1 interleaves pad values */
  int64_t lo[1] = {-1}, hi[1] = {2}, in[1] = {1};
  o = run(mx_pad(a, v, lo, hi, in, &o), &o, "pad");
  if (o) {
    float want[8] = {-1, 2, -1, 3, -1, 4, -1, -1};
    CHECK(o->shape[0] == 8 && memcmp(mx_data(o), want, sizeof want) == 0, "pad lo=-1 hi=2 interior=1");
    mx_release(o);
  }
  /* 2-d: crop both ends of axis 0, pad axis 1 */
  int64_t s2[2] = {4, 3};
  float y[12];
  for (int i = 0; i < 12; i++) y[i] = (float)i;
  mx_array *b = arr(MX_F32, 2, s2, y);
  int64_t lo2[2] = {-1, 2}, hi2[2] = {-2, 0};
  o = NULL;
  o = run(mx_pad(b, v, lo2, hi2, NULL, &o), &o, "pad 2-d");
  if (o) {
    float want[5] = {-1, -1, 3, 4, 5};
    CHECK(o->shape[0] == 1 && o->shape[1] == 5 && memcmp(mx_data(o), want, sizeof want) == 0, "pad 2-d negative");
    mx_release(o);
  }
  /* crop everything away on one axis */
  int64_t lo3[1] = {-3}, hi3[1] = {-1};
  o = NULL;
  o = run(mx_pad(a, v, lo3, hi3, NULL, &o), &o, "pad crop all");
  if (o) {
    CHECK(o->size == 0, "pad to size 0");
    mx_release(o);
  }
  mx_release(a);
  mx_release(b);
  mx_release(v);
}

static void test_reverse_concat(void) {
  int64_t shape[2] = {2, 3};
  int16_t x[6] = {1, 2, 3, 4, 5, 6};
  mx_array *a = arr(MX_S16, 2, shape, x), *o = NULL;
  int axes[1] = {1};
  o = run(mx_reverse(a, axes, 1, &o), &o, "reverse");
  if (o) {
    int16_t want[6] = {3, 2, 1, 6, 5, 4};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "reverse axis 1");
    mx_release(o);
  }
  o = NULL;
  o = run(mx_reverse(a, NULL, -1, &o), &o, "reverse all");
  if (o) {
    int16_t want[6] = {6, 5, 4, 3, 2, 1};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "reverse all axes");
    mx_release(o);
  }

  int64_t s1[2] = {2, 1}, s0[2] = {2, 0};
  int16_t z[2] = {9, 8};
  mx_array *b = arr(MX_S16, 2, s1, z), *e = arr(MX_S16, 2, s0, NULL);
  mx_array *parts[4] = {b, a, e, b};
  o = NULL;
  o = run(mx_concatenate(parts, 4, 1, &o), &o, "concatenate");
  if (o) {
    int16_t want[10] = {9, 1, 2, 3, 9, 8, 4, 5, 6, 8};
    CHECK(o->shape[0] == 2 && o->shape[1] == 5 && memcmp(mx_data(o), want, sizeof want) == 0, "concatenate axis 1");
    mx_release(o);
  }
  mx_array *rows[2] = {a, a};
  o = NULL;
  o = run(mx_concatenate(rows, 2, 0, &o), &o, "concatenate axis 0");
  if (o) {
    int16_t want[12] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
    CHECK(o->shape[0] == 4 && memcmp(mx_data(o), want, sizeof want) == 0, "concatenate axis 0");
    mx_release(o);
  }
  mx_release(a);
  mx_release(b);
  mx_release(e);
}

/* ---- take, take_along_axis, gather, indexed_add/put --------------------------------- */

static void test_take(void) {
  int64_t shape[2] = {3, 4};
  float x[12];
  for (int i = 0; i < 12; i++) x[i] = (float)i;
  mx_array *a = arr(MX_F32, 2, shape, x);
  int64_t is[2] = {2, 2}, idx[4] = {3, 0, 1, 3};
  mx_array *ix = arr(MX_S64, 2, is, idx), *o = NULL;
  o = run(mx_take(a, ix, 1, &o), &o, "take axis 1");
  if (o) {
    int64_t os[3] = {3, 2, 2};
    const float *y = mx_data(o);
    int bad = 0;
    for (int r = 0; r < 3; r++)
      for (int j = 0; j < 4; j++) bad += y[r * 4 + j] != x[r * 4 + idx[j]];
    CHECK(bad == 0 && same_shape(o, 3, os), "take axis 1: %d wrong", bad);
    mx_release(o);
  }
  /* take rows with s32 indices (the constructor casts them) */
  int64_t s1[1] = {3};
  int32_t rows[3] = {2, 2, 0};
  mx_array *ri = arr(MX_S32, 1, s1, rows);
  o = NULL;
  o = run(mx_take(a, ri, 0, &o), &o, "take axis 0");
  if (o) {
    float want[12] = {8, 9, 10, 11, 8, 9, 10, 11, 0, 1, 2, 3};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "take rows");
    mx_release(o);
  }
  /* out-of-bounds and negative indices fail at eval with MX_EINVAL */
  int64_t bad_idx[2][2] = {{1, 4}, {-1, 0}};
  for (int t = 0; t < 2; t++) {
    int64_t bs[1] = {2};
    mx_array *bi = arr(MX_S64, 1, bs, bad_idx[t]), *bo = NULL;
    mx_status st = mx_take(a, bi, 1, &bo);
    if (st == MX_OK) st = mx_eval(&bo, 1);
    CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[take]") && strstr(mx_last_error(), "out of bounds"),
          "take out of bounds gives MX_EINVAL (got %d: %s)", st, mx_last_error());
    if (bo) mx_release(bo);
    mx_release(bi);
  }
  /* empty indices */
  int64_t es[1] = {0};
  mx_array *ei = arr(MX_S64, 1, es, NULL);
  o = NULL;
  o = run(mx_take(a, ei, 0, &o), &o, "take empty");
  if (o) {
    CHECK(o->size == 0 && o->shape[0] == 0 && o->shape[1] == 4, "take with empty indices");
    mx_release(o);
  }
  mx_release(ei);
  mx_release(ri);
  mx_release(ix);
  mx_release(a);
}

static void test_take_along_axis(void) {
  int64_t shape[2] = {2, 3}, is[2] = {2, 2};
  double x[6] = {10, 11, 12, 20, 21, 22};
  int64_t idx[4] = {2, 0, 1, 1};
  mx_array *a = arr(MX_F64, 2, shape, x), *ix = arr(MX_S64, 2, is, idx), *o = NULL;
  o = run(mx_take_along_axis(a, ix, 1, &o), &o, "take_along_axis");
  if (o) {
    double want[4] = {12, 10, 21, 21};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "take_along_axis axis 1");
    mx_release(o);
  }
  int64_t bad[4] = {0, 3, 0, 0};
  mx_array *bi = arr(MX_S64, 2, is, bad), *bo = NULL;
  mx_status st = mx_take_along_axis(a, bi, 1, &bo);
  if (st == MX_OK) st = mx_eval(&bo, 1);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[take_along_axis]"), "take_along_axis out of bounds (%d)", st);
  if (bo) mx_release(bo);
  mx_release(bi);
  mx_release(ix);
  mx_release(a);
}

static void test_gather(void) {
  int64_t shape[3] = {3, 4, 2};
  int32_t x[24];
  for (int i = 0; i < 24; i++) x[i] = i;
  mx_array *a = arr(MX_S32, 3, shape, x);
  /* k = 2: each index row picks a [2]-vector */
  int64_t is[2] = {3, 2}, idx[6] = {2, 1, 0, 3, 2, 1};
  mx_array *ix = arr(MX_S64, 2, is, idx), *o = NULL;
  o = run(mx_gather(a, ix, &o), &o, "gather");
  if (o) {
    int32_t want[6] = {18, 19, 6, 7, 18, 19};
    CHECK(o->ndim == 2 && o->shape[0] == 3 && o->shape[1] == 2 && memcmp(mx_data(o), want, sizeof want) == 0,
          "gather k=2");
    mx_release(o);
  }
  /* k = 3 with batch indices [2, 1, 3]: scalars */
  int64_t is3[3] = {2, 1, 3}, idx3[6] = {1, 2, 1, 0, 0, 0};
  mx_array *ix3 = arr(MX_S64, 3, is3, idx3);
  o = NULL;
  o = run(mx_gather(a, ix3, &o), &o, "gather k=3");
  if (o) {
    int32_t want[2] = {13, 0};
    CHECK(o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 1 && memcmp(mx_data(o), want, sizeof want) == 0,
          "gather k=3");
    mx_release(o);
  }
  int64_t bad[2] = {1, 4};
  int64_t bs[2] = {1, 2};
  mx_array *bi = arr(MX_S64, 2, bs, bad), *bo = NULL;
  mx_status st = mx_gather(a, bi, &bo);
  if (st == MX_OK) st = mx_eval(&bo, 1);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[gather]") && strstr(mx_last_error(), "axis 1"),
        "gather out of bounds (%d: %s)", st, mx_last_error());
  if (bo) mx_release(bo);
  mx_release(bi);
  mx_release(ix3);
  mx_release(ix);
  mx_release(a);
}

static void test_indexed(void) {
  int64_t shape[2] = {4, 2}, is[2] = {3, 1}, us[2] = {3, 2};
  float x[8] = {0, 0, 0, 0, 0, 0, 100, 100};
  int64_t idx[3] = {1, 1, 3};
  float up[6] = {1, 2, 3, 4, 5, 6};
  mx_array *a = arr(MX_F32, 2, shape, x), *ix = arr(MX_S64, 2, is, idx), *u = arr(MX_F32, 2, us, up), *o = NULL;
  o = run(mx_indexed_add(a, ix, u, &o), &o, "indexed_add");
  if (o) {
    float want[8] = {0, 0, 4, 6, 0, 0, 105, 106};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "indexed_add with duplicate indices");
    mx_release(o);
  }
  o = NULL;
  o = run(mx_indexed_put(a, ix, u, &o), &o, "indexed_put");
  if (o) {
    float want[8] = {0, 0, 3, 4, 0, 0, 5, 6};
    CHECK(memcmp(mx_data(o), want, sizeof want) == 0, "indexed_put: last write wins");
    mx_release(o);
  }
  /* the input is unchanged */
  CHECK(memcmp(mx_data(a), x, sizeof x) == 0, "indexed ops leave the input alone");

  /* s8 adds wrap; k = 2 addresses single elements */
  int64_t s8s[1] = {3}, i2s[2] = {2, 1}, u8s[1] = {2};
  int8_t s8[3] = {127, -128, 0}, s8u[2] = {1, -1};
  int64_t i2[2] = {0, 1};
  mx_array *b = arr(MX_S8, 1, s8s, s8), *bi = arr(MX_S64, 2, i2s, i2), *bu = arr(MX_S8, 1, u8s, s8u);
  o = NULL;
  o = run(mx_indexed_add(b, bi, bu, &o), &o, "indexed_add s8");
  if (o) {
    int8_t want[3] = {-128, 127, 0};
    CHECK(o->dtype == MX_S8 && memcmp(mx_data(o), want, sizeof want) == 0, "indexed_add s8 wraps");
    mx_release(o);
  }
  int64_t badi[2] = {0, 3};
  mx_array *bad = arr(MX_S64, 2, i2s, badi), *bo = NULL;
  mx_status st = mx_indexed_add(b, bad, bu, &bo);
  if (st == MX_OK) st = mx_eval(&bo, 1);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[indexed_add]"), "indexed_add out of bounds (%d: %s)", st,
        mx_last_error());
  if (bo) mx_release(bo);
  mx_release(bad);
  mx_release(b);
  mx_release(bi);
  mx_release(bu);
  mx_release(a);
  mx_release(ix);
  mx_release(u);
}

/* ---- matmul --------------------------------------------------------------------------- */

/* out[..., m, n] against a naive loop with numpy batch broadcasting. */
static int check_matmul(mx_dtype t, int an, const int64_t *as, int bn, const int64_t *bs, const char *what) {
  int64_t na = numel(an, as), nb = numel(bn, bs);
  int64_t m = as[an - 2], k = as[an - 1], n = bs[bn - 1];
  float *af = malloc(sizeof(float) * (size_t)(na + 1)), *bf = malloc(sizeof(float) * (size_t)(nb + 1));
  fill_f32(af, na, 1);
  fill_f32(bf, nb, 2);
  int es = mx_dtype_size(t);
  char *ab = malloc((size_t)(na + 1) * es), *bb = malloc((size_t)(nb + 1) * es);
  for (int64_t i = 0; i < na; i++) {
    if (t == MX_F32) ((float *)ab)[i] = af[i];
    if (t == MX_F64) ((double *)ab)[i] = af[i];
    if (t == MX_S32) ((int32_t *)ab)[i] = (int32_t)af[i];
  }
  for (int64_t i = 0; i < nb; i++) {
    if (t == MX_F32) ((float *)bb)[i] = bf[i];
    if (t == MX_F64) ((double *)bb)[i] = bf[i];
    if (t == MX_S32) ((int32_t *)bb)[i] = (int32_t)bf[i];
  }
  mx_array *a = arr(t, an, as, ab), *b = arr(t, bn, bs, bb), *o = NULL;
  o = run(mx_matmul(a, b, &o), &o, what);
  int ok = 0;
  if (o) {
    int r = an > bn ? an : bn, nbat = r - 2;
    int64_t os[MX_MAX_RANK];
    for (int d = 0; d < nbat; d++) {
      int i = an - r + d, j = bn - r + d;
      int64_t x = i >= 0 ? as[i] : 1, y = j >= 0 ? bs[j] : 1;
      os[d] = x == 1 ? y : x;
    }
    os[nbat] = m;
    os[nbat + 1] = n;
    ok = same_shape(o, r, os) && (mx_dtype)o->dtype == t;
    int64_t batch = numel(nbat, os);
    for (int64_t bi = 0; ok && bi < batch; bi++) {
      /* batch offsets of a and b */
      int64_t rem = bi, ao = 0, bo = 0, sa = 1, sb = 1;
      for (int d = nbat - 1; d >= 0; d--) {
        int64_t c = rem % os[d];
        rem /= os[d];
        int i = an - r + d, j = bn - r + d;
        if (i >= 0) {
          if (as[i] != 1) ao += c * sa;
          sa *= as[i];
        }
        if (j >= 0) {
          if (bs[j] != 1) bo += c * sb;
          sb *= bs[j];
        }
      }
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
          double s = 0;
          for (int64_t p = 0; p < k; p++) s += (double)af[ao * m * k + i * k + p] * bf[bo * k * n + p * n + j];
          int64_t e = (bi * m + i) * n + j;
          double got = t == MX_F32 ? ((float *)mx_data(o))[e] : t == MX_F64 ? ((double *)mx_data(o))[e]
                                                                             : ((int32_t *)mx_data(o))[e];
          if (fabs(got - s) > 1e-3 * (1 + fabs(s))) ok = 0;
        }
    }
    mx_release(o);
  }
  CHECK(ok, "matmul %s (%s)", what, mx_dtype_name(t));
  mx_release(a);
  mx_release(b);
  free(af);
  free(bf);
  free(ab);
  free(bb);
  return ok;
}

static void test_matmul(void) {
  mx_dtype types[3] = {MX_F32, MX_F64, MX_S32};
  for (int t = 0; t < 3; t++) {
    int64_t a1[4] = {2, 1, 3, 4}, b1[3] = {3, 4, 5};
    check_matmul(types[t], 4, a1, 3, b1, "batched broadcast [2,1,3,4] @ [3,4,5]");
    int64_t a2[2] = {3, 4}, b2[3] = {2, 4, 5};
    check_matmul(types[t], 2, a2, 3, b2, "[3,4] @ [2,4,5]");
    int64_t a3[3] = {3, 4, 6}, b3[2] = {6, 5};
    check_matmul(types[t], 3, a3, 2, b3, "[3,4,6] @ [6,5] (one folded product)");
    int64_t a4[2] = {1, 7}, b4[2] = {7, 9};
    check_matmul(types[t], 2, a4, 2, b4, "row vector");
    int64_t a5[2] = {9, 7}, b5[2] = {7, 1};
    check_matmul(types[t], 2, a5, 2, b5, "column vector");
    int64_t a6[2] = {70, 130}, b6[2] = {130, 90};
    check_matmul(types[t], 2, a6, 2, b6, "[70,130] @ [130,90]");
  }
  /* zero sizes: k = 0 gives zeros, m = 0 or n = 0 gives an empty result */
  int64_t a7[2] = {3, 0}, b7[2] = {0, 2};
  check_matmul(MX_F32, 2, a7, 2, b7, "k = 0");
  check_matmul(MX_S32, 2, a7, 2, b7, "k = 0 int");
  int64_t a8[2] = {0, 3}, b8[2] = {3, 4};
  check_matmul(MX_F64, 2, a8, 2, b8, "m = 0");
  int64_t a9[3] = {2, 3, 4}, b9[3] = {2, 4, 0};
  check_matmul(MX_F32, 3, a9, 3, b9, "n = 0");
  int64_t a10[3] = {0, 3, 4}, b10[2] = {4, 2};
  check_matmul(MX_F32, 3, a10, 2, b10, "batch 0");

  /* s32 products wrap */
  int64_t s[2] = {1, 1};
  int32_t x = 65536, y = 65536 + 3;
  mx_array *a = arr(MX_S32, 2, s, &x), *b = arr(MX_S32, 2, s, &y), *o = NULL;
  o = run(mx_matmul(a, b, &o), &o, "matmul s32 wrap");
  if (o) {
    CHECK(*(int32_t *)mx_data(o) == (int32_t)(uint32_t)(65536u * 65539u), "matmul s32 wraps");
    mx_release(o);
  }
  mx_release(a);
  mx_release(b);
}

/* ---- zero-size shape ops ------------------------------------------------------------- */

static void test_zero_size(void) {
  int64_t shape[3] = {0, 3, 2};
  mx_array *a = arr(MX_F32, 3, shape, NULL), *o = NULL;
  int perm[3] = {2, 0, 1};
  o = run(mx_transpose(a, perm, &o), &o, "transpose empty");
  if (o) {
    CHECK(o->size == 0 && o->shape[0] == 2 && o->shape[1] == 0 && o->shape[2] == 3, "transpose of an empty array");
    mx_release(o);
  }
  int64_t bs[4] = {5, 0, 3, 2};
  o = NULL;
  o = run(mx_broadcast_to(a, 4, bs, &o), &o, "broadcast empty");
  if (o) {
    CHECK(o->size == 0, "broadcast of an empty array");
    mx_release(o);
  }
  int axes[1] = {0};
  o = NULL;
  o = run(mx_reverse(a, axes, 1, &o), &o, "reverse empty");
  if (o) {
    CHECK(o->size == 0, "reverse of an empty array");
    mx_release(o);
  }
  float pv = 7;
  mx_array *v = arr(MX_F32, 0, NULL, &pv);
  int64_t lo[3] = {1, 0, 0}, hi[3] = {0, 0, 0};
  o = NULL;
  o = run(mx_pad(a, v, lo, hi, NULL, &o), &o, "pad empty");
  if (o) {
    const float *y = mx_data(o);
    int bad = 0;
    for (int i = 0; i < 6; i++) bad += y[i] != 7;
    CHECK(o->shape[0] == 1 && bad == 0, "pad of an empty array is all pad value");
    mx_release(o);
  }
  /* rank 0 */
  float sv = 3;
  mx_array *s = arr(MX_F32, 0, NULL, &sv);
  o = NULL;
  o = run(mx_transpose(s, NULL, &o), &o, "transpose scalar");
  if (o) {
    CHECK(o->ndim == 0 && *(float *)mx_data(o) == 3, "transpose of a scalar");
    mx_release(o);
  }
  mx_release(s);
  mx_release(v);
  mx_release(a);
}

int main(void) {
  test_transpose_3d();
  test_transpose_large();
  test_broadcast();
  test_slice();
  test_pad();
  test_reverse_concat();
  test_take();
  test_take_along_axis();
  test_gather();
  test_indexed();
  test_matmul();
  test_zero_size();
  CHECK(mx_live_arrays() == 0, "all arrays released (%lld live)", (long long)mx_live_arrays());
  return test_summary("test_index: ");
}
