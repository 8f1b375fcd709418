/* test_exec.c: engine threads (exec.c), cancellation through eval and the pool,
 * budgeted evals, bounded releases and the scheduling cost walk (graph.c). */
#include <unistd.h>

#include "test_util.h"

/* ---- tasks ------------------------------------------------------------------------ */

/* Uses ~4 MB of stack: fine on an engine thread (32 MB), fatal on a BEAM dirty scheduler (~320 KB). */
static mx_status deep_stack(void *ctx) {
  volatile char big[4 << 20];
  for (size_t i = 0; i < sizeof big; i += 4096) big[i] = (char)i;
  *(int *)ctx = big[4096] + mx_on_engine_thread();
  return MX_OK;
}

static mx_status failing(void *ctx) {
  (void)ctx;
  return mx_error(MX_ECOMPUTE, "[test] failed on purpose");
}

static void test_tasks(void) {
  int seen = 0;
  CHECK(mx_run_engine(deep_stack, &seen) == MX_OK && seen == 1, "a deep stack runs on an engine thread (%d)", seen);
  CHECK(!mx_on_engine_thread() && mx_cancel_flag() == NULL && !mx_cancelled(), "the caller is not an engine thread");
  mx_status st = mx_run_engine(failing, NULL);
  CHECK(st == MX_ECOMPUTE && strcmp(mx_last_error(), "[test] failed on purpose") == 0,
        "a task's status and message reach its caller (%d, %s)", st, mx_last_error());
}

/* ---- cancellation --------------------------------------------------------------------- */

typedef struct {
  mx_array *root;
  _Atomic int started, done;
  mx_status st;
} eval_ctx;

static mx_status eval_root(void *ctx) {
  eval_ctx *c = ctx;
  atomic_store(&c->started, 1);
  c->st = mx_eval(&c->root, 1);
  atomic_store(&c->done, 1);
  return c->st;
}

static mx_array *chain(int n) {
  mx_array *x = NULL, *one = NULL;
  mx_full(MX_F64, 0, NULL, 0.0, &x);
  mx_full(MX_F64, 0, NULL, 1.0, &one);
  for (int i = 0; i < n; i++) {
    mx_array *y;
    if (mx_binary(MX_OP_ADD, x, one, &y) != MX_OK) exit(2);
    mx_release(x);
    x = y;
  }
  mx_release(one);
  return x;
}

static void test_cancel_between_nodes(void) {
  eval_ctx *c = calloc(1, sizeof *c);
  c->root = chain(2000000);
  mx_task *t;
  CHECK(mx_task_start(eval_root, c, NULL, &t) == MX_OK, "task starts");
  /* Abandon only once the eval runs (a loaded machine may start the task late), then 20 ms into it. */
  for (int i = 0; i < 10000 && !atomic_load(&c->started); i++) usleep(1000);
  usleep(20000);
  mx_task_abandon(t);
  for (int i = 0; i < 2000 && !atomic_load(&c->done); i++) usleep(1000);
  CHECK(atomic_load(&c->done) && c->st == MX_ECANCELLED, "an abandoned eval stops (done %d, status %d)", atomic_load(&c->done), c->st);
  /* what was computed stays computed; evaluating again finishes the job */
  CHECK(mx_eval(&c->root, 1) == MX_OK && *(double *)mx_data(c->root) == 2000000.0, "evaluating again gives the value");
  mx_release(c->root);
  free(c);
}

static void test_cancel_inside_a_kernel(void) {
  /* one 3000^2 f64 matmul (~27 G multiply-adds): cancelled, it stops after its current row block */
  int64_t s[2] = {3000, 3000};
  mx_array *a = NULL, *m = NULL;
  mx_full(MX_F64, 2, s, 1.0, &a);
  mx_eval(&a, 1);
  mx_matmul(a, a, &m);
  eval_ctx *c = calloc(1, sizeof *c);
  c->root = m;
  mx_task *t;
  mx_task_start(eval_root, c, NULL, &t);
  for (int i = 0; i < 10000 && !atomic_load(&c->started); i++) usleep(1000);
  usleep(50000);
  mx_task_abandon(t);
  int waited = 0;
  while (!atomic_load(&c->done) && waited < 20000) usleep(1000), waited++;
  CHECK(c->st == MX_ECANCELLED && !mx_is_ready(m), "a cancelled matmul fails with MX_ECANCELLED (%d) and stays pending", c->st);
  printf("cancelled 3000^2 matmul stopped %d ms after cancel\n", waited);
  CHECK(mx_eval(&m, 1) == MX_OK && ((double *)mx_data(m))[12345] == 3000.0, "evaluated again, the product is right");
  mx_release(m);
  mx_release(a);
  free(c);
}

/* ---- budgets, costs and bounded releases ------------------------------------------ */

static void test_budget_and_cost(void) {
  mx_array *x = chain(300000);
  int deep = 1;
  int64_t cost = mx_pending_cost(&x, 1, 1 << 21, &deep);
  CHECK(cost > (1 << 21) && cost < (1 << 21) + 4 * MX_NODE_COST && !deep,
        "the cost walk of a long chain stops past the limit (%lld) and finds no deep node", (long long)cost);
  mx_status st = mx_eval_budget(&x, 1, 100000); /* 100 us: far less than 300k nodes need */
  CHECK(st == MX_EYIELD && !mx_is_ready(x), "a budgeted eval yields with work left (%d)", st);
  CHECK(mx_eval(&x, 1) == MX_OK && *(double *)mx_data(x) == 300000.0, "and evaluating again finishes");
  mx_release(x);

  int64_t s[2] = {4, 4};
  mx_array *a = NULL, *m = NULL;
  mx_full(MX_F32, 2, s, 1.0, &a);
  mx_matmul(a, a, &m);
  mx_pending_cost(&m, 1, 1 << 21, &deep);
  CHECK(deep, "a matmul is deep");
  mx_release(m);
  mx_release(a);
}

static void test_bounded_release(void) {
  int64_t base = mx_live_arrays();
  mx_array *x = chain(100000);
  mx_release_bounded(x, 1000);
  mx_reap_wait();
  CHECK(mx_reap_pending() == 0 && mx_live_arrays() == base, "a 10^5-node graph is freed in the background (%lld live, base %lld)",
        (long long)mx_live_arrays(), (long long)base);
}

int main(void) {
  test_tasks();
  test_cancel_between_nodes();
  test_cancel_inside_a_kernel();
  test_budget_and_cost();
  test_bounded_release();
  return test_summary("test_exec: ");
}
