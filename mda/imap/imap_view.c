/* The selected mailbox as a session sees it, and the untagged updates
 * that keep the client's copy in step (RFC 3501 7.3.1, 7.4.1, 5.5). */
#include "mda/imap/imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

static void view_watch_cb(void *ctx)
{
    struct imap_session *s = ctx;
    if (s->view == NULL)
        return;
    s->view->is_dirty = true;
    /* An idling client hears about changes at once. */
    if (s->is_idling && imap_session_is_alive(s))
        imap_view_sync(s, true);
}

static int load_uid_cb(const struct index_msg_rec *rec, void *ctx)
{
    struct imap_view *v = ctx;
    if (v->count == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->uids = mg_reallocarray(v->uids, v->cap, sizeof(*v->uids));
    }
    v->uids[v->count++] = rec->uid;
    if (v->first_unseen == 0 && !(rec->flags & MAILDIR_FLAG_SEEN))
        v->first_unseen = v->count;
    return 0;
}

/* UIDs come in ascending order. */
static void view_add_recent(struct imap_view *v, uint32_t uid)
{
    if (v->n_recent == v->cap_recent) {
        v->cap_recent = v->cap_recent ? v->cap_recent * 2 : 16;
        v->recent = mg_reallocarray(v->recent, v->cap_recent, sizeof(*v->recent));
    }
    v->recent[v->n_recent++] = uid;
}

static long find_u32(const uint32_t *a, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] == x)
            return (long)mid;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

struct imap_view *imap_view_new(struct imap_session *s, const struct store_mailbox *m,
                                bool readonly)
{
    struct imap_view *v = mg_calloc(1, sizeof(*v));
    v->name = mg_strdup(m->name);
    v->mailbox_id = m->rec.id;
    v->uidvalidity = m->rec.uidvalidity;
    v->is_readonly = readonly;
    /* Read the MODSEQ before the list: a change in between is then
     * reported again, never missed. */
    v->modseq = m->rec.highestmodseq;
    store_msg_list(s->user, m->rec.id, 1, UINT32_MAX, load_uid_cb, v);
    /* Idle sessions are most of them: no spare room in the list until a
     * new message needs it. */
    if (v->cap > v->count) {
        v->cap = v->count;
        if (v->count == 0)
            mg_free(&v->uids);
        else
            v->uids = mg_reallocarray(v->uids, v->cap, sizeof(*v->uids));
    }
    /* SELECT takes the \Recent of what it sees; EXAMINE only looks. */
    uint32_t top = v->count > 0 ? v->uids[v->count - 1] : 0;
    uint32_t above = readonly ? store_recent_mark(s->user, m->rec.id, m->rec.recent_uid)
                              : store_claim_recent(s->user, m->rec.id, m->rec.recent_uid, top);
    for (size_t i = 0; i < v->count; i++) {
        if (v->uids[i] > above)
            view_add_recent(v, v->uids[i]);
    }
    if (v->cap_recent > v->n_recent && v->n_recent > 0) {
        v->cap_recent = v->n_recent;
        v->recent = mg_reallocarray(v->recent, v->cap_recent, sizeof(*v->recent));
    }
    v->watch = store_watch_add(s->user, m->rec.id, view_watch_cb, s);
    char **names;
    unsigned n;
    if (store_keywords(s->user, &names, &n) == 0) {
        v->keyword_count = n;
        store_keywords_free(names, n);
    }
    return v;
}

void imap_view_free(struct imap_view **view)
{
    struct imap_view *v = *view;
    if (v == NULL)
        return;
    store_watch_remove(&v->watch);
    free(v->name);
    free(v->uids);
    free(v->recent);
    free(v->pending_expunges);
    free(v->own);
    free(v);
    *view = NULL;
}

long imap_view_find(const struct imap_view *view, uint32_t uid)
{
    return find_u32(view->uids, view->count, uid);
}

bool imap_view_is_recent(const struct imap_view *view, uint32_t uid)
{
    return find_u32(view->recent, view->n_recent, uid) >= 0;
}

void imap_view_note_own_change(struct imap_view *view, uint32_t uid, uint64_t modseq)
{
    view->own = mg_reallocarray(view->own, view->n_own + 1, sizeof(*view->own));
    view->own[view->n_own].uid = uid;
    view->own[view->n_own].modseq = modseq;
    view->n_own++;
}

