/* test_binary.c: binary-family kernels and select, end to end through
 * mx_binary / mx_select + mx_eval. Prints "N passed, M failed". */
#include "../prim/kernels.h"
#include "test_util.h"

static const int64_t SCALAR[1] = {1}; /* shape pointer for rank 0 (never read) */

/* Builds and evaluates op(a, b); releases a and b. NULL (and a failed check) on error. */
static mx_array *bin(mx_op op, mx_array *a, mx_array *b) {
  mx_array *out = NULL;
  mx_status st = mx_binary(op, a, b, &out);
  mx_release(a);
  mx_release(b);
  return run_check(st, &out, mx_ops[op].name);
}

static mx_array *sel(mx_array *p, mx_array *a, mx_array *b) {
  mx_array *out = NULL;
  mx_status st = mx_select(p, a, b, &out);
  mx_release(p);
  mx_release(a);
  mx_release(b);
  return run_check(st, &out, "select");
}

static void check_shape(const char *what, const mx_array *x, int ndim, const int64_t *shape) {
  char got[96];
  CHECK(x && same_shape(x, ndim, shape), "%s: shape %s", what, x ? mx_describe(x, got, sizeof got) : "(null)");
}

/* Exact values; NaN matches any NaN. */
static void check_f64(const char *what, mx_array *x, const double *want, int64_t n) {
  if (!x) return;
  CHECK(x->size == n && x->dtype == MX_F64, "%s: size/dtype", what);
  const double *g = mx_data(x);
  int64_t bad = -1;
  for (int64_t i = 0; i < n && i < x->size && bad < 0; i++)
    if (!((isnan(want[i]) && isnan(g[i])) || g[i] == want[i])) bad = i;
  CHECK(bad < 0, "%s[%ld]: got %.17g want %.17g", what, (long)bad, bad < 0 ? 0 : g[bad], bad < 0 ? 0 : want[bad]);
  mx_release(x);
}

static void check_f32(const char *what, mx_array *x, const float *want, int64_t n) {
  if (!x) return;
  CHECK(x->size == n && x->dtype == MX_F32, "%s: size/dtype", what);
  const float *g = mx_data(x);
  int64_t bad = -1;
  for (int64_t i = 0; i < n && i < x->size && bad < 0; i++)
    if (!((isnan(want[i]) && isnan(g[i])) || g[i] == want[i])) bad = i;
  CHECK(bad < 0, "%s[%ld]: got %.9g want %.9g", what, (long)bad, bad < 0 ? 0 : (double)g[bad],
        bad < 0 ? 0 : (double)want[bad]);
  mx_release(x);
}

