/* mgsmtpd: the MTA. SMTP on port 25, submission on 465, the queue, local
 * delivery over LMTP and relay to other servers.
 *
 * As with mgimapd: listeners and the TLS key first (privileged), then the
 * switch to [mta] user, then the queue and network input. The queue works
 * without mgimapd: local mail waits until it can be delivered. */
#include <errno.h>
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
#include "mta/control.h"
#include "mta/delivery/local_agent.h"
#include "mta/delivery/remote_agent.h"
#include "mta/queue/queue.h"
#include "mta/receive/smtp_receive.h"

struct mgsmtpd {
    struct mg_daemon daemon;
    uv_loop_t *loop;                /* daemon.loop */
    struct mg_settings *settings;   /* daemon.settings */
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
};

static bool is_idle(void *ctx)
{
    struct mgsmtpd *d = ctx;
    return smtp_receive_session_count(d->rx) == 0 && queue_jobs_running(d->queue) == 0 &&
           local_agent_busy(d->local) == 0 && remote_agent_busy(d->remote) == 0;
}

static void on_stop(void *ctx)
{
    struct mgsmtpd *d = ctx;
    smtp_receive_stop(d->rx);
    control_stop(d->control);
    local_agent_stop(d->local);
    remote_agent_stop(d->remote);
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
static int open_links(struct mgsmtpd *d, const struct mg_settings *set, char **error_r)
{
    const char *lmtp = set->mta.lmtp[0] != '\0' ? set->mta.lmtp : set->lmtp.socket;
    const char *auth = set->mta.auth[0] != '\0' ? set->mta.auth : set->auth.socket;
    char *error = NULL;
    if (mg_endpoint_parse(lmtp, &d->lmtp_endpoint, &error) != 0) {
        *error_r = mg_asprintf("[mta] lmtp: %s", error);
        free(error);
        return -1;
    }
    if (mg_endpoint_parse(auth, &d->auth_endpoint, &error) != 0) {
        *error_r = mg_asprintf("[mta] auth: %s", error);
        free(error);
        return -1;
    }
    /* Read while privileged, like the other keys. */
    if (has_tcp_link(d) && mg_tls_context_new_link_client(set, &d->link_tls, error_r) != 0)
        return -1;
    return 0;
}

static void close_links(struct mgsmtpd *d)
{
    mg_tls_context_unref(&d->link_tls);
    mg_endpoint_clear(&d->lmtp_endpoint);
    mg_endpoint_clear(&d->auth_endpoint);
}

/* The users are looked up when privileges are dropped, the routes, the
 * relay host's password and the resolver when remote delivery starts. */
static int check_config(const struct mg_settings *set, char **error_r)
{
    struct mgsmtpd d = { 0 };
    if (load_tls(set, &d.tls, error_r) != 0)
        return -1;
    mg_tls_context_unref(&d.tls);
    int ret = open_links(&d, set, error_r);
    close_links(&d);
    if (ret != 0)
        return -1;
    uid_t uid;
    gid_t gid;
    if (set->mta.user[0] != '\0' &&
        mg_privileges_lookup(set->mta.user, set->mta.group, &uid, &gid, error_r) != 0)
        return -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct remote_agent *remote = remote_agent_new(&loop, set, NULL, error_r);
    ret = remote != NULL ? 0 : -1;
    remote_agent_free(&remote);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ret;
}

static void on_reload(void *ctx, const struct mg_settings *fresh)
{
    struct mgsmtpd *d = ctx;
    reload_link_tls(d, fresh);
    struct mg_tls_context *tls = NULL;
    char *error = NULL;
    if (load_tls(fresh, &tls, &error) != 0) {
        mg_log_error("mgsmtpd", "reload: keeping the old certificate: %s", error);
        free(error);
    } else {
        smtp_receive_set_tls(d->rx, tls);
        mg_tls_context_unref(&d->tls);
        d->tls = tls;
        mg_log_info("mgsmtpd", "certificates reloaded");
    }
}

static const struct mg_daemon_info daemon_info = {
    .name = "mgsmtpd",
    .summary = "The Mailgenic MTA: SMTP (25), submission (465), queue, delivery and relay.",
    .required = (const char *const[]){ "tls.cert_file", "tls.key_file", "mta.queue_dir", NULL },
    .busy_warning = "stopping with work in progress (it stays queued)",
    .check = check_config,
};

static const struct mg_daemon_hooks daemon_hooks = {
    .stop = on_stop,
    .is_idle = is_idle,
    .reload = on_reload,
};

int main(int argc, char **argv)
{
    struct mgsmtpd d = { 0 };
    int status;
    if (mg_daemon_init(&d.daemon, &daemon_info, argc, argv, &status) != 0)
        return status;
    d.loop = d.daemon.loop;
    d.settings = d.daemon.settings;
    char *error = NULL;

    if (smtp_receive_bind(d.loop, d.settings, &d.rx, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (control_bind(d.loop, d.settings->mta.control_socket, &d.control, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (load_tls(d.settings, &d.tls, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (open_links(&d, d.settings, &error) != 0)
        mg_log_fatal("mgsmtpd", "%s", error);
    if (geteuid() == 0 && d.settings->mta.user[0] != '\0') {
        /* mgqueue connects as our user. */
        uid_t uid;
        gid_t gid;
        if (mg_privileges_lookup(d.settings->mta.user, d.settings->mta.group, &uid, &gid, &error) != 0)
            mg_log_fatal("mgsmtpd", "%s", error);
        if (chown(d.settings->mta.control_socket, uid, gid) != 0)
            mg_log_fatal("mgsmtpd", "cannot chown %s: %s", d.settings->mta.control_socket, strerror(errno));
    }
    mg_daemon_drop_privileges(&d.daemon, d.settings->mta.user, d.settings->mta.group, "mta");

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

    mg_daemon_start(&d.daemon, &daemon_hooks, &d);
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
    control_free(&d.control);
    smtp_receive_free(&d.rx);
    mg_tls_context_unref(&d.tls);
    close_links(&d);
    mg_daemon_close(&d.daemon);
    return 0;
}
