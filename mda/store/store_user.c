/* Opening a user's store, and bringing the index in line with the Maildir:
 * adopting files the index does not know (a delivery cut short by a crash,
 * a restore from backup, a missing or damaged index) and dropping entries
 * whose file is gone. */
#include "mda/store/store_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

static const struct {
    const char *name;
    enum store_special_use use;
} special_folders[] = {
    { "Drafts", STORE_SPECIAL_DRAFTS },
    { "Sent", STORE_SPECIAL_SENT },
    { "Trash", STORE_SPECIAL_TRASH },
    { "Junk", STORE_SPECIAL_JUNK },
    { "Archive", STORE_SPECIAL_ARCHIVE },
};

/* A UIDVALIDITY that is new for this user: the time, or one more than the
 * last one handed out, so a mailbox deleted and created again within a
 * second still gets a new one. */
static uint32_t next_uidvalidity(struct index_user_rec *u)
{
    uint32_t now = (uint32_t)time(NULL);
    uint32_t v = now > u->last_uidvalidity ? now : u->last_uidvalidity + 1;
    u->last_uidvalidity = v;
    return v;
}

struct create_ctx {
    struct index_user *iu;
    const char *name;
    enum store_special_use use;
    bool subscribe;
    uint32_t disk_uidvalidity; /* from the folder's file, 0 if none */
    bool created;
    uint32_t uidvalidity;
};

static int create_body(DB_TXN *txn, void *ctx)
{
    struct create_ctx *c = ctx;
    DB *db = c->iu->db;
    c->created = false;
    struct index_mailbox_rec mbox;
    int r = index_get_mailbox(db, txn, c->name, true, &mbox);
    if (r == 0) {
        c->uidvalidity = mbox.uidvalidity;
        return 0;
    }
    if (r != DB_NOTFOUND)
        return r;
    struct index_user_rec u;
    r = index_get_user(db, txn, true, &u);
    if (r == DB_NOTFOUND) {
        memset(&u, 0, sizeof(u));
        u.next_mailbox_id = 1;
    } else if (r != 0) {
        return r;
    }
    memset(&mbox, 0, sizeof(mbox));
    mbox.id = u.next_mailbox_id++;
    if (c->disk_uidvalidity != 0) {
        mbox.uidvalidity = c->disk_uidvalidity;
        if (u.last_uidvalidity < c->disk_uidvalidity)
            u.last_uidvalidity = c->disk_uidvalidity;
    } else {
        mbox.uidvalidity = next_uidvalidity(&u);
    }
    mbox.uidnext = 1;
    mbox.highestmodseq = 1;
    mbox.special_use = (uint8_t)c->use;
    c->uidvalidity = mbox.uidvalidity;
    r = index_put_user(db, txn, &u);
    index_user_rec_clear(&u);
    if (r == 0)
        r = index_put_mailbox(db, txn, c->name, &mbox, true);
    if (r == 0 && c->subscribe)
        r = index_put_subscription(db, txn, c->name, true);
    if (r == 0)
        c->created = true;
    return r;
}

static enum store_special_use special_use_parse(const char *name)
{
    for (int u = STORE_SPECIAL_DRAFTS; u <= STORE_SPECIAL_ALL; u++) {
        if (strcasecmp(name, store_special_use_name((enum store_special_use)u)) == 0)
            return (enum store_special_use)u;
    }
    return STORE_SPECIAL_NONE;
}

int store_create_mailbox_locked(struct store *store, struct index_user *iu, const char *root,
                                const char *name, enum store_special_use use, bool subscribe,
                                bool *created_r)
{
    char *folder = store_folder_path(root, name);
    char disk_use[32];
    if (use == STORE_SPECIAL_NONE &&
        maildir_folder_read_meta(folder, MAILDIR_SPECIAL_USE_FILE, disk_use, sizeof(disk_use)) == 0) {
        /* A folder the index forgot (rebuild): its use comes back too. */
        use = special_use_parse(disk_use);
    }
    struct create_ctx c = { .iu = iu, .name = name, .use = use, .subscribe = subscribe,
                            .disk_uidvalidity = maildir_folder_uidvalidity(folder) };
    int r = store_txn_run(store, true, create_body, NULL, &c);
    if (r == 0)
        r = maildir_folder_create(folder, mailbox_name_is_inbox(name), c.uidvalidity);
    if (r == 0 && c.created && use != STORE_SPECIAL_NONE)
        r = maildir_folder_write_meta(folder, MAILDIR_SPECIAL_USE_FILE, store_special_use_name(use));
    free(folder);
    if (created_r != NULL)
        *created_r = c.created;
    return r;
}

