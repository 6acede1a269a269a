/* lmtp_load: delivers M messages of a given size over N parallel LMTP (or
 * SMTP) sessions, to recipients from a pattern ("user%d@domain" over a
 * range), and reports messages per second and latency percentiles.
 *
 * A message's latency runs from its MAIL FROM to the last reply after its
 * final dot. Commands are pipelined when the server offers PIPELINING.
 * The last line of output is machine-readable (RESULT key=value ...). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench/bench_cli.h"
#include "bench/bench_common.h"
#include "bench/bench_message.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"

struct options {
    struct bench_cli cli;   /* TCP: host and port */
    const char *unix_path;
    bool is_smtp;
    struct bench_message_options msg;
};

struct load {
    uv_loop_t *loop;
    struct options opt;
    struct sockaddr_storage addr;
    char target[300];
    char *body;             /* the part of every message after its headers */
    size_t body_len;
    uint64_t next;          /* next message to start */
    uint64_t rcpt_cursor;   /* next recipient number, in turn over the range */
    uint64_t msg_ok, msg_failed, rcpt_ok, rcpt_failed, bytes;
    unsigned sessions_open;
    bool has_error_text;
    char error_text[300];
    struct bench_stats latency;
    uint64_t start_ns, end_ns;
};

enum step {
    STEP_GREETING,
    STEP_HELLO,
    STEP_MAIL,
    STEP_RCPT,
    STEP_DATA,
    STEP_DOT,
    STEP_QUIT,
};

struct session {
    struct load *load;
    struct mg_conn *conn;
    enum step step;
    bool is_pipelining;
    bool is_done;
    /* the transaction in flight */
    char rcpts[BENCH_MESSAGE_RCPTS_MAX][BENCH_MESSAGE_ADDR_MAX];
    unsigned n_rcpts;
    unsigned rcpt_replies;  /* RCPT replies received */
    unsigned rcpt_accepted;
    unsigned dot_replies;   /* replies received after the dot */
    bool is_failed;
    uint64_t msg_index;
    uint64_t msg_start_ns;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: lmtp_load (-u PATH | -H HOST -p PORT) [options]\n"
            "\n"
            "Delivers messages over parallel LMTP sessions and reports messages per second\n"
            "and latency percentiles. Works against any LMTP (or, with --smtp, SMTP) server.\n"
            "\n"
            "  -u, --unix PATH              connect to a UNIX socket\n"
            "  -H, --host HOST              connect over TCP (plaintext) to HOST ...\n"
            "  -p, --port PORT              ... and PORT\n"
            "      --smtp                   speak SMTP (EHLO, one reply after the dot)\n"
            "  -c, --sessions N             parallel sessions (default 4)\n"
            "  -n, --messages M             messages in total (default 10000)\n"
            "  -s, --size BYTES             size of each message (default 5120)\n"
            "  -r, --rcpt PATTERN           recipients, %%d replaced by a number\n"
            "                               (default user%%d@bench.test)\n"
            "  -R, --range A-B              the numbers, taken in turn (default 1-100)\n"
            "  -k, --rcpts-per-message K    recipients per message (default 1)\n"
            "  -f, --from ADDRESS           envelope sender (default bench@lmtp-load.test)\n"
            "      --no-pipelining          one command at a time even if PIPELINING is offered\n"
            "      --timeout SECONDS        give up on a silent server after this (default 60)\n"
            "  -q, --quiet                  print only the RESULT line\n"
            "  -h, --help                   this text\n"
            "\n"
            "Output ends with: RESULT messages=M ok=... failed=... seconds=... rate=...\n"
            "deliveries_rate=... p50_ms=... p90_ms=... p99_ms=... max_ms=... client_cpu=...\n");
}

