/* test_compile.c: tapes (compile.c): capture, folding, CSE, the buffer plan,
 * replay equal to mx_eval, errors, cancellation and flat memory. */
#include <time.h>

#include "test_util.h"

static mx_array *ph(mx_dtype t, int nd, const int64_t *shape) {
  mx_array *p = NULL;
  if (mx_placeholder(t, nd, shape, &p)) {
    printf("placeholder: %s\n", mx_last_error());
    exit(2);
  }
  return p;
}

static mx_array *must(mx_status st, mx_array *x, const char *what) {
  if (st) {
    printf("%s: %s\n", what, mx_last_error());
    exit(2);
  }
  return x;
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

static mx_array *scalar(double v) {
  mx_array *o = NULL;
  mx_status st = mx_full(MX_F64, 0, NULL, v, &o);
  return must(st, o, "full");
}

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

static mx_status job_run(void *ctx) {
  job *j = ctx;
  return j->st = mx_tape_run(j->t, &j->in, 1, 0, &j->res);
}

static void job_free(void *ctx) {
  job *j = ctx;
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
  mx_task_wait(task, 2000000); /* let it start */
  mx_task_abandon(task);
  for (int i = 0; i < 2000; i++) { /* job_free runs when the cancelled task ends */
    mx_memory_stats_get(&s1);
    if (s1.active_bytes <= s0.active_bytes) break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECK(s1.active_bytes <= s0.active_bytes, "a cancelled replay frees its buffers: %lld -> %lld", (long long)s0.active_bytes,
        (long long)s1.active_bytes);
}

int main(void) {
  test_replay_equals_eval();
  test_placeholder_refuses_eval();
  test_odd_outputs();
  test_concatenate_and_reshape();
  test_memory_flat();
  test_cancel();
  return test_summary("test_compile: ");
}
