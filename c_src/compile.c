/* compile.c: tapes. mx_tape_capture walks the graph between a compiled
 * function's placeholders and its outputs once: parameter-free subgraphs are
 * evaluated there and become constants, duplicate nodes (same op, params and
 * inputs) and equal small constants are merged, stop_gradient and identity
 * reshapes become aliases, and what is left is laid out as straight-line
 * instructions over node structs allocated with the tape. mx_tape_run swaps
 * the call's input buffers into the placeholder slots and runs each
 * instruction's kernel through mx_node_compute (mx_eval's own step): no graph
 * walk, no lock, no node allocation. An intermediate's buffer goes back to the
 * allocator's cache right after its last reader, so replays allocate from the
 * cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx.h"
#include "prim/kernels.h"

/* ---- placeholders ---------------------------------------------------------------- */

mx_status mx_placeholder(mx_dtype t, int ndim, const int64_t *shape, mx_array **out) {
  if ((unsigned)t >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[placeholder] unknown dtype %d", (int)t);
  mx_status st = mx_node_new(MX_OP_PLACEHOLDER, t, ndim, shape, 0, NULL, NULL, out);
  if (!st) (*out)->cost = 0;
  return st;
}

mx_status mx_k_placeholder(mx_array *out, mx_array *const *in) {
  (void)in;
  char d[128];
  return mx_error(MX_EINVAL,
                  "[compile] the compiled function's input %s needs a value while tracing (to_number/to_list or "
                  "control flow on an array); use Mx.where, or compile(..., fallback: true)",
                  mx_describe(out, d, sizeof d));
}

/* ---- tapes ------------------------------------------------------------------------- */

typedef struct {
  mx_array *slots; /* this replay's node structs (a copy of the tape's) */
  mx_array **ptrs; /* instruction inputs: ptrs[in_off[k] ..] point into slots */
  void **P;        /* native tier: each slot's data (jit.c) */
  char *scratch;   /* native tier: the generated code's arena, kept between replays */
  size_t scratch_bytes;
} replay_ctx;

struct mx_tape {
  _Atomic int32_t refs;
  int n_in, n_out, n_const, n_ins, n_slots;
  mx_array *slots;   /* inputs [0, n_in), then constants and instructions; constants hold their buffers */
  mx_params *params; /* one per slot; slots[s].params points here when the node has params */
  int32_t *ins_slot; /* instruction k computes slots[ins_slot[k]] ... */
  int32_t *in_off;   /* ... from slots in_idx[in_off[k] .. in_off[k + 1]) */
  int32_t *in_idx;
  int32_t *free_off; /* after instruction k, free_idx[free_off[k] .. free_off[k + 1]) are dead */
  int32_t *free_idx;
  int32_t *out_slot;
  uint8_t *is_const; /* per slot */
  int folded, merged, deep;
  int64_t cost, bytes;
  _Atomic(replay_ctx *) spare; /* one replay's structs kept for the next */
  _Atomic(mx_jit *) jit;        /* the generated-C tier (jit.c); NULL: interpreter only */
};

static _Atomic int64_t tapes_live, tapes_bytes;

void mx_tape_totals(int64_t *count, int64_t *bytes) {
  *count = atomic_load(&tapes_live);
  *bytes = atomic_load(&tapes_bytes);
}

static void ctx_free(replay_ctx *c) {
  if (!c) return;
  free(c->slots);
  free(c->ptrs);
  free(c->P);
  free(c->scratch);
  free(c);
}

static replay_ctx *ctx_new(const mx_tape *t) {
  replay_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->slots = malloc(sizeof(mx_array) * (size_t)(t->n_slots ? t->n_slots : 1));
  int n_ptrs = t->in_off[t->n_ins];
  c->ptrs = malloc(sizeof(mx_array *) * (size_t)(n_ptrs ? n_ptrs : 1));
  c->P = calloc((size_t)(t->n_slots ? t->n_slots : 1), sizeof(void *));
  if (!c->slots || !c->ptrs || !c->P) {
    ctx_free(c);
    return NULL;
  }
  memcpy(c->slots, t->slots, sizeof(mx_array) * (size_t)t->n_slots);
  for (int i = 0; i < n_ptrs; i++) c->ptrs[i] = &c->slots[t->in_idx[i]];
  for (int s = 0; s < t->n_slots; s++)
    if (t->is_const[s]) c->P[s] = mx_data(&t->slots[s]);
  return c;
}

void mx_tape_retain(mx_tape *t) { atomic_fetch_add(&t->refs, 1); }

void mx_tape_release(mx_tape *t) {
  if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
  for (int s = 0; s < t->n_slots; s++)
    if (t->is_const && t->is_const[s]) mx_buffer_release(t->slots[s].buf);
  ctx_free(atomic_load(&t->spare));
  mx_jit_free(atomic_load(&t->jit));
  free(t->slots);
  free(t->params);
  free(t->ins_slot);
  free(t->in_off);
  free(t->in_idx);
  free(t->free_off);
  free(t->free_idx);
  free(t->out_slot);
  free(t->is_const);
  atomic_fetch_sub(&tapes_live, 1);
  atomic_fetch_sub(&tapes_bytes, t->bytes);
  free(t);
}

void mx_tape_info_get(const mx_tape *t, mx_tape_info *info) {
  *info = (mx_tape_info){t->n_in, t->n_out, t->n_ins, t->n_const, t->folded, t->merged, t->deep, t->cost, t->bytes};
}

mx_op mx_tape_instruction_op(const mx_tape *t, int k) {
  return k >= 0 && k < t->n_ins ? (mx_op)t->slots[t->ins_slot[k]].op : MX_OP_COUNT;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int same_shape(int nd, const int64_t *a, int nd2, const int64_t *b) {
  return nd == nd2 && (nd == 0 || !memcmp(a, b, sizeof(int64_t) * (size_t)nd));
}

/* Runs t's instructions on c's slots (inputs already in place); deadline 0: none. */
static mx_status replay(const mx_tape *t, replay_ctx *c, int64_t deadline) {
  mx_status st = MX_OK;
  for (int k = 0; k < t->n_ins && !st; k++) {
    if (mx_cancelled()) return mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
    if (deadline && (k & 7) == 7 && now_ns() > deadline)
      return mx_error(MX_EYIELD, "[compile] out of time; run the tape again to go on");
    st = mx_node_compute(&c->slots[t->ins_slot[k]], c->ptrs + t->in_off[k]);
    for (int j = t->free_off[k]; j < t->free_off[k + 1] && !st; j++) {
      mx_array *dead = &c->slots[t->free_idx[j]];
      mx_buffer_release(dead->buf);
      dead->buf = NULL;
    }
  }
  return st;
}

/* Drops whatever a replay still holds (outputs, inputs never read, a failed run's
 * intermediates) and keeps c for the next replay. */
static void ctx_done(mx_tape *t, replay_ctx *c) {
  for (int s = 0; s < t->n_slots; s++)
    if (!t->is_const[s] && c->slots[s].buf) {
      mx_buffer_release(c->slots[s].buf);
      c->slots[s].buf = NULL;
    }
  replay_ctx *none = NULL;
  if (!atomic_compare_exchange_strong(&t->spare, &none, c)) ctx_free(c);
}

/* ---- the native tier: generated C (jit.c) ------------------------------------------ */

typedef struct {
  const mx_tape *t;
  replay_ctx *c;
} native_ctx;

/* Runs instruction k's kernel for generated code (no rule in jit.c): its inputs are read
 * through c->P (generated code keeps locals there), its output lands in c->P. */
static int native_call(void *vctx, int k) {
  native_ctx *n = vctx;
  const mx_tape *t = n->t;
  replay_ctx *c = n->c;
  int n_in = t->in_off[k + 1] - t->in_off[k];
  mx_array lv[8], *lp[8], *views = lv, **ptrs = lp;
  mx_buffer lb[8], *bufs = lb;
  if (n_in > 8) {
    views = malloc(sizeof(mx_array) * (size_t)n_in);
    ptrs = malloc(sizeof(mx_array *) * (size_t)n_in);
    bufs = malloc(sizeof(mx_buffer) * (size_t)n_in);
  }
  mx_status st = !views || !ptrs || !bufs ? mx_error(MX_ENOMEM, "[compile] out of memory in a native replay") : MX_OK;
  for (int j = 0; j < n_in && !st; j++) {
    int s = t->in_idx[t->in_off[k] + j];
    views[j] = c->slots[s];
    size_t nb = mx_nbytes(&c->slots[s]);
    bufs[j] = (mx_buffer){.nbytes = nb, .capacity = nb, .data = c->P[s]};
    atomic_init(&bufs[j].refs, 1 << 30); /* borrowed: never freed through the view */
    views[j].buf = &bufs[j];
    ptrs[j] = &views[j];
  }
  mx_array *x = &c->slots[t->ins_slot[k]];
  if (!st) {
    mx_buffer_release(x->buf); /* a run that failed past this instruction left it */
    x->buf = NULL;
    st = mx_node_compute(x, ptrs);
  }
  if (!st) c->P[t->ins_slot[k]] = mx_data(x);
  if (n_in > 8) {
    free(views);
    free(ptrs);
    free(bufs);
  }
  return (int)st;
}

/* One native replay: inputs and constants already in c->P, outputs written to out[j]. */
static mx_status native_replay(mx_tape *t, replay_ctx *c, mx_jit_fn fn, size_t scratch, void *const *out) {
  if (c->scratch_bytes < scratch) {
    free(c->scratch);
    c->scratch_bytes = 0;
    if (!(c->scratch = aligned_alloc(64, (scratch + 63) & ~(size_t)63)))
      return mx_error(MX_ENOMEM, "[compile] out of memory for the native tier's %zu-byte arena", scratch);
    c->scratch_bytes = scratch;
  }
  native_ctx n = {t, c};
  if (mx_cancelled()) return mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
  return (mx_status)fn(c->P, out, mx_jit_host_table(), native_call, &n, c->scratch);
}

/* A native replay into fresh output arrays. */
static mx_status native_outputs(mx_tape *t, replay_ctx *c, mx_jit_fn fn, size_t scratch, mx_array **results) {
  mx_buffer *lb[8], **bufs = t->n_out <= 8 ? lb : calloc((size_t)t->n_out, sizeof(mx_buffer *));
  void *lo[8], **out = t->n_out <= 8 ? lo : calloc((size_t)t->n_out, sizeof(void *));
  mx_status st = !bufs || !out ? mx_error(MX_ENOMEM, "[compile] out of memory starting a replay") : MX_OK;
  int got = 0;
  for (; got < t->n_out && !st; got++) {
    const mx_array *o = &t->slots[t->out_slot[got]];
    st = mx_buffer_alloc(mx_nbytes(o), &bufs[got]);
    if (st) break;
    out[got] = bufs[got]->data;
  }
  if (!st) st = native_replay(t, c, fn, scratch, out);
  int made = 0;
  for (; made < t->n_out && !st; made++) {
    const mx_array *o = &t->slots[t->out_slot[made]];
    st = mx_from_buffer((mx_dtype)o->dtype, o->ndim, o->shape, bufs[made], &results[made]);
  }
  if (st)
    for (int i = 0; i < made; i++) mx_release(results[i]);
  for (int i = 0; i < got && bufs; i++) mx_buffer_release(bufs[i]);
  if (bufs != lb) free(bufs);
  if (out != lo) free(out);
  return st;
}

mx_status mx_tape_run(mx_tape *t, mx_array *const *inputs, int n_in, int64_t budget_ns, mx_array **results) {
  char d1[128], d2[128];
  if (n_in != t->n_in)
    return mx_error(MX_EINVAL, "[compile] the tape takes %d inputs but %d were given", t->n_in, n_in);
  for (int i = 0; i < n_in; i++) {
    const mx_array *h = &t->slots[i], *x = inputs[i];
    if (x->dtype != h->dtype || !same_shape(x->ndim, x->shape, h->ndim, h->shape))
      return mx_error(MX_EINVAL, "[compile] input %d is %s but the tape was traced with %s", i,
                      mx_describe(x, d1, sizeof d1), mx_describe(h, d2, sizeof d2));
  }
  /* Pending inputs are evaluated first, as an eval of them would be. */
  mx_status st = MX_OK;
  for (int i = 0; i < n_in && !st; i++)
    if (!mx_is_ready(inputs[i])) st = mx_eval_budget(inputs, n_in, budget_ns);
  if (st) return st;

  replay_ctx *c = atomic_exchange(&t->spare, NULL);
  if (!c && !(c = ctx_new(t))) return mx_error(MX_ENOMEM, "[compile] out of memory starting a replay");
  for (int i = 0; i < n_in && !st; i++) {
    c->slots[i].buf = mx_acquire_buffer(inputs[i]);
    if (!c->slots[i].buf) st = mx_error(MX_EDISPOSED, "[compile] input %d was disposed; it cannot be read", i);
  }
  mx_jit *jit = atomic_load_explicit(&t->jit, memory_order_acquire);
  size_t scratch;
  mx_jit_fn fn = jit ? mx_jit_native(jit, &scratch) : NULL;
  if (!st && fn) {
    for (int i = 0; i < n_in; i++) c->P[i] = c->slots[i].buf->data;
    st = native_outputs(t, c, fn, scratch, results);
    ctx_done(t, c);
    return st;
  }
  if (!st) st = replay(t, c, budget_ns > 0 ? now_ns() + budget_ns : 0);
  int made = 0;
  for (; made < t->n_out && !st; made++) {
    const mx_array *o = &c->slots[t->out_slot[made]];
    st = mx_from_buffer((mx_dtype)o->dtype, o->ndim, o->shape, o->buf, &results[made]);
  }
  if (st)
    for (int i = 0; i < made; i++) mx_release(results[i]);
  ctx_done(t, c);
  return st;
}

const mx_array *mx_tape_input(const mx_tape *t, int i) { return i >= 0 && i < t->n_in ? &t->slots[i] : NULL; }

const mx_array *mx_tape_output(const mx_tape *t, int j) {
  return j >= 0 && j < t->n_out ? &t->slots[t->out_slot[j]] : NULL;
}

mx_status mx_tape_run_raw(mx_tape *t, const void *const *in, void *const *out) {
  replay_ctx *c = atomic_exchange(&t->spare, NULL);
  if (!c && !(c = ctx_new(t))) return mx_error(MX_ENOMEM, "[compile] out of memory starting a replay");
  mx_status st = MX_OK;
  mx_jit *jit = atomic_load_explicit(&t->jit, memory_order_acquire);
  size_t scratch;
  mx_jit_fn fn = jit ? mx_jit_native(jit, &scratch) : NULL;
  if (fn) {
    for (int i = 0; i < t->n_in; i++) c->P[i] = (void *)in[i];
    st = native_replay(t, c, fn, scratch, out);
    ctx_done(t, c);
    return st;
  }
  for (int i = 0; i < t->n_in && !st; i++) {
    size_t nbytes = (size_t)t->slots[i].size * mx_dtype_size((mx_dtype)t->slots[i].dtype);
    st = mx_buffer_alloc(nbytes, &c->slots[i].buf);
    if (!st && nbytes) memcpy(c->slots[i].buf->data, in[i], nbytes);
  }
  if (!st) st = replay(t, c, 0);
  for (int j = 0; j < t->n_out && !st; j++) {
    const mx_array *o = &c->slots[t->out_slot[j]];
    size_t nbytes = (size_t)o->size * mx_dtype_size((mx_dtype)o->dtype);
    if (nbytes) memcpy(out[j], o->buf->data, nbytes);
  }
  ctx_done(t, c);
  return st;
}

/* ---- capture ----------------------------------------------------------------------- */

enum { E_INPUT, E_CONST, E_NODE };

typedef struct {
  mx_array *node;  /* retained */
  mx_array **in;   /* retained copies of its inputs (E_NODE) */
  int n_in;
  int kind;
  int holder;      /* E_INPUT: which input */
  int depends;     /* reaches a placeholder */
  int slot;        /* -1 until emitted */
  mx_buffer *buf;  /* E_CONST: retained */
} entry;

typedef struct {
  entry *v;
  size_t n, cap;
  size_t *slots; /* open addressing over node pointers: index + 1, 0 = empty */
  size_t nslots;
  size_t *post;  /* entry indices, inputs before consumers */
  size_t npost;
} walk;

static size_t hash_ptr(const void *p, size_t nslots) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull & (nslots - 1); }

static int64_t find(const walk *w, const mx_array *a) {
  if (!w->nslots) return -1;
  for (size_t h = hash_ptr(a, w->nslots);; h = (h + 1) & (w->nslots - 1)) {
    if (!w->slots[h]) return -1;
    if (w->v[w->slots[h] - 1].node == a) return (int64_t)w->slots[h] - 1;
  }
}

static int rehash(walk *w, size_t nslots) {
  size_t *slots = calloc(nslots, sizeof *slots);
  if (!slots) return 0;
  for (size_t i = 0; i < w->n; i++) {
    size_t h = hash_ptr(w->v[i].node, nslots);
    while (slots[h]) h = (h + 1) & (nslots - 1);
    slots[h] = i + 1;
  }
  free(w->slots);
  w->slots = slots;
  w->nslots = nslots;
  return 1;
}

static int64_t add_entry(walk *w, mx_array *a) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 64;
    entry *v = realloc(w->v, cap * sizeof *v);
    if (v) w->v = v;
    size_t *post = realloc(w->post, cap * sizeof *post);
    if (post) w->post = post;
    if (!v || !post) return -1;
    w->cap = cap;
  }
  if (2 * (w->n + 1) > w->nslots && !rehash(w, w->nslots ? 2 * w->nslots : 128)) return -1;
  entry *e = &w->v[w->n];
  memset(e, 0, sizeof *e);
  e->slot = -1;
  mx_retain(a);
  e->node = a;
  size_t h = hash_ptr(a, w->nslots);
  while (w->slots[h]) h = (h + 1) & (w->nslots - 1);
  w->slots[h] = ++w->n;
  return (int64_t)w->n - 1;
}

