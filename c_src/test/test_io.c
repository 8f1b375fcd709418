/* test_io.c: mx_from_file reads the bytes at an offset into an array, and rejects short
 * files, bad shapes and missing files with a message naming the file. */
#include <unistd.h>

#include "test_util.h"

static char path[] = "/tmp/mx_test_io_XXXXXX";

static void expect_error(mx_status st, const char *needle, const char *what) {
  CHECK(st == MX_EINVAL, "%s: status %d", what, (int)st);
  CHECK(strstr(mx_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, mx_last_error(), needle);
}

int main(void) {
  int fd = mkstemp(path);
  if (fd < 0) return 2;
  float v[6] = {1, 2, 3, 4, 5, 6};
  char pad[3] = {7, 7, 7};
  if (write(fd, pad, 3) != 3 || write(fd, v, sizeof v) != (ssize_t)sizeof v) return 2;
  close(fd);

  int64_t shape[2] = {2, 3};
  mx_array *a = NULL;
  CHECK(mx_from_file(path, 3, MX_F32, 2, shape, &a) == MX_OK, "read: %s", mx_last_error());
  if (a) {
    CHECK(same_shape(a, 2, shape), "shape");
    CHECK(memcmp(mx_data(a), v, sizeof v) == 0, "values");
    mx_release(a);
  }
  int64_t empty[1] = {0};
  a = NULL;
  CHECK(mx_from_file(path, 27, MX_U8, 1, empty, &a) == MX_OK, "empty at the end: %s", mx_last_error());
  if (a) mx_release(a);

  expect_error(mx_from_file(path, 4, MX_F32, 2, shape, &a), "past the end of the file (27 bytes)", "one byte short");
  int64_t neg[1] = {-1};
  expect_error(mx_from_file(path, 0, MX_F32, 1, neg, &a), "negative dimension", "negative dim");
  int64_t huge[3] = {1LL << 40, 1LL << 40, 1LL << 40};
  expect_error(mx_from_file(path, 0, MX_F32, 3, huge, &a), "overflows", "overflowing shape");
  int64_t big[1] = {1LL << 40};
  expect_error(mx_from_file(path, UINT64_MAX - 8, MX_U8, 1, big, &a), "cannot be addressed", "offset overflow");
  expect_error(mx_from_file("/nonexistent/x.safetensors", 0, MX_F32, 2, shape, &a), "cannot open /nonexistent/x.safetensors", "missing");
  expect_error(mx_from_file("/tmp", 0, MX_F32, 2, shape, &a), "not a regular file", "directory");
  unlink(path);
  return test_summary("io: ");
}
