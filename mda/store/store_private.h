/* Internals shared by the store's files (store*.c). */
#ifndef MG_MDA_STORE_STORE_PRIVATE_H
#define MG_MDA_STORE_STORE_PRIVATE_H

#include <db.h>

#include "common/strmap.h"
#include "mda/store/fsync_pool.h"
#include "mda/store/store.h"

/* Files in a folder's tmp/ older than this are leftovers of a crash. */
#define STORE_TMP_MAX_AGE (36 * 3600)

/* Transactions that deadlock are retried this often. */
#define STORE_TXN_RETRIES 50

/* Threads that run fsyncs for the jobs (fsync_pool.h): two requests per
 * delivery or APPEND in flight, and libuv's pool runs at most 16 jobs. */
#define STORE_SYNC_THREADS 16

struct store {
    uv_loop_t *loop;
    struct index_env *index;
    char *mail_dir;
    struct mg_strmap *users;    /* address -> struct store_user (open ones) */
    struct mg_strmap *watches;  /* address -> struct store_watch list */
    struct fsync_pool *syncer;
    unsigned jobs_running;
    uv_timer_t housekeeping;
    bool is_closing;
};

struct store_user {
    struct store *store;
    char *address;
    char *root;                 /* Maildir root (INBOX) */
    struct index_user *iu;
    uint64_t quota_bytes;
    int refcount;
    /* \Recent marks claimed in this process (store_claim_recent). */
    struct store_recent_mark { uint32_t mailbox_id, mark; } *recent;
    size_t n_recent;
};

struct store_watch {
    struct store_watch *next;
    struct store *store;
    char *address;
    uint32_t mailbox_id;
    void (*cb)(void *ctx);
    void *ctx;
};

/* A job on the thread pool: work() runs there, after() on the loop and
 * frees the job. Job structs embed this first. */
struct store_job {
    uv_work_t req;
    struct store *store;
    void (*work)(struct store_job *job);
    void (*after)(struct store_job *job);
    int status;
    char error[256];
};

void store_job_start(struct store *store, struct store_job *job,
                     void (*work)(struct store_job *job), void (*after)(struct store_job *job));
void store_job_set_error(struct store_job *job, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs body in a transaction, retrying on deadlock; before_commit (may be
 * NULL) runs after a successful body, outside the retry loop's reach:
 * file renames go there. Returns 0 or the Berkeley DB / errno failure. */
int store_txn_run(struct store *store, bool sync, int (*body)(DB_TXN *txn, void *ctx),
                  int (*before_commit)(void *ctx), void *ctx);

/* Wakes the watchers of a mailbox (loop thread). mailbox_id 0: all of the
 * user's. */
void store_notify(struct store *store, const char *address, uint32_t mailbox_id);

/* The folder directory of a mailbox (to free). */
char *store_folder_path(const char *root, const char *mailbox);

/* Computes the cached IMAP strings of a message file and adds the message
 * to the mailbox (inside a transaction): allocates the UID unless uid is
 * given, updates counters, user usage and MODSEQ. mbox is updated in
 * place (the caller writes it back). */
struct store_new_msg {
    uint32_t uid;          /* in: 0 to allocate; out: the UID */
    uint32_t flags;
    uint64_t keywords;
    int64_t internaldate;
    uint64_t size;
    bool in_new;
    char base[MAILDIR_BASE_MAX]; /* final base name (with S= and U=) */
    const char *cache_env;
    size_t cache_env_len;
    const char *cache_bs;
    size_t cache_bs_len;
    const char *cache_body;
    size_t cache_body_len;
};
int store_txn_add_msg(DB *db, DB_TXN *txn, struct index_mailbox_rec *mbox,
                      struct index_user_rec *user, struct store_new_msg *msg);
/* Points msg's three cached strings into cache (as store_compute_cache
 * left them); cache must outlive the store_txn_add_msg call. */
void store_new_msg_set_cache(struct store_new_msg *msg, const struct mg_buf *cache,
                             const size_t off[3], const size_t len[3]);

/* Parses the file at path (mmap) into the three cached strings, appended
 * to out with offsets. Returns 0 or -errno. */
int store_compute_cache(const char *path, struct mg_buf *out, size_t off_r[3], size_t len_r[3]);
/* The same for a message in memory. */
void store_compute_cache_mem(const char *data, size_t size, struct mg_buf *out, size_t off_r[3],
                             size_t len_r[3]);

/* Brings a user's index in line with the Maildir (see store_user_open).
 * Thread pool only. */
int store_verify_user(struct store *store, struct index_user *iu, const char *root,
                      char *error, size_t error_size);

/* Ensures the mailbox exists in index and on disk (used by user open and
 * CREATE). Thread pool only. */
int store_create_mailbox_locked(struct store *store, struct index_user *iu, const char *root,
                                const char *name, enum store_special_use use, bool subscribe,
                                bool *created_r);

/* Writes the user's subscriptions (from the index) to the Maildir
 * (MAILDIR_SUBSCRIPTIONS_FILE), so that a rebuilt index gets them back.
 * Thread pool only, with iu->subscriptions_lock held across the index
 * change and this call. Returns 0 or -errno / a Berkeley DB error. */
int store_save_subscriptions(struct store *store, struct index_user *iu, const char *root);

/* Maps errno to a store status. */
int store_status_from_errno(int err);
/* Maps a transaction's result (Berkeley DB error, errno, or a store
 * status returned by a body) to a store status. */
int store_status_from_db(int r);

#endif
