/* test_complex.c: complex dtypes (c64, c128) end to end through the op
 * constructors and mx_eval: promotion, conversions, arithmetic against long
 * double references, reductions over long rows, matmul, the moves, the FFT
 * primitives along middle axes (the gather/scatter path), and the build-time
 * errors. Prints "N passed, M failed".
 *
 * Tolerances: the textbook product and Smith's quotient are within 5u and 14u
 * of |w| normwise (see test/support/reference_case.ex); transforms within
 * 8 eps (3 log2 n + 6) ||y|| (c_src/test/test_fft.c), plus rounding to c64. */
#include <complex.h>

#include "../prim/kernels.h"
#include "test_util.h"

typedef long double _Complex lcx;

static mx_array *cx(mx_dtype t, int ndim, const int64_t *shape, const lcx *v) {
  int64_t n = numel(ndim, shape);
  void *buf = malloc((size_t)(n ? n : 1) * 16);
  for (int64_t i = 0; i < n; i++) {
    if (t == MX_C64) ((float _Complex *)buf)[i] = (float _Complex)v[i];
    else ((double _Complex *)buf)[i] = (double _Complex)v[i];
  }
  mx_array *a = arr(t, ndim, shape, buf);
  free(buf);
  return a;
}

static lcx at(const mx_array *a, int64_t i) {
  return a->dtype == MX_C64 ? (lcx)((const float _Complex *)mx_data(a))[i] : (lcx)((const double _Complex *)mx_data(a))[i];
}

static long double unit_of(mx_dtype t) { return t == MX_C64 ? ldexpl(1, -24) : ldexpl(1, -53); }

/* |got - want| <= k u |want| + abs_tol for every element; releases x. */
static void check_close(const char *what, mx_array *x, mx_dtype t, const lcx *want, int64_t n, long double k,
                        long double abs_tol) {
  if (!x) return;
  CHECK(x->size == n && (mx_dtype)x->dtype == t, "%s: size %ld dtype %s", what, (long)x->size,
        mx_dtype_name((mx_dtype)x->dtype));
  for (int64_t i = 0; i < n && i < x->size && (mx_dtype)x->dtype == t; i++) {
    long double err = cabsl(at(x, i) - want[i]), tol = k * unit_of(t) * cabsl(want[i]) + abs_tol;
    if (!(err <= tol)) {
      CHECK(0, "%s[%ld]: got (%.17Lg, %.17Lg) want (%.17Lg, %.17Lg), |err| %Lg > %Lg", what, (long)i, creall(at(x, i)),
            cimagl(at(x, i)), creall(want[i]), cimagl(want[i]), err, tol);
      mx_release(x);
      return;
    }
  }
  passed++;
  mx_release(x);
}

static lcx rnd(uint64_t *s) {
  long double re = (long double)(xorshift64(s) >> 11) * ldexpl(1, -53) * 2 - 1;
  long double im = (long double)(xorshift64(s) >> 11) * ldexpl(1, -53) * 2 - 1;
  return re + im * I;
}

static void test_types(void) {
  CHECK(mx_dtype_size(MX_C64) == 8 && mx_dtype_size(MX_C128) == 16, "sizes");
  CHECK(mx_is_complex(MX_C64) && !mx_is_float(MX_C64) && !mx_is_complex(MX_F64), "kinds");
  CHECK(mx_dtype_from_name("c128") == MX_C128, "names");
  CHECK(mx_promote(MX_C64, MX_F64) == MX_C128 && mx_promote(MX_F32, MX_C64) == MX_C64 &&
            mx_promote(MX_S64, MX_C64) == MX_C64 && mx_promote(MX_BOOL, MX_C128) == MX_C128 &&
            mx_promote(MX_C64, MX_C128) == MX_C128 && mx_promote(MX_F16, MX_C64) == MX_C64,
        "promotion");
}

static mx_array *cast(mx_array *a, mx_dtype t) {
  mx_array *o = NULL;
  mx_status st = mx_as_type(a, t, &o);
  mx_release(a);
  return run_check(st, &o, "as_type");
}

