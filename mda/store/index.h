/* The mailbox index: one Berkeley DB transactional environment per host
 * (index_dir), one database per user inside it.
 *
 * Records of a user's database, keys by prefix byte (integers big-endian,
 * so cursors walk them in numeric order):
 *
 *   'U'                          user: next mailbox id, UIDVALIDITY
 *                                 counter, bytes used, keyword names
 *   'B' <name>                   mailbox by name: id, UIDVALIDITY,
 *                                 UIDNEXT, HIGHESTMODSEQ, counters
 *   'I' <id:4>                   mailbox name by id
 *   'M' <id:4> <uid:4>           message: flags, keywords, INTERNALDATE,
 *                                 size, MODSEQ, file name
 *   'E' <id:4> <uid:4>           cached ENVELOPE, BODYSTRUCTURE, BODY
 *   'Q' <id:4> <modseq:8> <uid:4>  change index: messages by MODSEQ
 *   'X' <id:4> <modseq:8> <uid:4>  expunged UIDs by MODSEQ
 *   'S' <name>                   subscription
 *   'P' <id:4> <uid:4>           a delivery whose file was renamed into
 *                                 place before its data was known to be on
 *                                 disk: the next verification checks the
 *                                 file (storage.md, Durability); removed
 *                                 once the file is known to be durable
 *
 * Readers use snapshot transactions (DB_MULTIVERSION): they never wait
 * for a writer, so the event loop may read. Writers run in the thread pool.
 * Several processes may open the environment at once (DB_REGISTER). */
#ifndef MG_MDA_STORE_INDEX_H
#define MG_MDA_STORE_INDEX_H

#include <db.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_buf;

struct index_env;

/* A user's database handle (shared by everything of that user in this
 * process; see index_env_user). */
struct index_user {
    DB *db;
    char *address;
    char *file;
    int refcount;
    pthread_mutex_t verify_lock; /* held while comparing with the Maildir */
    /* Held while the subscriptions change and their copy in the Maildir
     * is written, so that the last writer writes the last state. */
    pthread_mutex_t subscriptions_lock;
    bool is_verified;            /* the Maildir was compared with the index */
    /* 'P' records of deliveries of this process whose files are durable
     * now, to be deleted by the user's next write (index_user_take_synced). */
    pthread_mutex_t synced_lock;
    struct index_pending *synced;
    size_t n_synced, cap_synced;
};

/* A 'P' record's key. */
struct index_pending {
    uint32_t mailbox_id;
    uint32_t uid;
};

struct index_user_rec {
    uint32_t next_mailbox_id;
    uint32_t last_uidvalidity;
    uint64_t bytes_used;
    uint32_t message_count;
    uint32_t keyword_count;
    char *keywords[64];        /* owned */
};

#define INDEX_KEYWORDS_MAX 64

struct index_mailbox_rec {
    uint32_t id;
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint64_t highestmodseq;
    uint32_t recent_uid;  /* highest UID already reported as \Recent */
    uint32_t messages;
    uint32_t unseen;
    uint32_t deleted;
    uint64_t bytes;
    uint8_t special_use;  /* enum store_special_use */
};

struct index_msg_rec {
    uint32_t uid;
    uint32_t flags;       /* enum maildir_flag */
    uint64_t keywords;    /* bit i: keyword i of the user record */
    int64_t internaldate;
    uint64_t size;
    uint64_t modseq;
    bool in_new;          /* the file is in new/ (no flags in its name) */
    char base[200];
};

/* Opens (creating) the environment. cache_bytes: Berkeley DB cache size
 * (0: INDEX_CACHE_DEFAULT). */
#define INDEX_CACHE_DEFAULT (256ull << 20)
int index_env_open(const char *dir, uint64_t cache_bytes, struct index_env **env_r,
                   char **error_r);
void index_env_close(struct index_env **env);
DB_ENV *index_env_dbenv(struct index_env *env);
/* Writes a checkpoint and drops log files no longer needed (thread pool). */
int index_env_checkpoint(struct index_env *env);

/* The handle for a user (lower-cased address), opened and created on first
 * use; referenced until index_user_unref. Blocking (thread pool), except
 * when already open. Thread-safe. */
int index_env_user(struct index_env *env, const char *address, struct index_user **user_r,
                   char **error_r);
void index_user_unref(struct index_env *env, struct index_user **user);
/* The user's handle when open already (no I/O), or NULL; not referenced. */
struct index_user *index_env_user_peek(struct index_env *env, const char *address);
/* Closes handles without references that were idle. */
void index_env_close_idle(struct index_env *env);
/* Deletes the 'P' records noted with index_user_note_synced that no write
 * has taken yet (housekeeping; thread pool). */
