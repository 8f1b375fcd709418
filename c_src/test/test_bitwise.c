/* test_bitwise.c: the rule-INT ops (bitwise not/and/or/xor, shifts, count_leading_zeros,
 * population_count, quotient) and bitcast, end to end through mx_unary / mx_binary /
 * mx_bitcast + mx_eval: edge values, errors for float inputs, and kernels called with
 * wrong dtypes returning errors. Prints "N passed, M failed". */
#include <stdint.h>

#include "../prim/kernels.h"
#include "test_util.h"

#define V(n) (int64_t[]){n}

static void test_shifts(void) {
  int8_t a[] = {1, -16, -16, 1, -1, 127}, b[] = {7, 2, 8, -1, 100, 1};
  check_bytes("s8 left_shift", eval_binary(MX_OP_LEFT_SHIFT, arr(MX_S8, 1, V(6), a), arr(MX_S8, 1, V(6), b)), MX_S8,
              (int8_t[]){-128, -64, 0, 0, 0, -2}, 6);
  check_bytes("s8 right_shift (arithmetic; past the width: sign)",
              eval_binary(MX_OP_RIGHT_SHIFT, arr(MX_S8, 1, V(6), a), arr(MX_S8, 1, V(6), b)), MX_S8,
              (int8_t[]){0, -4, -1, 0, -1, 63}, 6);
  uint64_t u[] = {UINT64_MAX, UINT64_MAX, 1, UINT64_MAX}, c[] = {63, 64, 63, UINT64_MAX};
  check_bytes("u64 right_shift (logical)", eval_binary(MX_OP_RIGHT_SHIFT, arr(MX_U64, 1, V(4), u), arr(MX_U64, 1, V(4), c)),
              MX_U64, (uint64_t[]){1, 0, 0, 0}, 4);
  check_bytes("u64 left_shift", eval_binary(MX_OP_LEFT_SHIFT, arr(MX_U64, 1, V(4), u), arr(MX_U64, 1, V(4), c)), MX_U64,
              (uint64_t[]){(uint64_t)1 << 63, 0, (uint64_t)1 << 63, 0}, 4);
  int64_t s[] = {INT64_MIN, -5}, k[] = {63, 1};
  check_bytes("s64 right_shift", eval_binary(MX_OP_RIGHT_SHIFT, arr(MX_S64, 1, V(2), s), arr(MX_S64, 1, V(2), k)), MX_S64,
              (int64_t[]){-1, -3}, 2);
}

static void test_bits(void) {
  uint16_t u[] = {0, 1, 0x8000, 0xFFFF, 0x00F0};
  check_bytes("u16 count_leading_zeros", eval_unary(MX_OP_COUNT_LEADING_ZEROS, arr(MX_U16, 1, V(5), u)), MX_U16,
              (uint16_t[]){16, 15, 0, 0, 8}, 5);
  check_bytes("u16 population_count", eval_unary(MX_OP_POPULATION_COUNT, arr(MX_U16, 1, V(5), u)), MX_U16,
              (uint16_t[]){0, 1, 1, 16, 4}, 5);
  int64_t s[] = {-1, INT64_MIN, 0, 1};
  check_bytes("s64 count_leading_zeros", eval_unary(MX_OP_COUNT_LEADING_ZEROS, arr(MX_S64, 1, V(4), s)), MX_S64,
              (int64_t[]){0, 0, 64, 63}, 4);
  check_bytes("s64 population_count", eval_unary(MX_OP_POPULATION_COUNT, arr(MX_S64, 1, V(4), s)), MX_S64,
              (int64_t[]){64, 1, 0, 1}, 4);
  check_bytes("s64 bitwise_not", eval_unary(MX_OP_BITWISE_NOT, arr(MX_S64, 1, V(4), s)), MX_S64,
              (int64_t[]){0, INT64_MAX, -1, -2}, 4);
  uint8_t p[] = {1, 0, 1, 0}, q[] = {1, 1, 0, 0};
  check_bytes("bool bitwise_not", eval_unary(MX_OP_BITWISE_NOT, arr(MX_BOOL, 1, V(4), p)), MX_BOOL, (uint8_t[]){0, 1, 0, 1}, 4);
  check_bytes("bool bitwise_xor", eval_binary(MX_OP_BITWISE_XOR, arr(MX_BOOL, 1, V(4), p), arr(MX_BOOL, 1, V(4), q)), MX_BOOL,
              (uint8_t[]){0, 1, 1, 0}, 4);
  check_bytes("bool left_shift reads bool as u8",
              eval_binary(MX_OP_LEFT_SHIFT, arr(MX_BOOL, 1, V(4), p), arr(MX_BOOL, 1, V(4), q)), MX_U8, (uint8_t[]){2, 0, 1, 0}, 4);
  uint64_t m = UINT64_MAX, x[] = {0x0123456789ABCDEF, 0};
  check_bytes("u64 bitwise_and by a scalar", eval_binary(MX_OP_BITWISE_AND, arr(MX_U64, 1, V(2), x), arr(MX_U64, 0, NULL, &m)),
              MX_U64, x, 2);
}

