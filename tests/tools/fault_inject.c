// Fault injection for tests, loaded with LD_PRELOAD (the role of leveldb's fault-injection Env):
// write(2)-family calls and fsyncs on regular files are counted, and the Nth one fails.
//   SHARDREC_FAULT_AT=N          the Nth call fails (1-based; 0 or unset: none, only counting)
//   SHARDREC_FAULT_ERRNO=EIO     the error it fails with (ENOSPC by default)
//   SHARDREC_FAULT_COUNT=FILE    at exit, the number of calls seen is written to FILE
//   SHARDREC_FAULT_TRACE=1       each call's number, name and file on stderr
// Every file ShardRec publishes is written through these calls: HDF5's file driver (pwrite),
// FileWriter (write, fsync) and the run directory lock. Writes to pipes and terminals (logs) are
// neither counted nor failed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long g_calls = 0;

static int Fault(int fd, const char* call) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  const long n = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
  if (getenv("SHARDREC_FAULT_TRACE") != NULL) {
    char link[64], path[512], line[640];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    const ssize_t len = readlink(link, path, sizeof(path) - 1);
    path[len > 0 ? len : 0] = 0;
    const int k = snprintf(line, sizeof(line), "fault point %ld: %s %s\n", n, call, path);
    syscall(SYS_write, 2, line, (size_t)k);
  }
  const char* at = getenv("SHARDREC_FAULT_AT");
  if (at == NULL || atol(at) != n) return 0;
  const char* e = getenv("SHARDREC_FAULT_ERRNO");
  errno = (e != NULL && strcmp(e, "EIO") == 0) ? EIO : ENOSPC;
  return 1;
}

typedef ssize_t (*WriteFn)(int, const void*, size_t);
typedef ssize_t (*PwriteFn)(int, const void*, size_t, off_t);
typedef ssize_t (*WritevFn)(int, const struct iovec*, int);
typedef int (*SyncFn)(int);
#define REAL(name, type)     \
  static type real_##name;   \
  if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write, WriteFn);
  if (Fault(fd, "write")) return -1;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite, PwriteFn);
  if (Fault(fd, "pwrite")) return -1;
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite64, PwriteFn);
  if (Fault(fd, "pwrite64")) return -1;
  return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  REAL(writev, WritevFn);
  if (Fault(fd, "writev")) return -1;
  return real_writev(fd, iov, count);
}

int fsync(int fd) {
  REAL(fsync, SyncFn);
  if (Fault(fd, "fsync")) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync, SyncFn);
  if (Fault(fd, "fdatasync")) return -1;
  return real_fdatasync(fd);
}

__attribute__((destructor)) static void WriteCount(void) {
  const char* path = getenv("SHARDREC_FAULT_COUNT");
  if (path == NULL) return;
  char text[32];
  const int len = snprintf(text, sizeof(text), "%ld\n", g_calls);
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  syscall(SYS_write, fd, text, (size_t)len);
  close(fd);
}
