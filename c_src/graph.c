/* graph.c: evaluation. Collect the pending nodes under the roots in
 * topological order, run each node's kernel, then detach it from its inputs
 * so finished work frees memory as it goes.
 *
 * Several threads (dirty schedulers, normal schedulers running tiny graphs)
 * may evaluate overlapping graphs. Graph structure (in[], state changes) is
 * guarded by one lock held only for bookkeeping, never while a kernel runs;
 * a thread needing a node another thread is computing waits for it. Waiting
 * cannot deadlock: a thread claims a node only after all its inputs are ready. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx.h"

static pthread_mutex_t glock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gdone = PTHREAD_COND_INITIALIZER;
static uint64_t epoch;

typedef struct {
  mx_array **v;
  size_t n, cap;
} vec;

static int vec_push(vec *s, mx_array *a) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    mx_array **v = realloc(s->v, cap * sizeof *v);
    if (!v) return 0;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = a;
  return 1;
}

int mx_op_is_deep(mx_op op) { return mx_ops[op].family == MX_FAM_LINALG; }

/* Adds x's cost when the walk finds it (so a long chain stops the walk early); whether past limit. */
static int counted_past(const mx_array *x, int64_t *cost, int64_t limit, int *deep) {
  *cost += x->cost + (int64_t)mx_nbytes(x) + MX_NODE_COST;
  *deep |= mx_op_is_deep((mx_op)x->op);
  return *cost > limit;
}

/* Post-order DFS over not-ready nodes, under glock. With `order`, appends and
 * retains each node; otherwise just sums costs up to `limit` and notes deep nodes. */
static mx_status collect(mx_array *const *roots, int n, vec *order, int64_t *cost, int64_t limit, int *deep) {
  uint64_t mark = ++epoch;
  vec stack = {0};
  mx_status st = MX_OK;
  for (int r = 0; r < n && st == MX_OK; r++) {
    mx_array *root = roots[r];
    if (root->mark == mark) continue;
    int state = atomic_load(&root->state);
    if (state == MX_READY) continue;
    if (state == MX_DISPOSED) {
      st = mx_error(MX_EDISPOSED, "[eval] the array was disposed; it cannot be evaluated or read");
      break;
    }
    root->mark = mark;
    if (!order && counted_past(root, cost, limit, deep)) break;
    if (!vec_push(&stack, root)) st = mx_error(MX_ENOMEM, "[eval] out of memory");
    /* Iterative DFS: a node is emitted after its inputs; `mark` keeps each node once. */
    int over = 0;
    while (st == MX_OK && !over && stack.n > 0) {
      mx_array *x = stack.v[stack.n - 1];
      int pushed = 0;
      for (int i = 0; i < x->n_in; i++) {
        mx_array *p = x->in[i];
        if (p->mark == mark) continue;
        int ps = atomic_load(&p->state);
        if (ps == MX_READY) continue;
        if (ps == MX_DISPOSED) {
          st = mx_error(MX_EDISPOSED, "[%s] input %d was disposed; build the graph again from live arrays",
                        mx_ops[x->op].name, i);
          break;
        }
        p->mark = mark;
        if (!order && (over = counted_past(p, cost, limit, deep))) break;
        if (!vec_push(&stack, p)) {
          st = mx_error(MX_ENOMEM, "[eval] out of memory");
          break;
        }
        pushed = 1;
        break;
      }
      if (st != MX_OK || over || pushed) continue;
      stack.n--;
      if (order) {
        if (!vec_push(order, x)) {
          st = mx_error(MX_ENOMEM, "[eval] out of memory");
          break;
        }
        mx_retain(x);
      }
    }
    if (!order && *cost > limit) break;
  }
  free(stack.v);
  return st;
}

int64_t mx_graph_size(mx_array *const *roots, int n, int64_t limit) {
  uint64_t mark;
  int64_t count = 0;
  vec stack = {0};
  pthread_mutex_lock(&glock);
  mark = ++epoch;
  for (int r = 0; r < n && count <= limit; r++) {
    if (roots[r]->mark == mark) continue;
    roots[r]->mark = mark;
    if (!vec_push(&stack, roots[r])) break;
    while (stack.n > 0 && count <= limit) {
      mx_array *x = stack.v[--stack.n];
      count++;
      for (int i = 0; i < x->n_in; i++)
        if (x->in[i]->mark != mark) {
          x->in[i]->mark = mark;
          if (!vec_push(&stack, x->in[i])) count = limit + 1; /* out of memory: call it large */
        }
    }
  }
  pthread_mutex_unlock(&glock);
  free(stack.v);
  return count;
}