/* ---- verification ---- */

struct disk_file {
    uint32_t uid;       /* from ,U= ; 0 when the name has none */
    uint64_t size;
    unsigned flags;
    bool in_new;
    char *name;         /* directory entry */
    size_t base_len;
    time_t mtime;
};

struct disk_listing {
    struct disk_file *files;
    size_t count, cap;
    /* Once sorted (sort_listing): files[0..n_uids) carry UIDs, in UID
     * order; the files without one follow. */
    size_t n_uids;
};

static void listing_free(struct disk_listing *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->files[i].name);
    free(l->files);
    memset(l, 0, sizeof(*l));
}

static int list_dir(const char *folder, const char *sub, bool in_new, struct disk_listing *l)
{
    char *path = mg_asprintf("%s/%s", folder, sub);
    DIR *d = opendir(path);
    if (d == NULL) {
        int e = errno;
        free(path);
        return e == ENOENT ? 0 : -e;
    }
    int dfd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (l->count == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->files = mg_reallocarray(l->files, l->cap, sizeof(*l->files));
        }
        struct disk_file *f = &l->files[l->count++];
        memset(f, 0, sizeof(*f));
        f->name = mg_strdup(de->d_name);
        f->in_new = in_new;
        f->mtime = st.st_mtime;
        if (maildir_parse_name(de->d_name, &f->uid, &f->size, &f->base_len, &f->flags) != 0)
            f->uid = 0;
        /* The real size is what counts (the name may be stale or absent). */
        f->size = (uint64_t)st.st_size;
        if (f->base_len >= MAILDIR_BASE_MAX - 40) {
            /* A name too long for us: leave the file alone, unindexed. */
            free(f->name);
            l->count--;
        }
    }
    closedir(d);
    free(path);
    return 0;
}

static int disk_file_cmp(const void *a, const void *b)
{
    const struct disk_file *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return strcmp(x->name, y->name);
}

struct sync_ctx {
    struct store *store;
    struct index_user *iu;
    const char *name;
    const char *folder;
    struct disk_listing *disk;
    bool is_rebuild;          /* the index had no record of this mailbox */
    /* UIDs whose 'P' record was checked (check_pending): deleted by the
     * transaction. */
    const uint32_t *pending;
    size_t n_pending;
    /* Work from the body, applied in before_commit. */
    struct rename_op { char *from, *to; } *renames;
    size_t n_renames;
    unsigned adopted, dropped, set_aside;
    uint32_t uidnext;
};

struct index_uids {
    uint32_t *uids;
    size_t count, cap;
};

static int collect_uid_cb(const struct index_msg_rec *rec, void *ctx)
{
    struct index_uids *u = ctx;
    if (u->count == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 256;
        u->uids = mg_reallocarray(u->uids, u->cap, sizeof(*u->uids));
    }
    u->uids[u->count++] = rec->uid;
    return 0;
}

