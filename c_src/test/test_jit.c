/* test_jit.c: the generated-C tier (jit.c) on small tapes: the source has fused loops,
 * literals and callbacks where expected, and the native replay equals the interpreter
 * (bit for bit on these tapes: same expressions, same order) for mx_tape_run and
 * mx_tape_run_raw; long groups run split across the pool and equal the interpreter bit for
 * bit (chains, broadcasts over 3 axes, odd sizes, random DAGs), and so do groups ending in
 * reductions (split into fixed parts: sums in that order, within the rounding bound of the
 * interpreter's); a compile failure leaves the interpreter working. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_tape.h"

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

/* ---- long groups: split across the pool ------------------------------------------------- */

/* Captures outs twice: one tape stays on the interpreter, the other is built as C (its
 * source must contain `expect`); both replay `in` through mx_tape_run, the native one also
 * through mx_tape_run_raw, and all agree bit for bit. */
static void check_tiers_equal(const char *what, mx_array **holders, int n_in, mx_array **outs, int n_out, mx_array **in,
                              const char *expect) {
  mx_tape *ti = NULL, *tn = NULL;
  mx_status st = mx_tape_capture(holders, n_in, outs, n_out, &ti);
  if (!st) st = mx_tape_capture(holders, n_in, outs, n_out, &tn);
  CHECK(st == MX_OK, "%s: capture: %s", what, mx_last_error());
  if (st) {
    mx_tape_release(ti);
    return;
  }
  char *src = NULL;
  size_t scratch;
  if (mx_jit_source(tn, &src, &scratch) == MX_OK) {
    CHECK(strstr(src, expect) != NULL, "%s: the source has %s", what, expect);
    free(src);
  }
  mx_tape_jit_start(tn, NULL);
  mx_tier tier = mx_tape_jit_wait(tn, (int64_t)300 * 1000000000);
  mx_jit_info info;
  mx_tape_jit_info(tn, &info);
  CHECK(tier == MX_TIER_NATIVE, "%s: tier %d: %s", what, tier, info.reason);
  mx_array **want = calloc((size_t)n_out, sizeof *want), **got = calloc((size_t)n_out, sizeof *got);
  void **raw = calloc((size_t)n_out, sizeof *raw);
  const void **rin = calloc((size_t)n_in, sizeof *rin);
  st = mx_tape_run(ti, in, n_in, 0, want);
  CHECK(st == MX_OK, "%s: interpreter: %s", what, mx_last_error());
  mx_status st2 = mx_tape_run(tn, in, n_in, 0, got);
  CHECK(st2 == MX_OK, "%s: native: %s", what, mx_last_error());
  for (int i = 0; i < n_in; i++) rin[i] = mx_data(in[i]);
  for (int o = 0; o < n_out && !st; o++) raw[o] = calloc(1, mx_nbytes(want[o]) + 8);
  mx_status st3 = st ? st : mx_tape_run_raw(tn, rin, raw);
  CHECK(st3 == MX_OK, "%s: native raw: %s", what, mx_last_error());
  for (int o = 0; o < n_out && !st && !st2 && !st3; o++) {
    size_t nb = mx_nbytes(want[o]);
    CHECK(got[o]->dtype == want[o]->dtype && got[o]->size == want[o]->size, "%s: output %d signature", what, o);
    CHECK(!memcmp(mx_data(got[o]), mx_data(want[o]), nb), "%s: output %d: native differs from the interpreter", what, o);
    CHECK(!memcmp(raw[o], mx_data(want[o]), nb), "%s: output %d: native raw differs from the interpreter", what, o);
  }
  for (int o = 0; o < n_out; o++) {
    if (!st) mx_release(want[o]);
    if (!st2) mx_release(got[o]);
    free(raw[o]);
  }
  free(want), free(got), free(raw), free(rin);
  mx_tape_release(ti);
  mx_tape_release(tn);
}

static mx_array *f32_scalar(double v) {
  mx_array *o = NULL;
  mx_status st = mx_full(MX_F32, 0, NULL, v, &o);
  return must(st, o, "full");
}

/* compile_chain.c's 8 ops over an odd number of f32 (NaN and infinities among them): one
 * split loop writing its outputs in place; an output twice, and a member as an output. */
static void test_split_chain(void) {
  int64_t n[1] = {(1 << 20) + 3};
  mx_array *x = ph(MX_F32, 1, n), *c[4] = {f32_scalar(1.0001), f32_scalar(0.5), f32_scalar(0.25), f32_scalar(4)};
  mx_array *y = bin(MX_OP_ADD, bin(MX_OP_MULTIPLY, x, c[0]), c[1]);
  mx_array *mid = un(MX_OP_ABS, bin(MX_OP_SUBTRACT, bin(MX_OP_MULTIPLY, y, x), c[2]));
  mx_array *out = bin(MX_OP_ADD, bin(MX_OP_MULTIPLY, bin(MX_OP_MIN, mid, c[3]), c[1]), x);
  mx_array *outs[3] = {out, out, mid};
  double *v = malloc(sizeof(double) * (size_t)n[0]);
  for (int64_t i = 0; i < n[0]; i++) v[i] = (double)(i % 1000) * 0.002 - 1;
  v[5] = NAN, v[7] = INFINITY, v[n[0] - 1] = -INFINITY;
  mx_array *in = must(MX_OK, arr_values(MX_F32, 1, n, v), "input");
  free(v);
  check_tiers_equal("split chain", &x, 1, outs, 3, &in, "mx_parallel_for(");
  release_made();
}

