/* mgimapd: the MDA. IMAP on 993 (implicit TLS), LMTP deliveries, the
 * mailbox store, and the auth service it starts and watches.
 *
 * Start-up order matters for privileges: as root (or with the capability
 * to bind low ports) it binds every listener and loads the TLS key, starts
 * mgauthd (which switches to its own user), then drops to [mda] user and
 * only then opens the store and reads any network input. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/auth_client.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/privileges.h"
#include "common/sd_notify.h"
#include "common/settings.h"
#include "common/signals.h"
#include "common/tls.h"
#include "mda/auth/auth_link.h"
#include "mda/imap/imap_server.h"
#include "mda/lmtp/lmtp_delivery.h"
#include "mda/store/store.h"

/* How long a graceful stop waits for sessions and jobs. */
#define STOP_GRACE_MS 10000

struct mgimapd {
    uv_loop_t *loop;
    char *config_path;
    struct mg_settings *settings;
    struct mg_tls_context *tls;       /* IMAPS: the public certificate */
    struct mg_tls_context *link_tls;  /* LMTP and auth over TCP: mutual TLS */
    struct imap_server *imap;
    struct lmtp_delivery *lmtp;
    struct auth_link *auth_link;      /* NULL without [auth] listen */
    struct store *store;
    struct mg_endpoint auth_endpoint;
    struct mg_auth_client *auth;
    struct mg_signals signals;
    uv_process_t auth_proc;
    bool auth_running;
    bool auth_stops_after_us;
    int auth_watch_fd; /* write end of mgauthd's --watch-fd pipe: it stops when we exit */
    bool can_respawn_auth;
    unsigned auth_restarts;
    uv_timer_t stop_timer;
    uv_timer_t respawn_timer;
    uint64_t stop_waited_ms;
    bool is_stopping;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mgimapd [-c FILE] [--check-config] [--dump-config]\n"
            "\n"
            "The Mailgenic MDA: IMAP (implicit TLS), LMTP delivery, mailbox storage.\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  check the configuration and exit\n"
            "      --dump-config   print the effective configuration and exit\n"
            "  -h, --help          this help\n"
            "  -V, --version       the version\n"
            "\n"
            "Signals: SIGTERM stops gracefully, SIGHUP reloads certificates and log_level.\n",
            MG_DEFAULT_CONFIG_FILE);
}

static void auth_spawn(struct mgimapd *d);

static void respawn_cb(uv_timer_t *t)
{
    struct mgimapd *d = t->data;
    if (!d->is_stopping)
        auth_spawn(d);
}

