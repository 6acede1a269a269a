/* Remote delivery: deliveries are grouped by destination (the next hop's
 * key, see route.h). A destination resolves its next hop once, keeps the
 * ordered list of addresses for as long as it has work (one batch), and
 * runs up to [queue] destination_concurrency connections ("links"), each of
 * which takes message after message from the destination's waiting list.
 *
 * A link walks the address list: a connection that fails before it is
 * ready (refused, timeout, TLS, 421, a refused greeting or EHLO, failed
 * AUTH) marks that address dead for the batch and moves on to the next
 * live one. Deliveries wait on the destination, not on a link, so a slow
 * or failing connection never holds mail that another one could send;
 * they fail (temporarily, naming the last host and error) only when no
 * address is left and no link is alive.
 *
 * Nothing is started and nothing finished inside agent_deliver(): the
 * queue calls it while walking its messages, so work is picked up by the
 * pump, a zero timer, on the next loop iteration. */
#include "mta/delivery/remote_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/strmap.h"
#include "common/tls.h"
#include "lmtp/smtp_client.h"
#include "mta/delivery/remote_private.h"

/* ---- jobs ---- */

void remote_agent_fail_rcpts(struct queue_delivery *d, int result, const char *dsn, const char *text)
{
    /* Only recipients without a result (0 and no text: 0 with a text is
     * "not attempted"): outbound_fail_all() would also overwrite the
     * replies of those that already have a 4xx. */
    for (size_t i = 0; i < d->n_rcpts; i++) {
        struct queue_delivery_rcpt *r = &d->rcpts[i];
        if (r->result != 0 || r->text != NULL)
            continue;
        r->result = result;
        snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
        free(r->text);
        r->text = mg_strdup(text);
    }
}

void remote_agent_finish_job(struct remote_agent *a, struct remote_job *job, const char *relay)
{
    struct queue_delivery *d = job->d;
    /* Anyone still without a result was not answered: try again later. */
    remote_agent_fail_rcpts(d, 4, "4.4.2", "no reply for this recipient");
    if (relay != NULL && d->relay == NULL)
        d->relay = mg_strdup(relay);
    free(job);
    a->busy--;
    queue_delivery_done(a->queue, d);
}

static struct remote_job *dest_pop(struct remote_dest *dest)
{
    struct remote_job *job = dest->waiting;
    if (job == NULL)
        return NULL;
    dest->waiting = job->next;
    if (dest->waiting == NULL)
        dest->waiting_tail = NULL;
    job->next = NULL;
    dest->n_waiting--;
    dest->agent->waiting--;
    return job;
}

void remote_agent_push_job(struct remote_dest *dest, struct remote_job *job, bool at_front)
{
    if (at_front) {
        job->next = dest->waiting;
        dest->waiting = job;
        if (dest->waiting_tail == NULL)
            dest->waiting_tail = job;
    } else {
        job->next = NULL;
        if (dest->waiting_tail != NULL)
            dest->waiting_tail->next = job;
        else
            dest->waiting = job;
        dest->waiting_tail = job;
    }
    dest->n_waiting++;
    dest->agent->waiting++;
}

/* Every waiting delivery of dest gets the same result. */
static void dest_fail_waiting(struct remote_dest *dest, int result, const char *dsn,
                              const char *text, const char *relay)
{
    struct remote_job *job;
    while ((job = dest_pop(dest)) != NULL) {
        remote_agent_fail_rcpts(job->d, result, dsn, text);
        remote_agent_finish_job(dest->agent, job, relay);
    }
}

/* ---- destinations ---- */

static struct remote_dest *dest_new(struct remote_agent *a, const char *key,
                                    const struct route_hop *hop, const char *domain)
{
    struct remote_dest *dest = mg_calloc(1, sizeof(*dest));
    dest->agent = a;
    dest->key = mg_strdup(key);
    dest->domain = mg_strdup(domain);
    dest->hop = *hop;
    dest->name = mg_strdup(hop->name != NULL ? hop->name : "");
    dest->hop.name = dest->name;
    dest->hop.domain = dest->domain;
    dest->next = a->dests;
    if (a->dests != NULL)
        a->dests->prev = dest;
    a->dests = dest;
    mg_strmap_set(a->dests_by_key, dest->key, dest);
    return dest;
}