static void walk_free(walk *w) {
  for (size_t i = 0; i < w->n; i++) {
    for (int j = 0; j < w->v[i].n_in; j++) mx_release(w->v[i].in[j]);
    free(w->v[i].in);
    mx_release(w->v[i].node);
    mx_buffer_release(w->v[i].buf);
  }
  free(w->v);
  free(w->slots);
  free(w->post);
}

/* Classifies e's node under the graph lock and copies a pending node's inputs. */
static mx_status classify(entry *e, mx_array *const *holders, int n_in) {
  mx_array *x = e->node;
  for (int i = 0; i < n_in; i++)
    if (holders[i] == x) {
      e->kind = E_INPUT;
      e->holder = i;
      e->depends = 1;
      return MX_OK;
    }
  mx_status st = MX_OK;
  mx_graph_lock();
  int state = atomic_load(&x->state);
  if (state == MX_DISPOSED) {
    st = mx_error(MX_EDISPOSED, "[compile] the function's result depends on a disposed array (%s)", mx_ops[x->op].name);
  } else if (state == MX_READY) {
    e->kind = E_CONST;
    e->buf = x->buf;
    if (e->buf) mx_buffer_retain(e->buf);
    else st = mx_error(MX_EDISPOSED, "[compile] an evaluated array the function uses has no data");
  } else if (x->op == MX_OP_PLACEHOLDER) {
    st = mx_error(MX_EINVAL, "[compile] the function's result depends on a placeholder of another trace "
                             "(a value kept from an earlier compile); pass it as an argument instead");
  } else {
    e->kind = E_NODE;
    e->n_in = x->n_in;
    e->in = e->n_in ? malloc(sizeof(mx_array *) * (size_t)e->n_in) : NULL;
    if (e->n_in && !e->in) st = mx_error(MX_ENOMEM, "[compile] out of memory");
    for (int i = 0; i < e->n_in && !st; i++) mx_retain(e->in[i] = x->in[i]);
    if (st) e->n_in = 0;
  }
  mx_graph_unlock();
  return st;
}

