/* test_special.c: the special-function primitives (trigamma, erfc, log_ndtr,
 * ndtri, igamma, igammac, betainc) end to end through the constructors + mx_eval,
 * their special values and error paths, and identities of the scalar functions
 * over wide sweeps. Reference values: mpmath at 40 digits. The full accuracy
 * suite is test/mx/special_test.exs. Prints "N passed, M failed". */
#include "../prim/special.h"
#include "test_util.h"

static mx_array *un(mx_op op, mx_array *a) {
  mx_array *out = NULL;
  mx_status st = mx_unary(op, a, &out);
  mx_release(a);
  return run_check(st, &out, mx_ops[op].name);
}

static mx_array *bin(mx_op op, mx_array *a, mx_array *b) {
  mx_array *out = NULL;
  mx_status st = mx_binary(op, a, b, &out);
  mx_release(a);
  mx_release(b);
  return run_check(st, &out, mx_ops[op].name);
}

/* Within rel relative error; NaN matches NaN, infinities must be equal. Releases x. */
static void check_close(const char *what, mx_array *x, mx_dtype t, const double *want, int64_t n, double rel) {
  if (!x) return;
  CHECK(x->size == n && (mx_dtype)x->dtype == t, "%s: size %ld dtype %s", what, (long)x->size,
        mx_dtype_name((mx_dtype)x->dtype));
  for (int64_t i = 0; i < n && i < x->size && (mx_dtype)x->dtype == t; i++) {
    double g = value_at(x, i);
    int ok = isnan(want[i]) ? isnan(g) : isinf(want[i]) ? g == want[i] : fabs(g - want[i]) <= rel * fabs(want[i]);
    CHECK(ok, "%s[%ld]: got %.17g want %.17g", what, (long)i, g, want[i]);
  }
  mx_release(x);
}

static void test_unary(void) {
  int64_t s5[] = {5}, s4[] = {4}, s3[] = {3};
  double tx[] = {1, 0.5, -0.5, 1e-5, 100};
  double tw[] = {1.6449340668482264, 4.9348022005446793, 8.9348022005446793, 10000000001.644908,
                 0.010050166663333571};
  check_close("trigamma", un(MX_OP_TRIGAMMA, arr(MX_F64, 1, s5, tx)), MX_F64, tw, 5, 1e-15);
  double tp[] = {0, -1, -INFINITY, INFINITY, NAN};
  check_close("trigamma poles", un(MX_OP_TRIGAMMA, arr(MX_F64, 1, s5, tp)), MX_F64,
              (double[]){INFINITY, INFINITY, NAN, 0, NAN}, 5, 0);
  float txf[] = {1, 0.5, -0.5, 1e-5f, 100};
  double twf[5];
  for (int i = 0; i < 5; i++) twf[i] = (float)mx_trigamma(txf[i]);
  check_close("trigamma f32", un(MX_OP_TRIGAMMA, arr(MX_F32, 1, s5, txf)), MX_F32, twf, 5, 0);

  double ex[] = {0.5, -1, 10, 26};
  check_close("erfc", un(MX_OP_ERFC, arr(MX_F64, 1, s4, ex)), MX_F64,
              (double[]){0.47950012218695346, 1.8427007929497149, 2.0884875837625448e-45, 5.6631924088561428e-296},
              4, 4e-16);

  double lx[] = {0, -10, -40, 10, INFINITY};
  check_close("log_ndtr", un(MX_OP_LOG_NDTR, arr(MX_F64, 1, s5, lx)), MX_F64,
              (double[]){-0.69314718055994531, -53.231285150512471, -804.60844201375379, -7.6198530241605261e-24, 0},
              5, 4e-16);

  double nx[] = {0.025, 1e-300, 0.75, 0, 1.5};
  check_close("ndtri", un(MX_OP_NDTRI, arr(MX_F64, 1, s5, nx)), MX_F64,
              (double[]){-1.9599639845400542, -37.047096299361199, 0.67448975019608174, -INFINITY, NAN}, 5, 4e-16);

  /* integers compute in f32; f16 computes in f32 and rounds back */
  int32_t ix[] = {1, 2, 3};
  mx_array *r = un(MX_OP_TRIGAMMA, arr(MX_S32, 1, s3, ix));
  if (r) CHECK((mx_dtype)r->dtype == MX_F32, "trigamma of s32 is %s", mx_dtype_name((mx_dtype)r->dtype));
  mx_release(r);
  uint16_t hx[] = {0x3c00, 0x3800, 0x4000}; /* 1, 0.5, 2 */
  r = un(MX_OP_ERFC, arr(MX_F16, 1, s3, hx));
  if (r) {
    CHECK((mx_dtype)r->dtype == MX_F16, "erfc of f16 is %s", mx_dtype_name((mx_dtype)r->dtype));
    double v = mx_f16_to_f64(((uint16_t *)mx_data(r))[0]);
    CHECK(fabs(v - 0.15729920705028513) < 1e-3, "erfc(1) in f16: %g", v);
  }
  mx_release(r);
}

