/* imap_idle: opens N IMAP connections, logs each in (users from a
 * pattern), selects a mailbox and enters IDLE, then holds them: until a
 * signal (SIGINT, SIGTERM) or for a given time. It prints when all are
 * idling (and can write a file then), so that a script can measure the
 * server meanwhile. Works against any IMAP server.
 *
 * Connections are set up a few at a time (--concurrency) so that the
 * server's login path is not what is measured. At the end each connection
 * ends IDLE with DONE and logs out. The last line is machine-readable
 * (RESULT key=value ...). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "bench/bench_cli.h"
#include "bench/bench_common.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"

#define NAME_MAX_LEN 256
/* How long the goodbye (DONE, LOGOUT) may take before connections are cut. */
#define GOODBYE_MS 10000

struct options {
    struct bench_cli cli;
    bool has_range;
    unsigned range_lo, range_hi;
    unsigned connections;
    unsigned concurrency;
    const char *mailbox; /* NULL: IDLE without selecting */
    uint64_t hold_ms;    /* 0: until a signal */
    const char *ready_file;
};

enum step {
    STEP_CONNECT,
    STEP_STARTTLS,
    STEP_LOGIN,
    STEP_SELECT,
    STEP_IDLE,      /* IDLE sent, waiting for "+" */
    STEP_IDLING,
    STEP_DONE,      /* DONE and LOGOUT sent */
    STEP_CLOSED,
};

struct idler;

struct bench {
    uv_loop_t *loop;
    struct options opt;
    struct sockaddr_storage addr;
    struct mg_tls_context *tls;
    struct idler **idlers;
    unsigned started, setting_up, idling, reached, failed, dropped, open;
    bool is_all_idling, is_stopping;
    uint64_t start_ns, all_idle_ns;
    uv_signal_t sigint, sigterm;
    uv_timer_t timer;
    char first_error[300];
};

struct idler {
    struct bench *b;
    struct mg_conn *conn;
    struct bench_imap_reader reader;
    enum step step;
    unsigned index;
    bool has_greeting;
    bool was_idling;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: imap_idle -u USER (-w PASSWORD | --password-file FILE) [options]\n"
            "\n"
            "Opens N IMAP connections that log in, select a mailbox and IDLE, and holds them\n"
            "until a signal or for a given time. Works against any IMAP server.\n"
            "\n"
            "  -H, --host HOST           server (default 127.0.0.1)\n"
            "  -p, --port PORT           port (default 993)\n"
            "  -u, --user USER           login name; \"%%d\" is replaced by numbers from --range\n"
            "  -w, --password PASSWORD   password (\"%%d\" replaced the same way)\n"
            "      --password-file FILE  password from the first line of FILE\n"
            "  -R, --range A-B           numbers for %%d, taken in turn (connection i gets A + i mod\n"
            "                            (B-A+1))\n"
            "  -n, --connections N       connections (default 1000)\n"
            "  -C, --concurrency K       connections being set up at once (default 20)\n"
            "  -m, --mailbox NAME        mailbox to select before IDLE (default INBOX)\n"
            "      --no-select           IDLE without selecting a mailbox\n"
            "  -t, --hold SECONDS        hold the connections that long once all idle\n"
            "                            (default: until SIGINT or SIGTERM)\n"
            "      --ready-file FILE     write the number of idling connections to FILE once all\n"
            "                            are idling\n"
            "      --plain               no TLS (port 143 servers)\n"
            "      --starttls            plaintext connection upgraded with STARTTLS\n"
            "      --ca FILE             verify the server's certificate against FILE\n"
            "      --timeout SECONDS     set-up time allowed per connection (default 60)\n"
            "  -q, --quiet               print only the RESULT line\n"
            "  -h, --help                this text\n"
            "\n"
            "Exit status 0 when every connection reached IDLE and none was dropped.\n"
            "Output ends with: RESULT connections=N idling=... failed=... dropped=...\n"
            "setup_seconds=... client_cpu=...\n");
}