/* The DFS stack of record(): entry indices and, for each, its next input to visit. */
typedef struct {
  int64_t *at, *next;
  size_t n, cap;
} dfs_stack;

/* Adds a to the walk (classified) and pushes it. */
static mx_status visit(walk *w, mx_array *a, mx_array *const *holders, int n_in, dfs_stack *s) {
  int64_t j = add_entry(w, a);
  mx_status st = j < 0 ? mx_error(MX_ENOMEM, "[compile] out of memory") : classify(&w->v[j], holders, n_in);
  if (st) return st;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    int64_t *a2 = realloc(s->at, s->cap * sizeof *a2);
    if (a2) s->at = a2;
    int64_t *n2 = realloc(s->next, s->cap * sizeof *n2);
    if (n2) s->next = n2;
    if (!a2 || !n2) return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  s->at[s->n] = j;
  s->next[s->n++] = 0;
  return MX_OK;
}

/* Post-order DFS from the outputs; placeholders and evaluated nodes are leaves. */
static mx_status record(walk *w, mx_array *const *holders, int n_in, mx_array *const *outs, int n_out) {
  dfs_stack s = {0};
  mx_status st = MX_OK;
  for (int r = 0; r < n_out && !st; r++) {
    if (find(w, outs[r]) >= 0) continue;
    if ((st = visit(w, outs[r], holders, n_in, &s))) break;
    while (s.n > 0 && !st) {
      entry *e = &w->v[s.at[s.n - 1]];
      if (s.next[s.n - 1] < e->n_in) {
        mx_array *p = e->in[s.next[s.n - 1]++];
        if (find(w, p) < 0) st = visit(w, p, holders, n_in, &s);
        continue;
      }
      for (int i = 0; i < e->n_in && !e->depends; i++) e->depends = w->v[find(w, e->in[i])].depends;
      w->post[w->npost++] = (size_t)s.at[--s.n];
    }
  }
  free(s.at);
  free(s.next);
  return st;
}