static void test_broadcasting(void) {
  /* [2,3] + [3] */
  float a[] = {1, 2, 3, 4, 5, 6}, b[] = {10, 20, 30};
  mx_array *x = bin(MX_OP_ADD, arr(MX_F32, 2, (int64_t[]){2, 3}, a), arr(MX_F32, 1, (int64_t[]){3}, b));
  check_shape("[2,3]+[3]", x, 2, (int64_t[]){2, 3});
  check_f32("[2,3]+[3]", x, (float[]){11, 22, 33, 14, 25, 36}, 6);

  /* [2,1] - [1,3] */
  int32_t c[] = {100, 200}, d[] = {1, 2, 3};
  x = bin(MX_OP_SUBTRACT, arr(MX_S32, 2, (int64_t[]){2, 1}, c), arr(MX_S32, 2, (int64_t[]){1, 3}, d));
  check_shape("[2,1]-[1,3]", x, 2, (int64_t[]){2, 3});
  check_bytes("[2,1]-[1,3]", x, MX_S32, (int32_t[]){99, 98, 97, 199, 198, 197}, 6);

  /* scalar on either side, and both */
  double e[] = {1, 2, 3, 4}, s = 0.5;
  x = bin(MX_OP_MULTIPLY, arr(MX_F64, 1, (int64_t[]){4}, e), arr(MX_F64, 0, SCALAR, &s));
  check_f64("[4]*scalar", x, (double[]){0.5, 1, 1.5, 2}, 4);
  x = bin(MX_OP_SUBTRACT, arr(MX_F64, 0, SCALAR, &s), arr(MX_F64, 1, (int64_t[]){4}, e));
  check_f64("scalar-[4]", x, (double[]){-0.5, -1.5, -2.5, -3.5}, 4);
  x = bin(MX_OP_DIVIDE, arr(MX_F64, 2, (int64_t[]){1, 1}, &s), arr(MX_F64, 1, (int64_t[]){4}, e));
  check_shape("[1,1]/[4]", x, 2, (int64_t[]){1, 4});
  check_f64("[1,1]/[4]", x, (double[]){0.5, 0.25, 0.5 / 3, 0.125}, 4);

  /* rank 0 with rank 0 */
  double r0 = 3, r1 = 4;
  x = bin(MX_OP_ADD, arr(MX_F64, 0, SCALAR, &r0), arr(MX_F64, 0, SCALAR, &r1));
  check_shape("rank0+rank0", x, 0, SCALAR);
  check_f64("rank0+rank0", x, (double[]){7}, 1);

  /* 4-D: [2,1,3,1] * [4,1,5] -> [2,4,3,5], against an index-loop reference */
  int64_t pa[6], pb[20], want[120];
  for (int i = 0; i < 6; i++) pa[i] = i + 1;
  for (int i = 0; i < 20; i++) pb[i] = 10 * (i + 1);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 3; k++)
        for (int l = 0; l < 5; l++) want[((i * 4 + j) * 3 + k) * 5 + l] = pa[i * 3 + k] * pb[j * 5 + l];
  x = bin(MX_OP_MULTIPLY, arr(MX_S64, 4, (int64_t[]){2, 1, 3, 1}, pa), arr(MX_S64, 3, (int64_t[]){4, 1, 5}, pb));
  check_shape("4-D broadcast", x, 4, (int64_t[]){2, 4, 3, 5});
  check_bytes("4-D broadcast", x, MX_S64, want, 120);
}

static void test_zero_size(void) {
  float none[1] = {0}, b[] = {1, 2, 3};
  mx_array *x = bin(MX_OP_ADD, arr(MX_F32, 2, (int64_t[]){0, 3}, none), arr(MX_F32, 1, (int64_t[]){3}, b));
  check_shape("[0,3]+[3]", x, 2, (int64_t[]){0, 3});
  if (x) CHECK(x->size == 0, "[0,3]+[3] size %ld", (long)x->size);
  mx_release(x);
  float one = 2;
  x = bin(MX_OP_LESS, arr(MX_F32, 2, (int64_t[]){2, 0}, none), arr(MX_F32, 0, SCALAR, &one));
  check_shape("[2,0]<scalar", x, 2, (int64_t[]){2, 0});
  if (x) CHECK(x->dtype == MX_BOOL, "[2,0]<scalar dtype");
  mx_release(x);
  uint8_t p = 1;
  x = sel(arr(MX_BOOL, 0, SCALAR, &p), arr(MX_F32, 1, (int64_t[]){0}, none), arr(MX_F32, 0, SCALAR, &one));
  check_shape("select [0]", x, 1, (int64_t[]){0});
  mx_release(x);
}