static void dest_free(struct remote_dest *dest)
{
    struct remote_agent *a = dest->agent;
    mg_assert(dest->links == NULL && dest->waiting == NULL && !dest->is_dirty);
    route_resolve_cancel(&dest->resolving);
    mg_strmap_remove(a->dests_by_key, dest->key);
    if (dest->prev != NULL)
        dest->prev->next = dest->next;
    else
        a->dests = dest->next;
    if (dest->next != NULL)
        dest->next->prev = dest->prev;
    route_result_free(&dest->route);
    free(dest->is_dead);
    free(dest->key);
    free(dest->domain);
    free(dest->name);
    free(dest->last_error);
    free(dest->last_relay);
    free(dest);
}

static void resolved_cb(struct route_result *result, void *ctx)
{
    struct remote_dest *dest = ctx;
    dest->resolving = NULL;
    dest->route = *result;
    char kv[MG_LOG_VALUE_MAX], tv[MG_LOG_VALUE_MAX];
    if (result->result != 0) {
        dest->state = DEST_FAILED;
        mg_log_info("relay", "next hop failed dest=%s status=%s reason=%s", mg_log_str(kv, dest->key),
                    result->dsn, mg_log_str(tv, result->text));
    } else {
        dest->state = DEST_READY;
        dest->is_dead = mg_calloc(result->n_targets, sizeof(bool));
        mg_log_debug("relay", "next hop resolved dest=%s addresses=%zu first=%s[%s]:%u",
                     mg_log_str(kv, dest->key), result->n_targets, result->targets[0].host,
                     result->targets[0].ip, result->targets[0].port);
    }
    remote_agent_mark_dest(dest);
}

static void dest_resolve(struct remote_dest *dest)
{
    struct remote_agent *a = dest->agent;
    if (dest->hop.is_ip) {
        route_result_literal(&dest->hop, &dest->route);
        if (dest->route.result != 0) {
            dest->state = DEST_FAILED;
        } else {
            dest->state = DEST_READY;
            dest->is_dead = mg_calloc(dest->route.n_targets, sizeof(bool));
        }
        return;
    }
    dest->state = DEST_RESOLVING;
    dest->resolving = route_resolve_start(a->dns, &dest->hop, a->settings->hostname, NULL, NULL,
                                          resolved_cb, dest);
}

bool remote_agent_next_target(const struct remote_dest *dest, size_t from, size_t *target_r)
{
    for (size_t i = from; i < dest->route.n_targets; i++) {
        if (!dest->is_dead[i]) {
            *target_r = i;
            return true;
        }
    }
    return false;
}

static unsigned dest_links_starting(const struct remote_dest *dest)
{
    unsigned n = 0;
    for (const struct remote_link *l = dest->links; l != NULL; l = l->next) {
        if (l->state == LINK_CONNECTING || l->state == LINK_SETUP)
            n++;
    }
    return n;
}

/* At the total connection limit: ask one idle connection of a destination
 * with nothing waiting to QUIT, so that the capacity goes where mail is. */
static void agent_make_room(struct remote_agent *a, const struct remote_dest *except)
{
    for (struct remote_dest *dest = a->dests; dest != NULL; dest = dest->next) {
        if (dest == except || dest->n_waiting > 0)
            continue;
        for (struct remote_link *l = dest->links; l != NULL; l = l->next) {
            if (l->state == LINK_IDLE && l->cc.client != NULL) {
                l->state = LINK_QUIT;
                smtp_client_quit(l->cc.client);
                return;
            }
        }
    }
}