/* Parameter-free nodes that a replay would read (outputs, inputs of dependent
 * nodes) are evaluated now, once, and become constants. */
static mx_status fold(walk *w, mx_array *const *outs, int n_out, int *folded) {
  mx_array **roots = malloc(sizeof(mx_array *) * (w->n ? w->n : 1));
  if (!roots) return mx_error(MX_ENOMEM, "[compile] out of memory");
  uint8_t *is_root = calloc(w->n ? w->n : 1, 1);
  if (!is_root) {
    free(roots);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (int o = 0; o < n_out; o++) is_root[find(w, outs[o])] = 1;
  for (size_t i = 0; i < w->n; i++)
    if (w->v[i].kind == E_NODE && w->v[i].depends)
      for (int j = 0; j < w->v[i].n_in; j++) is_root[find(w, w->v[i].in[j])] = 1;
  int n = 0;
  *folded = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (w->v[i].kind != E_NODE || w->v[i].depends) continue;
    (*folded)++;
    if (is_root[i]) roots[n++] = w->v[i].node;
  }
  mx_status st = n ? mx_eval(roots, n) : MX_OK;
  for (size_t i = 0; i < w->n && !st; i++) {
    entry *e = &w->v[i];
    if (e->kind != E_NODE || e->depends || !is_root[i]) continue;
    e->buf = mx_acquire_buffer(e->node);
    if (!e->buf) st = mx_error(MX_EDISPOSED, "[compile] a constant was disposed while the tape was captured");
    e->kind = E_CONST;
  }
  free(roots);
  free(is_root);
  return st;
}

