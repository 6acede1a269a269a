/* imap_fetch: one IMAP client doing LOGIN, SELECT, FETCH 1:* (FLAGS
 * ENVELOPE) and LOGOUT, timing each phase. Works against any IMAP server
 * (implicit TLS by default, STARTTLS or plaintext on request).
 *
 * Each phase is timed from writing its command to reading its tagged
 * reply; "total" is LOGIN through LOGOUT, "connect" the TCP connection,
 * TLS handshake and greeting before it. With --runs the whole session is
 * repeated and the median and best runs are reported. The client's own CPU
 * time is printed so that it can be told apart from the server's. The last
 * line is machine-readable (RESULT key=value ...). */
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "bench/bench_cli.h"
#include "bench/bench_common.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"

#define MAX_RUNS 1000

enum phase {
    PHASE_CONNECT,
    PHASE_STARTTLS,
    PHASE_LOGIN,
    PHASE_SELECT,
    PHASE_FETCH,
    PHASE_LOGOUT,
    PHASE_COUNT,
};

static const char *const phase_names[PHASE_COUNT] = {
    "connect", "starttls", "login", "select", "fetch", "logout",
};

struct options {
    struct bench_cli cli;
    const char *mailbox;
    const char *items;
    bool is_examine;
    unsigned runs;
};

struct run_result {
    double phase[PHASE_COUNT];
    double total;
    uint64_t messages;
    uint64_t bytes;
};

struct client {
    uv_loop_t *loop;
    struct options opt;
    struct sockaddr_storage addr;
    struct mg_tls_context *tls;
    struct mg_conn *conn;
    struct bench_imap_reader reader;
    enum phase phase;
    bool has_greeting;
    uint64_t phase_start_ns;
    unsigned run;
    struct run_result results[MAX_RUNS];
    const char *failure;
    char failure_buf[300];
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: imap_fetch -u USER (-w PASSWORD | --password-file FILE) [options]\n"
            "\n"
            "Logs in, selects a mailbox, fetches FLAGS and ENVELOPE of every message and\n"
            "logs out, printing the seconds each phase took. Works against any IMAP server.\n"
            "\n"
            "  -H, --host HOST           server (default 127.0.0.1)\n"
            "  -p, --port PORT           port (default 993)\n"
            "  -u, --user USER           login name\n"
            "  -w, --password PASSWORD   password\n"
            "      --password-file FILE  password from the first line of FILE\n"
            "  -m, --mailbox NAME        mailbox to select (default INBOX)\n"
            "  -i, --items ITEMS         FETCH items (default \"(FLAGS ENVELOPE)\")\n"
            "      --examine             EXAMINE instead of SELECT (read-only)\n"
            "  -r, --runs N              repeat the session N times (default 1)\n"
            "      --plain               no TLS (port 143 servers)\n"
            "      --starttls            plaintext connection upgraded with STARTTLS\n"
            "      --ca FILE             verify the server's certificate against FILE\n"
            "                            (default: accept any certificate)\n"
            "      --timeout SECONDS     give up on a silent server (default 120)\n"
            "  -q, --quiet               print only the RESULT line\n"
            "  -h, --help                this text\n"
            "\n"
            "Output ends with: RESULT runs=N messages=... bytes=... connect=... login=...\n"
            "select=... fetch=... logout=... total=... best_total=... client_cpu=...\n"
            "(seconds; medians over the runs).\n");
}

static void parse_options(struct client *c, int argc, char **argv)
{
    struct options *o = &c->opt;
    *o = (struct options){
        .cli = { .tool = "imap_fetch", .usage = usage, .host = "127.0.0.1", .port = "993",
                 .timeout_ms = 120000 },
        .mailbox = "INBOX",
        .items = "(FLAGS ENVELOPE)",
        .runs = 1,
    };
    static const struct option longopts[] = {
        BENCH_CLI_OPTIONS,
        BENCH_CLI_TLS_OPTIONS,
        BENCH_CLI_LOGIN_OPTIONS,
        { "mailbox", required_argument, NULL, 'm' },
        { "items", required_argument, NULL, 'i' },
        { "examine", no_argument, NULL, 'E' },
        { "runs", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    uint64_t v;
    const char *shortopts = BENCH_CLI_SHORT BENCH_CLI_LOGIN_SHORT "m:i:r:";
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            o->mailbox = optarg;
            break;
        case 'i':
            o->items = optarg;
            break;
        case 'E':
            o->is_examine = true;
            break;
        case 'r':
            if (bench_parse_u64(optarg, 1, MAX_RUNS, &v) < 0)
                bench_die(2, "imap_fetch: --runs: 1 to %d", MAX_RUNS);
            o->runs = (unsigned)v;
            break;
        default:
            bench_cli_option(&o->cli, ch, optarg);
            break;
        }
    }
    bench_cli_finish(&o->cli, argc, o->cli.user != NULL && o->cli.password != NULL);
    if (strpbrk(o->items, "\r\n") != NULL)
        bench_die(2, "imap_fetch: --items: one line");
    bench_cli_resolve(&o->cli, &c->addr);
    if (!o->cli.is_plain)
        c->tls = bench_tls_client(o->cli.ca_file);
}

