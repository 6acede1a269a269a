#include "bench/bench_message.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/conn.h"

/* What the headers of bench_message_send come to, about. */
#define HEADER_ESTIMATE 330

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