static bool uid_in_sorted(const uint32_t *uids, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uids[mid] == uid)
            return true;
        if (uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The first file that carries uid, or -1. */
static long disk_find_uid(const struct disk_listing *l, uint32_t uid)
{
    size_t lo = 0, hi = l->n_uids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->files[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n_uids && l->files[lo].uid == uid ? (long)lo : -1;
}

static bool disk_has_uid(const struct disk_listing *l, uint32_t uid)
{
    return disk_find_uid(l, uid) >= 0;
}

/* Sorts by UID; files without a UID sort first, and go after the others
 * so that they get UIDs above every UID the names carry. */
static void sort_listing(struct disk_listing *l)
{
    if (l->count > 0)
        qsort(l->files, l->count, sizeof(*l->files), disk_file_cmp);
    size_t n0 = 0;
    while (n0 < l->count && l->files[n0].uid == 0)
        n0++;
    if (n0 > 0 && n0 < l->count) {
        struct disk_file *tmp = mg_reallocarray(NULL, n0, sizeof(*tmp));
        memcpy(tmp, l->files, n0 * sizeof(*tmp));
        memmove(l->files, l->files + n0, (l->count - n0) * sizeof(*tmp));
        memcpy(l->files + l->count - n0, tmp, n0 * sizeof(*tmp));
        free(tmp);
    }
    l->n_uids = l->count - n0;
}

static void listing_remove(struct disk_listing *l, size_t i)
{
    free(l->files[i].name);
    memmove(l->files + i, l->files + i + 1, (l->count - i - 1) * sizeof(*l->files));
    l->count--;
    if (i < l->n_uids)
        l->n_uids--;
}

static void sync_ctx_reset(struct sync_ctx *s)
{
    for (size_t i = 0; i < s->n_renames; i++) {
        free(s->renames[i].from);
        free(s->renames[i].to);
    }
    free(s->renames);
    s->renames = NULL;
    s->n_renames = 0;
    s->adopted = 0;
    s->dropped = 0;
    s->set_aside = 0;
}

static void sync_add_rename(struct sync_ctx *s, char *from, char *to)
{
    s->renames = mg_reallocarray(s->renames, s->n_renames + 1, sizeof(*s->renames));
    s->renames[s->n_renames].from = from;
    s->renames[s->n_renames].to = to;
    s->n_renames++;
}

/* Where a file that a crash cut short goes: tmp/, which is what it was
 * (a write in progress, never acknowledged); clean_tmp removes it later. */
static char *set_aside_path(const char *folder, const char *path)
{
    const char *name = strrchr(path, '/');
    return mg_asprintf("%s/tmp/%s", folder, name != NULL ? name + 1 : path);
}

static int sync_body(DB_TXN *txn, void *ctx)
{
    struct sync_ctx *s = ctx;
    DB *db = s->iu->db;
    sync_ctx_reset(s);
    struct index_mailbox_rec mbox;
    int r = index_get_mailbox(db, txn, s->name, true, &mbox);
    if (r != 0)
        return r;
    struct index_user_rec user;
    r = index_get_user(db, txn, true, &user);
    if (r != 0)
        return r;

    struct index_uids known = { 0 };
    r = index_walk_msgs(db, txn, mbox.id, 1, UINT32_MAX, collect_uid_cb, &known);
    uint64_t modseq = mbox.highestmodseq + 1;
    bool changed = false;

    /* UIDs up to the folder's recorded UIDNEXT were handed out before
     * (their messages expunged since): never again. */
    char value[16];
    if (maildir_folder_read_meta(s->folder, MAILDIR_UIDNEXT_FILE, value, sizeof(value)) == 0) {
        unsigned long next = strtoul(value, NULL, 10);
        if (next > mbox.uidnext && next <= UINT32_MAX) {
            mbox.uidnext = (uint32_t)next;
            changed = true;
        }
    }

    /* Entries whose file is gone. */
    for (size_t i = 0; r == 0 && i < known.count; i++) {
        if (disk_has_uid(s->disk, known.uids[i]))
            continue;
        struct index_msg_rec rec;
        if ((r = index_get_msg(db, txn, mbox.id, known.uids[i], true, &rec)) != 0)
            break;
        r = index_del_msg(db, txn, mbox.id, &rec, modseq);
        mbox.messages--;
        if (!(rec.flags & MAILDIR_FLAG_SEEN))
            mbox.unseen--;
        if (rec.flags & MAILDIR_FLAG_DELETED)
            mbox.deleted--;
        mbox.bytes -= rec.size;
        user.bytes_used -= rec.size < user.bytes_used ? rec.size : user.bytes_used;
        if (user.message_count > 0)
            user.message_count--;
        s->dropped++;
        changed = true;
    }

    /* Files the index does not know. On a rebuild UIDs are taken as the
     * names carry them; otherwise only UIDs at or above UIDNEXT are (a
     * client that saw UIDNEXT must never see a lower new UID). */
    uint32_t prev_uid = 0;
    for (size_t i = 0; r == 0 && i < s->disk->count; i++) {
        struct disk_file *f = &s->disk->files[i];
        bool duplicate = f->uid != 0 && f->uid == prev_uid;
        prev_uid = f->uid;
        if (f->uid != 0 && !duplicate && uid_in_sorted(known.uids, known.count, f->uid))
            continue;
        char *old_path = mg_asprintf("%s/%s/%s", s->folder, f->in_new ? "new" : "cur", f->name);
        if (maildir_file_check(old_path) == 0) {
            /* A delivery renamed into place whose data a crash cut short
             * (its name carries size and checksum); it got no 250. */
            sync_add_rename(s, old_path, set_aside_path(s->folder, old_path));
            s->set_aside++;
            continue;
        }
        struct store_new_msg msg = { 0 };
        if (f->uid != 0 && !duplicate && (s->is_rebuild || f->uid >= mbox.uidnext))
            msg.uid = f->uid;
        msg.flags = f->flags;
        msg.internaldate = f->mtime;
        msg.size = f->size;
        msg.in_new = f->in_new;
        struct mg_buf cache = MG_BUF_INIT;
        size_t off[3] = { 0 }, len[3] = { 0 };
        if (store_compute_cache(old_path, &cache, off, len) == 0) {
            store_new_msg_set_cache(&msg, &cache, off, len);
        }
        /* The base keeps the file's unique part; size and UID are ours. */
        char unique[MAILDIR_BASE_MAX];
        const char *comma = memchr(f->name, ',', f->base_len);
        size_t ulen = comma != NULL ? (size_t)(comma - f->name) : f->base_len;
        snprintf(unique, sizeof(unique), "%.*s", (int)ulen, f->name);
        if (msg.uid == 0)
            msg.uid = mbox.uidnext;
        maildir_final_base(msg.base, unique, msg.size, msg.uid);
        uint32_t uid_before = msg.uid;
        r = store_txn_add_msg(db, txn, &mbox, &user, &msg);
        mg_assert(r != 0 || msg.uid == uid_before);
        if (r == 0) {
            char rel[MAILDIR_BASE_MAX + 16];
            maildir_file_rel(rel, sizeof(rel), msg.base, msg.in_new, msg.flags);
            char *new_path = mg_asprintf("%s/%s", s->folder, rel);
            if (strcmp(new_path, old_path) != 0) {
                sync_add_rename(s, old_path, new_path);
                old_path = NULL;
            } else {
                free(new_path);
            }
            s->adopted++;
            changed = true;
        }
        free(old_path);
        mg_buf_free(&cache);
    }
    if (r == 0 && changed) {
        if (mbox.highestmodseq < modseq)
            mbox.highestmodseq = modseq;
        r = index_put_mailbox(db, txn, s->name, &mbox, false);
        if (r == 0)
            r = index_put_user(db, txn, &user);
    }
    for (size_t i = 0; r == 0 && i < s->n_pending; i++)
        r = index_del_pending(db, txn, mbox.id, s->pending[i]);
    s->uidnext = mbox.uidnext;
    index_user_rec_clear(&user);
    free(known.uids);
    return r;
}

static int sync_before_commit(void *ctx)
{
    struct sync_ctx *s = ctx;
    for (size_t i = 0; i < s->n_renames; i++) {
        if (rename(s->renames[i].from, s->renames[i].to) != 0)
            return errno;
    }
    if (s->dropped > 0) {
        /* The UIDs of dropped entries must not come back after a rebuild
         * from the Maildir alone (the top one may be among them). */
        char value[16];
        snprintf(value, sizeof(value), "%u", s->uidnext);
        int r = maildir_folder_write_meta(s->folder, MAILDIR_UIDNEXT_FILE, value);
        if (r < 0)
            return -r;
    }
    if (s->n_renames > 0) {
        char *cur = mg_asprintf("%s/cur", s->folder);
        char *nw = mg_asprintf("%s/new", s->folder);
        maildir_fsync_dir(cur);
        maildir_fsync_dir(nw);
        free(cur);
        free(nw);
    }
    return 0;
}

/* Files in tmp/ are deliveries and APPENDs being written; one that is old
 * was left by a crash (never acknowledged) and goes, as in Dovecot. A young
 * one may be another process's write in flight: it stays until it is old. */
static void clean_tmp(const char *folder)
{
    char *path = mg_asprintf("%s/tmp", folder);
    DIR *d = opendir(path);
    free(path);
    if (d == NULL)
        return;
    time_t limit = time(NULL) - STORE_TMP_MAX_AGE;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_mtime >= limit)
            continue;
        unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

struct pending_list {
    uint32_t *uids;
    size_t count, cap;
};

static int collect_pending_cb(uint32_t uid, void *ctx)
{
    struct pending_list *l = ctx;
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->uids = mg_reallocarray(l->uids, l->cap, sizeof(*l->uids));
    }
    l->uids[l->count++] = uid;
    return 0;
}

/* Deliveries renamed into place before their data was known to be on disk
 * whose sync was never confirmed ('P' records): a crash may have cut them
 * short. Each file (found by its UID, wherever a flag change put it) is
 * checked against the size and checksum its name carries; one that fails
 * goes back to tmp/ (it got no 250) and out of the listing, so that the
 * comparison that follows drops its entry; one that passes is synced, and
 * its record is deleted by that comparison. */
static int check_pending(struct store *store, struct index_user *iu, const char *folder,
                         const char *name, struct disk_listing *disk, struct pending_list *out)
{
    DB_TXN *txn;
    int r = index_txn_begin(store->index, true, &txn);
    if (r != 0)
        return r;
    struct index_mailbox_rec mbox;
    r = index_get_mailbox(iu->db, txn, name, false, &mbox);
    if (r == 0)
        r = index_walk_pending(iu->db, txn, mbox.id, collect_pending_cb, out);
    index_txn_commit(txn, false);
    if (r == DB_NOTFOUND)
        return 0; /* no such mailbox yet */
    for (size_t i = 0; r == 0 && i < out->count; i++) {
        long k = disk_find_uid(disk, out->uids[i]);
        if (k < 0)
            continue; /* gone: the comparison drops the entry */
        struct disk_file *f = &disk->files[k];
        char *path = mg_asprintf("%s/%s/%s", folder, f->in_new ? "new" : "cur", f->name);
        int c = maildir_file_check(path);
        if (c == 0) {
            char *aside = set_aside_path(folder, path);
            if (rename(path, aside) == 0) {
                mg_log_warning("store", "a delivery cut short by a crash was set aside user=%s mailbox=%s file=%s",
                               iu->address, name, aside);
                listing_remove(disk, (size_t)k);
            } else {
                r = errno;
            }
            free(aside);
        } else if (c == 1 || c == -1) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                if (fdatasync(fd) != 0)
                    r = errno;
                close(fd);
            }
        }
        free(path);
    }
    return r;
}

