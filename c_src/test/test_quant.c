/* test_quant.c: mx_quantize / mx_dequantize / mx_quantized_matmul end to end: the round trip's
 * bound for every bits x group size, quantized_matmul (direct and BLAS paths, both transposes,
 * f32 and f64) against a double loop over the dequantized weight, and the error paths. */
#include <math.h>

#include "test_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }

/* Within half a step of its level inside the group's range, else the distance to the range's
 * end (MLX's rescale may shrink the range), plus 4u of the magnitudes for the roundings. */
static void test_round_trip(int bits, int gs) {
  int64_t shape[2] = {3, 2 * gs};
  int64_t n = numel(2, shape);
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = 2.5 * uniform() - 0.5;
  mx_array *w = arr_values(MX_F32, 2, shape, v), *q = NULL, *s = NULL, *b = NULL, *d = NULL;
  char what[64];
  snprintf(what, sizeof what, "round trip bits %d group %d", bits, gs);
  mx_status st = mx_quantize(w, gs, bits, &q, &s, &b);
  if (!st) st = mx_dequantize(q, s, b, gs, bits, &d);
  d = run_check(st, &d, what);
  if (d && run(MX_OK, &s, what) && run(MX_OK, &b, what)) {
    int bad = 0, levels = (1 << bits) - 1;
    for (int64_t i = 0; i < n && !bad; i++) {
      double x = (float)v[i], y = value_at(d, i), sc = value_at(s, i / gs), bi = value_at(b, i / gs);
      double lo = fmin(bi, bi + levels * sc), hi = fmax(bi, bi + levels * sc);
      double outside = fmax(fmax(lo - x, x - hi), 0), slack = 4 * 0x1p-24 * (fabs(x) + fabs(sc) * levels + fabs(bi));
      bad = fabs(x - y) > fmax(fabs(sc) / 2, outside) + slack;
      CHECK(!bad, "%s: element %lld %.9g came back as %.9g (scale %.9g, bias %.9g)", what, (long long)i, x, y, sc, bi);
    }
  }
  mx_release(w);
  mx_release(q);
  mx_release(s);
  mx_release(b);
  mx_release(d);
  free(v);
}

/* x [m, k] against W (rows x cols) quantized; checked against sum x * W~ in double with
 * matmul's bound γ(k + 5)·Σ|x||W~| (the direct loop leaves W~ unrounded: 2 roundings more). */
static void test_qmm(mx_dtype t, int bits, int gs, int transpose, int64_t m, int64_t other, int64_t k) {
  int64_t rows = transpose ? other : k, cols = transpose ? k : other;
  int64_t ws[2] = {rows, cols}, xs[2] = {m, k};
  double *wv = malloc(sizeof(double) * (size_t)(rows * cols)), *xv = malloc(sizeof(double) * (size_t)(m * k));
  for (int64_t i = 0; i < rows * cols; i++) wv[i] = uniform();
  for (int64_t i = 0; i < m * k; i++) xv[i] = uniform();
  mx_array *w = arr_values(t, 2, ws, wv), *x = arr_values(t, 2, xs, xv), *q = NULL, *s = NULL, *b = NULL, *d = NULL,
           *y = NULL;
  char what[96];
  snprintf(what, sizeof what, "quantized_matmul %s bits %d group %d transpose %d m %lld", mx_dtype_name(t), bits, gs,
           transpose, (long long)m);
  mx_status st = mx_quantize(w, gs, bits, &q, &s, &b);
  if (!st) st = mx_dequantize(q, s, b, gs, bits, &d);
  if (!st) st = mx_quantized_matmul(x, q, s, b, transpose, gs, bits, &y);
  y = run_check(st, &y, what);
  if (y && run(MX_OK, &d, what)) {
    int64_t n = other;
    double u = t == MX_F32 ? 0x1p-24 : 0x1p-53, gamma = (k + 5) * u / (1 - (k + 5) * u);
    int bad = 0;
    for (int64_t i = 0; i < m && !bad; i++)
      for (int64_t j = 0; j < n && !bad; j++) {
        double sum = 0, mag = 0;
        for (int64_t p = 0; p < k; p++) {
          double wd = value_at(d, transpose ? j * k + p : p * n + j), xd = value_at(x, i * k + p);
          sum += xd * wd;
          mag += fabs(xd * wd);
        }
        double got = value_at(y, i * n + j);
        bad = fabs(got - sum) > gamma * mag * 1.01 + 2 * u * fabs(sum);
        CHECK(!bad, "%s: out[%lld, %lld] %.17g vs %.17g", what, (long long)i, (long long)j, got, sum);
      }
  }
  mx_release(w);
  mx_release(x);
  mx_release(q);
  mx_release(s);
  mx_release(b);
  mx_release(d);
  mx_release(y);
  free(wv);
  free(xv);
}

/* Batched weights: w [nw, rows, cols] against x [nx, 1, m, k] -> [nx, nw, m, n], each product
 * checked as test_qmm does against its dequantized matrix; then x's batch meets w's (broadcast). */