void mx_graph_lock(void) { pthread_mutex_lock(&glock); }
void mx_graph_unlock(void) { pthread_mutex_unlock(&glock); }

int64_t mx_pending_cost(mx_array *const *roots, int n, int64_t limit, int *deep) {
  int64_t cost = 0;
  *deep = 0;
  pthread_mutex_lock(&glock);
  mx_status st = collect(roots, n, NULL, &cost, limit, deep);
  pthread_mutex_unlock(&glock);
  return st != MX_OK && cost == 0 ? 1 : cost; /* a disposed node: eval reports it */
}

/* Output storage: reshape and stop_gradient share their input's buffer; the rest get a new one. */
static mx_status prepare_output(mx_array *x, mx_array *const *in) {
  if (x->op == MX_OP_RESHAPE || x->op == MX_OP_STOP_GRADIENT) {
    mx_buffer_retain(in[0]->buf);
    x->buf = in[0]->buf;
    return MX_OK;
  }
  if (x->buf) return MX_OK; /* constants */
  return mx_buffer_alloc(mx_nbytes(x), &x->buf);
}

mx_status mx_node_compute(mx_array *x, mx_array *const *in) {
  mx_status st = prepare_output(x, in);
  if (st) {
    char why[1024]; /* name the op whose output could not be allocated */
    snprintf(why, sizeof why, "%s", mx_last_error());
    st = mx_error(st, "[%s] %.900s", mx_ops[x->op].name, why);
  }
  if (st == MX_OK) st = mx_ops[x->op].kernel(x, in);
  if (st == MX_OK && mx_cancelled()) /* chunks were skipped: the output is incomplete */
    st = mx_error(MX_ECANCELLED, "[%s] cancelled: the calling process exited", mx_ops[x->op].name);
  if (st != MX_OK) {
    mx_buffer_release(x->buf);
    x->buf = NULL;
  }
  return st;
}

/* Kernels read private copies of their inputs whose buffers are retained
 * under the lock, so a concurrent dispose of an input cannot pull a buffer
 * out from under a running kernel. */
typedef struct {
  mx_array local[8];
  mx_array *local_ptrs[8];
  mx_array *views;
  mx_array **ptrs;
  int n;
} input_views;

static mx_status views_take(input_views *v, mx_array *x) {
  v->n = x->n_in;
  v->views = v->local;
  v->ptrs = v->local_ptrs;
  if (v->n > 8) {
    v->views = malloc(sizeof(mx_array) * (size_t)v->n);
    v->ptrs = malloc(sizeof(mx_array *) * (size_t)v->n);
    if (!v->views || !v->ptrs) {
      free(v->views);
      free(v->ptrs);
      v->n = 0;
      return mx_error(MX_ENOMEM, "[%s] out of memory", mx_ops[x->op].name);
    }
  }
  for (int i = 0; i < v->n; i++) {
    v->views[i] = *x->in[i];
    v->views[i].in = NULL;
    mx_buffer_retain(v->views[i].buf);
    v->ptrs[i] = &v->views[i];
  }
  return MX_OK;
}

