/* The mailbox store: deliveries, APPEND, COPY/MOVE, flags, EXPUNGE,
 * mailbox CREATE/RENAME/DELETE, change tracking by MODSEQ, and recovery:
 * an index rebuilt from the Maildir keeps UIDs and UIDVALIDITY, files
 * left by a crash are adopted, files dropped in by hand get new UIDs. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "mda/store/store.h"

static const char msg1[] =
    "From: Alice <alice@example.com>\r\nTo: demo@mailgenic.test\r\nSubject: one\r\n"
    "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello one.\r\n";

struct fixture {
    char *dir;
    char *mail_dir;
    char *index_dir;
    uv_loop_t loop;
    struct store *store;
};

struct result {
    bool done;
    int status;
    uint32_t uid;
    uint32_t uidvalidity;
    struct store_user *user;
    uint32_t new_uids[64];
    size_t count;
    uint32_t removed[64];
};

static char *mg_test_path(struct fixture *f, const char *rel)
{
    char *p = malloc(strlen(f->dir) + strlen(rel) + 2);
    sprintf(p, "%s/%s", f->dir, rel);
    return p;
}

static void wait_done(struct fixture *f, struct result *r)
{
    for (int i = 0; i < 10000 && !r->done; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(r->done);
}

static void fixture_open(struct fixture *f)
{
    uv_loop_init(&f->loop);
    struct store_settings s = { .mail_dir = f->mail_dir, .index_dir = f->index_dir,
                                .index_cache_bytes = 4 << 20 };
    char *error = NULL;
    if (store_open(&f->loop, &s, &f->store, &error) != 0)
        fail_msg("%s", error);
}

static void fixture_close(struct fixture *f)
{
    store_close(&f->store);
    testutil_close_loop(&f->loop);
}

static void user_cb(int status, struct store_user *user, const char *error, void *ctx)
{
    struct result *r = ctx;
    r->done = true;
    r->status = status;
    r->user = user;
    if (status != 0)
        print_error("open failed: %s\n", error);
}

static struct store_user *open_user(struct fixture *f, const char *address, uint64_t quota)
{
    struct result r = { 0 };
    store_user_open(f->store, address, quota, true, user_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    return r.user;
}

static void deliver_cb(int status, const char *error, uint32_t uid, void *ctx)
{
    struct result *r = ctx;
    r->done = true;
    r->status = status;
    r->uid = uid;
    (void)error;
}

static int deliver(struct fixture *f, const char *address, const char *body, uint64_t quota,
                   uint32_t *uid_r)
{
    char head[256];
    snprintf(head, sizeof(head), "Return-Path: <sender@example.com>\r\nDelivered-To: %s\r\n", address);
    struct store_delivery d = { .address = address, .quota_bytes = quota, .head = head,
                                .head_len = strlen(head), .body = body, .body_len = strlen(body),
                                .body_fd = -1, .received = 1795869079 };
    struct result r = { 0 };
    store_deliver(f->store, &d, deliver_cb, &r);
    wait_done(f, &r);
    if (uid_r != NULL)
        *uid_r = r.uid;
    return r.status;
}

static void done_cb(int status, const char *error, void *ctx)
{
    struct result *r = ctx;
    r->done = true;
    r->status = status;
    (void)error;
}

static void copy_cb(int status, const char *error, uint32_t dst_uidvalidity, const uint32_t *uids,
                    const uint32_t *new_uids, size_t count, void *ctx)
{
    struct result *r = ctx;
    (void)uids;
    (void)error;
    r->done = true;
    r->status = status;
    r->uidvalidity = dst_uidvalidity;
    r->count = count;
    memcpy(r->new_uids, new_uids, count * sizeof(uint32_t));
}

static void flags_cb(int status, const char *error, const struct store_flag_change *changes,
                     size_t count, void *ctx)
{
    struct result *r = ctx;
    (void)error;
    (void)changes;
    r->done = true;
    r->status = status;
    r->count = count;
}

static void expunge_cb(int status, const char *error, const uint32_t *uids, size_t count, void *ctx)
{
    struct result *r = ctx;
    (void)error;
    r->done = true;
    r->status = status;
    r->count = count;
    memcpy(r->removed, uids, count * sizeof(uint32_t));
}

static void append_cb(int status, const char *error, uint32_t uidvalidity, uint32_t uid, void *ctx)
{
    struct result *r = ctx;
    (void)error;
    r->done = true;
    r->status = status;
    r->uid = uid;
    r->uidvalidity = uidvalidity;
}

static int count_cb(const struct index_msg_rec *rec, void *ctx)
{
    (void)rec;
    (*(int *)ctx)++;
    return 0;
}

static int msg_count(struct store_user *u, uint32_t mailbox_id)
{
    int n = 0;
    assert_int_equal(store_msg_list(u, mailbox_id, 1, UINT32_MAX, count_cb, &n), 0);
    return n;
}

static int names_cb(const struct store_mailbox *m, void *ctx)
{
    struct mg_buf *b = ctx;
    mg_buf_printf(b, "%s(%s)|", m->name, store_special_use_name(m->rec.special_use) ?: "");
    return 0;
}

static void test_store_deliver_and_read(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    uint32_t uid;
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, &uid), 0);
    assert_int_equal(uid, 1);
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, &uid), 0);
    assert_int_equal(uid, 2);

    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct mg_buf names = MG_BUF_INIT;
    store_mailbox_list(u, names_cb, &names);
    assert_string_equal(mg_buf_cstr(&names),
                        "Archive(\\Archive)|Drafts(\\Drafts)|INBOX()|Junk(\\Junk)|Sent(\\Sent)|Trash(\\Trash)|");
    mg_buf_free(&names);

    struct store_mailbox inbox;
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    assert_int_equal(inbox.rec.messages, 2);
    assert_int_equal(inbox.rec.unseen, 2);
    assert_int_equal(inbox.rec.uidnext, 3);
    assert_true(inbox.is_subscribed);
    assert_int_equal(msg_count(u, inbox.rec.id), 2);

    struct index_msg_rec rec;
    assert_int_equal(store_msg_get(u, inbox.rec.id, 1, &rec), 0);
    assert_true(rec.in_new);
    assert_int_equal(rec.internaldate, 1795869079);
    char *path = store_msg_path(u, "INBOX", &rec);
    size_t len;
    char *content = testutil_read_file(path, &len);
    assert_non_null(content);
    assert_int_equal(len, rec.size);
    assert_non_null(strstr(content, "Delivered-To: demo@mailgenic.test\r\n"));
    assert_non_null(strstr(content, "\r\n\r\nHello one.\r\n"));
    assert_non_null(strstr(path, ",U=1"));
    free(content);
    free(path);

    struct mg_buf cache = MG_BUF_INIT;
    struct store_msg_cache c;
    assert_int_equal(store_msg_cache(u, inbox.rec.id, 1, &cache, &c), 0);
    assert_non_null(strstr(cache.data + c.envelope_off, "\"one\""));
    assert_non_null(strstr(cache.data + c.bodystructure_off, "\"text\" \"plain\""));
    mg_buf_free(&cache);

    assert_int_equal(store_user_bytes_used(u), 2 * rec.size);
    store_user_unref(&u);
    fixture_close(f);
}

static void test_store_quota(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    uint32_t uid;
    assert_int_equal(deliver(f, "small@mailgenic.test", msg1, 400, &uid), 0);
    assert_int_equal(deliver(f, "small@mailgenic.test", msg1, 400, &uid), STORE_ERR_OVER_QUOTA);
    fixture_close(f);
}

static void test_store_flags_copy_move_expunge(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    for (int i = 0; i < 5; i++)
        assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct store_mailbox inbox, trash;
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    uint64_t modseq0 = inbox.rec.highestmodseq;

    uint32_t uids[] = { 1, 2, 3 };
    const char *kw[] = { "$Forwarded", "work" };
    struct store_flags fl = { MAILDIR_FLAG_SEEN | MAILDIR_FLAG_DELETED, kw, 2 };
    struct result r = { 0 };
    store_set_flags(u, inbox.rec.id, uids, 3, STORE_FLAGS_ADD, &fl, flags_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.count, 3);
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    assert_int_equal(inbox.rec.unseen, 2);
    assert_int_equal(inbox.rec.deleted, 3);
    assert_true(inbox.rec.highestmodseq > modseq0);
    struct index_msg_rec rec;
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec), 0);
    assert_false(rec.in_new);
    assert_int_equal(rec.keywords, 3);
    char *path = store_msg_path(u, "INBOX", &rec);
    assert_non_null(strstr(path, "/cur/"));
    assert_non_null(strstr(path, ":2,ST"));
    assert_int_equal(access(path, R_OK), 0);
    free(path);

    char **names;
    unsigned nk;
    assert_int_equal(store_keywords(u, &names, &nk), 0);
    assert_int_equal(nk, 2);
    assert_string_equal(names[1], "work");
    store_keywords_free(names, nk);

    /* COPY 4,5 to Trash, MOVE 1 to Trash. */
    uint32_t cp[] = { 4, 5 };
    memset(&r, 0, sizeof(r));
    store_copy(u, inbox.rec.id, cp, 2, "Trash", false, copy_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.new_uids[0], 1);
    assert_int_equal(r.new_uids[1], 2);
    assert_int_equal(store_mailbox_get(u, "Trash", &trash), 0);
    assert_int_equal(r.uidvalidity, trash.rec.uidvalidity);
    assert_int_equal(trash.rec.messages, 2);
    uint32_t mv[] = { 1 };
    memset(&r, 0, sizeof(r));
    store_copy(u, inbox.rec.id, mv, 1, "Trash", true, copy_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.new_uids[0], 3);
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    assert_int_equal(inbox.rec.messages, 4);
    assert_int_equal(msg_count(u, trash.rec.id), 3);

    /* COPY to a missing mailbox. */
    memset(&r, 0, sizeof(r));
    store_copy(u, inbox.rec.id, cp, 2, "Nope", false, copy_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, STORE_ERR_NOT_FOUND);

    /* EXPUNGE: only \Deleted ones among 2..5 (2 and 3). */
    uint32_t ex[] = { 2, 3, 4, 5 };
    memset(&r, 0, sizeof(r));
    store_expunge(u, inbox.rec.id, ex, 4, true, expunge_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.removed[0], 2);
    assert_int_equal(r.removed[1], 3);
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    assert_int_equal(inbox.rec.messages, 2);
    assert_int_equal(inbox.rec.deleted, 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec), STORE_ERR_NOT_FOUND);

    store_user_unref(&u);
    fixture_close(f);
}