static int sync_folder(struct store *store, struct index_user *iu, const char *root,
                       const char *name, bool is_rebuild)
{
    char *folder = store_folder_path(root, name);
    clean_tmp(folder);
    struct pending_list pending = { 0 };
    struct disk_listing disk = { 0 };
    int r = list_dir(folder, "new", true, &disk);
    if (r == 0)
        r = list_dir(folder, "cur", false, &disk);
    if (r == 0) {
        sort_listing(&disk);
        r = check_pending(store, iu, folder, name, &disk, &pending);
    }
    if (r == 0) {
        struct sync_ctx s = { .store = store, .iu = iu, .name = name, .folder = folder,
                              .disk = &disk, .is_rebuild = is_rebuild,
                              .pending = pending.uids, .n_pending = pending.count };
        r = store_txn_run(store, true, sync_body, sync_before_commit, &s);
        if (r == 0 && (s.adopted > 0 || s.dropped > 0 || s.set_aside > 0))
            mg_log_notice("store", "index synchronised with maildir user=%s mailbox=%s adopted=%u dropped=%u set_aside=%u",
                          iu->address, name, s.adopted, s.dropped, s.set_aside);
        sync_ctx_reset(&s);
    }
    listing_free(&disk);
    free(pending.uids);
    free(folder);
    return r;
}

