/* Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB,
 * STATUS, NAMESPACE. */
#include "mda/imap/imap_cmds.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/log.h"
#include "mda/imap/mutf7.h"
#include "mda/mime/imap_quote.h"

/* ---- SELECT / EXAMINE ---- */

static enum imap_cmd_result do_select(struct imap_cmd *cmd, bool readonly)
{
    struct imap_session *s = cmd->s;
    char name[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (cmd->nargs < 1) {
        imap_cmd_bad(cmd, "Missing mailbox name");
        return IMAP_CMD_DONE;
    }
    /* (CONDSTORE) and other select parameters are not offered. */
    if (cmd->nargs > 1) {
        imap_cmd_bad(cmd, "Unknown SELECT parameters");
        return IMAP_CMD_DONE;
    }
    /* The old mailbox is closed whatever happens next (RFC 3501 6.3.1). */
    imap_session_unselect(s);
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], name, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "%s", error);
        return IMAP_CMD_DONE;
    }
    struct store_mailbox m;
    int r = store_mailbox_get(s->user, name, &m);
    if (r == STORE_ERR_NOT_FOUND) {
        imap_cmd_finish(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
        return IMAP_CMD_DONE;
    }
    if (r != STORE_OK) {
        imap_cmd_finish(cmd, "NO", "[SERVERBUG] Internal error.");
        return IMAP_CMD_DONE;
    }
    struct imap_view *v = imap_view_new(s, &m, readonly);
    imap_session_select(s, v);
    struct mg_buf out = MG_BUF_INIT;
    imap_view_write_flag_lists(s, &out);
    mg_buf_printf(&out, "* %zu EXISTS\r\n* %zu RECENT\r\n", v->count, v->n_recent);
    if (v->first_unseen != 0)
        mg_buf_printf(&out, "* OK [UNSEEN %zu] First unseen.\r\n", v->first_unseen);
    mg_buf_printf(&out, "* OK [UIDVALIDITY %u] UIDs valid.\r\n", m.rec.uidvalidity);
    mg_buf_printf(&out, "* OK [UIDNEXT %u] Predicted next UID.\r\n", m.rec.uidnext);
    imap_write(s, out.data, out.len);
    mg_buf_free(&out);
    cmd->skip_sync = true;
    imap_cmd_finish(cmd, "OK", "[%s] %s completed.", readonly ? "READ-ONLY" : "READ-WRITE",
                    readonly ? "Examine" : "Select");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_select(struct imap_cmd *cmd)
{
    return do_select(cmd, false);
}

enum imap_cmd_result cmd_examine(struct imap_cmd *cmd)
{
    return do_select(cmd, true);
}

/* ---- CREATE, DELETE, RENAME, (UN)SUBSCRIBE ---- */

static const char *store_error_reply(int status)
{
    switch (status) {
    case STORE_ERR_NOT_FOUND: return "[NONEXISTENT] Mailbox doesn't exist.";
    case STORE_ERR_EXISTS: return "[ALREADYEXISTS] Mailbox already exists.";
    case STORE_ERR_HAS_CHILDREN: return "[INUSE] Mailbox has children, delete them first.";
    case STORE_ERR_INVALID: return "[CANNOT] Not allowed for this mailbox.";
    case STORE_ERR_OVER_QUOTA: return "[OVERQUOTA] Quota exceeded.";
    case STORE_ERR_NO_SPACE: return "[UNAVAILABLE] Out of disk space, try again later.";
    case STORE_ERR_LIMIT: return "[LIMIT] Too many keywords.";
    default: return "[SERVERBUG] Internal error.";
    }
}

static void mailbox_done(int status, const char *error, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    (void)error;
    if (status == STORE_OK)
        imap_cmd_finish(cmd, "OK", "%s completed.", cmd->def->name);
    else
        imap_cmd_finish(cmd, "NO", "%s", store_error_reply(status));
}

static int special_use_parse(const struct imap_arg *arg, enum store_special_use *use_r)
{
    static const struct { const char *name; enum store_special_use use; } uses[] = {
        { "\\Drafts", STORE_SPECIAL_DRAFTS }, { "\\Sent", STORE_SPECIAL_SENT },
        { "\\Trash", STORE_SPECIAL_TRASH }, { "\\Junk", STORE_SPECIAL_JUNK },
        { "\\Archive", STORE_SPECIAL_ARCHIVE }, { "\\All", STORE_SPECIAL_ALL },
    };
    /* (USE (\Sent)) — RFC 6154 CREATE-SPECIAL-USE. */
    if (arg->type != IMAP_ARG_LIST || arg->list_count != 2 || !imap_arg_is_atom(&arg->list[0], "USE") ||
        arg->list[1].type != IMAP_ARG_LIST || arg->list[1].list_count != 1)
        return -1;
    const struct imap_arg *u = &arg->list[1].list[0];
    for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
        if (imap_arg_is_atom(u, uses[i].name)) {
            *use_r = uses[i].use;
            return 0;
        }
    }
    return -2;
}