static const char *const system_flags[] = { "\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                            "\\Draft" };

void imap_view_write_flags(struct imap_session *s, struct mg_buf *out, uint32_t flags,
                           uint64_t keywords, bool is_recent)
{
    mg_buf_append_byte(out, '(');
    bool first = true;
    for (unsigned i = 0; i < 5; i++) {
        if (flags & (1u << i)) {
            if (!first)
                mg_buf_append_byte(out, ' ');
            mg_buf_append_str(out, system_flags[i]);
            first = false;
        }
    }
    if (is_recent) {
        if (!first)
            mg_buf_append_byte(out, ' ');
        mg_buf_append_str(out, "\\Recent");
        first = false;
    }
    if (keywords != 0) {
        char **names;
        unsigned n;
        if (store_keywords(s->user, &names, &n) == 0) {
            for (unsigned i = 0; i < n && i < 64; i++) {
                if (keywords & (1ull << i)) {
                    if (!first)
                        mg_buf_append_byte(out, ' ');
                    mg_buf_append_str(out, names[i]);
                    first = false;
                }
            }
            store_keywords_free(names, n);
        }
    }
    mg_buf_append_byte(out, ')');
}

void imap_view_write_flag_lists(struct imap_session *s, struct mg_buf *out)
{
    char **names = NULL;
    unsigned n = 0;
    store_keywords(s->user, &names, &n);
    mg_buf_append_str(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (unsigned i = 0; i < n; i++)
        mg_buf_printf(out, " %s", names[i]);
    mg_buf_append_str(out, ")\r\n");
    if (s->view != NULL && s->view->is_readonly) {
        mg_buf_append_str(out, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
    } else {
        mg_buf_append_str(out, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for (unsigned i = 0; i < n; i++)
            mg_buf_printf(out, " %s", names[i]);
        mg_buf_printf(out, "%s)] Flags permitted.\r\n", n < INDEX_KEYWORDS_MAX ? " \\*" : "");
    }
    if (s->view != NULL)
        s->view->keyword_count = n;
    store_keywords_free(names, n);
}

/* ---- sync ---- */

struct sync_collect {
    uint32_t *changed;
    size_t n_changed, cap_changed;
    uint32_t *expunged;
    size_t n_expunged, cap_expunged;
    uint64_t max_modseq;
};

static int collect_changed(uint32_t uid, uint64_t modseq, void *ctx)
{
    struct sync_collect *c = ctx;
    if (c->n_changed == c->cap_changed) {
        c->cap_changed = c->cap_changed ? c->cap_changed * 2 : 32;
        c->changed = mg_reallocarray(c->changed, c->cap_changed, sizeof(*c->changed));
    }
    c->changed[c->n_changed++] = uid;
    if (modseq > c->max_modseq)
        c->max_modseq = modseq;
    return 0;
}

static int collect_expunged(uint32_t uid, uint64_t modseq, void *ctx)
{
    struct sync_collect *c = ctx;
    if (c->n_expunged == c->cap_expunged) {
        c->cap_expunged = c->cap_expunged ? c->cap_expunged * 2 : 32;
        c->expunged = mg_reallocarray(c->expunged, c->cap_expunged, sizeof(*c->expunged));
    }
    c->expunged[c->n_expunged++] = uid;
    if (modseq > c->max_modseq)
        c->max_modseq = modseq;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_own_change(struct imap_view *v, uint32_t uid, uint64_t modseq)
{
    for (size_t i = 0; i < v->n_own; i++) {
        if (v->own[i].uid == uid && v->own[i].modseq == modseq)
            return true;
    }
    return false;
}

static void report_expunges(struct imap_session *s, struct mg_buf *out)
{
    struct imap_view *v = s->view;
    /* Highest sequence numbers first, so earlier numbers stay valid for
     * the client while it applies them. */
    for (size_t i = v->n_pending_expunges; i-- > 0;) {
        long pos = imap_view_find(v, v->pending_expunges[i]);
        if (pos < 0)
            continue;
        mg_buf_printf(out, "* %ld EXPUNGE\r\n", pos + 1);
        memmove(v->uids + pos, v->uids + pos + 1, (v->count - (size_t)pos - 1) * sizeof(*v->uids));
        v->count--;
        long r = find_u32(v->recent, v->n_recent, v->pending_expunges[i]);
        if (r >= 0) {
            memmove(v->recent + r, v->recent + r + 1,
                    (v->n_recent - (size_t)r - 1) * sizeof(*v->recent));
            v->n_recent--;
        }
    }
    v->n_pending_expunges = 0;
}

/* The selected mailbox as the index has it now (by id: a RENAME by
 * another session keeps the id and changes the name, which the view
 * follows). A mailbox another session deleted cannot be used any more:
 * like Dovecot, the session says BYE. Returns false then. */
static bool view_lookup(struct imap_session *s, struct store_mailbox *m)
{
    struct imap_view *v = s->view;
    int r = store_mailbox_get_by_id(s->user, v->mailbox_id, m);
    if (r == STORE_OK) {
        if (strcmp(v->name, m->name) != 0) {
            free(v->name);
            v->name = mg_strdup(m->name);
        }
        return true;
    }
    if (r == STORE_ERR_NOT_FOUND && imap_session_is_alive(s)) {
        imap_printf(s, "* BYE Selected mailbox was deleted, have to disconnect.\r\n");
        imap_session_close(s);
    }
    return false;
}

bool imap_view_check(struct imap_session *s)
{
    struct store_mailbox m;
    return s->view == NULL || s->user == NULL || view_lookup(s, &m);
}

void imap_view_sync(struct imap_session *s, bool allow_expunge)
{
    struct imap_view *v = s->view;
    if (v == NULL || s->user == NULL)
        return;
    struct store_mailbox m;
    if (!view_lookup(s, &m))
        return;
    struct mg_buf out = MG_BUF_INIT;
    size_t new_count = 0;
    if (m.rec.highestmodseq != v->modseq) {
        struct sync_collect c = { 0 };
        store_changes_since(s->user, v->mailbox_id, v->modseq, collect_changed, collect_expunged, &c);
        /* Expunges wait in the view until they may be reported. */
        for (size_t i = 0; i < c.n_expunged; i++) {
            if (imap_view_find(v, c.expunged[i]) < 0)
                continue;
            v->pending_expunges = mg_reallocarray(v->pending_expunges, v->n_pending_expunges + 1,
                                                  sizeof(*v->pending_expunges));
            v->pending_expunges[v->n_pending_expunges++] = c.expunged[i];
        }
        if (v->n_pending_expunges > 1)
            qsort(v->pending_expunges, v->n_pending_expunges, sizeof(uint32_t), cmp_u32);
        uint32_t max_uid = v->count > 0 ? v->uids[v->count - 1] : 0;
        if (c.n_changed > 1)
            qsort(c.changed, c.n_changed, sizeof(uint32_t), cmp_u32);
        /* Flag changes of known messages. */
        for (size_t i = 0; i < c.n_changed; i++) {
            uint32_t uid = c.changed[i];
            if (uid > max_uid) {
                new_count++;
                continue;
            }
            long pos = imap_view_find(v, uid);
            if (pos < 0)
                continue;
            struct index_msg_rec rec;
            if (store_msg_get(s->user, v->mailbox_id, uid, &rec) != STORE_OK)
                continue;
            if (is_own_change(v, uid, rec.modseq))
                continue;
            mg_buf_printf(&out, "* %ld FETCH (", pos + 1);
            if (s->condstore_enabled)
                mg_buf_printf(&out, "MODSEQ (%llu) ", (unsigned long long)rec.modseq);
            mg_buf_append_str(&out, "FLAGS ");
            imap_view_write_flags(s, &out, rec.flags, rec.keywords, imap_view_is_recent(v, uid));
            mg_buf_printf(&out, " UID %u)\r\n", uid);
        }
        /* New messages: appended in UID order. */
        if (new_count > 0) {
            if (v->count + new_count > v->cap) {
                v->cap = v->count + new_count + 64;
                v->uids = mg_reallocarray(v->uids, v->cap, sizeof(*v->uids));
            }
            uint32_t top = c.changed[c.n_changed - 1];
            /* We were told first: they are \Recent for us, unless another
             * session was told before. */
            uint32_t above = v->is_readonly ? store_recent_mark(s->user, v->mailbox_id, m.rec.recent_uid)
                                            : store_claim_recent(s->user, v->mailbox_id, m.rec.recent_uid, top);
            for (size_t i = 0; i < c.n_changed; i++) {
                if (c.changed[i] > max_uid) {
                    v->uids[v->count++] = c.changed[i];
                    if (c.changed[i] > above)
                        view_add_recent(v, c.changed[i]);
                }
            }
        }
        v->modseq = m.rec.highestmodseq;
        v->n_own = 0;
        free(c.changed);
        free(c.expunged);
        /* New keywords change the FLAGS list clients keep. */
        char **names;
        unsigned n;
        if (store_keywords(s->user, &names, &n) == 0) {
            if (n != v->keyword_count)
                imap_view_write_flag_lists(s, &out);
            store_keywords_free(names, n);
        }
    }
    if (allow_expunge && v->n_pending_expunges > 0)
        report_expunges(s, &out);
    if (new_count > 0) {
        /* After the expunges, as Dovecot does: a MOVE into the selected
         * mailbox itself reads "* 1 EXPUNGE" then "* 1 EXISTS". EXISTS
         * counts the messages not yet reported as expunged. */
        mg_buf_printf(&out, "* %zu EXISTS\r\n", v->count);
        mg_buf_printf(&out, "* %zu RECENT\r\n", v->n_recent);
    }
    v->is_dirty = false;
    if (out.len > 0)
        imap_write(s, out.data, out.len);
    mg_buf_free(&out);
}
