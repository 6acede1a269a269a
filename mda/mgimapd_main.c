/* mgimapd: the MDA. IMAP on 993 (implicit TLS), LMTP deliveries, the
 * mailbox store, and the auth service it starts and watches.
 *
 * Start-up order matters for privileges: as root (or with the capability
 * to bind low ports) it binds every listener and loads the TLS key, starts
 * mgauthd (which switches to its own user), then drops to [mda] user and
 * only then opens the store and reads any network input. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/auth_client.h"
#include "common/daemon.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/privileges.h"
#include "common/sd_notify.h"
#include "common/settings.h"
#include "common/tls.h"
#include "mda/auth/auth_link.h"
#include "mda/imap/imap_server.h"
#include "mda/lmtp/lmtp_delivery.h"
#include "mda/store/store.h"

struct mgimapd {
    struct mg_daemon daemon;
    uv_loop_t *loop;                  /* daemon.loop */
    struct mg_settings *settings;     /* daemon.settings */
    struct mg_tls_context *tls;       /* IMAPS: the public certificate */
    struct mg_tls_context *link_tls;  /* LMTP and auth over TCP: mutual TLS */
    struct imap_server *imap;
    struct lmtp_delivery *lmtp;
    struct auth_link *auth_link;      /* NULL without [auth] listen */
    struct store *store;
    struct mg_endpoint auth_endpoint;
    struct mg_auth_client *auth;
    uv_process_t auth_proc;
    bool auth_running;
    bool auth_stops_after_us;
    int auth_watch_fd; /* write end of mgauthd's --watch-fd pipe: it stops when we exit */
    bool can_respawn_auth;
    unsigned auth_restarts;
    uv_timer_t respawn_timer;
};

static void auth_spawn(struct mgimapd *d);

static void respawn_cb(uv_timer_t *t)
{
    struct mgimapd *d = t->data;
    if (!d->daemon.is_stopping)
        auth_spawn(d);
}

static void auth_exit_cb(uv_process_t *proc, int64_t status, int signal)
{
    struct mgimapd *d = proc->data;
    d->auth_running = false;
    uv_close((uv_handle_t *)proc, NULL);
    if (d->daemon.is_stopping)
        return;
    mg_log_error("mgimapd", "auth service exited status=%lld signal=%d", (long long)status, signal);
    if (!d->can_respawn_auth) {
        /* It switched users, which we no longer can: let the service
         * manager restart us all. */
        mg_log_fatal("mgimapd", "auth service is gone and cannot be restarted from here");
    }
    d->auth_restarts++;
    uint64_t delay = d->auth_restarts > 5 ? 5000 : 200u * d->auth_restarts;
    uv_timer_start(&d->respawn_timer, respawn_cb, delay, 0);
}

static char *auth_program(const struct mg_settings *set)
{
    if (set->auth.program[0] != '\0')
        return mg_strdup(set->auth.program);
    /* Beside our own binary. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return mg_strdup("mgauthd");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    char *beside = mg_asprintf("%s/mgauthd", self);
    if (access(beside, X_OK) == 0)
        return beside;
    /* Installed: /usr/sbin/mgimapd and /usr/lib/mailgenic/mgauthd (a
     * program nobody runs by hand stays off the PATH). */
    free(beside);
    slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    return mg_asprintf("%s/lib/mailgenic/mgauthd", self);
}

static void auth_spawn(struct mgimapd *d)
{
    char *prog = auth_program(d->settings);
    /* mgauthd stops when this pipe ends, that is when we exit: once it runs
     * as its own user we may not signal it. */
    int watch[2];
    if (pipe2(watch, O_CLOEXEC) != 0)
        mg_log_fatal("mgimapd", "pipe: %s", strerror(errno));
    /* uv_spawn takes char *[] but does not write through it. */
    char *args[] = { prog, "-c", (char *)d->daemon.config_path, "--watch-fd", "3", NULL };
    uv_stdio_container_t stdio[4] = {
        { .flags = UV_IGNORE },
        { .flags = UV_INHERIT_FD, .data.fd = 1 },
        { .flags = UV_INHERIT_FD, .data.fd = 2 },
        { .flags = UV_INHERIT_FD, .data.fd = watch[0] },
    };
    uv_process_options_t opts = {
        .exit_cb = auth_exit_cb,
        .file = prog,
        .args = args,
        .stdio_count = 4,
        .stdio = stdio,
    };
    d->auth_proc.data = d;
    int r = uv_spawn(d->loop, &d->auth_proc, &opts);
    if (r != 0)
        mg_log_fatal("mgimapd", "cannot start the auth service %s: %s", prog, uv_strerror(r));
    close(watch[0]);
    if (d->auth_watch_fd >= 0)
        close(d->auth_watch_fd); /* the previous mgauthd's: it is gone */
    d->auth_watch_fd = watch[1];
    d->auth_running = true;
    free(prog);
}