static void test_qmm_batched(mx_dtype t, int bits, int gs, int transpose, int64_t nx, int64_t nw, int64_t m,
                             int64_t other, int64_t k) {
  int64_t rows = transpose ? other : k, cols = transpose ? k : other, n = other;
  int64_t ws[3] = {nw, rows, cols}, xs[4] = {nx, 1, m, k};
  double *wv = malloc(sizeof(double) * (size_t)(nw * rows * cols)), *xv = malloc(sizeof(double) * (size_t)(nx * m * k));
  for (int64_t i = 0; i < nw * rows * cols; i++) wv[i] = uniform();
  for (int64_t i = 0; i < nx * m * k; i++) xv[i] = uniform();
  mx_array *w = arr_values(t, 3, ws, wv), *x = arr_values(t, 4, xs, xv), *q = NULL, *s = NULL, *b = NULL, *d = NULL,
           *y = NULL;
  char what[112];
  snprintf(what, sizeof what, "batched quantized_matmul %s bits %d group %d transpose %d m %lld", mx_dtype_name(t),
           bits, gs, transpose, (long long)m);
  mx_status st = mx_quantize(w, gs, bits, &q, &s, &b);
  if (!st) st = mx_dequantize(q, s, b, gs, bits, &d);
  if (!st) st = mx_quantized_matmul(x, q, s, b, transpose, gs, bits, &y);
  y = run_check(st, &y, what);
  if (y && run(MX_OK, &d, what)) {
    CHECK(y->ndim == 4 && y->shape[0] == nx && y->shape[1] == nw && y->shape[2] == m && y->shape[3] == n,
          "%s: shape", what);
    double u = t == MX_F32 ? 0x1p-24 : 0x1p-53, gamma = (k + 5) * u / (1 - (k + 5) * u);
    int bad = 0;
    for (int64_t a = 0; a < nx && !bad; a++)
      for (int64_t c = 0; c < nw && !bad; c++)
        for (int64_t i = 0; i < m && !bad; i++)
          for (int64_t j = 0; j < n && !bad; j++) {
            double sum = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
              double wd = value_at(d, c * rows * cols + (transpose ? j * k + p : p * n + j));
              double xd = value_at(x, (a * m + i) * k + p);
              sum += xd * wd;
              mag += fabs(xd * wd);
            }
            double got = value_at(y, ((a * nw + c) * m + i) * n + j);
            bad = fabs(got - sum) > gamma * mag * 1.01 + 2 * u * fabs(sum);
            CHECK(!bad, "%s: out[%lld, %lld, %lld, %lld] %.17g vs %.17g", what, (long long)a, (long long)c,
                  (long long)i, (long long)j, got, sum);
          }
  }
  mx_release(w);
  mx_release(x);
  mx_release(q);
  mx_release(s);
  mx_release(b);
  mx_release(d);
  mx_release(y);
  free(wv);
  free(xv);
}

static void test_errors(void) {
  int64_t s2[2] = {2, 64}, s96[2] = {2, 96}, x2[2] = {1, 64};
  double v[192] = {0};
  mx_array *w = arr_values(MX_F32, 2, s2, v), *w96 = arr_values(MX_F32, 2, s96, v), *wi = arr_values(MX_S32, 2, s2, v);
  mx_array *q = NULL, *s = NULL, *b = NULL, *y = NULL;
  CHECK(mx_quantize(w, 64, 3, &q, &s, &b) == MX_EINVAL && strstr(mx_last_error(), "[quantize] bits"), "bits 3: %s",
        mx_last_error());
  CHECK(mx_quantize(w, 16, 4, &q, &s, &b) == MX_EINVAL && strstr(mx_last_error(), "group_size"), "group 16: %s",
        mx_last_error());
  CHECK(mx_quantize(wi, 64, 4, &q, &s, &b) == MX_EINVAL && strstr(mx_last_error(), "f32 or f64"), "s32 w: %s",
        mx_last_error());
  CHECK(mx_quantize(w96, 64, 4, &q, &s, &b) == MX_EINVAL && strstr(mx_last_error(), "multiple of group_size"),
        "96 / 64: %s", mx_last_error());
  CHECK(mx_quantize(w, 64, 4, &q, &s, &b) == MX_OK, "quantize: %s", mx_last_error());
  mx_array *x = arr_values(MX_F64, 2, x2, v), *xf = arr_values(MX_F32, 2, x2, v);
  CHECK(mx_quantized_matmul(x, q, s, b, 1, 64, 4, &y) == MX_EINVAL && strstr(mx_last_error(), "dtype"),
        "x f64 against f32 scales: %s", mx_last_error());
  CHECK(mx_quantized_matmul(xf, q, s, b, 0, 64, 4, &y) == MX_EINVAL && strstr(mx_last_error(), "check transpose"),
        "no transpose: %s", mx_last_error());
  CHECK(mx_quantized_matmul(xf, q, s, b, 1, 32, 4, &y) == MX_EINVAL && strstr(mx_last_error(), "do not fit"),
        "wrong group size: %s", mx_last_error());
  {
    static const double zeros[512];
    int64_t w3s[3] = {2, 4, 64}, x3s[3] = {3, 1, 64};
    mx_array *w3 = arr_values(MX_F32, 3, w3s, zeros), *x3 = arr_values(MX_F32, 3, x3s, zeros), *q3 = NULL, *s3 = NULL,
             *b3 = NULL;
    CHECK(mx_quantize(w3, 64, 4, &q3, &s3, &b3) == MX_OK, "quantize w3: %s", mx_last_error());
    CHECK(mx_quantized_matmul(x3, q3, s3, b3, 1, 64, 4, &y) == MX_EINVAL && strstr(mx_last_error(), "do not broadcast"),
          "batches 3 vs 2: %s", mx_last_error());
    mx_release(w3), mx_release(x3), mx_release(q3), mx_release(s3), mx_release(b3);
  }
  CHECK(mx_dequantize(s, s, b, 64, 4, &y) == MX_EINVAL && strstr(mx_last_error(), "must be u32"), "f32 w_q: %s",
        mx_last_error());
  /* a NaN raises at eval, naming the group */
  double nanv[64];
  for (int i = 0; i < 64; i++) nanv[i] = i == 40 ? NAN : 1;
  mx_array *wn = arr_values(MX_F32, 2, x2, nanv), *qn = NULL, *sn = NULL, *bn = NULL;
  CHECK(mx_quantize(wn, 32, 4, &qn, &sn, &bn) == MX_OK, "quantize NaN: %s", mx_last_error());
  CHECK(mx_eval(&sn, 1) == MX_ECOMPUTE && strstr(mx_last_error(), "group 1 of w"), "NaN group: %s", mx_last_error());
  mx_array *all[] = {w, w96, wi, q, s, b, x, xf, wn, qn, sn, bn};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
}

