/* smtp_load: sends M messages of a given size over N parallel SMTP
 * sessions, to recipients from a pattern ("user%d@domain" over a range),
 * and reports messages per second and latency percentiles.
 *
 * Plain SMTP, STARTTLS or implicit TLS (submissions), optionally with
 * AUTH PLAIN; connections reused for every message of a session, or one
 * connection per message. Works against any SMTP server.
 *
 * A transaction's latency runs from its MAIL FROM to the reply after its
 * final dot; a connection's set-up time from the connect to the moment
 * MAIL FROM can be sent (TLS, EHLO, STARTTLS, AUTH). MAIL, RCPT and DATA
 * are pipelined when the server offers PIPELINING.
 *
 * Every refusal is counted and shown, grouped by command and reply code.
 * A session that cannot be set up (connection refused, a 4xx greeting,
 * AUTH refused) costs the message it would have sent, so that a broken
 * server ends the run instead of looping; after --max-setup-failures the
 * remaining messages are left unsent. The last line of output is
 * machine-readable (RESULT key=value ...). */
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
#include "common/base64.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"

/* Distinct kinds of error kept for the summary (command and code). */
#define ERROR_KINDS_MAX 16
#define ERROR_TEXT_MAX 200

enum mode { MODE_PLAIN, MODE_STARTTLS, MODE_TLS };

static const char *const mode_names[] = { "plain", "starttls", "tls" };

struct options {
    struct bench_cli cli;  /* is_plain and is_starttls unused: --mode says */
    enum mode mode;
    char *auth_user;     /* NULL: no AUTH */
    char *auth_password;
    struct bench_message_options msg;
    uint64_t per_session; /* 0: the sessions share --messages */
    bool is_conn_per_message;
    const char *helo;
    uint64_t max_setup_failures;
};

struct error_kind {
    char key[32];              /* "RCPT 550" */
    char text[ERROR_TEXT_MAX]; /* the first such reply */
    uint64_t count;
};

struct load {
    uv_loop_t *loop;
    struct options opt;
    struct sockaddr_storage addr;
    char target[300];
    struct mg_tls_context *tls;
    char *auth_plain;       /* "AUTH PLAIN <base64>\r\n" */
    char *body;             /* the part of every message after its headers */
    size_t body_len;
    uint64_t next;          /* next message to start */
    uint64_t rcpt_cursor;   /* next recipient number, in turn over the range */
    uint64_t msg_ok, msg_failed, rcpt_ok, rcpt_failed;
    uint64_t msg_data, bytes; /* messages whose content was sent, and their bytes */
    uint64_t connections, setup_failures;
    unsigned sessions_open;
    struct error_kind errors[ERROR_KINDS_MAX];
    unsigned n_error_kinds;
    uint64_t errors_other;  /* beyond ERROR_KINDS_MAX kinds */
    struct bench_stats latency;
    struct bench_stats setup;
    uint64_t start_ns, end_ns;
};

enum step {
    STEP_CONNECT,   /* TCP connect, and the handshake for implicit TLS */
    STEP_GREETING,
    STEP_EHLO,
    STEP_STARTTLS,
    STEP_TLS,       /* STARTTLS accepted, handshake running */
    STEP_AUTH,
    STEP_MAIL,
    STEP_RCPT,
    STEP_DATA,
    STEP_DOT,
    STEP_RSET,
    STEP_QUIT,      /* QUIT sent or the connection closing on purpose */
};

