#include "mta/delivery/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

/* One socket c-ares asked us to watch. */
struct dns_sock {
    struct dns_sock *next;
    struct dns_resolver *resolver;
    uv_poll_t poll;
    ares_socket_t fd;
};

struct dns_resolver {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer;            /* follows ares_timeout() */
    uv_timer_t defer;            /* delivers finished queries from the loop */
    struct dns_sock *socks;      /* watched sockets (closing ones are not listed) */
    struct dns_query *queries;   /* every query not yet freed */
    unsigned handles_open;
    size_t pending;
    bool is_freeing;
};

enum query_type { QUERY_MX, QUERY_ADDRS };

/* One ares_query of a look-up (the address look-up has two). */
struct dns_part {
    struct dns_query *query;
    int rrtype;
};

struct dns_query {
    struct dns_query *next, *prev;
    struct dns_resolver *resolver;
    enum query_type type;
    dns_callback *cb;
    void *ctx;
    struct dns_part parts[2];
    unsigned parts_pending;
    bool is_done;                /* answered, waiting for the defer timer */
    bool is_cancelled;
    /* What was learned. */
    enum dns_status part_status[2];
    char error[160];
    struct dns_mx *mx;
    size_t n_mx;
    struct sockaddr_storage addrs4[DNS_RECORDS_MAX];
    size_t n_addrs4;
    struct sockaddr_storage addrs6[DNS_RECORDS_MAX];
    size_t n_addrs6;
};

const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK: return "ok";
    case DNS_NXDOMAIN: return "NXDOMAIN";
    case DNS_NODATA: return "no data";
    case DNS_TEMPFAIL: return "temporary failure";
    case DNS_BADNAME: return "bad name";
    }
    return "?";
}

/* ---- the channel on the loop ---- */

static void timer_cb(uv_timer_t *t);

static void update_timer(struct dns_resolver *r)
{
    if (r->is_freeing)
        return;
    struct timeval tv;
    if (ares_timeout(r->channel, NULL, &tv) == NULL) {
        uv_timer_stop(&r->timer);
        return;
    }
    /* Rounded up: a timer that fires a little early finds nothing due and
     * would spin. */
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, timer_cb, ms, 0);
}

static void timer_cb(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer(r);
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    struct dns_sock *s = handle->data;
    struct dns_resolver *r = s->resolver;
    ares_socket_t fd = s->fd;
    /* An error on the socket: let c-ares read and write to find out. */
    ares_socket_t rfd = status < 0 || (events & UV_READABLE) ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = status < 0 || (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD;
    /* s may be closed (not freed) from inside: not used after this. */
    ares_process_fd(r->channel, rfd, wfd);
    update_timer(r);
}

static void resolver_release(struct dns_resolver *r)
{
    if (--r->handles_open > 0)
        return;
    free(r);
    ares_library_cleanup();
}

static void handle_closed_cb(uv_handle_t *handle)
{
    resolver_release(handle->data);
}

static void sock_closed_cb(uv_handle_t *handle)
{
    struct dns_sock *s = handle->data;
    struct dns_resolver *r = s->resolver;
    free(s);
    resolver_release(r);
}

static void sock_forget(struct dns_resolver *r, struct dns_sock *s)
{
    for (struct dns_sock **p = &r->socks; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
}

/* c-ares: start, change or stop watching a socket. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *s = r->socks;
    while (s != NULL && s->fd != fd)
        s = s->next;
    if (!readable && !writable) {
        if (s != NULL)
            sock_forget(r, s);
        return;
    }
    if (s == NULL) {
        s = mg_calloc(1, sizeof(*s));
        s->resolver = r;
        s->fd = fd;
        if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
            mg_log_error("dns", "cannot watch a resolver socket fd=%d", (int)fd);
            free(s);
            return; /* the query times out */
        }
        s->poll.data = s;
        r->handles_open++;
        s->next = r->socks;
        r->socks = s;
    }
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, poll_cb);
}

