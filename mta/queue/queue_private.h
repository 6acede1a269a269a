/* Internals of the queue manager shared by queue*.c and bounce.c. */
#ifndef MG_MTA_QUEUE_PRIVATE_H
#define MG_MTA_QUEUE_PRIVATE_H

#include "common/buf.h"
#include "mta/queue/queue.h"

struct mg_arena;

enum rcpt_state {
    RCPT_PENDING,
    RCPT_IN_FLIGHT,
    RCPT_RESOLVING,   /* route unknown: asking the auth service */
    RCPT_DELIVERED,
    RCPT_BOUNCED,
};

struct queue_rcpt {
    char route;
    char *address;
    char *orcpt;
    unsigned notify;
    enum rcpt_state state;
    unsigned attempts;
    uint64_t next_try_ms;     /* loop time */
    char dsn[16];
    char *last_error;
    char *last_relay;
};

struct queue_msg {
    struct queue_msg *next, *prev;
    struct queue_envelope env;    /* strings in arena */
    struct mg_arena *arena;
    struct queue_rcpt *rcpts;
    size_t n_rcpts;
    uint64_t content_off, content_len;
    char *path;
    char *log_path;
    bool is_held;
    bool is_warned;           /* delay warning sent */
    bool is_deleted;
    unsigned in_flight;       /* deliveries out */
    /* Notices (bounces) being queued: the failures they report are logged
     * as final only once the notice is on disk, and the message stays
     * until then. */
    unsigned notices_pending;
    struct mg_buf notice_lines;
};

struct queue {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct mg_auth_client *auth;
    char *dir;
    char *tmp_dir, *msg_dir, *log_dir, *corrupt_dir;
    int lock_fd;              /* <dir>/lock, flock()ed: one user of the spool */
    struct queue_msg *msgs;
    size_t n_msgs;
    struct queue_agent *local;
    struct queue_agent *remote;
    uv_timer_t timer;
    uv_idle_t kick;
    bool is_kicked;
    unsigned jobs_running;
    /* Group commit of new messages' directory entries. */
    struct queue_new *dir_sync_waiting;
    bool is_dir_syncing;
    bool is_closing;
};

struct queue_msg *queue_find(struct queue *queue, const char *id);

/* Bounces and notices (bounce.c): builds a RFC 3464 report about rcpts of
 * msg (action "failed", "delayed" or "delivered"/"relayed") and queues it
 * to the sender. Nothing for the null sender; a failed bounce goes to the
 * postmaster once, then is dropped. */
enum bounce_action { BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_DELIVERED };
/* Returns true when a notice is being queued; then done(queue, id) runs
 * once it is durable (or failed). */
bool bounce_send(struct queue *queue, struct queue_msg *msg, const size_t *rcpt_idx, size_t n,
                 enum bounce_action action, void (*done)(struct queue *queue, const char *id));

#endif
