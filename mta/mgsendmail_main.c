/* mgsendmail: the sendmail(8) interface for cron, scripts and local
 * programs. Installable as /usr/sbin/sendmail.
 *
 *   mgsendmail [-t] [-i] [-f sender] [-F "Full Name"] [recipient...] < message
 *
 * The message goes to mgsmtpd over its local submission socket ([mta]
 * submit_socket); mgsmtpd adds Received, Message-ID and Date, and knows
 * the sending user from the socket, not from anything we say. Exit codes
 * are sendmail's (sysexits.h): 0 queued, 64 usage, 65 bad message, 67 a
 * recipient refused, 75 try again later (mgsmtpd not running). */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <uv.h>

#include "common/address.h"
#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/settings.h"
#include "lmtp/smtp_client.h"

/* A message read from standard input is held in memory: keep it sane. */
#define SENDMAIL_MESSAGE_MAX (64u * 1024 * 1024)
#define SENDMAIL_RCPTS_MAX 10000
#define SENDMAIL_CONNECT_TIMEOUT_MS 10000
/* mgsmtpd may take a while to answer (a recipient check waits up to the
 * auth service's timeout, the end of data for an fsync): RFC 5321
 * section 4.5.3.2 has clients wait minutes, not seconds. */
#define SENDMAIL_REPLY_TIMEOUT_MS (5 * 60 * 1000)

struct sendmail {
    uv_loop_t *loop;
    struct mg_conn *conn;
    struct smtp_client *client;
    struct smtp_client_message msg;
    struct mg_buf content;
    size_t sent;
    int exit_code;
    char reason[512];
    bool is_done;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mgsendmail [-t] [-i] [-f sender] [-F name] [-C FILE] [recipient...] < message\n"
            "\n"
            "  -t         take recipients from the To, Cc and Bcc header fields\n"
            "  -i, -oi    a line with a single dot does not end the message\n"
            "  -f ADDR, -r ADDR\n"
            "             envelope sender (default: your user name at this host)\n"
            "  -F NAME    your full name, for a From field that is missing\n"
            "  -C FILE    Mailgenic configuration (default %s)\n"
            "  --help     this text\n"
            "Other sendmail options are accepted and ignored: -o..., -B TYPE, -N DSN, -R RET,\n"
            "-X FILE, -h HOPS, -v, -m, -bm.\n",
            MG_DEFAULT_CONFIG_FILE);
}

static long read_content(void *source, struct mg_buf *out, size_t max)
{
    struct sendmail *sm = source;
    size_t left = sm->content.len - sm->sent;
    size_t n = left < max ? left : max;
    mg_buf_append(out, sm->content.data + sm->sent, n);
    sm->sent += n;
    return (long)n;
}

static void finish(struct sendmail *sm, int code, const char *reason)
{
    if (sm->is_done)
        return;
    sm->is_done = true;
    sm->exit_code = code;
    if (reason != NULL)
        snprintf(sm->reason, sizeof(sm->reason), "%s", reason);
    if (sm->client != NULL)
        smtp_client_quit(sm->client);
}

static void on_ready(struct smtp_client *client, const struct smtp_reply *failure, const char *reason,
                     void *ctx)
{
    struct sendmail *sm = ctx;
    if (failure != NULL || reason != NULL) {
        finish(sm, EX_TEMPFAIL, reason != NULL ? reason : failure->text);
        return;
    }
    smtp_client_send(client, &sm->msg);
}

static void on_message_done(struct smtp_client *client, struct smtp_client_message *msg,
                            const struct smtp_reply *mail_reply, void *ctx)
{
    (void)client;
    struct sendmail *sm = ctx;
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        const struct smtp_client_rcpt *r = &msg->rcpts[i];
        if (r->result.code >= 200 && r->result.code < 300)
            continue;
        char why[512];
        snprintf(why, sizeof(why), "%s: %u %s", r->address, r->result.code,
                 r->result.text != NULL ? r->result.text : "");
        finish(sm, r->result.code >= 500 ? EX_NOUSER : EX_TEMPFAIL, why);
        return;
    }
    if (mail_reply != NULL && (mail_reply->code < 200 || mail_reply->code >= 300)) {
        finish(sm, mail_reply->code >= 500 ? EX_DATAERR : EX_TEMPFAIL, mail_reply->text);
        return;
    }
    finish(sm, EX_OK, NULL);
}

