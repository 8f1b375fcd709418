/* test_unary.c: unary kernels, sources and as_type, end to end through the
 * constructors + mx_eval, plus the scalar special functions and f16/bf16
 * conversions. Prints "N passed, M failed". */
#include "../prim/kernels.h"
#include "../prim/special.h"
#include "test_util.h"

static mx_array *un(mx_op op, mx_array *a) {
  mx_array *out = NULL;
  mx_status st = a ? mx_unary(op, a, &out) : MX_EINVAL;
  mx_release(a);
  return run_check(st, &out, mx_ops[op].name);
}

static mx_array *cast(mx_array *a, mx_dtype t) {
  mx_array *out = NULL;
  mx_status st = mx_as_type(a, t, &out);
  mx_release(a);
  return run_check(st, &out, "as_type");
}

/* Within rel relative error (or abs for |want| < 1); NaN matches NaN, infinities must be equal. */
static void check_close(const char *what, mx_array *x, mx_dtype t, const double *want, int64_t n, double rel) {
  if (!x) return;
  CHECK(x->size == n && (mx_dtype)x->dtype == t, "%s: size %ld dtype %s", what, (long)x->size,
        mx_dtype_name((mx_dtype)x->dtype));
  for (int64_t i = 0; i < n && i < x->size && (mx_dtype)x->dtype == t; i++) {
    double g = t == MX_F32 ? ((float *)mx_data(x))[i] : ((double *)mx_data(x))[i];
    int ok = isnan(want[i])        ? isnan(g)
             : isinf(want[i])      ? g == want[i]
                                   : fabs(g - want[i]) <= rel * fmax(1, fabs(want[i]));
    CHECK(ok, "%s[%ld]: got %.17g want %.17g", what, (long)i, g, want[i]);
  }
  mx_release(x);
}