static void test_int_wrap(void) {
  int8_t a8[] = {127, -128, 100}, b8[] = {1, -1, 100};
  check_bytes("s8 add", bin(MX_OP_ADD, arr(MX_S8, 1, (int64_t[]){3}, a8), arr(MX_S8, 1, (int64_t[]){3}, b8)), MX_S8,
              (int8_t[]){-128, 127, -56}, 3);
  check_bytes("s8 multiply", bin(MX_OP_MULTIPLY, arr(MX_S8, 1, (int64_t[]){3}, a8), arr(MX_S8, 1, (int64_t[]){3}, b8)),
              MX_S8, (int8_t[]){127, -128, 16}, 3);
  int32_t a32[] = {INT32_MAX, INT32_MIN, 65536}, b32[] = {1, 1, 65536};
  check_bytes("s32 add", bin(MX_OP_ADD, arr(MX_S32, 1, (int64_t[]){3}, a32), arr(MX_S32, 1, (int64_t[]){3}, b32)),
              MX_S32, (int32_t[]){INT32_MIN, INT32_MIN + 1, 131072}, 3);
  check_bytes("s32 subtract",
              bin(MX_OP_SUBTRACT, arr(MX_S32, 1, (int64_t[]){3}, a32), arr(MX_S32, 1, (int64_t[]){3}, b32)), MX_S32,
              (int32_t[]){INT32_MAX - 1, INT32_MAX, 0}, 3);
  check_bytes("s32 multiply",
              bin(MX_OP_MULTIPLY, arr(MX_S32, 1, (int64_t[]){3}, a32), arr(MX_S32, 1, (int64_t[]){3}, b32)), MX_S32,
              (int32_t[]){INT32_MAX, INT32_MIN, 0}, 3);
  int64_t a64[] = {INT64_MAX, INT64_MIN}, b64[] = {2, -1};
  check_bytes("s64 multiply",
              bin(MX_OP_MULTIPLY, arr(MX_S64, 1, (int64_t[]){2}, a64), arr(MX_S64, 1, (int64_t[]){2}, b64)), MX_S64,
              (int64_t[]){-2, INT64_MIN}, 2);
  uint8_t u8a[] = {250, 3}, u8b[] = {10, 5};
  check_bytes("u8 add", bin(MX_OP_ADD, arr(MX_U8, 1, (int64_t[]){2}, u8a), arr(MX_U8, 1, (int64_t[]){2}, u8b)), MX_U8,
              (uint8_t[]){4, 8}, 2);
  check_bytes("u8 subtract",
              bin(MX_OP_SUBTRACT, arr(MX_U8, 1, (int64_t[]){2}, u8a), arr(MX_U8, 1, (int64_t[]){2}, u8b)), MX_U8,
              (uint8_t[]){240, 254}, 2);
  uint16_t u16 = 65535;
  check_bytes("u16 multiply", bin(MX_OP_MULTIPLY, arr(MX_U16, 0, SCALAR, &u16), arr(MX_U16, 0, SCALAR, &u16)), MX_U16,
              (uint16_t[]){1}, 1);
  uint64_t u64a[] = {UINT64_MAX, 0}, u64b[] = {1, 1};
  check_bytes("u64 add", bin(MX_OP_ADD, arr(MX_U64, 1, (int64_t[]){2}, u64a), arr(MX_U64, 1, (int64_t[]){2}, u64b)),
              MX_U64, (uint64_t[]){0, 1}, 2);
  check_bytes("u64 subtract",
              bin(MX_OP_SUBTRACT, arr(MX_U64, 1, (int64_t[]){2}, u64b), arr(MX_U64, 1, (int64_t[]){2}, u64a)), MX_U64,
              (uint64_t[]){2, 1}, 2);
}

static void test_remainder(void) {
  int32_t a[] = {7, -7, INT32_MIN, 5, 7, -7}, b[] = {0, 3, -1, -3, -3, -3};
  check_bytes("s32 remainder",
              bin(MX_OP_REMAINDER, arr(MX_S32, 1, (int64_t[]){6}, a), arr(MX_S32, 1, (int64_t[]){6}, b)), MX_S32,
              (int32_t[]){0, -1, 0, 2, 1, -1}, 6);
  int64_t a64[] = {INT64_MIN, 9}, b64[] = {-1, 0};
  check_bytes("s64 remainder",
              bin(MX_OP_REMAINDER, arr(MX_S64, 1, (int64_t[]){2}, a64), arr(MX_S64, 1, (int64_t[]){2}, b64)), MX_S64,
              (int64_t[]){0, 0}, 2);
  int8_t a8[] = {-128, -7}, b8[] = {-1, 2};
  check_bytes("s8 remainder",
              bin(MX_OP_REMAINDER, arr(MX_S8, 1, (int64_t[]){2}, a8), arr(MX_S8, 1, (int64_t[]){2}, b8)), MX_S8,
              (int8_t[]){0, -1}, 2);
  uint8_t u[] = {200, 7}, z = 0;
  check_bytes("u8 remainder by scalar 0",
              bin(MX_OP_REMAINDER, arr(MX_U8, 1, (int64_t[]){2}, u), arr(MX_U8, 0, SCALAR, &z)), MX_U8,
              (uint8_t[]){0, 0}, 2);
  uint64_t ua[] = {UINT64_MAX, 10}, ub[] = {UINT64_MAX, UINT64_MAX};
  check_bytes("u64 remainder by max",
              bin(MX_OP_REMAINDER, arr(MX_U64, 1, (int64_t[]){2}, ua), arr(MX_U64, 1, (int64_t[]){2}, ub)), MX_U64,
              (uint64_t[]){0, 10}, 2);
  float fa[] = {-7, 7, 5.5f, 1}, fb[] = {3, -3, 2, 0};
  check_f32("f32 remainder",
            bin(MX_OP_REMAINDER, arr(MX_F32, 1, (int64_t[]){4}, fa), arr(MX_F32, 1, (int64_t[]){4}, fb)),
            (float[]){-1, 1, 1.5f, NAN}, 4);
}

