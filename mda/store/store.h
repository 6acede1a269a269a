/* The mailbox store: Maildir++ files plus the Berkeley DB index, as one
 * API for the IMAP server and the LMTP delivery agent.
 *
 * Reads (mailbox lists, message lists, cached ENVELOPE/BODYSTRUCTURE,
 * changes since a MODSEQ) are synchronous and run on the caller's thread:
 * they are snapshot reads of a cached index and never wait for writers.
 * Writes (deliveries, APPEND, COPY/MOVE, flag changes, EXPUNGE, mailbox
 * changes) are jobs on libuv's thread pool; their callbacks run on the loop.
 * A write's callback runs only after the change is durable: deliveries,
 * APPEND, COPY, MOVE and EXPUNGE are fsynced (files, directories and the
 * index log); flag changes are written through to the OS (they survive a
 * daemon crash, but a power cut may lose the last seconds of them).
 *
 * After every write the store wakes the watchers of the mailbox (IMAP
 * sessions that have it selected), which then read the changes from the
 * index by MODSEQ: the index, not memory, is the truth, so several
 * processes can share the store. */
#ifndef MG_MDA_STORE_STORE_H
#define MG_MDA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "mda/store/index.h"
#include "mda/store/maildir.h"
#include "mda/store/mailbox_name.h"

struct mg_buf;
struct store;
struct store_user;

/* RFC 6154 special-use attributes. */
enum store_special_use {
    STORE_SPECIAL_NONE = 0,
    STORE_SPECIAL_DRAFTS,
    STORE_SPECIAL_SENT,
    STORE_SPECIAL_TRASH,
    STORE_SPECIAL_JUNK,
    STORE_SPECIAL_ARCHIVE,
    STORE_SPECIAL_ALL, /* not created, but valid in CREATE (USE (\All)) */
};
const char *store_special_use_name(enum store_special_use use); /* "\\Sent", NULL for none */

/* Results of writes. */
enum store_status {
    STORE_OK = 0,
    STORE_ERR_INTERNAL = -1,   /* I/O or index failure: try again later */
    STORE_ERR_NOT_FOUND = -2,  /* no such mailbox */
    STORE_ERR_EXISTS = -3,     /* mailbox exists already */
    STORE_ERR_OVER_QUOTA = -4,
    STORE_ERR_INVALID = -5,    /* bad name, INBOX not allowed here, ... */
    STORE_ERR_HAS_CHILDREN = -6,
    STORE_ERR_NO_SPACE = -7,   /* disk full: temporary */
    STORE_ERR_LIMIT = -8,      /* too many keywords, ... */
};

struct store_settings {
    const char *mail_dir;
    const char *index_dir;
    uint64_t index_cache_bytes; /* 0: 64 MiB */
};

int store_open(uv_loop_t *loop, const struct store_settings *settings, struct store **store_r,
               char **error_r);
/* Waits for running jobs, then closes. */
void store_close(struct store **store);
/* Jobs still running (for a graceful stop). */
unsigned store_jobs_running(const struct store *store);

/* ---- users ---- */

/* Opens a user's store (address lower-cased, as the auth service returns
 * it): creates the Maildir and index on first use, and compares them once
 * per process (adopting files the index does not know, dropping entries
 * whose file is gone, rebuilding a missing or damaged index). With
 * create_special, creates INBOX and the special-use folders that are
 * missing (first login). quota_bytes: 0 for no limit. */
typedef void store_user_cb(int status, struct store_user *user, const char *error, void *ctx);
void store_user_open(struct store *store, const char *address, uint64_t quota_bytes,
                     bool create_special, store_user_cb *cb, void *ctx);
void store_user_ref(struct store_user *user);
void store_user_unref(struct store_user **user);
const char *store_user_address(const struct store_user *user);
void store_user_set_quota(struct store_user *user, uint64_t quota_bytes);
uint64_t store_user_quota(const struct store_user *user);
/* Bytes in use (all mailboxes). */
uint64_t store_user_bytes_used(struct store_user *user);

/* ---- reads (synchronous) ---- */

struct store_mailbox {
    char name[MAILBOX_NAME_MAX + 1];
    struct index_mailbox_rec rec;
    bool is_subscribed;
};

/* 0, STORE_ERR_NOT_FOUND or STORE_ERR_INTERNAL. */
int store_mailbox_get(struct store_user *user, const char *name, struct store_mailbox *mbox_r);
int store_mailbox_get_by_id(struct store_user *user, uint32_t id, struct store_mailbox *mbox_r);
/* Every mailbox, in name order. */
int store_mailbox_list(struct store_user *user,
                       int (*cb)(const struct store_mailbox *mbox, void *ctx), void *ctx);
/* Subscribed names (a subscription may name a mailbox that is gone). */
int store_subscription_list(struct store_user *user, int (*cb)(const char *name, void *ctx),
                            void *ctx);

/* Messages with UID in [first, last] in UID order. */
int store_msg_list(struct store_user *user, uint32_t mailbox_id, uint32_t first, uint32_t last,
                   index_msg_cb *cb, void *ctx);
int store_msg_get(struct store_user *user, uint32_t mailbox_id, uint32_t uid,
                  struct index_msg_rec *rec_r);
/* Cached IMAP strings: appended to out; each pointer set into out->data
 * after the call (valid until out changes). */
struct store_msg_cache {
    size_t envelope_off, envelope_len;
    size_t bodystructure_off, bodystructure_len;
    size_t body_off, body_len;
};
int store_msg_cache(struct store_user *user, uint32_t mailbox_id, uint32_t uid,
                    struct mg_buf *out, struct store_msg_cache *cache_r);
