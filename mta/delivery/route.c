#include "mta/delivery/route.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/alloc.h"
#include "common/ascii.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/strmap.h"
#include "mta/delivery/dns.h"

/* Implicit TLS and STARTTLS submission ports, the relayhost defaults. */
#define ROUTE_SUBMISSIONS_PORT 465
#define ROUTE_SUBMISSION_PORT 587

struct route_entry {
    char *domain;              /* "example.com" or ".example.com" */
    struct route_host host;
};

struct route_table {
    struct route_entry *entries;
    size_t n_entries;
    struct mg_strmap *by_domain;
    bool has_relayhost;
    struct route_host relayhost;
    enum route_tls relayhost_tls;
    bool use_auth;
    bool require_verified;
};

/* ---- hosts ---- */

static bool parse_ip(const char *name, bool *is_v6_r)
{
    unsigned char tmp[16];
    if (inet_pton(AF_INET, name, tmp) == 1) {
        *is_v6_r = false;
        return true;
    }
    if (inet_pton(AF_INET6, name, tmp) == 1) {
        *is_v6_r = true;
        return true;
    }
    return false;
}

static int parse_port(const char *p, size_t len, uint16_t *port_r)
{
    if (len == 0 || len > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port_r = (uint16_t)v;
    return 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

int route_host_parse(const char *text, size_t len, uint16_t default_port,
                     struct route_host *host_r, const char **error_r)
{
    memset(host_r, 0, sizeof(*host_r));
    trim(&text, &len);
    if (len == 0) {
        *error_r = "empty host";
        return -1;
    }
    const char *name, *rest;
    size_t name_len;
    bool is_literal = false;
    if (text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL) {
            *error_r = "missing ']'";
            return -1;
        }
        name = text + 1;
        name_len = (size_t)(close - name);
        rest = close + 1;
        is_literal = true;
    } else {
        const char *colon = memchr(text, ':', len);
        if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - text)) != NULL) {
            *error_r = "an IPv6 address needs brackets: [2001:db8::1]:25";
            return -1;
        }
        name = text;
        name_len = colon != NULL ? (size_t)(colon - text) : len;
        rest = text + name_len;
    }
    size_t rest_len = len - (size_t)(rest - text);
    uint16_t port = default_port;
    if (rest_len > 0) {
        if (rest[0] != ':' || parse_port(rest + 1, rest_len - 1, &port) != 0) {
            *error_r = rest[0] != ':' ? "unexpected text after the host" : "invalid port (1-65535)";
            return -1;
        }
    }
    if (name_len == 0 || name_len > DNS_NAME_MAX) {
        *error_r = name_len == 0 ? "empty host" : "host name too long";
        return -1;
    }
    /* text comes with a length: a NUL byte inside would end the copy
     * early and leave name_len past its end. */
    if (memchr(name, '\0', name_len) != NULL) {
        *error_r = "invalid host name";
        return -1;
    }
    char *n = mg_strndup(name, name_len);
    mg_ascii_lower(n, name_len);
    bool is_v6 = false;
    bool is_ip = parse_ip(n, &is_v6);
    if (!is_ip && !mg_address_domain_is_valid(n, name_len, 0)) {
        free(n);
        *error_r = "invalid host name";
        return -1;
    }
    host_r->name = n;
    host_r->port = port;
    /* A bare address is an address too: looking up its MX makes no sense. */
    host_r->is_literal = is_literal || is_ip;
    host_r->is_ip = is_ip;
    return 0;
}

void route_host_free(struct route_host *host)
{
    free(host->name);
    host->name = NULL;
}

/* ---- the table ---- */

static void table_free(struct route_table *t)
{
    for (size_t i = 0; i < t->n_entries; i++) {
        free(t->entries[i].domain);
        route_host_free(&t->entries[i].host);
    }
    free(t->entries);
    mg_strmap_free(&t->by_domain);
    route_host_free(&t->relayhost);
    free(t);
}

