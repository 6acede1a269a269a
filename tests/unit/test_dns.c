/* DNS for remote delivery against a real resolver: dnsmasq on a loopback
 * port serves MX (several preferences, null MX), A, AAAA, NXDOMAIN and
 * names without the asked type; a UDP socket that never answers stands
 * for a dead server. Covers mta/delivery/dns.c (c-ares on libuv) and the
 * resolution of next hops in mta/delivery/route.c (implicit MX, loops,
 * the statuses recipients get).
 *
 * Without dnsmasq (Debian: dnsmasq-base, see deploy/install-deps.sh) the
 * program exits with 77, "skipped". */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/settings.h"
#include "mta/delivery/dns.h"
#include "mta/delivery/route.h"

/* ---- dnsmasq ---- */

static struct testutil_dnsmasq *dnsmasq;

static const char *const records[] = {
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--mx-host=multi.test,mx3.multi.test,20",
    "--host-record=mx1.multi.test,127.0.0.1",
    "--host-record=mx2.multi.test,127.0.0.2,::2",
    "--host-record=mx3.multi.test,127.0.0.3",
    "--host-record=implicit.test,127.0.0.4,2001:db8::4",
    "--mx-host=null.test,.,0",
    "--mx-host=loop.test,mailgenic.test,10",
    "--host-record=mailgenic.test,127.0.0.9",
    "--mx-host=backup.test,mx1.multi.test,10",
    "--mx-host=backup.test,mailgenic.test,20",
    "--mx-host=noaddr.test,ghost.noaddr.test,10",
    "--txt-record=txtonly.test,hello",
};

/* ---- running the loop ---- */

static void run_until(uv_loop_t *loop, bool (*done)(void *ctx), void *ctx, double seconds)
{
    if (!testutil_run_until(loop, done, ctx, seconds))
        fail_msg("not done within %.1f s", seconds);
}

/* ---- answers ---- */

struct got {
    int calls;
    enum dns_status status;
    char error[200];
    size_t n_mx;
    unsigned pref[DNS_RECORDS_MAX];
    char host[DNS_RECORDS_MAX][64];
    size_t n_addrs;
    char addr[DNS_RECORDS_MAX][64];
};

static bool got_done(void *ctx)
{
    return ((struct got *)ctx)->calls > 0;
}

static void got_cb(const struct dns_result *r, void *ctx)
{
    struct got *g = ctx;
    g->calls++;
    g->status = r->status;
    snprintf(g->error, sizeof(g->error), "%s", r->error != NULL ? r->error : "(null)");
    g->n_mx = r->n_mx;
    for (size_t i = 0; i < r->n_mx && i < DNS_RECORDS_MAX; i++) {
        g->pref[i] = r->mx[i].pref;
        snprintf(g->host[i], sizeof(g->host[i]), "%s", r->mx[i].host);
    }
    g->n_addrs = r->n_addrs;
    for (size_t i = 0; i < r->n_addrs && i < DNS_RECORDS_MAX; i++) {
        const struct sockaddr_storage *ss = &r->addrs[i];
        if (ss->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, g->addr[i], sizeof(g->addr[i]));
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, g->addr[i], sizeof(g->addr[i]));
    }
}

struct fixture {
    uv_loop_t loop;
    struct dns_resolver *dns;
};

static void fixture_init(struct fixture *f, const char *server, uint64_t timeout_ms)
{
    uv_loop_init(&f->loop);
    struct dns_resolver_settings s = { .server = server, .timeout_ms = timeout_ms, .tries = 2 };
    char *error = NULL;
    if (dns_resolver_new(&f->loop, &s, &f->dns, &error) != 0)
        fail_msg("resolver: %s", error);
}

static void fixture_done(struct fixture *f)
{
    dns_resolver_free(&f->dns);
    assert_null(f->dns);
    testutil_close_loop(&f->loop);
}