static void views_drop(input_views *v) {
  for (int i = 0; i < v->n; i++) mx_buffer_release(v->views[i].buf);
  if (v->views != v->local) {
    free(v->views);
    free(v->ptrs);
  }
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

mx_status mx_eval(mx_array *const *roots, int n) { return mx_eval_budget(roots, n, 0); }

mx_status mx_eval_budget(mx_array *const *roots, int n, int64_t budget_ns) {
  vec order = {0};
  int64_t unused = 0;
  int unused_deep = 0;
  pthread_mutex_lock(&glock);
  mx_status st = collect(roots, n, &order, &unused, 0, &unused_deep);
  pthread_mutex_unlock(&glock);
  int64_t deadline = budget_ns > 0 ? now_ns() + budget_ns : 0;

  for (size_t k = 0; k < order.n && st == MX_OK; k++) {
    mx_array *x = order.v[k];
    /* Between nodes: a cancelled task stops; an inline eval past its budget yields. */
    if (mx_cancelled()) {
      st = mx_error(MX_ECANCELLED, "[eval] cancelled: the calling process exited");
      break;
    }
    if (deadline && (k & 7) == 7 && now_ns() > deadline) {
      st = mx_error(MX_EYIELD, "[eval] out of time; evaluate again to go on");
      break;
    }
    pthread_mutex_lock(&glock);
    if (deadline && atomic_load(&x->state) == MX_RUNNING) { /* another eval is computing it: don't wait here */
      pthread_mutex_unlock(&glock);
      st = mx_error(MX_EYIELD, "[eval] waiting on another evaluation; evaluate again to go on");
      break;
    }
    while (atomic_load(&x->state) == MX_RUNNING) pthread_cond_wait(&gdone, &glock);
    int state = atomic_load(&x->state);
    if (state != MX_PENDING) {
      pthread_mutex_unlock(&glock);
      if (state == MX_DISPOSED)
        st = mx_error(MX_EDISPOSED, "[%s] the array was disposed while being evaluated", mx_ops[x->op].name);
      continue;
    }
    for (int i = 0; i < x->n_in && st == MX_OK; i++)
      if (atomic_load(&x->in[i]->state) != MX_READY)
        st = mx_error(MX_EDISPOSED, "[%s] input %d was disposed; build the graph again from live arrays",
                      mx_ops[x->op].name, i);
    input_views v;
    if (st == MX_OK) st = views_take(&v, x);
    if (st != MX_OK) {
      pthread_mutex_unlock(&glock);
      break;
    }
    atomic_store(&x->state, MX_RUNNING);
    pthread_mutex_unlock(&glock);

    st = mx_node_compute(x, v.ptrs);
    views_drop(&v);

    pthread_mutex_lock(&glock);
    mx_array **detached = NULL;
    mx_buffer *drop = NULL;
    int n_in = x->n_in;
    if (x->dispose_pending) { /* disposed while running: finish the job of mx_dispose */
      x->dispose_pending = 0;
      drop = x->buf;
      x->buf = NULL;
      detached = x->in;
      x->in = NULL;
      x->n_in = 0;
      atomic_store(&x->state, MX_DISPOSED);
      if (st == MX_OK) st = mx_error(MX_EDISPOSED, "[%s] the array was disposed while being evaluated", mx_ops[x->op].name);
    } else if (st == MX_OK && x->traced) {
      atomic_store(&x->state, MX_READY); /* gradients will walk back through it */
    } else if (st == MX_OK) {
      detached = x->in;
      x->in = NULL;
      x->n_in = 0;
      atomic_store(&x->state, MX_READY);
    } else {
      atomic_store(&x->state, MX_PENDING); /* a later eval raises again */
    }
    pthread_cond_broadcast(&gdone);
    pthread_mutex_unlock(&glock);
    mx_buffer_release(drop);
    if (detached) {
      for (int i = 0; i < n_in; i++) mx_release(detached[i]);
      free(detached);
    }
  }
  for (size_t k = 0; k < order.n; k++) mx_release(order.v[k]);
  free(order.v);
  return st;
}

mx_buffer *mx_acquire_buffer(mx_array *a) {
  pthread_mutex_lock(&glock);
  mx_buffer *b = atomic_load(&a->state) == MX_READY ? a->buf : NULL;
  if (b) mx_buffer_retain(b);
  pthread_mutex_unlock(&glock);
  return b;
}

void mx_graph_detach(mx_array *a, int dispose) {
  pthread_mutex_lock(&glock);
  if (dispose && atomic_load(&a->state) == MX_RUNNING) {
    /* Do not block the caller (a normal scheduler) for a whole kernel: the
     * evaluating thread disposes the node when it finishes. */
    a->dispose_pending = 1;
    pthread_mutex_unlock(&glock);
    return;
  }
  while (atomic_load(&a->state) == MX_RUNNING) pthread_cond_wait(&gdone, &glock);
  mx_array **in = a->in;
  int n_in = a->n_in;
  mx_buffer *buf = NULL;
  a->in = NULL;
  a->n_in = 0;
  if (dispose) {
    buf = a->buf;
    a->buf = NULL;
    atomic_store(&a->state, MX_DISPOSED);
  }
  pthread_mutex_unlock(&glock);
  mx_buffer_release(buf);
  for (int i = 0; i < n_in; i++) mx_release(in[i]);
  free(in);
}
