/* Next-hop selection for remote delivery (mta/delivery/route.c): host and
 * [relay] transport parsing (good and bad values, errors naming the
 * entry), the order transport > relayhost > MX, destination keys, address
 * literals, and MX preparation: sorting, shuffling of equal preferences,
 * null MX and mail loops. No DNS here (test_dns.c does that). */
#include "testutil.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/settings.h"
#include "mta/delivery/route.h"

/* ---- route_host_parse ---- */

static void test_route_host_good(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *name;
        unsigned port;
        bool is_literal, is_ip;
    } cases[] = {
        { "mx.example.net:25", "mx.example.net", 25, false, false },
        { "mx.example.net", "mx.example.net", 2525, false, false },
        { "MX.Example.NET:587", "mx.example.net", 587, false, false },
        { "  mx.example.net:26  ", "mx.example.net", 26, false, false },
        { "[mx.example.net]", "mx.example.net", 2525, true, false },
        { "[mx.example.net]:465", "mx.example.net", 465, true, false },
        { "[192.0.2.7]:2525", "192.0.2.7", 2525, true, true },
        { "192.0.2.7:25", "192.0.2.7", 25, true, true },
        { "[2001:db8::1]:25", "2001:db8::1", 25, true, true },
        { "[2001:DB8::1]", "2001:db8::1", 2525, true, true },
        { "localhost:65535", "localhost", 65535, false, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct route_host h;
        const char *error = NULL;
        if (route_host_parse(cases[i].text, strlen(cases[i].text), 2525, &h, &error) != 0)
            fail_msg("\"%s\" refused: %s", cases[i].text, error);
        assert_string_equal(h.name, cases[i].name);
        assert_int_equal(h.port, cases[i].port);
        assert_int_equal(h.is_literal, cases[i].is_literal);
        assert_int_equal(h.is_ip, cases[i].is_ip);
        route_host_free(&h);
        assert_null(h.name);
    }
}

static void test_route_host_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        { "", "empty host" },
        { "   ", "empty host" },
        { ":25", "empty host" },
        { "[]:25", "empty host" },
        { "[192.0.2.7:25", "missing ']'" },
        { "[192.0.2.7]x", "unexpected text after the host" },
        { "host:0", "invalid port (1-65535)" },
        { "host:65536", "invalid port (1-65535)" },
        { "host:", "invalid port (1-65535)" },
        { "host:25a", "invalid port (1-65535)" },
        { "host:-1", "invalid port (1-65535)" },
        { "2001:db8::1", "an IPv6 address needs brackets: [2001:db8::1]:25" },
        { "bad_host!:25", "invalid host name" },
        { "a..b:25", "invalid host name" },
        { "[bad host]", "invalid host name" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct route_host h;
        const char *error = NULL;
        if (route_host_parse(cases[i].text, strlen(cases[i].text), 25, &h, &error) == 0)
            fail_msg("\"%s\" accepted as %s", cases[i].text, h.name);
        assert_string_equal(error, cases[i].error);
        assert_null(h.name);
    }
    /* Only len bytes count. */
    struct route_host h;
    const char *error;
    assert_int_equal(route_host_parse("mx.test:25junk", 10, 25, &h, &error), 0);
    assert_string_equal(h.name, "mx.test");
    assert_int_equal(h.port, 25);
    route_host_free(&h);
}

/* ---- the table ---- */

static struct mg_settings *settings_with(const char *relay_section)
{
    char *text = mg_asprintf("hostname = mailgenic.test\n[relay]\n%s", relay_section);
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load_string(text, strlen(text), "test.conf", &set, &error) != 0)
        fail_msg("settings: %s", error);
    free(text);
    return set;
}

static char *table_error(const char *relay_section)
{
    struct mg_settings *set = settings_with(relay_section);
    struct route_table *t = NULL;
    char *error = NULL;
    int r = route_table_new(&set->relay, &t, &error);
    mg_settings_free(&set);
    if (r == 0) {
        route_table_free(&t);
        fail_msg("accepted: %s", relay_section);
    }
    assert_null(t);
    assert_non_null(error);
    return error;
}

