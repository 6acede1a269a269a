/* Delivery status notifications (RFC 3464, RFC 3461): bounces, delay
 * notices and success reports, sent to the envelope sender as
 * multipart/report messages. Never to the null sender; a bounce that
 * fails itself goes to the postmaster once, then is dropped. */
#include "mta/queue/queue_private.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/unique_id.h"
#include "common/utf8.h"

/* Whole messages up to this size go back with a failure report;
 * larger ones only with their header. */
#define BOUNCE_FULL_MAX (1024 * 1024)
/* The header part returned at most. */
#define BOUNCE_HEADER_MAX (256 * 1024)

enum { NOTIFY_NEVER = 1, NOTIFY_SUCCESS = 2, NOTIFY_FAILURE = 4, NOTIFY_DELAY = 8 };

static bool wants_notice(unsigned notify, enum bounce_action action)
{
    if (notify & NOTIFY_NEVER)
        return false;
    switch (action) {
    case BOUNCE_FAILED: return notify == 0 || (notify & NOTIFY_FAILURE);
    case BOUNCE_DELAYED: return notify == 0 || (notify & NOTIFY_DELAY);
    case BOUNCE_DELIVERED: return (notify & NOTIFY_SUCCESS) != 0;
    }
    return false;
}

static bool is_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x80)
            return false;
    }
    return true;
}

/* "rfc822;user@example.com", or utf-8 for internationalised addresses
 * (RFC 6533). */
static void address_field(struct mg_buf *out, const char *name, const char *address)
{
    mg_buf_printf(out, "%s: %s; %s\r\n", name, is_ascii(address) ? "rfc822" : "utf-8", address);
}

/* Reads up to max bytes of the original message; with header_only stops
 * at the blank line. */
static void read_original(const struct queue_msg *m, size_t max, bool header_only, struct mg_buf *out)
{
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t want = m->content_len < max ? (size_t)m->content_len : max;
    mg_buf_reserve(out, want);
    ssize_t got = pread(fd, out->data + out->len, want, (off_t)m->content_off);
    close(fd);
    if (got <= 0)
        return;
    size_t start = out->len;
    out->len += (size_t)got;
    out->data[out->len] = '\0';
    if (header_only) {
        /* memmem: the content may hold NUL bytes before its end. */
        const char *end = memmem(out->data + start, out->len - start, "\r\n\r\n", 4);
        if (end != NULL)
            mg_buf_truncate(out, (size_t)(end - out->data) + 4);
    }
}

static const char *action_name(enum bounce_action action, bool relayed)
{
    switch (action) {
    case BOUNCE_FAILED: return "failed";
    case BOUNCE_DELAYED: return "delayed";
    case BOUNCE_DELIVERED: return relayed ? "relayed" : "delivered";
    }
    return "failed";
}

struct notice_ctx {
    struct queue *queue;
    char id[MG_UNIQUE_ID_LEN + 1];
    void (*done)(struct queue *queue, const char *id);
};

static void notice_committed(int status, const char *id, void *ctx)
{
    struct notice_ctx *nc = ctx;
    if (status != 0)
        mg_log_error("bounce", "%s cannot queue the notice", nc->id);
    (void)id;
    if (nc->done != NULL)
        nc->done(nc->queue, nc->id);
    free(nc);
}