struct name_list {
    char **names;
    bool *is_new;
    size_t count;
};

static void name_list_add(struct name_list *l, const char *name, bool is_new)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->names[i], name) == 0)
            return;
    }
    l->names = mg_reallocarray(l->names, l->count + 1, sizeof(*l->names));
    l->is_new = mg_reallocarray(l->is_new, l->count + 1, sizeof(*l->is_new));
    l->names[l->count] = mg_strdup(name);
    l->is_new[l->count] = is_new;
    l->count++;
}

static void name_list_free(struct name_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
    free(l->is_new);
}

static int index_names_cb(const char *name, const struct index_mailbox_rec *rec, void *ctx)
{
    (void)rec;
    name_list_add(ctx, name, false);
    return 0;
}

struct drop_ctx {
    struct index_user *iu;
    const char *name;
};

static int drop_mailbox_body(DB_TXN *txn, void *ctx)
{
    struct drop_ctx *d = ctx;
    struct index_mailbox_rec mbox;
    int r = index_get_mailbox(d->iu->db, txn, d->name, true, &mbox);
    if (r != 0)
        return r == DB_NOTFOUND ? 0 : r;
    struct index_uids known = { 0 };
    r = index_walk_msgs(d->iu->db, txn, mbox.id, 1, UINT32_MAX, collect_uid_cb, &known);
    struct index_user_rec user;
    if (r == 0)
        r = index_get_user(d->iu->db, txn, true, &user);
    if (r != 0) {
        free(known.uids);
        return r;
    }
    for (size_t i = 0; r == 0 && i < known.count; i++) {
        struct index_msg_rec rec;
        if ((r = index_get_msg(d->iu->db, txn, mbox.id, known.uids[i], true, &rec)) == 0) {
            r = index_del_msg(d->iu->db, txn, mbox.id, &rec, mbox.highestmodseq + 1);
            user.bytes_used -= rec.size < user.bytes_used ? rec.size : user.bytes_used;
            if (user.message_count > 0)
                user.message_count--;
        }
    }
    if (r == 0)
        r = index_prune_expunges(d->iu->db, txn, mbox.id, UINT64_MAX);
    if (r == 0)
        r = index_del_mailbox(d->iu->db, txn, d->name, mbox.id);
    if (r == 0)
        r = index_put_user(d->iu->db, txn, &user);
    index_user_rec_clear(&user);
    free(known.uids);
    return r;
}