/* Broadcasts over three axes (one of them of length 1), a special function through the host
 * table inside the chunk function, a scalar input, a select; stored members read by partial
 * reductions after the loop (max: the same value in any order). */
static void test_split_broadcast(void) {
  const int64_t shapes[2][3] = {{37, 41, 53}, {301, 1, 257}};
  for (int v = 0; v < 2; v++) {
    const int64_t *S = shapes[v];
    int64_t sy[2] = {S[1], 1}, sz[3] = {S[0], 1, S[2]};
    mx_array *x = ph(MX_F64, 3, S), *y = ph(MX_F64, 2, sy), *z = ph(MX_F64, 3, sz), *s = ph(MX_F64, 0, NULL);
    mx_array *a = bin(MX_OP_MULTIPLY, x, y), *e = un(MX_OP_LGAMMA, bin(MX_OP_ADD, un(MX_OP_EXP, a), s));
    mx_array *w = bin(MX_OP_SUBTRACT, e, z), *sel = NULL;
    must_call(mx_select(bin(MX_OP_GREATER, w, z), w, un(MX_OP_SQUARE, a), &sel), &sel, "select");
    int ax0[1] = {0}, ax2[1] = {2};
    mx_array *mw = red(MX_OP_REDUCE_MAX, w, 1, ax0), *me = red(MX_OP_REDUCE_MAX, e, 1, ax2);
    mx_array *holders[4] = {x, y, z, s}, *outs[5] = {sel, mw, me, a, sel};
    uint64_t st = 17 + (uint64_t)v;
    mx_array *in[4];
    for (int i = 0; i < 3; i++) {
      const mx_array *h = holders[i];
      double *d = malloc(sizeof(double) * (size_t)h->size);
      for (int64_t j = 0; j < h->size; j++) d[j] = (double)(xorshift64(&st) % 2001) / 1000.0 - 1.0;
      in[i] = must(MX_OK, arr_values(MX_F64, h->ndim, h->shape, d), "input");
      free(d);
    }
    in[3] = must(MX_OK, arr_values(MX_F64, 0, NULL, (double[]){1.5}), "input");
    check_tiers_equal(v ? "split broadcast, an axis of 1" : "split broadcast", holders, 4, outs, 5, in, "mx_lgamma(");
    release_made();
  }
}

/* test_compile.c's random DAGs (without sums, whose order differs between the tiers), eight
 * to a tape: long ones ([3, 25013]: split loops) and tiny ones ([2, 3]: the serial form). */