static void dest_process(struct remote_dest *dest)
{
    struct remote_agent *a = dest->agent;
    if (a->is_stopping) {
        dest_fail_waiting(dest, 0, "4.3.2", "mail system is stopping", NULL);
        if (dest->state == DEST_RESOLVING) {
            route_resolve_cancel(&dest->resolving);
            dest->state = DEST_NEW;
        }
        for (struct remote_link *l = dest->links; l != NULL; l = l->next) {
            if (l->state == LINK_IDLE && l->cc.client != NULL) {
                l->state = LINK_QUIT;
                smtp_client_quit(l->cc.client);
            }
        }
    }
    if (dest->state == DEST_NEW && dest->n_waiting > 0 && !a->is_stopping)
        dest_resolve(dest);
    if (dest->state == DEST_FAILED) {
        dest_fail_waiting(dest, dest->route.result, dest->route.dsn, dest->route.text, NULL);
    } else if (dest->state == DEST_READY) {
        /* Idle connections first: that is the reuse. */
        for (struct remote_link *l = dest->links; l != NULL && dest->n_waiting > 0; l = l->next) {
            if (l->state == LINK_IDLE && l->job == NULL)
                remote_link_start(l, dest_pop(dest));
        }
        /* New connections while more mail waits than is being connected
         * for, within both limits. */
        size_t target;
        while (dest->n_waiting > dest_links_starting(dest) &&
               dest->n_links < a->settings->queue.destination_concurrency &&
               a->n_links < a->settings->queue.remote_concurrency &&
               remote_agent_next_target(dest, 0, &target))
            remote_link_new(dest, target);
        if (dest->n_waiting > 0 && dest->n_links == 0) {
            if (!remote_agent_next_target(dest, 0, &target)) {
                struct remote_job *job;
                while ((job = dest_pop(dest)) != NULL) {
                    const char *domain = job->d->destination != NULL ? job->d->destination : dest->domain;
                    char *why = mg_asprintf("delivery to %s failed on every host; last: %s", domain,
                                            dest->last_error != NULL ? dest->last_error : "none");
                    remote_agent_fail_rcpts(job->d, 4, dest->last_dsn[0] ? dest->last_dsn : "4.4.1", why);
                    free(why);
                    remote_agent_finish_job(a, job, dest->last_relay);
                }
            } else {
                agent_make_room(a, dest);
            }
        }
    }
    if (dest->n_waiting == 0 && dest->links == NULL && dest->state != DEST_RESOLVING &&
        !dest->is_dirty)
        dest_free(dest);
}

static void pump_cb(uv_timer_t *t)
{
    struct remote_agent *a = t->data;
    struct remote_dest *dest;
    while ((dest = a->dirty) != NULL) {
        a->dirty = dest->next_dirty;
        dest->next_dirty = NULL;
        dest->is_dirty = false;
        dest_process(dest);
    }
}

/* Looks at dest again on the next loop iteration. */
void remote_agent_mark_dest(struct remote_dest *dest)
{
    if (dest->is_dirty)
        return;
    struct remote_agent *a = dest->agent;
    dest->is_dirty = true;
    dest->next_dirty = a->dirty;
    a->dirty = dest;
    uv_timer_start(&a->pump, pump_cb, 0, 0);
}

/* A connection went away: its capacity may serve anyone waiting. */
void remote_agent_capacity_freed(struct remote_agent *a)
{
    for (struct remote_dest *dest = a->dests; dest != NULL; dest = dest->next) {
        if (dest->n_waiting > 0)
            remote_agent_mark_dest(dest);
    }
    queue_kick(a->queue);
}

/* ---- the agent ---- */