struct session {
    struct load *load;
    struct mg_conn *conn;
    enum step step;
    uint64_t quota;         /* messages this session may still start */
    /* what the server offered in its last EHLO reply */
    bool has_pipelining, has_starttls, has_auth_plain;
    bool is_tls_on;
    uint64_t setup_start_ns;
    /* the transaction in flight */
    bool has_message;
    char rcpts[BENCH_MESSAGE_RCPTS_MAX][BENCH_MESSAGE_ADDR_MAX];
    unsigned n_rcpts;
    unsigned rcpt_replies;
    unsigned rcpt_accepted;
    bool is_failed;
    uint64_t msg_index;
    uint64_t msg_start_ns;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: smtp_load -H HOST [-p PORT] [options]\n"
            "\n"
            "Sends messages over parallel SMTP sessions and reports messages per second and\n"
            "latency percentiles. Works against any SMTP server.\n"
            "\n"
            "  -H, --host HOST              server name or address\n"
            "  -p, --port PORT              port (default 25)\n"
            "  -m, --mode MODE              plain (default), starttls, or tls (implicit TLS,\n"
            "                               as on port 465)\n"
            "      --ca FILE                verify the server's certificate against FILE\n"
            "                               (default: any certificate is accepted)\n"
            "  -a, --auth USER:PASSWORD     AUTH PLAIN after EHLO (and after TLS)\n"
            "      --auth-file FILE         the same, from the first line of FILE\n"
            "  -c, --sessions N             parallel sessions (default 20)\n"
            "  -n, --messages M             messages in total, shared by the sessions\n"
            "                               (default 5000)\n"
            "  -M, --per-session M          instead: M messages for each session\n"
            "      --conn-per-message       a new connection (and TLS, AUTH) for every message\n"
            "  -s, --size BYTES             size of each message (default 5120)\n"
            "  -f, --from ADDRESS           envelope sender (default bench@smtp-load.test)\n"
            "  -r, --rcpt PATTERN           recipients, %%d replaced by a number\n"
            "                               (default user%%d@bench.test)\n"
            "  -R, --range A-B              the numbers, taken in turn (default 1-100)\n"
            "  -k, --rcpts-per-message K    recipients per message (default 1)\n"
            "      --helo NAME              name sent with EHLO (default client.smtp-load.test)\n"
            "      --no-pipelining          one command at a time even if PIPELINING is offered\n"
            "      --max-setup-failures N   stop connecting after N failed sessions set-ups\n"
            "                               (default 100)\n"
            "      --timeout SECONDS        give up on a silent server after this (default 60)\n"
            "  -q, --quiet                  print only the RESULT line (and errors, on\n"
            "                               standard error)\n"
            "  -h, --help                   this text\n"
            "\n"
            "Output ends with: RESULT messages=M sent=... failed=... unsent=... seconds=...\n"
            "rate=... p50_ms=... p90_ms=... p99_ms=... max_ms=... connections=...\n"
            "setup_p50_ms=... setup_p99_ms=... errors=... client_cpu=...\n"
            "The exit status is 0 when every message was accepted, 1 otherwise.\n");
}

/* "user:password" into the options (the password may hold colons). */
static void set_auth(struct options *o, const char *credentials)
{
    const char *colon = strchr(credentials, ':');
    if (colon == NULL || colon == credentials)
        bench_die(2, "smtp_load: --auth: USER:PASSWORD");
    free(o->auth_user);
    free(o->auth_password);
    o->auth_user = mg_strdup(credentials);
    o->auth_user[colon - credentials] = '\0';
    o->auth_password = mg_strdup(colon + 1);
}