static void test_float_ops(void) {
  double x[] = {0.25, 1, 2.5, -0.75};
  int64_t s4[] = {4};
  struct {
    mx_op op;
    double (*f)(double);
  } ops[] = {{MX_OP_EXP, exp},   {MX_OP_EXPM1, expm1}, {MX_OP_SIN, sin},   {MX_OP_COS, cos},   {MX_OP_TAN, tan},
             {MX_OP_ATAN, atan}, {MX_OP_SINH, sinh},   {MX_OP_COSH, cosh}, {MX_OP_TANH, tanh}, {MX_OP_ERF, erf}};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    double want[4];
    float xf[4];
    for (int i = 0; i < 4; i++) want[i] = ops[k].f(x[i]), xf[i] = (float)x[i];
    check_close(mx_ops[ops[k].op].name, un(ops[k].op, arr(MX_F64, 1, s4, x)), MX_F64, want, 4, 1e-15);
    for (int i = 0; i < 4; i++) want[i] = ops[k].f(xf[i]);
    check_close(mx_ops[ops[k].op].name, un(ops[k].op, arr(MX_F32, 1, s4, xf)), MX_F32, want, 4, 3e-7);
  }
  double p[] = {0.25, 1, 4, 0, -1};
  int64_t s5[] = {5};
  check_close("log", un(MX_OP_LOG, arr(MX_F64, 1, s5, p)), MX_F64, (double[]){log(0.25), 0, log(4), -INFINITY, NAN},
              5, 1e-15);
  check_close("log1p", un(MX_OP_LOG1P, arr(MX_F64, 1, s5, p)), MX_F64,
              (double[]){log1p(0.25), log1p(1), log1p(4), 0, -INFINITY}, 5, 1e-15);
  check_close("sqrt", un(MX_OP_SQRT, arr(MX_F64, 1, s5, p)), MX_F64, (double[]){0.5, 1, 2, 0, NAN}, 5, 0);
  check_close("rsqrt", un(MX_OP_RSQRT, arr(MX_F64, 1, s5, p)), MX_F64, (double[]){2, 1, 0.5, INFINITY, NAN}, 5, 0);
  check_close("reciprocal", un(MX_OP_RECIPROCAL, arr(MX_F64, 1, s5, p)), MX_F64,
              (double[]){4, 1, 0.25, INFINITY, -1}, 5, 0);
  check_close("asin", un(MX_OP_ASIN, arr(MX_F64, 1, s5, p)), MX_F64,
              (double[]){asin(0.25), M_PI / 2, NAN, 0, -M_PI / 2}, 5, 1e-15);
  check_close("acos", un(MX_OP_ACOS, arr(MX_F64, 1, s5, p)), MX_F64, (double[]){acos(0.25), 0, NAN, M_PI / 2, M_PI},
              5, 1e-15);

  /* sigmoid stays finite and accurate far out in both tails. */
  double sx[] = {-1000, -50, 0, 50, 1000, NAN};
  int64_t s6[] = {6};
  check_close("sigmoid f64", un(MX_OP_SIGMOID, arr(MX_F64, 1, s6, sx)), MX_F64,
              (double[]){0, 1.9287498479639178e-22, 0.5, 1, 1, NAN}, 6, 1e-15);
  mx_array *sg = un(MX_OP_SIGMOID, arr(MX_F64, 1, s6, sx));
  if (sg) CHECK(fabs(((double *)mx_data(sg))[1] / 1.9287498479639178e-22 - 1) < 1e-14, "sigmoid(-50) relative");
  mx_release(sg);
  float sxf[] = {-1000, -50, 0, 50, 1000, NAN};
  check_close("sigmoid f32", un(MX_OP_SIGMOID, arr(MX_F32, 1, s6, sxf)), MX_F32,
              (double[]){0, 1.9287498479639178e-22, 0.5, 1, 1, NAN}, 6, 1e-7);

  /* special functions against known values (mpmath). */
  double ex[] = {0.5, -0.999, 1, -1, 1.5, 0};
  check_close("erf_inv", un(MX_OP_ERF_INV, arr(MX_F64, 1, s6, ex)), MX_F64,
              (double[]){0.4769362762044699, -2.3267537655135245, INFINITY, -INFINITY, NAN, 0}, 6, 4e-16);
  double dx[] = {1, 0.5, -0.5, 0, -2, 1.4616321449683622};
  check_close("digamma", un(MX_OP_DIGAMMA, arr(MX_F64, 1, s6, dx)), MX_F64,
              (double[]){-0.5772156649015329, -1.9635100260214235, 0.03648997397857652, -INFINITY, NAN,
                         -9.2412655217294275e-17},
              6, 4e-16);
  double lx[] = {0.5, 1, 3, 0, -1, -0.5};
  check_close("lgamma", un(MX_OP_LGAMMA, arr(MX_F64, 1, s6, lx)), MX_F64,
              (double[]){0.5723649429247001, 0, M_LN2, INFINITY, INFINITY, 1.2655121234846454}, 6, 4e-16);
  float lxf[] = {0.5f, 1, 3, 0, -1, -0.5f};
  check_close("lgamma f32", un(MX_OP_LGAMMA, arr(MX_F32, 1, s6, lxf)), MX_F32,
              (double[]){0.5723649429247001, 0, M_LN2, INFINITY, INFINITY, 1.2655121234846454}, 6, 1e-7);

  /* Integers go through f32. */
  int32_t ix[] = {0, 1, 2};
  check_close("exp of s32", un(MX_OP_EXP, arr(MX_S32, 1, (int64_t[]){3}, ix)), MX_F32,
              (double[]){1, expf(1), expf(2)}, 3, 0);
}