static void parse_options(struct load *l, int argc, char **argv)
{
    struct options *o = &l->opt;
    *o = (struct options){
        .cli = { .tool = "lmtp_load", .usage = usage, .timeout_ms = 60000 },
        .msg = { .sessions = 4, .messages = 10000, .size = 5120,
                 .rcpt_pattern = "user%d@bench.test", .range_lo = 1, .range_hi = 100,
                 .rcpts_per_message = 1, .from = "bench@lmtp-load.test" },
    };
    static const struct option longopts[] = {
        BENCH_CLI_OPTIONS,
        { "unix", required_argument, NULL, 'u' },
        BENCH_MESSAGE_OPTIONS,
        { "smtp", no_argument, NULL, 'S' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    const char *shortopts = BENCH_CLI_SHORT BENCH_MESSAGE_SHORT "u:";
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->unix_path = optarg;
            break;
        case 'S':
            o->is_smtp = true;
            break;
        default:
            if (!bench_message_option(&o->msg, o->cli.tool, c, optarg))
                bench_cli_option(&o->cli, c, optarg);
            break;
        }
    }
    /* A UNIX socket, or a host and port. */
    bench_cli_finish(&o->cli, argc,
                     (o->unix_path == NULL) != (o->cli.host == NULL) &&
                         (o->cli.host == NULL || o->cli.port != NULL));
    bench_message_check(&o->msg, o->cli.tool);
    if (o->unix_path != NULL) {
        snprintf(l->target, sizeof(l->target), "unix:%s", o->unix_path);
    } else {
        bench_cli_resolve(&o->cli, &l->addr);
        snprintf(l->target, sizeof(l->target), "%s:%s", o->cli.host, o->cli.port);
    }
}

static void note_error(struct load *l, const char *text, size_t len)
{
    if (l->has_error_text)
        return;
    l->has_error_text = true;
    snprintf(l->error_text, sizeof(l->error_text), "%.*s", (int)(len > 250 ? 250 : len), text);
}

static void session_close(struct session *s)
{
    if (s->conn != NULL && !s->is_done) {
        s->is_done = true;
        mg_conn_close(s->conn);
    }
}

static void send_transaction(struct session *s);

static void start_message(struct session *s)
{
    struct load *l = s->load;
    if (l->next >= l->opt.msg.messages) {
        s->step = STEP_QUIT;
        mg_conn_write_str(s->conn, "QUIT\r\n");
        return;
    }
    s->msg_index = l->next++;
    s->n_rcpts = l->opt.msg.rcpts_per_message;
    bench_message_rcpts(&l->opt.msg, &l->rcpt_cursor, s->rcpts);
    s->rcpt_replies = 0;
    s->rcpt_accepted = 0;
    s->dot_replies = 0;
    s->is_failed = false;
    s->msg_start_ns = bench_now_ns();
    s->step = STEP_MAIL;
    send_transaction(s);
}

/* MAIL, RCPT... and DATA: all at once with pipelining, else the command
 * the current step waits for. */
static void send_transaction(struct session *s)
{
    struct load *l = s->load;
    mg_conn_cork(s->conn);
    if (s->step == STEP_MAIL)
        mg_conn_printf(s->conn, "MAIL FROM:<%s>\r\n", l->opt.msg.from);
    if (s->is_pipelining || s->step == STEP_RCPT) {
        unsigned first = s->is_pipelining ? 0 : s->rcpt_replies;
        unsigned last = s->is_pipelining ? s->n_rcpts : first + 1;
        for (unsigned i = first; i < last; i++)
            mg_conn_printf(s->conn, "RCPT TO:<%s>\r\n", s->rcpts[i]);
    }
    if (s->is_pipelining || s->step == STEP_DATA)
        mg_conn_write_str(s->conn, "DATA\r\n");
    mg_conn_uncork(s->conn);
}

static void send_message(struct session *s)
{
    struct load *l = s->load;
    l->bytes += bench_message_send(s->conn, "lmtp_load", l->opt.msg.from, s->rcpts[0],
                                   s->msg_index, l->body, l->body_len);
}