bool bounce_send(struct queue *queue, struct queue_msg *msg, const size_t *rcpt_idx, size_t n,
                 enum bounce_action action, void (*done)(struct queue *queue, const char *id))
{
    const char *host = queue->settings->hostname;
    const char *to = msg->env.from;
    /* The header's To: an address with a domain even for the postmaster,
     * whose envelope address is the bare "postmaster" (the queue resolves
     * it as RCPT TO:<postmaster> is: the host's mail domain). */
    char to_field[1024];
    if (msg->env.is_bounce) {
        /* A notice that failed: the postmaster hears of it, once. The
         * notice about a notice is marked, and its failure ends here
         * whatever address the postmaster's mail went to: no loop. */
        if (action != BOUNCE_FAILED)
            return false;
        if (msg->env.is_double_bounce) {
            mg_log_warning("bounce", "%s double bounce dropped", msg->env.id);
            return false;
        }
        to = "postmaster";
        snprintf(to_field, sizeof(to_field), "postmaster@%s", host);
    } else if (to[0] == '\0') {
        return false; /* never a notice to the null sender */
    } else {
        snprintf(to_field, sizeof(to_field), "%s", to);
    }
    size_t *chosen = mg_calloc(n ? n : 1, sizeof(size_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (msg->env.is_bounce || wants_notice(msg->rcpts[rcpt_idx[i]].notify, action))
            chosen[k++] = rcpt_idx[i];
    }
    if (k == 0) {
        free(chosen);
        return false;
    }

    char date[MG_DATETIME_RFC5322_SIZE];
    mg_datetime_rfc5322(time(NULL), date);
    char boundary[96];
    snprintf(boundary, sizeof(boundary), "%s/%s", msg->env.id, host);
    struct mg_buf c = MG_BUF_INIT;
    const char *subject = action == BOUNCE_FAILED    ? "Undelivered Mail Returned to Sender"
                          : action == BOUNCE_DELAYED ? "Delayed Mail (still being retried)"
                                                     : "Successful Mail Delivery Report";
    mg_buf_printf(&c, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
    mg_buf_printf(&c, "To: %s\r\n", to_field);
    mg_buf_printf(&c, "Subject: %s\r\n", subject);
    mg_buf_printf(&c, "Date: %s\r\n", date);
    /* Its own ID: a message may cause several notices (one recipient
     * fails now, another later, a delay warning before). */
    char notice_id[MG_UNIQUE_ID_LEN + 1];
    mg_unique_id_new(notice_id);
    mg_buf_printf(&c, "Message-ID: <%s.%s.%s@%s>\r\n", notice_id, msg->env.id, action_name(action, false),
                  host);
    mg_buf_append_str(&c, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    mg_buf_printf(&c, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                      "\tboundary=\"%s\"\r\n\r\n", boundary);
    mg_buf_append_str(&c, "This is a MIME-encapsulated message.\r\n\r\n");

    /* Part 1: for people. */
    mg_buf_printf(&c, "--%s\r\nContent-Description: Notification\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n\r\n", boundary);
    mg_buf_printf(&c, "This is the mail system at host %s.\r\n\r\n", host);
    if (action == BOUNCE_FAILED)
        mg_buf_append_str(&c, "Your message could not be delivered to one or more recipients.\r\n"
                              "It is attached below.\r\n\r\n");
    else if (action == BOUNCE_DELAYED)
        mg_buf_append_str(&c, "Your message could not be delivered yet. It is still in the queue\r\n"
                              "and delivery will be tried again; you need not send it again.\r\n\r\n");
    else
        mg_buf_append_str(&c, "Your message was delivered to the recipients below, as you asked.\r\n\r\n");
    for (size_t i = 0; i < k; i++) {
        const struct queue_rcpt *r = &msg->rcpts[chosen[i]];
        mg_buf_printf(&c, "<%s>: %s\r\n", r->address, r->last_error != NULL ? r->last_error : "delivered");
    }
    mg_buf_append_str(&c, "\r\n");

    /* Part 2: for programs. */
    char arrival[MG_DATETIME_RFC5322_SIZE];
    mg_datetime_rfc5322(msg->env.arrival, arrival);
    mg_buf_printf(&c, "--%s\r\nContent-Description: Delivery report\r\n"
                      "Content-Type: message/delivery-status\r\n\r\n", boundary);
    mg_buf_printf(&c, "Reporting-MTA: dns; %s\r\nX-Mailgenic-Queue-ID: %s\r\n", host, msg->env.id);
    if (msg->env.envid != NULL)
        mg_buf_printf(&c, "Original-Envelope-Id: %s\r\n", msg->env.envid);
    mg_buf_printf(&c, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < k; i++) {
        const struct queue_rcpt *r = &msg->rcpts[chosen[i]];
        mg_buf_append_str(&c, "\r\n");
        address_field(&c, "Final-Recipient", r->address);
        if (r->orcpt != NULL) {
            /* ORCPT is kept as "type;address". */
            mg_buf_printf(&c, "Original-Recipient: %s\r\n", r->orcpt);
        }
        bool relayed = action == BOUNCE_DELIVERED && r->route == QUEUE_ROUTE_REMOTE;
        mg_buf_printf(&c, "Action: %s\r\n", action_name(action, relayed));
        const char *status = r->dsn[0] != '\0' && r->dsn[0] != '-' ? r->dsn
                             : action == BOUNCE_FAILED            ? "5.0.0"
                             : action == BOUNCE_DELAYED           ? "4.0.0"
                                                                  : "2.0.0";
        mg_buf_printf(&c, "Status: %s\r\n", status);
        /* Remote-MTA names a host (type "dns"); local deliveries went to
         * our own mail store over LMTP, which is not one. */
        if (r->last_relay != NULL && r->route == QUEUE_ROUTE_REMOTE)
            mg_buf_printf(&c, "Remote-MTA: dns; %s\r\n", r->last_relay);
        if (r->last_error != NULL)
            mg_buf_printf(&c, "Diagnostic-Code: smtp; %s\r\n", r->last_error);
        mg_buf_printf(&c, "Last-Attempt-Date: %s\r\n", date);
        if (action == BOUNCE_DELAYED) {
            char until[MG_DATETIME_RFC5322_SIZE];
            mg_datetime_rfc5322(msg->env.arrival + (time_t)(queue->settings->queue.lifetime_ms / 1000), until);
            mg_buf_printf(&c, "Will-Retry-Until: %s\r\n", until);
        }
    }
    mg_buf_append_str(&c, "\r\n");

    /* Part 3: the message, or its header. A message refused for its size
     * goes back without its body: whole, the notice would fail the same
     * way and never reach the sender. */
    bool is_size_failure = false;
    for (size_t i = 0; i < k; i++) {
        const char *dsn = msg->rcpts[chosen[i]].dsn;
        is_size_failure |= strcmp(dsn, "5.3.4") == 0 || strcmp(dsn, "5.2.3") == 0;
    }
    bool full = action == BOUNCE_FAILED && msg->env.ret != QUEUE_RET_HDRS &&
                msg->content_len <= BOUNCE_FULL_MAX && !is_size_failure;
    mg_buf_printf(&c, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n", boundary,
                  full ? "Undelivered Message" : "Message Headers",
                  full ? (msg->env.is_smtputf8 ? "message/global" : "message/rfc822")
                       : (msg->env.is_smtputf8 ? "message/global-headers" : "text/rfc822-headers"));
    read_original(msg, full ? BOUNCE_FULL_MAX : BOUNCE_HEADER_MAX, !full, &c);
    if (c.len < 2 || c.data[c.len - 2] != '\r' || c.data[c.len - 1] != '\n')
        mg_buf_append_str(&c, "\r\n");
    mg_buf_printf(&c, "\r\n--%s--\r\n", boundary);

    struct queue_file_rcpt rcpt = { QUEUE_ROUTE_UNKNOWN, to, NULL, 0 };
    struct queue_envelope env = { 0 };
    env.from = "";
    env.is_bounce = true;
    env.is_double_bounce = msg->env.is_bounce;
    env.is_smtputf8 = msg->env.is_smtputf8;
    /* The original goes back whole: 8-bit if it was. */
    env.body = msg->env.body;
    env.rcpts = &rcpt;
    env.n_rcpts = 1;
    env.client = "local bounce";
    struct notice_ctx *nc = mg_calloc(1, sizeof(*nc));
    nc->queue = queue;
    memcpy(nc->id, msg->env.id, sizeof(nc->id));
    nc->done = done;
    queue_inject(queue, &env, c.data, c.len, notice_committed, nc);
    mg_log_info("bounce", "%s sender notified notice=%s id=%s to=%s", msg->env.id, action_name(action, false),
                env.id, to);
    mg_buf_free(&c);
    free(chosen);
    return true;
}
