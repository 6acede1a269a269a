#include "common/sd_notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int mg_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if (len >= sizeof(sun.sun_path) || (path[0] != '/' && path[0] != '@'))
        return -1;
    memcpy(sun.sun_path, path, len);
    /* "@name" is an abstract socket: leading NUL. */
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
    return r < 0 ? -1 : 0;
}