static void test_conversions(void) {
  int64_t n4[1] = {4};
  lcx v[4] = {1.5L + 2.25L * I, -0.1L + 1e-30L * I, 3 - 1e10L * I, 0.0L + 1.0L * I};
  mx_array *a = cx(MX_C128, 1, n4, v);
  mx_retain(a);
  mx_array *b = cast(cast(a, MX_C64), MX_C128);
  lcx w[4];
  for (int i = 0; i < 4; i++) w[i] = (lcx)(float _Complex)(double _Complex)v[i];
  check_close("c128 -> c64 -> c128", b, MX_C128, w, 4, 0, 0);
  mx_retain(a);
  mx_array *r = cast(a, MX_F32);
  CHECK(r && ((float *)mx_data(r))[0] == 1.5f && ((float *)mx_data(r))[3] == 0.0f, "c128 -> f32 keeps the real part");
  mx_release(r);
  mx_array *p = cast(a, MX_BOOL);
  CHECK(p && !memcmp(mx_data(p), (uint8_t[]){1, 1, 1, 1}, 4), "c128 -> bool: either part nonzero");
  mx_release(p);
  double reals[3] = {2.5, -1, 1e30};
  mx_array *c = cast(arr(MX_F64, 1, (int64_t[]){3}, reals), MX_C64);
  lcx wc[3] = {2.5L, -1, (lcx)(float)1e30};
  check_close("f64 -> c64 (imaginary 0)", c, MX_C64, wc, 3, 0, 0);
  mx_array *f = NULL;
  mx_status st = mx_full(MX_C128, 1, (int64_t[]){3}, -4.5, &f);
  lcx wf[3] = {-4.5L, -4.5L, -4.5L};
  check_close("full c128", run_check(st, &f, "full"), MX_C128, wf, 3, 0, 0);
}

static void test_arithmetic(void) {
  uint64_t s = 17;
  enum { R = 37, C = 41 };
  lcx a[R * C], b[C], prod[R * C], quot[R * C];
  for (int i = 0; i < R * C; i++) a[i] = rnd(&s);
  for (int j = 0; j < C; j++) b[j] = rnd(&s) * (j % 3 == 0 ? 1e3L : 1);
  for (mx_dtype t = MX_C64; t <= MX_C128; t++) {
    lcx ar[R * C], br[C];
    for (int i = 0; i < R * C; i++) ar[i] = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)a[i] : (lcx)(double _Complex)a[i];
    for (int j = 0; j < C; j++) br[j] = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)b[j] : (lcx)(double _Complex)b[j];
    for (int i = 0; i < R * C; i++) prod[i] = ar[i] * br[i % C], quot[i] = ar[i] / br[i % C];
    int64_t sa[2] = {R, C}, sb[1] = {C};
    check_close("multiply [R,C]*[C]", eval_binary(MX_OP_MULTIPLY, cx(t, 2, sa, ar), cx(t, 1, sb, br)), t, prod, R * C, 5, 0);
    check_close("divide [R,C]/[C]", eval_binary(MX_OP_DIVIDE, cx(t, 2, sa, ar), cx(t, 1, sb, br)), t, quot, R * C, 14, 0);
    lcx e[R * C];
    for (int i = 0; i < R * C; i++) e[i] = cexpl(ar[i]);
    check_close("exp", eval_unary(MX_OP_EXP, cx(t, 2, sa, ar)), t, e, R * C, 8, 0);
  }
  /* Smith's division where |b|^2 overflows. */
  lcx big[2] = {1e300L + 1e300L * I, -3e307L + 1e307L * I}, one[2] = {1, 1};
  mx_array *x = cx(MX_C128, 1, (int64_t[]){2}, big);
  mx_retain(x);
  check_close("big / big", eval_binary(MX_OP_DIVIDE, x, x), MX_C128, one, 2, 14, 0);
  /* a complex op with a real operand promotes; abs gives the parts' float dtype */
  double h = 0.5;
  mx_array *y = eval_binary(MX_OP_ADD, cx(MX_C64, 1, (int64_t[]){2}, big), arr(MX_F64, 0, (int64_t[]){1}, &h));
  CHECK(y && y->dtype == MX_C128, "c64 + f64 is c128");
  mx_release(y);
  mx_array *m = eval_unary(MX_OP_ABS, cx(MX_C64, 1, (int64_t[]){1}, (lcx[]){3 + 4 * I}));
  CHECK(m && m->dtype == MX_F32 && ((float *)mx_data(m))[0] == 5.0f, "abs c64 is f32");
  mx_release(m);
}

static mx_array *reduce(mx_op op, mx_array *a, const int *axes, int n) {
  mx_array *out = NULL;
  mx_status st = mx_reduce(op, a, axes, n, 0, &out);
  mx_release(a);
  return run_check(st, &out, mx_ops[op].name);
}

