/* mgsmtpd: the MTA. SMTP on port 25, submission on 465, the queue, local
 * delivery over LMTP and relay to other servers.
 *
 * As with mgimapd: listeners and the TLS key first (privileged), then the
 * switch to [mta] user, then the queue and network input. The queue works
 * without mgimapd: local mail waits until it can be delivered. */
#include <errno.h>
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
#include "mta/control.h"
#include "mta/delivery/local_agent.h"
#include "mta/delivery/remote_agent.h"
#include "mta/queue/queue.h"
#include "mta/receive/smtp_receive.h"

#define STOP_GRACE_MS 10000

struct mgsmtpd {
    uv_loop_t *loop;
    const char *config_path;
    struct mg_settings *settings;
    struct mg_tls_context *tls;
    /* The MDA: its LMTP and auth service, a socket path or host:port; over
     * TCP with link_tls (mutual TLS with the cluster certificate). */
    struct mg_endpoint lmtp_endpoint;
    struct mg_endpoint auth_endpoint;
    struct mg_tls_context *link_tls;
    struct smtp_receive *rx;
    struct control *control;
    struct queue *queue;
    struct mg_auth_client *auth;
    struct local_agent *local;
    struct remote_agent *remote;
    struct mg_signals signals;
    uv_timer_t stop_timer;
    uint64_t stop_waited_ms;
    bool is_stopping;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mgsmtpd [-c FILE] [--check-config] [--dump-config]\n"
            "\n"
            "The Mailgenic MTA: SMTP (25), submission (465), queue, delivery and relay.\n"
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

static void stop_timer_cb(uv_timer_t *t)
{
    struct mgsmtpd *d = t->data;
    bool idle = smtp_receive_session_count(d->rx) == 0 && queue_jobs_running(d->queue) == 0 &&
                local_agent_busy(d->local) == 0 && remote_agent_busy(d->remote) == 0;
    d->stop_waited_ms += 100;
    if (!idle && d->stop_waited_ms < STOP_GRACE_MS)
        return;
    if (!idle)
        mg_log_warning("mgsmtpd", "stopping with work in progress (it stays queued)");
    uv_timer_stop(t);
    uv_stop(d->loop);
}

static void on_stop(void *ctx)
{
    struct mgsmtpd *d = ctx;
    if (d->is_stopping)
        return;
    d->is_stopping = true;
    mg_sd_notify("STOPPING=1");
    smtp_receive_stop(d->rx);
    control_stop(d->control);
    local_agent_stop(d->local);
    remote_agent_stop(d->remote);
    uv_timer_start(&d->stop_timer, stop_timer_cb, 100, 100);
}

static int load_tls(const struct mg_settings *set, struct mg_tls_context **ctx_r, char **error_r)
{
    struct mg_tls_server_options o;
    mg_tls_server_options_from_settings(&set->tls, &o);
    return mg_tls_context_new_server(&o, ctx_r, error_r);
}

static bool has_tcp_link(const struct mgsmtpd *d)
{
    return !d->lmtp_endpoint.is_unix || !d->auth_endpoint.is_unix;
}

/* The MDA's addresses stay as they were at start (a restart changes
 * them); its certificates can be renewed under a running daemon. */
static void reload_link_tls(struct mgsmtpd *d, const struct mg_settings *fresh)
{
    if (!has_tcp_link(d))
        return;
    struct mg_tls_context *tls = NULL;
    char *error = NULL;
    if (mg_tls_context_new_link_client(fresh, &tls, &error) != 0) {
        mg_log_error("mgsmtpd", "reload: keeping the old cluster certificate: %s", error);
        free(error);
        return;
    }
    local_agent_set_tls(d->local, tls);
    mg_auth_client_set_tls(d->auth, tls);
    mg_tls_context_unref(&d->link_tls);
    d->link_tls = tls;
    mg_log_info("mgsmtpd", "cluster certificate reloaded");
}

/* Where the MDA is: resolved once, at start (common/endpoint.h). */
static void open_links(struct mgsmtpd *d)
{
    const struct mg_settings *set = d->settings;
    const char *lmtp = set->mta.lmtp[0] != '\0' ? set->mta.lmtp : set->lmtp.socket;
    const char *auth = set->mta.auth[0] != '\0' ? set->mta.auth : set->auth.socket;
    char *error = NULL;
    if (mg_endpoint_parse(lmtp, &d->lmtp_endpoint, &error) != 0)
        mg_log_fatal("mgsmtpd", "[mta] lmtp: %s", error);
    if (mg_endpoint_parse(auth, &d->auth_endpoint, &error) != 0)
        mg_log_fatal("mgsmtpd", "[mta] auth: %s", error);
    /* Read while privileged, like the other keys. */
    if (has_tcp_link(d) && mg_tls_context_new_link_client(set, &d->link_tls, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
}

static void on_reload(void *ctx)
{
    struct mgsmtpd *d = ctx;
    mg_sd_notify("RELOADING=1");
    struct mg_settings *fresh = NULL;
    char *error = NULL;
    if (mg_settings_load(d->config_path, &fresh, &error) != 0) {
        mg_log_error("mgsmtpd", "reload failed, keeping the old configuration: %s", error);
        free(error);
        mg_sd_notify("READY=1");
        return;
    }
    mg_log_set_level(fresh->log_level);
    reload_link_tls(d, fresh);
    struct mg_tls_context *tls = NULL;
    if (load_tls(fresh, &tls, &error) != 0) {
        mg_log_error("mgsmtpd", "reload: keeping the old certificate: %s", error);
        free(error);
    } else {
        smtp_receive_set_tls(d->rx, tls);
        mg_tls_context_unref(&d->tls);
        d->tls = tls;
        mg_log_info("mgsmtpd", "certificates reloaded");
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
    struct mgsmtpd d = { 0 };
    d.config_path = MG_DEFAULT_CONFIG_FILE;
    bool check = false, dump = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': d.config_path = optarg; break;
        case 'C': check = true; break;
        case 'D': dump = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mgsmtpd %s\n", MG_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    mg_log_init("mgsmtpd");
    char *error = NULL;
    if (mg_settings_load(d.config_path, &d.settings, &error) != 0) {
        fprintf(stderr, "mgsmtpd: %s\n", error);
        free(error);
        return 1;
    }
    static const char *const required[] = { "tls.cert_file", "tls.key_file", "mta.queue_dir", NULL };
    if (mg_settings_require(d.settings, required, &error) != 0) {
        fprintf(stderr, "mgsmtpd: %s\n", error);
        free(error);
        mg_settings_free(&d.settings);
        return 1;
    }
    if (dump || check) {
        /* Freed on the way out too: LeakSanitizer builds fail otherwise. */
        if (dump)
            mg_settings_dump(d.settings, stdout);
        else
            printf("mgsmtpd: %s is valid\n", d.config_path);
        mg_settings_free(&d.settings);
        return 0;
    }
    mg_log_set_level(d.settings->log_level);
    if (getenv("UV_THREADPOOL_SIZE") == NULL)
        setenv("UV_THREADPOOL_SIZE", "16", 1);
    d.loop = uv_default_loop();

    if (smtp_receive_bind(d.loop, d.settings, &d.rx, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (control_bind(d.loop, d.settings->mta.control_socket, &d.control, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (load_tls(d.settings, &d.tls, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    open_links(&d);
    if (geteuid() == 0 && d.settings->mta.user[0] != '\0') {
        /* mgqueue connects as our user. */
        uid_t uid;
        gid_t gid;
        if (mg_privileges_lookup(d.settings->mta.user, d.settings->mta.group, &uid, &gid, &error) != 0)
            mg_log_fatal("mgsmtpd", "%s", error);
        if (chown(d.settings->mta.control_socket, uid, gid) != 0)
            mg_log_fatal("mgsmtpd", "cannot chown %s: %s", d.settings->mta.control_socket, strerror(errno));
    }
    if (mg_privileges_drop(d.settings->mta.user, d.settings->mta.group, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (geteuid() == 0)
        mg_log_warning("mgsmtpd", "running as root: set [mta] user (development only)");

    if (queue_open(d.loop, d.settings, &d.queue, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    struct mg_auth_client_settings as = {
        .endpoint = &d.auth_endpoint, .tls = d.link_tls, .client_name = "mgsmtpd",
    };
    d.auth = mg_auth_client_new(d.loop, &as);
    queue_set_auth(d.queue, d.auth);
    d.local = local_agent_new(d.loop, d.settings, d.queue, &d.lmtp_endpoint, d.link_tls);
    d.remote = remote_agent_new(d.loop, d.settings, d.queue, &error);
    if (d.remote == NULL)
        mg_log_fatal("mgsmtpd", "%s", error);
    queue_set_agents(d.queue, local_agent_queue_agent(d.local), remote_agent_queue_agent(d.remote));

    mg_signals_init(&d.signals, d.loop, on_stop, on_reload, &d);
    uv_timer_init(d.loop, &d.stop_timer);
    d.stop_timer.data = &d;
    smtp_receive_start(d.rx, d.queue, d.auth, d.tls);
    control_start(d.control, d.queue);
    mg_log_info("mgsmtpd", "ready version=%s queued=%zu", MG_VERSION, queue_count(d.queue));
    mg_sd_notify("READY=1");

    uv_run(d.loop, UV_RUN_DEFAULT);

    mg_log_info("mgsmtpd", "stopped");
    remote_agent_free(&d.remote);
    local_agent_free(&d.local);
    queue_close(&d.queue);
    mg_auth_client_free(&d.auth);
    mg_signals_close(&d.signals);
    uv_close((uv_handle_t *)&d.stop_timer, NULL);
    control_free(&d.control);
    smtp_receive_free(&d.rx);
    mg_tls_context_unref(&d.tls);
    mg_tls_context_unref(&d.link_tls);
    mg_endpoint_clear(&d.lmtp_endpoint);
    mg_endpoint_clear(&d.auth_endpoint);
    mg_settings_free(&d.settings);
    return 0;
}