/* Integer divide is reached only by calling the kernel directly: the constructor casts ints to float. */
static void test_int_divide_kernel(void) {
  int32_t a[] = {7, -7, INT32_MIN, 9}, b[] = {2, 2, -1, 0}, zero[4] = {0};
  mx_array *in[2] = {arr(MX_S32, 1, (int64_t[]){4}, a), arr(MX_S32, 1, (int64_t[]){4}, b)};
  mx_array *out = arr(MX_S32, 1, (int64_t[]){4}, zero);
  CHECK(mx_k_divide(out, in) == MX_OK, "s32 divide kernel: %s", mx_last_error());
  check_bytes("s32 divide kernel", out, MX_S32, (int32_t[]){3, -3, INT32_MIN, 0}, 4);
  /* a dtype mismatch is an error, not a crash */
  out = arr(MX_F32, 1, (int64_t[]){4}, zero);
  CHECK(mx_k_add(out, in) == MX_EINVAL, "add with wrong out dtype should fail");
  CHECK(mx_k_atan2(out, in) == MX_EINVAL, "atan2 on ints should fail");
  mx_release(out);
  mx_release(in[0]);
  mx_release(in[1]);
}

static void test_pow(void) {
  int32_t a[] = {2, 3, 1, -1, -1, 0, -2, 5}, b[] = {10, -1, -5, -3, -2, 0, 3, 0};
  check_bytes("s32 pow", bin(MX_OP_POW, arr(MX_S32, 1, (int64_t[]){8}, a), arr(MX_S32, 1, (int64_t[]){8}, b)),
              MX_S32, (int32_t[]){1024, 0, 1, -1, 1, 1, -8, 1}, 8);
  int8_t a8 = 2, b8 = 7;
  check_bytes("s8 pow wraps", bin(MX_OP_POW, arr(MX_S8, 0, SCALAR, &a8), arr(MX_S8, 0, SCALAR, &b8)), MX_S8,
              (int8_t[]){-128}, 1);
  uint64_t ua = 2, ub[] = {63, 64, 65};
  check_bytes("u64 pow wraps", bin(MX_OP_POW, arr(MX_U64, 0, SCALAR, &ua), arr(MX_U64, 1, (int64_t[]){3}, ub)), MX_U64,
              (uint64_t[]){1ull << 63, 0, 0}, 3);
  float fa[] = {2, 4, -8}, fb[] = {0.5f, -1, 1.0f / 3};
  check_f32("f32 pow", bin(MX_OP_POW, arr(MX_F32, 1, (int64_t[]){3}, fa), arr(MX_F32, 1, (int64_t[]){3}, fb)),
            (float[]){powf(2, 0.5f), 0.25f, NAN}, 3);
}