static void test_same_ops(void) {
  int64_t s5[] = {5};
  int8_t a8[] = {-128, -1, 0, 5, 127};
  check_bytes("s8 negate", un(MX_OP_NEGATE, arr(MX_S8, 1, s5, a8)), MX_S8, (int8_t[]){-128, 1, 0, -5, -127}, 5);
  check_bytes("s8 abs", un(MX_OP_ABS, arr(MX_S8, 1, s5, a8)), MX_S8, (int8_t[]){-128, 1, 0, 5, 127}, 5);
  check_bytes("s8 sign", un(MX_OP_SIGN, arr(MX_S8, 1, s5, a8)), MX_S8, (int8_t[]){-1, -1, 0, 1, 1}, 5);
  check_bytes("s8 square", un(MX_OP_SQUARE, arr(MX_S8, 1, s5, a8)), MX_S8, (int8_t[]){0, 1, 0, 25, 1}, 5);
  uint8_t u8[] = {0, 1, 2, 128, 255};
  check_bytes("u8 negate wraps", un(MX_OP_NEGATE, arr(MX_U8, 1, s5, u8)), MX_U8, (uint8_t[]){0, 255, 254, 128, 1}, 5);
  check_bytes("u8 abs", un(MX_OP_ABS, arr(MX_U8, 1, s5, u8)), MX_U8, u8, 5);
  check_bytes("u8 sign", un(MX_OP_SIGN, arr(MX_U8, 1, s5, u8)), MX_U8, (uint8_t[]){0, 1, 1, 1, 1}, 5);
  uint16_t u16[] = {65535, 256, 3, 0, 1000};
  check_bytes("u16 square wraps", un(MX_OP_SQUARE, arr(MX_U16, 1, s5, u16)), MX_U16,
              (uint16_t[]){1, 0, 9, 0, 16960}, 5);
  int64_t big[] = {INT64_MIN, -((int64_t)1 << 60) - 1, 0, ((int64_t)1 << 53) + 1, INT64_MAX};
  check_bytes("s64 abs", un(MX_OP_ABS, arr(MX_S64, 1, s5, big)), MX_S64,
              (int64_t[]){INT64_MIN, ((int64_t)1 << 60) + 1, 0, ((int64_t)1 << 53) + 1, INT64_MAX}, 5);
  check_bytes("s64 floor is exact", un(MX_OP_FLOOR, arr(MX_S64, 1, s5, big)), MX_S64, big, 5);
  check_bytes("s64 round is exact", un(MX_OP_ROUND, arr(MX_S64, 1, s5, big)), MX_S64, big, 5);
  uint64_t ub[] = {UINT64_MAX, 0, 1, 2, (uint64_t)1 << 63};
  check_bytes("u64 negate", un(MX_OP_NEGATE, arr(MX_U64, 1, s5, ub)), MX_U64,
              (uint64_t[]){1, 0, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63}, 5);
  int32_t i32[] = {INT32_MIN, -7, 0, 7, INT32_MAX};
  check_bytes("s32 negate", un(MX_OP_NEGATE, arr(MX_S32, 1, s5, i32)), MX_S32,
              (int32_t[]){INT32_MIN, 7, 0, -7, -INT32_MAX}, 5);
  check_bytes("s32 ceil", un(MX_OP_CEIL, arr(MX_S32, 1, s5, i32)), MX_S32, i32, 5);

  /* Bool computes as u8, as Nx stores booleans. */
  uint8_t b[] = {0, 1};
  check_bytes("bool abs", un(MX_OP_ABS, arr(MX_BOOL, 1, (int64_t[]){2}, b)), MX_U8, b, 2);

  double f[] = {-2.5, -0.5, 0.5, 1.5, 2.5, -0.0, NAN, 2.7, -2.7};
  int64_t s9[] = {9};
  check_bytes("round half away from zero", un(MX_OP_ROUND, arr(MX_F64, 1, s9, f)), MX_F64,
              (double[]){-3, -1, 1, 2, 3, -0.0, NAN, 3, -3}, 9);
  check_bytes("floor", un(MX_OP_FLOOR, arr(MX_F64, 1, s9, f)), MX_F64,
              (double[]){-3, -1, 0, 1, 2, -0.0, NAN, 2, -3}, 9);
  check_bytes("ceil", un(MX_OP_CEIL, arr(MX_F64, 1, s9, f)), MX_F64,
              (double[]){-2, -0.0, 1, 2, 3, -0.0, NAN, 3, -2}, 9);
  check_bytes("sign f64", un(MX_OP_SIGN, arr(MX_F64, 1, s9, f)), MX_F64, (double[]){-1, -1, 1, 1, 1, -0.0, NAN, 1, -1},
              9);
  check_bytes("abs f64", un(MX_OP_ABS, arr(MX_F64, 1, s9, f)), MX_F64,
              (double[]){2.5, 0.5, 0.5, 1.5, 2.5, 0, NAN, 2.7, 2.7}, 9);
  float ff[] = {-2.5f, 3, -0.0f};
  check_bytes("negate f32", un(MX_OP_NEGATE, arr(MX_F32, 1, (int64_t[]){3}, ff)), MX_F32, (float[]){2.5f, -3, 0.0f},
              3);
  check_bytes("square f32", un(MX_OP_SQUARE, arr(MX_F32, 1, (int64_t[]){3}, ff)), MX_F32, (float[]){6.25f, 9, 0}, 3);
}