static void parse_options(struct bench *b, int argc, char **argv)
{
    struct options *o = &b->opt;
    *o = (struct options){
        .cli = { .tool = "imap_idle", .usage = usage, .host = "127.0.0.1", .port = "993",
                 .timeout_ms = 60000 },
        .connections = 1000,
        .concurrency = 20,
        .mailbox = "INBOX",
    };
    static const struct option longopts[] = {
        BENCH_CLI_OPTIONS,
        BENCH_CLI_TLS_OPTIONS,
        BENCH_CLI_LOGIN_OPTIONS,
        { "range", required_argument, NULL, 'R' },
        { "connections", required_argument, NULL, 'n' },
        { "concurrency", required_argument, NULL, 'C' },
        { "mailbox", required_argument, NULL, 'm' },
        { "no-select", no_argument, NULL, 'N' },
        { "hold", required_argument, NULL, 't' },
        { "ready-file", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    uint64_t v;
    const char *shortopts = BENCH_CLI_SHORT BENCH_CLI_LOGIN_SHORT "R:n:C:m:t:";
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (ch) {
        case 'R':
            if (bench_parse_range(optarg, &o->range_lo, &o->range_hi) < 0)
                bench_die(2, "imap_idle: --range: A-B with A <= B");
            o->has_range = true;
            break;
        case 'n':
            if (bench_parse_u64(optarg, 1, 1000000, &v) < 0)
                bench_die(2, "imap_idle: --connections: 1 to 1000000");
            o->connections = (unsigned)v;
            break;
        case 'C':
            if (bench_parse_u64(optarg, 1, 10000, &v) < 0)
                bench_die(2, "imap_idle: --concurrency: 1 to 10000");
            o->concurrency = (unsigned)v;
            break;
        case 'm':
            o->mailbox = optarg;
            break;
        case 'N':
            o->mailbox = NULL;
            break;
        case 't':
            if (bench_parse_u64(optarg, 1, 86400 * 365, &v) < 0)
                bench_die(2, "imap_idle: --hold: seconds");
            o->hold_ms = v * 1000;
            break;
        case 'F':
            o->ready_file = optarg;
            break;
        default:
            bench_cli_option(&o->cli, ch, optarg);
            break;
        }
    }
    bench_cli_finish(&o->cli, argc, o->cli.user != NULL && o->cli.password != NULL);
    char probe[NAME_MAX_LEN];
    if (bench_format_pattern(probe, sizeof(probe), o->cli.user, 0) < 0 ||
        bench_format_pattern(probe, sizeof(probe), o->cli.password, 0) < 0)
        bench_die(2, "imap_idle: --user and --password take at most one %%d (%%%% for %%)");
    bench_cli_resolve(&o->cli, &b->addr);
    if (!o->cli.is_plain)
        b->tls = bench_tls_client(o->cli.ca_file);
}

static void note_error(struct bench *b, unsigned index, const char *what, const char *text,
                       size_t len)
{
    if (b->first_error[0] != '\0')
        return;
    snprintf(b->first_error, sizeof(b->first_error), "connection %u: %s: %.*s", index + 1, what,
             (int)(len > 200 ? 200 : len), text);
}

static void start_more(struct bench *b);
static void stop(struct bench *b);

static void send_command(struct idler *d, enum step step)
{
    struct bench *b = d->b;
    char name[NAME_MAX_LEN];
    unsigned n = 0;
    if (b->opt.has_range)
        n = b->opt.range_lo + d->index % (b->opt.range_hi - b->opt.range_lo + 1);
    struct mg_buf cmd = MG_BUF_INIT;
    d->step = step;
    switch (step) {
    case STEP_STARTTLS:
        mg_buf_append_str(&cmd, "t STARTTLS\r\n");
        break;
    case STEP_LOGIN:
        mg_buf_append_str(&cmd, "l LOGIN ");
        bench_format_pattern(name, sizeof(name), b->opt.cli.user, n);
        if (bench_imap_quote(&cmd, name) < 0)
            bench_die(2, "imap_idle: the user name cannot be sent");
        mg_buf_append_byte(&cmd, ' ');
        bench_format_pattern(name, sizeof(name), b->opt.cli.password, n);
        if (bench_imap_quote(&cmd, name) < 0)
            bench_die(2, "imap_idle: the password cannot be sent");
        mg_buf_append_str(&cmd, "\r\n");
        break;
    case STEP_SELECT:
        mg_buf_append_str(&cmd, "s SELECT ");
        if (bench_imap_quote(&cmd, b->opt.mailbox) < 0)
            bench_die(2, "imap_idle: the mailbox name cannot be sent");
        mg_buf_append_str(&cmd, "\r\n");
        break;
    case STEP_IDLE:
        mg_buf_append_str(&cmd, "i IDLE\r\n");
        break;
    case STEP_DONE:
        mg_buf_append_str(&cmd, "DONE\r\no LOGOUT\r\n");
        break;
    default:
        break;
    }
    mg_conn_write(d->conn, cmd.data, cmd.len);
    mg_buf_free(&cmd);
}

static void setup_failed(struct idler *d, const char *what, const char *text, size_t len)
{
    struct bench *b = d->b;
    note_error(b, d->index, what, text, len);
    if (d->step < STEP_IDLING) {
        b->failed++;
        b->setting_up--;
    }
    d->step = STEP_CLOSED;
    mg_conn_abort(d->conn, NULL);
    start_more(b);
}

static void write_ready_file(struct bench *b)
{
    if (b->opt.ready_file == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", b->opt.ready_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", b->idling) < 0 || fclose(f) != 0 ||
        rename(tmp, b->opt.ready_file) != 0)
        bench_die(1, "imap_idle: cannot write %s", b->opt.ready_file);
}