enum imap_cmd_result cmd_create(struct imap_cmd *cmd)
{
    if (cmd->nargs < 1 || cmd->nargs > 2) {
        imap_cmd_bad(cmd, "CREATE needs a mailbox name");
        return IMAP_CMD_DONE;
    }
    enum store_special_use use = STORE_SPECIAL_NONE;
    if (cmd->nargs == 2) {
        int r = special_use_parse(&cmd->args[1], &use);
        if (r == -1) {
            imap_cmd_bad(cmd, "Invalid CREATE parameters");
            return IMAP_CMD_DONE;
        }
        if (r == -2) {
            imap_cmd_finish(cmd, "NO", "[USEATTR] Unsupported special-use attribute.");
            return IMAP_CMD_DONE;
        }
    }
    /* "CREATE a/b/" declares a hierarchy: the separator is dropped. */
    struct imap_arg arg = cmd->args[0];
    const char *raw;
    size_t len;
    if (imap_arg_get_astring(&arg, &raw, &len) && len > 1 && raw[len - 1] == MAILBOX_SEPARATOR) {
        arg.str = mg_arena_strndup(cmd->arena, raw, len - 1);
        arg.len = len - 1;
    }
    char name[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (imap_session_mailbox_arg(cmd, &arg, name, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "[CANNOT] %s", error);
        return IMAP_CMD_DONE;
    }
    if (mailbox_name_is_inbox(name)) {
        imap_cmd_finish(cmd, "NO", "[ALREADYEXISTS] INBOX always exists.");
        return IMAP_CMD_DONE;
    }
    store_mailbox_create(cmd->s->user, name, use, mailbox_done, cmd);
    return IMAP_CMD_ASYNC;
}

enum imap_cmd_result cmd_delete(struct imap_cmd *cmd)
{
    char name[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (cmd->nargs != 1) {
        imap_cmd_bad(cmd, "DELETE needs a mailbox name");
        return IMAP_CMD_DONE;
    }
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], name, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "[NONEXISTENT] %s", error);
        return IMAP_CMD_DONE;
    }
    if (strcmp(name, "INBOX") == 0) {
        /* Refused before anything is closed: a failed DELETE changes
         * nothing, the selected INBOX included. */
        imap_cmd_finish(cmd, "NO", "[CANNOT] INBOX cannot be deleted.");
        return IMAP_CMD_DONE;
    }
    if (cmd->s->view != NULL && strcmp(cmd->s->view->name, name) == 0) {
        /* RFC 3501 allows it; clients then read a mailbox that is gone.
         * Close it first, as Dovecot does. */
        imap_session_unselect(cmd->s);
        imap_printf(cmd->s, "* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    store_mailbox_delete(cmd->s->user, name, mailbox_done, cmd);
    return IMAP_CMD_ASYNC;
}

enum imap_cmd_result cmd_rename(struct imap_cmd *cmd)
{
    char from[MAILBOX_NAME_MAX + 1], to[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (cmd->nargs != 2) {
        imap_cmd_bad(cmd, "RENAME needs two mailbox names");
        return IMAP_CMD_DONE;
    }
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], from, &error) < 0 ||
        imap_session_mailbox_arg(cmd, &cmd->args[1], to, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "[CANNOT] %s", error);
        return IMAP_CMD_DONE;
    }
    if (cmd->s->view != NULL && (strcmp(cmd->s->view->name, from) == 0 ||
                                 mailbox_name_is_child(from, cmd->s->view->name))) {
        imap_session_unselect(cmd->s);
        imap_printf(cmd->s, "* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    store_mailbox_rename(cmd->s->user, from, to, mailbox_done, cmd);
    return IMAP_CMD_ASYNC;
}

static enum imap_cmd_result do_subscribe(struct imap_cmd *cmd, bool on)
{
    char name[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (cmd->nargs != 1) {
        imap_cmd_bad(cmd, "Needs a mailbox name");
        return IMAP_CMD_DONE;
    }
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], name, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "%s", error);
        return IMAP_CMD_DONE;
    }
    struct store_mailbox m;
    if (on && store_mailbox_get(cmd->s->user, name, &m) == STORE_ERR_NOT_FOUND) {
        imap_cmd_finish(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist.");
        return IMAP_CMD_DONE;
    }
    store_subscribe(cmd->s->user, name, on, mailbox_done, cmd);
    return IMAP_CMD_ASYNC;
}