static void lookup(struct fixture *f, bool is_mx, const char *name, struct got *g)
{
    memset(g, 0, sizeof(*g));
    struct dns_query *q = is_mx ? dns_lookup_mx(f->dns, name, got_cb, g)
                                : dns_lookup_addrs(f->dns, name, got_cb, g);
    assert_non_null(q);
    /* Never from inside the call. */
    assert_int_equal(g->calls, 0);
    run_until(&f->loop, got_done, g, 10);
    assert_int_equal(g->calls, 1);
}

static bool has_host(const struct got *g, const char *host, unsigned pref)
{
    for (size_t i = 0; i < g->n_mx; i++) {
        if (strcmp(g->host[i], host) == 0 && g->pref[i] == pref)
            return true;
    }
    return false;
}

/* ---- primitive look-ups ---- */

static void test_dns_mx(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct got g;
    lookup(&f, true, "multi.test", &g);
    assert_int_equal(g.status, DNS_OK);
    assert_string_equal(g.error, "");
    assert_int_equal(g.n_mx, 3);
    assert_true(has_host(&g, "mx1.multi.test", 10));
    assert_true(has_host(&g, "mx2.multi.test", 20));
    assert_true(has_host(&g, "mx3.multi.test", 20));
    /* A trailing dot is the same name. */
    lookup(&f, true, "multi.test.", &g);
    assert_int_equal(g.n_mx, 3);

    /* RFC 7505: "MX 0 ." comes back as the empty host. */
    lookup(&f, true, "null.test", &g);
    assert_int_equal(g.status, DNS_OK);
    assert_int_equal(g.n_mx, 1);
    assert_int_equal(g.pref[0], 0);
    assert_string_equal(g.host[0], "");
    fixture_done(&f);
}

static void test_dns_addrs(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct got g;
    lookup(&f, false, "mx2.multi.test", &g);
    assert_int_equal(g.status, DNS_OK);
    assert_int_equal(g.n_addrs, 2);
    assert_string_equal(g.addr[0], "127.0.0.2"); /* IPv4 first */
    assert_string_equal(g.addr[1], "::2");
    lookup(&f, false, "mx1.multi.test", &g); /* A only: AAAA has no data */
    assert_int_equal(g.status, DNS_OK);
    assert_int_equal(g.n_addrs, 1);
    assert_string_equal(g.addr[0], "127.0.0.1");
    lookup(&f, false, "IMPLICIT.test", &g);
    assert_int_equal(g.status, DNS_OK);
    assert_int_equal(g.n_addrs, 2);
    assert_string_equal(g.addr[0], "127.0.0.4");
    assert_string_equal(g.addr[1], "2001:db8::4");
    fixture_done(&f);
}

static void test_dns_negative(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct got g;
    lookup(&f, true, "nx.test", &g);
    assert_int_equal(g.status, DNS_NXDOMAIN);
    assert_int_equal(g.n_mx, 0);
    lookup(&f, false, "nx.test", &g);
    assert_int_equal(g.status, DNS_NXDOMAIN);
    assert_int_equal(g.n_addrs, 0);
    /* The name exists without the type asked for. */
    lookup(&f, true, "implicit.test", &g);
    assert_int_equal(g.status, DNS_NODATA);
    lookup(&f, false, "txtonly.test", &g);
    assert_int_equal(g.status, DNS_NODATA);
    /* Not a host name: refused before any query, still asynchronously. */
    static const char *const bad[] = { "", "bad name.test", "a..b", "x\n.test", "\x80.test" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lookup(&f, i % 2 == 0, bad[i], &g);
        assert_int_equal(g.status, DNS_BADNAME);
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    lookup(&f, true, longname, &g);
    assert_int_equal(g.status, DNS_BADNAME);
    assert_int_equal(dns_resolver_pending(f.dns), 0);
    fixture_done(&f);
}

/* A UDP socket that reads nothing and answers nothing. */
static int silent_server(uint16_t *port_r)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
    *port_r = ntohs(sin.sin_port);
    return s;
}