static bool agent_deliver(struct queue_agent *qa, struct queue_delivery *d)
{
    struct remote_agent *a = qa->ctx;
    if (a->is_stopping || a->waiting >= REMOTE_WAITING_MAX)
        return false;
    char domain[DNS_NAME_MAX + 3];
    snprintf(domain, sizeof(domain), "%s", d->destination != NULL ? d->destination : "");
    mg_ascii_lower(domain, strlen(domain));
    struct route_hop hop;
    const char *why = NULL;
    char key[ROUTE_KEY_MAX];
    bool is_bad = route_choose(a->routes, domain, &hop, &why) != 0;
    if (is_bad)
        snprintf(key, sizeof(key), "invalid:%s", domain);
    else
        route_hop_key(&hop, key);
    struct remote_dest *dest = mg_strmap_get(a->dests_by_key, key);
    if (dest == NULL) {
        /* A destination without a connection yet needs capacity. */
        if (!is_bad && a->n_links >= a->settings->queue.remote_concurrency) {
            agent_make_room(a, NULL);
            return false;
        }
        dest = dest_new(a, key, &hop, domain);
        if (is_bad) {
            dest->state = DEST_FAILED;
            dest->route.result = 5;
            snprintf(dest->route.dsn, sizeof(dest->route.dsn), "5.1.2");
            dest->route.text = mg_asprintf("bad destination domain \"%s\": %s", domain, why);
        }
    }
    struct remote_job *job = mg_calloc(1, sizeof(*job));
    job->d = d;
    a->busy++;
    remote_agent_push_job(dest, job, false);
    remote_agent_mark_dest(dest);
    return true;
}

static int read_password(const char *path, char **password_r, char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = mg_asprintf("cannot open [relay] relayhost_password_file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        mg_log_warning("relay", "the relayhost password file is readable by others path=%s mode=%04o", path,
                       (unsigned)(st.st_mode & 07777));
    char buf[REMOTE_PASSWORD_MAX + 2];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *error_r = mg_asprintf("cannot read [relay] relayhost_password_file %s: %s", path, strerror(errno));
            close(fd);
            explicit_bzero(buf, sizeof(buf));
            return -1;
        }
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    size_t line = strcspn(buf, "\r\n");
    int ret = 0;
    if (line == 0) {
        *error_r = mg_asprintf("[relay] relayhost_password_file %s: the first line is empty", path);
        ret = -1;
    } else if (line > REMOTE_PASSWORD_MAX) {
        *error_r = mg_asprintf("[relay] relayhost_password_file %s: the password is longer than %d bytes", path,
                               REMOTE_PASSWORD_MAX);
        ret = -1;
    } else {
        *password_r = mg_strndup(buf, line);
    }
    explicit_bzero(buf, sizeof(buf));
    return ret;
}

struct remote_agent *remote_agent_new(uv_loop_t *loop, const struct mg_settings *settings,
                                      struct queue *queue, char **error_r)
{
    const struct mg_settings_relay *rs = &settings->relay;
    struct route_table *routes = NULL;
    if (route_table_new(rs, &routes, error_r) != 0)
        return NULL;
    char *password = NULL;
    if (rs->relayhost[0] != '\0' && rs->relayhost_user[0] != '\0') {
        if (rs->relayhost_password_file[0] == '\0') {
            *error_r = mg_strdup("[relay] relayhost_user needs relayhost_password_file");
            route_table_free(&routes);
            return NULL;
        }
        if (read_password(rs->relayhost_password_file, &password, error_r) != 0) {
            route_table_free(&routes);
            return NULL;
        }
    }
    struct mg_tls_client_options to = {
        .ca_file = rs->tls_ca_file[0] != '\0' ? rs->tls_ca_file : NULL,
        /* Verified or not, the handshake completes; the policy (log it,
         * or refuse the connection) is applied in conn_on_tls_ready. */
        .require_verification = false,
        .is_opportunistic = true,
    };
    struct mg_tls_context *tls = NULL;
    if (mg_tls_context_new_client(&to, &tls, error_r) != 0) {
        route_table_free(&routes);
        if (password != NULL)
            explicit_bzero(password, strlen(password));
        free(password);
        return NULL;
    }
    struct dns_resolver_settings ds = {
        .server = rs->resolver,
        .timeout_ms = REMOTE_DNS_TIMEOUT_MS,
        .tries = REMOTE_DNS_TRIES,
    };
    struct dns_resolver *dns = NULL;
    char *dns_error = NULL;
    if (dns_resolver_new(loop, &ds, &dns, &dns_error) != 0) {
        *error_r = mg_asprintf("[relay] resolver: %s", dns_error);
        free(dns_error);
        mg_tls_context_unref(&tls);
        route_table_free(&routes);
        if (password != NULL)
            explicit_bzero(password, strlen(password));
        free(password);
        return NULL;
    }
    struct remote_agent *a = mg_calloc(1, sizeof(*a));
    a->loop = loop;
    a->settings = settings;
    a->queue = queue;
    a->routes = routes;
    a->dns = dns;
    a->tls = tls;
    a->password = password;
    a->dests_by_key = mg_strmap_new();
    a->agent.deliver = agent_deliver;
    a->agent.ctx = a;
    uv_timer_init(loop, &a->pump);
    a->pump.data = a;
    mg_log_info("relay", "remote delivery ready transport_entries=%zu relayhost=%s tls_verify=%s resolver=%s",
                route_table_transport_count(routes), rs->relayhost[0] ? rs->relayhost : "none", rs->tls_verify,
                rs->resolver[0] ? rs->resolver : "system");
    return a;
}