static int collect_subscription_cb(const char *name, void *ctx)
{
    struct mg_buf *b = ctx;
    mg_buf_append_str(b, name);
    mg_buf_append_byte(b, '\n');
    return 0;
}

int store_save_subscriptions(struct store *store, struct index_user *iu, const char *root)
{
    struct mg_buf b = MG_BUF_INIT;
    DB_TXN *txn;
    int r = index_txn_begin(store->index, true, &txn);
    if (r == 0) {
        r = index_walk_subscriptions(iu->db, txn, collect_subscription_cb, &b);
        index_txn_commit(txn, false);
    }
    if (r == 0) {
        if (b.len > 0)
            b.len--; /* the writer ends the last line */
        r = maildir_folder_write_meta(root, MAILDIR_SUBSCRIPTIONS_FILE, mg_buf_cstr(&b));
    }
    mg_buf_free(&b);
    return r;
}

struct restore_ctx {
    struct index_user *iu;
    char **names;
    size_t count;
};

static int restore_subscriptions_body(DB_TXN *txn, void *ctx)
{
    struct restore_ctx *c = ctx;
    int r = 0;
    for (size_t i = 0; r == 0 && i < c->count; i++)
        r = index_put_subscription(c->iu->db, txn, c->names[i], true);
    return r;
}

/* A new index (first use, or a rebuild): the subscriptions the Maildir
 * kept come back. Names that are not valid mailbox names are skipped. */