int dns_resolver_new(uv_loop_t *loop, const struct dns_resolver_settings *settings,
                     struct dns_resolver **resolver_r, char **error_r)
{
    int st = ares_library_init(ARES_LIB_INIT_ALL);
    if (st != ARES_SUCCESS) {
        *error_r = mg_asprintf("cannot initialise c-ares: %s", ares_strerror(st));
        return -1;
    }
    struct dns_resolver *r = mg_calloc(1, sizeof(*r));
    r->loop = loop;
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.timeout = (int)(settings->timeout_ms > 0 ? settings->timeout_ms : 5000);
    o.tries = (int)(settings->tries > 0 ? settings->tries : 2);
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    st = ares_init_options(&r->channel, &o, mask);
    if (st != ARES_SUCCESS) {
        *error_r = mg_asprintf("cannot initialise the DNS resolver: %s", ares_strerror(st));
        free(r);
        ares_library_cleanup();
        return -1;
    }
    if (settings->server != NULL && settings->server[0] != '\0') {
        st = ares_set_servers_ports_csv(r->channel, settings->server);
        if (st != ARES_SUCCESS) {
            *error_r = mg_asprintf("invalid DNS server \"%s\" (ip:port expected): %s", settings->server,
                                   ares_strerror(st));
            ares_destroy(r->channel);
            free(r);
            ares_library_cleanup();
            return -1;
        }
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_init(loop, &r->defer);
    r->defer.data = r;
    r->handles_open = 2;
    *resolver_r = r;
    return 0;
}

static void query_unlink(struct dns_query *q)
{
    struct dns_resolver *r = q->resolver;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        r->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
}

static void query_free(struct dns_query *q)
{
    query_unlink(q);
    for (size_t i = 0; i < q->n_mx; i++)
        free(q->mx[i].host);
    free(q->mx);
    free(q);
}

void dns_resolver_free(struct dns_resolver **resolver)
{
    struct dns_resolver *r = *resolver;
    if (r == NULL)
        return;
    *resolver = NULL;
    for (struct dns_query *q = r->queries; q != NULL; q = q->next) {
        q->is_cancelled = true;
        q->cb = NULL;
    }
    /* Pending queries come back with ARES_EDESTRUCTION and are freed; the
     * sockets are reported closed through sock_state_cb. */
    ares_destroy(r->channel);
    r->is_freeing = true;
    while (r->queries != NULL)
        query_free(r->queries); /* answered, not delivered yet */
    while (r->socks != NULL)
        sock_forget(r, r->socks);
    uv_close((uv_handle_t *)&r->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&r->defer, handle_closed_cb);
}

size_t dns_resolver_pending(const struct dns_resolver *resolver)
{
    return resolver->pending;
}

/* ---- queries ---- */

static void defer_cb(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;
    /* Deliver in order of start; a callback may start or cancel others. */
    for (;;) {
        struct dns_query *q = r->queries;
        while (q != NULL && !q->is_done)
            q = q->next;
        if (q == NULL)
            break;
        r->pending--;
        struct dns_result res = { .status = DNS_TEMPFAIL, .error = q->error };
        struct sockaddr_storage addrs[2 * DNS_RECORDS_MAX];
        if (q->type == QUERY_MX) {
            res.status = q->part_status[0];
            res.mx = q->mx;
            res.n_mx = q->n_mx;
        } else {
            enum dns_status a = q->part_status[0], aaaa = q->part_status[1];
            memcpy(addrs, q->addrs4, q->n_addrs4 * sizeof(addrs[0]));
            memcpy(addrs + q->n_addrs4, q->addrs6, q->n_addrs6 * sizeof(addrs[0]));
            res.addrs = addrs;
            res.n_addrs = q->n_addrs4 + q->n_addrs6;
            if (res.n_addrs > 0)
                res.status = DNS_OK;
            else if (a == DNS_NXDOMAIN || aaaa == DNS_NXDOMAIN)
                res.status = DNS_NXDOMAIN;
            else if (a == DNS_TEMPFAIL || aaaa == DNS_TEMPFAIL)
                res.status = DNS_TEMPFAIL;
            else if (a == DNS_BADNAME)
                res.status = DNS_BADNAME;
            else
                res.status = DNS_NODATA;
        }
        if (res.status == DNS_OK)
            res.error = "";
        else if (q->error[0] == '\0')
            res.error = dns_status_name(res.status);
        dns_callback *cb = q->cb;
        void *ctx = q->ctx;
        q->is_done = false;
        q->cb = NULL;
        q->is_cancelled = true;
        cb(&res, ctx);
        query_free(q);
    }
}

static void query_finish(struct dns_query *q)
{
    struct dns_resolver *r = q->resolver;
    if (q->is_cancelled) {
        query_free(q);
        return;
    }
    q->is_done = true;
    if (!r->is_freeing)
        uv_timer_start(&r->defer, defer_cb, 0, 0);
}

static enum dns_status map_status(int st)
{
    switch (st) {
    case ARES_SUCCESS: return DNS_OK;
    case ARES_ENODATA: return DNS_NODATA;
    case ARES_ENOTFOUND: return DNS_NXDOMAIN;
    case ARES_EBADNAME: return DNS_BADNAME;
    default: return DNS_TEMPFAIL;
    }
}

static void set_error(struct dns_query *q, int st, const char *what)
{
    if (q->error[0] == '\0' || st == ARES_ETIMEOUT)
        snprintf(q->error, sizeof(q->error), "%s: %s", what, ares_strerror(st));
}

static void parse_mx(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct ares_mx_reply *mx = NULL;
    int st = ares_parse_mx_reply(abuf, alen, &mx);
    if (st != ARES_SUCCESS) {
        q->part_status[0] = map_status(st);
        if (q->part_status[0] != DNS_NODATA)
            q->part_status[0] = DNS_TEMPFAIL; /* a malformed answer */
        set_error(q, st, "MX");
        return;
    }
    size_t n = 0;
    for (struct ares_mx_reply *m = mx; m != NULL && n < DNS_RECORDS_MAX; m = m->next)
        n++;
    q->mx = mg_calloc(n ? n : 1, sizeof(*q->mx));
    for (struct ares_mx_reply *m = mx; m != NULL && q->n_mx < n; m = m->next) {
        const char *host = m->host != NULL ? m->host : "";
        size_t len = strlen(host);
        if (len > 0 && host[len - 1] == '.')
            len--;
        q->mx[q->n_mx].pref = m->priority;
        q->mx[q->n_mx].host = mg_strndup(host, len);
        q->n_mx++;
    }
    ares_free_data(mx);
    q->part_status[0] = q->n_mx > 0 ? DNS_OK : DNS_NODATA;
}

static void parse_addrs(struct dns_query *q, int idx, const unsigned char *abuf, int alen)
{
    int st;
    if (q->parts[idx].rrtype == 1 /* A */) {
        struct ares_addrttl ttls[DNS_RECORDS_MAX];
        int n = DNS_RECORDS_MAX;
        st = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
        for (int i = 0; st == ARES_SUCCESS && i < n; i++) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&q->addrs4[q->n_addrs4++];
            memset(sin, 0, sizeof(*sin));
            sin->sin_family = AF_INET;
            sin->sin_addr = ttls[i].ipaddr;
        }
    } else {
        struct ares_addr6ttl ttls[DNS_RECORDS_MAX];
        int n = DNS_RECORDS_MAX;
        st = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
        for (int i = 0; st == ARES_SUCCESS && i < n; i++) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&q->addrs6[q->n_addrs6++];
            memset(sin6, 0, sizeof(*sin6));
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, &ttls[i].ip6addr, sizeof(sin6->sin6_addr));
        }
    }
    if (st == ARES_SUCCESS) {
        size_t found = idx == 0 ? q->n_addrs4 : q->n_addrs6;
        q->part_status[idx] = found > 0 ? DNS_OK : DNS_NODATA;
    } else {
        q->part_status[idx] = st == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
        set_error(q, st, idx == 0 ? "A" : "AAAA");
    }
}