static bool is_idle(void *ctx)
{
    struct mgimapd *d = ctx;
    return imap_server_session_count(d->imap) == 0 && lmtp_delivery_session_count(d->lmtp) == 0 &&
           auth_link_session_count(d->auth_link) == 0 && store_jobs_running(d->store) == 0 &&
           (!d->auth_running || d->auth_stops_after_us);
}

static void on_stop(void *ctx)
{
    struct mgimapd *d = ctx;
    imap_server_stop(d->imap);
    lmtp_delivery_stop(d->lmtp);
    if (d->auth_link != NULL)
        auth_link_stop(d->auth_link);
    /* mgauthd under its own user is not ours to signal any more: it stops
     * when we exit (its --watch-fd pipe ends), after our sessions. */
    if (d->auth_running && uv_process_kill(&d->auth_proc, SIGTERM) != 0)
        d->auth_stops_after_us = true;
}

static int load_tls(const struct mg_settings *set, struct mg_tls_context **ctx_r, char **error_r)
{
    struct mg_tls_server_options o;
    mg_tls_server_options_from_settings(&set->tls, &o);
    /* RFC 7301 / RFC 9325 3.8: a client that names another protocol (an
     * HTTPS client pointed here by an attacker) is refused; mail clients
     * send "imap" or nothing. */
    o.alpn = "imap";
    return mg_tls_context_new_server(&o, ctx_r, error_r);
}

static void on_reload(void *ctx, const struct mg_settings *fresh)
{
    struct mgimapd *d = ctx;
    char *error = NULL;
    struct mg_tls_context *tls = NULL;
    if (load_tls(fresh, &tls, &error) != 0) {
        mg_log_error("mgimapd", "reload: keeping the old certificate: %s", error);
        free(error);
    } else {
        imap_server_set_tls(d->imap, tls);
        mg_tls_context_unref(&d->tls);
        d->tls = tls;
        mg_log_info("mgimapd", "certificates reloaded");
    }
    struct mg_tls_context *link_tls = NULL;
    if (d->link_tls == NULL) {
        /* no TCP links: nothing to reload */
    } else if (mg_tls_context_new_link_server(fresh, &link_tls, &error) != 0) {
        mg_log_error("mgimapd", "reload: keeping the old cluster certificate: %s", error);
        free(error);
    } else {
        lmtp_delivery_set_tls(d->lmtp, link_tls);
        if (d->auth_link != NULL)
            auth_link_set_tls(d->auth_link, link_tls);
        mg_tls_context_unref(&d->link_tls);
        d->link_tls = link_tls;
        mg_log_info("mgimapd", "cluster certificate reloaded");
    }
}

/* Whether LMTP or the auth service listen on TCP (the cluster context). */
static bool has_tcp_links(const struct mg_settings *set)
{
    return set->lmtp.listen.count > 0 || set->auth.listen.count > 0;
}

/* The certificates and TLS policy, the cluster certificate, where the auth
 * service is, mgauthd's program and the users, as start-up takes them
 * (the listen addresses are checked when the file is read). */
static int check_config(const struct mg_settings *set, char **error_r)
{
    struct mg_tls_context *tls = NULL;
    if (load_tls(set, &tls, error_r) != 0)
        return -1;
    mg_tls_context_unref(&tls);
    if (has_tcp_links(set) && mg_tls_context_new_link_server(set, &tls, error_r) != 0)
        return -1;
    mg_tls_context_unref(&tls);
    struct mg_endpoint auth;
    char *error = NULL;
    if (mg_endpoint_parse(set->auth.socket, &auth, &error) != 0) {
        *error_r = mg_asprintf("[auth] socket: %s", error);
        free(error);
        return -1;
    }
    mg_endpoint_clear(&auth);
    char *prog = auth_program(set);
    if (access(prog, X_OK) != 0) {
        *error_r = mg_asprintf("the auth service %s cannot be run: %s", prog, strerror(errno));
        free(prog);
        return -1;
    }
    free(prog);
    uid_t uid;
    gid_t gid;
    if (set->mda.user[0] != '\0' &&
        mg_privileges_lookup(set->mda.user, set->mda.group, &uid, &gid, error_r) != 0)
        return -1;
    if (set->auth.user[0] != '\0' &&
        mg_privileges_lookup(set->auth.user, set->auth.group, &uid, &gid, error_r) != 0)
        return -1;
    return 0;
}