static void hold_timer_cb(uv_timer_t *t)
{
    stop(t->data);
}

static void check_all_idling(struct bench *b)
{
    if (b->is_all_idling || b->setting_up > 0 || b->started < b->opt.connections)
        return;
    b->is_all_idling = true;
    b->all_idle_ns = bench_now_ns();
    if (!b->opt.cli.is_quiet) {
        printf("imap_idle: %u of %u connections idling after %.2f s (%u failed)\n", b->idling,
               b->opt.connections, bench_seconds(b->start_ns, b->all_idle_ns), b->failed);
        fflush(stdout);
    }
    if (b->idling == 0) {
        stop(b);
        return;
    }
    write_ready_file(b);
    if (b->opt.hold_ms > 0)
        uv_timer_start(&b->timer, hold_timer_cb, b->opt.hold_ms, 0);
}

static void on_response(void *ctx, const char *head, size_t len, uint64_t size)
{
    (void)size;
    struct idler *d = ctx;
    struct bench *b = d->b;
    if (d->step == STEP_CLOSED)
        return;
    if (!d->has_greeting) {
        if (len < 4 || head[0] != '*' || strncasecmp(head + 2, "OK", 2) != 0) {
            setup_failed(d, "greeting", head, len);
            return;
        }
        d->has_greeting = true;
        bool is_starttls = b->opt.cli.is_starttls && d->step == STEP_CONNECT;
        send_command(d, is_starttls ? STEP_STARTTLS : STEP_LOGIN);
        return;
    }
    if (len >= 1 && head[0] == '*') {
        if (len >= 5 && strncasecmp(head + 2, "BYE", 3) == 0 && d->step < STEP_DONE &&
            d->step != STEP_IDLING)
            setup_failed(d, "server said", head, len);
        else if (len >= 5 && strncasecmp(head + 2, "BYE", 3) == 0 && d->step == STEP_IDLING)
            note_error(b, d->index, "server said", head, len);
        return;
    }
    switch (d->step) {
    case STEP_STARTTLS:
        if (!bench_imap_is_tagged_ok(head, len, 't')) {
            setup_failed(d, "STARTTLS", head, len);
            return;
        }
        mg_conn_start_tls_client(d->conn, b->tls, b->opt.cli.host, b->opt.cli.timeout_ms);
        send_command(d, STEP_LOGIN); /* held until the handshake is done */
        return;
    case STEP_LOGIN:
        if (!bench_imap_is_tagged_ok(head, len, 'l')) {
            setup_failed(d, "LOGIN", head, len);
            return;
        }
        send_command(d, b->opt.mailbox != NULL ? STEP_SELECT : STEP_IDLE);
        return;
    case STEP_SELECT:
        if (!bench_imap_is_tagged_ok(head, len, 's')) {
            setup_failed(d, "SELECT", head, len);
            return;
        }
        send_command(d, STEP_IDLE);
        return;
    case STEP_IDLE:
        if (head[0] != '+') {
            setup_failed(d, "IDLE", head, len);
            return;
        }
        d->step = STEP_IDLING;
        d->was_idling = true;
        /* Held from now on: no timeout of ours. */
        mg_conn_set_idle_timeout(d->conn, 0);
        b->idling++;
        b->reached++;
        b->setting_up--;
        start_more(b);
        check_all_idling(b);
        return;
    case STEP_IDLING:
        /* "i OK" without DONE: the server ended IDLE */
        note_error(b, d->index, "IDLE ended by the server", head, len);
        return;
    case STEP_DONE:
        if (head[0] == 'o') {
            d->step = STEP_CLOSED;
            mg_conn_close(d->conn);
        }
        return;
    default:
        return;
    }
}

static void on_read(struct mg_conn *conn)
{
    struct idler *d = mg_conn_data(conn);
    bench_imap_read(&d->reader, mg_conn_input(conn), on_response, d);
}

static void on_connect(struct mg_conn *conn, int status)
{
    struct idler *d = mg_conn_data(conn);
    if (status < 0)
        return; /* on_close counts it */
    if (!d->b->opt.cli.is_plain && !d->b->opt.cli.is_starttls)
        mg_conn_start_tls_client(conn, d->b->tls, d->b->opt.cli.host, d->b->opt.cli.timeout_ms);
}

