/* Listening sockets: TCP addresses from the configuration ("*:993",
 * "127.0.0.1:25", "[::1]:465") and UNIX sockets with owner group and mode.
 *
 * Daemons bind everything while still privileged (ports below 1024, socket
 * directories), then drop privileges, then start accepting. */
#ifndef MG_COMMON_LISTENER_H
#define MG_COMMON_LISTENER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct mg_listen_list;

#define MG_LISTENER_BACKLOG 511

struct mg_listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } s;
    char name[128]; /* "127.0.0.1:993" or the socket path, for logs */
    void *data;     /* the owner's */
    uint16_t port;  /* the bound port (useful when 0 was asked for) */
};

/* Binds a TCP socket. host "*" binds every address, IPv6 and IPv4 alike
 * (falling back to IPv4 only when the host has no IPv6). Port 0 picks a
 * free port (tests), reported in listener->port. Returns 0 or a negative
 * libuv error, with a reason in *error_r (to free). */
int mg_listener_bind_tcp(struct mg_listener *listener, uv_loop_t *loop, const char *host,
                         uint16_t port, char **error_r);
/* Binds a UNIX socket, replacing a stale socket file left by a previous
 * run (refusing to replace anything that is not a socket), then sets its
 * mode and group (group NULL or "": unchanged). */
int mg_listener_bind_unix(struct mg_listener *listener, uv_loop_t *loop, const char *path,
                          mode_t mode, const char *group, char **error_r);
/* The same socket as a plain listening file descriptor, for a process
 * that binds before it forks its workers (mgauthd). */
int mg_listener_unix_socket(const char *path, mode_t mode, const char *group, int *fd_r,
                            char **error_r);
/* Wraps a listening socket made elsewhere (inherited across fork). */
int mg_listener_adopt_unix(struct mg_listener *listener, uv_loop_t *loop, int fd,
                           const char *name);

/* Starts accepting: cb is libuv's connection callback. */
int mg_listener_start(struct mg_listener *listener, uv_connection_cb cb);
/* Stops accepting and closes the handle; close_cb may be NULL. */
void mg_listener_close(struct mg_listener *listener, uv_close_cb close_cb);

#endif
