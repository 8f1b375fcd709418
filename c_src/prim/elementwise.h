/* elementwise.h: the per-element semantics of the elementwise kernels, one place.
 * prim/unary.c and prim/binary.c expand these X-macro lists into their loops;
 * jit.c stringifies the same lists (#expr) for generated C, and embeds this
 * file's text in every generated source (the Makefile turns it into a string),
 * so the two execution tiers compute with the same expressions. Special
 * functions (mx_lgamma, mx_igamma, ...) are declared by special.h for the
 * kernels and reach generated code through jit.c's function table.
 * Self-contained: no includes of the engine's headers. */
#ifndef MX_ELEMENTWISE_H
#define MX_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>

/* x < 0 for any integer type; through a function so unsigned types don't warn. */
static inline int neg_i64(int64_t v) { return v < 0; }
#define IS_NEG(T, x) ((T)-1 < (T)1 && neg_i64((int64_t)(x)))
/* The float or double libm function for x's type. */
#define FN(fn, x) _Generic((x), float: fn##f, default: fn)(x)

/* ---- SAME unary ops: every integer and float dtype; bool (never built by mx_unary,
 * which computes bool as u8) is the identity. Integer arithmetic runs in
 * uint64 so it wraps modulo 2^n like numpy instead of overflowing. Float sign
 * passes NaN and +-0 through.
 *
 *      name    integer expression (type T, value x)            float expression */
#define SAME_OPS(X, ID, T)                                                        \
  X(negate, ID, T, (T)(0 - (uint64_t)x),                           -x)            \
  X(abs,    ID, T, IS_NEG(T, x) ? (T)(0 - (uint64_t)x) : x,        FN(fabs, x))   \
  X(sign,   ID, T, (T)((x > 0) - IS_NEG(T, x)),                    x > 0 ? 1 : x < 0 ? -1 : x) \
  X(square, ID, T, (T)((uint64_t)x * (uint64_t)x),                 x * x)         \
  X(floor,  ID, T, x,                                              FN(floor, x))  \
  X(ceil,   ID, T, x,                                              FN(ceil, x))   \
  X(round,  ID, T, x,                                              FN(round, x)) /* half away from zero, as Nx */


/* ---- bool-valued ops: any compute dtype in, bool (0/1) out (isinf may return -1).
 *      name          integer/bool expression   float expression */
#define BOOL_OPS(X, ID, T)                                   \
  X(is_nan,      ID, T, 0,                      isnan(x) != 0) \
  X(is_infinity, ID, T, 0,                      isinf(x) != 0) \
  X(logical_not, ID, T, x == 0,                 x == 0)


/* Stable for large |x|: exp only of -|x|, so it never overflows. */
static inline double logistic_d(double x) {
  double e = exp(-fabs(x)), r = 1 / (1 + e);
  return x >= 0 ? r : e * r;
}


/* ---- FLOAT unary ops: f32 and f64 only (mx_unary casts integers to f32). f32 uses
 * the float libm functions so results match numpy's float32 within an ulp or two;
 * expm1, cosh and sigmoid compute in double and round once, which gives the correctly
 * rounded f32 (as Nx prints it): no miss for expm1 and cosh, 2 for sigmoid, in a 3.7e7-input
 * sample (bench/f32_in_double.c).
 *   X(name, f32 expression, f64 expression) of x */
#define FLOAT_UNARY_OPS(X) \
  X(exp, expf(x), exp(x)) \
  X(expm1, (float)expm1((double)x), expm1(x)) \
  X(log, logf(x), log(x)) \
  X(log1p, log1pf(x), log1p(x)) \
  X(sqrt, sqrtf(x), sqrt(x)) \
  X(rsqrt, 1 / sqrtf(x), 1 / sqrt(x)) \
  X(reciprocal, 1 / x, 1 / x) \
  X(sin, sinf(x), sin(x)) \
  X(cos, cosf(x), cos(x)) \
  X(tan, tanf(x), tan(x)) \
  X(asin, asinf(x), asin(x)) \
  X(acos, acosf(x), acos(x)) \
  X(atan, atanf(x), atan(x)) \
  X(sinh, sinhf(x), sinh(x)) \
  X(cosh, (float)cosh((double)x), cosh(x)) \
  X(tanh, tanhf(x), tanh(x)) \
  X(sigmoid, (float)logistic_d(x), logistic_d(x)) \
  X(erf, erff(x), erf(x)) \
  X(erf_inv, mx_erf_invf(x), mx_erf_inv(x)) \
  X(lgamma, mx_lgammaf(x), mx_lgamma(x)) \
  X(digamma, mx_digammaf(x), mx_digamma(x)) \
  X(trigamma, mx_trigammaf(x), mx_trigamma(x)) \
  X(erfc, mx_erfcf(x), mx_erfc(x)) \
  X(log_ndtr, mx_log_ndtrf(x), mx_log_ndtr(x)) \
  X(ndtri, mx_ndtrif(x), mx_ndtri(x)) \
  X(asinh, asinhf(x), asinh(x)) \
  X(acosh, acoshf(x), acosh(x)) \
  X(atanh, atanhf(x), atanh(x)) \
  X(log2, log2f(x), log2(x)) \
  X(log10, log10f(x), log10(x))