enum imap_cmd_result cmd_subscribe(struct imap_cmd *cmd)
{
    return do_subscribe(cmd, true);
}

enum imap_cmd_result cmd_unsubscribe(struct imap_cmd *cmd)
{
    return do_subscribe(cmd, false);
}

/* ---- LIST ---- */

/* IMAP wildcard match: '*' anything, '%' anything but the separator.
 * INBOX matches case-insensitively. */
static bool pattern_match(const char *pat, const char *name)
{
    if (mg_ascii_has_prefix(name, strlen(name), "INBOX") &&
        (name[5] == '\0' || name[5] == MAILBOX_SEPARATOR) &&
        mg_ascii_has_prefix(pat, strlen(pat), "inbox")) {
        /* Compare the INBOX part case-insensitively. */
        pat += 5;
        name += 5;
    }
    while (*pat != '\0') {
        if (*pat == '*' || *pat == '%') {
            char wc = *pat++;
            for (const char *n = name;; n++) {
                if (pattern_match(pat, n))
                    return true;
                if (*n == '\0' || (wc == '%' && *n == MAILBOX_SEPARATOR))
                    return false;
            }
        }
        if (*pat != *name)
            return false;
        pat++;
        name++;
    }
    return *name == '\0';
}

enum {
    LIST_SEL_SUBSCRIBED = 1 << 0,
    LIST_SEL_SPECIAL_USE = 1 << 1,
    LIST_SEL_RECURSIVEMATCH = 1 << 2,
    LIST_RET_SUBSCRIBED = 1 << 3,
    LIST_RET_CHILDREN = 1 << 4,
    LIST_RET_SPECIAL_USE = 1 << 5,
    LIST_RET_STATUS = 1 << 6,
    LIST_LSUB = 1 << 7,
};

struct list_entry {
    const char *name;     /* in the command's arena */
    bool exists;
    bool subscribed;
    bool has_children;
    bool child_subscribed;
    bool is_lsub_parent;  /* LSUB %: shown for a subscribed child */
    uint8_t special_use;
};

/* Every name LIST knows of, sorted by entry_cmp once list_sort_merge has
 * run: lookups are binary searches, so that LIST stays O(n log n) in the
 * number of mailboxes. */
struct list_all {
    struct mg_arena *arena;
    struct list_entry *items;
    size_t n, cap;
};

/* Appends an entry; a name seen twice (a mailbox and its subscription)
 * is merged by list_sort_merge. */
static struct list_entry *list_add(struct list_all *all, const char *name)
{
    if (all->n == all->cap) {
        all->cap = all->cap ? all->cap * 2 : 32;
        all->items = mg_reallocarray(all->items, all->cap, sizeof(*all->items));
    }
    struct list_entry *e = &all->items[all->n++];
    memset(e, 0, sizeof(*e));
    e->name = mg_arena_strdup(all->arena, name);
    return e;
}

static int list_mailbox_cb(const struct store_mailbox *m, void *ctx)
{
    struct list_entry *e = list_add(ctx, m->name);
    e->exists = true;
    e->subscribed = m->is_subscribed;
    e->special_use = m->rec.special_use;
    return 0;
}

static int list_sub_cb(const char *name, void *ctx)
{
    struct list_entry *e = list_add(ctx, name);
    e->subscribed = true;
    return 0;
}

