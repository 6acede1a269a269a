#include "mta/delivery/outbound.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"

static long read_content(void *source, struct mg_buf *out, size_t max)
{
    struct outbound *ob = source;
    if (ob->left == 0)
        return 0;
    size_t n = ob->left < max ? (size_t)ob->left : max;
    mg_buf_reserve(out, n);
    ssize_t r;
    do {
        /* A page-cache read of at most one chunk at a time. */
        r = pread(ob->fd, out->data + out->len, n, (off_t)ob->off);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    out->len += (size_t)r;
    out->data[out->len] = '\0';
    ob->off += (uint64_t)r;
    ob->left -= (uint64_t)r;
    return r;
}

void outbound_fail_all(struct queue_delivery *d, int result, const char *dsn, const char *text)
{
    for (size_t i = 0; i < d->n_rcpts; i++) {
        struct queue_delivery_rcpt *r = &d->rcpts[i];
        /* A recipient with an answer keeps it: a 451 from the server is
         * a better reason than "no answer". */
        if (r->result != 0)
            continue;
        r->result = result;
        snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
        free(r->text);
        r->text = mg_strdup(text);
    }
}

int outbound_init(struct outbound *ob, struct queue_delivery *d)
{
    memset(ob, 0, sizeof(*ob));
    ob->delivery = d;
    ob->fd = open(d->spool_path, O_RDONLY | O_CLOEXEC);
    if (ob->fd < 0) {
        outbound_fail_all(d, 4, "4.3.0", "cannot read the queue file");
        return -1;
    }
    ob->off = d->content_off;
    ob->left = d->content_len;
    struct smtp_client_message *m = &ob->msg;
    m->mail_from = d->from;
    m->size = d->content_len;
    m->body = d->body == QUEUE_BODY_8BITMIME ? SMTP_BODY_8BITMIME
              : d->body == QUEUE_BODY_7BIT  ? SMTP_BODY_7BIT
                                            : SMTP_BODY_UNSPECIFIED;
    m->is_smtputf8 = d->is_smtputf8;
    m->ret = d->ret == QUEUE_RET_FULL ? SMTP_DSN_RET_FULL : d->ret == QUEUE_RET_HDRS ? SMTP_DSN_RET_HDRS
                                                                                   : SMTP_DSN_RET_UNSPECIFIED;
    m->envid = d->envid;
    m->rcpts = mg_calloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(*m->rcpts));
    m->rcpt_count = d->n_rcpts;
    for (size_t i = 0; i < d->n_rcpts; i++) {
        m->rcpts[i].address = d->rcpts[i].address;
        m->rcpts[i].notify = d->rcpts[i].notify;
        m->rcpts[i].orcpt = d->rcpts[i].orcpt;
    }
    m->read_content = read_content;
    m->source = ob;
    return 0;
}

static int code_class(unsigned code)
{
    return code >= 200 && code < 300 ? 2 : code >= 500 && code < 600 ? 5 : 4;
}

static void set_result(struct queue_delivery_rcpt *r, const struct smtp_reply *reply)
{
    r->result = code_class(reply->code);
    if (reply->enhanced[0] != '\0')
        snprintf(r->dsn, sizeof(r->dsn), "%s", reply->enhanced);
    else
        snprintf(r->dsn, sizeof(r->dsn), "%d.0.0", r->result);
    free(r->text);
    r->text = mg_asprintf("%u %s%s%s", reply->code, reply->enhanced, reply->enhanced[0] ? " " : "",
                          reply->text != NULL ? reply->text : "");
    for (char *p = r->text; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
}

void outbound_results(struct outbound *ob, const struct smtp_reply *mail_reply)
{
    struct queue_delivery *d = ob->delivery;
    for (size_t i = 0; i < d->n_rcpts; i++) {
        const struct smtp_client_rcpt *cr = &ob->msg.rcpts[i];
        if (cr->result.code != 0)
            set_result(&d->rcpts[i], &cr->result);
        else if (mail_reply != NULL && mail_reply->code != 0)
            set_result(&d->rcpts[i], mail_reply);
    }
}

void outbound_free(struct outbound *ob)
{
    if (ob->fd >= 0)
        close(ob->fd);
    ob->fd = -1;
    free(ob->msg.rcpts);
    ob->msg.rcpts = NULL;
}