static void auth_exit_cb(uv_process_t *proc, int64_t status, int signal)
{
    struct mgimapd *d = proc->data;
    d->auth_running = false;
    uv_close((uv_handle_t *)proc, NULL);
    if (d->is_stopping)
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
    char *args[] = { prog, "-c", d->config_path, "--watch-fd", "3", NULL };
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

static void stop_timer_cb(uv_timer_t *t)
{
    struct mgimapd *d = t->data;
    bool idle = imap_server_session_count(d->imap) == 0 && lmtp_delivery_session_count(d->lmtp) == 0 &&
                auth_link_session_count(d->auth_link) == 0 &&
                store_jobs_running(d->store) == 0 && (!d->auth_running || d->auth_stops_after_us);
    d->stop_waited_ms += 100;
    if (!idle && d->stop_waited_ms < STOP_GRACE_MS)
        return;
    if (!idle)
        mg_log_warning("mgimapd", "stopping with sessions still open");
    uv_timer_stop(t);
    uv_stop(d->loop);
}

static void on_stop(void *ctx)
{
    struct mgimapd *d = ctx;
    if (d->is_stopping)
        return;
    d->is_stopping = true;
    mg_sd_notify("STOPPING=1");
    imap_server_stop(d->imap);
    lmtp_delivery_stop(d->lmtp);
    if (d->auth_link != NULL)
        auth_link_stop(d->auth_link);
    /* mgauthd under its own user is not ours to signal any more: it stops
     * when we exit (its --watch-fd pipe ends), after our sessions. */
    if (d->auth_running && uv_process_kill(&d->auth_proc, SIGTERM) != 0)
        d->auth_stops_after_us = true;
    uv_timer_start(&d->stop_timer, stop_timer_cb, 100, 100);
}

static int load_tls(struct mgimapd *d, const struct mg_settings *set, struct mg_tls_context **ctx_r,
                    char **error_r)
{
    struct mg_tls_server_options o;
    mg_tls_server_options_from_settings(&set->tls, &o);
    /* RFC 7301 / RFC 9325 3.8: a client that names another protocol (an
     * HTTPS client pointed here by an attacker) is refused; mail clients
     * send "imap" or nothing. */
    o.alpn = "imap";
    (void)d;
    return mg_tls_context_new_server(&o, ctx_r, error_r);
}

static void on_reload(void *ctx)
{
    struct mgimapd *d = ctx;
    mg_sd_notify("RELOADING=1");
    struct mg_settings *fresh = NULL;
    char *error = NULL;
    if (mg_settings_load(d->config_path, &fresh, &error) != 0) {
        mg_log_error("mgimapd", "reload failed, keeping the old configuration: %s", error);
        free(error);
        mg_sd_notify("READY=1");
        return;
    }
    mg_log_set_level(fresh->log_level);
    struct mg_tls_context *tls = NULL;
    if (load_tls(d, fresh, &tls, &error) != 0) {
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
    mg_settings_free(&fresh);
    mg_sd_notify("READY=1");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'C' },
        { "dump-config", no_argument, NULL, 'D' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct mgimapd d = { 0 };
    d.config_path = MG_DEFAULT_CONFIG_FILE;
    d.auth_watch_fd = -1;
    bool check = false, dump = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': d.config_path = optarg; break;
        case 'C': check = true; break;
        case 'D': dump = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mgimapd %s\n", MG_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    mg_log_init("mgimapd");
    char *error = NULL;
    if (mg_settings_load(d.config_path, &d.settings, &error) != 0) {
        fprintf(stderr, "mgimapd: %s\n", error);
        return 1;
    }
    static const char *const required[] = { "tls.cert_file", "tls.key_file", "mda.mail_dir",
                                            "mda.index_dir", "auth.socket", NULL };
    if (mg_settings_require(d.settings, required, &error) != 0) {
        fprintf(stderr, "mgimapd: %s\n", error);
        return 1;
    }
    if (dump) {
        mg_settings_dump(d.settings, stdout);
        return 0;
    }
    if (check) {
        printf("mgimapd: %s is valid\n", d.config_path);
        return 0;
    }
    mg_log_set_level(d.settings->log_level);
    /* Enough threads for fsyncs to overlap (each delivery waits on disk). */
    if (getenv("UV_THREADPOOL_SIZE") == NULL)
        setenv("UV_THREADPOOL_SIZE", "16", 1);

    d.loop = uv_default_loop();
    if (imap_server_bind(d.loop, d.settings, &d.imap, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (lmtp_delivery_bind(d.loop, d.settings, &d.lmtp, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (auth_link_bind(d.loop, d.settings, &d.auth_link, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (load_tls(&d, d.settings, &d.tls, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    /* LMTP and the auth service over TCP: only peers with a certificate
     * of the cluster CA (docs/scale-out.md). */
    if ((d.settings->lmtp.listen.count > 0 || d.auth_link != NULL) &&
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

    if (mg_privileges_drop(d.settings->mda.user, d.settings->mda.group, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    if (geteuid() == 0)
        mg_log_warning("mgimapd", "running as root: set [mda] user (development only)");

    struct store_settings ss = { .mail_dir = d.settings->mda.mail_dir,
                                 .index_dir = d.settings->mda.index_dir,
                                 .index_cache_bytes = d.settings->mda.index_cache_size };
    if (store_open(d.loop, &ss, &d.store, &error) != 0)
        mg_log_fatal("mgimapd", "%s", error);
    struct mg_auth_client_settings as = { .endpoint = &d.auth_endpoint,
                                          .client_name = "mgimapd" };
    d.auth = mg_auth_client_new(d.loop, &as);

    mg_signals_init(&d.signals, d.loop, on_stop, on_reload, &d);
    uv_timer_init(d.loop, &d.stop_timer);
    d.stop_timer.data = &d;
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
    mg_signals_close(&d.signals);
    uv_close((uv_handle_t *)&d.stop_timer, NULL);
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
    mg_settings_free(&d.settings);
    if (d.auth_watch_fd >= 0)
        close(d.auth_watch_fd);
    return 0;
}
