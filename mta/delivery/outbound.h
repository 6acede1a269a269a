/* A queued message as the SMTP/LMTP client engine sends it: the envelope
 * of a queue_delivery, content read from the spool file, and the results
 * copied back. Shared by the local (LMTP) and remote (SMTP) agents. */
#ifndef MG_MTA_OUTBOUND_H
#define MG_MTA_OUTBOUND_H

#include "lmtp/smtp_client.h"
#include "mta/queue/queue.h"

struct outbound {
    struct smtp_client_message msg;
    struct queue_delivery *delivery;
    int fd;
    uint64_t off, left;
};

/* Prepares msg for d; returns -1 (with every recipient marked as a
 * temporary failure) when the spool file cannot be read. */
int outbound_init(struct outbound *ob, struct queue_delivery *d);
/* Copies the client's per-recipient results into the delivery. mail_reply
 * applies to recipients without a reply of their own. */
void outbound_results(struct outbound *ob, const struct smtp_reply *mail_reply);
/* Marks every recipient still without a result: code 4 (retry later),
 * 0 (not attempted: retry soon, not counted). */
void outbound_fail_all(struct queue_delivery *d, int result, const char *dsn, const char *text);
void outbound_free(struct outbound *ob);

#endif