static void on_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    (void)client;
    struct sendmail *sm = ctx;
    /* The engine is done with the connection: free it now (it waits for
     * its own stack to unwind), so that finish() does not QUIT on it. */
    smtp_client_free(&sm->client);
    finish(sm, EX_TEMPFAIL, reason);
}

static const struct smtp_client_callbacks client_cb = {
    .ready = on_ready,
    .message_done = on_message_done,
    .failed = on_failed,
};

static void io_write(void *io_ctx, const void *data, size_t len)
{
    struct sendmail *sm = io_ctx;
    if (sm->conn != NULL)
        mg_conn_write(sm->conn, data, len);
}

static void io_nothing(void *io_ctx)
{
    (void)io_ctx;
}

static void io_close(void *io_ctx)
{
    struct sendmail *sm = io_ctx;
    if (sm->conn != NULL)
        mg_conn_close(sm->conn);
}

static const struct smtp_client_io client_io = {
    .write = io_write,
    .start_tls = io_nothing,
    .close = io_close,
};

static void conn_on_connect(struct mg_conn *conn, int status)
{
    struct sendmail *sm = mg_conn_data(conn);
    if (status != 0)
        return;
    mg_conn_set_idle_timeout(conn, SENDMAIL_REPLY_TIMEOUT_MS);
    struct smtp_client_settings cs = { .protocol = SMTP_PROTOCOL_SMTP, .helo_name = "localhost" };
    sm->client = smtp_client_new(&cs, &client_io, sm, &client_cb, sm);
}

static void conn_on_read(struct mg_conn *conn)
{
    struct sendmail *sm = mg_conn_data(conn);
    if (sm->client != NULL)
        smtp_client_feed(sm->client, mg_conn_input(conn));
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct sendmail *sm = mg_conn_data(conn);
    sm->conn = NULL;
    if (sm->client != NULL) {
        smtp_client_connection_lost(sm->client, reason != NULL ? reason : "closed");
        smtp_client_free(&sm->client);
    }
    finish(sm, EX_TEMPFAIL, reason != NULL ? reason : "mgsmtpd closed the connection");
}

static const struct mg_conn_callbacks conn_cb = {
    .on_connect = conn_on_connect,
    .on_read = conn_on_read,
    .on_close = conn_on_close,
};

/* Reads the message: lines to CR LF, a lone "." ends it unless -i. */
static int read_message(bool dot_ends, struct mg_buf *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (dot_ends && len == 1 && line[0] == '.')
            break;
        if (out->len + len + 2 > SENDMAIL_MESSAGE_MAX) {
            free(line);
            return -1;
        }
        mg_buf_append(out, line, len);
        mg_buf_append(out, "\r\n", 2);
    }
    free(line);
    return 0;
}

/* The end of the header: the offset just after the empty line, or the
 * whole message when there is none. */
static size_t header_end(const struct mg_buf *m)
{
    if (m->len >= 2 && memcmp(m->data, "\r\n", 2) == 0)
        return 2;
    const char *e = memmem(m->data, m->len, "\r\n\r\n", 4);
    return e != NULL ? (size_t)(e - m->data) + 4 : m->len;
}

static void rcpt_add(const char ***rcpts, size_t *n, const char *address)
{
    if (*n >= SENDMAIL_RCPTS_MAX)
        return;
    *rcpts = mg_reallocarray(*rcpts, *n + 1, sizeof(**rcpts));
    (*rcpts)[(*n)++] = address;
}

/* The addresses of an address-list field value (RFC 5322 section 3.4):
 * "Name <a@b>", bare "a@b", quoted names with commas, comments, and
 * groups ("team: a@b, c@d;"). Commas inside quotes, angle brackets and
 * comments do not separate. */
