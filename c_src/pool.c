/* pool.c: a tiny thread pool for splitting large kernels across cores.
 * One caller at a time owns the workers; a second concurrent caller (another
 * dirty scheduler) runs its range serially rather than queueing behind. */
#include <pthread.h>
#include <unistd.h>

#include "mx.h"

#define MAX_WORKERS 64

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* held by the caller that owns the workers */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t job_done = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int nworkers; /* threads besides the caller */

static struct {
  mx_range_fn fn;
  void *ctx;
  int64_t n, chunk;
  uint64_t generation;
  int pending; /* workers yet to finish this job */
} job;

static void *worker_main(void *arg) {
  int id = (int)(intptr_t)arg; /* 1..nworkers; the caller takes chunk 0 */
  uint64_t seen = 0;
  pthread_mutex_lock(&job_lock);
  for (;;) {
    while (job.generation == seen) pthread_cond_wait(&job_ready, &job_lock);
    seen = job.generation;
    mx_range_fn fn = job.fn;
    void *ctx = job.ctx;
    int64_t lo = id * job.chunk, hi = lo + job.chunk;
    if (hi > job.n) hi = job.n;
    pthread_mutex_unlock(&job_lock);
    if (lo < hi) fn(ctx, lo, hi);
    pthread_mutex_lock(&job_lock);
    if (--job.pending == 0) pthread_cond_signal(&job_done);
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
  for (int i = 0; i < want; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(i + 1)) != 0) break;
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
  if (n < 2 * grain || mx_num_threads() == 1 || pthread_mutex_trylock(&pool_lock) != 0) {
    fn(ctx, 0, n);
    return;
  }
  int64_t chunk = (n + nworkers) / (nworkers + 1);
  pthread_mutex_lock(&job_lock);
  job.fn = fn;
  job.ctx = ctx;
  job.n = n;
  job.chunk = chunk;
  job.pending = nworkers;
  job.generation++;
  pthread_cond_broadcast(&job_ready);
  pthread_mutex_unlock(&job_lock);
  fn(ctx, 0, chunk < n ? chunk : n);
  pthread_mutex_lock(&job_lock);
  while (job.pending > 0) pthread_cond_wait(&job_done, &job_lock);
  pthread_mutex_unlock(&job_lock);
  pthread_mutex_unlock(&pool_lock);
}
