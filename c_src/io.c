/* io.c: reads an array's bytes from a file straight into a fresh buffer (Mx.IO's loaders),
 * so a checkpoint is never held twice in memory. Plain POSIX; errors name the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mx.h"

mx_status mx_from_file(const char *path, uint64_t offset, mx_dtype dtype, int ndim, const int64_t *shape, mx_array **out) {
  if ((int)dtype < 0 || dtype >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[from_file] %s: unknown dtype %d", path, (int)dtype);
  if (ndim < 0 || ndim > MX_MAX_RANK) return mx_error(MX_EINVAL, "[from_file] %s: rank %d is over %d", path, ndim, MX_MAX_RANK);
  uint64_t nbytes = (uint64_t)mx_dtype_size(dtype);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return mx_error(MX_EINVAL, "[from_file] %s: negative dimension %lld", path, (long long)shape[i]);
    if (shape[i] > 0 && nbytes > (UINT64_MAX >> 1) / (uint64_t)shape[i])
      return mx_error(MX_EINVAL, "[from_file] %s: the shape's byte count overflows 64 bits", path);
    nbytes *= (uint64_t)shape[i];
  }
  if (nbytes > (uint64_t)SIZE_MAX || offset > (uint64_t)INT64_MAX - nbytes)
    return mx_error(MX_EINVAL, "[from_file] %s: %llu bytes at offset %llu cannot be addressed", path, (unsigned long long)nbytes,
                    (unsigned long long)offset);
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return mx_error(MX_EINVAL, "[from_file] cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return mx_error(MX_EINVAL, "[from_file] %s is not a regular file", path);
  }
  if ((uint64_t)st.st_size < offset + nbytes) {
    close(fd);
    return mx_error(MX_EINVAL, "[from_file] %s: bytes %llu..%llu are past the end of the file (%lld bytes); the file is truncated", path,
                    (unsigned long long)offset, (unsigned long long)(offset + nbytes), (long long)st.st_size);
  }
  mx_buffer *buf = NULL;
  mx_status s = mx_buffer_alloc((size_t)nbytes, &buf);
  if (s) {
    char why[512];
    snprintf(why, sizeof why, "%s", mx_last_error());
    close(fd);
    return mx_error(s, "[from_file] %s: %.400s", path, why);
  }
  size_t done = 0;
  while (done < nbytes) {
    ssize_t n = pread(fd, (char *)buf->data + done, (size_t)nbytes - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      close(fd);
      mx_buffer_release(buf);
      return mx_error(MX_EINVAL, "[from_file] %s: read %zu of %llu bytes at offset %llu: %s", path, done, (unsigned long long)nbytes,
                      (unsigned long long)offset, err ? strerror(err) : "the file ended (it shrank while being read)");
    }
    done += (size_t)n;
  }
  close(fd);
  s = mx_from_buffer(dtype, ndim, shape, buf, out);
  mx_buffer_release(buf); /* the array holds its own reference */
  return s;
}