static void test_reductions(void) {
  /* A row long enough to fold in parallel chunks, and a column reduction. */
  enum { N = 300000 };
  lcx *v = malloc(sizeof(lcx) * N);
  uint64_t s = 99;
  for (int i = 0; i < N; i++) v[i] = rnd(&s);
  for (mx_dtype t = MX_C64; t <= MX_C128; t++) {
    lcx sum = 0, abs_sum = 0;
    for (int i = 0; i < N; i++) {
      lcx w = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)v[i] : (lcx)(double _Complex)v[i];
      sum += w;
      abs_sum += fabsl(creall(w)) + fabsl(cimagl(w));
    }
    /* any order: gamma(N) sum |parts| */
    long double g = N * unit_of(t) / (1 - N * unit_of(t));
    check_close("sum of a long row", reduce(MX_OP_SUM, cx(t, 1, (int64_t[]){N}, v), NULL, -1), t, &sum, 1, 2,
                g * abs_sum);
    lcx col[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) col[i % 3] += t == MX_C64 ? (lcx)(float _Complex)(double _Complex)v[i] : (lcx)(double _Complex)v[i];
    check_close("sum over axis 0", reduce(MX_OP_SUM, cx(t, 2, (int64_t[]){1000, 3}, v), (int[]){0}, 1), t, col, 3, 2,
                1000 * 4 * unit_of(t) * 3);
    lcx p = 1;
    lcx unitc[6] = {1 * I, -1 * I, 0.6L + 0.8L * I, 0.6L - 0.8L * I, -1, 1 * I};
    for (int i = 0; i < 6; i++) p *= unitc[i];
    check_close("product", reduce(MX_OP_PRODUCT, cx(t, 1, (int64_t[]){6}, unitc), NULL, -1), t, &p, 1, 20, 0);
  }
  free(v);
}

static void test_matmul_and_moves(void) {
  uint64_t s = 5;
  enum { M = 7, K = 19, N = 5 };
  lcx a[M * K], b[K * N], c[M * N];
  for (int i = 0; i < M * K; i++) a[i] = rnd(&s);
  for (int i = 0; i < K * N; i++) b[i] = rnd(&s);
  for (mx_dtype t = MX_C64; t <= MX_C128; t++) {
    lcx ar[M * K], br[K * N];
    for (int i = 0; i < M * K; i++) ar[i] = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)a[i] : a[i];
    for (int i = 0; i < K * N; i++) br[i] = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)b[i] : b[i];
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        c[i * N + j] = 0;
        for (int l = 0; l < K; l++) c[i * N + j] += ar[i * K + l] * br[l * N + j];
      }
    mx_array *out = NULL;
    mx_array *x = cx(t, 2, (int64_t[]){M, K}, ar), *y = cx(t, 2, (int64_t[]){K, N}, br);
    mx_status st = mx_matmul(x, y, &out);
    mx_release(x);
    mx_release(y);
    /* gamma(2K + 2) sum |a||b| <= 2(2K + 2)u * K (entries of modulus < sqrt 2) */
    check_close("matmul", run_check(st, &out, "matmul"), t, c, M * N, 0, (2 * K + 2) * unit_of(t) * 2 * K * 2);
    /* transpose moves whole elements (16 bytes for c128) */
    x = cx(t, 2, (int64_t[]){M, K}, ar);
    st = mx_transpose(x, (int[]){1, 0}, &out);
    mx_release(x);
    lcx tr[M * K];
    for (int i = 0; i < M; i++)
      for (int l = 0; l < K; l++) tr[l * M + i] = ar[i * K + l];
    check_close("transpose", run_check(st, &out, "transpose"), t, tr, M * K, 0, 0);
  }
}

/* Naive DFT along `axis` of a [d0, d1, d2] array, with sign and scale. */
static void dft(const lcx *x, lcx *y, const int64_t *shape, int axis, int sign, long double scale) {
  int64_t n = shape[axis], st[3] = {shape[1] * shape[2], shape[2], 1};
  for (int64_t i0 = 0; i0 < shape[0]; i0++)
    for (int64_t i1 = 0; i1 < shape[1]; i1++)
      for (int64_t i2 = 0; i2 < shape[2]; i2++) {
        int64_t idx[3] = {i0, i1, i2}, k = idx[axis], base = i0 * st[0] + i1 * st[1] + i2 * st[2] - k * st[axis];
        lcx acc = 0;
        for (int64_t t = 0; t < n; t++)
          acc += x[base + t * st[axis]] * cexpl(sign * 2 * acosl(-1) * I * (long double)((t * k) % n) / n);
        y[base + k * st[axis]] = acc * scale;
      }
}

