#include "common/fd_io.h"

#include <errno.h>
#include <unistd.h>

int mg_fd_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int mg_fd_pread_all(int fd, void *buf, size_t len, off_t offset, size_t *got_r)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, p + got, len - got, offset + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *got_r = got;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *got_r = got;
    return 0;
}
