/* test_conv.c: mx_conv (and its gradients through mx_vjp), mx_window and mx_window_scatter end to end
 * (constructor, pad, kernel, eval) against direct double loops over random configurations, and their error paths. */
#include "test_util.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(xorshift64(&rng) % (uint64_t)(hi - lo + 1)); }

/* x [N, C, L0(, L1)]: the offset of the padded, input-dilated position pos, or -1 for padding and holes. */
static int64_t xoff(const int64_t *xs, int S, int64_t n, int64_t c, const int64_t *pos, const int64_t *lo,
                    const int64_t *idil) {
  int64_t off = (n * xs[1] + c);
  for (int d = 0; d < S; d++) {
    int64_t p = pos[d] - lo[d];
    if (p < 0 || p % idil[d] || p / idil[d] >= xs[2 + d]) return -1;
    off = off * xs[2 + d] + p / idil[d];
  }
  return off;
}

/* Largest |a[i] - want[i]| over n elements of a. */
static double worst_error(const mx_array *a, const double *want, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(value_at(a, i) - want[i]);
    worst = e > worst ? e : worst;
  }
  return worst;
}

static void test_conv_random(int S, int trial) {
  int64_t xs[4], ws[4], str[2], lo[2], hi[2], idil[2], kdil[2];
  int64_t fg = 1, bg = 1;
  int grouping = (int)pick(0, 2);
  int64_t G = pick(1, 3);
  if (grouping == 1) fg = G;
  if (grouping == 2) bg = G;
  xs[0] = pick(1, 2) * bg;
  int64_t Cg = pick(1, 3);
  xs[1] = Cg * fg;
  ws[0] = pick(1, 2) * G;
  ws[1] = Cg;
  for (int d = 0; d < S; d++) {
    xs[2 + d] = pick(1, 7);
    ws[2 + d] = pick(1, 3);
    str[d] = pick(1, 3);
    idil[d] = pick(1, 2);
    kdil[d] = pick(1, 2);
    lo[d] = pick(-1, 2);
    hi[d] = pick(-1, 2);
    int64_t len = (xs[2 + d] - 1) * idil[d] + 1 + lo[d] + hi[d];
    if (len < 0) lo[d] = hi[d] = 0;
  }
  int r = S + 2;
  int64_t nx = numel(r, xs), nw = numel(r, ws);
  double *xv = malloc(sizeof(double) * (size_t)nx), *wv = malloc(sizeof(double) * (size_t)nw);
  for (int64_t i = 0; i < nx; i++) xv[i] = uniform();
  for (int64_t i = 0; i < nw; i++) wv[i] = uniform();
  mx_array *x0 = arr_values(MX_F64, r, xs, xv), *w0 = arr_values(MX_F64, r, ws, wv), *y = NULL, *x = NULL, *w = NULL;
  /* traced, so the vjp (conv_input_grad, conv_kernel_grad) is checked against the same loops */
  CHECK(mx_trace_input(x0, &x) == MX_OK && mx_trace_input(w0, &w) == MX_OK, "trace inputs");
  mx_status st = mx_conv(x, w, str, lo, hi, idil, kdil, fg, bg, &y);
  char what[96];
  snprintf(what, sizeof what, "conv %dd trial %d (fg %lld, bg %lld)", S, trial, (long long)fg, (long long)bg);
  y = run_check(st, &y, what);
  if (y) {
    /* the direct sum over the padded, dilated input */
    int64_t os[2] = {1, 1}, Np = xs[0] / bg, O = ws[0];
    for (int d = 0; d < S; d++) {
      int64_t len = (xs[2 + d] - 1) * idil[d] + 1 + lo[d] + hi[d], span = (ws[2 + d] - 1) * kdil[d] + 1;
      os[d] = len >= span ? (len - span) / str[d] + 1 : 0;
    }
    int64_t want_shape[4] = {Np, O, os[0], os[1]};
    CHECK(same_shape(y, r, want_shape), "%s: shape", what);
    double worst = 0, *cv = malloc(sizeof(double) * (size_t)(y->size + 1));
    double *gxv = calloc((size_t)nx + 1, sizeof(double)), *gwv = calloc((size_t)nw + 1, sizeof(double));
    CHECK(cv && gxv && gwv, "%s: out of memory", what);
    for (int64_t i = 0; cv && i < y->size; i++) cv[i] = uniform();
    for (int64_t n = 0; n < Np && cv && gxv && gwv && same_shape(y, r, want_shape); n++)
      for (int64_t o = 0; o < O; o++)
        for (int64_t p0 = 0; p0 < os[0]; p0++)
          for (int64_t p1 = 0; p1 < (S > 1 ? os[1] : 1); p1++) {
            int64_t src = bg > 1 ? (o / (O / bg)) * Np + n : n, c0 = bg > 1 ? 0 : (o / (O / fg)) * Cg;
            double acc = 0;
            int64_t i = ((n * O + o) * os[0] + p0) * (S > 1 ? os[1] : 1) + p1;
            for (int64_t c = 0; c < Cg; c++)
              for (int64_t k0 = 0; k0 < ws[2]; k0++)
                for (int64_t k1 = 0; k1 < (S > 1 ? ws[3] : 1); k1++) {
                  int64_t pos[2] = {p0 * str[0] + k0 * kdil[0], S > 1 ? p1 * str[1] + k1 * kdil[1] : 0};
                  int64_t wi = ((o * Cg + c) * ws[2] + k0) * (S > 1 ? ws[3] : 1) + k1;
                  int64_t xi = xoff(xs, S, src, c0 + c, pos, lo, idil);
                  acc += wv[wi] * (xi < 0 ? 0 : xv[xi]);
                  /* sum(y * cot)'s gradients: each product's partner times the cotangent */
                  if (xi >= 0) gxv[xi] += cv[i] * wv[wi], gwv[wi] += cv[i] * xv[xi];
                }
            double e = fabs(value_at(y, i) - acc);
            worst = e > worst ? e : worst;
          }
    CHECK(worst < 1e-12, "%s: max error %g", what, worst);
    mx_array *cot = cv ? arr_values(MX_F64, r, y->shape, cv) : NULL, *grads[2] = {0};
    if (cot && gxv && gwv && mx_vjp(&y, &cot, 1, (mx_array *[]){x, w}, 2, grads) == MX_OK &&
        mx_eval(grads, 2) == MX_OK) {
      CHECK(same_shape(grads[0], r, xs) && worst_error(grads[0], gxv, nx) < 1e-12, "%s: x's gradient", what);
      CHECK(same_shape(grads[1], r, ws) && worst_error(grads[1], gwv, nw) < 1e-12, "%s: w's gradient", what);
    } else {
      CHECK(0, "%s: vjp failed: %s", what, mx_last_error());
    }
    mx_release(grads[0]);
    mx_release(grads[1]);
    mx_release(cot);
    free(cv);
    free(gxv);
    free(gwv);
    mx_release(y);
  }
  mx_release(x);
  mx_release(w);
  mx_release(x0);
  mx_release(w0);
  free(xv);
  free(wv);
}