static void fail(struct client *c, const char *what, const char *text, size_t len)
{
    if (c->failure == NULL) {
        snprintf(c->failure_buf, sizeof(c->failure_buf), "%s: %.*s", what,
                 (int)(len > 200 ? 200 : len), text);
        c->failure = c->failure_buf;
    }
    if (c->conn != NULL)
        mg_conn_abort(c->conn, NULL);
}

static void start_phase(struct client *c, enum phase p)
{
    struct run_result *r = &c->results[c->run];
    uint64_t now = bench_now_ns();
    r->phase[c->phase] += bench_seconds(c->phase_start_ns, now);
    c->phase = p;
    c->phase_start_ns = now;
    struct mg_buf cmd = MG_BUF_INIT;
    switch (p) {
    case PHASE_STARTTLS:
        mg_buf_append_str(&cmd, "s STARTTLS\r\n");
        break;
    case PHASE_LOGIN:
        mg_buf_append_str(&cmd, "l LOGIN ");
        if (bench_imap_quote(&cmd, c->opt.cli.user) < 0)
            bench_die(2, "imap_fetch: the user name cannot be sent");
        mg_buf_append_byte(&cmd, ' ');
        if (bench_imap_quote(&cmd, c->opt.cli.password) < 0)
            bench_die(2, "imap_fetch: the password cannot be sent");
        mg_buf_append_str(&cmd, "\r\n");
        break;
    case PHASE_SELECT:
        mg_buf_append_str(&cmd, c->opt.is_examine ? "s EXAMINE " : "s SELECT ");
        if (bench_imap_quote(&cmd, c->opt.mailbox) < 0)
            bench_die(2, "imap_fetch: the mailbox name cannot be sent");
        mg_buf_append_str(&cmd, "\r\n");
        break;
    case PHASE_FETCH:
        mg_buf_printf(&cmd, "f FETCH 1:* %s\r\n", c->opt.items);
        break;
    case PHASE_LOGOUT:
        mg_buf_append_str(&cmd, "o LOGOUT\r\n");
        break;
    default:
        break;
    }
    mg_conn_write(c->conn, cmd.data, cmd.len);
    mg_buf_free(&cmd);
}

static void connect_run(struct client *c);

static void on_response(void *ctx, const char *head, size_t len, uint64_t size)
{
    struct client *c = ctx;
    struct run_result *r = &c->results[c->run];
    if (c->failure != NULL)
        return;
    if (!c->has_greeting) {
        if (len < 4 || head[0] != '*' || (strncasecmp(head + 2, "OK", 2) != 0 &&
                                          strncasecmp(head + 2, "PREAUTH", 7) != 0)) {
            fail(c, "greeting", head, len);
            return;
        }
        c->has_greeting = true;
        if (c->opt.cli.is_starttls && c->phase == PHASE_CONNECT)
            start_phase(c, PHASE_STARTTLS);
        else
            start_phase(c, PHASE_LOGIN);
        return;
    }
    if (len >= 2 && head[0] == '*' && head[1] == ' ') {
        /* "* 12 FETCH (...)" */
        if (c->phase == PHASE_FETCH) {
            const char *p = head + 2;
            while (*p >= '0' && *p <= '9')
                p++;
            if (p > head + 2 && strncasecmp(p, " FETCH", 6) == 0) {
                r->messages++;
                r->bytes += size;
            }
        } else if (len >= 5 && strncasecmp(head + 2, "BYE", 3) == 0 && c->phase != PHASE_LOGOUT) {
            fail(c, "server said", head, len);
        }
        return;
    }
    if (len >= 1 && head[0] == '+')
        return;
    switch (c->phase) {
    case PHASE_STARTTLS:
        if (!bench_imap_is_tagged_ok(head, len, 's')) {
            fail(c, "STARTTLS", head, len);
            return;
        }
        /* LOGIN starts when the handshake is done (on_tls_ready). */
        mg_conn_start_tls_client(c->conn, c->tls, c->opt.cli.host, c->opt.cli.timeout_ms);
        return;
    case PHASE_LOGIN:
        if (!bench_imap_is_tagged_ok(head, len, 'l')) {
            fail(c, "LOGIN", head, len);
            return;
        }
        start_phase(c, PHASE_SELECT);
        return;
    case PHASE_SELECT:
        if (!bench_imap_is_tagged_ok(head, len, 's')) {
            fail(c, "SELECT", head, len);
            return;
        }
        start_phase(c, PHASE_FETCH);
        return;
    case PHASE_FETCH:
        if (!bench_imap_is_tagged_ok(head, len, 'f')) {
            fail(c, "FETCH", head, len);
            return;
        }
        start_phase(c, PHASE_LOGOUT);
        return;
    case PHASE_LOGOUT: {
        if (!bench_imap_is_tagged_ok(head, len, 'o')) {
            fail(c, "LOGOUT", head, len);
            return;
        }
        uint64_t now = bench_now_ns();
        r->phase[PHASE_LOGOUT] += bench_seconds(c->phase_start_ns, now);
        r->total = r->phase[PHASE_LOGIN] + r->phase[PHASE_SELECT] + r->phase[PHASE_FETCH] +
                   r->phase[PHASE_LOGOUT];
        c->phase = PHASE_COUNT;
        mg_conn_close(c->conn);
        return;
    }
    default:
        fail(c, "unexpected", head, len);
        return;
    }
}