static void test_dns_timeout(void **state)
{
    (void)state;
    uint16_t port;
    int s = silent_server(&port);
    char server[64];
    snprintf(server, sizeof(server), "127.0.0.1:%u", port);
    struct fixture f;
    fixture_init(&f, server, 200);
    struct got g;
    uint64_t start = uv_hrtime();
    lookup(&f, true, "multi.test", &g);
    uint64_t ms = (uv_hrtime() - start) / 1000000;
    assert_int_equal(g.status, DNS_TEMPFAIL);
    assert_non_null(strstr(g.error, "Timeout"));
    /* Two tries: 200 ms, then 400 ms. */
    assert_true(ms >= 500);
    assert_true(ms < 3000);
    lookup(&f, false, "mx1.multi.test", &g);
    assert_int_equal(g.status, DNS_TEMPFAIL);
    fixture_done(&f);
    close(s);
}

static int cancelled_calls;

static void must_not_run(const struct dns_result *r, void *ctx)
{
    (void)r;
    (void)ctx;
    cancelled_calls++;
}

static void test_dns_cancel(void **state)
{
    (void)state;
    cancelled_calls = 0;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct got g = { 0 };
    struct dns_query *q1 = dns_lookup_mx(f.dns, "multi.test", must_not_run, NULL);
    struct dns_query *q2 = dns_lookup_addrs(f.dns, "mx1.multi.test", got_cb, &g);
    struct dns_query *q3 = dns_lookup_addrs(f.dns, "bad name", must_not_run, NULL);
    assert_non_null(q2);
    assert_int_equal(dns_resolver_pending(f.dns), 3);
    dns_query_cancel(&q1);
    dns_query_cancel(&q3);
    assert_null(q1);
    assert_null(q3);
    dns_query_cancel(&q1); /* NULL is fine */
    assert_int_equal(dns_resolver_pending(f.dns), 1);
    run_until(&f.loop, got_done, &g, 10);
    assert_int_equal(g.status, DNS_OK);
    assert_int_equal(cancelled_calls, 0);
    assert_int_equal(dns_resolver_pending(f.dns), 0);
    fixture_done(&f);

    /* Freeing the resolver drops what is pending, without callbacks. */
    uint16_t port;
    int s = silent_server(&port);
    char server[64];
    snprintf(server, sizeof(server), "127.0.0.1:%u", port);
    fixture_init(&f, server, 5000);
    dns_lookup_mx(f.dns, "multi.test", must_not_run, NULL);
    dns_lookup_addrs(f.dns, "multi.test", must_not_run, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    fixture_done(&f);
    assert_int_equal(cancelled_calls, 0);
    close(s);
}

static void test_dns_bad_server(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const char *const bad[] = { "nonsense", "1.2.3.4:abc" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dns_resolver_settings s = { .server = bad[i], .timeout_ms = 100, .tries = 1 };
        struct dns_resolver *r = NULL;
        char *error = NULL;
        assert_int_equal(dns_resolver_new(&loop, &s, &r, &error), -1);
        assert_null(r);
        assert_non_null(strstr(error, bad[i]));
        free(error);
    }
    /* "" is the system's configuration. */
    struct dns_resolver_settings s = { .server = "", .timeout_ms = 100, .tries = 1 };
    struct dns_resolver *r = NULL;
    char *error = NULL;
    assert_int_equal(dns_resolver_new(&loop, &s, &r, &error), 0);
    dns_resolver_free(&r);
    testutil_close_loop(&loop);
}

/* ---- next hops ---- */

struct resolved {
    bool done;
    struct route_result res;
};

static bool resolved_done(void *ctx)
{
    return ((struct resolved *)ctx)->done;
}

static void resolved_cb(struct route_result *result, void *ctx)
{
    struct resolved *r = ctx;
    assert_false(r->done);
    r->done = true;
    r->res = *result;
}

static struct route_table *table_new(const char *transport)
{
    char *text = mg_asprintf("[relay]\ntransport = %s\n", transport);
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load_string(text, strlen(text), "t.conf", &set, &error) != 0)
        fail_msg("%s", error);
    struct route_table *t = NULL;
    if (route_table_new(&set->relay, &t, &error) != 0)
        fail_msg("%s", error);
    mg_settings_free(&set);
    free(text);
    return t;
}