static void finish_message(struct session *s)
{
    struct load *l = s->load;
    uint64_t now = bench_now_ns();
    if (s->is_failed) {
        l->msg_failed++;
    } else {
        l->msg_ok++;
        bench_stats_add(&l->latency, bench_seconds(s->msg_start_ns, now));
    }
    l->end_ns = now;
    start_message(s);
}

static void on_reply(void *ctx, int code, bool is_last, const char *text, size_t len)
{
    struct session *s = ctx;
    struct load *l = s->load;
    if (s->is_done)
        return;
    if (s->step == STEP_HELLO && len > 4 && code == 250) {
        /* an EHLO/LHLO extension line */
        if ((len == 14 || (len > 14 && text[14] == ' ')) && strncasecmp(text + 4, "PIPELINING", 10) == 0)
            s->is_pipelining = !l->opt.msg.no_pipelining;
    }
    if (!is_last)
        return;
    switch (s->step) {
    case STEP_GREETING:
        if (code != 220) {
            note_error(l, text, len);
            session_close(s);
            return;
        }
        s->step = STEP_HELLO;
        mg_conn_printf(s->conn, "%s bench.lmtp-load.test\r\n", l->opt.is_smtp ? "EHLO" : "LHLO");
        return;
    case STEP_HELLO:
        if (code != 250) {
            note_error(l, text, len);
            session_close(s);
            return;
        }
        start_message(s);
        return;
    case STEP_MAIL:
        if (code != 250) {
            note_error(l, text, len);
            s->is_failed = true;
        }
        s->step = STEP_RCPT;
        if (!s->is_pipelining) {
            if (s->is_failed) {
                /* nothing more for this message */
                mg_conn_write_str(s->conn, "RSET\r\n");
                s->step = STEP_DOT;
                s->dot_replies = 0;
                s->rcpt_accepted = 1; /* the RSET reply ends it */
                return;
            }
            send_transaction(s);
        }
        return;
    case STEP_RCPT:
        s->rcpt_replies++;
        if (code == 250 || code == 251) {
            s->rcpt_accepted++;
            l->rcpt_ok++;
        } else {
            note_error(l, text, len);
            l->rcpt_failed++;
        }
        if (s->rcpt_replies < s->n_rcpts) {
            if (!s->is_pipelining)
                send_transaction(s);
            return;
        }
        s->step = STEP_DATA;
        if (!s->is_pipelining) {
            if (s->rcpt_accepted == 0 || s->is_failed) {
                mg_conn_write_str(s->conn, "RSET\r\n");
                s->is_failed = true;
                s->step = STEP_DOT;
                s->rcpt_accepted = 1;
                return;
            }
            send_transaction(s);
        }
        return;
    case STEP_DATA:
        if (code != 354) {
            /* pipelined DATA refused (no valid recipient): the message is
             * over, the session goes on */
            note_error(l, text, len);
            s->is_failed = true;
            finish_message(s);
            return;
        }
        s->step = STEP_DOT;
        send_message(s);
        return;
    case STEP_DOT:
        /* LMTP: one reply per accepted recipient; SMTP: one */
        s->dot_replies++;
        if (code < 200 || code > 299) {
            note_error(l, text, len);
            s->is_failed = true;
        }
        if (!l->opt.is_smtp && s->dot_replies < s->rcpt_accepted)
            return;
        finish_message(s);
        return;
    case STEP_QUIT:
        session_close(s);
        return;
    }
}

static void on_read(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    bench_read_replies(mg_conn_input(conn), on_reply, s);
}

static void on_connect(struct mg_conn *conn, int status)
{
    struct session *s = mg_conn_data(conn);
    if (status < 0)
        note_error(s->load, uv_strerror(status), strlen(uv_strerror(status)));
}