struct changes {
    uint32_t changed[16];
    size_t nc;
    uint32_t expunged[16];
    size_t ne;
};

static int changed_cb(uint32_t uid, uint64_t modseq, void *ctx)
{
    (void)modseq;
    struct changes *c = ctx;
    c->changed[c->nc++] = uid;
    return 0;
}

static int expunged_cb(uint32_t uid, uint64_t modseq, void *ctx)
{
    (void)modseq;
    struct changes *c = ctx;
    c->expunged[c->ne++] = uid;
    return 0;
}

static void wake_cb(void *ctx)
{
    (*(int *)ctx)++;
}

static void test_store_changes_and_watch(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct store_mailbox inbox;
    store_mailbox_get(u, "INBOX", &inbox);
    uint64_t since = inbox.rec.highestmodseq;

    int woken = 0;
    struct store_watch *w = store_watch_add(u, inbox.rec.id, wake_cb, &woken);
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    assert_int_equal(woken, 1);
    uint32_t one[] = { 1 };
    struct store_flags fl = { MAILDIR_FLAG_FLAGGED, NULL, 0 };
    struct result r = { 0 };
    store_set_flags(u, inbox.rec.id, one, 1, STORE_FLAGS_ADD, &fl, flags_cb, &r);
    wait_done(f, &r);
    assert_int_equal(woken, 2);
    uint32_t two[] = { 2 };
    memset(&r, 0, sizeof(r));
    store_expunge(u, inbox.rec.id, two, 1, false, expunge_cb, &r);
    wait_done(f, &r);
    assert_int_equal(woken, 3);
    store_watch_remove(&w);
    assert_null(w);
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    assert_int_equal(woken, 3);

    struct changes c = { 0 };
    assert_int_equal(store_changes_since(u, inbox.rec.id, since, changed_cb, expunged_cb, &c), 0);
    assert_int_equal(c.ne, 1);
    assert_int_equal(c.expunged[0], 2);
    /* 3 (new), 1 (flagged), 4 (new), in MODSEQ order. */
    assert_int_equal(c.nc, 3);
    assert_int_equal(c.changed[0], 3);
    assert_int_equal(c.changed[1], 1);
    assert_int_equal(c.changed[2], 4);
    store_user_unref(&u);
    fixture_close(f);
}