/* ---- binary ops: scalar semantics --------------------------------------------- */

/* Integer arithmetic runs in an unsigned type at least as wide as int, so
 * overflow wraps instead of being UB (u16 * u16 would otherwise promote to int). */
#define W(x) _Generic((x), uint64_t: (uint64_t)(x), int64_t: (uint64_t)(x), default: (uint32_t)(x))
#define IS_SIGNED(T) _Generic((T)0, int8_t: 1, int16_t: 1, int32_t: 1, int64_t: 1, default: 0)
/* Integer helpers work in 64 bits; the result always fits T (or wraps to it). */
#define INT_CALL(f, a, b) (IS_SIGNED(T) ? (T)f##_s(a, b) : (T)f##_u(a, b))
#define FCALL(fn, a, b) _Generic((a), float: fn##f, default: fn)(a, b)

/* Division and remainder never trap (SIGFPE would kill the VM): x / 0 and
 * x % 0 give 0, INT_MIN / -1 wraps, INT_MIN % -1 is 0. */
static inline int64_t idiv_s(int64_t a, int64_t b) {
  return b == 0 ? 0 : b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b;
}
static inline uint64_t idiv_u(uint64_t a, uint64_t b) { return b == 0 ? 0 : a / b; }
static inline int64_t irem_s(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }
static inline uint64_t irem_u(uint64_t a, uint64_t b) { return b == 0 ? 0 : a % b; }

/* Repeated squaring mod 2^64; truncating to a narrower T gives its wrapped power. */
static inline uint64_t ipow_u(uint64_t a, uint64_t e) {
  uint64_t r = 1;
  for (; e; e >>= 1, a *= a)
    if (e & 1) r *= a;
  return r;
}
/* Negative exponent: 1 for base 1, +-1 for base -1 (by parity), 0 otherwise (truncated 1/a^n). */
static inline int64_t ipow_s(int64_t a, int64_t e) {
  if (e < 0) return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
  return (int64_t)ipow_u((uint64_t)a, (uint64_t)e);
}

/* log(exp(a) + exp(b)) without overflow; equal infinities return themselves. */
static inline double mx_logaddexp(double a, double b) {
  if (a == b) return a + M_LN2;
  double d = a - b;
  if (d > 0) return a + log1p(exp(-d));
  if (d <= 0) return b + log1p(exp(d));
  return d; /* NaN */
}
static inline float mx_logaddexpf(float a, float b) {
  if (a == b) return a + (float)M_LN2;
  float d = a - b;
  if (d > 0) return a + log1pf(expf(-d));
  if (d <= 0) return b + log1pf(expf(d));
  return d; /* NaN */
}

/* ---- the op tables: a and b are operands of type T -------------------------- */

/* X(OP, kernel, integer expression, float expression); out dtype = input dtype.
 * Float max/min propagate NaN; remainder takes the sign of the dividend (C fmod). */
#define ARITH_OPS(X)                                                  \
  X(ADD, add, (T)(W(a) + W(b)), a + b)                                \
  X(SUBTRACT, subtract, (T)(W(a) - W(b)), a - b)                      \
  X(MULTIPLY, multiply, (T)(W(a) * W(b)), a * b)                      \
  X(DIVIDE, divide, INT_CALL(idiv, a, b), a / b)                      \
  X(POW, pow, INT_CALL(ipow, a, b), FCALL(pow, a, b))                 \
  X(MAX, max, a > b ? a : b, a > b || a != a ? a : b)                 \
  X(MIN, min, a < b ? a : b, a < b || a != a ? a : b)                 \
  X(REMAINDER, remainder, INT_CALL(irem, a, b), FCALL(fmod, a, b))

/* X(OP, kernel, float expression): the constructor casts integer inputs to float. */
#define FLOAT_OPS(X)                 \
  X(ATAN2, atan2, FCALL(atan2, a, b)) \
  X(LOGADDEXP, logaddexp, FCALL(mx_logaddexp, a, b)) \
  X(IGAMMA, igamma, FCALL(mx_igamma, a, b))           \
  X(IGAMMAC, igammac, FCALL(mx_igammac, a, b))

