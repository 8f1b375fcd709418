/* exec.c: engine threads. Deep native code (BLAS, LAPACK, and whole evals
 * that may reach them) runs here on threads with large stacks, never on a
 * BEAM scheduler's small one (a dirty CPU scheduler has ~320 KB, and a
 * threaded OpenBLAS gemm overflowed it). A task is submitted, its caller
 * waits (polling, so a dirty NIF can notice its process died) and may
 * cancel it: the task's evaluation stops at the next node or chunk.
 *
 * Threads are kept idle for reuse; a task never waits for a busy thread to
 * finish (a new one starts, up to MAX_THREADS), because tasks may wait on
 * each other through the graph (graph.c: a node another eval is computing). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx.h"

#define MAX_THREADS 256

struct mx_task {
  _Atomic int32_t refs; /* the submitter's and the runner's */
  _Atomic int32_t cancel;
  int done;              /* under lock */
  mx_task_fn fn;
  void *ctx;
  void (*ctx_free)(void *);
  mx_status status;
  char message[1024];
  struct mx_task *next;  /* queue link */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;  /* a task was queued */
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;  /* a task finished */
static mx_task *head, *tail;
static int nthreads, idle;
static _Thread_local mx_task *current;

static void task_release(mx_task *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  if (t->ctx_free) t->ctx_free(t->ctx);
  free(t);
}

static void *engine_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (!head) {
      idle++;
      pthread_cond_wait(&work, &lock);
      idle--;
    }
    mx_task *t = head;
    head = t->next;
    if (!head) tail = NULL;
    pthread_mutex_unlock(&lock);

    current = t;
    mx_status st = atomic_load(&t->cancel) ? mx_error(MX_ECANCELLED, "[eval] cancelled before it started")
                                           : t->fn(t->ctx);
    current = NULL;
    t->status = st;
    if (st != MX_OK) snprintf(t->message, sizeof t->message, "%s", mx_last_error());

    pthread_mutex_lock(&lock);
    t->done = 1;
    pthread_cond_broadcast(&done);
    pthread_mutex_unlock(&lock);
    task_release(t);
    pthread_mutex_lock(&lock);
  }
  return NULL;
}

/* Under lock: a thread for the queued task if none is idle. */
static mx_status ensure_thread(void) {
  if (idle > 0 || nthreads >= MAX_THREADS) return MX_OK; /* at the cap, tasks queue */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, MX_ENGINE_STACK);
  pthread_t th;
  int rc = pthread_create(&th, &attr, engine_main, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0 && nthreads == 0) return mx_error(MX_ENOMEM, "[eval] cannot start an engine thread (pthread_create failed)");
  if (rc == 0) nthreads++;
  return MX_OK;
}

mx_status mx_task_start(mx_task_fn fn, void *ctx, void (*ctx_free)(void *), mx_task **out) {
  mx_task *t = calloc(1, sizeof *t);
  if (!t) {
    if (ctx_free) ctx_free(ctx);
    return mx_error(MX_ENOMEM, "[eval] out of memory starting a task");
  }
  atomic_init(&t->refs, 2);
  t->fn = fn;
  t->ctx = ctx;
  t->ctx_free = ctx_free;
  pthread_mutex_lock(&lock);
  mx_status st = ensure_thread();
  if (st == MX_OK) {
    if (tail) tail->next = t;
    else head = t;
    tail = t;
    pthread_cond_signal(&work);
  }
  pthread_mutex_unlock(&lock);
  if (st != MX_OK) {
    t->refs = 0;
    if (ctx_free) ctx_free(ctx);
    free(t);
    return st;
  }
  *out = t;
  return MX_OK;
}

int mx_task_wait(mx_task *t, int64_t timeout_ns) {
  pthread_mutex_lock(&lock);
  if (timeout_ns < 0) {
    while (!t->done) pthread_cond_wait(&done, &lock);
  } else if (!t->done) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec += (long)(timeout_ns % 1000000000);
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    while (!t->done && pthread_cond_timedwait(&done, &lock, &ts) == 0) {
    }
  }
  int finished = t->done;
  pthread_mutex_unlock(&lock);
  return finished;
}

mx_status mx_task_finish(mx_task *t) {
  mx_task_wait(t, -1);
  mx_status st = t->status;
  if (st != MX_OK) mx_error(st, "%s", t->message);
  task_release(t);
  return st;
}

void mx_task_detach(mx_task *t) { task_release(t); }

void mx_task_abandon(mx_task *t) {
  atomic_store(&t->cancel, 1);
  task_release(t);
}

mx_status mx_run_engine(mx_task_fn fn, void *ctx) {
  if (current) return fn(ctx); /* already on an engine thread */
  mx_task *t;
  mx_status st = mx_task_start(fn, ctx, NULL, &t);
  return st ? st : mx_task_finish(t);
}

const _Atomic int32_t *mx_cancel_flag(void) { return current ? &current->cancel : NULL; }

int mx_cancelled(void) { return current && atomic_load(&current->cancel); }

int mx_on_engine_thread(void) { return current != NULL; }