/* The message file's current path (to free). */
char *store_msg_path(struct store_user *user, const char *mailbox, const struct index_msg_rec *rec);
/* Opens the message file for reading, looking it up again if a flag
 * change renamed it meanwhile; -errno on failure. */
int store_msg_open(struct store_user *user, const char *mailbox, const struct index_msg_rec *rec);

/* Changes after modseq: changed_cb for each message whose MODSEQ is
 * higher (new ones included), expunged_cb for each UID expunged since. */
int store_changes_since(struct store_user *user, uint32_t mailbox_id, uint64_t modseq,
                        int (*changed_cb)(uint32_t uid, uint64_t modseq, void *ctx),
                        int (*expunged_cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx);

/* The user's keyword names (index = bit in index_msg_rec.keywords). */
int store_keywords(struct store_user *user, char ***names_r, unsigned *count_r);
void store_keywords_free(char **names, unsigned count);

/* ---- watching ---- */

struct store_watch;
/* cb runs on the loop after any write to the mailbox (of this process). */
struct store_watch *store_watch_add(struct store_user *user, uint32_t mailbox_id,
                                    void (*cb)(void *ctx), void *ctx);
void store_watch_remove(struct store_watch **watch);

/* ---- writes (jobs) ---- */

typedef void store_done_cb(int status, const char *error, void *ctx);

void store_mailbox_create(struct store_user *user, const char *name, enum store_special_use use,
                          store_done_cb *cb, void *ctx);
void store_mailbox_delete(struct store_user *user, const char *name, store_done_cb *cb, void *ctx);
void store_mailbox_rename(struct store_user *user, const char *from, const char *to,
                          store_done_cb *cb, void *ctx);
void store_subscribe(struct store_user *user, const char *name, bool subscribe,
                     store_done_cb *cb, void *ctx);

enum store_flag_op { STORE_FLAGS_REPLACE, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };

/* Keywords named in a write that are new to the user are created (at most
 * INDEX_KEYWORDS_MAX; then STORE_ERR_LIMIT). */
struct store_flags {
    uint32_t flags;           /* enum maildir_flag */
    const char *const *keywords;
    unsigned keyword_count;
};

/* APPEND: tmp_path is a complete message file in the user's INBOX tmp/
 * (see store_user_tmp_path); the store moves it into the mailbox. */
char *store_user_tmp_path(struct store_user *user, char **base_r);
typedef void store_append_cb(int status, const char *error, uint32_t uidvalidity, uint32_t uid,
                             void *ctx);
void store_append(struct store_user *user, const char *mailbox, const char *tmp_base,
                  const struct store_flags *flags, time_t internaldate, store_append_cb *cb,
                  void *ctx);

/* COPY / MOVE of uids (of mailbox src_id) to dst. new_uids[i] is the UID
 * of uids[i] in dst (0 when that message was gone). */
typedef void store_copy_cb(int status, const char *error, uint32_t dst_uidvalidity,
                           const uint32_t *uids, const uint32_t *new_uids, size_t count,
                           void *ctx);
void store_copy(struct store_user *user, uint32_t src_id, const uint32_t *uids, size_t count,
                const char *dst, bool is_move, store_copy_cb *cb, void *ctx);

/* Flag changes. With unchanged_since (CONDSTORE) messages whose MODSEQ is
 * higher are left alone. The callback gets the messages that changed. */
struct store_flag_change {
    uint32_t uid;
    uint32_t flags;
    uint64_t keywords;
    uint64_t modseq;
};
typedef void store_flags_cb(int status, const char *error, const struct store_flag_change *changes,
                            size_t count, void *ctx);
void store_set_flags(struct store_user *user, uint32_t mailbox_id, const uint32_t *uids,
                     size_t count, enum store_flag_op op, const struct store_flags *flags,
                     store_flags_cb *cb, void *ctx);

/* Removes the messages among uids that have \Deleted (all of uids when
 * only_deleted is false). The callback gets the UIDs removed. */
typedef void store_expunge_cb(int status, const char *error, const uint32_t *uids, size_t count,
                              void *ctx);
void store_expunge(struct store_user *user, uint32_t mailbox_id, const uint32_t *uids,
                   size_t count, bool only_deleted, store_expunge_cb *cb, void *ctx);

/* \Recent (RFC 3501 2.3.2) belongs to one session: the first that is
 * told about a message. Claims the messages of mailbox_id up to upto_uid
 * that nobody claimed yet, and returns the mark before the claim: the
 * caller's \Recent messages are those above it, up to upto_uid.
 * index_mark is the mailbox's recent_uid as the caller read it from the
 * index. The claim holds at once for every session of this process (all
 * sessions of a user live in one process); the index learns it in the
 * background. */
uint32_t store_claim_recent(struct store_user *user, uint32_t mailbox_id, uint32_t index_mark,
                            uint32_t upto_uid);
/* The mark without claiming (EXAMINE, STATUS RECENT). */
uint32_t store_recent_mark(struct store_user *user, uint32_t mailbox_id, uint32_t index_mark);

/* ---- delivery (LMTP) ---- */

/* The message as received; head (Return-Path, Delivered-To) is written
 * before body. body is in memory or, for large messages, in body_fd. */
struct store_delivery {
    const char *address;       /* final mailbox owner, lower-cased */
    uint64_t quota_bytes;      /* 0: none */
    const char *head;
    size_t head_len;
    const char *body;
    size_t body_len;
    int body_fd;               /* -1 when body is in memory */
    uint64_t body_fd_len;
    time_t received;
};
typedef void store_deliver_cb(int status, const char *error, uint32_t uid, void *ctx);
void store_deliver(struct store *store, const struct store_delivery *delivery,
                   store_deliver_cb *cb, void *ctx);

#endif