static void test_igamma(void) {
  int64_t s4[] = {4};
  double a[] = {0.5, 3, 100, 1e-3}, x[] = {0.5, 1, 90, 1e-3};
  check_close("igamma", bin(MX_OP_IGAMMA, arr(MX_F64, 1, s4, a), arr(MX_F64, 1, s4, x)), MX_F64,
              (double[]){0.6826894921370859, 0.080301397071394196, 0.15822098918643017, 0.99368764670886029}, 4,
              1e-15);
  double xq[] = {0.5, 10, 110, 1e-3};
  check_close("igammac", bin(MX_OP_IGAMMAC, arr(MX_F64, 1, s4, a), arr(MX_F64, 1, s4, xq)), MX_F64,
              (double[]){0.3173105078629141, 0.0027693957155115759, 0.15827867006008709, 0.0063123532911397099}, 4,
              1e-15);
  /* scipy's special values; a scalar a broadcasts */
  double sa[] = {0, 0, -1, INFINITY}, sx[] = {1, 0, 1, 1};
  check_close("igamma specials", bin(MX_OP_IGAMMA, arr(MX_F64, 1, s4, sa), arr(MX_F64, 1, s4, sx)), MX_F64,
              (double[]){1, NAN, NAN, 0}, 4, 0);
  double one = 1, xs[] = {0, INFINITY, -1, NAN};
  check_close("igammac broadcast", bin(MX_OP_IGAMMAC, arr(MX_F64, 0, NULL, &one), arr(MX_F64, 1, s4, xs)), MX_F64,
              (double[]){1, 0, NAN, NAN}, 4, 0);
}