static const struct mg_daemon_info daemon_info = {
    .name = "mgimapd",
    .summary = "The Mailgenic MDA: IMAP (implicit TLS), LMTP delivery, mailbox storage.",
    .required = (const char *const[]){ "tls.cert_file", "tls.key_file", "mda.mail_dir",
                                       "mda.index_dir", "auth.socket", NULL },
    .busy_warning = "stopping with sessions still open",
    .check = check_config,
};

static const struct mg_daemon_hooks daemon_hooks = {
    .stop = on_stop,
    .is_idle = is_idle,
    .reload = on_reload,
};

int main(int argc, char **argv)
{
    struct mgimapd d = { 0 };
    int status;
    if (mg_daemon_init(&d.daemon, &daemon_info, argc, argv, &status) != 0)
        return status;
    d.loop = d.daemon.loop;
    d.settings = d.daemon.settings;
    d.auth_watch_fd = -1;
    char *error = NULL;

    if (imap_server_bind(d.loop, d.settings, &d.imap, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (lmtp_delivery_bind(d.loop, d.settings, &d.lmtp, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (auth_link_bind(d.loop, d.settings, &d.auth_link, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (load_tls(d.settings, &d.tls, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    /* LMTP and the auth service over TCP: only peers with a certificate
     * of the cluster CA (docs/scale-out.md). */
    if (has_tcp_links(d.settings) &&
        mg_tls_context_new_link_server(d.settings, &d.link_tls, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (mg_endpoint_parse(d.settings->auth.socket, &d.auth_endpoint, &error) != 0)
        mg_log_fatal("mgimapd", "[auth] socket: %s", error);

    /* mgauthd switches to its own user, which we can no longer do once
     * privileges are dropped (as root, or with systemd's CAP_SETUID). */
    d.can_respawn_auth = d.settings->auth.user[0] == '\0';
    uv_timer_init(d.loop, &d.respawn_timer);
    d.respawn_timer.data = &d;
    uv_unref((uv_handle_t *)&d.respawn_timer);
    auth_spawn(&d);

    mg_daemon_drop_privileges(&d.daemon, d.settings->mda.user, d.settings->mda.group, "mda");

    struct store_settings ss = { .mail_dir = d.settings->mda.mail_dir,
                                 .index_dir = d.settings->mda.index_dir,
                                 .index_cache_bytes = d.settings->mda.index_cache_size };
    if (store_open(d.loop, &ss, &d.store, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    struct mg_auth_client_settings as = { .endpoint = &d.auth_endpoint,
                                          .client_name = "mgimapd" };
    d.auth = mg_auth_client_new(d.loop, &as);

    mg_daemon_start(&d.daemon, &daemon_hooks, &d);
    imap_server_start(d.imap, d.tls, d.store, d.auth);
    lmtp_delivery_start(d.lmtp, d.store, d.auth, d.link_tls);
    if (d.auth_link != NULL)
        auth_link_start(d.auth_link, d.link_tls, d.settings->auth.socket);
    mg_log_info("mgimapd", "ready version=%s", MG_VERSION);
    mg_sd_notify("READY=1");

    uv_run(d.loop, UV_RUN_DEFAULT);

    mg_log_info("mgimapd", "stopped");
    mg_auth_client_free(&d.auth);
    store_close(&d.store);
    uv_close((uv_handle_t *)&d.respawn_timer, NULL);
    /* The store and the auth client free themselves in close callbacks:
     * let those run (a bounded number of turns: a session that outlived
     * the grace period keeps its handle, and is the process's to drop). */
    for (int i = 0; i < 100 && uv_run(d.loop, UV_RUN_NOWAIT) != 0; i++)
        uv_sleep(1);
    imap_server_free(&d.imap);
    lmtp_delivery_free(&d.lmtp);
    auth_link_free(&d.auth_link);
    mg_tls_context_unref(&d.tls);
    mg_tls_context_unref(&d.link_tls);
    mg_endpoint_clear(&d.auth_endpoint);
    if (d.auth_watch_fd >= 0)
        close(d.auth_watch_fd);
    mg_daemon_close(&d.daemon);
    return 0;
}