/* A 3x3 conv whose columns need two 8 MB blocks (f32; 9604 positions, 4854 a block, split mid-row). */
static void test_conv_blocks(void) {
  int64_t xs[4] = {1, 48, 100, 100}, ws[4] = {3, 48, 3, 3}, one[2] = {1, 1}, zero[2] = {0, 0};
  int64_t nx = numel(4, xs), nw = numel(4, ws);
  double *xv = malloc(sizeof(double) * (size_t)nx), *wv = malloc(sizeof(double) * (size_t)nw);
  for (int64_t i = 0; i < nx; i++) xv[i] = (double)(float)uniform();
  for (int64_t i = 0; i < nw; i++) wv[i] = (double)(float)uniform();
  mx_array *x = arr_values(MX_F32, 4, xs, xv), *w = arr_values(MX_F32, 4, ws, wv), *y = NULL;
  y = run_check(mx_conv(x, w, one, zero, zero, one, one, 1, 1, &y), &y, "conv blocks");
  if (y) {
    double worst = 0;
    for (int64_t o = 0; o < 3; o++)
      for (int64_t i = 0; i < 98; i += 7)
        for (int64_t j = 0; j < 98; j++) {
          double acc = 0, mag = 0;
          for (int64_t c = 0; c < 48; c++)
            for (int64_t a = 0; a < 3; a++)
              for (int64_t b = 0; b < 3; b++) {
                double t = wv[((o * 48 + c) * 3 + a) * 3 + b] * xv[(c * 100 + i + a) * 100 + j + b];
                acc += t;
                mag += fabs(t);
              }
          double e = fabs(value_at(y, (o * 98 + i) * 98 + j) - acc) / (mag > 0 ? mag : 1);
          worst = e > worst ? e : worst;
        }
    CHECK(worst < 433 * 0x1p-24, "conv blocks: max relative error %g", worst); /* gamma(433) */
    mx_release(y);
  }
  mx_release(x);
  mx_release(w);
  free(xv);
  free(wv);
}

