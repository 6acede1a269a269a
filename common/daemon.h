/* What mgimapd and mgsmtpd share between main() and their event loop:
 * the command line every daemon takes (-c, --check-config, --dump-config,
 * -h, -V), the configuration (loaded, checked for the keys the daemon
 * needs, log_level applied), the switch to the daemon's user, and the
 * signals of common/signals.h with systemd told of each step (sd_notify):
 *
 *   SIGTERM, SIGINT  hooks->stop, then hooks->is_idle every 100 ms for up
 *                    to MG_DAEMON_STOP_GRACE_MS; the loop stops when it
 *                    says yes or the time is up
 *   SIGHUP           the configuration again: log_level applied and the
 *                    fresh settings handed to hooks->reload (certificates);
 *                    a file that does not load changes nothing
 *
 * The daemon's own work (listeners, TLS contexts, what it starts) stays
 * in its main file. */
#ifndef MG_COMMON_DAEMON_H
#define MG_COMMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/signals.h"

struct mg_settings;

/* How long a graceful stop waits for sessions and jobs. */
#define MG_DAEMON_STOP_GRACE_MS 10000

struct mg_daemon_info {
    const char *name;             /* "mgimapd": messages and log component */
    const char *summary;          /* the line under "Usage:" */
    const char *const *required;  /* keys that must be set, NULL-terminated */
    const char *busy_warning;     /* logged when the grace period ends first */
    /* --check-config: what start-up would refuse beyond the file itself
     * (certificates and TLS policy, endpoints, routes, users), found by
     * building what start-up builds and dropping it, so that a check that
     * passes means a start that does not stop on the configuration.
     * NULL: nothing beyond the file. */
    int (*check)(const struct mg_settings *settings, char **error_r);
};

struct mg_daemon_hooks {
    /* Stop accepting work (the first stop signal only). */
    void (*stop)(void *ctx);
    /* Whether all work is done, so that the loop may end. */
    bool (*is_idle)(void *ctx);
    /* Take what can change under a running daemon from fresh (freed after
     * the call); log_level is already applied. */
    void (*reload)(void *ctx, const struct mg_settings *fresh);
};

struct mg_daemon {
    const struct mg_daemon_info *info;
    const char *config_path;
    struct mg_settings *settings; /* owned; freed by mg_daemon_close */
    uv_loop_t *loop;              /* the default loop */
    bool is_stopping;             /* a stop signal came: read-only */
    /* private */
    const struct mg_daemon_hooks *hooks;
    void *ctx;
    struct mg_signals signals;
    uv_timer_t stop_timer;
    uint64_t stop_waited_ms;
};

/* Parses the command line, loads and checks the configuration, applies
 * log_level and sizes libuv's thread pool. Returns 0 when the daemon is
 * to run (d->settings and d->loop set), or -1 when the process is to exit
 * now with *exit_status_r: 0 after --help, --version, --check-config or
 * --dump-config, 1 for a configuration that does not load or lacks a
 * required key (said on stderr), 2 for a bad command line. */
int mg_daemon_init(struct mg_daemon *d, const struct mg_daemon_info *info, int argc,
                   char **argv, int *exit_status_r);

/* Switches to user and group for good (fatal when that fails), and warns
 * when that leaves the process root (no user set in [section]). */
void mg_daemon_drop_privileges(const struct mg_daemon *d, const char *user, const char *group,
                               const char *section);

/* Installs the signal handlers: from here on they call hooks with ctx. */
void mg_daemon_start(struct mg_daemon *d, const struct mg_daemon_hooks *hooks, void *ctx);

/* Closes the handles mg_daemon_start opened (if it ran; the loop frees
 * them if it runs again) and frees the settings: the last call, once the
 * daemon freed what used them. */
void mg_daemon_close(struct mg_daemon *d);

#endif