static void ares_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct dns_part *part = arg;
    struct dns_query *q = part->query;
    int idx = (int)(part - q->parts);
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        q->is_cancelled = true;
    } else if (!q->is_cancelled) {
        if (status == ARES_SUCCESS && abuf != NULL) {
            if (q->type == QUERY_MX)
                parse_mx(q, abuf, alen);
            else
                parse_addrs(q, idx, abuf, alen);
        } else {
            q->part_status[idx] = map_status(status == ARES_SUCCESS ? ARES_EBADRESP : status);
            const char *what = q->type == QUERY_MX ? "MX" : idx == 0 ? "A" : "AAAA";
            if (q->part_status[idx] != DNS_NXDOMAIN && q->part_status[idx] != DNS_NODATA)
                set_error(q, status, what);
        }
    }
    if (--q->parts_pending == 0)
        query_finish(q);
}

/* Host names only: letters, digits, '-', '_' and dots, no empty label. */
static bool name_is_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > DNS_NAME_MAX + 1)
        return false;
    if (name[len - 1] == '.')
        len--;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && len <= DNS_NAME_MAX;
}

static struct dns_query *query_start(struct dns_resolver *r, enum query_type type, const char *name,
                                     dns_callback *cb, void *ctx)
{
    mg_assert(!r->is_freeing);
    struct dns_query *q = mg_calloc(1, sizeof(*q));
    q->resolver = r;
    q->type = type;
    q->cb = cb;
    q->ctx = ctx;
    q->next = r->queries;
    if (r->queries != NULL)
        r->queries->prev = q;
    r->queries = q;
    r->pending++;
    if (!name_is_valid(name)) {
        q->part_status[0] = q->part_status[1] = DNS_BADNAME;
        snprintf(q->error, sizeof(q->error), "not a valid host name");
        query_finish(q);
        return q;
    }
    int n = type == QUERY_MX ? 1 : 2;
    q->parts_pending = (unsigned)n;
    q->parts[0] = (struct dns_part){ q, type == QUERY_MX ? 15 /* MX */ : 1 /* A */ };
    q->parts[1] = (struct dns_part){ q, 28 /* AAAA */ };
    for (int i = 0; i < n; i++) {
        /* ares_query: no search list, the name is taken as it is. The
         * callback may run from inside (immediate failures): query_finish
         * then defers the delivery to the loop anyway. */
        ares_query(r->channel, name, 1 /* IN */, q->parts[i].rrtype, ares_cb, &q->parts[i]);
    }
    update_timer(r);
    return q;
}

struct dns_query *dns_lookup_mx(struct dns_resolver *resolver, const char *name, dns_callback *cb,
                                void *ctx)
{
    return query_start(resolver, QUERY_MX, name, cb, ctx);
}

struct dns_query *dns_lookup_addrs(struct dns_resolver *resolver, const char *name,
                                   dns_callback *cb, void *ctx)
{
    return query_start(resolver, QUERY_ADDRS, name, cb, ctx);
}

void dns_query_cancel(struct dns_query **query)
{
    struct dns_query *q = *query;
    if (q == NULL)
        return;
    *query = NULL;
    if (q->is_cancelled)
        return;
    q->resolver->pending--;
    q->is_cancelled = true;
    q->cb = NULL;
    if (q->is_done || q->parts_pending == 0)
        query_free(q); /* waiting for the defer timer, or a bad name */
    /* Otherwise c-ares still holds it: freed when its answers come. */
}