static void list_status_item(struct imap_session *s, struct mg_buf *out, const char *name,
                             const struct imap_arg *items);

static void list_write(struct imap_cmd *cmd, struct mg_buf *out, const struct list_entry *e,
                       unsigned opts, const struct imap_arg *status_items)
{
    bool lsub = opts & LIST_LSUB;
    mg_buf_printf(out, "* %s (", lsub ? "LSUB" : "LIST");
    size_t start = out->len;
    if (e->is_lsub_parent)
        mg_buf_append_str(out, "\\Noselect ");
    else if (!e->exists)
        mg_buf_append_str(out, (opts & (LIST_SEL_SUBSCRIBED | LIST_LSUB)) && e->subscribed ? "\\NonExistent " : "\\Noselect ");
    if (!lsub) {
        mg_buf_append_str(out, e->has_children ? "\\HasChildren " : "\\HasNoChildren ");
        if ((opts & (LIST_RET_SUBSCRIBED | LIST_SEL_SUBSCRIBED)) && e->subscribed)
            mg_buf_append_str(out, "\\Subscribed ");
        const char *use = store_special_use_name(e->special_use);
        if (use != NULL)
            mg_buf_printf(out, "%s ", use);
    }
    if (out->len > start)
        out->len--; /* the trailing space */
    out->data[out->len] = '\0';
    mg_buf_append_str(out, ") \"/\" ");
    imap_session_write_mailbox(cmd->s, out, e->name);
    if ((opts & LIST_SEL_RECURSIVEMATCH) && e->child_subscribed && !e->subscribed)
        mg_buf_append_str(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    mg_buf_append_str(out, "\r\n");
    if ((opts & LIST_RET_STATUS) && e->exists)
        list_status_item(cmd->s, out, e->name, status_items);
}

static int parse_list_options(struct imap_cmd *cmd, const struct imap_arg *arg, bool is_return,
                              unsigned *opts, const struct imap_arg **status_items)
{
    if (arg->type != IMAP_ARG_LIST)
        return -1;
    for (size_t i = 0; i < arg->list_count; i++) {
        const struct imap_arg *o = &arg->list[i];
        if (!is_return) {
            if (imap_arg_is_atom(o, "SUBSCRIBED"))
                *opts |= LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED;
            else if (imap_arg_is_atom(o, "SPECIAL-USE"))
                *opts |= LIST_SEL_SPECIAL_USE | LIST_RET_SPECIAL_USE;
            else if (imap_arg_is_atom(o, "RECURSIVEMATCH"))
                *opts |= LIST_SEL_RECURSIVEMATCH;
            else if (imap_arg_is_atom(o, "REMOTE"))
                continue;
            else
                return -1;
        } else {
            if (imap_arg_is_atom(o, "SUBSCRIBED"))
                *opts |= LIST_RET_SUBSCRIBED;
            else if (imap_arg_is_atom(o, "CHILDREN"))
                *opts |= LIST_RET_CHILDREN;
            else if (imap_arg_is_atom(o, "SPECIAL-USE"))
                *opts |= LIST_RET_SPECIAL_USE;
            else if (imap_arg_is_atom(o, "STATUS") && i + 1 < arg->list_count &&
                     arg->list[i + 1].type == IMAP_ARG_LIST) {
                *opts |= LIST_RET_STATUS;
                *status_items = &arg->list[++i];
            } else
                return -1;
        }
    }
    (void)cmd;
    /* RECURSIVEMATCH alone is an error (RFC 5258 3). */
    if ((*opts & LIST_SEL_RECURSIVEMATCH) && !(*opts & LIST_SEL_SUBSCRIBED))
        return -1;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct list_entry *x = a, *y = b;
    bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
    if (xi != yi)
        return xi ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Sorts the entries (INBOX first, then by name) and merges those of one
 * name. */
static void list_sort_merge(struct list_all *all)
{
    if (all->n > 1)
        qsort(all->items, all->n, sizeof(*all->items), entry_cmp);
    size_t w = 0;
    for (size_t r = 0; r < all->n; r++) {
        const struct list_entry *e = &all->items[r];
        if (w > 0 && strcmp(all->items[w - 1].name, e->name) == 0) {
            struct list_entry *d = &all->items[w - 1];
            if (e->exists)
                d->special_use = e->special_use;
            d->exists |= e->exists;
            d->subscribed |= e->subscribed;
            d->is_lsub_parent |= e->is_lsub_parent;
            continue;
        }
        all->items[w++] = *e;
    }
    all->n = w;
    /* A subscribed name is listed for itself, not as a parent. */
    for (size_t i = 0; i < all->n; i++) {
        if (all->items[i].subscribed)
            all->items[i].is_lsub_parent = false;
    }
}

static struct list_entry *list_find(struct list_all *all, const char *name)
{
    struct list_entry key = { .name = name };
    return all->n == 0 ? NULL : bsearch(&key, all->items, all->n, sizeof(*all->items), entry_cmp);
}

struct list_patterns;
static bool list_matches(const struct list_patterns *lp, const char *name);

/* \HasChildren and CHILDINFO: each name marks those of its ancestors that
 * are listed ("a/b/c" marks "a/b" and "a"), a lookup per level instead of
 * a comparison with every other name. A subscribed descendant that matches
 * the patterns itself is listed in its own right, so it gives its parents
 * no CHILDINFO (RFC 5258 3, as Dovecot does): LIST (SUBSCRIBED
 * RECURSIVEMATCH) "" "*b" shows "a/b", not "a" as well. */
static void list_mark_parents(struct list_all *all, const struct list_patterns *lp)
{
    char parent[MAILBOX_NAME_MAX + 1];
    for (size_t i = 0; i < all->n; i++) {
        const struct list_entry *c = &all->items[i];
        if (!c->exists && !c->subscribed)
            continue;
        snprintf(parent, sizeof(parent), "%s", c->name);
        char *sep;
        while ((sep = strrchr(parent, MAILBOX_SEPARATOR)) != NULL) {
            *sep = '\0';
            struct list_entry *p = list_find(all, parent);
            if (p == NULL)
                continue;
            if (c->exists)
                p->has_children = true;
            if (c->subscribed && !list_matches(lp, c->name))
                p->child_subscribed = true;
        }
    }
}

/* The patterns with the reference before each, decoded from modified
 * UTF-7 (unless UTF-8 was enabled) once per command. */
struct list_patterns {
    const char **pats;
    size_t n;
};

static void list_patterns_init(struct imap_cmd *cmd, const char *ref, size_t ref_len,
                               const struct imap_arg *pats, size_t n_pats,
                               struct list_patterns *lp)
{
    lp->pats = mg_arena_alloc(cmd->arena, (n_pats ? n_pats : 1) * sizeof(*lp->pats));
    lp->n = 0;
    for (size_t p = 0; p < n_pats; p++) {
        const char *pat;
        size_t plen;
        if (!imap_arg_get_astring(&pats[p], &pat, &plen))
            continue;
        struct mg_buf full = MG_BUF_INIT;
        struct mg_buf enc = MG_BUF_INIT;
        mg_buf_append(&enc, ref, ref_len);
        mg_buf_append(&enc, pat, plen);
        if (cmd->s->utf8_enabled || mutf7_decode(enc.data, enc.len, &full) < 0) {
            mg_buf_reset(&full);
            mg_buf_append(&full, enc.data, enc.len);
        }
        lp->pats[lp->n++] = mg_arena_strdup(cmd->arena, mg_buf_cstr(&full));
        mg_buf_free(&full);
        mg_buf_free(&enc);
    }
}

/* Whether name matches one of the patterns. */
static bool list_matches(const struct list_patterns *lp, const char *name)
{
    for (size_t p = 0; p < lp->n; p++) {
        if (pattern_match(lp->pats[p], name))
            return true;
    }
    return false;
}

/* RFC 3501 6.3.9: when "foo/bar" is subscribed and "foo" is not, LSUB "%"
 * returns "foo" with \Noselect (and not "foo/bar"). Entries are added
 * unsorted: list_sort_merge follows. */
static void lsub_add_parents(struct list_all *all, const struct list_patterns *lp)
{
    size_t n = all->n;
    for (size_t i = 0; i < n; i++) {
        if (!all->items[i].subscribed || list_matches(lp, all->items[i].name))
            continue;
        char parent[MAILBOX_NAME_MAX + 1];
        snprintf(parent, sizeof(parent), "%s", all->items[i].name);
        char *sep;
        while ((sep = strrchr(parent, MAILBOX_SEPARATOR)) != NULL) {
            *sep = '\0';
            if (!list_matches(lp, parent))
                continue;
            list_add(all, parent)->is_lsub_parent = true;
            break;
        }
    }
}

static enum imap_cmd_result do_list(struct imap_cmd *cmd, unsigned opts)
{
    struct imap_session *s = cmd->s;
    size_t a = 0;
    const struct imap_arg *status_items = NULL;
    if (!(opts & LIST_LSUB) && cmd->nargs > 0 && cmd->args[0].type == IMAP_ARG_LIST) {
        if (parse_list_options(cmd, &cmd->args[0], false, &opts, &status_items) < 0) {
            imap_cmd_bad(cmd, "Invalid LIST selection options");
            return IMAP_CMD_DONE;
        }
        a = 1;
    }
    if (cmd->nargs < a + 2) {
        imap_cmd_bad(cmd, "LIST needs a reference and a pattern");
        return IMAP_CMD_DONE;
    }
    const char *ref;
    size_t ref_len;
    if (!imap_arg_get_astring(&cmd->args[a], &ref, &ref_len)) {
        imap_cmd_bad(cmd, "Invalid reference");
        return IMAP_CMD_DONE;
    }
    /* Patterns: one, or a list (LIST-EXTENDED). */
    const struct imap_arg *pats = &cmd->args[a + 1];
    size_t n_pats = 1;
    if (pats->type == IMAP_ARG_LIST && !(opts & LIST_LSUB)) {
        n_pats = pats->list_count;
        pats = pats->list;
    }
    if (cmd->nargs > a + 2) {
        if (opts & LIST_LSUB || cmd->nargs != a + 4 || !imap_arg_is_atom(&cmd->args[a + 2], "RETURN") ||
            parse_list_options(cmd, &cmd->args[a + 3], true, &opts, &status_items) < 0) {
            imap_cmd_bad(cmd, "Invalid LIST return options");
            return IMAP_CMD_DONE;
        }
    }
    struct mg_buf out = MG_BUF_INIT;
    /* LIST "" "": the hierarchy delimiter and root. */
    const char *p0;
    size_t p0_len;
    if (n_pats == 1 && imap_arg_get_astring(&pats[0], &p0, &p0_len) && p0_len == 0) {
        mg_buf_printf(&out, "* %s (\\Noselect) \"/\" \"\"\r\n", opts & LIST_LSUB ? "LSUB" : "LIST");
        imap_write(s, out.data, out.len);
        mg_buf_free(&out);
        imap_cmd_finish(cmd, "OK", "%s completed.", opts & LIST_LSUB ? "Lsub" : "List");
        return IMAP_CMD_DONE;
    }
    struct list_patterns lp;
    list_patterns_init(cmd, ref, ref_len, pats, n_pats, &lp);
    struct list_all all = { .arena = cmd->arena };
    store_mailbox_list(s->user, list_mailbox_cb, &all);
    if (opts & (LIST_SEL_SUBSCRIBED | LIST_LSUB | LIST_RET_SUBSCRIBED))
        store_subscription_list(s->user, list_sub_cb, &all);
    list_sort_merge(&all);
    if (opts & LIST_LSUB) {
        lsub_add_parents(&all, &lp);
        list_sort_merge(&all);
    }
    list_mark_parents(&all, &lp);
    for (size_t i = 0; i < all.n; i++) {
        struct list_entry *e = &all.items[i];
        if ((opts & (LIST_SEL_SUBSCRIBED | LIST_LSUB)) && !e->subscribed && !e->is_lsub_parent &&
            !((opts & LIST_SEL_RECURSIVEMATCH) && e->child_subscribed))
            continue;
        if (!(opts & (LIST_SEL_SUBSCRIBED | LIST_LSUB)) && !e->exists)
            continue;
        if ((opts & LIST_SEL_SPECIAL_USE) && e->special_use == STORE_SPECIAL_NONE)
            continue;
        if (list_matches(&lp, e->name))
            list_write(cmd, &out, e, opts, status_items);
        if (out.len > 65536) {
            imap_write(s, out.data, out.len);
            mg_buf_reset(&out);
        }
    }
    free(all.items);
    imap_write(s, out.data, out.len);
    mg_buf_free(&out);
    imap_cmd_finish(cmd, "OK", "%s completed.", opts & LIST_LSUB ? "Lsub" : "List");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_list(struct imap_cmd *cmd)
{
    return do_list(cmd, 0);
}

enum imap_cmd_result cmd_lsub(struct imap_cmd *cmd)
{
    return do_list(cmd, LIST_LSUB);
}

/* ---- STATUS ---- */

static int count_recent_cb(const struct index_msg_rec *rec, void *ctx)
{
    (void)rec;
    (*(size_t *)ctx)++;
    return 0;
}

/* Writes "* STATUS name (...)" or returns -1 for an unknown item. */
static int status_write(struct imap_session *s, struct mg_buf *out, const struct store_mailbox *m,
                        const struct imap_arg *items)
{
    size_t start = out->len;
    mg_buf_append_str(out, "* STATUS ");
    imap_session_write_mailbox(s, out, m->name);
    mg_buf_append_str(out, " (");
    for (size_t i = 0; i < items->list_count; i++) {
        const struct imap_arg *it = &items->list[i];
        if (i > 0)
            mg_buf_append_byte(out, ' ');
        if (imap_arg_is_atom(it, "MESSAGES"))
            mg_buf_printf(out, "MESSAGES %u", m->rec.messages);
        else if (imap_arg_is_atom(it, "UIDNEXT"))
            mg_buf_printf(out, "UIDNEXT %u", m->rec.uidnext);
        else if (imap_arg_is_atom(it, "UIDVALIDITY"))
            mg_buf_printf(out, "UIDVALIDITY %u", m->rec.uidvalidity);
        else if (imap_arg_is_atom(it, "UNSEEN"))
            mg_buf_printf(out, "UNSEEN %u", m->rec.unseen);
        else if (imap_arg_is_atom(it, "RECENT")) {
            size_t recent = 0;
            uint32_t mark = store_recent_mark(s->user, m->rec.id, m->rec.recent_uid);
            if (mark + 1 < m->rec.uidnext)
                store_msg_list(s->user, m->rec.id, mark + 1, UINT32_MAX, count_recent_cb, &recent);
            mg_buf_printf(out, "RECENT %zu", recent);
        } else if (imap_arg_is_atom(it, "SIZE")) {
            mg_buf_printf(out, "SIZE %llu", (unsigned long long)m->rec.bytes);
        } else {
            mg_buf_truncate(out, start);
            return -1;
        }
    }
    mg_buf_append_str(out, ")\r\n");
    return 0;
}

static void list_status_item(struct imap_session *s, struct mg_buf *out, const char *name,
                             const struct imap_arg *items)
{
    struct store_mailbox m;
    if (items != NULL && store_mailbox_get(s->user, name, &m) == STORE_OK)
        status_write(s, out, &m, items);
}

enum imap_cmd_result cmd_status(struct imap_cmd *cmd)
{
    char name[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (cmd->nargs != 2 || cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].list_count == 0) {
        imap_cmd_bad(cmd, "STATUS needs a mailbox and a list of items");
        return IMAP_CMD_DONE;
    }
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], name, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "%s", error);
        return IMAP_CMD_DONE;
    }
    struct store_mailbox m;
    int r = store_mailbox_get(cmd->s->user, name, &m);
    if (r != STORE_OK) {
        imap_cmd_finish(cmd, "NO", "%s", store_error_reply(r));
        return IMAP_CMD_DONE;
    }
    struct mg_buf out = MG_BUF_INIT;
    if (status_write(cmd->s, &out, &m, &cmd->args[1]) < 0) {
        mg_buf_free(&out);
        imap_cmd_bad(cmd, "Unknown STATUS item");
        return IMAP_CMD_DONE;
    }
    imap_write(cmd->s, out.data, out.len);
    mg_buf_free(&out);
    imap_cmd_finish(cmd, "OK", "Status completed.");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_namespace(struct imap_cmd *cmd)
{
    imap_printf(cmd->s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    imap_cmd_finish(cmd, "OK", "Namespace completed.");
    return IMAP_CMD_DONE;
}