/* Instruction identity for CSE: op, dtype, shape, params and input slots. */
typedef struct {
  int32_t *slot_of_ins; /* hash table: instruction index + 1 */
  size_t cap;
} cse_table;

static int same_params(const mx_params *a, const mx_params *b) {
  if (!a || !b) return a == b;
  return a->nip == b->nip && a->axis == b->axis && a->flags == b->flags && !memcmp(a->f, b->f, sizeof a->f) &&
         (a->nip <= 0 || !memcmp(a->ip, b->ip, sizeof(int64_t) * (size_t)a->nip));
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull; }

typedef struct {
  mx_tape *t;
  int32_t *in_buf; /* in_idx being built */
  size_t n_idx, cap_idx;
  cse_table cse;
  uint64_t *ins_hash;
} builder;

static uint64_t ins_key(const mx_array *x, const int32_t *in, int n) {
  uint64_t h = 0xCBF29CE484222325ull;
  h = mix(h, (uint64_t)x->op);
  h = mix(h, (uint64_t)x->dtype);
  for (int i = 0; i < x->ndim; i++) h = mix(h, (uint64_t)x->shape[i]);
  for (int i = 0; i < n; i++) h = mix(h, (uint64_t)in[i]);
  if (x->params) {
    h = mix(h, (uint64_t)x->params->axis);
    h = mix(h, (uint64_t)x->params->flags);
    for (int i = 0; i < x->params->nip; i++) h = mix(h, (uint64_t)x->params->ip[i]);
  }
  return h;
}