static void test_route_transport_bad(void **state)
{
    (void)state;
    static const struct {
        const char *conf;
        const char *error;
    } cases[] = {
        { "transport = example.com=mx.example.net:25, other.org=[192.0.2.7:2525\n",
          "[relay] transport: entry 2 \"other.org=[192.0.2.7:2525\": missing ']'" },
        { "transport = example.com\n",
          "[relay] transport: entry 1 \"example.com\": domain=host:port expected" },
        { "transport = =mx.example.net\n", "[relay] transport: entry 1 \"=mx.example.net\": invalid domain" },
        { "transport = a.test=mx.test, a.test=other.test\n",
          "[relay] transport: entry 2 \"a.test=other.test\": duplicate domain" },
        { "transport = A.test=mx.test, a.TEST=other.test\n",
          "[relay] transport: entry 2 \"a.TEST=other.test\": duplicate domain" },
        { "transport = a.test=mx.test,,b.test=mx.test\n", "[relay] transport: entry 2 is empty" },
        { "transport = a.test=mx.test,\n", "[relay] transport: entry 2 is empty" },
        { "transport = a.test=mx.test:99999\n",
          "[relay] transport: entry 1 \"a.test=mx.test:99999\": invalid port (1-65535)" },
        { "transport = bad!domain=mx.test\n", "[relay] transport: entry 1 \"bad!domain=mx.test\": invalid domain" },
        { "transport = [192.0.2.1]=mx.test\n", "[relay] transport: entry 1 \"[192.0.2.1]=mx.test\": invalid domain" },
        { "transport = a.test=\n", "[relay] transport: entry 1 \"a.test=\": empty host" },
        { "transport = a.test=2001:db8::1\n",
          "[relay] transport: entry 1 \"a.test=2001:db8::1\": an IPv6 address needs brackets: [2001:db8::1]:25" },
        { "relayhost = [smtp.example.net:465\n", "[relay] relayhost \"[smtp.example.net:465\": missing ']'" },
        { "relayhost = smtp.example.net:0\n", "[relay] relayhost \"smtp.example.net:0\": invalid port (1-65535)" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *error = table_error(cases[i].conf);
        if (strcmp(error, cases[i].error) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, error, cases[i].error);
        free(error);
    }
    /* A bound on the number of entries (beyond a configuration line's
     * length, but the parser does not rely on that). */
    struct mg_buf b = MG_BUF_INIT;
    for (int i = 0; i <= ROUTE_TRANSPORT_MAX; i++)
        mg_buf_printf(&b, "%sd%d.test=mx.test", i ? "," : "", i);
    struct mg_settings *set = settings_with("");
    free(set->relay.transport);
    set->relay.transport = mg_buf_steal(&b, NULL);
    struct route_table *t = NULL;
    char *error = NULL;
    assert_int_equal(route_table_new(&set->relay, &t, &error), -1);
    assert_string_equal(error, "[relay] transport: more than 1000 entries");
    free(error);
    mg_settings_free(&set);
    mg_buf_free(&b);
}

static struct route_table *table_new(const char *relay_section)
{
    struct mg_settings *set = settings_with(relay_section);
    struct route_table *t = NULL;
    char *error = NULL;
    if (route_table_new(&set->relay, &t, &error) != 0)
        fail_msg("route table: %s", error);
    mg_settings_free(&set);
    return t;
}

static void test_route_choose_order(void **state)
{
    (void)state;
    struct route_table *t = table_new("transport = example.com=mx.example.net:25, "
                                      "other.org=[192.0.2.7]:2525, .sub.test=[relay.sub.test], "
                                      "third.org=[192.0.2.7]:2525\n"
                                      "relayhost = smtp.provider.test:465\n"
                                      "relayhost_user = alice\n");
    assert_int_equal(route_table_transport_count(t), 4);
    struct route_hop hop;
    const char *error;
    char key[ROUTE_KEY_MAX];

    /* 1. transport, MX look-up of the host given */
    assert_int_equal(route_choose(t, "example.com", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_TRANSPORT);
    assert_string_equal(hop.name, "mx.example.net");
    assert_int_equal(hop.port, 25);
    assert_true(hop.use_mx);
    assert_false(hop.is_ip);
    assert_int_equal(hop.tls, ROUTE_TLS_MAY);
    assert_false(hop.use_auth);
    route_hop_key(&hop, key);
    assert_string_equal(key, "transport:mx.example.net:25");

    /* [address]: no DNS at all */
    assert_int_equal(route_choose(t, "other.org", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_TRANSPORT);
    assert_string_equal(hop.name, "192.0.2.7");
    assert_int_equal(hop.port, 2525);
    assert_false(hop.use_mx);
    assert_true(hop.is_ip);
    route_hop_key(&hop, key);
    assert_string_equal(key, "transport:[192.0.2.7]:2525");
    /* Two domains with one next hop share the destination. */
    char key2[ROUTE_KEY_MAX];
    assert_int_equal(route_choose(t, "third.org", &hop, &error), 0);
    route_hop_key(&hop, key2);
    assert_string_equal(key, key2);

    /* ".sub.test" covers subdomains, nearest parent first, not sub.test. */
    assert_int_equal(route_choose(t, "a.b.sub.test", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_TRANSPORT);
    assert_string_equal(hop.name, "relay.sub.test");
    assert_false(hop.use_mx);
    assert_int_equal(hop.port, 25);
    assert_int_equal(route_choose(t, "sub.test", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_RELAYHOST);

    /* 2. relayhost: implicit TLS by default, AUTH when a user is set */
    assert_int_equal(route_choose(t, "gmail.example", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_RELAYHOST);
    assert_string_equal(hop.name, "smtp.provider.test");
    assert_int_equal(hop.port, 465);
    assert_true(hop.use_mx);
    assert_int_equal(hop.tls, ROUTE_TLS_IMPLICIT);
    assert_true(hop.use_auth);
    route_hop_key(&hop, key);
    assert_string_equal(key, "relayhost");
    route_table_free(&t);
    assert_null(t);

    /* 3. MX when neither applies */
    t = table_new("transport = example.com=[192.0.2.1]\n");
    assert_int_equal(route_choose(t, "elsewhere.test", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_MX);
    assert_string_equal(hop.name, "elsewhere.test");
    assert_string_equal(hop.domain, "elsewhere.test");
    assert_int_equal(hop.port, 25);
    assert_true(hop.use_mx);
    assert_int_equal(hop.tls, ROUTE_TLS_MAY);
    assert_false(hop.require_verified);
    route_hop_key(&hop, key);
    assert_string_equal(key, "elsewhere.test");
    /* Nothing configured: an empty table is MX for everyone. */
    route_table_free(&t);
    t = table_new("");
    assert_int_equal(route_table_transport_count(t), 0);
    assert_int_equal(route_choose(t, "example.com", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_MX);
    route_table_free(&t);
}

static void test_route_tls_policy(void **state)
{
    (void)state;
    struct route_table *t = table_new("relayhost = [smtp.provider.test]\n"
                                      "relayhost_security = starttls\n"
                                      "tls_verify = verify\n"
                                      "transport = a.test=[192.0.2.1]\n");
    struct route_hop hop;
    const char *error;
    assert_int_equal(route_choose(t, "b.test", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_RELAYHOST);
    assert_int_equal(hop.port, 587); /* the submission port for STARTTLS */
    assert_false(hop.use_mx);
    assert_int_equal(hop.tls, ROUTE_TLS_STARTTLS);
    assert_true(hop.require_verified);
    assert_false(hop.use_auth);
    /* verify: STARTTLS becomes required on transport and MX routes. */
    assert_int_equal(route_choose(t, "a.test", &hop, &error), 0);
    assert_int_equal(hop.tls, ROUTE_TLS_STARTTLS);
    assert_true(hop.require_verified);
    route_table_free(&t);
}

static void test_route_literal(void **state)
{
    (void)state;
    struct route_table *t = table_new("relayhost = [smtp.provider.test]:587\n");
    struct route_hop hop;
    const char *error = NULL;
    struct route_result res;
    char key[ROUTE_KEY_MAX];

    /* An address literal goes to that address, even with a relayhost. */
    assert_int_equal(route_choose(t, "[192.0.2.1]", &hop, &error), 0);
    assert_int_equal(hop.kind, ROUTE_MX);
    assert_true(hop.is_ip);
    route_hop_key(&hop, key);
    assert_string_equal(key, "[192.0.2.1]");
    route_result_literal(&hop, &res);
    assert_int_equal(res.result, 0);
    assert_int_equal(res.n_targets, 1);
    assert_string_equal(res.targets[0].ip, "192.0.2.1");
    assert_string_equal(res.targets[0].host, "192.0.2.1");
    assert_int_equal(res.targets[0].port, 25);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&res.targets[0].addr;
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 25);
    route_result_free(&res);

    assert_int_equal(route_choose(t, "[ipv6:2001:db8::5]", &hop, &error), 0);
    route_result_literal(&hop, &res);
    assert_int_equal(res.result, 0);
    assert_string_equal(res.targets[0].ip, "2001:db8::5");
    assert_int_equal(res.targets[0].addr.ss_family, AF_INET6);
    route_result_free(&res);

    /* Transport to an address. */
    route_table_free(&t);
    t = table_new("transport = x.test=[2001:db8::7]:2525\n");
    assert_int_equal(route_choose(t, "x.test", &hop, &error), 0);
    route_result_literal(&hop, &res);
    assert_int_equal(res.result, 0);
    assert_string_equal(res.targets[0].ip, "2001:db8::7");
    assert_int_equal(res.targets[0].port, 2525);
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)&res.targets[0].addr)->sin6_port), 2525);
    route_result_free(&res);

    /* Not destinations at all. */
    static const char *const bad[] = { "", "[999.1.1.1]", "[192.0.2.1", "[]", "[IPv6:zz::1]" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        error = NULL;
        if (route_choose(t, bad[i], &hop, &error) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(error);
    }
    route_table_free(&t);
}

/* ---- MX preparation ---- */

static struct route_mx *mx_make(const char *spec, size_t *n_r)
{
    /* "10 a.test, 20 b.test" */
    struct route_mx *mx = mg_calloc(32, sizeof(*mx));
    size_t n = 0;
    const char *p = spec;
    while (*p != '\0') {
        unsigned pref;
        char host[128];
        int used;
        if (sscanf(p, " %u %127[^,]%n", &pref, host, &used) != 2)
            fail_msg("bad spec %s", p);
        if (strcmp(host, ".") == 0)
            host[0] = '\0';
        mx[n++] = (struct route_mx){ pref, mg_strdup(host) };
        p += used;
        if (*p == ',')
            p++;
    }
    *n_r = n;
    return mx;
}

static char *mx_join(const struct route_mx *mx, size_t n)
{
    struct mg_buf b = MG_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        mg_buf_printf(&b, "%s%u %s", i ? "," : "", mx[i].pref, mx[i].host);
    char *s = mg_strdup(b.data != NULL ? b.data : "");
    mg_buf_free(&b);
    return s;
}

static void mx_free(struct route_mx *mx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(mx[i].host);
    free(mx);
}

/* A counter as the "random" source: deterministic shuffles. */
static uint32_t counter_random(void *ctx)
{
    uint32_t *c = ctx;
    *c = *c * 1664525u + 1013904223u;
    return *c >> 8;
}

static uint32_t zero_random(void *ctx)
{
    (void)ctx;
    return 0;
}

static void test_route_mx_sort(void **state)
{
    (void)state;
    size_t n;
    struct route_mx *mx = mx_make("30 c.test,10 a.test,20 b.test,5 first.test", &n);
    assert_int_equal(route_mx_prepare(mx, &n, "mailgenic.test", zero_random, NULL), ROUTE_MX_OK);
    char *s = mx_join(mx, n);
    assert_string_equal(s, "5 first.test,10 a.test,20 b.test,30 c.test");
    free(s);
    mx_free(mx, n);

    /* The same seed gives the same order; equal preferences never leave
     * their group, and with enough seeds every order of a group shows. */
    bool seen[6] = { false };
    for (uint32_t seed = 1; seed < 200; seed++) {
        mx = mx_make("20 x.test,10 a.test,10 b.test,10 c.test,30 z.test", &n);
        uint32_t c = seed;
        assert_int_equal(route_mx_prepare(mx, &n, NULL, counter_random, &c), ROUTE_MX_OK);
        assert_int_equal(n, 5);
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(mx[i].pref, 10);
        assert_string_equal(mx[3].host, "x.test");
        assert_string_equal(mx[4].host, "z.test");
        /* a permutation of a, b, c */
        unsigned mask = 0;
        for (size_t i = 0; i < 3; i++)
            mask |= 1u << (mx[i].host[0] - 'a');
        assert_int_equal(mask, 7);
        int perm = (mx[0].host[0] - 'a') * 2 + (mx[1].host[0] > mx[2].host[0]);
        seen[perm] = true;
        char *first = mx_join(mx, n);
        mx_free(mx, n);
        mx = mx_make("20 x.test,10 a.test,10 b.test,10 c.test,30 z.test", &n);
        c = seed;
        route_mx_prepare(mx, &n, NULL, counter_random, &c);
        char *again = mx_join(mx, n);
        assert_string_equal(first, again);
        free(first);
        free(again);
        mx_free(mx, n);
    }
    for (size_t i = 0; i < 6; i++) {
        if (!seen[i])
            fail_msg("permutation %zu of three equal MX hosts never appeared", i);
    }
    /* The default source works too. */
    mx = mx_make("10 a.test,10 b.test", &n);
    assert_int_equal(route_mx_prepare(mx, &n, NULL, NULL, NULL), ROUTE_MX_OK);
    assert_int_equal(n, 2);
    mx_free(mx, n);

    /* At most ROUTE_MX_MAX hosts, the most preferred ones. */
    struct mg_buf b = MG_BUF_INIT;
    for (int i = 15; i > 0; i--)
        mg_buf_printf(&b, "%s%d h%d.test", i != 15 ? "," : "", i, i);
    mx = mx_make(b.data, &n);
    mg_buf_free(&b);
    assert_int_equal(route_mx_prepare(mx, &n, NULL, zero_random, NULL), ROUTE_MX_OK);
    assert_int_equal(n, ROUTE_MX_MAX);
    assert_int_equal(mx[0].pref, 1);
    assert_int_equal(mx[ROUTE_MX_MAX - 1].pref, ROUTE_MX_MAX);
    mx_free(mx, n);
}

static void test_route_mx_null(void **state)
{
    (void)state;
    size_t n;
    struct route_mx *mx = mx_make("0 .", &n);
    assert_int_equal(route_mx_prepare(mx, &n, "mailgenic.test", NULL, NULL), ROUTE_MX_NULL);
    mx_free(mx, n);
    /* Any preference: still the only record. */
    mx = mx_make("10 .", &n);
    assert_int_equal(route_mx_prepare(mx, &n, NULL, NULL, NULL), ROUTE_MX_NULL);
    mx_free(mx, n);
    /* A root record beside real hosts is ignored (RFC 7505 forbids the
     * mix; the real hosts win). */
    mx = mx_make("0 .,10 mx.test", &n);
    assert_int_equal(route_mx_prepare(mx, &n, NULL, zero_random, NULL), ROUTE_MX_OK);
    char *s = mx_join(mx, n);
    assert_string_equal(s, "10 mx.test");
    free(s);
    mx_free(mx, n);
}

static void test_route_mx_loop(void **state)
{
    (void)state;
    static const struct {
        const char *mx;
        const char *self;
        enum route_mx_status status;
        const char *left;
    } cases[] = {
        /* We are a backup MX: only the better hosts. */
        { "10 a.test,20 mailgenic.test,30 c.test", "mailgenic.test", ROUTE_MX_OK, "10 a.test" },
        /* Equal preference to ours is dropped too. */
        { "10 a.test,20 b.test,20 mailgenic.test", "mailgenic.test", ROUTE_MX_OK, "10 a.test" },
        /* Case and a trailing dot do not hide us. */
        { "10 a.test,20 MailGenic.TEST.", "mailgenic.test", ROUTE_MX_OK, "10 a.test" },
        { "10 a.test,20 mailgenic.test", "MAILGENIC.test.", ROUTE_MX_OK, "10 a.test" },
        /* We are the best: nothing left is a loop. */
        { "10 mailgenic.test,20 b.test", "mailgenic.test", ROUTE_MX_LOOP, "" },
        { "10 mailgenic.test", "mailgenic.test", ROUTE_MX_LOOP, "" },
        { "5 b.test,5 mailgenic.test", "mailgenic.test", ROUTE_MX_LOOP, "" },
        /* Not us: a name that merely contains ours. */
        { "10 mx.mailgenic.test,20 mailgenic.test.evil", "mailgenic.test", ROUTE_MX_OK,
          "10 mx.mailgenic.test,20 mailgenic.test.evil" },
        /* No hostname: no check. */
        { "10 mailgenic.test", "", ROUTE_MX_OK, "10 mailgenic.test" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        struct route_mx *mx = mx_make(cases[i].mx, &n);
        enum route_mx_status st = route_mx_prepare(mx, &n, cases[i].self, zero_random, NULL);
        char *s = mx_join(mx, n);
        if (st != cases[i].status || strcmp(s, cases[i].left) != 0)
            fail_msg("case %zu: status %d left \"%s\", want %d \"%s\"", i, st, s, cases[i].status,
                     cases[i].left);
        free(s);
        mx_free(mx, n);
    }
    assert_true(route_name_eq("a.test", "A.TEST."));
    assert_true(route_name_eq("a.test.", "a.test"));
    assert_false(route_name_eq("a.test", "a.tes"));
    assert_false(route_name_eq("a.test", "b.test"));
}

int main(void)
{
    mg_log_init("test_route");
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_host_good),
        cmocka_unit_test(test_route_host_bad),
        cmocka_unit_test(test_route_transport_bad),
        cmocka_unit_test(test_route_choose_order),
        cmocka_unit_test(test_route_tls_policy),
        cmocka_unit_test(test_route_literal),
        cmocka_unit_test(test_route_mx_sort),
        cmocka_unit_test(test_route_mx_null),
        cmocka_unit_test(test_route_mx_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