/* X(OP, kernel, expression): any input dtype, out bool; truthy means != 0 (NaN is truthy). */
#define CMP_OPS(X)                                        \
  X(EQUAL, equal, a == b)                                 \
  X(NOT_EQUAL, not_equal, a != b)                         \
  X(LESS, less, a < b)                                    \
  X(LESS_EQUAL, less_equal, a <= b)                       \
  X(GREATER, greater, a > b)                              \
  X(GREATER_EQUAL, greater_equal, a >= b)                 \
  X(LOGICAL_AND, logical_and, (a != 0) & (b != 0))        \
  X(LOGICAL_OR, logical_or, (a != 0) | (b != 0))

/* ---- reductions: accumulator type and fold steps ---------------------------------- */

/* Sums and products of ints accumulate in uint64 (wraps without UB, and the
 * low bits are the right wrapped result for every narrower width). */
#define ACC(T) __typeof__(_Generic((T)0, float: 0.0f, double: 0.0, float _Complex: (float _Complex)0, \
                                   double _Complex: (double _Complex)0, default: (uint64_t)0))
#define ISNAN(x) _Generic((x), float: isnan((float)(x)), double: isnan((double)(x)), default: 0)

#define STEP_SUM(a, b) ((a) + (b))
#define STEP_PROD(a, b) ((a) * (b))
/* max/min propagate NaN: once the accumulator is NaN it stays NaN. */
#define STEP_MAX(a, b) ((b) > (a) || ISNAN(b) ? (b) : (a))
#define STEP_MIN(a, b) ((b) < (a) || ISNAN(b) ? (b) : (a))

/* Division by a divisor constant over a loop, in generated code only (jit.c): r = 1 / b
 * once, then a * r, when r is a normal number (then within 2 ulps of a / b, like any other
 * reassociation the tiers may differ by); otherwise (b zero, infinite, NaN, huge or
 * subnormal) a / b itself. */
#define DIV_BY_INVARIANT(a, b, r) (isnormal(r) ? (a) * (r) : (a) / (b))

/* SELECT: in[0] predicate p (truthy means != 0: -0.0 false, NaN true), in[1] a, in[2] b. */
#define SELECT_EXPR(p, a, b) ((p) != 0 ? (a) : (b))

/* ---- integer bit ops and quotient (rule INT, ops_bitwise.c): integer dtypes only; bitwise
 * not/and/or/xor also take bool (the constructor keeps it bool). Shifts follow XLA and numpy:
 * the count is read as unsigned, so a count >= the bit width or negative shifts every bit out
 * (left: 0; right: 0, or -1 for a negative signed value). Right shifts are arithmetic for
 * signed types, logical for unsigned. Quotient truncates toward zero; x quotient 0 is 0. */
#define MX_BITS(T) ((int)(8 * sizeof(T)))
/* x's bits as an unsigned 64-bit value with the bits above T's width cleared. */
#define MX_UBITS(T, x) (MX_BITS(T) == 64 ? (uint64_t)(x) : (uint64_t)(x) & ((UINT64_C(1) << (MX_BITS(T) & 63)) - 1))
static inline int mx_clz_bits(uint64_t v, int bits) { return v ? __builtin_clzll(v) - (64 - bits) : bits; }
#define MX_SHIFT_OK(T, b) ((uint64_t)(b) < (uint64_t)MX_BITS(T))
#define MX_SHL(T, a, b) (MX_SHIFT_OK(T, b) ? (T)(W(a) << (MX_SHIFT_OK(T, b) ? (b) : 0)) : (T)0)
#define MX_SHR(T, a, b) \
  (MX_SHIFT_OK(T, b) ? (T)((a) >> (MX_SHIFT_OK(T, b) ? (b) : 0)) : IS_NEG(T, a) ? (T)-1 : (T)0)

/* X(name, ID, T, expression of x): out dtype = input dtype. */
#define INT_UNARY_OPS(X, ID, T)                                                        \
  X(bitwise_not, ID, T, (T)~x)                                                         \
  X(count_leading_zeros, ID, T, (T)mx_clz_bits(MX_UBITS(T, x), MX_BITS(T)))            \
  X(population_count, ID, T, (T)__builtin_popcountll(MX_UBITS(T, x)))

/* X(OP, kernel, expression of a and b): out dtype = the promoted input dtype. */
#define INT_BINARY_OPS(X)                                 \
  X(BITWISE_AND, bitwise_and, (T)(a & b))                 \
  X(BITWISE_OR, bitwise_or, (T)(a | b))                   \
  X(BITWISE_XOR, bitwise_xor, (T)(a ^ b))                 \
  X(LEFT_SHIFT, left_shift, MX_SHL(T, a, b))              \
  X(RIGHT_SHIFT, right_shift, MX_SHR(T, a, b))            \
  X(QUOTIENT, quotient, INT_CALL(idiv, a, b))

#endif
