/* bench_util.h: timing, medians and setup helpers shared by the C benchmarks.
 * Header-only, so bench/Makefile still builds each program from its one .c file. */
#ifndef MX_BENCH_UTIL_H
#define MX_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mx.h"

/* Seconds on the monotonic clock. */
static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The 1-minute load average: how busy the shared machine was. */
static inline void print_load(void) {
  FILE *f = fopen("/proc/loadavg", "r");
  double l = -1;
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  printf("  load average (1 min): %.2f\n", l);
}

static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v in place). */
static inline double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A benchmark cannot go on past a failed engine call: report it and exit. */
static inline void check(mx_status st, const char *what) {
  if (st != MX_OK) {
    fprintf(stderr, "%s failed: %s\n", what, mx_last_error());
    exit(1);
  }
}

/* 64-byte aligned memory (at least 64 bytes, so 0 is fine), or exit. */
static inline void *xalloc(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

#endif
