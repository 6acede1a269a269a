/* The auth service's server side (docs/auth-protocol.md): sessions on the
 * listening socket, requests answered from the user directory, password
 * checks in worker threads; look-ups (RESOLVE, DOMAIN) on the loop. */
#ifndef MG_MDA_AUTH_SERVER_H
#define MG_MDA_AUTH_SERVER_H

#include <stdbool.h>
#include <uv.h>

struct mg_settings;
struct mg_userdb;
struct mg_listener;
struct auth_server;

/* Serves on listener (already listening). The directory and settings are
 * referenced, not owned. */
struct auth_server *auth_server_start(uv_loop_t *loop, const struct mg_settings *settings,
                                      struct mg_userdb *userdb, struct mg_listener *listener);
/* Stops accepting, closes sessions (answers in flight are dropped). */
void auth_server_stop(struct auth_server *server);
unsigned auth_server_jobs_running(const struct auth_server *server);
/* After auth_server_stop: whether every job finished and every session's
 * connection is closed, so that auth_server_free leaves nothing behind. */
bool auth_server_is_idle(const struct auth_server *server);
void auth_server_free(struct auth_server **server);

#endif