static void test_bool_ops(void) {
  float f[] = {NAN, INFINITY, -INFINITY, 0, -0.0f, 1};
  int64_t s6[] = {6};
  check_bytes("is_nan f32", un(MX_OP_IS_NAN, arr(MX_F32, 1, s6, f)), MX_BOOL, (uint8_t[]){1, 0, 0, 0, 0, 0}, 6);
  check_bytes("is_infinity f32", un(MX_OP_IS_INFINITY, arr(MX_F32, 1, s6, f)), MX_BOOL, (uint8_t[]){0, 1, 1, 0, 0, 0},
              6);
  check_bytes("logical_not f32", un(MX_OP_LOGICAL_NOT, arr(MX_F32, 1, s6, f)), MX_BOOL,
              (uint8_t[]){0, 0, 0, 1, 1, 0}, 6);
  int32_t i[] = {0, 3, -1};
  check_bytes("is_nan s32", un(MX_OP_IS_NAN, arr(MX_S32, 1, (int64_t[]){3}, i)), MX_BOOL, (uint8_t[]){0, 0, 0}, 3);
  check_bytes("is_infinity s32", un(MX_OP_IS_INFINITY, arr(MX_S32, 1, (int64_t[]){3}, i)), MX_BOOL,
              (uint8_t[]){0, 0, 0}, 3);
  check_bytes("logical_not s32", un(MX_OP_LOGICAL_NOT, arr(MX_S32, 1, (int64_t[]){3}, i)), MX_BOOL,
              (uint8_t[]){1, 0, 0}, 3);
  uint8_t b[] = {1, 0};
  check_bytes("logical_not bool", un(MX_OP_LOGICAL_NOT, arr(MX_BOOL, 1, (int64_t[]){2}, b)), MX_BOOL,
              (uint8_t[]){0, 1}, 2);
  uint16_t h[] = {0x7e00, 0x7c00, 0x3c00}; /* f16 NaN, inf, 1 */
  check_bytes("is_nan f16", un(MX_OP_IS_NAN, arr(MX_F16, 1, (int64_t[]){3}, h)), MX_BOOL, (uint8_t[]){1, 0, 0}, 3);
}

static void test_shapes(void) {
  /* Zero-size and rank-0. */
  mx_array *z = un(MX_OP_EXP, arr(MX_F32, 2, (int64_t[]){0, 3}, NULL));
  CHECK(z && z->size == 0 && z->ndim == 2 && z->shape[1] == 3 && z->dtype == MX_F32, "exp of [0,3]");
  mx_release(z);
  z = un(MX_OP_NEGATE, arr(MX_S16, 1, (int64_t[]){0}, NULL));
  CHECK(z && z->size == 0 && z->dtype == MX_S16, "negate of s16[0]");
  mx_release(z);
  z = un(MX_OP_IS_NAN, arr(MX_F64, 1, (int64_t[]){0}, NULL));
  CHECK(z && z->size == 0 && z->dtype == MX_BOOL, "is_nan of f64[0]");
  mx_release(z);
  double four = 4;
  z = un(MX_OP_SQRT, arr(MX_F64, 0, NULL, &four));
  CHECK(z && z->ndim == 0 && z->size == 1 && ((double *)mx_data(z))[0] == 2, "sqrt of a rank-0 f64");
  mx_release(z);
  int64_t m = -3;
  check_bytes("abs of rank-0 s64", un(MX_OP_ABS, arr(MX_S64, 0, NULL, &m)), MX_S64, (int64_t[]){3}, 1);
  check_bytes("as_type of f32[0]", cast(arr(MX_F32, 1, (int64_t[]){0}, NULL), MX_F16), MX_F16, NULL, 0);

  /* Large enough to split across threads; every element must match the serial scalar result. */
  enum { N = 200003 };
  static float big[N], want[N];
  for (int i = 0; i < N; i++) big[i] = (float)(i % 1000) * 0.01f - 5, want[i] = expf(big[i]);
  mx_array *e = un(MX_OP_EXP, arr(MX_F32, 1, (int64_t[]){N}, big));
  check_bytes("parallel exp", e, MX_F32, want, N);
  static double bd[N];
  static int32_t bi[N];
  for (int i = 0; i < N; i++) bd[i] = (i % 2 ? -1.0 : 1.0) * i * 0.5, bi[i] = (int32_t)bd[i];
  check_bytes("parallel as_type", cast(arr(MX_F64, 1, (int64_t[]){N}, bd), MX_S32), MX_S32, bi, N);
}