static void test_quotient(void) {
  int8_t a[] = {-128, 7, -7, 7, -7, 0}, b[] = {-1, 2, 2, -2, 0, 0};
  check_bytes("s8 quotient (truncates; MIN / -1 wraps; by 0 is 0)",
              eval_binary(MX_OP_QUOTIENT, arr(MX_S8, 1, V(6), a), arr(MX_S8, 1, V(6), b)), MX_S8, (int8_t[]){-128, 3, -3, -3, 0, 0},
              6);
  int64_t c[] = {INT64_MIN, INT64_MAX}, d[] = {-1, 0};
  check_bytes("s64 quotient", eval_binary(MX_OP_QUOTIENT, arr(MX_S64, 1, V(2), c), arr(MX_S64, 1, V(2), d)), MX_S64,
              (int64_t[]){INT64_MIN, 0}, 2);
  uint64_t u[] = {UINT64_MAX, UINT64_MAX}, v[] = {2, 0};
  check_bytes("u64 quotient", eval_binary(MX_OP_QUOTIENT, arr(MX_U64, 1, V(2), u), arr(MX_U64, 1, V(2), v)), MX_U64,
              (uint64_t[]){UINT64_MAX / 2, 0}, 2);
}

static void test_bitcast(void) {
  float f[] = {1.0f, -0.0f};
  mx_array *a = arr(MX_F32, 1, V(2), f), *out = NULL;
  mx_status st = mx_bitcast(a, MX_U32, &out);
  mx_release(a);
  check_bytes("f32 -> u32 bitcast", run_check(st, &out, "bitcast"), MX_U32, (uint32_t[]){0x3F800000u, 0x80000000u}, 2);
  const mx_dtype bad[][2] = {{MX_F32, MX_F64}, {MX_U8, MX_BOOL}, {MX_BOOL, MX_U8}, {MX_C64, MX_S64}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    a = arr(bad[i][0], 1, V(2), (uint64_t[]){0, 0, 0, 0});
    out = NULL;
    st = mx_bitcast(a, bad[i][1], &out);
    CHECK(st != MX_OK && !out && strstr(mx_last_error(), "[bitcast]"), "bitcast %s -> %s should fail: %s",
          mx_dtype_name(bad[i][0]), mx_dtype_name(bad[i][1]), mx_last_error());
    mx_release(a);
  }
  a = arr(MX_S32, 1, V(2), (int32_t[]){1, 2});
  st = mx_unary(MX_OP_BITCAST, a, &out);
  CHECK(st != MX_OK && strstr(mx_last_error(), "mx_bitcast"), "mx_unary(bitcast) names mx_bitcast: %s", mx_last_error());
  mx_release(a);
}

static void test_errors(void) {
  const mx_op ops[] = {MX_OP_BITWISE_AND, MX_OP_BITWISE_OR, MX_OP_BITWISE_XOR, MX_OP_LEFT_SHIFT, MX_OP_RIGHT_SHIFT,
                       MX_OP_QUOTIENT, MX_OP_BITWISE_NOT, MX_OP_COUNT_LEADING_ZEROS, MX_OP_POPULATION_COUNT};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    mx_array *f = arr(MX_F32, 1, V(1), (float[]){1}), *n = arr(MX_S32, 1, V(1), (int32_t[]){1}), *out = NULL;
    mx_status st = mx_ops[ops[i]].family == MX_FAM_UNARY ? mx_unary(ops[i], f, &out) : mx_binary(ops[i], n, f, &out);
    char want[64];
    snprintf(want, sizeof want, "[%s]", mx_ops[ops[i]].name);
    CHECK(st == MX_EINVAL && !out && strstr(mx_last_error(), want) && strstr(mx_last_error(), "f32"),
          "%s of f32 should fail naming the op: %s", mx_ops[ops[i]].name, mx_last_error());
    mx_release(f);
    mx_release(n);
  }
  /* A kernel handed float inputs directly (not through mx_binary/mx_unary) errors, never crashes. */
  mx_array *f = arr(MX_F32, 1, V(2), (float[]){1, 2}), *o = arr(MX_F32, 1, V(2), (float[]){0, 0});
  mx_array *in[2] = {f, f};
  CHECK(mx_k_bitwise_and(o, in) != MX_OK, "bitwise_and kernel on f32 fails");
  CHECK(mx_k_population_count(o, in) != MX_OK, "population_count kernel on f32 fails");
  mx_array *s = arr(MX_S32, 1, V(3), (int32_t[]){1, 2, 3});
  CHECK(mx_k_bitcast(o, &s) != MX_OK, "bitcast kernel with a size mismatch fails");
  mx_release(f);
  mx_release(o);
  mx_release(s);
}

int main(void) {
  test_shifts();
  test_bits();
  test_quotient();
  test_bitcast();
  test_errors();
  return test_summary("test_bitwise: ");
}