static void parse_options(struct load *l, int argc, char **argv)
{
    struct options *o = &l->opt;
    *o = (struct options){
        .cli = { .tool = "smtp_load", .usage = usage, .port = "25", .timeout_ms = 60000 },
        .mode = MODE_PLAIN,
        .msg = { .sessions = 20, .messages = 5000, .size = 5120,
                 .rcpt_pattern = "user%d@bench.test", .range_lo = 1, .range_hi = 100,
                 .rcpts_per_message = 1, .from = "bench@smtp-load.test" },
        .helo = "client.smtp-load.test",
        .max_setup_failures = 100,
    };
    enum {
        OPT_AUTH_FILE = BENCH_CLI_OPT_TOOL,
        OPT_CONN_PER_MESSAGE,
        OPT_HELO,
        OPT_MAX_SETUP_FAILURES,
    };
    static const struct option longopts[] = {
        BENCH_CLI_OPTIONS,
        BENCH_MESSAGE_OPTIONS,
        { "mode", required_argument, NULL, 'm' },
        { "ca", required_argument, NULL, BENCH_CLI_OPT_CA },
        { "auth", required_argument, NULL, 'a' },
        { "auth-file", required_argument, NULL, OPT_AUTH_FILE },
        { "per-session", required_argument, NULL, 'M' },
        { "conn-per-message", no_argument, NULL, OPT_CONN_PER_MESSAGE },
        { "helo", required_argument, NULL, OPT_HELO },
        { "max-setup-failures", required_argument, NULL, OPT_MAX_SETUP_FAILURES },
        { NULL, 0, NULL, 0 },
    };
    int c;
    const char *shortopts = BENCH_CLI_SHORT BENCH_MESSAGE_SHORT "m:a:M:";
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "plain") == 0)
                o->mode = MODE_PLAIN;
            else if (strcmp(optarg, "starttls") == 0)
                o->mode = MODE_STARTTLS;
            else if (strcmp(optarg, "tls") == 0)
                o->mode = MODE_TLS;
            else
                bench_die(2, "smtp_load: --mode: plain, starttls or tls");
            break;
        case 'a':
            set_auth(o, optarg);
            break;
        case OPT_AUTH_FILE: {
            char *line = bench_cli_read_line(&o->cli, optarg);
            set_auth(o, line);
            free(line);
            break;
        }
        case 'M':
            if (bench_parse_u64(optarg, 1, UINT32_MAX, &o->per_session) < 0)
                bench_die(2, "smtp_load: --per-session: a positive number");
            break;
        case OPT_CONN_PER_MESSAGE:
            o->is_conn_per_message = true;
            break;
        case OPT_HELO:
            o->helo = optarg;
            break;
        case OPT_MAX_SETUP_FAILURES:
            if (bench_parse_u64(optarg, 0, UINT32_MAX, &o->max_setup_failures) < 0)
                bench_die(2, "smtp_load: --max-setup-failures: a number");
            break;
        default:
            if (!bench_message_option(&o->msg, o->cli.tool, c, optarg))
                bench_cli_option(&o->cli, c, optarg);
            break;
        }
    }
    bench_cli_finish(&o->cli, argc, o->cli.host != NULL);
    if (o->per_session > 0) {
        if (o->msg.has_messages)
            bench_die(2, "smtp_load: --messages or --per-session, not both");
        o->msg.messages = o->per_session * o->msg.sessions;
    }
    bench_message_check(&o->msg, o->cli.tool);
    if (strpbrk(o->msg.from, "<>\r\n ") != NULL || strpbrk(o->helo, "\r\n ") != NULL ||
        strpbrk(o->msg.rcpt_pattern, "<>\r\n ") != NULL)
        bench_die(2, "smtp_load: --from, --rcpt and --helo: no spaces, angle brackets or line ends");
    bench_cli_resolve(&o->cli, &l->addr);
    snprintf(l->target, sizeof(l->target), "%s:%s", o->cli.host, o->cli.port);
    if (o->mode != MODE_PLAIN)
        l->tls = bench_tls_client(o->cli.ca_file);
    if (o->auth_user != NULL) {
        /* RFC 4616: authzid NUL authcid NUL password */
        struct mg_buf raw = MG_BUF_INIT, line = MG_BUF_INIT;
        mg_buf_append_byte(&raw, '\0');
        mg_buf_append_str(&raw, o->auth_user);
        mg_buf_append_byte(&raw, '\0');
        mg_buf_append_str(&raw, o->auth_password);
        mg_buf_append_str(&line, "AUTH PLAIN ");
        mg_base64_encode(raw.data, raw.len, &line);
        mg_buf_append_str(&line, "\r\n");
        l->auth_plain = mg_buf_steal(&line, NULL);
        mg_buf_free(&raw);
    }
}

/* Counts an error under "what code" and keeps the first text of each
 * kind for the summary. */
static void note_error(struct load *l, const char *what, int code, const char *text, size_t len)
{
    char key[sizeof(l->errors[0].key)];
    if (code > 0)
        snprintf(key, sizeof(key), "%s %d", what, code);
    else
        snprintf(key, sizeof(key), "%s", what);
    for (unsigned i = 0; i < l->n_error_kinds; i++) {
        if (strcmp(l->errors[i].key, key) == 0) {
            l->errors[i].count++;
            return;
        }
    }
    if (l->n_error_kinds == ERROR_KINDS_MAX) {
        l->errors_other++;
        return;
    }
    struct error_kind *e = &l->errors[l->n_error_kinds++];
    snprintf(e->key, sizeof(e->key), "%s", key);
    int n = len > ERROR_TEXT_MAX - 1 ? ERROR_TEXT_MAX - 1 : (int)len;
    snprintf(e->text, sizeof(e->text), "%.*s", n, text);
    e->count = 1;
}