static int restore_subscriptions(struct store *store, struct index_user *iu, const char *root)
{
    char *path = mg_asprintf("%s/%s", root, MAILDIR_SUBSCRIPTIONS_FILE);
    FILE *f = fopen(path, "re");
    free(path);
    if (f == NULL)
        return 0;
    struct restore_ctx c = { iu, NULL, 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0 && c.count < 100000) {
        line[strcspn(line, "\r\n")] = '\0';
        char norm[MAILBOX_NAME_MAX + 1];
        const char *why;
        if (line[0] == '\0' || mailbox_name_normalize(line, strlen(line), norm, &why) != 0)
            continue;
        c.names = mg_reallocarray(c.names, c.count + 1, sizeof(*c.names));
        c.names[c.count++] = mg_strdup(norm);
    }
    free(line);
    fclose(f);
    int r = c.count > 0 ? store_txn_run(store, true, restore_subscriptions_body, NULL, &c) : 0;
    for (size_t i = 0; i < c.count; i++)
        free(c.names[i]);
    free(c.names);
    return r;
}

int store_verify_user(struct store *store, struct index_user *iu, const char *root,
                      char *error, size_t error_size)
{
    pthread_mutex_lock(&iu->verify_lock);
    if (iu->is_verified) {
        pthread_mutex_unlock(&iu->verify_lock);
        return 0;
    }
    struct name_list names = { 0 };
    int r = 0;
    DB_TXN *txn;
    if ((r = index_txn_begin(store->index, true, &txn)) == 0) {
        r = index_walk_mailboxes(iu->db, txn, index_names_cb, &names);
        index_txn_commit(txn, false);
    }
    size_t in_index = names.count;
    bool inbox_known = false;
    for (size_t i = 0; i < in_index; i++)
        inbox_known |= strcmp(names.names[i], "INBOX") == 0;
    if (!inbox_known)
        name_list_add(&names, "INBOX", true);

    /* Folders on disk: ".Name" directories. */
    DIR *d = opendir(root);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *name = mailbox_name_from_disk(de->d_name + 1);
            if (name == NULL)
                continue;
            char *cur = mg_asprintf("%s/%s/cur", root, de->d_name);
            struct stat st;
            if (stat(cur, &st) == 0 && S_ISDIR(st.st_mode))
                name_list_add(&names, name, true);
            free(cur);
            free(name);
        }
        closedir(d);
    }

    for (size_t i = 0; r == 0 && i < names.count; i++) {
        const char *name = names.names[i];
        char *folder = store_folder_path(root, name);
        struct stat st;
        bool on_disk = stat(folder, &st) == 0;
        free(folder);
        if (i < in_index && !on_disk && strcmp(name, "INBOX") != 0) {
            /* The operator removed the folder: forget it. */
            struct drop_ctx dc = { iu, name };
            r = store_txn_run(store, true, drop_mailbox_body, NULL, &dc);
            continue;
        }
        bool created = false;
        r = store_create_mailbox_locked(store, iu, root, name, STORE_SPECIAL_NONE,
                                        strcmp(name, "INBOX") == 0, &created);
        if (r == 0)
            r = sync_folder(store, iu, root, name, created);
    }
    name_list_free(&names);
    if (r == 0 && !inbox_known) {
        pthread_mutex_lock(&iu->subscriptions_lock);
        r = restore_subscriptions(store, iu, root);
        pthread_mutex_unlock(&iu->subscriptions_lock);
    }
    if (r == 0)
        iu->is_verified = true;
    else
        snprintf(error, error_size, "cannot synchronise the index with the maildir: %s",
                 r > 0 ? strerror(r) : db_strerror(r));
    pthread_mutex_unlock(&iu->verify_lock);
    return r;
}

/* ---- the open job ---- */

struct open_job {
    struct store_job job;
    char *address;
    char *root;
    uint64_t quota;
    bool create_special;
    struct index_user *iu;
    store_user_cb *cb;
    void *ctx;
};

static int open_index(struct store *store, const char *address, struct index_user **iu_r,
                      char *error, size_t error_size)
{
    char *err = NULL;
    if (index_env_user(store->index, address, iu_r, &err) == 0)
        return 0;
    /* A database that does not open is damaged: set it aside and start
     * again from the Maildir. */
    mg_log_error("store", "index unusable user=%s error=%s", address, err);
    free(err);
    err = NULL;
    index_env_discard_user(store->index, address);
    if (index_env_user(store->index, address, iu_r, &err) == 0)
        return 0;
    snprintf(error, error_size, "%s", err);
    free(err);
    return -1;
}