static void test_windows(void) {
  int64_t shape[2] = {5, 6};
  double v[30];
  for (int i = 0; i < 30; i++) v[i] = (double)((i * 7) % 11) - 5; /* ties on purpose */
  mx_array *x = arr_values(MX_F64, 2, shape, v);
  int64_t win[2] = {2, 3}, str[2] = {2, 1}, lo[2] = {1, 0}, hi[2] = {0, 2}, dil[2] = {1, 2};
  mx_op ops[4] = {MX_OP_WINDOW_SUM, MX_OP_WINDOW_PRODUCT, MX_OP_WINDOW_MAX, MX_OP_WINDOW_MIN};
  for (int k = 0; k < 4; k++) {
    mx_array *y = NULL;
    y = run_check(mx_window(ops[k], x, win, str, lo, hi, dil, &y), &y, mx_ops[ops[k]].name);
    if (!y) continue;
    /* padded [6, 8], spans [2, 5]: out [3, 4] */
    CHECK(y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 4, "%s: shape", mx_ops[ops[k]].name);
    int bad = 0;
    for (int64_t i = 0; i < 3 && y->size == 12; i++)
      for (int64_t j = 0; j < 4; j++) {
        double acc = k == 1 ? 1 : k == 2 ? -INFINITY : k == 3 ? INFINITY : 0;
        for (int64_t a = 0; a < 2; a++)
          for (int64_t b = 0; b < 3; b++) {
            int64_t p = i * 2 + a - 1, q = j + b * 2;
            double e = p >= 0 && p < 5 && q < 6 ? v[p * 6 + q] : (k == 1 ? 1 : k == 2 ? -INFINITY : k == 3 ? INFINITY : 0);
            acc = k == 0 ? acc + e : k == 1 ? acc * e : k == 2 ? fmax(acc, e) : fmin(acc, e);
          }
        bad += value_at(y, i * 4 + j) != acc;
      }
    CHECK(bad == 0, "%s: %d values differ", mx_ops[ops[k]].name, bad);
    mx_release(y);
  }
  /* scatter: overlapping windows, ties go to the last */
  int64_t w2[2] = {2, 2}, s1[2] = {1, 1}, z[2] = {0, 0};
  int64_t sshape[2] = {4, 5};
  double src[20];
  for (int i = 0; i < 20; i++) src[i] = i + 1;
  mx_array *s = arr_values(MX_F64, 2, sshape, src), *init = NULL, *y = NULL;
  mx_full(MX_F64, 0, NULL, 0.5, &init);
  y = run_check(mx_window_scatter(MX_OP_WINDOW_SCATTER_MAX, x, s, init, w2, s1, z, z, &y), &y, "window_scatter_max");
  if (y) {
    double want[30];
    for (int i = 0; i < 30; i++) want[i] = 0.5;
    for (int64_t i = 0; i < 4; i++)
      for (int64_t j = 0; j < 5; j++) {
        int64_t sel = i * 6 + j;
        for (int64_t a = 0; a < 2; a++)
          for (int64_t b = 0; b < 2; b++)
            if (v[(i + a) * 6 + j + b] >= v[sel]) sel = (i + a) * 6 + j + b;
        want[sel] += src[i * 5 + j];
      }
    int bad = 0;
    for (int i = 0; i < 30; i++) bad += value_at(y, i) != want[i];
    CHECK(bad == 0, "window_scatter_max: %d values differ", bad);
    mx_release(y);
  }
  mx_release(s);
  mx_release(init);
  mx_release(x);
}

static void test_errors(void) {
  int64_t xs[3] = {1, 2, 4}, ws[3] = {2, 2, 2}, one[1] = {1}, zero[1] = {0}, bad[1] = {0}, crop[1] = {-9};
  double v[8] = {0};
  mx_array *x = arr_values(MX_F32, 3, xs, v), *w = arr_values(MX_F32, 3, ws, v), *y = NULL;
  CHECK(mx_conv(x, w, bad, zero, zero, one, one, 1, 1, &y) == MX_EINVAL && strstr(mx_last_error(), "[conv] strides"),
        "zero stride: %s", mx_last_error());
  CHECK(mx_conv(x, w, one, zero, zero, one, one, 2, 1, &y) == MX_EINVAL && strstr(mx_last_error(), "feature_group_size"),
        "groups: %s", mx_last_error());
  CHECK(mx_conv(x, w, one, crop, zero, one, one, 1, 1, &y) == MX_EINVAL && strstr(mx_last_error(), "crops"),
        "crop: %s", mx_last_error());
  CHECK(mx_conv(x, x, one, zero, zero, one, one, 1, 2, &y) == MX_EINVAL, "batch groups: %s", mx_last_error());
  int64_t win[3] = {1, 1, 1}, huge[3] = {1, 1, (int64_t)1 << 50}, s3[3] = {1, 1, 1}, z3[3] = {0, 0, 0};
  CHECK(mx_window(MX_OP_WINDOW_SUM, x, huge, s3, z3, z3, s3, &y) == MX_EINVAL, "huge window: %s", mx_last_error());
  CHECK(mx_window(MX_OP_ADD, x, win, s3, z3, z3, s3, &y) == MX_EINVAL, "wrong op: %s", mx_last_error());
  CHECK(mx_window_scatter(MX_OP_WINDOW_SCATTER_MIN, x, w, x, win, s3, z3, z3, &y) == MX_EINVAL,
        "non-scalar init: %s", mx_last_error());
  mx_release(x);
  mx_release(w);
}

int main(void) {
  for (int t = 0; t < 40; t++) test_conv_random(1, t);
  for (int t = 0; t < 40; t++) test_conv_random(2, t);
  test_conv_blocks();
  test_windows();
  test_errors();
  return test_summary("test_conv: ");
}