static bool has_work(const struct session *s)
{
    return s->quota > 0 && s->load->next < s->load->opt.msg.messages;
}

/* Takes the next message for this session (the caller checked has_work). */
static void take_message(struct session *s)
{
    struct load *l = s->load;
    s->msg_index = l->next++;
    s->quota--;
    s->has_message = true;
    s->n_rcpts = l->opt.msg.rcpts_per_message;
    bench_message_rcpts(&l->opt.msg, &l->rcpt_cursor, s->rcpts);
    s->rcpt_replies = 0;
    s->rcpt_accepted = 0;
    s->is_failed = false;
}

/* The message in flight (if any) is over: counted, and its latency kept
 * when the server accepted it. */
static void end_message(struct session *s, bool is_ok)
{
    struct load *l = s->load;
    if (!s->has_message)
        return;
    s->has_message = false;
    uint64_t now = bench_now_ns();
    if (is_ok) {
        l->msg_ok++;
        bench_stats_add(&l->latency, bench_seconds(s->msg_start_ns, now));
    } else {
        l->msg_failed++;
    }
    l->end_ns = now;
}

/* QUIT; the connection closes at the server's reply (or, without
 * is_polite, right away: the session is broken anyway). */
static void session_quit(struct session *s, bool is_polite)
{
    s->step = STEP_QUIT;
    mg_conn_write_str(s->conn, "QUIT\r\n");
    if (!is_polite)
        mg_conn_close(s->conn);
}

/* The session could not be set up: that costs one message (so that a
 * refusing server cannot keep the tool busy forever), and the
 * connection goes. */
static void setup_failed(struct session *s, const char *what, int code, const char *text, size_t len)
{
    struct load *l = s->load;
    note_error(l, what, code, text, len);
    l->setup_failures++;
    if (!s->has_message && has_work(s))
        take_message(s);
    end_message(s, false);
    if (s->conn != NULL && s->step != STEP_QUIT)
        session_quit(s, false);
}

static void session_connect(struct session *s);

static void send_ehlo(struct session *s)
{
    s->has_pipelining = s->has_starttls = s->has_auth_plain = false;
    s->step = STEP_EHLO;
    mg_conn_printf(s->conn, "EHLO %s\r\n", s->load->opt.helo);
}

static void send_transaction(struct session *s);

/* The next message on this connection, or QUIT. */
static void start_message(struct session *s)
{
    if (!has_work(s)) {
        session_quit(s, true);
        return;
    }
    take_message(s);
    s->msg_start_ns = bench_now_ns();
    s->step = STEP_MAIL;
    send_transaction(s);
}

/* MAIL, RCPT... and DATA: all at once with pipelining, else the command
 * the current step waits for. */
static void send_transaction(struct session *s)
{
    struct load *l = s->load;
    bool is_pipelining = s->has_pipelining && !l->opt.msg.no_pipelining;
    mg_conn_cork(s->conn);
    if (s->step == STEP_MAIL)
        mg_conn_printf(s->conn, "MAIL FROM:<%s>\r\n", l->opt.msg.from);
    if (is_pipelining || s->step == STEP_RCPT) {
        unsigned first = is_pipelining ? 0 : s->rcpt_replies;
        unsigned last = is_pipelining ? s->n_rcpts : first + 1;
        for (unsigned i = first; i < last; i++)
            mg_conn_printf(s->conn, "RCPT TO:<%s>\r\n", s->rcpts[i]);
    }
    if (is_pipelining || s->step == STEP_DATA)
        mg_conn_write_str(s->conn, "DATA\r\n");
    mg_conn_uncork(s->conn);
}

static void send_message(struct session *s)
{
    struct load *l = s->load;
    l->msg_data++;
    l->bytes += bench_message_send(s->conn, "smtp_load", l->opt.msg.from, s->rcpts[0],
                                   s->msg_index, l->body, l->body_len);
}

