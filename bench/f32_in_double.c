/* f32_in_double.c: the f32 expm1, cosh and sigmoid kernels computed in float libm (the old
 * expressions) and in double rounded once (prim/elementwise.h's FLOAT_UNARY_OPS now):
 * time per element on 1M inputs, alternating old and new, and how often each misses the
 * correctly rounded f32 (against long double, on a sample of all f32 inputs of the domain).
 * Usage: f32_in_double [reps] [sample stride]. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench_util.h"
#include "prim/elementwise.h"
#include "prim/special.h"

/* The kernels' f32 expressions as the engine has them now. */
#define NEW_LOOP(name, f32, f64)                                                             \
  __attribute__((unused, noinline)) static void new_##name(const float *a, float *o, int n) { \
    for (int i = 0; i < n; i++) {                                                            \
      float x = a[i];                                                                        \
      o[i] = f32;                                                                            \
    }                                                                                        \
  }
FLOAT_UNARY_OPS(NEW_LOOP)

/* The previous f32 expressions (float libm; sigmoid in float). */
static inline float logistic_f(float x) {
  float e = expf(-fabsf(x)), r = 1 / (1 + e);
  return x >= 0 ? r : e * r;
}
#define OLD_LOOP(name, expr)                                                        \
  __attribute__((noinline)) static void old_##name(const float *a, float *o, int n) { \
    for (int i = 0; i < n; i++) {                                                   \
      float x = a[i];                                                               \
      o[i] = expr;                                                                  \
    }                                                                               \
  }
OLD_LOOP(expm1, expm1f(x))
OLD_LOOP(cosh, coshf(x))
OLD_LOOP(sigmoid, logistic_f(x))

static long double logistic_l(long double x) {
  long double e = expl(-fabsl(x)), r = 1 / (1 + e);
  return x >= 0 ? r : e * r;
}

typedef void (*loop_fn)(const float *, float *, int);
typedef struct {
  const char *name;
  loop_fn old, new;
  long double (*ref)(long double);
  float lo, hi; /* the sampled domain: finite results */
} op_case;

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 21;
  uint32_t stride = argc > 2 ? (uint32_t)atoi(argv[2]) : 61;
  const int n = 1 << 20;
  float *a = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
  if (!a || !o) return 1;
  srand(12);
  for (int i = 0; i < n; i++) a[i] = 10.0f * ((float)rand() / (float)RAND_MAX) - 5.0f; /* [-5, 5] */
  op_case ops[] = {{"expm1", old_expm1, new_expm1, expm1l, -104.0f, 88.7f},
                   {"cosh", old_cosh, new_cosh, coshl, -89.4f, 89.4f},
                   {"sigmoid", old_sigmoid, new_sigmoid, logistic_l, -104.0f, 104.0f}};
  printf("f32 kernels in float libm (old) vs in double rounded once (new), 1M inputs in [-5, 5], one thread\n");
  print_load();
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    double *t_old = malloc(sizeof(double) * (size_t)reps), *t_new = malloc(sizeof(double) * (size_t)reps);
    if (!t_old || !t_new) return 1;
    ops[k].new(a, o, n); /* warm up */
    for (int r = 0; r < reps; r++) { /* alternate, so load drifts hit both */
      double t0 = now();
      ops[k].old(a, o, n);
      double t1 = now();
      ops[k].new(a, o, n);
      double t2 = now();
      t_old[r] = t1 - t0;
      t_new[r] = t2 - t1;
    }
    double mo = median(t_old, reps), mn = median(t_new, reps);
    printf("  %-8s old %6.2f ns/elem, new %6.2f ns/elem (x%.2f), medians of %d\n", ops[k].name, 1e9 * mo / n,
           1e9 * mn / n, mn / mo, reps);
    free(t_old);
    free(t_new);
  }
  print_load();

  /* Misses against the correctly rounded f32 (long double rounded once), over every
   * stride-th bit pattern whose value lies in the op's domain. */
  printf("correctly rounded? every %u-th f32 bit pattern of the finite domain, vs long double\n", stride);
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    uint64_t total = 0, miss_old = 0, miss_new = 0;
    float x, yo, yn;
    for (uint64_t b = 0; b <= UINT32_MAX; b += stride) {
      uint32_t bits = (uint32_t)b;
      memcpy(&x, &bits, sizeof x);
      if (!(x >= ops[k].lo && x <= ops[k].hi)) continue;
      float truth = (float)ops[k].ref((long double)x);
      ops[k].old(&x, &yo, 1);
      ops[k].new(&x, &yn, 1);
      total++;
      miss_old += yo != truth && !(isnan(yo) && isnan(truth));
      miss_new += yn != truth && !(isnan(yn) && isnan(truth));
    }
    printf("  %-8s %llu inputs: old misses %llu (%.2e), new misses %llu (%.2e)\n", ops[k].name,
           (unsigned long long)total, (unsigned long long)miss_old, (double)miss_old / (double)total,
           (unsigned long long)miss_new, (double)miss_new / (double)total);
  }
  free(a);
  free(o);
  return 0;
}