static void test_fft(void) {
  uint64_t s = 23;
  int64_t shape[3] = {3, 13, 4};
  enum { SZ = 3 * 13 * 4 };
  lcx x[SZ], y[SZ];
  for (int i = 0; i < SZ; i++) x[i] = rnd(&s);
  for (mx_dtype t = MX_C64; t <= MX_C128; t++) {
    lcx xr[SZ];
    for (int i = 0; i < SZ; i++) xr[i] = t == MX_C64 ? (lcx)(float _Complex)(double _Complex)x[i] : x[i];
    for (int inverse = 0; inverse <= 1; inverse++) {
      dft(xr, y, shape, 1, inverse ? 1 : -1, inverse ? 1.0L / 13 : 1);
      mx_array *a = cx(t, 3, shape, xr), *out = NULL;
      mx_status st = mx_fft(a, 1, 0, inverse, MX_FFT_BACKWARD, &out);
      mx_release(a);
      /* ||y|| <= sqrt(13) * sqrt(2) per row: c64 rounding 1u|y_k|, double 8 eps (3 log2 13 + 6) ||y|| */
      check_close(inverse ? "ifft along a middle axis" : "fft along a middle axis", run_check(st, &out, "fft"), t, y,
                  SZ, 2, 8 * ldexpl(1, -52) * (3 * log2l(13) + 6) * sqrtl(26));
    }
    /* rfft then irfft along axis 0 (length 3, odd) and axis 2 (length 4, even) */
    for (int axis = 0; axis <= 2; axis += 2) {
      double re[SZ];
      for (int i = 0; i < SZ; i++) re[i] = (double)creall(xr[i]);
      mx_dtype rt = t == MX_C64 ? MX_F32 : MX_F64;
      mx_array *r = arr_values(rt, 3, shape, re), *f = NULL, *back = NULL;
      mx_status st = mx_rfft(r, axis, 0, MX_FFT_ORTHO, &f);
      if (!st) st = mx_irfft(f, axis, shape[axis], MX_FFT_ORTHO, &back);
      mx_release(r);
      mx_release(f);
      back = run_check(st, &back, "rfft/irfft");
      if (back) {
        long double worst = 0;
        for (int i = 0; i < SZ; i++) worst = fmaxl(worst, fabsl(value_at(back, i) - re[i]));
        CHECK(worst <= (t == MX_C64 ? 1e-6L : 1e-14L), "irfft(rfft(x)) along axis %d: max error %Lg", axis, worst);
        mx_release(back);
      }
    }
  }
}

static void test_errors(void) {
  lcx v[2] = {1 + I, 2};
  mx_array *a = cx(MX_C64, 1, (int64_t[]){2}, v), *o = NULL;
  CHECK(mx_binary(MX_OP_LESS, a, a, &o) == MX_EINVAL && strstr(mx_last_error(), "[less] is not defined for complex"),
        "less: %s", mx_last_error());
  CHECK(mx_unary(MX_OP_FLOOR, a, &o) == MX_EINVAL && strstr(mx_last_error(), "[floor]"), "floor: %s", mx_last_error());
  CHECK(mx_sort(a, 0, 0, &o) == MX_EINVAL && strstr(mx_last_error(), "[sort]"), "sort: %s", mx_last_error());
  CHECK(mx_reduce(MX_OP_ARGMAX, a, NULL, -1, 0, &o) == MX_EINVAL && strstr(mx_last_error(), "[argmax]"), "argmax: %s",
        mx_last_error());
  CHECK(mx_unary(MX_OP_SIN, a, &o) == MX_EINVAL && strstr(mx_last_error(), "[sin] does not support complex"), "sin: %s",
        mx_last_error());
  CHECK(mx_rfft(a, 0, 0, MX_FFT_BACKWARD, &o) == MX_EINVAL && strstr(mx_last_error(), "[rfft] takes real input"),
        "rfft: %s", mx_last_error());
  CHECK(mx_fft(a, 0, 0, 0, (mx_fft_norm)7, &o) == MX_EINVAL, "bad norm");
  CHECK(mx_fft_node(MX_OP_RFFT, a, 0, 2, 0, 1, &o) == MX_EINVAL, "rfft node on complex input");
  CHECK(mx_fft_node(MX_OP_FFT, a, 0, 3, 0, 1, &o) == MX_EINVAL, "fft node with the wrong length");
  CHECK(mx_fft_node(MX_OP_FFT, a, 0, 2, 0, NAN, &o) == MX_EINVAL, "fft node with a NaN scale");
  double d[2] = {1, 2};
  mx_array *r = arr(MX_F64, 1, (int64_t[]){2}, d);
  CHECK(mx_binary(MX_OP_COMPLEX, a, r, &o) == MX_EINVAL && strstr(mx_last_error(), "[complex]"), "complex of complex");
  mx_array *z = cx(MX_C64, 0, (int64_t[]){1}, v);
  CHECK(mx_pad(r, z, (int64_t[]){1}, (int64_t[]){0}, NULL, &o) == MX_EINVAL &&
            strstr(mx_last_error(), "[pad] the pad value is complex"),
        "pad a real array with a complex value: %s", mx_last_error());
  mx_release(z);
  mx_release(a);
  mx_release(r);
}

int main(void) {
  test_types();
  test_conversions();
  test_arithmetic();
  test_reductions();
  test_matmul_and_moves();
  test_fft();
  test_errors();
  return test_summary("test_complex: ");
}