static void resolve(struct fixture *f, const struct route_table *t, const char *domain,
                    struct resolved *r)
{
    memset(r, 0, sizeof(*r));
    struct route_hop hop;
    const char *error;
    assert_int_equal(route_choose(t, domain, &hop, &error), 0);
    struct route_resolve *rr = route_resolve_start(f->dns, &hop, "mailgenic.test", NULL, NULL,
                                                   resolved_cb, r);
    assert_non_null(rr);
    assert_false(r->done);
    run_until(&f->loop, resolved_done, r, 10);
}

static void expect_failure(struct fixture *f, const struct route_table *t, const char *domain,
                           int result, const char *dsn, const char *text)
{
    struct resolved r;
    resolve(f, t, domain, &r);
    if (r.res.result != result || strcmp(r.res.dsn, dsn) != 0 || strstr(r.res.text, text) == NULL)
        fail_msg("%s: got %d %s \"%s\", want %d %s \"...%s...\"", domain, r.res.result, r.res.dsn,
                 r.res.text != NULL ? r.res.text : "", result, dsn, text);
    assert_int_equal(r.res.n_targets, 0);
    route_result_free(&r.res);
}

static void test_route_resolve_mx(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct route_table *t = table_new("relayed.test=multi.test:2525, pinned.test=[mx2.multi.test]");
    struct resolved r;

    /* MX order, each host's addresses together, IPv4 first. */
    resolve(&f, t, "multi.test", &r);
    assert_int_equal(r.res.result, 0);
    assert_int_equal(r.res.n_targets, 4);
    assert_string_equal(r.res.targets[0].host, "mx1.multi.test");
    assert_string_equal(r.res.targets[0].ip, "127.0.0.1");
    assert_int_equal(r.res.targets[0].port, 25);
    assert_int_equal(ntohs(((struct sockaddr_in *)&r.res.targets[0].addr)->sin_port), 25);
    size_t mx2 = strcmp(r.res.targets[1].host, "mx2.multi.test") == 0 ? 1 : 2;
    size_t mx3 = mx2 == 1 ? 3 : 1;
    assert_string_equal(r.res.targets[mx2].host, "mx2.multi.test");
    assert_string_equal(r.res.targets[mx2].ip, "127.0.0.2");
    assert_string_equal(r.res.targets[mx2 + 1].host, "mx2.multi.test");
    assert_string_equal(r.res.targets[mx2 + 1].ip, "::2");
    assert_string_equal(r.res.targets[mx3].host, "mx3.multi.test");
    assert_string_equal(r.res.targets[mx3].ip, "127.0.0.3");
    route_result_free(&r.res);

    /* RFC 5321 5.1: no MX, the domain's own addresses. */
    resolve(&f, t, "implicit.test", &r);
    assert_int_equal(r.res.result, 0);
    assert_int_equal(r.res.n_targets, 2);
    assert_string_equal(r.res.targets[0].host, "implicit.test");
    assert_string_equal(r.res.targets[0].ip, "127.0.0.4");
    assert_string_equal(r.res.targets[1].ip, "2001:db8::4");
    route_result_free(&r.res);

    /* We are the backup MX: only the better host. */
    resolve(&f, t, "backup.test", &r);
    assert_int_equal(r.res.result, 0);
    assert_int_equal(r.res.n_targets, 1);
    assert_string_equal(r.res.targets[0].host, "mx1.multi.test");
    route_result_free(&r.res);

    /* A transport host without brackets: MX look-up, the map's port. */
    resolve(&f, t, "relayed.test", &r);
    assert_int_equal(r.res.result, 0);
    assert_int_equal(r.res.n_targets, 4);
    assert_string_equal(r.res.targets[0].host, "mx1.multi.test");
    assert_int_equal(r.res.targets[0].port, 2525);
    route_result_free(&r.res);

    /* In brackets: that host's addresses, no MX. */
    resolve(&f, t, "pinned.test", &r);
    assert_int_equal(r.res.result, 0);
    assert_int_equal(r.res.n_targets, 2);
    assert_string_equal(r.res.targets[0].host, "mx2.multi.test");
    assert_int_equal(r.res.targets[0].port, 25);
    route_result_free(&r.res);

    route_table_free(&t);
    fixture_done(&f);
}