static void on_close(struct mg_conn *conn, const char *reason)
{
    struct idler *d = mg_conn_data(conn);
    struct bench *b = d->b;
    if (d->step < STEP_IDLING) {
        note_error(b, d->index, "connection lost", reason != NULL ? reason : "closed",
                   strlen(reason != NULL ? reason : "closed"));
        b->failed++;
        b->setting_up--;
    } else if (d->step == STEP_IDLING) {
        note_error(b, d->index, "connection dropped while idling",
                   reason != NULL ? reason : "closed", strlen(reason != NULL ? reason : "closed"));
        b->dropped++;
    }
    if (d->was_idling)
        b->idling--;
    b->idlers[d->index] = NULL;
    free(d);
    b->open--;
    if (!b->is_stopping) {
        start_more(b);
        /* May stop the run, which closes the timer itself when no
         * connection is left. */
        check_all_idling(b);
    } else if (b->open == 0) {
        uv_timer_stop(&b->timer);
        uv_close((uv_handle_t *)&b->timer, NULL);
    }
}

static const struct mg_conn_callbacks idler_callbacks = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_close = on_close,
};

static void start_more(struct bench *b)
{
    while (!b->is_stopping && b->started < b->opt.connections &&
           b->setting_up < b->opt.concurrency) {
        struct idler *d = mg_calloc(1, sizeof(*d));
        d->b = b;
        d->index = b->started++;
        d->step = STEP_CONNECT;
        b->idlers[d->index] = d;
        b->setting_up++;
        b->open++;
        d->conn = mg_conn_connect_tcp(b->loop, (const struct sockaddr *)&b->addr,
                                      b->opt.cli.timeout_ms, &idler_callbacks, d);
    }
}

static void goodbye_timer_cb(uv_timer_t *t)
{
    struct bench *b = t->data;
    for (unsigned i = 0; i < b->opt.connections; i++) {
        if (b->idlers[i] != NULL && b->idlers[i]->conn != NULL)
            mg_conn_abort(b->idlers[i]->conn, NULL);
    }
}

static void stop(struct bench *b)
{
    if (b->is_stopping)
        return;
    b->is_stopping = true;
    uv_close((uv_handle_t *)&b->sigint, NULL);
    uv_close((uv_handle_t *)&b->sigterm, NULL);
    if (!b->opt.cli.is_quiet) {
        printf("imap_idle: closing %u connections\n", b->open);
        fflush(stdout);
    }
    for (unsigned i = 0; i < b->opt.connections; i++) {
        struct idler *d = b->idlers[i];
        if (d == NULL)
            continue;
        if (d->step == STEP_IDLING) {
            send_command(d, STEP_DONE);
        } else if (d->step < STEP_IDLING) {
            d->step = STEP_CLOSED;
            b->failed++;
            b->setting_up--;
            mg_conn_abort(d->conn, NULL);
        }
    }
    if (b->open == 0) {
        uv_timer_stop(&b->timer);
        uv_close((uv_handle_t *)&b->timer, NULL);
    } else {
        uv_timer_start(&b->timer, goodbye_timer_cb, GOODBYE_MS, 0);
    }
}

static void signal_cb(uv_signal_t *sig, int signum)
{
    (void)signum;
    stop(sig->data);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_init("imap_idle");
    mg_log_set_level(MG_LOG_ERROR);
    static struct bench b;
    parse_options(&b, argc, argv);
    b.loop = uv_default_loop();
    b.idlers = mg_calloc(b.opt.connections, sizeof(*b.idlers));
    uv_signal_init(b.loop, &b.sigint);
    uv_signal_init(b.loop, &b.sigterm);
    b.sigint.data = b.sigterm.data = &b;
    uv_signal_start(&b.sigint, signal_cb, SIGINT);
    uv_signal_start(&b.sigterm, signal_cb, SIGTERM);
    uv_timer_init(b.loop, &b.timer);
    b.timer.data = &b;

    double cpu0 = bench_cpu_seconds();
    b.start_ns = bench_now_ns();
    start_more(&b);
    uv_run(b.loop, UV_RUN_DEFAULT);
    double cpu = bench_cpu_seconds() - cpu0;

    double setup = b.is_all_idling ? bench_seconds(b.start_ns, b.all_idle_ns) : 0;
    if (!b.opt.cli.is_quiet && b.first_error[0] != '\0')
        printf("imap_idle: first problem: %s\n", b.first_error);
    printf("RESULT connections=%u idling=%u failed=%u dropped=%u setup_seconds=%.2f "
           "client_cpu=%.2f\n",
           b.opt.connections, b.reached, b.failed, b.dropped, setup, cpu);
    free(b.idlers);
    mg_tls_context_unref(&b.tls);
    uv_loop_close(b.loop);
    return b.failed == 0 && b.dropped == 0 && b.is_all_idling ? 0 : 1;
}