static int note_use_cb(const char *name, const struct index_mailbox_rec *rec, void *ctx)
{
    bool *have = ctx;
    (void)name;
    if (rec->special_use <= STORE_SPECIAL_ALL)
        have[rec->special_use] = true;
    return 0;
}

static void open_work(struct store_job *job)
{
    struct open_job *o = (struct open_job *)job;
    struct store *store = job->store;
    if (open_index(store, o->address, &o->iu, job->error, sizeof(job->error)) != 0) {
        job->status = STORE_ERR_INTERNAL;
        return;
    }
    int r = store_verify_user(store, o->iu, o->root, job->error, sizeof(job->error));
    if (r == DB_VERIFY_BAD || r == DB_RUNRECOVERY) {
        /* Records we cannot read: rebuild the whole index. */
        index_user_unref(store->index, &o->iu);
        index_env_discard_user(store->index, o->address);
        if (open_index(store, o->address, &o->iu, job->error, sizeof(job->error)) == 0)
            r = store_verify_user(store, o->iu, o->root, job->error, sizeof(job->error));
    }
    if (r != 0) {
        job->status = store_status_from_errno(r > 0 ? r : EIO);
        return;
    }
    if (o->create_special) {
        /* The special-use folders a user has none of yet (a migrated
         * account may call its Sent folder "Sent Items"; a renamed one
         * keeps its use). */
        bool have[STORE_SPECIAL_ALL + 1] = { false };
        DB_TXN *txn;
        if (index_txn_begin(store->index, true, &txn) == 0) {
            index_walk_mailboxes(o->iu->db, txn, note_use_cb, have);
            index_txn_commit(txn, false);
        }
        bool created_any = false;
        pthread_mutex_lock(&o->iu->subscriptions_lock);
        for (size_t i = 0; i < sizeof(special_folders) / sizeof(special_folders[0]); i++) {
            bool created = false;
            if (!have[special_folders[i].use])
                store_create_mailbox_locked(store, o->iu, o->root, special_folders[i].name,
                                            special_folders[i].use, true, &created);
            created_any |= created;
        }
        if (created_any)
            store_save_subscriptions(store, o->iu, o->root);
        pthread_mutex_unlock(&o->iu->subscriptions_lock);
    }
}

static void open_after(struct store_job *job)
{
    struct open_job *o = (struct open_job *)job;
    struct store *store = job->store;
    struct store_user *user = NULL;
    if (job->status == 0) {
        user = mg_strmap_get(store->users, o->address);
        if (user != NULL) {
            /* Opened meanwhile by someone else: share it. */
            user->refcount++;
            index_user_unref(store->index, &o->iu);
        } else {
            user = mg_calloc(1, sizeof(*user));
            user->store = store;
            user->address = o->address;
            user->root = o->root;
            user->iu = o->iu;
            user->refcount = 1;
            o->address = NULL;
            o->root = NULL;
            mg_strmap_set(store->users, user->address, user);
        }
        user->quota_bytes = o->quota;
    } else if (o->iu != NULL) {
        index_user_unref(store->index, &o->iu);
    }
    o->cb(job->status, user, job->error, o->ctx);
    free(o->address);
    free(o->root);
    free(o);
}

void store_user_open(struct store *store, const char *address, uint64_t quota_bytes,
                     bool create_special, store_user_cb *cb, void *ctx)
{
    struct store_user *user = mg_strmap_get(store->users, address);
    if (user != NULL && !create_special) {
        user->refcount++;
        user->quota_bytes = quota_bytes;
        cb(STORE_OK, user, NULL, ctx);
        return;
    }
    struct open_job *o = mg_calloc(1, sizeof(*o));
    o->address = mg_strdup(address);
    o->root = maildir_user_root(store->mail_dir, address);
    o->quota = quota_bytes;
    o->create_special = create_special;
    o->cb = cb;
    o->ctx = ctx;
    store_job_start(store, &o->job, open_work, open_after);
}