static int table_fail(struct route_table *t, char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int table_fail(struct route_table *t, char **error_r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[600];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    *error_r = mg_strdup(buf);
    table_free(t);
    return -1;
}

static int parse_transport(struct route_table *t, const char *text, char **error_r)
{
    const char *p = text;
    unsigned n = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *entry = p;
        size_t elen = len;
        trim(&entry, &elen);
        n++;
        if (elen == 0)
            return table_fail(t, error_r, "[relay] transport: entry %u is empty", n);
        int shown = elen > 200 ? 200 : (int)elen;
        if (n > ROUTE_TRANSPORT_MAX)
            return table_fail(t, error_r, "[relay] transport: more than %d entries",
                              ROUTE_TRANSPORT_MAX);
        const char *eq = memchr(entry, '=', elen);
        if (eq == NULL)
            return table_fail(t, error_r,
                              "[relay] transport: entry %u \"%.*s\": domain=host:port expected", n,
                              shown, entry);
        const char *dom = entry;
        size_t dlen = (size_t)(eq - entry);
        trim(&dom, &dlen);
        const char *check = dom;
        size_t clen = dlen;
        if (clen > 0 && check[0] == '.') {
            check++;
            clen--;
        }
        if (clen == 0 || clen > DNS_NAME_MAX || check[0] == '[' ||
            !mg_address_domain_is_valid(check, clen, 0))
            return table_fail(t, error_r, "[relay] transport: entry %u \"%.*s\": invalid domain", n,
                              shown, entry);
        struct route_host host;
        const char *why;
        if (route_host_parse(eq + 1, elen - (size_t)(eq + 1 - entry), ROUTE_SMTP_PORT, &host, &why) != 0)
            return table_fail(t, error_r, "[relay] transport: entry %u \"%.*s\": %s", n, shown, entry,
                              why);
        char *key = mg_strndup(dom, dlen);
        mg_ascii_lower(key, dlen);
        if (mg_strmap_get(t->by_domain, key) != NULL) {
            free(key);
            route_host_free(&host);
            return table_fail(t, error_r, "[relay] transport: entry %u \"%.*s\": duplicate domain", n,
                              shown, entry);
        }
        t->entries = mg_reallocarray(t->entries, t->n_entries + 1, sizeof(*t->entries));
        t->entries[t->n_entries] = (struct route_entry){ key, host };
        t->n_entries++;
        /* Marks the domain taken (duplicates are refused above); the
         * value becomes the entry below, once the array stops moving. */
        mg_strmap_set(t->by_domain, key, t);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    /* Pointers into the array only once it has stopped moving. */
    for (size_t i = 0; i < t->n_entries; i++)
        mg_strmap_set(t->by_domain, t->entries[i].domain, &t->entries[i]);
    return 0;
}

int route_table_new(const struct mg_settings_relay *relay, struct route_table **table_r,
                    char **error_r)
{
    struct route_table *t = mg_calloc(1, sizeof(*t));
    t->by_domain = mg_strmap_new();
    t->require_verified = relay->tls_verify != NULL && strcmp(relay->tls_verify, "verify") == 0;
    if (relay->transport != NULL && relay->transport[0] != '\0') {
        const char *s = relay->transport;
        size_t len = strlen(s);
        trim(&s, &len);
        if (len > 0 && parse_transport(t, relay->transport, error_r) != 0)
            return -1;
    }
    if (relay->relayhost != NULL && relay->relayhost[0] != '\0') {
        bool is_implicit = relay->relayhost_security == NULL ||
                           strcmp(relay->relayhost_security, "starttls") != 0;
        const char *why;
        if (route_host_parse(relay->relayhost, strlen(relay->relayhost),
                             is_implicit ? ROUTE_SUBMISSIONS_PORT : ROUTE_SUBMISSION_PORT,
                             &t->relayhost, &why) != 0)
            return table_fail(t, error_r, "[relay] relayhost \"%.200s\": %s", relay->relayhost, why);
        t->has_relayhost = true;
        t->relayhost_tls = is_implicit ? ROUTE_TLS_IMPLICIT : ROUTE_TLS_STARTTLS;
        t->use_auth = relay->relayhost_user != NULL && relay->relayhost_user[0] != '\0';
    }
    *table_r = t;
    return 0;
}

void route_table_free(struct route_table **table)
{
    if (*table == NULL)
        return;
    table_free(*table);
    *table = NULL;
}

size_t route_table_transport_count(const struct route_table *table)
{
    return table->n_entries;
}

static const struct route_entry *transport_find(const struct route_table *t, const char *domain)
{
    if (t->n_entries == 0)
        return NULL;
    const struct route_entry *e = mg_strmap_get(t->by_domain, domain);
    /* Then ".parent" entries, nearest first. */
    for (const char *p = strchr(domain, '.'); e == NULL && p != NULL; p = strchr(p + 1, '.'))
        e = mg_strmap_get(t->by_domain, p);
    return e;
}

static void hop_from_host(struct route_hop *hop, const struct route_host *h)
{
    hop->name = h->name;
    hop->port = h->port;
    hop->use_mx = !h->is_literal;
    hop->is_ip = h->is_ip;
}

int route_choose(const struct route_table *table, const char *domain, struct route_hop *hop_r,
                 const char **error_r)
{
    memset(hop_r, 0, sizeof(*hop_r));
    hop_r->domain = domain;
    hop_r->require_verified = table->require_verified;
    hop_r->tls = table->require_verified ? ROUTE_TLS_STARTTLS : ROUTE_TLS_MAY;
    size_t len = strlen(domain);
    if (len == 0) {
        *error_r = "no domain";
        return -1;
    }
    if (domain[0] == '[') {
        /* An address literal (RFC 5321 4.1.3): that address, port 25. */
        if (!mg_address_domain_is_valid(domain, len, 0)) {
            *error_r = "malformed address literal";
            return -1;
        }
        hop_r->kind = ROUTE_MX;
        hop_r->name = domain; /* the caller strips it: see route_result_literal */
        hop_r->port = ROUTE_SMTP_PORT;
        hop_r->is_ip = true;
        return 0;
    }
    const struct route_entry *e = transport_find(table, domain);
    if (e != NULL) {
        hop_r->kind = ROUTE_TRANSPORT;
        hop_from_host(hop_r, &e->host);
        return 0;
    }
    if (table->has_relayhost) {
        hop_r->kind = ROUTE_RELAYHOST;
        hop_from_host(hop_r, &table->relayhost);
        hop_r->tls = table->relayhost_tls;
        hop_r->use_auth = table->use_auth;
        return 0;
    }
    hop_r->kind = ROUTE_MX;
    hop_r->name = domain;
    hop_r->port = ROUTE_SMTP_PORT;
    hop_r->use_mx = true;
    return 0;
}

void route_hop_key(const struct route_hop *hop, char key[ROUTE_KEY_MAX])
{
    switch (hop->kind) {
    case ROUTE_MX:
        snprintf(key, ROUTE_KEY_MAX, "%s", hop->domain);
        break;
    case ROUTE_TRANSPORT:
        snprintf(key, ROUTE_KEY_MAX, "transport:%s%s%s:%u", hop->use_mx ? "" : "[", hop->name,
                 hop->use_mx ? "" : "]", hop->port);
        break;
    case ROUTE_RELAYHOST:
        snprintf(key, ROUTE_KEY_MAX, "relayhost");
        break;
    }
}

/* ---- MX records ---- */

bool route_name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++) {
        if (mg_ascii_tolower(a[i]) != mg_ascii_tolower(b[i]))
            return false;
    }
    return true;
}