static void test_betainc(void) {
  int64_t s4[] = {4};
  double a[] = {0.5, 2, 50, 1}, b[] = {0.5, 3, 40, 1e-3}, x[] = {0.1, 0.25, 0.6, 0.5};
  mx_array *out = NULL, *A = arr(MX_F64, 1, s4, a), *B = arr(MX_F64, 1, s4, b), *X = arr(MX_F64, 1, s4, x);
  mx_status st = mx_betainc(A, B, X, &out);
  check_close("betainc", run_check(st, &out, "betainc"), MX_F64,
              (double[]){0.20483276469913346, 0.26171875, 0.80115341797448862, 0.00069290700954747809}, 4, 1e-15);

  /* a [2, 1] x b [] x x [2, 1, 1] broadcast to [2, 2, 1]; f32 inputs stay f32 */
  int64_t s21[] = {2, 1}, s211[] = {2, 1, 1};
  float af[] = {1, 2}, bf = 3, xf[] = {0.2f, 0.7f};
  mx_array *A2 = arr(MX_F32, 2, s21, af), *B2 = arr(MX_F32, 0, NULL, &bf), *X2 = arr(MX_F32, 3, s211, xf);
  out = NULL;
  st = mx_betainc(A2, B2, X2, &out);
  if (st == MX_OK) CHECK(out->ndim == 3 && out->shape[0] == 2 && out->shape[1] == 2 && out->shape[2] == 1, "shape");
  double want[] = {mx_ibeta(1, 3, 0.2f), mx_ibeta(2, 3, 0.2f), mx_ibeta(1, 3, 0.7f), mx_ibeta(2, 3, 0.7f)};
  check_close("betainc broadcast f32", run_check(st, &out, "betainc"), MX_F32, want, 4, 1e-7);

  /* integer inputs compute in f32 */
  int32_t ia = 2;
  mx_array *IA = arr(MX_S32, 0, NULL, &ia);
  out = NULL;
  st = mx_betainc(IA, B2, X2, &out);
  if (st == MX_OK) CHECK((mx_dtype)out->dtype == MX_F32, "betainc of s32 is %s", mx_dtype_name((mx_dtype)out->dtype));
  mx_release(run_check(st, &out, "betainc s32"));

  /* errors name the op: shapes that do not broadcast, a disposed input */
  int64_t s3[] = {3};
  double three[] = {1, 2, 3};
  mx_array *bad = arr(MX_F64, 1, s3, three);
  out = NULL;
  st = mx_betainc(A, B, bad, &out);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[betainc]") && strstr(mx_last_error(), "broadcast"),
        "shape mismatch: %d %s", st, mx_last_error());
  mx_dispose(bad);
  st = mx_betainc(bad, bad, bad, &out);
  CHECK(st == MX_EDISPOSED && strstr(mx_last_error(), "[betainc]"), "disposed: %d %s", st, mx_last_error());
  mx_release(bad);
  mx_release(A), mx_release(B), mx_release(X), mx_release(A2), mx_release(B2), mx_release(X2), mx_release(IA);
}

/* Identities over sweeps: P + Q = 1 (each computed directly in its own region),
 * I_x(a, b) + I_(1-x)(b, a) = 1 at x = 1/2 + k/64 (1 - x exact), ndtri(Phi(x)) = x for x < 1/2. */
static void test_identities(void) {
  double worst_pq = 0, worst_i = 0, worst_n = 0;
  for (double a = 1e-3; a < 1e6; a *= 1.9)
    for (double r = 0.05; r < 8; r *= 1.3) {
      double x = a * r, p = mx_igamma(a, x), q = mx_igammac(a, x);
      worst_pq = fmax(worst_pq, fabs(p + q - 1));
    }
  for (double a = 0.01; a < 1e4; a *= 2.3)
    for (double b = 0.01; b < 1e4; b *= 2.3)
      for (int k = 0; k < 32; k++) {
        double x = 0.5 + k / 64.0;
        worst_i = fmax(worst_i, fabs(mx_ibeta(a, b, x) + mx_ibeta(b, a, 1 - x) - 1));
      }
  for (double x = -37; x < 0.5; x += 0.37) { /* the upper tail: p rounds near 1, not invertible */
    double p = exp(mx_log_ndtr(x)), back = mx_ndtri(p);
    worst_n = fmax(worst_n, fabs(back - x) / fmax(1, fabs(x)));
  }
  /* P and Q each carry a few ulp; the round trip loses the ulps of exp and log (|x| ulp each). */
  CHECK(worst_pq < 4e-16 * 4, "P + Q - 1 up to %g", worst_pq);
  CHECK(worst_i < 1e-14, "I_x(a,b) + I_1-x(b,a) - 1 up to %g", worst_i);
  CHECK(worst_n < 4e-16 * 8, "ndtri(Phi(x)) - x up to %g (relative)", worst_n);
}

int main(void) {
  test_unary();
  test_igamma();
  test_betainc();
  test_identities();
  return test_summary("test_special: ");
}
