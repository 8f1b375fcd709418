/* test_util.h: the check macro, array builders and evaluation helpers shared by
 * the engine's C tests. Header-only: `make test-c` builds each test_*.c as one
 * translation unit, so each test keeps its own counters. */
#ifndef MX_TEST_UTIL_H
#define MX_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mx.h"

static int passed, failed;

#define CHECK(cond, ...)                          \
  do {                                            \
    if (cond) {                                   \
      passed++;                                   \
    } else {                                      \
      failed++;                                   \
      printf("FAIL %s:%d: ", __FILE__, __LINE__); \
      printf(__VA_ARGS__);                        \
      printf("\n");                               \
    }                                             \
  } while (0)

/* Prints "<prefix>N passed, M failed" and returns the exit status. */
static inline int test_summary(const char *prefix) {
  printf("%s%d passed, %d failed\n", prefix, passed, failed);
  return failed != 0;
}

static inline int64_t numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

static inline int same_shape(const mx_array *x, int ndim, const int64_t *shape) {
  if (x->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++)
    if (x->shape[i] != shape[i]) return 0;
  return 1;
}

/* An array of dtype t copied from data (raw elements of t; NULL for size 0). A test
 * cannot go on without its inputs, so a failure here ends the program. */
static inline mx_array *arr(mx_dtype t, int ndim, const int64_t *shape, const void *data) {
  mx_array *a = NULL;
  size_t nbytes = (size_t)numel(ndim, shape) * (size_t)mx_dtype_size(t);
  if (mx_from_data(t, ndim, shape, data, nbytes, &a) != MX_OK) {
    printf("mx_from_data failed: %s\n", mx_last_error());
    exit(2);
  }
  return a;
}

/* An array of dtype t (a real compute type) holding the values v, converted as C casts. */
static inline mx_array *arr_values(mx_dtype t, int ndim, const int64_t *shape, const double *v) {
  int64_t n = numel(ndim, shape);
  size_t es = (size_t)mx_dtype_size(t);
  char *buf = malloc(n ? (size_t)n * es : 1);
  for (int64_t i = 0; i < n; i++) {
    switch (t) {
#define SET(ID, T) \
  case MX_##ID: ((T *)buf)[i] = (T)v[i]; break;
      MX_COMPUTE_TYPES(SET)
#undef SET
    default: break;
    }
  }
  mx_array *a = arr(t, ndim, shape, buf);
  free(buf);
  return a;
}

/* Element i of an evaluated array as a double; NaN for types outside MX_COMPUTE_TYPES. */
static inline double value_at(const mx_array *a, int64_t i) {
  const void *d = mx_data(a);
  switch ((mx_dtype)a->dtype) {
#define GET(ID, T) \
  case MX_##ID: return (double)((const T *)d)[i];
    MX_COMPUTE_TYPES(GET)
#undef GET
  default: return NAN;
  }
}

/* Evaluates what a constructor built into *xp: the array, or NULL and one failure if
 * either step failed. Takes &x so x is read after the constructor has set it. */
static inline mx_array *run(mx_status st, mx_array **xp, const char *what) {
  mx_array *x = st == MX_OK ? *xp : NULL;
  if (st == MX_OK) st = mx_eval(&x, 1);
  if (st != MX_OK) {
    failed++;
    printf("FAIL %s: %s\n", what, mx_last_error());
    if (x) mx_release(x);
    return *xp = NULL;
  }
  return *xp = x;
}

/* As run, and a success counts as one passed check. */
static inline mx_array *run_check(mx_status st, mx_array **xp, const char *what) {
  mx_array *x = run(st, xp, what);
  if (x) passed++;
  return x;
}

/* One binary / unary op on operands it consumes, evaluated; counts as a passed check. */
static inline mx_array *eval_binary(mx_op op, mx_array *a, mx_array *b) {
  mx_array *out = NULL;
  mx_status st = mx_binary(op, a, b, &out);
  mx_release(a);
  mx_release(b);
  return run_check(st, &out, mx_ops[op].name);
}

static inline mx_array *eval_unary(mx_op op, mx_array *a) {
  mx_array *out = NULL;
  mx_status st = mx_unary(op, a, &out);
  mx_release(a);
  return run_check(st, &out, mx_ops[op].name);
}

/* Bytes equal to want (so NaN patterns and signed zeros count); releases x. */
static inline void check_bytes(const char *what, mx_array *x, mx_dtype t, const void *want, int64_t n) {
  if (!x) return;
  CHECK(x->size == n && (mx_dtype)x->dtype == t, "%s: size %ld dtype %s", what, (long)x->size,
        mx_dtype_name((mx_dtype)x->dtype));
  if (x->size == n && (mx_dtype)x->dtype == t && n > 0)
    CHECK(memcmp(mx_data(x), want, (size_t)n * (size_t)mx_dtype_size(t)) == 0, "%s: values differ", what);
  mx_release(x);
}

/* xorshift64: fixed-seed test data, the same on every machine. */
static inline uint64_t xorshift64(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

#endif