static uint32_t default_random(void *ctx)
{
    (void)ctx;
    return arc4random();
}

static void mx_drop(struct route_mx *mx, size_t *n, size_t i)
{
    free(mx[i].host);
    memmove(&mx[i], &mx[i + 1], (*n - i - 1) * sizeof(*mx));
    (*n)--;
}

enum route_mx_status route_mx_prepare(struct route_mx *mx, size_t *n, const char *self,
                                      route_random_fn *rnd, void *rnd_ctx)
{
    if (rnd == NULL)
        rnd = default_random;
    /* RFC 7505: a null MX is the domain's only MX record. One next to
     * real hosts is a mistake; the real hosts are used. Nothing but root
     * records (the null MX published twice) says "no mail" as clearly:
     * it must not come out as a mail loop, nor as OK with no host left
     * to resolve (a resolution that would never call back). */
    size_t n_records = *n;
    for (size_t i = *n; i-- > 0;) {
        if (mx[i].host[0] == '\0')
            mx_drop(mx, n, i);
    }
    if (n_records > 0 && *n == 0)
        return ROUTE_MX_NULL;
    /* Insertion sort by preference (stable; at most DNS_RECORDS_MAX). */
    for (size_t i = 1; i < *n; i++) {
        struct route_mx tmp = mx[i];
        size_t j = i;
        while (j > 0 && mx[j - 1].pref > tmp.pref) {
            mx[j] = mx[j - 1];
            j--;
        }
        mx[j] = tmp;
    }
    /* RFC 5321 5.1: equal preferences in random order (Fisher-Yates per
     * run), so that load spreads over them. */
    for (size_t start = 0; start < *n;) {
        size_t end = start + 1;
        while (end < *n && mx[end].pref == mx[start].pref)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + rnd(rnd_ctx) % (uint32_t)(i - start + 1);
            struct route_mx tmp = mx[i];
            mx[i] = mx[j];
            mx[j] = tmp;
        }
        start = end;
    }
    /* RFC 5321 5.1: when we are an MX host ourselves, only hosts more
     * preferred than us may be used. */
    if (self != NULL && self[0] != '\0') {
        for (size_t i = 0; i < *n; i++) {
            if (route_name_eq(mx[i].host, self)) {
                while (*n > i)
                    mx_drop(mx, n, *n - 1);
                break;
            }
        }
        if (*n == 0)
            return ROUTE_MX_LOOP;
    }
    while (*n > ROUTE_MX_MAX)
        mx_drop(mx, n, *n - 1);
    return ROUTE_MX_OK;
}

