/* test_jit.c: the generated-C tier (jit.c) on small tapes: the source has fused loops,
 * literals and callbacks where expected, and the native replay equals the interpreter
 * (bit for bit on these tapes: same expressions, same order) for mx_tape_run and
 * mx_tape_run_raw; a compile failure leaves the interpreter working. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

/* Every array the builders make, released at the end of the test that made them. */
static mx_array *made[128];
static int n_made;

static mx_array *must(mx_status st, mx_array *x, const char *what) {
  if (st) {
    printf("%s: %s\n", what, mx_last_error());
    exit(2);
  }
  if (x && n_made < 128) made[n_made++] = x;
  return x;
}

static void release_made(void) {
  while (n_made > 0) mx_release(made[--n_made]);
}
static mx_array *ph(mx_dtype t, int nd, const int64_t *shape) {
  mx_array *p = NULL;
  mx_status st = mx_placeholder(t, nd, shape, &p);
  return must(st, p, "placeholder");
}
static mx_array *bin(mx_op op, mx_array *a, mx_array *b) {
  mx_array *o = NULL;
  mx_status st = mx_binary(op, a, b, &o);
  return must(st, o, mx_ops[op].name);
}
static mx_array *un(mx_op op, mx_array *a) {
  mx_array *o = NULL;
  mx_status st = mx_unary(op, a, &o);
  return must(st, o, mx_ops[op].name);
}
static mx_array *red(mx_op op, mx_array *a, int naxes, const int *axes) {
  mx_array *o = NULL;
  mx_status st = mx_reduce(op, a, axes, naxes, 0, &o);
  return must(st, o, mx_ops[op].name);
}

/* A log-density-like tape: x f64[4], y f64[3][4]; lgamma (a special through the table),
 * logaddexp, a select, a partial and a full reduction, a matmul, and a cumulative sum (no
 * rule: a callback), plus an f32 chain and an integer op. */
static int build(mx_array **holders, mx_array **outs) {
  int64_t s4[1] = {4}, s34[2] = {3, 4}, s43[2] = {4, 3};
  mx_array *x = ph(MX_F64, 1, s4), *y = ph(MX_F64, 2, s34), *z = ph(MX_F32, 1, s4), *n = ph(MX_S32, 1, s4);
  holders[0] = x, holders[1] = y, holders[2] = z, holders[3] = n;
  mx_array *half = must(MX_OK, arr_values(MX_F64, 0, NULL, (double[]){0.5}), "half");
  mx_array *d = bin(MX_OP_SUBTRACT, y, x);             /* broadcast x over rows */
  mx_array *sq = bin(MX_OP_MULTIPLY, un(MX_OP_SQUARE, d), half);
  mx_array *lg = un(MX_OP_LGAMMA, un(MX_OP_EXP, x));
  mx_array *la = bin(MX_OP_LOGADDEXP, y, bin(MX_OP_ADD, x, half));
  mx_array *pos = bin(MX_OP_GREATER, y, half), *sel = NULL;
  if (mx_select(pos, la, sq, &sel)) must(MX_EINVAL, NULL, "select");
  must(MX_OK, sel, "select");
  int ax0[1] = {0};
  mx_array *rows = red(MX_OP_SUM, sel, 1, ax0);        /* [4] */
  mx_array *mx = red(MX_OP_REDUCE_MAX, y, -1, NULL);   /* full */
  mx_array *tot = bin(MX_OP_ADD, red(MX_OP_SUM, bin(MX_OP_ADD, rows, lg), -1, NULL), mx);
  mx_array *yt = NULL, *mm = NULL, *cs = NULL;
  int perm[2] = {1, 0};
  if (mx_transpose(y, perm, &yt)) must(MX_EINVAL, NULL, "transpose");
  must(MX_OK, yt, "transpose");  /* [4][3]: no rule, a callback */
  if (mx_matmul(y, yt, &mm)) must(MX_EINVAL, NULL, "matmul");
  must(MX_OK, mm, "matmul");           /* [3][3] */
  (void)s43;
  if (mx_scan(MX_OP_CUMULATIVE_SUM, rows, 0, 0, &cs)) must(MX_EINVAL, NULL, "cumsum");
  must(MX_OK, cs, "cumsum");
  mx_array *zf = un(MX_OP_SIGMOID, bin(MX_OP_MULTIPLY, z, z));
  mx_array *ni = bin(MX_OP_MULTIPLY, n, n);
  outs[0] = tot, outs[1] = mm, outs[2] = cs, outs[3] = zf, outs[4] = ni, outs[5] = x;
  return 6;
}