/* The BLAS path's dequantized tile is engine scratch: over the memory limit it fails cleanly,
 * naming the op and the allocator's reason. */
static void test_scratch_limit(void) {
  int64_t ws[2] = {512, 256}, xs[2] = {64, 256};
  double *v = malloc(sizeof(double) * 512 * 256);
  for (int64_t i = 0; i < 512 * 256; i++) v[i] = uniform();
  mx_array *w = arr_values(MX_F32, 2, ws, v), *x = arr_values(MX_F32, 2, xs, v), *q = NULL, *s = NULL, *b = NULL,
           *y = NULL;
  CHECK(mx_quantize(w, 64, 4, &q, &s, &b) == MX_OK, "quantize: %s", mx_last_error());
  mx_array *in[3] = {q, s, b};
  CHECK(mx_eval(in, 3) == MX_OK, "eval quantize: %s", mx_last_error());
  CHECK(mx_quantized_matmul(x, q, s, b, 1, 64, 4, &y) == MX_OK, "build: %s", mx_last_error());
  mx_memory_stats st;
  mx_memory_stats_get(&st);
  mx_memory_set_memory_limit(st.active_bytes + (256 << 10)); /* the 128 KiB output fits, the 512 KiB tile not */
  CHECK(mx_eval(&y, 1) == MX_ENOMEM && strstr(mx_last_error(), "[quantized_matmul] scratch for a dequantized tile") &&
            strstr(mx_last_error(), "memory limit"),
        "tile over the limit: %s", mx_last_error());
  mx_memory_set_memory_limit(-1);
  mx_array *all[] = {w, x, q, s, b, y};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
  free(v);
}

int main(void) {
  int sizes[3] = {32, 64, 128}, widths[3] = {2, 4, 8};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) test_round_trip(widths[j], sizes[i]);
  for (int j = 0; j < 3; j++) {
    test_qmm(MX_F32, widths[j], 32, 1, 1, 40, 128);  /* direct */
    test_qmm(MX_F32, widths[j], 64, 1, 8, 24, 128);  /* direct */
    test_qmm(MX_F32, widths[j], 128, 1, 30, 20, 256); /* BLAS tiles */
    test_qmm(MX_F64, widths[j], 32, 0, 5, 64, 48);   /* no transpose */
  }
  for (int j = 0; j < 3; j++)
    for (int64_t m = 2; m <= 5; m++) test_qmm(MX_F32, widths[j], 32, 1, m, 9, 64); /* 1-4 rows a pass */
  test_qmm(MX_F32, 8, 64, 1, 32, 12, 128);   /* the AVX2 loop's last row count */
  test_qmm(MX_F32, 2, 64, 1, 33, 12, 128);   /* tiles from here */
  test_qmm(MX_F32, 4, 64, 1, 40, 100, 8192); /* tiles of m rows, the last one partial */
  test_qmm_batched(MX_F32, 4, 32, 1, 3, 2, 2, 10, 64);
  test_qmm_batched(MX_F32, 8, 64, 1, 2, 3, 40, 6, 128);
  test_qmm_batched(MX_F64, 2, 32, 0, 2, 2, 3, 64, 16);
  test_qmm(MX_F64, 4, 64, 1, 3, 17, 64);
  test_qmm(MX_F32, 4, 64, 1, 0, 16, 64); /* no rows */
  test_scratch_limit();
  test_errors();
  return test_summary("test_quant: ");
}