/* ---- results ---- */

void route_result_free(struct route_result *result)
{
    for (size_t i = 0; i < result->n_targets; i++)
        free(result->targets[i].host);
    free(result->targets);
    free(result->text);
    memset(result, 0, sizeof(*result));
}

static void result_add(struct route_result *res, const char *host, const struct sockaddr_storage *ss,
                       uint16_t port)
{
    if (res->n_targets >= ROUTE_TARGETS_MAX)
        return;
    res->targets = mg_reallocarray(res->targets, res->n_targets + 1, sizeof(*res->targets));
    struct route_target *t = &res->targets[res->n_targets++];
    memset(t, 0, sizeof(*t));
    t->host = mg_strdup(host);
    t->addr = *ss;
    t->port = port;
    if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;
        sin6->sin6_port = htons(port);
        inet_ntop(AF_INET6, &sin6->sin6_addr, t->ip, sizeof(t->ip));
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;
        sin->sin_port = htons(port);
        inet_ntop(AF_INET, &sin->sin_addr, t->ip, sizeof(t->ip));
    }
}

/* A failure; the permanent ones turn temporary for configured relays: a
 * relay that does not resolve is ours to fix, not the sender's. */
static void result_fail(struct route_result *res, const struct route_hop *hop, int result,
                        const char *dsn, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void result_fail(struct route_result *res, const struct route_hop *hop, int result,
                        const char *dsn, const char *fmt, ...)
{
    route_result_free(res);
    res->result = result;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    if (result == 5 && hop->kind != ROUTE_MX) {
        res->result = 4;
        res->dsn[0] = '4';
    }
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    res->text = mg_strdup(buf);
}

void route_result_literal(const struct route_hop *hop, struct route_result *result_r)
{
    memset(result_r, 0, sizeof(*result_r));
    char ip[INET6_ADDRSTRLEN + 8];
    const char *name = hop->name;
    size_t len = strlen(name);
    if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
        name++;
        len -= 2;
        if (len > 5 && mg_ascii_has_prefix(name, len, "IPv6:")) {
            name += 5;
            len -= 5;
        }
    }
    snprintf(ip, sizeof(ip), "%.*s", (int)len, name);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
    } else {
        result_fail(result_r, hop, 5, "5.1.2", "bad destination address literal %s", hop->name);
        return;
    }
    result_add(result_r, ip, &ss, hop->port);
}