static void test_sources(void) {
  mx_array *out = NULL;
  check_bytes("full s8 saturates", run_check(mx_full(MX_S8, 1, (int64_t[]){2}, 300, &out), &out, "full"), MX_S8,
              (int8_t[]){127, 127}, 2);
  check_bytes("full u8 negative", run_check(mx_full(MX_U8, 1, (int64_t[]){3}, -5, &out), &out, "full"), MX_U8,
              (uint8_t[]){0, 0, 0}, 3);
  check_bytes("full s32 NaN", run_check(mx_full(MX_S32, 0, NULL, NAN, &out), &out, "full"), MX_S32, (int32_t[]){0}, 1);
  check_bytes("full f64", run_check(mx_full(MX_F64, 2, (int64_t[]){2, 2}, -1.5, &out), &out, "full"), MX_F64,
              (double[]){-1.5, -1.5, -1.5, -1.5}, 4);
  check_bytes("full bool", run_check(mx_full(MX_BOOL, 1, (int64_t[]){2}, 0.25, &out), &out, "full"), MX_BOOL,
              (uint8_t[]){1, 1}, 2);
  check_bytes("full f16", run_check(mx_full(MX_F16, 1, (int64_t[]){2}, 65504, &out), &out, "full"), MX_F16,
              (uint16_t[]){0x7bff, 0x7bff}, 2);
  check_bytes("full u16[0]", run_check(mx_full(MX_U16, 1, (int64_t[]){0}, 1, &out), &out, "full"), MX_U16, NULL, 0);

  check_bytes("iota axis 1", run_check(mx_iota(MX_S32, 2, (int64_t[]){2, 3}, 1, &out), &out, "iota"), MX_S32,
              (int32_t[]){0, 1, 2, 0, 1, 2}, 6);
  check_bytes("iota axis 0", run_check(mx_iota(MX_F32, 2, (int64_t[]){2, 3}, 0, &out), &out, "iota"), MX_F32,
              (float[]){0, 0, 0, 1, 1, 1}, 6);
  check_bytes("iota flat", run_check(mx_iota(MX_U8, 2, (int64_t[]){2, 2}, -1, &out), &out, "iota"), MX_U8,
              (uint8_t[]){0, 1, 2, 3}, 4);
  check_bytes("iota rank 0", run_check(mx_iota(MX_S64, 0, NULL, -1, &out), &out, "iota"), MX_S64, (int64_t[]){0}, 1);
  check_bytes("iota [3,0]", run_check(mx_iota(MX_S64, 2, (int64_t[]){3, 0}, 0, &out), &out, "iota"), MX_S64, NULL, 0);

  check_bytes("arange f64", run_check(mx_arange(MX_F64, 0, 0.1, 4, &out), &out, "arange"), MX_F64,
              (double[]){0, 0.1, 0.2, 0 + 3 * 0.1}, 4);
  check_bytes("arange s32", run_check(mx_arange(MX_S32, 5, -2, 4, &out), &out, "arange"), MX_S32,
              (int32_t[]){5, 3, 1, -1}, 4);
  check_bytes("arange empty", run_check(mx_arange(MX_F32, 0, 1, 0, &out), &out, "arange"), MX_F32, NULL, 0);

  check_bytes("linspace endpoint", run_check(mx_linspace(MX_F64, 0, 1, 7, 1, &out), &out, "linspace"), MX_F64,
              (double[]){0, 1.0 / 6, 2 * (1.0 / 6), 3 * (1.0 / 6), 4 * (1.0 / 6), 5 * (1.0 / 6), 1}, 7);
  check_bytes("linspace no endpoint", run_check(mx_linspace(MX_F64, 0, 1, 4, 0, &out), &out, "linspace"), MX_F64,
              (double[]){0, 0.25, 0.5, 0.75}, 4);
  check_bytes("linspace n=1", run_check(mx_linspace(MX_F64, 2, 5, 1, 1, &out), &out, "linspace"), MX_F64, (double[]){2},
              1);
  check_bytes("linspace s32", run_check(mx_linspace(MX_S32, 0, 10, 4, 1, &out), &out, "linspace"), MX_S32,
              (int32_t[]){0, 3, 6, 10}, 4);

  /* Large enough to split across threads: the endpoint lands in the last chunk only. */
  enum { N = 100003 };
  mx_array *l = run_check(mx_linspace(MX_F64, -1, 3, N, 1, &out), &out, "linspace");
  if (l) {
    const double *v = mx_data(l);
    double step = 4.0 / (N - 1);
    int bad = 0;
    for (int64_t i = 0; i < N - 1; i++) bad += v[i] != -1 + (double)i * step;
    CHECK(bad == 0 && v[N - 1] == 3, "big linspace: %d wrong, last %.17g", bad, v[N - 1]);
  }
  mx_release(l);
  mx_array *io = run_check(mx_iota(MX_S64, 2, (int64_t[]){N, 3}, 0, &out), &out, "iota");
  if (io) {
    const int64_t *v = mx_data(io);
    int bad = 0;
    for (int64_t i = 0; i < 3 * (int64_t)N; i++) bad += v[i] != i / 3;
    CHECK(bad == 0, "big iota: %d wrong", bad);
  }
  mx_release(io);
}