struct queue_agent *remote_agent_queue_agent(struct remote_agent *agent)
{
    return &agent->agent;
}

void remote_agent_stop(struct remote_agent *agent)
{
    if (agent->is_stopping)
        return;
    agent->is_stopping = true;
    for (struct remote_dest *dest = agent->dests; dest != NULL; dest = dest->next) {
        /* Connections still being set up carry no mail: they go now. */
        for (struct remote_link *l = dest->links; l != NULL; l = l->next) {
            if ((l->state == LINK_CONNECTING || l->state == LINK_SETUP) && l->cc.conn != NULL)
                mg_conn_abort(l->cc.conn, "stopping");
        }
        remote_agent_mark_dest(dest);
    }
}

unsigned remote_agent_busy(const struct remote_agent *agent)
{
    return agent->busy + agent->n_links;
}

static void agent_free_cb(uv_handle_t *h)
{
    struct remote_agent *a = h->data;
    free(a);
}

void remote_agent_free(struct remote_agent **agent)
{
    struct remote_agent *a = *agent;
    if (a == NULL)
        return;
    *agent = NULL;
    a->is_stopping = true;
    /* Whatever is left goes back to the queue now; connections are cut
     * and free themselves from their close callbacks. */
    while (a->dests != NULL) {
        struct remote_dest *dest = a->dests;
        route_resolve_cancel(&dest->resolving);
        dest_fail_waiting(dest, 0, "4.3.2", "mail system is stopping", NULL);
        while (dest->links != NULL) {
            struct remote_link *l = dest->links;
            if (l->job != NULL) {
                struct remote_job *job = l->job;
                l->job = NULL;
                remote_agent_fail_rcpts(job->d, l->is_data_sent ? 4 : 0, "4.3.2",
                                  "mail system stopped during the transaction");
                remote_agent_finish_job(a, job, l->relay);
            }
            remote_link_unlink(l);
            l->dest = NULL;
            l->prev = l->next = NULL;
            if (l->cc.conn != NULL)
                mg_conn_abort(l->cc.conn, NULL);
            else
                remote_link_free(l);
        }
        dest->is_dirty = false;
        dest_free(dest);
    }
    a->dirty = NULL;
    dns_resolver_free(&a->dns);
    mg_tls_context_unref(&a->tls);
    route_table_free(&a->routes);
    mg_strmap_free(&a->dests_by_key);
    if (a->password != NULL) {
        explicit_bzero(a->password, strlen(a->password));
        free(a->password);
        a->password = NULL;
    }
    uv_close((uv_handle_t *)&a->pump, agent_free_cb);
}
