#include "common/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/alloc.h"

static int listener_fail(char **error_r, const char *what, const char *name, int r)
{
    *error_r = mg_asprintf("%s %s: %s", what, name, uv_strerror(r));
    return r;
}

/* Binds and listens with plain sockets, so that "address in use" shows
 * at startup (libuv would only report it at uv_listen time). */
static int listener_socket(const struct sockaddr *sa, socklen_t salen, bool v6_only, int *fd_r)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (sa->sa_family == AF_INET6) {
        int v6only = v6_only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(fd, sa, salen) != 0 || listen(fd, MG_LISTENER_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *fd_r = fd;
    return 0;
}

int mg_listener_bind_tcp(struct mg_listener *listener, uv_loop_t *loop, const char *host,
                         uint16_t port, char **error_r)
{
    struct sockaddr_storage ss;
    int r;
    bool any = strcmp(host, "*") == 0;
    bool v6 = any || strchr(host, ':') != NULL;
    memset(listener, 0, sizeof(*listener));
    if (v6)
        snprintf(listener->name, sizeof(listener->name), "[%s]:%u", any ? "::" : host, port);
    else
        snprintf(listener->name, sizeof(listener->name), "%s:%u", host, port);

    if (v6)
        r = uv_ip6_addr(any ? "::" : host, port, (struct sockaddr_in6 *)&ss);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (r != 0)
        return listener_fail(error_r, "invalid address", listener->name, r);

    int fd = -1;
    /* "*" is dual-stack: one socket for IPv6 and IPv4-mapped peers. An
     * explicit IPv6 address is IPv6 only. */
    r = listener_socket((struct sockaddr *)&ss,
                        v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                        v6 && !any, &fd);
    if (r == -EAFNOSUPPORT && any) {
        /* No IPv6 on this host: listen on IPv4 only. */
        return mg_listener_bind_tcp(listener, loop, "0.0.0.0", port, error_r);
    }
    if (r != 0)
        return listener_fail(error_r, "cannot listen on", listener->name, r);

    uv_tcp_init(loop, &listener->s.tcp);
    listener->s.handle.data = listener;
    r = uv_tcp_open(&listener->s.tcp, fd);
    if (r != 0) {
        close(fd);
        uv_close(&listener->s.handle, NULL);
        return listener_fail(error_r, "cannot listen on", listener->name, r);
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&listener->s.tcp, (struct sockaddr *)&bound, &len);
    listener->port = ntohs(bound.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&bound)->sin6_port
                               : ((struct sockaddr_in *)&bound)->sin_port);
    if (port == 0) {
        if (v6)
            snprintf(listener->name, sizeof(listener->name), "[%s]:%u", any ? "::" : host,
                     listener->port);
        else
            snprintf(listener->name, sizeof(listener->name), "%s:%u", host, listener->port);
    }
    return 0;
}

int mg_listener_unix_socket(const char *path, mode_t mode, const char *group, int *fd_r,
                            char **error_r)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sun.sun_path)) {
        *error_r = mg_asprintf("socket path too long: %s", path);
        return UV_ENAMETOOLONG;
    }
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error_r = mg_asprintf("%s exists and is not a socket", path);
            return UV_EEXIST;
        }
        /* A socket file survives its daemon; a live daemon is detected by
         * connecting before replacing (two daemons must not share it). */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            *error_r = mg_asprintf("%s is in use by another process", path);
            return UV_EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *error_r = mg_asprintf("socket: %s", strerror(errno));
        return -errno;
    }
    /* Create the socket with no permissions, then open it up: there is no
     * moment where it is reachable with the wrong mode. */
    mode_t old = umask(0777);
    int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    int e = errno;
    umask(old);
    if (r != 0 || listen(fd, MG_LISTENER_BACKLOG) != 0) {
        if (r == 0)
            e = errno;
        close(fd);
        *error_r = mg_asprintf("cannot bind %s: %s", path, strerror(e));
        return -e;
    }
    if (group != NULL && group[0] != '\0') {
        struct group *gr = getgrnam(group);
        if (gr == NULL || chown(path, (uid_t)-1, gr->gr_gid) != 0) {
            *error_r = mg_asprintf("cannot give %s to group %s: %s", path, group,
                                   gr == NULL ? "no such group" : strerror(errno));
            close(fd);
            return UV_EPERM;
        }
    }
    if (chmod(path, mode) != 0) {
        *error_r = mg_asprintf("cannot chmod %s: %s", path, strerror(errno));
        close(fd);
        return UV_EPERM;
    }
    *fd_r = fd;
    return 0;
}

int mg_listener_adopt_unix(struct mg_listener *listener, uv_loop_t *loop, int fd,
                           const char *name)
{
    memset(listener, 0, sizeof(*listener));
    snprintf(listener->name, sizeof(listener->name), "%s", name);
    uv_pipe_init(loop, &listener->s.pipe, 0);
    listener->s.handle.data = listener;
    int r = uv_pipe_open(&listener->s.pipe, fd);
    if (r != 0)
        uv_close(&listener->s.handle, NULL);
    return r;
}

int mg_listener_bind_unix(struct mg_listener *listener, uv_loop_t *loop, const char *path,
                          mode_t mode, const char *group, char **error_r)
{
    int fd;
    int r = mg_listener_unix_socket(path, mode, group, &fd, error_r);
    if (r != 0)
        return r;
    r = mg_listener_adopt_unix(listener, loop, fd, path);
    if (r != 0) {
        *error_r = mg_asprintf("cannot listen on %s: %s", path, uv_strerror(r));
        close(fd);
    }
    return r;
}

int mg_listener_start(struct mg_listener *listener, uv_connection_cb cb)
{
    return uv_listen(&listener->s.stream, MG_LISTENER_BACKLOG, cb);
}

void mg_listener_close(struct mg_listener *listener, uv_close_cb close_cb)
{
    if (!uv_is_closing(&listener->s.handle))
        uv_close(&listener->s.handle, close_cb);
}