static void test_as_type(void) {
  float f[] = {NAN, INFINITY, -INFINITY, 3e9f, -3e9f, 2.7f, -2.7f, -0.0f};
  int64_t s8[] = {8};
  check_bytes("f32->s32 saturates", cast(arr(MX_F32, 1, s8, f), MX_S32), MX_S32,
              (int32_t[]){0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 2, -2, 0}, 8);
  check_bytes("f32->u8", cast(arr(MX_F32, 1, s8, f), MX_U8), MX_U8, (uint8_t[]){0, 255, 0, 255, 0, 2, 0, 0}, 8);
  check_bytes("f32->bool", cast(arr(MX_F32, 1, s8, f), MX_BOOL), MX_BOOL, (uint8_t[]){1, 1, 1, 1, 1, 1, 1, 0}, 8);
  double d[] = {1e20, -1, 18446744073709549568.0, 9.3e18, -9.3e18, 0.999, NAN, 4294967295.0};
  check_bytes("f64->u64", cast(arr(MX_F64, 1, s8, d), MX_U64), MX_U64,
              (uint64_t[]){UINT64_MAX, 0, 18446744073709549568ull, 9300000000000000000ull, 0, 0, 0, 4294967295ull},
              8);
  check_bytes("f64->s64", cast(arr(MX_F64, 1, s8, d), MX_S64), MX_S64,
              (int64_t[]){INT64_MAX, -1, INT64_MAX, INT64_MAX, INT64_MIN, 0, 0, 4294967295ll}, 8);
  int32_t i[] = {300, -1, 65536, 0};
  check_bytes("s32->u8 wraps", cast(arr(MX_S32, 1, (int64_t[]){4}, i), MX_U8), MX_U8, (uint8_t[]){44, 255, 0, 0}, 4);
  check_bytes("s32->bool", cast(arr(MX_S32, 1, (int64_t[]){4}, i), MX_BOOL), MX_BOOL, (uint8_t[]){1, 1, 1, 0}, 4);
  uint64_t u[] = {UINT64_MAX, ((uint64_t)1 << 53) + 1};
  check_bytes("u64->s64", cast(arr(MX_U64, 1, (int64_t[]){2}, u), MX_S64), MX_S64,
              (int64_t[]){-1, ((int64_t)1 << 53) + 1}, 2);
  check_bytes("u64->f64", cast(arr(MX_U64, 1, (int64_t[]){2}, u), MX_F64), MX_F64,
              (double[]){18446744073709551616.0, 9007199254740992.0}, 2);
  uint8_t b[] = {0, 1, 1};
  check_bytes("bool->f32", cast(arr(MX_BOOL, 1, (int64_t[]){3}, b), MX_F32), MX_F32, (float[]){0, 1, 1}, 3);

  /* f16 and bf16: round to nearest even, overflow to inf, NaN kept. */
  float h[] = {1, 65504, 65520, 1.0f / 3, -0.0f, NAN, 5.9604645e-08f, 2.9802322e-08f};
  check_bytes("f32->f16", cast(arr(MX_F32, 1, s8, h), MX_F16), MX_F16,
              (uint16_t[]){0x3c00, 0x7bff, 0x7c00, 0x3555, 0x8000, 0x7e00, 0x0001, 0x0000}, 8);
  check_bytes("f32->bf16", cast(arr(MX_F32, 1, s8, h), MX_BF16), MX_BF16,
              (uint16_t[]){0x3f80, 0x4780, 0x4780, 0x3eab, 0x8000, 0x7fc0, 0x3380, 0x3300}, 8);
  uint16_t hb[] = {0x3c00, 0x7bff, 0x7c00, 0x0001, 0xfc00, 0x8000};
  check_bytes("f16->f32", cast(arr(MX_F16, 1, (int64_t[]){6}, hb), MX_F32), MX_F32,
              (float[]){1, 65504, INFINITY, 5.9604645e-08f, -INFINITY, -0.0f}, 6);
  check_bytes("f16->bf16", cast(arr(MX_F16, 1, (int64_t[]){6}, hb), MX_BF16), MX_BF16,
              (uint16_t[]){0x3f80, 0x4780, 0x7f80, 0x3380, 0xff80, 0x8000}, 6);
  check_bytes("f16->s8", cast(arr(MX_F16, 1, (int64_t[]){6}, hb), MX_S8), MX_S8, (int8_t[]){1, 127, 127, 0, -128, 0},
              6);
  int64_t big[] = {70000, -3, 2049};
  check_bytes("s64->f16", cast(arr(MX_S64, 1, (int64_t[]){3}, big), MX_F16), MX_F16,
              (uint16_t[]){0x7c00, 0xc200, 0x6800}, 3);
  double tie = 1 + 0x1p-11 + 0x1p-40; /* just above a tie: f64->f16 must not double-round via f32 */
  check_bytes("f64->f16 single rounding", cast(arr(MX_F64, 0, NULL, &tie), MX_F16), MX_F16, (uint16_t[]){0x3c01}, 1);
}

