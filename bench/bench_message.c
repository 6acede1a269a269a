#include "bench/bench_message.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_common.h"

#include "common/buf.h"
#include "common/conn.h"

/* What the headers of bench_message_send come to, about. */
#define HEADER_ESTIMATE 330

bool bench_message_option(struct bench_message_options *o, const char *tool, int ch,
                          const char *arg)
{
    uint64_t v;
    switch (ch) {
    case 'c':
        if (bench_parse_u64(arg, 1, 10000, &v) < 0)
            bench_die(2, "%s: --sessions: a number from 1 to 10000", tool);
        o->sessions = (unsigned)v;
        return true;
    case 'n':
        if (bench_parse_u64(arg, 1, UINT32_MAX, &o->messages) < 0)
            bench_die(2, "%s: --messages: a positive number", tool);
        o->has_messages = true;
        return true;
    case 's':
        if (bench_parse_u64(arg, 1, 1024 * 1024 * 1024, &o->size) < 0)
            bench_die(2, "%s: --size: bytes, at most 1 GiB", tool);
        return true;
    case 'R':
        if (bench_parse_range(arg, &o->range_lo, &o->range_hi) < 0)
            bench_die(2, "%s: --range: A-B with A <= B", tool);
        return true;
    case 'k':
        if (bench_parse_u64(arg, 1, BENCH_MESSAGE_RCPTS_MAX, &v) < 0)
            bench_die(2, "%s: --rcpts-per-message: 1 to %d", tool, BENCH_MESSAGE_RCPTS_MAX);
        o->rcpts_per_message = (unsigned)v;
        return true;
    case 'r': o->rcpt_pattern = arg; return true;
    case 'f': o->from = arg; return true;
    case 'P': o->no_pipelining = true; return true;
    default: return false;
    }
}

void bench_message_check(const struct bench_message_options *o, const char *tool)
{
    char probe[BENCH_MESSAGE_ADDR_MAX];
    if (bench_format_pattern(probe, sizeof(probe), o->rcpt_pattern, o->range_hi) < 0)
        bench_die(2, "%s: --rcpt: at most one %%d, and short", tool);
}

void bench_message_rcpts(const struct bench_message_options *o, uint64_t *cursor,
                         char (*rcpts)[BENCH_MESSAGE_ADDR_MAX])
{
    unsigned span = o->range_hi - o->range_lo + 1;
    for (unsigned i = 0; i < o->rcpts_per_message; i++) {
        unsigned n = o->range_lo + (unsigned)((*cursor)++ % span);
        bench_format_pattern(rcpts[i], BENCH_MESSAGE_ADDR_MAX, o->rcpt_pattern, n);
    }
}

char *bench_message_body(uint64_t size, size_t *len_r)
{
    static const char words[] =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
        "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. ";
    size_t want = size > HEADER_ESTIMATE ? size - HEADER_ESTIMATE : 2;
    struct mg_buf b = MG_BUF_INIT;
    size_t w = 0;
    while (b.len < want) {
        size_t line_start = b.len;
        while (b.len - line_start < 70 && b.len < want) {
            mg_buf_append_byte(&b, words[w]);
            w = (w + 1) % (sizeof(words) - 1);
        }
        /* A leading dot would need dot-stuffing, a leading space would
         * make the line a continuation. */
        if (b.data[line_start] == '.' || b.data[line_start] == ' ')
            b.data[line_start] = 'x';
        mg_buf_append_str(&b, "\r\n");
    }
    return mg_buf_steal(&b, len_r);
}

size_t bench_message_send(struct mg_conn *conn, const char *tool, const char *from,
                          const char *to, uint64_t index, const char *body, size_t body_len)
{
    char domain[64];
    snprintf(domain, sizeof(domain), "%s.test", tool);
    for (char *p = domain; *p != '\0'; p++) {
        if (*p == '_')
            *p = '-';
    }
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    struct mg_buf h = MG_BUF_INIT;
    mg_buf_printf(&h,
                  "From: Load Generator <%s>\r\n"
                  "To: <%s>\r\n"
                  "Subject: %s message %llu\r\n"
                  "Date: %s\r\n"
                  "Message-ID: <%llu.%lld.%d@%s>\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=us-ascii\r\n"
                  "Content-Transfer-Encoding: 7bit\r\n"
                  "\r\n",
                  from, to, tool, (unsigned long long)index, date, (unsigned long long)index,
                  (long long)now, (int)getpid(), domain);
    mg_conn_cork(conn);
    mg_conn_write(conn, h.data, h.len);
    mg_conn_write(conn, body, body_len);
    mg_conn_write_str(conn, ".\r\n");
    mg_conn_uncork(conn);
    size_t bytes = h.len + body_len;
    mg_buf_free(&h);
    return bytes;
}