static void test_nan(void) {
  double a[] = {NAN, 1, NAN, 2, -0.0}, b[] = {1, NAN, NAN, 3, 0};
  check_f64("max NaN", bin(MX_OP_MAX, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)),
            (double[]){NAN, NAN, NAN, 3, 0}, 5);
  check_f64("min NaN", bin(MX_OP_MIN, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)),
            (double[]){NAN, NAN, NAN, 2, 0}, 5);
  float fa[] = {NAN, 1}, fs = NAN;
  check_f32("f32 max with NaN scalar",
            bin(MX_OP_MAX, arr(MX_F32, 1, (int64_t[]){2}, fa), arr(MX_F32, 0, SCALAR, &fs)), (float[]){NAN, NAN}, 2);
  check_bytes("equal NaN", bin(MX_OP_EQUAL, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)),
              MX_BOOL, (uint8_t[]){0, 0, 0, 0, 1}, 5);
  check_bytes("not_equal NaN",
              bin(MX_OP_NOT_EQUAL, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)), MX_BOOL,
              (uint8_t[]){1, 1, 1, 1, 0}, 5);
  check_bytes("less_equal NaN",
              bin(MX_OP_LESS_EQUAL, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)), MX_BOOL,
              (uint8_t[]){0, 0, 0, 1, 1}, 5);
  check_bytes("logical_and NaN truthy",
              bin(MX_OP_LOGICAL_AND, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)), MX_BOOL,
              (uint8_t[]){1, 1, 1, 1, 0}, 5);
  check_f64("add NaN", bin(MX_OP_ADD, arr(MX_F64, 1, (int64_t[]){5}, a), arr(MX_F64, 1, (int64_t[]){5}, b)),
            (double[]){NAN, NAN, NAN, 5, 0}, 5);
}

static void test_float_only(void) {
  double a[] = {-INFINITY, INFINITY, 0, 1000, NAN, -INFINITY, 1}, b[] = {-INFINITY, INFINITY, 0, 0, 0, 3, 2};
  check_f64("logaddexp",
            bin(MX_OP_LOGADDEXP, arr(MX_F64, 1, (int64_t[]){7}, a), arr(MX_F64, 1, (int64_t[]){7}, b)),
            (double[]){-INFINITY, INFINITY, M_LN2, 1000, NAN, 3, 2 + log1p(exp(-1))}, 7);
  float fa[] = {-INFINITY, 100}, fb[] = {-INFINITY, 100};
  check_f32("f32 logaddexp",
            bin(MX_OP_LOGADDEXP, arr(MX_F32, 1, (int64_t[]){2}, fa), arr(MX_F32, 1, (int64_t[]){2}, fb)),
            (float[]){-INFINITY, 100 + (float)M_LN2}, 2);
  double y[] = {1, -1, 0}, x = -1;
  check_f64("atan2", bin(MX_OP_ATAN2, arr(MX_F64, 1, (int64_t[]){3}, y), arr(MX_F64, 0, SCALAR, &x)),
            (double[]){atan2(1, -1), atan2(-1, -1), atan2(0, -1)}, 3);
}

static void test_compare_logic(void) {
  int16_t a[] = {1, 2, 3, 4, 5, 6}, b[] = {2, 5, 3};
  mx_array *x = bin(MX_OP_GREATER_EQUAL, arr(MX_S16, 2, (int64_t[]){2, 3}, a), arr(MX_S16, 1, (int64_t[]){3}, b));
  check_shape("[2,3]>=[3]", x, 2, (int64_t[]){2, 3});
  check_bytes("[2,3]>=[3]", x, MX_BOOL, (uint8_t[]){0, 0, 1, 1, 1, 1}, 6);
  uint8_t p[] = {0, 1, 0, 1}, q[] = {0, 0, 1, 1};
  check_bytes("logical_or",
              bin(MX_OP_LOGICAL_OR, arr(MX_BOOL, 1, (int64_t[]){4}, p), arr(MX_BOOL, 1, (int64_t[]){4}, q)), MX_BOOL,
              (uint8_t[]){0, 1, 1, 1}, 4);
  uint32_t u[] = {0, 7, UINT32_MAX}, v = 7;
  check_bytes("u32 less", bin(MX_OP_LESS, arr(MX_U32, 1, (int64_t[]){3}, u), arr(MX_U32, 0, SCALAR, &v)), MX_BOOL,
              (uint8_t[]){1, 0, 0}, 3);
  int64_t m[] = {-5, 9}, n[] = {3, 3};
  check_bytes("s64 max", bin(MX_OP_MAX, arr(MX_S64, 1, (int64_t[]){2}, m), arr(MX_S64, 1, (int64_t[]){2}, n)),
              MX_S64, (int64_t[]){3, 9}, 2);
}