/* The conversions themselves, exhaustively over all 2^16 encodings. */
static void test_half_roundtrip(void) {
  int bad16 = 0, badb = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    double a = mx_f16_to_f64((uint16_t)h), b = mx_bf16_to_f64((uint16_t)h);
    uint16_t ra = mx_f64_to_f16(a), rb = mx_f64_to_bf16(b), rb32 = mx_f32_to_bf16((float)b);
    if (isnan(a) ? (ra & 0x7fff) <= 0x7c00 || (ra >> 15) != (h >> 15) : ra != h) bad16++;
    if (isnan(b) ? (rb & 0x7fff) <= 0x7f80 || (rb32 & 0x7fff) <= 0x7f80 : rb != h || rb32 != h) badb++;
    if (!isnan(b) && (double)mx_bf16_to_f32((uint16_t)h) != b) badb++;
    float af = mx_f16_to_f32((uint16_t)h);
    if (isnan(a) ? !isnan(af) : (double)af != a || mx_f32_to_f16(af) != h) bad16++;
  }
  CHECK(bad16 == 0, "f16 round trip: %d encodings differ", bad16);
  CHECK(badb == 0, "bf16 round trip: %d encodings differ", badb);
}

int main(void) {
  test_float_ops();
  test_same_ops();
  test_bool_ops();
  test_shapes();
  test_sources();
  test_as_type();
  test_half_roundtrip();
  return test_summary("test_unary: ");
}