static void test_native_equals_interpreter(const char *cache) {
  mx_array *holders[4], *outs[6];
  int n_out = build(holders, outs);
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(holders, 4, outs, n_out, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  char *src = NULL;
  size_t scratch = 0;
  st = mx_jit_source(t, &src, &scratch);
  CHECK(st == MX_OK && src, "source: %s", mx_last_error());
  if (src) {
    CHECK(strstr(src, "mx_lgamma (H->mx_lgamma)") != NULL, "specials through the host table");
    CHECK(strstr(src, "call(ctx,") != NULL, "a callback for the instruction with no rule");
    CHECK(strstr(src, "STEP_SUM(r, x)") != NULL && strstr(src, "FCALL(mx_logaddexp, a, b)") != NULL,
          "expressions from elementwise.h");
    CHECK(strstr(src, "static const double") != NULL, "small constants as literals");
    free(src);
  }
  int64_t s4[1] = {4}, s34[2] = {3, 4};
  double xv[4] = {0.1, -0.7, 1.3, 2}, yv[12], zv_d[4] = {0.5, -1, 2, 3}, nv_d[4] = {3, -4, 100000, 7};
  for (int i = 0; i < 12; i++) yv[i] = sin(i + 1.0) * 2;
  mx_array *in[4] = {arr_values(MX_F64, 1, s4, xv), arr_values(MX_F64, 2, s34, yv), arr_values(MX_F32, 1, s4, zv_d),
                     arr_values(MX_S32, 1, s4, nv_d)};
  mx_array *want[6], *got[6];
  st = mx_tape_run(t, in, 4, 0, want);
  CHECK(st == MX_OK, "interpreter: %s", mx_last_error());
  setenv("XDG_CACHE_HOME", cache, 1);
  st = mx_tape_jit_start(t, NULL);
  CHECK(st == MX_OK, "jit start: %s", mx_last_error());
  mx_tier tier = mx_tape_jit_wait(t, (int64_t)120 * 1000000000);
  mx_jit_info info;
  mx_tape_jit_info(t, &info);
  CHECK(tier == MX_TIER_NATIVE, "tier %d: %s", tier, info.reason);
  CHECK(info.wall_ns > 0 && info.cpu_ns > 0 && !info.cache_hit, "compile times %lld %lld", (long long)info.wall_ns,
        (long long)info.cpu_ns);
  st = mx_tape_run(t, in, 4, 0, got);
  CHECK(st == MX_OK, "native: %s", mx_last_error());
  for (int o = 0; o < n_out && !st; o++) {
    CHECK(got[o]->dtype == want[o]->dtype && got[o]->size == want[o]->size, "output %d signature", o);
    for (int64_t i = 0; i < got[o]->size; i++) {
      double a = value_at(got[o], i), b = value_at(want[o], i);
      CHECK(fabs(a - b) <= 4e-16 * fmax(1, fabs(b)), "output %d[%lld]: native %.17g interpreter %.17g", o, (long long)i, a, b);
    }
  }
  /* run_raw: same outputs from raw buffers */
  float zv[4] = {0.5f, -1, 2, 3};
  int32_t nv[4] = {3, -4, 100000, 7};
  double tot = 0, mm[9], cs[4], xo[4];
  float zf[4];
  int32_t ni[4];
  const void *rin[4] = {xv, yv, zv, nv};
  void *rout[6] = {&tot, mm, cs, zf, ni, xo};
  st = mx_tape_run_raw(t, rin, rout);
  CHECK(st == MX_OK, "raw native: %s", mx_last_error());
  CHECK(tot == value_at(got[0], 0) && !memcmp(mm, mx_data(got[1]), sizeof mm) && !memcmp(cs, mx_data(got[2]), sizeof cs) &&
            !memcmp(zf, mx_data(got[3]), sizeof zf) && !memcmp(ni, mx_data(got[4]), sizeof ni) && !memcmp(xo, xv, sizeof xo),
        "raw native equals native");
  for (int o = 0; o < n_out; o++) mx_release(want[o]), mx_release(got[o]);
  /* a second tape of the same function loads from the disk cache */
  mx_tape *t2 = NULL;
  st = mx_tape_capture(holders, 4, outs, n_out, &t2);
  if (!st) {
    mx_tape_jit_start(t2, NULL);
    mx_tape_jit_wait(t2, (int64_t)120 * 1000000000);
    mx_tape_jit_info(t2, &info);
    CHECK(info.tier == MX_TIER_NATIVE && info.cache_hit, "cache hit: tier %d hit %d %s", info.tier, info.cache_hit, info.reason);
    mx_tape_release(t2);
  }
  for (int i = 0; i < 4; i++) mx_release(in[i]);
  release_made(); /* holders, outputs and intermediates */
  mx_tape_release(t);
}

/* x / s with s a scalar (one value over the loop): generated code multiplies by 1 / s when
 * that is a normal number (within 2 ulps of the interpreter's x / s), else divides exactly
 * (s zero, infinite, NaN, subnormal, huge: the same values bit for bit). */
static void test_divide_by_invariant(void) {
  int64_t s6[1] = {6};
  mx_array *x = ph(MX_F64, 1, s6), *s = ph(MX_F64, 0, NULL), *q = bin(MX_OP_DIVIDE, x, s), *hold[2] = {x, s};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(hold, 2, &q, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  char *src = NULL;
  size_t scratch;
  if (mx_jit_source(t, &src, &scratch) == MX_OK) {
    CHECK(strstr(src, "DIV_BY_INVARIANT(a, b, r)") != NULL, "reciprocal form used");
    free(src);
  }
  double xv[6] = {1, -3, 1e-300, 7e300, 0, 0.1};
  double sv[] = {3, -0.7, 1e-310, 0, INFINITY, NAN, 1e308, 5e-324};
  mx_array *xa = arr_values(MX_F64, 1, s6, xv);
  double want[8][6];
  for (int i = 0; i < 8; i++) { /* the interpreter first */
    mx_array *sa = arr_values(MX_F64, 0, NULL, &sv[i]), *in[2] = {xa, sa}, *r = NULL;
    st = mx_tape_run(t, in, 2, 0, &r);
    CHECK(st == MX_OK, "interpreter: %s", mx_last_error());
    if (!st) memcpy(want[i], mx_data(r), sizeof want[i]), mx_release(r);
    mx_release(sa);
  }
  mx_tape_jit_start(t, NULL);
  CHECK(mx_tape_jit_wait(t, (int64_t)120 * 1000000000) == MX_TIER_NATIVE, "native");
  for (int i = 0; i < 8; i++) {
    double got[6];
    const void *rin[2] = {xv, &sv[i]};
    void *rout[1] = {got};
    st = mx_tape_run_raw(t, rin, rout);
    CHECK(st == MX_OK, "native: %s", mx_last_error());
    int normal_r = isnormal(1 / sv[i]);
    for (int j = 0; j < 6 && !st; j++) {
      double a = got[j], b = want[i][j];
      int ok = normal_r ? (a == b || fabs(a - b) <= 4.5e-16 * fabs(b) || (isnan(a) && isnan(b)))
                        : (!memcmp(&a, &b, sizeof a) || (isnan(a) && isnan(b)));
      CHECK(ok, "%g / %g: native %.17g interpreter %.17g", xv[j], sv[i], a, b);
    }
  }
  mx_release(xa);
  mx_tape_release(t);
  release_made();
}

/* A compiler that fails: FAILED with its message, the interpreter keeps working. */
static void test_compile_failure(const char *dir) {
  char cc[1200];
  snprintf(cc, sizeof cc, "%s/false-cc", dir);
  FILE *f = fopen(cc, "w");
  fprintf(f, "#!/bin/sh\necho broken compiler >&2\nexit 3\n");
  fclose(f);
  chmod(cc, 0700);
  setenv("CC", cc, 1);
  int64_t s2[1] = {2};
  mx_array *x = ph(MX_F64, 1, s2), *y = un(MX_OP_EXP, x);
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, &y, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  mx_tape_jit_start(t, NULL);
  mx_tier tier = mx_tape_jit_wait(t, (int64_t)60 * 1000000000);
  mx_jit_info info;
  mx_tape_jit_info(t, &info);
  CHECK(tier == MX_TIER_FAILED && strstr(info.reason, "broken compiler"), "failed tier: %d %s", tier, info.reason);
  mx_array *a = arr_values(MX_F64, 1, s2, (double[]){0, 1}), *r = NULL;
  st = mx_tape_run(t, &a, 1, 0, &r);
  CHECK(st == MX_OK && value_at(r, 1) == exp(1.0), "interpreter after a failed compile");
  mx_release(r), mx_release(a);
  /* no compiler at all: the interpreter, with a note */
  setenv("CC", "/nonexistent/cc", 1);
  mx_tape *t2 = NULL;
  mx_tape_capture(&x, 1, &y, 1, &t2);
  mx_tape_jit_start(t2, NULL);
  mx_tape_jit_info(t2, &info);
  CHECK(info.tier == MX_TIER_INTERPRETER && strstr(info.reason, "no C compiler"), "no compiler: %d %s", info.tier, info.reason);
  unsetenv("CC");
  mx_tape_release(t2);
  mx_tape_release(t);
  release_made();
}

/* A reduction over 200000 elements calls the kernel (chunk partials across the pool: the
 * interpreter's bits), and a slot given as two outputs is written once into the replay's
 * shared buffer, twice into a raw caller's two buffers. */
static void test_long_reduction_and_repeated_output(void) {
  enum { N = 200000 };
  int64_t sn[1] = {N};
  mx_array *x = ph(MX_F64, 1, sn), *e = un(MX_OP_EXP, bin(MX_OP_MULTIPLY, x, x));
  mx_array *outs[4] = {red(MX_OP_SUM, e, -1, NULL), e, e, red(MX_OP_REDUCE_MAX, x, -1, NULL)};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, outs, 4, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  char *src = NULL;
  size_t scratch = 0;
  if (mx_jit_source(t, &src, &scratch) == MX_OK) {
    CHECK(strstr(src, "STEP_SUM(r, x)") == NULL && strstr(src, "STEP_MAX(r, x)") == NULL && strstr(src, "call(ctx, 2)") &&
              strstr(src, "call(ctx, 3)"),
          "long reductions call the kernel");
    CHECK(strstr(src, "O[2] != O[1]") != NULL, "a repeated output is copied only into a buffer of its own");
    free(src);
  }
  double *xv = malloc(sizeof(double) * N);
  for (int i = 0; i < N; i++) xv[i] = sin(i * 0.001);
  mx_array *in = arr_values(MX_F64, 1, sn, xv), *want[4], *got[4];
  st = mx_tape_run(t, &in, 1, 0, want);
  CHECK(st == MX_OK, "interpreter: %s", mx_last_error());
  mx_tape_jit_start(t, NULL);
  CHECK(mx_tape_jit_wait(t, (int64_t)120 * 1000000000) == MX_TIER_NATIVE, "native");
  st = mx_tape_run(t, &in, 1, 0, got);
  CHECK(st == MX_OK, "native: %s", mx_last_error());
  if (!st) {
    for (int o = 0; o < 4; o++)
      CHECK(!memcmp(mx_data(got[o]), mx_data(want[o]), mx_nbytes(want[o])), "output %d: native equals interpreter", o);
    CHECK(mx_data(got[1]) == mx_data(got[2]), "the repeated output shares its buffer");
    double s = 0, m = 0, *e1 = malloc(sizeof(double) * N), *e2 = malloc(sizeof(double) * N);
    const void *rin[1] = {xv};
    void *rout[4] = {&s, e1, e2, &m};
    st = mx_tape_run_raw(t, rin, rout);
    CHECK(st == MX_OK && s == value_at(want[0], 0) && m == value_at(want[3], 0) &&
              !memcmp(e1, mx_data(want[1]), sizeof(double) * N) && !memcmp(e2, mx_data(want[1]), sizeof(double) * N),
          "raw native: both copies of the repeated output, and the reductions");
    free(e1), free(e2);
    for (int o = 0; o < 4; o++) mx_release(got[o]);
  }
  for (int o = 0; o < 4; o++) mx_release(want[o]);
  mx_release(in);
  free(xv);
  mx_tape_release(t);
  release_made();
}

int main(void) {
  char dir[] = "/tmp/test_jit-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  test_native_equals_interpreter(dir);
  test_divide_by_invariant();
  test_long_reduction_and_repeated_output();
  test_compile_failure(dir);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) printf("could not remove %s\n", dir);
  return test_summary("test_jit: ");
}