static void on_close(struct mg_conn *conn, const char *reason)
{
    struct session *s = mg_conn_data(conn);
    struct load *l = s->load;
    if (reason != NULL && s->step != STEP_QUIT)
        note_error(l, reason, strlen(reason));
    if (s->step != STEP_QUIT && s->step >= STEP_MAIL && s->step <= STEP_DOT) {
        /* the message in flight is lost */
        l->msg_failed++;
    }
    s->conn = NULL;
    free(s);
    l->sessions_open--;
}

static const struct mg_conn_callbacks session_callbacks = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_close = on_close,
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_init("lmtp_load");
    mg_log_set_level(MG_LOG_ERROR);
    struct load l = { 0 };
    parse_options(&l, argc, argv);
    l.body = bench_message_body(l.opt.msg.size, &l.body_len);
    l.loop = uv_default_loop();

    double cpu0 = bench_cpu_seconds();
    l.start_ns = bench_now_ns();
    l.end_ns = l.start_ns;
    for (unsigned i = 0; i < l.opt.msg.sessions; i++) {
        struct session *s = mg_calloc(1, sizeof(*s));
        s->load = &l;
        s->step = STEP_GREETING;
        if (l.opt.unix_path != NULL)
            s->conn = mg_conn_connect_unix(l.loop, l.opt.unix_path, l.opt.cli.timeout_ms,
                                           &session_callbacks, s);
        else
            s->conn = mg_conn_connect_tcp(l.loop, (const struct sockaddr *)&l.addr,
                                          l.opt.cli.timeout_ms, &session_callbacks, s);
        l.sessions_open++;
    }
    uv_run(l.loop, UV_RUN_DEFAULT);
    double cpu = bench_cpu_seconds() - cpu0;

    double secs = bench_seconds(l.start_ns, l.end_ns);
    double rate = secs > 0 ? (double)l.msg_ok / secs : 0;
    double drate = secs > 0 ? (double)l.rcpt_ok / secs : 0;
    double p50 = bench_stats_percentile(&l.latency, 50) * 1000;
    double p90 = bench_stats_percentile(&l.latency, 90) * 1000;
    double p99 = bench_stats_percentile(&l.latency, 99) * 1000;
    double pmax = bench_stats_percentile(&l.latency, 100) * 1000;
    uint64_t total = l.msg_ok + l.msg_failed;
    if (!l.opt.cli.is_quiet) {
        printf("lmtp_load: %s, %u sessions, %llu messages of %.0f bytes, %u recipient(s) each\n",
               l.target, l.opt.msg.sessions, (unsigned long long)l.opt.msg.messages,
               total ? (double)l.bytes / (double)(l.next ? l.next : 1) : 0.0,
               l.opt.msg.rcpts_per_message);
        printf("  delivered  %llu ok, %llu failed (recipients: %llu ok, %llu refused)\n",
               (unsigned long long)l.msg_ok, (unsigned long long)l.msg_failed,
               (unsigned long long)l.rcpt_ok, (unsigned long long)l.rcpt_failed);
        printf("  elapsed    %.3f s\n", secs);
        printf("  rate       %.1f messages/s, %.1f deliveries/s\n", rate, drate);
        printf("  latency    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p90, p99,
               pmax);
        printf("  client CPU %.2f s\n", cpu);
        if (l.has_error_text)
            printf("  first error: %s\n", l.error_text);
    }
    printf("RESULT messages=%llu ok=%llu failed=%llu seconds=%.3f rate=%.1f deliveries_rate=%.1f "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f client_cpu=%.2f\n",
           (unsigned long long)l.opt.msg.messages, (unsigned long long)l.msg_ok,
           (unsigned long long)(l.opt.msg.messages - l.msg_ok), secs, rate, drate, p50, p90, p99,
           pmax, cpu);
    bench_stats_free(&l.latency);
    free(l.body);
    uv_loop_close(l.loop);
    return l.msg_ok == l.opt.msg.messages ? 0 : 1;
}