static void test_store_mailbox_ops(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct result r = { 0 };
    store_mailbox_create(u, "Projects/2026/Q4", STORE_SPECIAL_NONE, done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    struct store_mailbox m;
    assert_int_equal(store_mailbox_get(u, "Projects", &m), 0);
    assert_int_equal(store_mailbox_get(u, "Projects/2026", &m), 0);
    memset(&r, 0, sizeof(r));
    store_mailbox_create(u, "Projects", STORE_SPECIAL_NONE, done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, STORE_ERR_EXISTS);

    /* The on-disk layout is Maildir++. */
    char *p = mg_test_path(f, "mail/mailgenic.test/demo/.Projects.2026.Q4/cur");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    free(p);

    /* APPEND into the child, then RENAME the hierarchy. */
    char *base = NULL;
    char *tmp = store_user_tmp_path(u, &base);
    testutil_write_file(tmp, msg1, strlen(msg1));
    memset(&r, 0, sizeof(r));
    struct store_flags fl = { MAILDIR_FLAG_SEEN, NULL, 0 };
    store_append(u, "Projects/2026/Q4", base, &fl, 1000000000, append_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.uid, 1);
    free(tmp);
    free(base);

    memset(&r, 0, sizeof(r));
    store_mailbox_delete(u, "Projects", done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, STORE_ERR_HAS_CHILDREN);

    memset(&r, 0, sizeof(r));
    store_mailbox_rename(u, "Projects", "Work/Old", done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(store_mailbox_get(u, "Projects", &m), STORE_ERR_NOT_FOUND);
    assert_int_equal(store_mailbox_get(u, "Work/Old/2026/Q4", &m), 0);
    assert_int_equal(m.rec.messages, 1);
    struct index_msg_rec rec;
    assert_int_equal(store_msg_get(u, m.rec.id, 1, &rec), 0);
    assert_int_equal(rec.internaldate, 1000000000);
    char *path = store_msg_path(u, "Work/Old/2026/Q4", &rec);
    assert_int_equal(access(path, R_OK), 0);
    assert_non_null(strstr(path, "/.Work.Old.2026.Q4/cur/"));
    free(path);

    /* Delete leaves first. */
    static const char *const order[] = { "Work/Old/2026/Q4", "Work/Old/2026", "Work/Old", "Work" };
    for (size_t i = 0; i < 4; i++) {
        memset(&r, 0, sizeof(r));
        store_mailbox_delete(u, order[i], done_cb, &r);
        wait_done(f, &r);
        assert_int_equal(r.status, 0);
    }
    assert_int_equal(store_mailbox_get(u, "Work", &m), STORE_ERR_NOT_FOUND);
    memset(&r, 0, sizeof(r));
    store_mailbox_delete(u, "INBOX", done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, STORE_ERR_INVALID);
    assert_int_equal(store_user_bytes_used(u), 0);

    /* RENAME INBOX moves its messages and leaves it empty. */
    assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    memset(&r, 0, sizeof(r));
    store_mailbox_rename(u, "INBOX", "Old Inbox", done_cb, &r);
    wait_done(f, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(store_mailbox_get(u, "INBOX", &m), 0);
    assert_int_equal(m.rec.messages, 0);
    assert_int_equal(store_mailbox_get(u, "Old Inbox", &m), 0);
    assert_int_equal(m.rec.messages, 1);
    store_user_unref(&u);
    fixture_close(f);
}

/* Index lost: rebuilt from the Maildir with the same UIDs, UIDVALIDITY
 * and flags; then a file "left by a crash" (UID above UIDNEXT, in new/)
 * and a file dropped in by hand (no UID) are adopted. */
static void test_store_rebuild_and_adopt(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    for (int i = 0; i < 4; i++)
        assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct store_mailbox before;
    store_mailbox_get(u, "INBOX", &before);
    uint32_t ex[] = { 2 };
    struct result r = { 0 };
    store_expunge(u, before.rec.id, ex, 1, false, expunge_cb, &r);
    wait_done(f, &r);
    uint32_t three[] = { 3 };
    struct store_flags fl = { MAILDIR_FLAG_ANSWERED | MAILDIR_FLAG_SEEN, NULL, 0 };
    memset(&r, 0, sizeof(r));
    store_set_flags(u, before.rec.id, three, 1, STORE_FLAGS_ADD, &fl, flags_cb, &r);
    wait_done(f, &r);
    store_user_unref(&u);
    fixture_close(f);

    /* Lose the whole index. */
    testutil_rmtree(f->index_dir);
    fixture_open(f);
    u = open_user(f, "demo@mailgenic.test", 0);
    struct store_mailbox after;
    assert_int_equal(store_mailbox_get(u, "INBOX", &after), 0);
    assert_int_equal(after.rec.uidvalidity, before.rec.uidvalidity);
    assert_int_equal(after.rec.messages, 3);
    assert_int_equal(after.rec.uidnext, 5);
    struct index_msg_rec rec;
    assert_int_equal(store_msg_get(u, after.rec.id, 2, &rec), STORE_ERR_NOT_FOUND);
    assert_int_equal(store_msg_get(u, after.rec.id, 3, &rec), 0);
    assert_int_equal(rec.flags, MAILDIR_FLAG_ANSWERED | MAILDIR_FLAG_SEEN);
    assert_int_equal(store_msg_get(u, after.rec.id, 4, &rec), 0);
    struct mg_buf cache = MG_BUF_INIT;
    struct store_msg_cache c;
    assert_int_equal(store_msg_cache(u, after.rec.id, 4, &cache, &c), 0);
    assert_non_null(strstr(cache.data + c.envelope_off, "\"one\""));
    mg_buf_free(&cache);
    store_user_unref(&u);
    fixture_close(f);

    /* A crash after the rename into new/ but before the index commit:
     * the file carries UID 5 = UIDNEXT. And one file without a UID. */
    char *p1 = mg_test_path(f, "mail/mailgenic.test/demo/new/1795869000.M1P1Q1.host,S=150,U=5");
    testutil_write_file(p1, msg1, strlen(msg1));
    char *p2 = mg_test_path(f, "mail/mailgenic.test/demo/cur/1795869001.M2P2Q2.otherhost:2,S");
    testutil_write_file(p2, msg1, strlen(msg1));
    fixture_open(f);
    u = open_user(f, "demo@mailgenic.test", 0);
    assert_int_equal(store_mailbox_get(u, "INBOX", &after), 0);
    assert_int_equal(after.rec.messages, 5);
    assert_int_equal(after.rec.uidnext, 7);
    assert_int_equal(store_msg_get(u, after.rec.id, 5, &rec), 0);
    assert_true(rec.in_new);
    assert_int_equal(store_msg_get(u, after.rec.id, 6, &rec), 0);
    assert_int_equal(rec.flags, MAILDIR_FLAG_SEEN);
    /* The hand-dropped file was renamed to carry its UID. */
    assert_int_equal(access(p2, F_OK), -1);
    char *path = store_msg_path(u, "INBOX", &rec);
    assert_non_null(strstr(path, ",U=6:2,S"));
    assert_int_equal(access(path, R_OK), 0);
    free(path);
    free(p1);
    free(p2);

    /* A file removed by hand disappears from the index on the next
     * process start. */
    assert_int_equal(store_msg_get(u, after.rec.id, 4, &rec), 0);
    path = store_msg_path(u, "INBOX", &rec);
    unlink(path);
    free(path);
    store_user_unref(&u);
    fixture_close(f);
    fixture_open(f);
    u = open_user(f, "demo@mailgenic.test", 0);
    assert_int_equal(store_mailbox_get(u, "INBOX", &after), 0);
    assert_int_equal(after.rec.messages, 4);
    assert_int_equal(store_msg_get(u, after.rec.id, 4, &rec), STORE_ERR_NOT_FOUND);
    store_user_unref(&u);
    fixture_close(f);
}

static int pending_cb(uint32_t uid, void *ctx)
{
    (void)uid;
    (*(int *)ctx)++;
    return 0;
}

/* 'P' records (deliveries renamed into place before their data was known
 * to be durable) of the user's INBOX, counted through the index. */
static int pending_count(struct fixture *f, const char *address)
{
    struct index_env *env;
    char *error = NULL;
    assert_int_equal(index_env_open(f->index_dir, 4 << 20, &env, &error), 0);
    struct index_user *iu;
    assert_int_equal(index_env_user(env, address, &iu, &error), 0);
    DB_TXN *txn;
    assert_int_equal(index_txn_begin(env, true, &txn), 0);
    struct index_mailbox_rec mbox;
    assert_int_equal(index_get_mailbox(iu->db, txn, "INBOX", false, &mbox), 0);
    int n = 0;
    assert_int_equal(index_walk_pending(iu->db, txn, mbox.id, pending_cb, &n), 0);
    index_txn_commit(txn, false);
    index_user_unref(env, &iu);
    index_env_close(&env);
    return n;
}

static void add_pending(struct fixture *f, const char *address, uint32_t uid)
{
    struct index_env *env;
    char *error = NULL;
    assert_int_equal(index_env_open(f->index_dir, 4 << 20, &env, &error), 0);
    struct index_user *iu;
    assert_int_equal(index_env_user(env, address, &iu, &error), 0);
    DB_TXN *txn;
    assert_int_equal(index_txn_begin(env, false, &txn), 0);
    struct index_mailbox_rec mbox;
    assert_int_equal(index_get_mailbox(iu->db, txn, "INBOX", false, &mbox), 0);
    assert_int_equal(index_put_pending(iu->db, txn, mbox.id, uid), 0);
    assert_int_equal(index_txn_commit(txn, true), 0);
    index_user_unref(env, &iu);
    index_env_close(&env);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* What a power cut can leave of deliveries whose three flushes (file, new/,
 * index log) ran at the same time, and what the next verification makes
 * of it: a recorded file whose data was cut short ('P' record, wrong
 * checksum) goes back to tmp/ and out of the index; one that is whole
 * stays and loses its 'P' record; an unrecorded file with a checksum in
 * its name is adopted only when the checksum holds. */
static void test_store_crash_states(void **state)
{
    struct fixture *f = *state;
    fixture_open(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(deliver(f, "demo@mailgenic.test", msg1, 0, NULL), 0);
    struct store_user *u = open_user(f, "demo@mailgenic.test", 0);
    struct store_mailbox inbox;
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    struct index_msg_rec rec2, rec3;
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec2), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 3, &rec3), 0);
    /* The name carries size and checksum; the UID stays last. */
    assert_non_null(strstr(rec3.base, ",C="));
    assert_non_null(strstr(rec3.base, ",U=3"));
    /* UID 2 is read (\Seen) and moves to cur/ meanwhile. */
    uint32_t two[] = { 2 };
    struct store_flags seen = { MAILDIR_FLAG_SEEN, NULL, 0 };
    struct result fr = { 0 };
    store_set_flags(u, inbox.rec.id, two, 1, STORE_FLAGS_ADD, &seen, flags_cb, &fr);
    wait_done(f, &fr);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec2), 0);
    char *path2 = store_msg_path(u, "INBOX", &rec2);
    assert_non_null(strstr(path2, "/cur/"));
    char *path3 = store_msg_path(u, "INBOX", &rec3);
    store_user_unref(&u);
    fixture_close(f);
    /* A clean stop leaves no 'P' record behind. */
    assert_int_equal(pending_count(f, "demo@mailgenic.test"), 0);

    /* The crash: UIDs 2 and 3 recorded with their 'P' records, the data
     * of 3 never reached the disk (same size, zeros). */
    add_pending(f, "demo@mailgenic.test", 2);
    add_pending(f, "demo@mailgenic.test", 3);
    size_t len;
    char *content = testutil_read_file(path3, &len);
    memset(content, 0, len);
    testutil_write_file(path3, content, len);
    free(content);
    /* Two files the index never recorded: one whole, one cut short. */
    char good[300], bad[300];
    char head[] = "Return-Path: <a@example.com>\r\n";
    struct mg_buf m = MG_BUF_INIT;
    mg_buf_append_str(&m, head);
    mg_buf_append_str(&m, msg1);
    uint32_t sum = maildir_checksum(0, m.data, m.len);
    snprintf(good, sizeof(good), "mail/mailgenic.test/demo/new/1795869100.M1P1Q1.host,C=%08x,S=%zu,U=10",
             sum, m.len);
    snprintf(bad, sizeof(bad), "mail/mailgenic.test/demo/new/1795869101.M1P1Q2.host,C=%08x,S=%zu,U=11",
             sum ^ 1, m.len);
    char *pgood = mg_test_path(f, good), *pbad = mg_test_path(f, bad);
    testutil_write_file(pgood, m.data, m.len);
    testutil_write_file(pbad, m.data, m.len);
    mg_buf_free(&m);

    fixture_open(f);
    u = open_user(f, "demo@mailgenic.test", 0);
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    struct index_msg_rec rec;
    assert_int_equal(store_msg_get(u, inbox.rec.id, 1, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 3, &rec), STORE_ERR_NOT_FOUND);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 10, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 11, &rec), STORE_ERR_NOT_FOUND);
    assert_int_equal(inbox.rec.messages, 3);
    assert_int_equal(inbox.rec.uidnext, 11);
    assert_int_equal(access(path2, R_OK), 0);
    assert_int_equal(access(path3, F_OK), -1);
    assert_int_equal(access(pbad, F_OK), -1);
    /* The two cut short wait in tmp/ for the cleaner. */
    char *tmp = mg_test_path(f, "mail/mailgenic.test/demo/tmp");
    assert_int_equal(count_dir(tmp), 2);
    free(tmp);
    store_user_unref(&u);
    fixture_close(f);
    assert_int_equal(pending_count(f, "demo@mailgenic.test"), 0);
    /* UID 3 is gone for good: a rebuild does not hand it out again. */
    char *uidnext = mg_test_path(f, "mail/mailgenic.test/demo/mailgenic-uidnext");
    content = testutil_read_file(uidnext, &len);
    assert_non_null(content);
    assert_int_equal(atoi(content), 11);
    free(content);
    free(uidnext);

    /* Files without a UID (dropped in by hand), more of them than files
     * with one: every UID stays. */
    for (int i = 0; i < 6; i++) {
        char rel[200];
        snprintf(rel, sizeof(rel), "mail/mailgenic.test/demo/cur/1795869200.M%dP1Q1.host:2,S", i);
        char *p = mg_test_path(f, rel);
        testutil_write_file(p, msg1, strlen(msg1));
        free(p);
    }
    fixture_open(f);
    u = open_user(f, "demo@mailgenic.test", 0);
    assert_int_equal(store_mailbox_get(u, "INBOX", &inbox), 0);
    assert_int_equal(inbox.rec.messages, 9);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 1, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 2, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 10, &rec), 0);
    assert_int_equal(store_msg_get(u, inbox.rec.id, 16, &rec), 0);
    store_user_unref(&u);
    fixture_close(f);
    free(path2);
    free(path3);
    free(pgood);
    free(pbad);
}

