/* test_compile.c: tapes (compile.c): capture, folding, CSE, the buffer plan,
 * replay equal to mx_eval, errors, cancellation and flat memory. */
#include <time.h>

#include "test_tape.h"

/* f(x, y) = exp(x) * (2 + 1) + exp(x) * y - sum over nothing: a constant subgraph (2 + 1),
 * a duplicate (exp(x) twice) and broadcasting of a constant. */
static mx_array *build_f(mx_array *x, mx_array *y, mx_array *c2) {
  mx_array *one = scalar(1), *three = bin(MX_OP_ADD, c2, one);
  mx_release(one);
  mx_array *e1 = un(MX_OP_EXP, x), *e2 = un(MX_OP_EXP, x);
  mx_array *a = bin(MX_OP_MULTIPLY, e1, three), *b = bin(MX_OP_MULTIPLY, e2, y);
  mx_array *out = bin(MX_OP_ADD, a, b);
  mx_release(three), mx_release(e1), mx_release(e2), mx_release(a), mx_release(b);
  return out;
}

static void test_replay_equals_eval(void) {
  int64_t s3[1] = {3};
  mx_array *x = ph(MX_F64, 1, s3), *y = ph(MX_F64, 1, s3), *c2 = scalar(2);
  mx_array *out = build_f(x, y, c2);
  mx_array *holders[2] = {x, y};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(holders, 2, &out, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  /* exp, multiply, multiply, add: the duplicate exp merged, 2 + 1 folded */
  CHECK(info.n_instructions == 4, "instructions %d", info.n_instructions);
  CHECK(info.folded == 3, "folded %d", info.folded); /* full(2), full(1) and their sum */
  CHECK(info.merged >= 1, "merged %d", info.merged);
  CHECK(info.cost > 0 && info.bytes > 0 && !info.deep, "cost %lld bytes %lld", (long long)info.cost, (long long)info.bytes);
  CHECK(mx_tape_instruction_op(t, 0) == MX_OP_EXP, "first op %d", mx_tape_instruction_op(t, 0));
  int64_t count, bytes;
  mx_tape_totals(&count, &bytes);
  CHECK(count >= 1 && bytes >= info.bytes, "totals %lld %lld", (long long)count, (long long)bytes);

  for (int rep = 0; rep < 3; rep++) {
    double xv[3] = {0.5 * rep, -1, 2}, yv[3] = {1, 2, 3 + rep};
    mx_array *xa = arr_values(MX_F64, 1, s3, xv), *ya = arr_values(MX_F64, 1, s3, yv);
    mx_array *in[2] = {xa, ya}, *res = NULL;
    st = mx_tape_run(t, in, 2, 0, &res);
    CHECK(st == MX_OK, "run: %s", mx_last_error());
    mx_array *want = build_f(xa, ya, c2);
    run(MX_OK, &want, "eval f");
    if (!st && want) {
      CHECK(mx_is_ready(res) && res->ndim == 1 && res->shape[0] == 3 && res->dtype == MX_F64, "result shape");
      CHECK(!memcmp(mx_data(res), mx_data(want), 3 * sizeof(double)), "replay %d differs from eval", rep);
      double raw[3] = {0};
      const void *rin[2] = {xv, yv};
      void *rout[1] = {raw};
      st = mx_tape_run_raw(t, rin, rout);
      CHECK(st == MX_OK && !memcmp(raw, mx_data(want), sizeof raw), "raw replay %d differs from eval: %s", rep,
            mx_last_error());
      mx_release(res);
    }
    mx_release(want), mx_release(xa), mx_release(ya);
  }
  const mx_array *i0 = mx_tape_input(t, 0), *o0 = mx_tape_output(t, 0);
  CHECK(i0 && i0->dtype == MX_F64 && i0->size == 3 && o0 && o0->size == 3 && !mx_tape_input(t, 2) && !mx_tape_output(t, 1),
        "tape io");
  /* wrong shape and wrong count */
  int64_t s2[1] = {2};
  mx_array *bad = arr_values(MX_F64, 1, s2, (double[]){1, 2}), *in[2] = {bad, bad}, *res = NULL;
  st = mx_tape_run(t, in, 2, 0, &res);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[compile] input 0 is f64[2]"), "bad shape: %s", mx_last_error());
  st = mx_tape_run(t, in, 1, 0, &res);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "takes 2 inputs"), "bad count: %s", mx_last_error());
  /* a disposed input */
  mx_array *gone = arr_values(MX_F64, 1, s3, (double[]){1, 2, 3});
  mx_dispose(gone);
  mx_array *in2[2] = {gone, gone};
  st = mx_tape_run(t, in2, 2, 0, &res);
  CHECK(st == MX_EDISPOSED, "disposed input: %d %s", st, mx_last_error());
  mx_release(gone), mx_release(bad);
  mx_tape_release(t);
  mx_release(out), mx_release(x), mx_release(y), mx_release(c2);
}