static void on_read(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    bench_imap_read(&c->reader, mg_conn_input(conn), on_response, c);
}

static void on_connect(struct mg_conn *conn, int status)
{
    struct client *c = mg_conn_data(conn);
    if (status < 0)
        return; /* on_close reports it */
    mg_conn_set_idle_timeout(conn, c->opt.cli.timeout_ms);
    if (!c->opt.cli.is_plain && !c->opt.cli.is_starttls)
        mg_conn_start_tls_client(conn, c->tls, c->opt.cli.host, c->opt.cli.timeout_ms);
}

static void on_tls_ready(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    if (c->phase == PHASE_STARTTLS && c->failure == NULL)
        start_phase(c, PHASE_LOGIN);
}

static void on_close(struct mg_conn *conn, const char *reason)
{
    struct client *c = mg_conn_data(conn);
    c->conn = NULL;
    if (c->phase != PHASE_COUNT) {
        if (c->failure == NULL) {
            snprintf(c->failure_buf, sizeof(c->failure_buf), "connection lost during %s: %s",
                     phase_names[c->phase], reason != NULL ? reason : "closed");
            c->failure = c->failure_buf;
        }
        return;
    }
    if (++c->run < c->opt.runs)
        connect_run(c);
}

static const struct mg_conn_callbacks client_callbacks = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_tls_ready = on_tls_ready,
    .on_close = on_close,
};

static void connect_run(struct client *c)
{
    memset(&c->reader, 0, sizeof(c->reader));
    c->has_greeting = false;
    c->phase = PHASE_CONNECT;
    c->phase_start_ns = bench_now_ns();
    c->conn = mg_conn_connect_tcp(c->loop, (const struct sockaddr *)&c->addr, c->opt.cli.timeout_ms,
                                  &client_callbacks, c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(struct client *c, size_t offset)
{
    double v[MAX_RUNS];
    for (unsigned i = 0; i < c->opt.runs; i++)
        v[i] = *(const double *)((const char *)&c->results[i] + offset);
    qsort(v, c->opt.runs, sizeof(v[0]), cmp_double);
    unsigned n = c->opt.runs;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_init("imap_fetch");
    mg_log_set_level(MG_LOG_ERROR);
    static struct client c;
    parse_options(&c, argc, argv);
    c.loop = uv_default_loop();
    double cpu0 = bench_cpu_seconds();
    connect_run(&c);
    uv_run(c.loop, UV_RUN_DEFAULT);
    double cpu = bench_cpu_seconds() - cpu0;
    mg_tls_context_unref(&c.tls);
    uv_loop_close(c.loop);
    if (c.failure != NULL) {
        fprintf(stderr, "imap_fetch: run %u: %s\n", c.run + 1, c.failure);
        return 1;
    }
    double best = c.results[0].total;
    for (unsigned i = 0; i < c.opt.runs; i++) {
        const struct run_result *r = &c.results[i];
        if (r->total < best)
            best = r->total;
        if (c.opt.cli.is_quiet)
            continue;
        printf("run %u: connect %.4f s", i + 1, r->phase[PHASE_CONNECT]);
        if (c.opt.cli.is_starttls)
            printf(", starttls %.4f s", r->phase[PHASE_STARTTLS]);
        printf(", login %.4f s, select %.4f s, fetch %.4f s (%llu messages, %.2f MB), "
               "logout %.4f s; LOGIN to LOGOUT %.4f s\n",
               r->phase[PHASE_LOGIN], r->phase[PHASE_SELECT], r->phase[PHASE_FETCH],
               (unsigned long long)r->messages, (double)r->bytes / 1e6, r->phase[PHASE_LOGOUT],
               r->total);
    }
    if (!c.opt.cli.is_quiet)
        printf("client CPU %.3f s for %u run(s)\n", cpu, c.opt.runs);
    printf("RESULT runs=%u messages=%llu bytes=%llu connect=%.4f login=%.4f select=%.4f "
           "fetch=%.4f logout=%.4f total=%.4f best_total=%.4f client_cpu=%.3f\n",
           c.opt.runs, (unsigned long long)c.results[0].messages,
           (unsigned long long)c.results[0].bytes,
           median(&c, offsetof(struct run_result, phase[PHASE_CONNECT])),
           median(&c, offsetof(struct run_result, phase[PHASE_LOGIN])),
           median(&c, offsetof(struct run_result, phase[PHASE_SELECT])),
           median(&c, offsetof(struct run_result, phase[PHASE_FETCH])),
           median(&c, offsetof(struct run_result, phase[PHASE_LOGOUT])),
           median(&c, offsetof(struct run_result, total)), best, cpu);
    return 0;
}