static void test_store_mailbox_names(void **state)
{
    (void)state;
    char out[MAILBOX_NAME_MAX + 1];
    const char *err;
    assert_int_equal(mailbox_name_normalize("inbox", 5, out, &err), 0);
    assert_string_equal(out, "INBOX");
    assert_int_equal(mailbox_name_normalize("Inbox/Sub", 9, out, &err), 0);
    assert_string_equal(out, "INBOX/Sub");
    assert_int_equal(mailbox_name_normalize("Inboxes", 7, out, &err), 0);
    assert_string_equal(out, "Inboxes");
    static const char *const bad[] = { "", "/a", "a/", "a//b", "..", "a/../b", ".", "a/./b",
                                       "a%b", "a*", "a\tb", "\xff", "a\x7f" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mailbox_name_normalize(bad[i], strlen(bad[i]), out, &err) == 0)
            fail_msg("accepted bad mailbox name %zu", i);
    }
    char *disk = mailbox_name_to_disk("v1.2/x y");
    assert_string_equal(disk, "v1%2E2.x y");
    char *back = mailbox_name_from_disk(disk);
    assert_string_equal(back, "v1.2/x y");
    free(disk);
    free(back);
    assert_null(mailbox_name_from_disk("a..b"));
    assert_null(mailbox_name_from_disk("deleted%2"));
}

static int setup(void **state)
{
    mg_log_init("test_store");
    mg_log_set_level(MG_LOG_ERROR);
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->mail_dir = malloc(strlen(f->dir) + 16);
    sprintf(f->mail_dir, "%s/mail", f->dir);
    f->index_dir = malloc(strlen(f->dir) + 16);
    sprintf(f->index_dir, "%s/index", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f->mail_dir);
    free(f->index_dir);
    free(f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_mailbox_names),
        cmocka_unit_test_setup_teardown(test_store_deliver_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_flags_copy_move_expunge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_changes_and_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_mailbox_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_rebuild_and_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_crash_states, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