static void test_placeholder_refuses_eval(void) {
  int64_t s[1] = {2};
  mx_array *x = ph(MX_F32, 1, s), *y = un(MX_OP_NEGATE, x);
  mx_status st = mx_eval(&y, 1);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[compile] the compiled function's input f32[2] needs a value while tracing"),
        "eval of a placeholder: %s", mx_last_error());
  CHECK(!mx_is_ready(y), "still pending");
  /* a placeholder not among the holders */
  mx_array *z = ph(MX_F32, 1, s);
  mx_tape *t = NULL;
  st = mx_tape_capture(&z, 1, &y, 1, &t);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "placeholder of another trace"), "foreign placeholder: %s", mx_last_error());
  st = mx_tape_capture(&y, 1, &y, 1, &t);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "not a placeholder"), "holder check: %s", mx_last_error());
  mx_release(y), mx_release(x), mx_release(z);
}

/* Outputs that are inputs, constants, aliases (stop_gradient) or the same node twice. */
static void test_odd_outputs(void) {
  int64_t s[1] = {2};
  mx_array *x = ph(MX_F64, 1, s), *c = arr_values(MX_F64, 1, s, (double[]){7, 8});
  mx_array *sg = NULL;
  must(mx_stop_gradient(x, &sg), sg, "stop_gradient");
  mx_array *e = un(MX_OP_EXP, sg);
  mx_array *outs[5] = {x, c, sg, e, e};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, outs, 5, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (!st) {
    mx_array *in = arr_values(MX_F64, 1, s, (double[]){0, 1}), *res[5];
    st = mx_tape_run(t, &in, 1, 0, res);
    CHECK(st == MX_OK, "run: %s", mx_last_error());
    if (!st) {
      CHECK(value_at(res[0], 1) == 1 && value_at(res[1], 0) == 7 && value_at(res[2], 1) == 1, "identity and constant outputs");
      CHECK(value_at(res[3], 0) == 1 && value_at(res[4], 1) == exp(1.0), "exp outputs");
      for (int i = 0; i < 5; i++) mx_release(res[i]);
    }
    /* raw: the input, constant and alias outputs are copies; exp is written in place once, then copied */
    double xv[2] = {0, 1}, o[5][2];
    const void *rin[1] = {xv};
    void *rout[5] = {o[0], o[1], o[2], o[3], o[4]};
    st = mx_tape_run_raw(t, rin, rout);
    CHECK(st == MX_OK && o[0][1] == 1 && o[1][0] == 7 && o[2][1] == 1 && o[3][0] == 1 && o[4][1] == exp(1.0),
          "raw odd outputs: %s", mx_last_error());
    mx_tape_info info;
    mx_tape_info_get(t, &info);
    CHECK(info.n_instructions == 1, "only exp runs: %d", info.n_instructions);
    mx_release(in);
    mx_tape_release(t);
  }
  mx_release(e), mx_release(sg), mx_release(c), mx_release(x);
}

/* Concatenate's kernel reads its input count from the node; many inputs. */
static void test_concatenate_and_reshape(void) {
  int64_t s[1] = {2};
  mx_array *x = ph(MX_F32, 1, s), *parts[5];
  for (int i = 0; i < 5; i++) parts[i] = i % 2 ? bin(MX_OP_ADD, x, x) : un(MX_OP_NEGATE, x);
  mx_array *cat = NULL, *r = NULL;
  must(mx_concatenate(parts, 5, 0, &cat), cat, "concatenate");
  int64_t rs[2] = {5, 2};
  must(mx_reshape(cat, 2, rs, &r), r, "reshape");
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, &r, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (!st) {
    mx_array *in = arr_values(MX_F32, 1, s, (double[]){1, 2}), *res = NULL;
    st = mx_tape_run(t, &in, 1, 0, &res);
    CHECK(st == MX_OK, "run: %s", mx_last_error());
    if (!st) {
      CHECK(res->ndim == 2 && value_at(res, 0) == -1 && value_at(res, 3) == 4 && value_at(res, 9) == -2, "concatenate values");
      mx_release(res);
    }
    mx_tape_info info;
    mx_tape_info_get(t, &info);
    CHECK(info.n_instructions == 4, "negate, add merged; concatenate; reshape: %d", info.n_instructions);
    mx_release(in);
    mx_tape_release(t);
  }
  for (int i = 0; i < 5; i++) mx_release(parts[i]);
  mx_release(cat), mx_release(r), mx_release(x);
}

