/* alloc.c: the buffer allocator. Freed buffers go to a cache keyed by size
 * class (powers of two, and four steps between them above 4 KiB), so an
 * inference loop that makes the same shapes every iteration reuses memory
 * instead of calling malloc. Statistics feed Mx.Memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mx.h"

#define ALIGN 64
#define NCLASSES 256

typedef struct cached {
  struct cached *next;
  mx_buffer *buf;
} cached;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cached *cache[NCLASSES];
static int64_t active_bytes, peak_bytes, cache_bytes, live_buffers, alloc_count, cache_hits;
static int64_t cache_limit = -1, memory_limit = -1;

/* The cache keeps at most 1/16 of the machine's memory by default (MLX bounds its
 * cache by the machine's memory too); Mx.Memory.set_cache_limit/1 changes it. */
__attribute__((constructor)) static void default_cache_limit(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) cache_limit = (int64_t)pages * page / 16;
}

/* Size class: exact powers of two up to 4 KiB, then 4 steps per octave. */
static int size_class(size_t n, size_t *cap) {
  if (n <= 64) {
    *cap = 64;
    return 0;
  }
  int lg = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* floor(log2(n-1)) */
  size_t base = (size_t)1 << lg;                              /* base < n <= 2*base */
  if (n <= 4096) {
    *cap = base << 1;
    return lg + 1 - 6;
  }
  size_t step = base / 4;
  size_t k = (n - base + step - 1) / step; /* 1..4 */
  *cap = base + k * step;
  return 7 + (lg - 12) * 4 + (int)k;
}

/* Returning a big block to the system unmaps its pages (milliseconds per GiB):
 * off an engine thread (a BEAM scheduler) it is handed to one. */
#define BIG_FREE ((size_t)4 << 20)

static mx_status free_now(void *b) {
  free(((mx_buffer *)b)->data);
  free(b);
  return MX_OK;
}

static void free_buffer(mx_buffer *b) {
  mx_task *t;
  if (b->capacity >= BIG_FREE && !mx_on_engine_thread() && mx_task_start(free_now, b, NULL, &t) == MX_OK) {
    mx_task_detach(t);
    return;
  }
  free_now(b);
}

static void evict_locked(int64_t need) {
  /* Drop cached buffers, largest classes first, until `need` bytes are gone. */
  for (int c = NCLASSES - 1; c >= 0 && need > 0; c--) {
    while (cache[c] && need > 0) {
      cached *e = cache[c];
      cache[c] = e->next;
      cache_bytes -= (int64_t)e->buf->capacity;
      need -= (int64_t)e->buf->capacity;
      free_buffer(e->buf);
      free(e);
    }
  }
}

mx_status mx_buffer_alloc(size_t nbytes, mx_buffer **out) {
  size_t cap;
  int c = size_class(nbytes ? nbytes : 1, &cap);
  if (c < 0 || c >= NCLASSES) return mx_error(MX_ENOMEM, "cannot allocate %zu bytes: larger than the allocator supports", nbytes);
  pthread_mutex_lock(&lock);
  alloc_count++;
  if (memory_limit >= 0 && active_bytes + (int64_t)cap > memory_limit) {
    int64_t limit = memory_limit, active = active_bytes;
    pthread_mutex_unlock(&lock);
    return mx_error(MX_ENOMEM,
                    "memory limit reached: %lld bytes active, %zu more requested, limit %lld; "
                    "dispose arrays you no longer need or raise Mx.Memory.set_memory_limit/1",
                    (long long)active, cap, (long long)limit);
  }
  mx_buffer *b = NULL;
  if (cache[c]) {
    cached *e = cache[c];
    cache[c] = e->next;
    b = e->buf;
    free(e);
    cache_bytes -= (int64_t)cap;
    cache_hits++;
  }
  active_bytes += (int64_t)cap;
  live_buffers++;
  if (active_bytes > peak_bytes) peak_bytes = active_bytes;
  pthread_mutex_unlock(&lock);

  if (!b) {
    b = malloc(sizeof *b);
    void *data = NULL;
    if (b && posix_memalign(&data, ALIGN, cap) != 0) data = NULL;
    if (!data) {
      /* Try again after emptying the cache: memory may be held there. */
      mx_memory_clear_cache();
      if (b && posix_memalign(&data, ALIGN, cap) != 0) data = NULL;
    }
    if (!b || !data) {
      free(b);
      pthread_mutex_lock(&lock);
      active_bytes -= (int64_t)cap;
      live_buffers--;
      pthread_mutex_unlock(&lock);
      return mx_error(MX_ENOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    b->data = data;
    b->capacity = cap;
  }
  atomic_init(&b->refs, 1);
  b->nbytes = nbytes;
  *out = b;
  return MX_OK;
}

void mx_buffer_retain(mx_buffer *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void mx_buffer_release(mx_buffer *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
  size_t cap;
  int c = size_class(b->capacity, &cap);
  cached *e = malloc(sizeof *e);
  pthread_mutex_lock(&lock);
  active_bytes -= (int64_t)b->capacity;
  live_buffers--;
  int keep = e && (cache_limit < 0 || cache_bytes + (int64_t)b->capacity <= cache_limit);
  if (keep) {
    e->buf = b;
    e->next = cache[c];
    cache[c] = e;
    cache_bytes += (int64_t)b->capacity;
  }
  pthread_mutex_unlock(&lock);
  if (!keep) {
    free(e);
    free_buffer(b);
  }
}

void mx_memory_stats_get(mx_memory_stats *s) {
  pthread_mutex_lock(&lock);
  s->active_bytes = active_bytes;
  s->peak_bytes = peak_bytes;
  s->cache_bytes = cache_bytes;
  s->live_buffers = live_buffers;
  s->cache_limit = cache_limit;
  s->memory_limit = memory_limit;
  s->alloc_count = alloc_count;
  s->cache_hits = cache_hits;
  pthread_mutex_unlock(&lock);
  s->live_arrays = mx_live_arrays();
}

void mx_memory_reset_peak(void) {
  pthread_mutex_lock(&lock);
  peak_bytes = active_bytes;
  pthread_mutex_unlock(&lock);
}

void mx_memory_set_cache_limit(int64_t bytes) {
  pthread_mutex_lock(&lock);
  cache_limit = bytes < 0 ? -1 : bytes;
  if (cache_limit >= 0 && cache_bytes > cache_limit) evict_locked(cache_bytes - cache_limit);
  pthread_mutex_unlock(&lock);
}

void mx_memory_set_memory_limit(int64_t bytes) {
  pthread_mutex_lock(&lock);
  memory_limit = bytes < 0 ? -1 : bytes;
  pthread_mutex_unlock(&lock);
}

void mx_memory_clear_cache(void) {
  pthread_mutex_lock(&lock);
  evict_locked(cache_bytes);
  pthread_mutex_unlock(&lock);
}