/* ---- resolution ---- */

struct resolve_host {
    struct route_resolve *rr;
    struct dns_query *query;
    enum dns_status status;
    char *error;
    struct sockaddr_storage *addrs;
    size_t n_addrs;
};

struct route_resolve {
    struct dns_resolver *dns;
    struct route_hop hop;
    char *name;                /* hop strings, owned */
    char *domain;
    char *self;
    route_random_fn *rnd;
    void *rnd_ctx;
    route_resolve_cb *cb;
    void *ctx;
    struct dns_query *mx_query;
    struct route_mx *mx;       /* the hosts to look up, in order */
    size_t n_mx;
    bool is_implicit_mx;
    struct resolve_host *hosts;
    size_t pending;
};

static void resolve_free(struct route_resolve *rr)
{
    dns_query_cancel(&rr->mx_query);
    for (size_t i = 0; i < rr->n_mx; i++) {
        if (rr->hosts != NULL) {
            dns_query_cancel(&rr->hosts[i].query);
            free(rr->hosts[i].error);
            free(rr->hosts[i].addrs);
        }
        free(rr->mx[i].host);
    }
    free(rr->hosts);
    free(rr->mx);
    free(rr->name);
    free(rr->domain);
    free(rr->self);
    free(rr);
}

static void resolve_done(struct route_resolve *rr, struct route_result *res)
{
    route_resolve_cb *cb = rr->cb;
    void *ctx = rr->ctx;
    resolve_free(rr);
    cb(res, ctx);
}

/* Every host's addresses are in: the targets, in order. */
static void resolve_hosts_done(struct route_resolve *rr)
{
    struct route_result res = { 0 };
    bool any_tempfail = false;
    const char *first_error = NULL, *first_host = NULL;
    for (size_t i = 0; i < rr->n_mx; i++) {
        struct resolve_host *h = &rr->hosts[i];
        for (size_t k = 0; k < h->n_addrs; k++)
            result_add(&res, rr->mx[i].host, &h->addrs[k], rr->hop.port);
        if (h->status == DNS_TEMPFAIL)
            any_tempfail = true;
        if (h->status != DNS_OK && first_error == NULL) {
            first_error = h->error != NULL ? h->error : dns_status_name(h->status);
            first_host = rr->mx[i].host;
        }
    }
    if (res.n_targets > 0) {
        resolve_done(rr, &res);
        return;
    }
    const char *what = rr->hop.kind == ROUTE_MX ? "the mail exchangers of" : "the relay for";
    if (any_tempfail)
        result_fail(&res, &rr->hop, 4, "4.4.3", "cannot resolve %s %s: %s: %s", what, rr->hop.domain,
                    first_host, first_error);
    else if (rr->is_implicit_mx)
        result_fail(&res, &rr->hop, 5, "5.4.4", "%s has no MX and no address records", rr->hop.name);
    else
        result_fail(&res, &rr->hop, 5, "5.4.4", "no address for %s %s (%s: %s)", what, rr->hop.domain,
                    first_host, first_error);
    resolve_done(rr, &res);
}

static void addrs_cb(const struct dns_result *result, void *ctx)
{
    struct resolve_host *h = ctx;
    struct route_resolve *rr = h->rr;
    h->query = NULL;
    h->status = result->status;
    if (result->status != DNS_OK)
        h->error = mg_strdup(result->error);
    if (result->n_addrs > 0) {
        h->addrs = mg_calloc(result->n_addrs, sizeof(*h->addrs));
        memcpy(h->addrs, result->addrs, result->n_addrs * sizeof(*h->addrs));
        h->n_addrs = result->n_addrs;
    }
    if (--rr->pending == 0)
        resolve_hosts_done(rr);
}

static void resolve_hosts_start(struct route_resolve *rr)
{
    rr->hosts = mg_calloc(rr->n_mx, sizeof(*rr->hosts));
    rr->pending = rr->n_mx;
    for (size_t i = 0; i < rr->n_mx; i++) {
        rr->hosts[i].rr = rr;
        rr->hosts[i].query = dns_lookup_addrs(rr->dns, rr->mx[i].host, addrs_cb, &rr->hosts[i]);
    }
}