/* A slot for a node struct copied from x (its params into the tape's array). */
static int new_slot(mx_tape *t, const mx_array *x, int n_in) {
  int s = t->n_slots++;
  mx_array *y = &t->slots[s];
  memset(y, 0, sizeof *y);
  atomic_init(&y->refs, 1);
  atomic_init(&y->state, MX_READY);
  y->op = x->op;
  y->dtype = x->dtype;
  y->ndim = x->ndim;
  memcpy(y->shape, x->shape, sizeof y->shape);
  y->size = x->size;
  y->cost = x->cost;
  y->n_in = n_in; /* concatenate's kernel reads its input count here */
  if (x->params) {
    t->params[s] = *x->params;
    y->params = &t->params[s];
  }
  return s;
}

/* The slot of a constant, merging equal small ones. */
#define MERGE_BYTES 256
static int const_slot(mx_tape *t, entry *e) {
  if (e->slot >= 0) return e->slot;
  size_t nb = mx_nbytes(e->node);
  if (nb <= MERGE_BYTES)
    for (int s = 0; s < t->n_slots; s++) {
      mx_array *c = &t->slots[s];
      if (t->is_const[s] && c->dtype == e->node->dtype && same_shape(c->ndim, c->shape, e->node->ndim, e->node->shape) &&
          (nb == 0 || !memcmp(c->buf->data, e->buf->data, nb))) {
        t->merged++;
        return e->slot = s;
      }
    }
  int s = new_slot(t, e->node, 0);
  t->slots[s].op = MX_OP_CONSTANT;
  t->slots[s].params = NULL;
  t->slots[s].buf = e->buf; /* the tape takes the entry's reference */
  e->buf = NULL;
  t->is_const[s] = 1;
  t->n_const++;
  return e->slot = s;
}