static void parse_address_list(const char *v, size_t len, struct mg_arena *arena, const char ***rcpts,
                               size_t *n)
{
    struct mg_buf bare = MG_BUF_INIT;   /* the current mailbox without comments and names */
    struct mg_buf angle = MG_BUF_INIT;  /* what was inside <> */
    bool in_quote = false, in_angle = false, has_angle = false;
    int comment = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? v[i] : ',';
        if (in_quote) {
            if (ch == '\\' && i + 1 < len)
                i++;
            else if (ch == '"')
                in_quote = false;
            continue;   /* a display name: not part of the address */
        }
        if (comment > 0) {
            if (ch == '\\' && i + 1 < len)
                i++;
            else if (ch == '(')
                comment++;
            else if (ch == ')')
                comment--;
            continue;
        }
        if (in_angle) {
            if (ch == '>')
                in_angle = false;
            else if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
                mg_buf_append_byte(&angle, ch);
            continue;
        }
        switch (ch) {
        case '"':
            in_quote = true;
            mg_buf_reset(&bare);  /* a quoted word is a name, not an address */
            break;
        case '(':
            comment = 1;
            break;
        case '<':
            in_angle = true;
            has_angle = true;
            mg_buf_reset(&angle);
            break;
        case ':':
            mg_buf_reset(&bare);  /* "group:" */
            break;
        case ',':
        case ';': {
            const struct mg_buf *a = has_angle ? &angle : &bare;
            if (a->len > 0)
                rcpt_add(rcpts, n, mg_arena_strndup(arena, a->data, a->len));
            mg_buf_reset(&bare);
            mg_buf_reset(&angle);
            has_angle = false;
            break;
        }
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            /* "John Smith <a@b>": words before <> are a name; a bare
             * address has no spaces. */
            if (bare.len > 0 && !has_angle && strchr(mg_buf_cstr(&bare), '@') == NULL)
                mg_buf_reset(&bare);
            break;
        default:
            mg_buf_append_byte(&bare, ch);
            break;
        }
    }
    mg_buf_free(&bare);
    mg_buf_free(&angle);
}

/* Walks the header: with collect (-t), the addresses of To, Cc and Bcc;
 * Bcc fields are removed in any case (Bcc recipients must not see each
 * other, nor the others them). */
static void header_recipients(struct mg_buf *m, bool collect, struct mg_arena *arena,
                              const char ***rcpts, size_t *n)
{
    size_t hend = header_end(m);
    size_t pos = 0;
    while (pos < hend) {
        const char *line = m->data + pos;
        /* A field runs until a line that does not start with space/tab. */
        size_t end = pos;
        do {
            const char *nl = memmem(m->data + end, hend - end, "\r\n", 2);
            end = nl != NULL ? (size_t)(nl - m->data) + 2 : hend;
        } while (end < hend && (m->data[end] == ' ' || m->data[end] == '\t'));
        size_t flen = end - pos;
        bool is_bcc = mg_ascii_has_prefix(line, flen, "bcc:");
        size_t name_len = is_bcc                                ? 4
                          : mg_ascii_has_prefix(line, flen, "to:") ? 3
                          : mg_ascii_has_prefix(line, flen, "cc:") ? 3
                                                                   : 0;
        if (collect && name_len > 0)
            parse_address_list(line + name_len, flen - name_len, arena, rcpts, n);
        if (is_bcc) {
            memmove(m->data + pos, m->data + end, m->len - end);
            m->len -= flen;
            m->data[m->len] = '\0';
            hend -= flen;
            continue;
        }
        pos = end;
    }
}

/* A display name as an atom list, or quoted when it holds specials
 * (RFC 5322 section 3.2.3): "Doe, John" needs its quotes. Line breaks
 * and other control characters are dropped. */
static void append_display_name(struct mg_buf *out, const char *name)
{
    bool needs_quotes = strpbrk(name, "()<>[]:;@\\,.\"") != NULL;
    if (needs_quotes)
        mg_buf_append_byte(out, '"');
    for (const char *p = name; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            continue;
        if (needs_quotes && (*p == '"' || *p == '\\'))
            mg_buf_append_byte(out, '\\');
        mg_buf_append_byte(out, *p);
    }
    if (needs_quotes)
        mg_buf_append_byte(out, '"');
}