static void mx_cb(const struct dns_result *result, void *ctx)
{
    struct route_resolve *rr = ctx;
    rr->mx_query = NULL;
    struct route_result res = { 0 };
    const struct route_hop *hop = &rr->hop;
    switch (result->status) {
    case DNS_OK:
        break;
    case DNS_NODATA:
        /* RFC 5321 5.1: no MX records, the name itself is the host. */
        rr->is_implicit_mx = true;
        break;
    case DNS_NXDOMAIN:
        result_fail(&res, hop, 5, "5.1.2", "domain %s not found (DNS: NXDOMAIN)", hop->name);
        resolve_done(rr, &res);
        return;
    case DNS_BADNAME:
        result_fail(&res, hop, 5, "5.1.2", "cannot look up %s: not an ASCII host name (IDNA is not supported)",
                    hop->name);
        resolve_done(rr, &res);
        return;
    case DNS_TEMPFAIL:
        result_fail(&res, hop, 4, "4.4.3", "DNS look-up of MX for %s failed: %s", hop->name,
                    result->error);
        resolve_done(rr, &res);
        return;
    }
    if (rr->is_implicit_mx) {
        rr->mx = mg_calloc(1, sizeof(*rr->mx));
        rr->mx[0] = (struct route_mx){ 0, mg_strdup(hop->name) };
        rr->n_mx = 1;
    } else {
        rr->mx = mg_calloc(result->n_mx, sizeof(*rr->mx));
        for (size_t i = 0; i < result->n_mx; i++)
            rr->mx[i] = (struct route_mx){ result->mx[i].pref, mg_strdup(result->mx[i].host) };
        rr->n_mx = result->n_mx;
    }
    enum route_mx_status st = route_mx_prepare(rr->mx, &rr->n_mx, rr->self, rr->rnd, rr->rnd_ctx);
    if (st == ROUTE_MX_NULL) {
        result_fail(&res, hop, 5, "5.1.10", "domain %s does not accept mail (null MX)", hop->name);
        resolve_done(rr, &res);
        return;
    }
    if (st == ROUTE_MX_LOOP) {
        char v[MG_LOG_VALUE_MAX];
        mg_log_warning("relay", "mail loops back to myself domain=%s hostname=%s (we are its best MX)",
                       mg_log_str(v, hop->domain), rr->self);
        result_fail(&res, hop, 5, "5.4.6", "mail for %s loops back to myself", hop->domain);
        resolve_done(rr, &res);
        return;
    }
    resolve_hosts_start(rr);
}

struct route_resolve *route_resolve_start(struct dns_resolver *dns, const struct route_hop *hop,
                                          const char *self, route_random_fn *rnd, void *rnd_ctx,
                                          route_resolve_cb *cb, void *ctx)
{
    mg_assert(!hop->is_ip);
    struct route_resolve *rr = mg_calloc(1, sizeof(*rr));
    rr->dns = dns;
    rr->hop = *hop;
    rr->name = mg_strdup(hop->name);
    rr->domain = mg_strdup(hop->domain);
    rr->hop.name = rr->name;
    rr->hop.domain = rr->domain;
    rr->self = mg_strdup(self != NULL ? self : "");
    rr->rnd = rnd;
    rr->rnd_ctx = rnd_ctx;
    rr->cb = cb;
    rr->ctx = ctx;
    if (hop->use_mx) {
        rr->mx_query = dns_lookup_mx(dns, rr->name, mx_cb, rr);
    } else {
        /* "[host]": its own addresses, no MX. */
        rr->mx = mg_calloc(1, sizeof(*rr->mx));
        rr->mx[0] = (struct route_mx){ 0, mg_strdup(rr->name) };
        rr->n_mx = 1;
        resolve_hosts_start(rr);
    }
    return rr;
}

void route_resolve_cancel(struct route_resolve **resolve)
{
    if (*resolve == NULL)
        return;
    resolve_free(*resolve);
    *resolve = NULL;
}