static void test_select(void) {
  uint8_t p[] = {1, 0, 1, 0, 0, 1};
  float a[] = {1, 2, 3}, b = -1;
  mx_array *x = sel(arr(MX_BOOL, 2, (int64_t[]){2, 3}, p), arr(MX_F32, 1, (int64_t[]){3}, a), arr(MX_F32, 0, SCALAR, &b));
  check_shape("select [2,3]", x, 2, (int64_t[]){2, 3});
  check_f32("select [2,3]", x, (float[]){1, -1, 3, -1, -1, 3}, 6);
  /* float predicate: -0.0 is false, NaN is true */
  double fp[] = {-0.0, NAN, 2};
  int64_t t[] = {1, 2, 3}, f[] = {-1, -2, -3};
  check_bytes("select float pred",
              sel(arr(MX_F64, 1, (int64_t[]){3}, fp), arr(MX_S64, 1, (int64_t[]){3}, t),
                  arr(MX_S64, 1, (int64_t[]){3}, f)),
              MX_S64, (int64_t[]){-1, 2, 3}, 3);
  int32_t pc[] = {0, 5};
  int16_t a16[] = {10, 20, 30}, b16[] = {-1, -2};
  x = sel(arr(MX_S32, 2, (int64_t[]){2, 1}, pc), arr(MX_S16, 2, (int64_t[]){1, 3}, a16),
          arr(MX_S16, 2, (int64_t[]){2, 1}, b16));
  check_shape("select [2,1]/[1,3]/[2,1]", x, 2, (int64_t[]){2, 3});
  check_bytes("select [2,1]/[1,3]/[2,1]", x, MX_S16, (int16_t[]){-1, -1, -1, 10, 20, 30}, 6);
  uint8_t one = 1;
  double r0 = 4, r1 = 5;
  check_f64("select rank 0",
            sel(arr(MX_BOOL, 0, SCALAR, &one), arr(MX_F64, 0, SCALAR, &r0), arr(MX_F64, 0, SCALAR, &r1)), (double[]){4}, 1);
}

/* Large enough to split across threads, with chunk edges inside rows. */
static void test_large(void) {
  enum { R = 333, C = 301, N = R * C };
  static float a[N], col[R], row[C], want[N];
  for (int i = 0; i < N; i++) a[i] = (float)(i % 977) * 0.5f;
  for (int i = 0; i < R; i++) col[i] = (float)i;
  for (int j = 0; j < C; j++) row[j] = (float)j * 1000;
  for (int i = 0; i < N; i++) want[i] = a[i] + a[i];
  check_f32("large same-shape",
            bin(MX_OP_ADD, arr(MX_F32, 2, (int64_t[]){R, C}, a), arr(MX_F32, 2, (int64_t[]){R, C}, a)), want, N);
  for (int i = 0; i < N; i++) want[i] = a[i] * 3;
  float three = 3;
  check_f32("large scalar",
            bin(MX_OP_MULTIPLY, arr(MX_F32, 0, SCALAR, &three), arr(MX_F32, 2, (int64_t[]){R, C}, a)), want, N);
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) want[i * C + j] = col[i] + row[j];
  check_f32("large outer", bin(MX_OP_ADD, arr(MX_F32, 2, (int64_t[]){R, 1}, col), arr(MX_F32, 1, (int64_t[]){C}, row)),
            want, N);
  for (int i = 0; i < N; i++) want[i] = a[i] - row[i % C];
  check_f32("large row broadcast",
            bin(MX_OP_SUBTRACT, arr(MX_F32, 2, (int64_t[]){R, C}, a), arr(MX_F32, 1, (int64_t[]){C}, row)), want, N);
}

int main(void) {
  test_broadcasting();
  test_zero_size();
  test_int_wrap();
  test_remainder();
  test_int_divide_kernel();
  test_pow();
  test_nan();
  test_float_only();
  test_compare_logic();
  test_select();
  test_large();
  return test_summary("test_binary: ");
}