static mx_status emit(walk *w, builder *b, mx_array *const *outs, int n_out) {
  mx_tape *t = b->t;
  for (size_t k = 0; k < w->npost; k++) {
    entry *e = &w->v[w->post[k]];
    if (e->kind == E_INPUT) {
      e->slot = e->holder;
      continue;
    }
    if (e->kind != E_NODE || !e->depends) continue; /* constants get slots when read */
    mx_array *x = e->node;
    int32_t local[8], *in = e->n_in <= 8 ? local : malloc(sizeof(int32_t) * (size_t)e->n_in);
    if (!in) return mx_error(MX_ENOMEM, "[compile] out of memory");
    for (int i = 0; i < e->n_in; i++) {
      entry *p = &w->v[find(w, e->in[i])];
      in[i] = p->kind == E_CONST ? const_slot(t, p) : p->slot;
    }
    /* stop_gradient and an identity reshape (trace_input) share their input's buffer: aliases. */
    if (x->op == MX_OP_STOP_GRADIENT ||
        (x->op == MX_OP_RESHAPE && same_shape(x->ndim, x->shape, e->in[0]->ndim, e->in[0]->shape))) {
      e->slot = in[0];
      t->merged++;
      if (in != local) free(in);
      continue;
    }
    uint64_t h = ins_key(x, in, e->n_in);
    for (size_t p = h & (b->cse.cap - 1); b->cse.slot_of_ins[p]; p = (p + 1) & (b->cse.cap - 1)) {
      int j = b->cse.slot_of_ins[p] - 1;
      const mx_array *y = &t->slots[t->ins_slot[j]];
      int n_j = t->in_off[j + 1] - t->in_off[j];
      if (b->ins_hash[j] == h && y->op == x->op && y->dtype == x->dtype && n_j == e->n_in &&
          same_shape(y->ndim, y->shape, x->ndim, x->shape) && same_params(y->params, x->params) &&
          (e->n_in == 0 || !memcmp(b->in_buf + t->in_off[j], in, sizeof(int32_t) * (size_t)e->n_in))) {
        e->slot = t->ins_slot[j];
        break;
      }
    }
    if (e->slot >= 0) {
      t->merged++;
      if (in != local) free(in);
      continue;
    }
    int kk = t->n_ins++;
    e->slot = new_slot(t, x, e->n_in);
    t->ins_slot[kk] = e->slot;
    b->ins_hash[kk] = h;
    t->in_off[kk] = (int32_t)b->n_idx;
    memcpy(b->in_buf + b->n_idx, in, sizeof(int32_t) * (size_t)e->n_in);
    b->n_idx += (size_t)e->n_in;
    t->in_off[kk + 1] = (int32_t)b->n_idx;
    size_t p = h & (b->cse.cap - 1);
    while (b->cse.slot_of_ins[p]) p = (p + 1) & (b->cse.cap - 1);
    b->cse.slot_of_ins[p] = kk + 1;
    t->cost += x->cost + (int64_t)mx_nbytes(x) + MX_NODE_COST;
    t->deep |= mx_op_is_deep((mx_op)x->op);
    if (in != local) free(in);
  }
  for (int o = 0; o < n_out; o++) {
    entry *e = &w->v[find(w, outs[o])];
    t->out_slot[o] = e->kind == E_CONST ? const_slot(t, e) : e->slot;
  }
  return MX_OK;
}

/* Last-use plan: each non-constant, non-output slot is freed after its last reader. */
static mx_status plan(mx_tape *t) {
  int32_t *last = malloc(sizeof(int32_t) * (size_t)(t->n_slots ? t->n_slots : 1));
  uint8_t *keep = calloc((size_t)(t->n_slots ? t->n_slots : 1), 1);
  t->free_off = malloc(sizeof(int32_t) * (size_t)(t->n_ins + 1));
  t->free_idx = malloc(sizeof(int32_t) * (size_t)(t->n_slots ? t->n_slots : 1));
  if (!last || !keep || !t->free_off || !t->free_idx) {
    free(last);
    free(keep);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (int s = 0; s < t->n_slots; s++) last[s] = -1;
  for (int o = 0; o < t->n_out; o++) keep[t->out_slot[o]] = 1;
  for (int k = 0; k < t->n_ins; k++) {
    last[t->ins_slot[k]] = k; /* read by nobody: freed right after it is made */
    for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) last[t->in_idx[j]] = k;
  }
  int n = 0;
  for (int k = 0; k < t->n_ins; k++) {
    t->free_off[k] = n;
    for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) {
      int s = t->in_idx[j];
      if (last[s] == k && !keep[s] && !t->is_const[s]) {
        t->free_idx[n++] = s;
        last[s] = -2; /* listed once even when read twice */
      }
    }
    int s = t->ins_slot[k];
    if (last[s] == k && !keep[s]) t->free_idx[n++] = s, last[s] = -2;
  }
  t->free_off[t->n_ins] = n;
  free(last);
  free(keep);
  return MX_OK;
}

