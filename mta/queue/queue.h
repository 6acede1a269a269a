/* The queue manager: the messages mgsmtpd has accepted, their recipients'
 * states, the retry schedule, and the hand-over to delivery agents.
 *
 * Durability: a message is in the queue once queue_new_commit() called
 * back with success (file and directory fsynced); only then may the
 * receiver say 250. A recipient's final result (delivered, bounced) is
 * appended to the message's log and fsynced before the message forgets
 * it; the files go when every recipient is final. After a crash the queue
 * is rebuilt from the spool and the logs: a recipient whose result was not
 * logged yet is delivered again (a duplicate in that narrow window, never
 * a loss).
 *
 * Scheduling: recipients wait with exponential backoff after temporary
 * failures (retry_min doubling up to retry_max), bounce when older than
 * lifetime, and are handed to the agent for their route: local (LMTP) or
 * remote (SMTP), the latter grouped by destination. */
#ifndef MG_MTA_QUEUE_H
#define MG_MTA_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mta/queue/queue_file.h"

struct mg_settings;
struct mg_auth_client;
struct queue;
struct queue_new;

int queue_open(uv_loop_t *loop, const struct mg_settings *settings, struct queue **queue_r,
               char **error_r);
/* Waits for running jobs and closes (messages stay in the spool). */
void queue_close(struct queue **queue);
/* For resolving recipients of unknown route (bounces, mgsendmail). */
void queue_set_auth(struct queue *queue, struct mg_auth_client *auth);

/* ---- receiving ---- */

/* Starts a message: a new ID (written into env->id); the envelope and
 * content collect in memory until the commit (a large message gets its
 * spool file once it passes 64 KiB). Returns NULL with *error_r on
 * failure. */
struct queue_new *queue_new_begin(struct queue *queue, struct queue_envelope *env,
                                  const char **error_r);
/* Appends content (memory, or page-cache writes for a large message; the
 * commit makes them durable). Returns 0 or the first write error. */
int queue_new_write(struct queue_new *m, const void *data, size_t len);
/* Commits, in the thread pool: the file written (a reused one of free/,
 * or a new one in tmp/), fdatasync, rename into msg/, then an fsync of
 * msg/ shared with the messages committing at the same time. cb runs
 * once it is durable (status 0) or failed; the message is then
 * scheduled. Frees m. */
typedef void queue_commit_cb(int status, const char *id, void *ctx);
void queue_new_commit(struct queue_new *m, queue_commit_cb *cb, void *ctx);
/* Drops a message that will not be accepted. */
void queue_new_abort(struct queue_new **m);
/* Bytes written so far. */
uint64_t queue_new_size(const struct queue_new *m);

/* ---- delivery agents ---- */

/* A unit of work handed to an agent: one message, some of its recipients,
 * one route (and one destination for remote). */
struct queue_delivery_rcpt {
    const char *address;
    const char *orcpt;
    unsigned notify;
    /* Filled in by the agent. */
    int result;           /* 0 pending, 2 ok, 4 temporary, 5 permanent */
    char dsn[16];         /* "2.0.0" */
    char *text;           /* the reply or the reason (owned) */
};

struct queue_delivery {
    const char *id;
    const char *from;
    const char *envid;
    enum queue_ret ret;
    enum queue_body body;
    bool is_smtputf8;
    const char *destination;   /* remote: the domain; local: NULL */
    const char *spool_path;    /* the message file */
    uint64_t content_off, content_len;
    struct queue_delivery_rcpt *rcpts;
    size_t n_rcpts;
    char *relay;               /* set by the agent: "mx.example.com[192.0.2.1]:25" */
    void *agent_data;
};

struct queue_agent {
    /* Takes a delivery, or returns false when at its concurrency limit
     * (the queue offers it again after the agent calls queue_kick). */
    bool (*deliver)(struct queue_agent *agent, struct queue_delivery *d);
    void *ctx;
};

void queue_set_agents(struct queue *queue, struct queue_agent *local, struct queue_agent *remote);
/* The agent finished d (every rcpt has a result): the queue logs and
 * applies the results and frees d. */
void queue_delivery_done(struct queue *queue, struct queue_delivery *d);
/* Capacity freed up, or something changed: look for work now. */
void queue_kick(struct queue *queue);

/* ---- administration (mgqueue through the control socket) ---- */

/* Writes the queue in mailq style into out. */
void queue_list(struct queue *queue, struct mg_buf *out);
/* Retry everything deferred now. */
void queue_flush(struct queue *queue);
/* 0, or -1 when there is no such message. */
int queue_delete(struct queue *queue, const char *id);
int queue_hold(struct queue *queue, const char *id, bool hold);
size_t queue_count(const struct queue *queue);
/* Jobs (fsyncs, log writes) still running. */
unsigned queue_jobs_running(const struct queue *queue);

/* ---- making messages (bounces and delay notices) ---- */

/* Queues a message we generate ourselves (content in memory). cb may be
 * NULL. */
void queue_inject(struct queue *queue, struct queue_envelope *env, const char *content,
                  size_t len, queue_commit_cb *cb, void *ctx);

#endif