/* 10^4 replays: buffers come from the cache and active bytes and live arrays return to where they were. */
static void test_memory_flat(void) {
  int64_t s[1] = {1000};
  mx_array *x = ph(MX_F64, 1, s), *a = un(MX_OP_SIN, x), *b = bin(MX_OP_MULTIPLY, a, a), *c = un(MX_OP_EXP, b);
  mx_array *d = NULL;
  must(mx_reduce(MX_OP_SUM, c, NULL, -1, 0, &d), d, "sum");
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, &d, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  mx_release(a), mx_release(b), mx_release(c), mx_release(d), mx_release(x);
  if (st) return;
  double *v = calloc(1000, sizeof *v);
  for (int i = 0; i < 1000; i++) v[i] = i * 1e-3;
  mx_array *in = arr_values(MX_F64, 1, s, v);
  free(v);
  mx_memory_stats s0, s1;
  mx_array *res = NULL;
  mx_tape_run(t, &in, 1, 0, &res); /* warm the cache */
  mx_release(res);
  mx_memory_stats_get(&s0);
  int ok = 1;
  for (int i = 0; i < 10000 && ok; i++) {
    ok = mx_tape_run(t, &in, 1, 0, &res) == MX_OK;
    if (ok) mx_release(res);
  }
  mx_memory_stats_get(&s1);
  CHECK(ok, "replays ran: %s", mx_last_error());
  CHECK(s1.active_bytes == s0.active_bytes && s1.live_arrays == s0.live_arrays, "active %lld -> %lld, live %lld -> %lld",
        (long long)s0.active_bytes, (long long)s1.active_bytes, (long long)s0.live_arrays, (long long)s1.live_arrays);
  CHECK(s1.cache_hits - s0.cache_hits >= s1.alloc_count - s0.alloc_count - 10, "allocations served by the cache: %lld of %lld",
        (long long)(s1.cache_hits - s0.cache_hits), (long long)(s1.alloc_count - s0.alloc_count));
  mx_release(in);
  int64_t n0, b0, n1, b1;
  mx_tape_totals(&n0, &b0);
  mx_tape_release(t);
  mx_tape_totals(&n1, &b1);
  CHECK(n1 == n0 - 1 && b1 < b0, "tape totals drop on release");
}

/* A replay on an engine thread stops when its task is cancelled (its caller died). */
typedef struct {
  mx_tape *t;
  mx_array *in;
  mx_array *res;
  mx_status st;
} job;

static _Atomic int job_started;

static mx_status job_run(void *ctx) {
  job *j = ctx;
  atomic_store(&job_started, 1);
  return j->st = mx_tape_run(j->t, &j->in, 1, 0, &j->res);
}

static _Atomic int cancel_status = -1;

static void job_free(void *ctx) {
  job *j = ctx;
  atomic_store(&cancel_status, (int)j->st);
  if (j->st == MX_OK && j->res) mx_release(j->res);
  mx_release(j->in);
  mx_tape_release(j->t);
  free(j);
}

