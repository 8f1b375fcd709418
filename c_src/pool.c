/* pool.c: a tiny thread pool for splitting large kernels across cores.
 * Work is cut into chunks handed out through an atomic counter: the caller
 * starts on them at once and never waits for a worker that has not woken
 * up yet (on a loaded machine it may not), only for chunks already taken.
 * One caller at a time owns the workers; a concurrent caller (another dirty
 * scheduler) runs its range serially rather than queueing behind. Chunks are
 * skipped (counted, not run) once the calling task is cancelled (exec.c). */
#include <pthread.h>
#include <unistd.h>

#include "mx.h"

#define MAX_WORKERS 64
#define CHUNKS_PER_THREAD 4

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* held by the caller that owns the workers */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t job_done = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int nworkers; /* threads besides the caller */

/* The job being run. `next` packs the job's generation (high 32 bits) with
 * the next chunk index, so a worker that wakes late can never take a chunk
 * of a later job with the previous job's function. */
static struct {
  mx_range_fn fn;
  void *ctx;
  int64_t n, chunk, nchunks;
  uint32_t generation;
  const _Atomic int32_t *cancel;
  _Atomic uint64_t next;
  _Atomic int64_t finished; /* chunks completed */
} job;

typedef struct {
  mx_range_fn fn;
  void *ctx;
  int64_t n, chunk, nchunks;
  uint32_t generation;
  const _Atomic int32_t *cancel;
} job_view;

static void run_chunks(const job_view *j) {
  for (;;) {
    uint64_t v = atomic_load(&job.next);
    if ((uint32_t)(v >> 32) != j->generation || (int64_t)(v & 0xFFFFFFFFu) >= j->nchunks) return;
    if (!atomic_compare_exchange_weak(&job.next, &v, v + 1)) continue;
    int64_t lo = (int64_t)(v & 0xFFFFFFFFu) * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    if (!j->cancel || !atomic_load(j->cancel)) j->fn(j->ctx, lo, hi);
    if (atomic_fetch_add(&job.finished, 1) + 1 == j->nchunks) {
      pthread_mutex_lock(&job_lock);
      pthread_cond_signal(&job_done);
      pthread_mutex_unlock(&job_lock);
    }
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  pthread_mutex_lock(&job_lock);
  for (;;) {
    while (job.generation == seen) pthread_cond_wait(&job_ready, &job_lock);
    seen = job.generation;
    job_view j = {job.fn, job.ctx, job.n, job.chunk, job.nchunks, job.generation, job.cancel};
    pthread_mutex_unlock(&job_lock);
    run_chunks(&j);
    pthread_mutex_lock(&job_lock);
  }
  return NULL;
}

static void start_pool(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int want = (int)(cores > 1 ? cores - 1 : 0);
  if (want > MAX_WORKERS) want = MAX_WORKERS;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, MX_ENGINE_STACK); /* chunks may call LAPACK (prim/linalg.c) */
  for (int i = 0; i < want; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, worker_main, NULL) != 0) break;
    nworkers++;
  }
  pthread_attr_destroy(&attr);
}

int mx_num_threads(void) {
  pthread_once(&once, start_pool);
  return nworkers + 1;
}

void mx_parallel_for(int64_t n, int64_t grain, mx_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const _Atomic int32_t *cancel = mx_cancel_flag();
  if (n < 2 * grain || mx_num_threads() == 1 || pthread_mutex_trylock(&pool_lock) != 0) {
    /* Serially, in pieces when cancellable, so a cancelled task stops within a piece. */
    int64_t piece = cancel ? (n / 8 > grain ? n / 8 : grain) : n;
    for (int64_t lo = 0; lo < n && !(cancel && atomic_load(cancel)); lo += piece) fn(ctx, lo, lo + piece < n ? lo + piece : n);
    return;
  }
  int64_t nchunks = (int64_t)(nworkers + 1) * CHUNKS_PER_THREAD;
  if (nchunks > n / grain) nchunks = n / grain;
  int64_t chunk = (n + nchunks - 1) / nchunks;
  pthread_mutex_lock(&job_lock);
  uint32_t gen = job.generation + 1;
  if (gen == 0) gen = 1; /* 0 is what a new worker has seen */
  job_view j = {fn, ctx, n, chunk, (n + chunk - 1) / chunk, gen, cancel};
  job.cancel = cancel;
  job.fn = fn;
  job.ctx = ctx;
  job.n = n;
  job.chunk = chunk;
  job.nchunks = j.nchunks;
  atomic_store(&job.finished, 0);
  atomic_store(&job.next, (uint64_t)gen << 32);
  job.generation = gen;
  pthread_cond_broadcast(&job_ready);
  pthread_mutex_unlock(&job_lock);
  run_chunks(&j);
  /* Wait only for chunks a worker took and is still running. */
  pthread_mutex_lock(&job_lock);
  while (atomic_load(&job.finished) < j.nchunks) pthread_cond_wait(&job_done, &job_lock);
  pthread_mutex_unlock(&job_lock);
  pthread_mutex_unlock(&pool_lock);
}