static void test_random_dags_native(void) {
  const int64_t shapes[2][2] = {{3, 25013}, {2, 3}};
  for (int sh = 0; sh < 2; sh++) {
    int64_t R = shapes[sh][0], C = shapes[sh][1];
    mx_array *pv[8][N_NODE], *in[N_LEAF], *outs[24];
    uint64_t st = 99 + (uint64_t)sh;
    for (int i = 0; i < N_LEAF; i++) {
      int64_t shape[2];
      int nd = recipe_leaf_shape(i, R, C, shape);
      pv[0][i] = ph(MX_F64, nd, shape);
      in[i] = must(MX_OK, recipe_leaf_values(i, R, C, &st), "leaf");
    }
    for (int r = 0; r < 8; r++) {
      recipe rc = make_recipe((uint64_t)(r + 1) * 104729, 0);
      for (int i = 0; i < N_LEAF; i++) pv[r][i] = pv[0][i];
      build_recipe(&rc, pv[r]);
      for (int o = 0; o < 3; o++) outs[3 * r + o] = pv[r][rc.out[o]];
    }
    check_tiers_equal(sh ? "random DAGs, tiny" : "random DAGs, split", pv[0], N_LEAF, outs, 24, in,
                      sh ? "mxjit_run" : "mx_parallel_for(");
    release_made();
  }
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

/* A long group ending in full reductions below REDUCE_CALL_MIN splits into P parts (a number
 * in the source, from the group's size and cost): each part folds its range serially, the
 * partials fold in part order. So the sum equals that order recomputed here bit for bit (the
 * same in every run, whatever the threads), max and min equal the interpreter's, and the sum
 * is within the two tiers' rounding bounds of the interpreter's pairwise sum. */
static void test_split_reduction_shape(int nd, const int64_t *sn) {
  const int64_t N = nd == 1 ? sn[0] : sn[0] * sn[1];
  mx_array *x = ph(MX_F64, nd, sn), *y = bin(MX_OP_MULTIPLY, x, scalar(0.5)), *e = un(MX_OP_EXP, y);
  mx_array *outs[5] = {red(MX_OP_SUM, e, -1, NULL), red(MX_OP_REDUCE_MAX, e, -1, NULL), red(MX_OP_REDUCE_MIN, y, -1, NULL), e,
                       red(MX_OP_PRODUCT, bin(MX_OP_ADD, scalar(1), bin(MX_OP_MULTIPLY, x, scalar(1e-7))), -1, NULL)};
  mx_tape *ti = NULL, *tn = NULL;
  mx_status st = mx_tape_capture(&x, 1, outs, 5, &ti);
  if (!st) st = mx_tape_capture(&x, 1, outs, 5, &tn);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  char *src = NULL;
  size_t scratch = 0;
  long long P = 0;
  if (mx_jit_source(tn, &src, &scratch) == MX_OK) {
    const char *at = strstr(src, "mx_parallel_for(");
    CHECK(at && sscanf(at, "mx_parallel_for(%lld, 1, mxjit_g", &P) == 1 && P >= 2 && P <= 64, "the reductions' group splits into parts");
    CHECK(strstr(src, "call(ctx,") == NULL, "no reduction calls its kernel");
    free(src);
  }
  double *xv = malloc(sizeof(double) * (size_t)N);
  for (int64_t i = 0; i < N; i++) xv[i] = 3 * sin(i * 0.37) + (i % 7) * 0.25;
  mx_array *in = arr_values(MX_F64, nd, sn, xv), *want[5], *got[5], *again[5];
  st = mx_tape_run(ti, &in, 1, 0, want);
  CHECK(st == MX_OK, "interpreter: %s", mx_last_error());
  mx_tape_jit_start(tn, NULL);
  CHECK(mx_tape_jit_wait(tn, (int64_t)120 * 1000000000) == MX_TIER_NATIVE, "native");
  mx_status st2 = mx_tape_run(tn, &in, 1, 0, got);
  mx_status st3 = mx_tape_run(tn, &in, 1, 0, again);
  CHECK(st2 == MX_OK && st3 == MX_OK, "native: %s", mx_last_error());
  if (!st && !st2 && !st3 && P >= 2 && P <= 64) { /* MAX_PARTS */
    const double *ev = mx_data(want[3]);
    CHECK(!memcmp(mx_data(got[3]), ev, sizeof(double) * (size_t)N), "the stored member equals the interpreter's");
    for (int o = 1; o < 3; o++)
      CHECK(value_at(got[o], 0) == value_at(want[o], 0), "output %d (max/min) equals the interpreter's", o);
    double parts[64], sum, abs_sum = 0, prod_parts[64], prod;
    for (long long j = 0; j < P; j++) {
      parts[j] = 0, prod_parts[j] = 1;
      for (long long i = j * N / P; i < (j + 1) * N / P; i++) {
        parts[j] += ev[i], abs_sum += fabs(ev[i]);
        prod_parts[j] *= 1 + xv[i] * 1e-7;
      }
    }
    sum = parts[0], prod = prod_parts[0];
    for (long long j = 1; j < P; j++) sum += parts[j], prod *= prod_parts[j];
    double s = value_at(got[0], 0), p = value_at(got[4], 0);
    CHECK(!memcmp(&s, &sum, sizeof s) && !memcmp(&p, &prod, sizeof p), "sum and product fold parts in order: %.17g %.17g",
          s, sum);
    for (int o = 0; o < 5; o++)
      CHECK(!memcmp(mx_data(got[o]), mx_data(again[o]), mx_nbytes(got[o])), "output %d: the same bits on a second run", o);
    /* first-order bounds in units of u sum|e|: N/P + P here (serial parts, then the partials);
     * 32 + log2 N for the interpreter's (16 lanes of 16 in 256-element leaves, then a pairwise tree) */
    double bound = ((double)N / (double)P + (double)P + 32 + ceil(log2((double)N))) * 0x1p-53 * abs_sum;
    CHECK(fabs(s - value_at(want[0], 0)) <= bound, "sum within %g of the interpreter's: %.17g vs %.17g", bound, s,
          value_at(want[0], 0));
  }
  for (int o = 0; o < 5; o++) {
    if (!st) mx_release(want[o]);
    if (!st2) mx_release(got[o]);
    if (!st3) mx_release(again[o]);
  }
  mx_release(in);
  free(xv);
  mx_tape_release(ti);
  mx_tape_release(tn);
  release_made();
}

static void test_split_reduction(void) {
  test_split_reduction_shape(1, (int64_t[]){100003});
  test_split_reduction_shape(2, (int64_t[]){317, 331}); /* parts cut rows: the flat order still */
}

int main(void) {
  char dir[] = "/tmp/test_jit-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  track_made = 1;
  test_native_equals_interpreter(dir);
  test_divide_by_invariant();
  test_split_chain();
  test_split_broadcast();
  test_random_dags_native();
  test_long_reduction_and_repeated_output();
  test_split_reduction();
  test_compile_failure(dir);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) printf("could not remove %s\n", dir);
  return test_summary("test_jit: ");
}