static void test_cancel(void) {
  int64_t s[1] = {1 << 20};
  mx_array *x = ph(MX_F32, 1, s), *y = x;
  mx_retain(y);
  for (int i = 0; i < 200; i++) {
    mx_array *z = un(i % 2 ? MX_OP_SIN : MX_OP_COS, y);
    mx_release(y);
    y = z;
  }
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, &y, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  mx_release(y), mx_release(x);
  if (st) return;
  mx_memory_stats s0, s1;
  mx_memory_stats_get(&s0);
  job *j = calloc(1, sizeof *j);
  j->t = t;
  j->in = NULL;
  must(mx_full(MX_F32, 1, s, 0.5, &j->in), j->in, "full");
  mx_eval(&j->in, 1);
  j->st = MX_EYIELD;
  mx_task *task;
  st = mx_task_start(job_run, j, job_free, &task);
  CHECK(st == MX_OK, "task start");
  if (st) return;
  mx_tape_retain(t); /* for tape_info after the job is gone */
  /* Abandon only once the replay runs (a loaded machine may start the task late), then 2 ms into it. */
  for (int i = 0; i < 10000 && !atomic_load(&job_started); i++) nanosleep(&(struct timespec){0, 1000000}, NULL);
  mx_task_wait(task, 2000000);
  mx_task_abandon(task);
  for (int i = 0; i < 2000; i++) { /* job_free runs when the cancelled task ends */
    mx_memory_stats_get(&s1);
    if (s1.active_bytes <= s0.active_bytes) break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECK(s1.active_bytes <= s0.active_bytes, "a cancelled replay frees its buffers: %lld -> %lld", (long long)s0.active_bytes,
        (long long)s1.active_bytes);
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  CHECK(info.groups >= 3 && info.fused == 200, "the chain runs as fused groups: %d, %d", info.groups, info.fused);
  CHECK(atomic_load(&cancel_status) == MX_ECANCELLED, "the replay stopped inside a fused group: status %d",
        atomic_load(&cancel_status));
  mx_tape_release(t);
}

/* ---- the replay plan: random DAGs, no-ops, dead nodes, fusion, allocation ---------------- */

static void test_random_dags(void) {
  const int64_t shapes[2][2] = {{3, 2500}, {2, 3}}; /* several odd-sized blocks; tiny */
  int total_groups = 0, total_noops = 0;
  for (int sh = 0; sh < 2; sh++)
    for (uint64_t seed = 1; seed <= 30; seed++) {
      int64_t R = shapes[sh][0], C = shapes[sh][1];
      recipe r = make_recipe(seed * 7919, 1);
      mx_array *pv[N_NODE], *rv[N_NODE];
      uint64_t st = seed;
      for (int i = 0; i < N_LEAF; i++) {
        int64_t shape[2];
        int nd = recipe_leaf_shape(i, R, C, shape);
        pv[i] = ph(MX_F64, nd, shape);
        rv[i] = recipe_leaf_values(i, R, C, &st);
      }
      build_recipe(&r, pv);
      build_recipe(&r, rv);
      mx_array *pouts[3] = {pv[r.out[0]], pv[r.out[1]], pv[r.out[2]]}, *routs[3] = {rv[r.out[0]], rv[r.out[1]], rv[r.out[2]]};
      mx_tape *t = NULL;
      mx_status s1 = mx_tape_capture(pv, N_LEAF, pouts, 3, &t);
      mx_status s2 = mx_eval(routs, 3);
      CHECK(!s1 && !s2, "seed %llu: capture %s", (unsigned long long)seed, mx_last_error());
      if (!s1 && !s2) {
        mx_tape_info info;
        mx_tape_info_get(t, &info);
        total_groups += info.groups, total_noops += info.noops;
        mx_array *res[3];
        for (int rep = 0; rep < 2; rep++) { /* the second replay reuses the context */
          s1 = mx_tape_run(t, rv, N_LEAF, 0, res);
          CHECK(!s1, "seed %llu: run %s", (unsigned long long)seed, mx_last_error());
          for (int o = 0; o < 3 && !s1; o++) {
            CHECK(res[o]->size == routs[o]->size && !memcmp(mx_data(res[o]), mx_data(routs[o]), mx_nbytes(routs[o])),
                  "seed %llu shape %d: output %d differs from eval", (unsigned long long)seed, sh, o);
            mx_release(res[o]);
          }
          const void *in[N_LEAF];
          void *out[3];
          for (int i = 0; i < N_LEAF; i++) in[i] = mx_data(rv[i]);
          for (int o = 0; o < 3; o++) out[o] = calloc(1, mx_nbytes(routs[o]) + 8);
          s1 = mx_tape_run_raw(t, in, out);
          CHECK(!s1, "raw run: %s", mx_last_error());
          for (int o = 0; o < 3 && !s1; o++)
            CHECK(!memcmp(out[o], mx_data(routs[o]), mx_nbytes(routs[o])), "seed %llu shape %d: raw output %d differs",
                  (unsigned long long)seed, sh, o);
          for (int o = 0; o < 3; o++) free(out[o]);
        }
        mx_tape_release(t);
      }
      for (int i = 0; i < N_NODE; i++) mx_release(pv[i]), mx_release(rv[i]);
    }
  CHECK(total_groups > 20 && total_noops > 10, "the DAGs exercise fusion (%d groups) and no-ops (%d)", total_groups,
        total_noops);
}

/* Exact no-ops go, inexact ones stay: x + 0.0 is not x for x = -0.0. */
static void test_noops_and_dead(void) {
  int64_t s[1] = {4};
  mx_array *x = ph(MX_F64, 1, s), *one = scalar(1), *zero = scalar(0), *nzero = scalar(-0.0);
  mx_array *a = bin(MX_OP_MULTIPLY, x, one), *b = bin(MX_OP_DIVIDE, a, one), *c = bin(MX_OP_SUBTRACT, b, zero);
  mx_array *d = bin(MX_OP_ADD, nzero, c), *e = un(MX_OP_NEGATE, d), *f = un(MX_OP_NEGATE, e), *g = NULL, *h = NULL;
  must(mx_as_type(f, MX_F64, &g), g, "as_type");
  mx_array *tr = NULL;
  must(mx_full(MX_BOOL, 0, NULL, 1, &tr), tr, "full");
  must(mx_select(tr, g, x, &h), h, "select");
  mx_array *kept = bin(MX_OP_ADD, h, zero), *out = un(MX_OP_EXP, kept);
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, &out, 1, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (!st) {
    mx_tape_info info;
    mx_tape_info_get(t, &info);
    /* x*1, /1, -0, -0.0+, -(-), as_type, select(true): 7; the inner negate is then dead */
    CHECK(info.noops == 7 && info.dead == 1 && info.n_instructions == 2, "noops %d dead %d instructions %d", info.noops,
          info.dead, info.n_instructions);
    CHECK(mx_tape_instruction_op(t, 0) == MX_OP_ADD && mx_tape_instruction_op(t, 1) == MX_OP_EXP, "add 0.0 kept");
    mx_array *in = arr_values(MX_F64, 1, s, (double[]){-0.0, 1, -2, 3}), *res = NULL;
    st = mx_tape_run(t, &in, 1, 0, &res);
    CHECK(st == MX_OK, "run: %s", mx_last_error());
    mx_array *want = NULL;
    mx_array *w1 = bin(MX_OP_MULTIPLY, in, one), *w2 = bin(MX_OP_ADD, w1, zero);
    want = un(MX_OP_EXP, w2);
    run(MX_OK, &want, "eval");
    if (!st && want) {
      CHECK(!memcmp(mx_data(res), mx_data(want), 4 * sizeof(double)), "values");
      mx_release(res);
    }
    mx_release(want), mx_release(w1), mx_release(w2), mx_release(in);
    mx_tape_release(t);
  }
  mx_array *all[] = {x, one, zero, nzero, a, b, c, d, e, f, g, h, tr, kept, out};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
}

/* One group for a chain with a broadcast input; big enough to split blocks across the pool;
 * results equal eval bit for bit; a replay allocates nothing (run_raw) or only its outputs. */
static void test_fusion_groups(void) {
  int64_t s[2] = {5, 200003}, row[1] = {200003};
  mx_array *x = ph(MX_F32, 2, s), *y = ph(MX_F32, 1, row);
  mx_array *c = NULL;
  must(mx_full(MX_F32, 0, NULL, 0.5, &c), c, "full");
  mx_array *a = un(MX_OP_SIN, x), *b = bin(MX_OP_MULTIPLY, a, y), *d = bin(MX_OP_ADD, b, c), *e = un(MX_OP_ABS, d);
  mx_array *f = bin(MX_OP_SUBTRACT, e, x), *out = un(MX_OP_SQUARE, f), *outs[2] = {out, b};
  mx_array *holders[2] = {x, y};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(holders, 2, outs, 2, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  CHECK(info.groups == 1 && info.fused == 6 && info.n_instructions == 6, "groups %d fused %d", info.groups, info.fused);
  for (int k = 0; k < info.n_instructions; k++) CHECK(mx_tape_instruction_group(t, k) == 0, "instruction %d grouped", k);
  /* b is an output (stored); sin, add, abs, subtract live in scratch blocks: the arena is empty */
  CHECK(info.arena_bytes == 0, "arena %lld", (long long)info.arena_bytes);
  int64_t n = s[0] * s[1];
  float *xv = malloc(sizeof(float) * (size_t)n), *yv = malloc(sizeof(float) * (size_t)row[0]);
  for (int64_t i = 0; i < n; i++) xv[i] = (float)((i * 37) % 1000) / 250.0f - 2.0f;
  for (int64_t i = 0; i < row[0]; i++) yv[i] = (float)((i * 11) % 300) / 100.0f - 1.5f;
  mx_array *xa = arr(MX_F32, 2, s, xv), *ya = arr(MX_F32, 1, row, yv), *rin[2] = {xa, ya}, *res[2];
  st = mx_tape_run(t, rin, 2, 0, res);
  CHECK(st == MX_OK, "run: %s", mx_last_error());
  mx_array *wa = un(MX_OP_SIN, xa), *wb = bin(MX_OP_MULTIPLY, wa, ya), *wd = bin(MX_OP_ADD, wb, c), *we = un(MX_OP_ABS, wd);
  mx_array *wf = bin(MX_OP_SUBTRACT, we, xa), *want = un(MX_OP_SQUARE, wf), *wants[2] = {want, wb};
  mx_eval(wants, 2);
  if (!st) {
    CHECK(!memcmp(mx_data(res[0]), mx_data(want), mx_nbytes(want)), "fused chain equals eval");
    CHECK(!memcmp(mx_data(res[1]), mx_data(wb), mx_nbytes(wb)), "stored member equals eval");
    mx_release(res[0]), mx_release(res[1]);
  }
  float *o0 = malloc(mx_nbytes(want)), *o1 = malloc(mx_nbytes(wb));
  const void *in[2] = {xv, yv};
  void *out_raw[2] = {o0, o1};
  st = mx_tape_run_raw(t, in, out_raw);
  mx_memory_stats m0, m1;
  mx_memory_stats_get(&m0);
  for (int i = 0; i < 20 && !st; i++) st = mx_tape_run_raw(t, in, out_raw);
  mx_memory_stats_get(&m1);
  CHECK(st == MX_OK && !memcmp(o0, mx_data(want), mx_nbytes(want)), "raw fused chain: %s", mx_last_error());
  CHECK(m1.alloc_count == m0.alloc_count && m1.active_bytes == m0.active_bytes, "raw replays allocate nothing: %lld",
        (long long)(m1.alloc_count - m0.alloc_count));
  mx_array *all[] = {x, y, c, a, b, d, e, f, out, xa, ya, wa, wb, wd, we, wf, want};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
  free(xv), free(yv), free(o0), free(o1);
  mx_tape_release(t);
}

/* Small tapes (a gradient's scalars and short vectors): replays through run_raw allocate
 * nothing, through mx_tape_run only their outputs; in-place reuse keeps the arena small. */
static void test_arena_plan(void) {
  int64_t s[1] = {50};
  mx_array *x = ph(MX_F64, 1, s), *a = un(MX_OP_EXP, x), *b = un(MX_OP_SIN, a), *c = bin(MX_OP_MULTIPLY, b, a);
  mx_array *d = NULL, *e = NULL;
  must(mx_reduce(MX_OP_SUM, c, NULL, -1, 0, &d), d, "sum");
  e = bin(MX_OP_MULTIPLY, c, d); /* c stays live across the sum */
  mx_array *f = un(MX_OP_TANH, e), *outs[2] = {f, d};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(&x, 1, outs, 2, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  /* exp, sin, multiply are one group (scratch except c, read by sum and e); tanh takes e's memory */
  CHECK(info.arena_bytes <= 2 * 448 && info.arena_bytes > 0, "arena %lld", (long long)info.arena_bytes);
  double xv[50], o0[50], o1[1];
  for (int i = 0; i < 50; i++) xv[i] = i * 0.01 - 0.2;
  mx_array *xa = arr(MX_F64, 1, s, xv), *ra[2];
  mx_array *wa = un(MX_OP_EXP, xa), *wb = un(MX_OP_SIN, wa), *wc = bin(MX_OP_MULTIPLY, wb, wa), *wd = NULL;
  must(mx_reduce(MX_OP_SUM, wc, NULL, -1, 0, &wd), wd, "sum");
  mx_array *we = bin(MX_OP_MULTIPLY, wc, wd), *wf = un(MX_OP_TANH, we), *wants[2] = {wf, wd};
  mx_eval(wants, 2);
  const void *in[1] = {xv};
  void *out[2] = {o0, o1};
  st = mx_tape_run_raw(t, in, out);
  mx_memory_stats m0, m1;
  mx_memory_stats_get(&m0);
  for (int i = 0; i < 1000 && !st; i++) st = mx_tape_run_raw(t, in, out);
  mx_memory_stats_get(&m1);
  CHECK(st == MX_OK && !memcmp(o0, mx_data(wf), sizeof o0) && o1[0] == value_at(wd, 0), "raw values: %s", mx_last_error());
  CHECK(m1.alloc_count == m0.alloc_count, "1000 raw replays allocated %lld times", (long long)(m1.alloc_count - m0.alloc_count));
  mx_memory_stats_get(&m0);
  for (int i = 0; i < 100 && !st; i++) {
    st = mx_tape_run(t, &xa, 1, 0, ra);
    if (!st) {
      CHECK(!memcmp(mx_data(ra[0]), mx_data(wf), sizeof o0), "run values");
      mx_release(ra[0]), mx_release(ra[1]);
    }
  }
  mx_memory_stats_get(&m1);
  CHECK(m1.alloc_count - m0.alloc_count == 200, "a replay allocates its 2 outputs only: %lld in 100",
        (long long)(m1.alloc_count - m0.alloc_count));
  mx_array *all[] = {x, a, b, c, d, e, f, xa, wa, wb, wc, wd, we, wf};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
  mx_tape_release(t);
}

/* A reduction of a group's last value joins a one-block group (it reads the block in scratch:
 * the same kernel on the same elements, so the same bits); a longer group keeps it apart. */
static void test_trailing_reduction(void) {
  const int64_t sizes[2] = {1500, 5000};
  for (int v = 0; v < 2; v++) {
    int64_t s[2] = {3, sizes[v] / 3};
    mx_array *x = ph(MX_F64, 2, s), *a = un(MX_OP_EXP, x), *b = bin(MX_OP_MULTIPLY, a, x), *out = NULL;
    int ax[1] = {1};
    must(mx_reduce(MX_OP_SUM, b, ax, 1, 0, &out), out, "sum");
    mx_tape *t = NULL;
    mx_status st = mx_tape_capture(&x, 1, &out, 1, &t);
    CHECK(st == MX_OK, "capture: %s", mx_last_error());
    if (st) return;
    mx_tape_info info;
    mx_tape_info_get(t, &info);
    if (v == 0)
      CHECK(info.groups == 1 && info.fused == 3 && mx_tape_instruction_group(t, 2) == 0 && info.arena_bytes == 0,
            "one block: the sum joins (fused %d, arena %lld)", info.fused, (long long)info.arena_bytes);
    else
      CHECK(info.groups == 1 && info.fused == 2 && mx_tape_instruction_group(t, 2) == -1, "several blocks: apart (%d)",
            info.fused);
    int64_t n = s[0] * s[1];
    double *xv = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) xv[i] = (double)((i * 13) % 101) / 50.0 - 1;
    mx_array *xa = arr(MX_F64, 2, s, xv), *res = NULL, *wa = un(MX_OP_EXP, xa), *wb = bin(MX_OP_MULTIPLY, wa, xa), *want = NULL;
    must(mx_reduce(MX_OP_SUM, wb, ax, 1, 0, &want), want, "sum");
    run(MX_OK, &want, "eval");
    st = mx_tape_run(t, &xa, 1, 0, &res);
    CHECK(st == MX_OK && want && !memcmp(mx_data(res), mx_data(want), mx_nbytes(want)), "sum %d equals eval: %s", v,
          mx_last_error());
    if (!st) mx_release(res);
    mx_array *all[] = {x, a, b, out, xa, wa, wb, want};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mx_release(all[i]);
    free(xv);
    mx_tape_release(t);
  }
}

/* f64/bool ops on arrays, scalars broadcast to them and one-element predicates, and whole-array
 * sums: the small-array fast path. Outputs: the selects' result, its sum, is_nan, the mask. */
static void build_fast(mx_array *x, mx_array *sc, mx_array *zero, mx_array **outs) {
  mx_array *a = bin(MX_OP_DIVIDE, x, sc), *e = un(MX_OP_EXP, a), *c = bin(MX_OP_SUBTRACT, sc, x);
  mx_array *p = bin(MX_OP_GREATER_EQUAL, x, sc), *q = bin(MX_OP_LESS, sc, zero), *pq = bin(MX_OP_LOGICAL_AND, p, q);
  mx_array *r1 = NULL, *r2 = NULL, *r3 = NULL;
  must_call(mx_select(pq, e, c, &r1), &r1, "select");  /* elementwise predicate */
  must_call(mx_select(q, r1, x, &r2), &r2, "select");  /* one predicate: copies a branch */
  must_call(mx_select(q, sc, r2, &r3), &r3, "select"); /* one predicate: fills or copies */
  outs[0] = r3, outs[1] = red(MX_OP_SUM, r3, -1, NULL), outs[2] = un(MX_OP_IS_NAN, a), outs[3] = pq;
}

static void test_fast_path(void) {
  track_made = 1;
  int64_t s[1] = {6};
  mx_array *x = ph(MX_F64, 1, s), *sc = ph(MX_F64, 0, NULL), *zero = scalar(0), *outs[4];
  build_fast(x, sc, zero, outs);
  mx_array *holders[2] = {x, sc};
  mx_tape *t = NULL;
  mx_status st = mx_tape_capture(holders, 2, outs, 4, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (st) return;
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  /* divide, exp, subtract, >=, <, and, three selects, sum, is_nan: all on the fast path */
  CHECK(info.n_instructions == 11 && info.fast == 11, "instructions %d, fast %d", info.n_instructions, info.fast);
  for (int k = 0; k < info.n_instructions; k++) CHECK(mx_tape_instruction_fast(t, k), "instruction %d fast", k);
  for (int v = 0; v < 2; v++) { /* scalar < 0 and >= 0: both sides of every select */
    double xv[6] = {-1, 0.5, -0.0, 2, 3.5, -4}, sv = v ? 0.25 : -0.75, o0[6], o1;
    uint8_t o2[6], o3b[6];
    mx_array *xa = arr_values(MX_F64, 1, s, xv), *sa = arr_values(MX_F64, 0, NULL, &sv), *want[4];
    build_fast(xa, sa, zero, want);
    mx_eval(want, 4);
    const void *in[2] = {xv, &sv};
    void *out[4] = {o0, &o1, o2, o3b};
    st = mx_tape_run_raw(t, in, out);
    CHECK(st == MX_OK, "run: %s", mx_last_error());
    CHECK(!memcmp(o0, mx_data(want[0]), sizeof o0) && !memcmp(&o1, mx_data(want[1]), sizeof o1) &&
              !memcmp(o2, mx_data(want[2]), sizeof o2) && !memcmp(o3b, mx_data(want[3]), sizeof o3b),
          "fast path %d equals eval bit for bit", v);
    mx_release(xa), mx_release(sa);
  }
  mx_tape_release(t);
  /* not on the fast path: inputs neither the output's size nor one element, f32, and sums
   * keeping an axis; the same bits as eval too */
  int64_t sr[2] = {3, 1}, scl[2] = {1, 4};
  mx_array *xr = ph(MX_F64, 2, sr), *xc = ph(MX_F32, 2, scl), *xc64 = ph(MX_F64, 2, scl);
  mx_array *m = bin(MX_OP_MULTIPLY, xr, xc64), *f = un(MX_OP_EXP, xc), *k = red(MX_OP_SUM, m, 1, (int[]){0});
  mx_array *h2[3] = {xr, xc, xc64}, *o2[3] = {m, f, k};
  st = mx_tape_capture(h2, 3, o2, 3, &t);
  CHECK(st == MX_OK, "capture: %s", mx_last_error());
  if (!st) {
    mx_tape_info_get(t, &info);
    CHECK(info.n_instructions == 3 && info.fast == 0, "instructions %d, fast %d", info.n_instructions, info.fast);
    double rv[3] = {1, -2, 0.5}, cv64[4] = {0.25, 3, -1, 7}, om[12], ok_[4];
    float cv[4] = {0.5f, -1, 2, 0}, of[4];
    mx_array *ra = arr_values(MX_F64, 2, sr, rv), *ca = arr_values(MX_F64, 2, scl, cv64), *cf = arr(MX_F32, 2, scl, cv);
    mx_array *wm = bin(MX_OP_MULTIPLY, ra, ca), *wf = un(MX_OP_EXP, cf), *wk = red(MX_OP_SUM, wm, 1, (int[]){0});
    mx_array *w[3] = {wm, wf, wk};
    mx_eval(w, 3);
    const void *in[3] = {rv, cv, cv64};
    void *out[3] = {om, of, ok_};
    st = mx_tape_run_raw(t, in, out);
    CHECK(st == MX_OK && !memcmp(om, mx_data(wm), sizeof om) && !memcmp(of, mx_data(wf), sizeof of) &&
              !memcmp(ok_, mx_data(wk), sizeof ok_),
          "general kernels equal eval: %s", mx_last_error());
    mx_release(ra), mx_release(ca), mx_release(cf);
    mx_tape_release(t);
  }
  release_made();
  track_made = 0;
}

int main(void) {
  test_replay_equals_eval();
  test_placeholder_refuses_eval();
  test_odd_outputs();
  test_concatenate_and_reshape();
  test_memory_flat();
  test_random_dags();
  test_noops_and_dead();
  test_fusion_groups();
  test_arena_plan();
  test_trailing_reduction();
  test_fast_path();
  test_cancel();
  return test_summary("test_compile: ");
}