mx_status mx_tape_capture(mx_array *const *holders, int n_in, mx_array *const *outs, int n_out, mx_tape **out) {
  for (int i = 0; i < n_in; i++) {
    if (holders[i]->op != MX_OP_PLACEHOLDER)
      return mx_error(MX_EINVAL, "[compile] input %d is a %s node, not a placeholder", i, mx_ops[holders[i]->op].name);
    for (int j = 0; j < i; j++)
      if (holders[j] == holders[i]) return mx_error(MX_EINVAL, "[compile] placeholder %d is given twice", i);
  }
  walk w = {0};
  mx_status st = record(&w, holders, n_in, outs, n_out);
  int folded = 0;
  if (!st) st = fold(&w, outs, n_out, &folded);
  mx_tape *t = NULL;
  builder b = {0};
  if (!st) {
    size_t n_slots = (size_t)n_in + w.n + 1, n_idx = 0;
    for (size_t i = 0; i < w.n; i++) n_idx += (size_t)w.v[i].n_in;
    t = calloc(1, sizeof *t);
    size_t cap = 16;
    while (cap < 2 * w.n) cap *= 2;
    if (t) {
      t->slots = calloc(n_slots, sizeof(mx_array));
      t->params = calloc(n_slots, sizeof(mx_params));
      t->is_const = calloc(n_slots, 1);
      t->ins_slot = malloc(sizeof(int32_t) * (w.n + 1));
      t->in_off = malloc(sizeof(int32_t) * (w.n + 2));
      t->out_slot = malloc(sizeof(int32_t) * (size_t)(n_out ? n_out : 1));
      b.in_buf = malloc(sizeof(int32_t) * (n_idx ? n_idx : 1));
      b.cse.slot_of_ins = calloc(cap, sizeof(int32_t));
      b.cse.cap = cap;
      b.ins_hash = malloc(sizeof(uint64_t) * (w.n + 1));
    }
    if (!t || !t->slots || !t->params || !t->is_const || !t->ins_slot || !t->in_off || !t->out_slot || !b.in_buf ||
        !b.cse.slot_of_ins || !b.ins_hash)
      st = mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  if (!st) {
    atomic_init(&t->refs, 1);
    t->n_in = n_in;
    t->n_out = n_out;
    t->folded = folded;
    t->in_off[0] = 0;
    b.t = t;
    for (int i = 0; i < n_in; i++) new_slot(t, holders[i], 0);
    st = emit(&w, &b, outs, n_out);
  }
  if (!st) {
    t->in_idx = b.in_buf;
    b.in_buf = NULL;
    st = plan(t);
  }
  free(b.in_buf);
  free(b.cse.slot_of_ins);
  free(b.ins_hash);
  walk_free(&w);
  if (t) {
    /* Counted before any release, which subtracts them. */
    t->bytes = (int64_t)(sizeof *t + (size_t)t->n_slots * (sizeof(mx_array) + sizeof(mx_params) + 1) +
                         sizeof(int32_t) * (size_t)(3 * t->n_ins + 2 * t->n_slots + t->n_out + 3) +
                         sizeof(int32_t) * (size_t)(t->n_ins ? t->in_off[t->n_ins] : 0));
    for (int s = 0; s < t->n_slots; s++)
      if (t->is_const[s]) t->bytes += (int64_t)t->slots[s].buf->capacity;
    atomic_fetch_add(&tapes_live, 1);
    atomic_fetch_add(&tapes_bytes, t->bytes);
    if (!t->refs) atomic_init(&t->refs, 1);
  }
  if (st) {
    mx_tape_release(t);
    return st;
  }
  *out = t;
  return MX_OK;
}

/* ---- for jit.c ----------------------------------------------------------------------- */

void mx_tape_view_get(const mx_tape *t, mx_tape_view *v) {
  *v = (mx_tape_view){t->n_in, t->n_out, t->n_ins, t->n_slots, t->slots, t->ins_slot, t->in_off, t->in_idx,
                      t->out_slot, t->is_const};
}

int mx_tape_jit_install(mx_tape *t, mx_jit *j) {
  mx_jit *none = NULL;
  return atomic_compare_exchange_strong(&t->jit, &none, j);
}

mx_jit *mx_tape_jit(const mx_tape *t) { return atomic_load_explicit(&((mx_tape *)t)->jit, memory_order_acquire); }