static bool has_field(const struct mg_buf *m, const char *name)
{
    size_t hend = header_end(m);
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl <= hend; i++) {
        if ((i == 0 || m->data[i - 1] == '\n') && mg_ascii_has_prefix(m->data + i, hend - i, name))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *config = MG_DEFAULT_CONFIG_FILE;
    const char *sender = NULL, *fullname = NULL;
    bool from_header = false, dot_ends = true;
    /* sendmail's options are a zoo: take the ones that matter, accept the
     * rest silently as Postfix's sendmail does. */
    /* -h is sendmail's hop count (with a value), so help is --help alone. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EX_OK;
        }
    }
    int c;
    opterr = 0;
    while ((c = getopt(argc, argv, "tif:r:F:C:o:B:N:R:X:h:vmb:")) != -1) {
        switch (c) {
        case 't': from_header = true; break;
        case 'i': dot_ends = false; break;
        case 'f':
        case 'r': sender = optarg; break;
        case 'F': fullname = optarg; break;
        case 'C': config = optarg; break;
        case 'o':
            if (strcmp(optarg, "i") == 0)
                dot_ends = false;
            break;
        case 'b':
            if (strcmp(optarg, "m") != 0) {
                fprintf(stderr, "mgsendmail: -b%s is not supported (use mgqueue for the queue)\n", optarg);
                return EX_USAGE;
            }
            break;
        case '?':
            if (optopt == 'f' || optopt == 'F' || optopt == 'C') {
                usage(stderr);
                return EX_USAGE;
            }
            break;
        default: break;
        }
    }
    mg_log_init("mgsendmail");
    mg_log_set_level(MG_LOG_ERROR);
    struct mg_settings *settings = NULL;
    char *error = NULL;
    if (mg_settings_load(config, &settings, &error) != 0) {
        fprintf(stderr, "mgsendmail: %s\n", error);
        free(error);
        return EX_CONFIG;
    }
    struct passwd *pw = getpwuid(getuid());
    char self[512];
    snprintf(self, sizeof(self), "%s@%s", pw != NULL ? pw->pw_name : "nobody", settings->hostname);

    struct sendmail sm = { 0 };
    sm.exit_code = EX_TEMPFAIL;
    if (read_message(dot_ends, &sm.content) < 0) {
        fprintf(stderr, "mgsendmail: message too large\n");
        mg_buf_free(&sm.content);
        mg_settings_free(&settings);
        return EX_DATAERR;
    }
    struct mg_arena *arena = mg_arena_new(4096);
    const char **rcpts = NULL;
    size_t n = 0;
    for (int i = optind; i < argc && n < SENDMAIL_RCPTS_MAX; i++) {
        rcpts = mg_reallocarray(rcpts, n + 1, sizeof(*rcpts));
        rcpts[n++] = argv[i];
    }
    header_recipients(&sm.content, from_header, arena, &rcpts, &n);
    if (n == 0) {
        fprintf(stderr, "mgsendmail: no recipients\n");
        free(rcpts);
        mg_arena_free(&arena);
        mg_buf_free(&sm.content);
        mg_settings_free(&settings);
        return EX_USAGE;
    }
    /* Recipients without a domain are local users of this host. */
    for (size_t i = 0; i < n; i++) {
        if (strchr(rcpts[i], '@') == NULL)
            rcpts[i] = mg_arena_printf(arena, "%s@%s", rcpts[i], settings->hostname);
    }
    if (!has_field(&sm.content, "from:")) {
        struct mg_buf with = MG_BUF_INIT;
        if (fullname != NULL) {
            mg_buf_append_str(&with, "From: ");
            append_display_name(&with, fullname);
            mg_buf_printf(&with, " <%s>\r\n", sender != NULL ? sender : self);
        } else
            mg_buf_printf(&with, "From: %s\r\n", sender != NULL ? sender : self);
        mg_buf_append(&with, sm.content.data != NULL ? sm.content.data : "", sm.content.len);
        mg_buf_free(&sm.content);
        sm.content = with;
    }
    sm.msg.mail_from = sender != NULL ? sender : self;
    sm.msg.size = sm.content.len;
    sm.msg.rcpts = mg_calloc(n, sizeof(*sm.msg.rcpts));
    sm.msg.rcpt_count = n;
    for (size_t i = 0; i < n; i++)
        sm.msg.rcpts[i].address = rcpts[i];
    sm.msg.read_content = read_content;
    sm.msg.source = &sm;
    for (size_t i = 0; i < sm.content.len; i++) {
        if ((unsigned char)sm.content.data[i] >= 0x80) {
            sm.msg.body = SMTP_BODY_8BITMIME;
            break;
        }
    }

    sm.loop = uv_default_loop();
    sm.conn = mg_conn_connect_unix(sm.loop, settings->mta.submit_socket, SENDMAIL_CONNECT_TIMEOUT_MS,
                                   &conn_cb, &sm);
    uv_run(sm.loop, UV_RUN_DEFAULT);
    if (sm.exit_code != EX_OK)
        fprintf(stderr, "mgsendmail: %s\n", sm.reason[0] ? sm.reason : "failed");
    free(sm.msg.rcpts);
    free(rcpts);
    mg_arena_free(&arena);
    mg_buf_free(&sm.content);
    mg_settings_free(&settings);
    return sm.exit_code;
}