static void test_route_resolve_failures(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, dnsmasq->server, 2000);
    struct route_table *t = table_new("badrelay.test=nx.test:2525, badpin.test=[ghost.test], "
                                      "nullrelay.test=null.test");
    expect_failure(&f, t, "null.test", 5, "5.1.10", "domain null.test does not accept mail");
    expect_failure(&f, t, "nx.test", 5, "5.1.2", "domain nx.test not found");
    expect_failure(&f, t, "loop.test", 5, "5.4.6", "mail for loop.test loops back to myself");
    expect_failure(&f, t, "noaddr.test", 5, "5.4.4", "no address for the mail exchangers of noaddr.test");
    expect_failure(&f, t, "txtonly.test", 5, "5.4.4", "txtonly.test has no MX and no address records");
    /* A configured relay that does not resolve is never a bounce. */
    expect_failure(&f, t, "badrelay.test", 4, "4.1.2", "nx.test not found");
    expect_failure(&f, t, "badpin.test", 4, "4.4.4", "no address for the relay for badpin.test");
    expect_failure(&f, t, "nullrelay.test", 4, "4.1.10", "does not accept mail");
    route_table_free(&t);
    fixture_done(&f);

    /* A resolver that does not answer: try later. */
    uint16_t port;
    int s = silent_server(&port);
    char server[64];
    snprintf(server, sizeof(server), "127.0.0.1:%u", port);
    fixture_init(&f, server, 150);
    t = table_new("pinned.test=[mx1.multi.test]");
    expect_failure(&f, t, "multi.test", 4, "4.4.3", "DNS look-up of MX for multi.test failed");
    expect_failure(&f, t, "pinned.test", 4, "4.4.3", "cannot resolve the relay for pinned.test");
    /* A cancelled resolution stays silent. */
    struct route_hop hop;
    const char *error;
    assert_int_equal(route_choose(t, "multi.test", &hop, &error), 0);
    struct resolved r = { 0 };
    struct route_resolve *rr = route_resolve_start(f.dns, &hop, "mailgenic.test", NULL, NULL,
                                                   resolved_cb, &r);
    route_resolve_cancel(&rr);
    assert_null(rr);
    assert_int_equal(dns_resolver_pending(f.dns), 0);
    route_table_free(&t);
    fixture_done(&f);
    assert_false(r.done);
    close(s);
}

int main(void)
{
    mg_log_init("test_dns");
    mg_log_set_level(MG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    if (testutil_dnsmasq_start(records, sizeof(records) / sizeof(records[0]), &dnsmasq) != 0) {
        fprintf(stderr, "test_dns: skipped: cannot start dnsmasq (install dnsmasq-base)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_mx),
        cmocka_unit_test(test_dns_addrs),
        cmocka_unit_test(test_dns_negative),
        cmocka_unit_test(test_dns_timeout),
        cmocka_unit_test(test_dns_cancel),
        cmocka_unit_test(test_dns_bad_server),
        cmocka_unit_test(test_route_resolve_mx),
        cmocka_unit_test(test_route_resolve_failures),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    testutil_dnsmasq_stop(&dnsmasq);
    return r;
}