/* Ready for MAIL FROM: the set-up is over. */
static void session_ready(struct session *s)
{
    bench_stats_add(&s->load->setup, bench_seconds(s->setup_start_ns, bench_now_ns()));
    start_message(s);
}

/* After the transaction: the next one, or a new connection for it. */
static void transaction_over(struct session *s, bool is_ok)
{
    end_message(s, is_ok);
    if (s->load->opt.is_conn_per_message)
        session_quit(s, true);
    else
        start_message(s);
}

static void note_extension(struct session *s, const char *text, size_t len)
{
    /* "250-PIPELINING", "250 AUTH PLAIN LOGIN" */
    const char *kw = text + 4;
    size_t kwlen = len - 4;
    size_t word = strcspn(kw, " ");
    if (word > kwlen)
        word = kwlen;
    if (word == 10 && strncasecmp(kw, "PIPELINING", 10) == 0)
        s->has_pipelining = true;
    else if (word == 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
        s->has_starttls = true;
    else if (word == 4 && strncasecmp(kw, "AUTH", 4) == 0) {
        for (size_t i = 4; i + 6 <= kwlen; i++) {
            if (kw[i] == ' ' && strncasecmp(kw + i + 1, "PLAIN", 5) == 0 &&
                (i + 6 == kwlen || kw[i + 6] == ' '))
                s->has_auth_plain = true;
        }
    }
}

static void after_ehlo(struct session *s)
{
    struct load *l = s->load;
    if (l->opt.mode == MODE_STARTTLS && !s->is_tls_on) {
        if (!s->has_starttls) {
            static const char msg[] = "STARTTLS not offered";
            setup_failed(s, "EHLO", 0, msg, sizeof(msg) - 1);
            return;
        }
        s->step = STEP_STARTTLS;
        mg_conn_write_str(s->conn, "STARTTLS\r\n");
        return;
    }
    if (l->auth_plain != NULL) {
        /* Tried even when not offered: the server's refusal is what gets
         * reported. */
        s->step = STEP_AUTH;
        mg_conn_write_str(s->conn, l->auth_plain);
        return;
    }
    session_ready(s);
}

static void on_reply(void *ctx, int code, bool is_last, const char *text, size_t len)
{
    struct session *s = ctx;
    struct load *l = s->load;
    if (s->conn == NULL || mg_conn_is_closing(s->conn))
        return;
    if (s->step == STEP_EHLO && code == 250 && len > 4)
        note_extension(s, text, len);
    if (!is_last)
        return;
    if (code == 421 && s->step != STEP_QUIT) {
        /* The server is going away, whatever we asked. */
        if (s->step < STEP_MAIL) {
            setup_failed(s, "set-up", code, text, len);
            return;
        }
        note_error(l, "transaction", code, text, len);
        end_message(s, false);
        session_quit(s, false);
        return;
    }
    switch (s->step) {
    case STEP_CONNECT:
    case STEP_GREETING:
        if (code != 220) {
            setup_failed(s, "greeting", code, text, len);
            return;
        }
        send_ehlo(s);
        return;
    case STEP_EHLO:
        if (code != 250) {
            setup_failed(s, "EHLO", code, text, len);
            return;
        }
        after_ehlo(s);
        return;
    case STEP_STARTTLS:
        if (code != 220) {
            setup_failed(s, "STARTTLS", code, text, len);
            return;
        }
        s->step = STEP_TLS;
        s->is_tls_on = true;
        /* EHLO again once the handshake is done (on_tls_ready). */
        mg_conn_start_tls_client(s->conn, l->tls, l->opt.cli.host, l->opt.cli.timeout_ms);
        return;
    case STEP_TLS:
        setup_failed(s, "STARTTLS", code, text, len);
        return;
    case STEP_AUTH:
        if (code != 235) {
            setup_failed(s, "AUTH", code, text, len);
            return;
        }
        session_ready(s);
        return;
    case STEP_MAIL:
        if (code != 250) {
            note_error(l, "MAIL", code, text, len);
            s->is_failed = true;
        }
        s->step = STEP_RCPT;
        if (!(s->has_pipelining && !l->opt.msg.no_pipelining)) {
            if (s->is_failed) {
                s->step = STEP_RSET;
                mg_conn_write_str(s->conn, "RSET\r\n");
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
            note_error(l, "RCPT", code, text, len);
            l->rcpt_failed++;
        }
        if (s->rcpt_replies < s->n_rcpts) {
            if (!(s->has_pipelining && !l->opt.msg.no_pipelining))
                send_transaction(s);
            return;
        }
        s->step = STEP_DATA;
        if (!(s->has_pipelining && !l->opt.msg.no_pipelining)) {
            if (s->rcpt_accepted == 0 || s->is_failed) {
                s->is_failed = true;
                s->step = STEP_RSET;
                mg_conn_write_str(s->conn, "RSET\r\n");
                return;
            }
            send_transaction(s);
        }
        return;
    case STEP_DATA:
        if (code != 354) {
            /* Pipelined DATA refused (no valid recipient): the message is
             * over, but the server may still hold the transaction that
             * MAIL opened. */
            note_error(l, "DATA", code, text, len);
            s->is_failed = true;
            s->step = STEP_RSET;
            mg_conn_write_str(s->conn, "RSET\r\n");
            return;
        }
        s->step = STEP_DOT;
        send_message(s);
        return;
    case STEP_DOT:
        if (code < 200 || code > 299) {
            note_error(l, "end of data", code, text, len);
            s->is_failed = true;
        }
        /* Accepted for fewer recipients than asked still counts as
         * failed: the run wants every recipient. */
        transaction_over(s, !s->is_failed && s->rcpt_accepted == s->n_rcpts);
        return;
    case STEP_RSET:
        if (code != 250)
            note_error(l, "RSET", code, text, len);
        transaction_over(s, false);
        return;
    case STEP_QUIT:
        mg_conn_close(s->conn);
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
        return; /* on_close reports it */
    s->step = STEP_GREETING;
    if (s->load->opt.mode == MODE_TLS) {
        s->is_tls_on = true;
        const struct bench_cli *cli = &s->load->opt.cli;
        mg_conn_start_tls_client(conn, s->load->tls, cli->host, cli->timeout_ms);
    }
}

static void on_tls_ready(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    if (s->step == STEP_TLS)
        send_ehlo(s);
}

static void on_timeout(struct mg_conn *conn)
{
    mg_conn_abort(conn, "timeout: the server did not answer");
}

static void on_close(struct mg_conn *conn, const char *reason)
{
    struct session *s = mg_conn_data(conn);
    struct load *l = s->load;
    s->conn = NULL;
    if (s->step != STEP_QUIT) {
        /* The connection ended under us. */
        const char *r = reason != NULL ? reason : "connection closed";
        if (s->step < STEP_MAIL) {
            setup_failed(s, "connection", 0, r, strlen(r));
        } else {
            note_error(l, "connection", 0, r, strlen(r));
            end_message(s, false);
        }
    }
    if (has_work(s) && l->setup_failures < l->opt.max_setup_failures) {
        session_connect(s);
        return;
    }
    l->sessions_open--;
}

static const struct mg_conn_callbacks session_callbacks = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_tls_ready = on_tls_ready,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

static void session_connect(struct session *s)
{
    struct load *l = s->load;
    s->step = STEP_CONNECT;
    s->is_tls_on = false;
    s->setup_start_ns = bench_now_ns();
    l->connections++;
    s->conn = mg_conn_connect_tcp(l->loop, (const struct sockaddr *)&l->addr, l->opt.cli.timeout_ms,
                                  &session_callbacks, s);
}

static void print_errors(const struct load *l, FILE *out)
{
    for (unsigned i = 0; i < l->n_error_kinds; i++) {
        const struct error_kind *e = &l->errors[i];
        fprintf(out, "  error      %llu x %s: %s\n", (unsigned long long)e->count, e->key, e->text);
    }
    if (l->errors_other > 0)
        fprintf(out, "  error      %llu more of other kinds\n", (unsigned long long)l->errors_other);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_init("smtp_load");
    mg_log_set_level(MG_LOG_ERROR);
    struct load l = { 0 };
    parse_options(&l, argc, argv);
    l.body = bench_message_body(l.opt.msg.size, &l.body_len);
    l.loop = uv_default_loop();

    struct session *sessions = mg_calloc(l.opt.msg.sessions, sizeof(*sessions));
    double cpu0 = bench_cpu_seconds();
    l.start_ns = bench_now_ns();
    l.end_ns = l.start_ns;
    for (unsigned i = 0; i < l.opt.msg.sessions; i++) {
        struct session *s = &sessions[i];
        s->load = &l;
        s->quota = l.opt.per_session > 0 ? l.opt.per_session : UINT64_MAX;
        l.sessions_open++;
        session_connect(s);
    }
    uv_run(l.loop, UV_RUN_DEFAULT);
    double cpu = bench_cpu_seconds() - cpu0;

    double secs = bench_seconds(l.start_ns, l.end_ns);
    double rate = secs > 0 ? (double)l.msg_ok / secs : 0;
    double p50 = bench_stats_percentile(&l.latency, 50) * 1000;
    double p90 = bench_stats_percentile(&l.latency, 90) * 1000;
    double p99 = bench_stats_percentile(&l.latency, 99) * 1000;
    double pmax = bench_stats_percentile(&l.latency, 100) * 1000;
    double s50 = bench_stats_percentile(&l.setup, 50) * 1000;
    double s99 = bench_stats_percentile(&l.setup, 99) * 1000;
    uint64_t unsent = l.opt.msg.messages - l.msg_ok - l.msg_failed;
    uint64_t errors = l.errors_other;
    for (unsigned i = 0; i < l.n_error_kinds; i++)
        errors += l.errors[i].count;
    if (!l.opt.cli.is_quiet) {
        printf("smtp_load: %s (%s%s), %u sessions, %llu messages of %.0f bytes, "
               "%u recipient(s) each, %s\n",
               l.target, mode_names[l.opt.mode], l.auth_plain != NULL ? ", AUTH PLAIN" : "",
               l.opt.msg.sessions, (unsigned long long)l.opt.msg.messages,
               l.msg_data ? (double)l.bytes / (double)l.msg_data : (double)l.opt.msg.size,
               l.opt.msg.rcpts_per_message,
               l.opt.is_conn_per_message ? "one connection per message" : "connections reused");
        printf("  messages   %llu sent, %llu failed, %llu unsent (recipients: %llu ok, "
               "%llu refused)\n",
               (unsigned long long)l.msg_ok, (unsigned long long)l.msg_failed,
               (unsigned long long)unsent, (unsigned long long)l.rcpt_ok,
               (unsigned long long)l.rcpt_failed);
        printf("  elapsed    %.3f s\n", secs);
        printf("  rate       %.1f messages/s\n", rate);
        printf("  latency    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (MAIL to the "
               "reply after the dot)\n",
               p50, p90, p99, pmax);
        printf("  sessions   %llu connections (%llu failed to set up); set-up p50 %.2f ms, "
               "p99 %.2f ms\n",
               (unsigned long long)l.connections, (unsigned long long)l.setup_failures, s50, s99);
        printf("  client CPU %.2f s\n", cpu);
    }
    /* Errors are never hidden, not even with --quiet. */
    print_errors(&l, l.opt.cli.is_quiet ? stderr : stdout);
    printf("RESULT messages=%llu sent=%llu failed=%llu unsent=%llu seconds=%.3f rate=%.1f "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f connections=%llu "
           "setup_p50_ms=%.3f setup_p99_ms=%.3f errors=%llu client_cpu=%.2f\n",
           (unsigned long long)l.opt.msg.messages, (unsigned long long)l.msg_ok,
           (unsigned long long)l.msg_failed, (unsigned long long)unsent, secs, rate, p50, p90,
           p99, pmax, (unsigned long long)l.connections, s50, s99, (unsigned long long)errors,
           cpu);
    bool is_all_sent = l.msg_ok == l.opt.msg.messages;
    bench_stats_free(&l.latency);
    bench_stats_free(&l.setup);
    free(sessions);
    free(l.body);
    free(l.auth_plain);
    free(l.opt.auth_user);
    free(l.opt.auth_password);
    mg_tls_context_unref(&l.tls);
    uv_loop_close(l.loop);
    return is_all_sent ? 0 : 1;
}
