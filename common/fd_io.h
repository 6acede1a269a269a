/* Whole reads and writes on file descriptors of regular files: the loops
 * over short counts and EINTR that every caller would otherwise write.
 * Blocking calls: for the thread pool, start-up and tools, never for the
 * event loop's sockets (common/conn.h). */
#ifndef MG_COMMON_FD_IO_H
#define MG_COMMON_FD_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all of data[0..len). Returns 0, or -errno (-EIO when the kernel
 * takes nothing without saying why). */
int mg_fd_write_all(int fd, const void *data, size_t len);

/* Reads up to len bytes at offset, stopping early only at the end of the
 * file. Returns 0 with *got_r set, or -errno. */
int mg_fd_pread_all(int fd, void *buf, size_t len, off_t offset, size_t *got_r);

#endif
