/* SEARCH and UID SEARCH. Programs on index data run at once; programs
 * that look into messages run in the thread pool. */
#include "mda/imap/imap_cmds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "mda/imap/imap_search.h"

struct search_state {
    struct search_key *root;
    char **keywords;
    unsigned keyword_count;
    struct search_msg *msgs;   /* the view's messages with index data */
    size_t n;
    bool *matched;
    struct store_user *user;
    char mailbox[MAILBOX_NAME_MAX + 1];
    struct index_msg_rec *recs;
    uint32_t max_seq, max_uid;
    uv_work_t work;
    bool is_cancelled;
    /* Content of the message being matched (thread pool). */
    char *data;
    size_t len;
    uint32_t loaded_uid;
};

struct load_ctx {
    struct search_state *st;
    size_t i;
};

static int load_message(void *ctx, const char **data_r, size_t *len_r)
{
    struct load_ctx *lc = ctx;
    struct search_state *st = lc->st;
    struct index_msg_rec *rec = &st->recs[lc->i];
    if (st->data != NULL && st->loaded_uid == rec->uid) {
        *data_r = st->data;
        *len_r = st->len;
        return 0;
    }
    free(st->data);
    st->data = NULL;
    int fd = store_msg_open(st->user, st->mailbox, rec);
    if (fd < 0)
        return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return -1;
    }
    size_t size = (size_t)sb.st_size;
    char *data = mg_malloc(size + 1);
    size_t got;
    if (mg_fd_pread_all(fd, data, size, 0, &got) != 0)
        got = 0; /* searched as empty, as a file gone meanwhile */
    close(fd);
    data[got] = '\0';
    st->data = data;
    st->len = got;
    st->loaded_uid = rec->uid;
    *data_r = data;
    *len_r = got;
    return 0;
}

static void run_search(struct search_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->is_cancelled)
            break;
        struct load_ctx lc = { st, i };
        st->msgs[i].load = load_message;
        st->msgs[i].load_ctx = &lc;
        st->matched[i] = st->msgs[i].uid != 0 &&
                         search_match(st->root, &st->msgs[i], st->max_seq, st->max_uid);
        st->msgs[i].load_ctx = NULL;
    }
    free(st->data);
    st->data = NULL;
}

static void search_state_free(struct search_state *st)
{
    search_free(st->root);
    store_keywords_free(st->keywords, st->keyword_count);
    free(st->msgs);
    free(st->matched);
    free(st->recs);
    store_user_unref(&st->user);
}

static void search_reply(struct imap_cmd *cmd)
{
    struct search_state *st = cmd->state;
    struct mg_buf out = MG_BUF_INIT;
    mg_buf_append_str(&out, "* SEARCH");
    for (size_t i = 0; i < st->n; i++) {
        if (!st->matched[i])
            continue;
        mg_buf_printf(&out, " %u", cmd->is_uid ? st->msgs[i].uid : st->msgs[i].seq);
        if (out.len > 65536) {
            imap_write(cmd->s, out.data, out.len);
            mg_buf_reset(&out);
        }
    }
    mg_buf_append_str(&out, "\r\n");
    imap_write(cmd->s, out.data, out.len);
    mg_buf_free(&out);
    search_state_free(st);
    imap_cmd_finish(cmd, "OK", "Search completed.");
}

static void search_work(uv_work_t *req)
{
    struct imap_cmd *cmd = req->data;
    run_search(cmd->state);
}

static void search_after(uv_work_t *req, int status)
{
    (void)status;
    struct imap_cmd *cmd = req->data;
    struct search_state *st = cmd->state;
    if (!imap_session_is_alive(cmd->s)) {
        search_state_free(st);
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    search_reply(cmd);
}

struct collect_ctx {
    struct search_state *st;
    const struct imap_view *view;
};

static int collect_rec_cb(const struct index_msg_rec *rec, void *ctx)
{
    struct collect_ctx *c = ctx;
    long pos = imap_view_find(c->view, rec->uid);
    if (pos < 0)
        return 0;
    struct search_state *st = c->st;
    st->recs[pos] = *rec;
    struct search_msg *m = &st->msgs[pos];
    m->uid = rec->uid;
    m->flags = rec->flags;
    m->keywords = rec->keywords;
    m->size = rec->size;
    m->internaldate = rec->internaldate;
    m->is_recent = imap_view_is_recent(c->view, rec->uid);
    return 0;
}

enum imap_cmd_result cmd_search(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    size_t a = 0;
    if (cmd->nargs >= 2 && imap_arg_is_atom(&cmd->args[0], "CHARSET")) {
        const char *cs;
        size_t cl;
        if (!imap_arg_get_astring(&cmd->args[1], &cs, &cl)) {
            imap_cmd_bad(cmd, "Invalid charset");
            return IMAP_CMD_DONE;
        }
        if (!mg_ascii_eq(cs, cl, "UTF-8") && !mg_ascii_eq(cs, cl, "US-ASCII")) {
            imap_cmd_finish(cmd, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset.");
            return IMAP_CMD_DONE;
        }
        a = 2;
    }
    struct search_state *st = mg_arena_zalloc(cmd->arena, sizeof(*st));
    store_keywords(s->user, &st->keywords, &st->keyword_count);
    const char *error;
    if (search_parse(cmd->arena, cmd->args + a, cmd->nargs - a, st->keywords, st->keyword_count,
                     &st->root, &error) < 0) {
        store_keywords_free(st->keywords, st->keyword_count);
        imap_cmd_bad(cmd, error);
        return IMAP_CMD_DONE;
    }
    st->n = v->count;
    st->msgs = mg_calloc(st->n ? st->n : 1, sizeof(*st->msgs));
    st->recs = mg_calloc(st->n ? st->n : 1, sizeof(*st->recs));
    st->matched = mg_calloc(st->n ? st->n : 1, sizeof(*st->matched));
    for (size_t i = 0; i < st->n; i++)
        st->msgs[i].seq = (uint32_t)(i + 1);
    st->max_seq = (uint32_t)v->count;
    st->max_uid = v->count > 0 ? v->uids[v->count - 1] : 0;
    /* One walk over the index fills the facts of every message; messages
     * expunged meanwhile keep uid 0 and never match. */
    struct collect_ctx cc = { st, v };
    if (v->count > 0)
        store_msg_list(s->user, v->mailbox_id, v->uids[0], v->uids[v->count - 1], collect_rec_cb, &cc);
    cmd->state = st;
    if (!search_needs_content(st->root)) {
        run_search(st);
        search_reply(cmd);
        return IMAP_CMD_DONE;
    }
    st->user = s->user;
    store_user_ref(st->user);
    snprintf(st->mailbox, sizeof(st->mailbox), "%s", v->name);
    st->work.data = cmd;
    uv_queue_work(s->server->loop, &st->work, search_work, search_after);
    return IMAP_CMD_ASYNC;
}
