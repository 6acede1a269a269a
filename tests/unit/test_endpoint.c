/* Endpoints of inter-daemon links: parsing, resolution, and connecting
 * over TCP (rotating addresses) and UNIX sockets. */
#include "testutil.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/conn.h"
#include "common/endpoint.h"
#include "common/listener.h"

static void parse_ok(const char *text, bool is_unix, const char *host, unsigned port,
                     const char *name)
{
    struct mg_endpoint ep;
    char *error = NULL;
    if (mg_endpoint_parse(text, &ep, &error) != 0)
        fail_msg("%s: %s", text, error);
    assert_int_equal(ep.is_unix, is_unix);
    if (is_unix) {
        assert_string_equal(ep.path, text);
    } else {
        assert_string_equal(ep.host, host);
        assert_int_equal(ep.port, port);
        assert_true(ep.n_addrs >= 1);
    }
    char buf[300];
    assert_string_equal(mg_endpoint_name(&ep, buf, sizeof(buf)), name);
    mg_endpoint_clear(&ep);
    assert_null(ep.host);
}

static void parse_fails(const char *text, const char *error_part)
{
    struct mg_endpoint ep;
    char *error = NULL;
    assert_int_equal(mg_endpoint_parse(text, &ep, &error), -1);
    assert_non_null(error);
    if (strstr(error, error_part) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", text, error, error_part);
    free(error);
    assert_null(ep.host);
    assert_null(ep.path);
}

static void test_endpoint_parse(void **state)
{
    (void)state;
    parse_ok("/run/mailgenic/mda/lmtp.sock", true, NULL, 0, "/run/mailgenic/mda/lmtp.sock");
    parse_ok("127.0.0.1:24", false, "127.0.0.1", 24, "127.0.0.1:24");
    parse_ok("[::1]:8024", false, "::1", 8024, "[::1]:8024");
    parse_ok("localhost:65535", false, "localhost", 65535, "localhost:65535");
    assert_true(mg_endpoint_is_tcp("10.0.0.2:24"));
    assert_false(mg_endpoint_is_tcp("/x"));

    parse_fails("", "empty");
    parse_fails("lmtp.sock", "socket path (starting with /) or host:port");
    parse_fails(":24", "host:port");
    parse_fails("::1:24", "brackets");
    parse_fails("[::1]", "host:port");
    parse_fails("h:0", "bad port");
    parse_fails("h:65536", "bad port");
    parse_fails("h:", "bad port");
    parse_fails("h:-1", "bad port");
    parse_fails("h:24x", "bad port");
    parse_fails("no-such-host.invalid:24", "cannot resolve no-such-host.invalid");
}

struct probe {
    int connected;
    int failed;
    int closed;
    uv_tcp_t *server; /* closed after the last connection */
};

static void probe_on_connect(struct mg_conn *conn, int status)
{
    struct probe *p = mg_conn_data(conn);
    if (status == 0) {
        p->connected++;
        mg_conn_close(conn);
    } else {
        p->failed++;
    }
}

static void probe_on_close(struct mg_conn *conn, const char *reason)
{
    (void)reason;
    struct probe *p = mg_conn_data(conn);
    if (++p->closed == 4)
        uv_close((uv_handle_t *)p->server, NULL);
}

static const struct mg_conn_callbacks probe_cb = {
    .on_connect = probe_on_connect,
    .on_close = probe_on_close,
};

static void accept_and_drop(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = mg_malloc(sizeof(*client));
    uv_tcp_init(server->loop, client);
    (void)uv_accept(server, (uv_stream_t *)client);
    uv_close((uv_handle_t *)client, (uv_close_cb)free);
}

static void test_endpoint_connect_rotates(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t server;
    uv_tcp_init(&loop, &server);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&server, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 16, accept_and_drop), 0);
    int len = sizeof(sin);
    uv_tcp_getsockname(&server, (struct sockaddr *)&sin, &len);

    /* Two addresses: the listener and a closed port. Four attempts reach
     * each twice. */
    char *text = mg_asprintf("127.0.0.1:%u", ntohs(sin.sin_port));
    struct mg_endpoint ep;
    char *error = NULL;
    assert_int_equal(mg_endpoint_parse(text, &ep, &error), 0);
    struct sockaddr_in *dead = (struct sockaddr_in *)&ep.addrs[1];
    uv_ip4_addr("127.0.0.1", 1, dead);
    ep.n_addrs = 2;
    struct probe p = { .server = &server };
    for (int i = 0; i < 4; i++)
        assert_non_null(mg_endpoint_connect(&ep, &loop, 2000, &probe_cb, &p));
    testutil_run_loop(&loop, 10);
    assert_int_equal(p.connected, 2);
    assert_int_equal(p.failed, 2);
    assert_int_equal(p.closed, 4);
    mg_endpoint_clear(&ep);
    free(text);
    testutil_close_loop(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_endpoint_connect_rotates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
