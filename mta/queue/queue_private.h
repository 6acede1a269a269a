/* Internals of the queue manager shared by queue.c, queue_spool.c and
 * bounce.c. */
#ifndef MG_MTA_QUEUE_PRIVATE_H
#define MG_MTA_QUEUE_PRIVATE_H

#include "common/buf.h"
#include "mta/queue/queue.h"

struct mg_arena;
struct mg_strmap;

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

/* The scheduler's lists of messages (queue.c), each first in, first out:
 * messages with recipients due for the local agent, for the remote
 * agent, and messages whose state changed (to be planned again). */
enum queue_list { QUEUE_LIST_LOCAL, QUEUE_LIST_REMOTE, QUEUE_LIST_DIRTY, QUEUE_LISTS };

#define QUEUE_NO_TIMER ((size_t)-1)

struct queue_msg {
    struct queue_msg *next, *prev;    /* every message */
    struct queue_msg *list_next[QUEUE_LISTS], *list_prev[QUEUE_LISTS];
    bool is_listed[QUEUE_LISTS];
    /* In the timer heap (QUEUE_NO_TIMER: not), due at wake_ms. */
    size_t timer_idx;
    uint64_t wake_ms;
    struct queue_envelope env;    /* strings in arena */
    struct mg_arena *arena;
    struct queue_rcpt *rcpts;
    size_t n_rcpts;
    uint64_t content_off, content_len;
    uint64_t file_size;       /* of msg/<ID> */
    char *path;
    char *log_path;
    bool has_log;             /* log/<ID> may exist */
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

/* A file of the pool of spool files (queue_spool.c): free/<number>. */
struct queue_pool_file {
    struct queue_pool_file *next;
    uint64_t number;
    uint64_t size;
    /* Usable once a sync of msg/ that started after the file left msg/
     * has ended (the number of syncs started before it left). */
    uint64_t generation;
};

struct queue_removal;
struct queue_new;

struct queue {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct mg_auth_client *auth;
    char *dir;
    char *tmp_dir, *msg_dir, *log_dir, *corrupt_dir, *free_dir;
    int lock_fd;              /* <dir>/lock, flock()ed: one user of the spool */
    struct queue_msg *msgs;
    size_t n_msgs;
    struct mg_strmap *by_id;
    struct queue_agent *local;
    struct queue_agent *remote;
    /* The scheduler (queue.c): its lists, and a binary min-heap of the
     * messages by the time they need a look (a retry, the end of their
     * lifetime, the delay warning). */
    struct queue_msg *list_head[QUEUE_LISTS], *list_tail[QUEUE_LISTS];
    struct queue_msg **timers;
    size_t n_timers, cap_timers;
    uv_timer_t timer;
    uv_idle_t kick;
    bool is_kicked;
    unsigned jobs_running;
    /* The spool (queue_spool.c): group commit of new messages' directory
     * entries, the pool of files for reuse, removals in batches. */
    struct queue_new *dir_sync_waiting, *dir_sync_waiting_tail;
    bool is_dir_syncing;
    uint64_t dir_syncs_started;
    struct queue_pool_file *pool_ready;
    struct queue_pool_file *pool_pending, *pool_pending_tail;
    size_t pool_count;
    uint64_t pool_next_number;
    struct queue_removal *removals_waiting, *removals_waiting_tail;
    bool is_removing;
    bool is_closing;
};

struct queue_msg *queue_find(struct queue *queue, const char *id);

/* ---- queue.c, for queue_spool.c ---- */

/* A new message is durable: into memory and scheduled. */
void queue_msg_committed(struct queue *queue, const struct queue_envelope *env, const char *path,
                         uint64_t content_off, uint64_t content_len, uint64_t file_size);

/* ---- queue_spool.c ---- */

/* Creates the spool's directories. */
int queue_spool_init(struct queue *queue, char **error_r);
/* At start: empties tmp/ and free/ (nothing there was acknowledged). */
void queue_spool_clean(struct queue *queue);
/* Frees the pool's bookkeeping (its files stay until the next start). */
void queue_spool_free(struct queue *queue);
/* Removes a message's files in the thread pool: msg/<ID> (into the pool
 * of files when there is room) and its status log when log_path is not
 * NULL. said: delivery lines (without the component, one a line) that are
 * logged once the message is gone, or NULL; taken over. */
void queue_spool_remove(struct queue *queue, const char *msg_path, const char *log_path,
                        uint64_t file_size, struct mg_buf *said);

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