void index_env_clear_synced(struct index_env *env);
/* Moves a damaged database aside (file.broken-<time>) so it is rebuilt. */
int index_env_discard_user(struct index_env *env, const char *address);

/* Transactions. */
int index_txn_begin(struct index_env *env, bool is_read, DB_TXN **txn_r);
/* sync: the commit is on disk when this returns (deliveries, APPEND,
 * COPY, EXPUNGE); otherwise it is written to the OS only (flag changes:
 * they survive a daemon crash, not a power cut). */
int index_txn_commit(DB_TXN *txn, bool sync);
void index_txn_abort(DB_TXN *txn);
/* Whether err means "abort and retry the transaction". */
bool index_is_retryable(int err);

/* Record access inside a transaction. Getters return 0, DB_NOTFOUND, or
 * another Berkeley DB error. for_update takes a write lock (DB_RMW). */
int index_get_user(DB *db, DB_TXN *txn, bool for_update, struct index_user_rec *rec);
int index_put_user(DB *db, DB_TXN *txn, const struct index_user_rec *rec);
void index_user_rec_clear(struct index_user_rec *rec);

int index_get_mailbox(DB *db, DB_TXN *txn, const char *name, bool for_update,
                      struct index_mailbox_rec *rec);
/* Writes the mailbox record; with_name also writes the 'I' record (id ->
 * name), which only creating and renaming a mailbox change. */
int index_put_mailbox(DB *db, DB_TXN *txn, const char *name, const struct index_mailbox_rec *rec,
                      bool with_name);
int index_del_mailbox(DB *db, DB_TXN *txn, const char *name, uint32_t id);
/* The name of mailbox id (malloc'd into *name_r). */
int index_get_mailbox_name(DB *db, DB_TXN *txn, uint32_t id, char **name_r);

int index_get_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid, bool for_update,
                  struct index_msg_rec *rec);
/* Writes a message record and keeps the 'Q' change index in step:
 * old_modseq is the record's previous MODSEQ (0 for a new message). */
int index_put_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, const struct index_msg_rec *rec,
                  uint64_t old_modseq);
/* Deletes the message and its cache, and records the expunge at modseq. */
int index_del_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, const struct index_msg_rec *rec,
                  uint64_t expunge_modseq);

int index_put_cache(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid,
                    const char *envelope, size_t envelope_len, const char *bodystructure,
                    size_t bodystructure_len, const char *body, size_t body_len);
/* The cached strings, appended NUL-separated: envelope, bodystructure,
 * body; offsets of each in out. */
int index_get_cache(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid,
                    struct mg_buf *out, size_t offsets_r[3], size_t lengths_r[3]);

int index_put_subscription(DB *db, DB_TXN *txn, const char *name, bool subscribed);

/* 'P' records (see above). */
int index_put_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid);
int index_del_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid);
/* The UIDs with a 'P' record in the mailbox, in UID order. */
int index_walk_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id,
                       int (*cb)(uint32_t uid, void *ctx), void *ctx);
/* Notes that a delivery's file is durable: its 'P' record may go. */
void index_user_note_synced(struct index_user *user, uint32_t mailbox_id, uint32_t uid);
/* Takes the noted records (to free); a write deletes them in its
 * transaction, and gives them back with index_user_return_synced when the
 * transaction fails. */
struct index_pending *index_user_take_synced(struct index_user *user, size_t *count_r);
void index_user_return_synced(struct index_user *user, struct index_pending *list, size_t count);

/* Cursor walks. Callbacks return 0 to go on, non-zero to stop (returned). */
typedef int index_msg_cb(const struct index_msg_rec *rec, void *ctx);
/* Messages of a mailbox with uid in [first, last], in UID order. */
int index_walk_msgs(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t first, uint32_t last,
                    index_msg_cb *cb, void *ctx);
/* UIDs changed (or added) after modseq, in MODSEQ order. */
int index_walk_changes(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t after_modseq,
                       int (*cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx);
/* UIDs expunged after modseq. */
int index_walk_expunges(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t after_modseq,
                        int (*cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx);
/* Mailboxes by name order. */
int index_walk_mailboxes(DB *db, DB_TXN *txn,
                         int (*cb)(const char *name, const struct index_mailbox_rec *rec,
                                   void *ctx),
                         void *ctx);
int index_walk_subscriptions(DB *db, DB_TXN *txn, int (*cb)(const char *name, void *ctx),
                             void *ctx);
/* Drops expunge records at or below modseq (housekeeping). */
int index_prune_expunges(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t upto_modseq);

#endif
