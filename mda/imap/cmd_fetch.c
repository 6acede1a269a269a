/* FETCH and UID FETCH: every message data item of RFC 3501.
 *
 * ENVELOPE, BODY and BODYSTRUCTURE come from the index cache. Message
 * bytes come from the file: whole-message items stream straight from it
 * (large files through the thread pool, chunk by chunk, under output
 * back-pressure); items that need the MIME structure parse the message,
 * in the thread pool when it is large. Output per message is built as a
 * list of segments (text, file ranges) and sent in order.
 *
 * A literal is CHAR8, which excludes NUL (RFC 3501 section 9): message
 * bytes go out with every NUL replaced by 0x80, as Dovecot does for all
 * but BINARY fetches, so literal lengths and offsets stay those of the
 * stored message. */
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
#include "common/conn.h"
#include "common/log.h"
#include "mda/imap/imap_date.h"
#include "mda/imap/imap_seqset.h"
#include "mda/mime/imap_section.h"
#include "mda/mime/mime_parser.h"

enum fetch_kind {
    FI_FLAGS,
    FI_INTERNALDATE,
    FI_RFC822_SIZE,
    FI_ENVELOPE,
    FI_BODY,
    FI_BODYSTRUCTURE,
    FI_UID,
    FI_SECTION,
};

struct fetch_item {
    enum fetch_kind kind;
    const char *resp_name;      /* "BODY[1.MIME]", "RFC822.HEADER", ... */
    struct imap_section section;
    bool is_whole;              /* the whole message: stream the file */
    bool is_peek;
    bool has_partial;
    uint64_t partial_off, partial_len;
};

enum seg_type { SEG_TEXT, SEG_FILE };

struct fetch_seg {
    enum seg_type type;
    size_t text_off, text_len;  /* into msg_text */
    uint64_t file_off, file_len;
};

struct fetch_state {
    struct fetch_item items[IMAP_FETCH_ITEMS_MAX];
    size_t n_items;
    bool needs_file;            /* any section item */
    bool needs_parse;           /* any section item that is not whole */
    bool sets_seen;
    uint32_t *uids;             /* the messages, in sequence order */
    size_t n;
    size_t pos;
    bool had_expunged;
    /* Messages whose \Seen this FETCH set (their FLAGS are sent). */
    uint32_t *seen_uids;
    size_t n_seen;
    /* Keyword names for FLAGS, read once for the whole command. */
    struct imap_flags_names keywords;
    /* The message being sent. */
    struct mg_buf msg_text;
    struct fetch_seg *segs;
    size_t n_segs, cap_segs, seg_pos;
    int fd;
    uint64_t file_size;
    /* Streaming a file segment. */
    uv_fs_t read_req;
    char *chunk;
    uint64_t stream_off, stream_left;
    bool is_reading;
    /* A parse job for a large message. */
    uv_work_t work;
    bool is_working;
    bool is_cancelled;
    struct index_msg_rec work_rec;
    size_t work_seq;
};

static void fetch_continue(struct imap_cmd *cmd);
static void fetch_free_state(struct fetch_state *st);

/* ---- item parsing ---- */

static int parse_partial(const char *p, size_t len, struct fetch_item *it)
{
    /* "<offset.length>" */
    if (len < 5 || p[0] != '<' || p[len - 1] != '>')
        return -1;
    const char *dot = memchr(p, '.', len);
    if (dot == NULL)
        return -1;
    uint64_t o = 0, l = 0;
    const char *q = p + 1;
    if (q == dot)
        return -1;
    for (; q < dot; q++) {
        if (*q < '0' || *q > '9' || o > UINT32_MAX)
            return -1;
        o = o * 10 + (uint64_t)(*q - '0');
    }
    q = dot + 1;
    if (q == p + len - 1)
        return -1;
    for (; q < p + len - 1; q++) {
        if (*q < '0' || *q > '9' || l > UINT32_MAX)
            return -1;
        l = l * 10 + (uint64_t)(*q - '0');
    }
    if (o > UINT32_MAX || l > UINT32_MAX || l == 0)
        return -1;
    it->has_partial = true;
    it->partial_off = o;
    it->partial_len = l;
    return 0;
}

static int parse_body_item(struct imap_cmd *cmd, const char *s, size_t len, struct fetch_item *it,
                           const char **error_r)
{
    /* BODY[...]<o.n> or BODY.PEEK[...]<o.n> */
    const char *open = memchr(s, '[', len);
    size_t name_len = (size_t)(open - s);
    it->is_peek = mg_ascii_eq(s, name_len, "BODY.PEEK");
    if (!it->is_peek && !mg_ascii_eq(s, name_len, "BODY")) {
        *error_r = "Unknown FETCH item";
        return -1;
    }
    const char *close = NULL;
    for (const char *q = s + len; q > open; q--) {
        if (q[-1] == ']') {
            close = q - 1;
            break;
        }
    }
    if (close == NULL) {
        *error_r = "Missing ']'";
        return -1;
    }
    const char *spec = open + 1;
    size_t spec_len = (size_t)(close - spec);
    if (imap_section_parse(cmd->arena, spec, spec_len, &it->section, error_r) < 0)
        return -1;
    size_t rest = (size_t)(s + len - close - 1);
    if (rest > 0 && parse_partial(close + 1, rest, it) < 0) {
        *error_r = "Invalid partial";
        return -1;
    }
    it->kind = FI_SECTION;
    it->is_whole = it->section.part_count == 0 && it->section.text == IMAP_SECTION_TEXT_NONE;
    /* The response names the section as asked, upper-cased, without the
     * partial's length. */
    char *resp = mg_arena_alloc(cmd->arena, spec_len + 32);
    size_t o = 0;
    memcpy(resp, "BODY[", 5);
    o = 5;
    for (size_t i = 0; i < spec_len; i++)
        resp[o++] = mg_ascii_toupper(spec[i]);
    resp[o++] = ']';
    if (it->has_partial)
        o += (size_t)snprintf(resp + o, 24, "<%llu>", (unsigned long long)it->partial_off);
    resp[o] = '\0';
    it->resp_name = resp;
    return 0;
}

static int add_item(struct imap_cmd *cmd, struct fetch_state *st, const struct imap_arg *a,
                    const char **error_r)
{
    if (a->type != IMAP_ARG_ATOM) {
        *error_r = "Invalid FETCH item";
        return -1;
    }
    if (st->n_items >= IMAP_FETCH_ITEMS_MAX) {
        *error_r = "Too many FETCH items";
        return -1;
    }
    struct fetch_item *it = &st->items[st->n_items];
    memset(it, 0, sizeof(*it));
    const char *s = a->str;
    size_t len = a->len;
    static const struct { const char *name; enum fetch_kind kind; } simple[] = {
        { "FLAGS", FI_FLAGS }, { "INTERNALDATE", FI_INTERNALDATE },
        { "RFC822.SIZE", FI_RFC822_SIZE }, { "ENVELOPE", FI_ENVELOPE },
        { "BODY", FI_BODY }, { "BODYSTRUCTURE", FI_BODYSTRUCTURE }, { "UID", FI_UID },
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (mg_ascii_eq(s, len, simple[i].name)) {
            it->kind = simple[i].kind;
            st->n_items++;
            return 0;
        }
    }
    if (mg_ascii_eq(s, len, "RFC822")) {
        it->kind = FI_SECTION;
        it->is_whole = true;
        it->resp_name = "RFC822";
    } else if (mg_ascii_eq(s, len, "RFC822.HEADER")) {
        it->kind = FI_SECTION;
        it->is_peek = true;
        it->section.text = IMAP_SECTION_TEXT_HEADER;
        it->resp_name = "RFC822.HEADER";
    } else if (mg_ascii_eq(s, len, "RFC822.TEXT")) {
        it->kind = FI_SECTION;
        it->section.text = IMAP_SECTION_TEXT_TEXT;
        it->resp_name = "RFC822.TEXT";
    } else if (memchr(s, '[', len) != NULL) {
        if (parse_body_item(cmd, s, len, it, error_r) < 0)
            return -1;
    } else {
        *error_r = "Unknown FETCH item";
        return -1;
    }
    st->needs_file = true;
    if (!it->is_whole)
        st->needs_parse = true;
    if (!it->is_peek)
        st->sets_seen = true;
    st->n_items++;
    return 0;
}

static int parse_items(struct imap_cmd *cmd, struct fetch_state *st, const struct imap_arg *arg,
                       const char **error_r)
{
    static const char *const macro_all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" };
    static const char *const macro_full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" };
    const char *const *macro = NULL;
    size_t mn = 0;
    if (imap_arg_is_atom(arg, "ALL"))
        macro = macro_all, mn = 4;
    else if (imap_arg_is_atom(arg, "FAST"))
        macro = macro_all, mn = 3;
    else if (imap_arg_is_atom(arg, "FULL"))
        macro = macro_full, mn = 5;
    if (macro != NULL) {
        for (size_t i = 0; i < mn; i++) {
            struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = macro[i], .len = strlen(macro[i]) };
            if (add_item(cmd, st, &a, error_r) < 0)
                return -1;
        }
        return 0;
    }
    if (arg->type == IMAP_ARG_LIST) {
        if (arg->list_count == 0) {
            *error_r = "Empty FETCH item list";
            return -1;
        }
        for (size_t i = 0; i < arg->list_count; i++) {
            if (add_item(cmd, st, &arg->list[i], error_r) < 0)
                return -1;
        }
        return 0;
    }
    return add_item(cmd, st, arg, error_r);
}

/* ---- per message ---- */

static void seg_text(struct fetch_state *st, size_t from)
{
    if (st->msg_text.len == from)
        return;
    if (st->n_segs == st->cap_segs) {
        st->cap_segs = st->cap_segs ? st->cap_segs * 2 : 8;
        st->segs = mg_reallocarray(st->segs, st->cap_segs, sizeof(*st->segs));
    }
    st->segs[st->n_segs++] = (struct fetch_seg){ SEG_TEXT, from, st->msg_text.len - from, 0, 0 };
}

static void seg_file(struct fetch_state *st, uint64_t off, uint64_t len)
{
    if (st->n_segs == st->cap_segs) {
        st->cap_segs = st->cap_segs ? st->cap_segs * 2 : 8;
        st->segs = mg_reallocarray(st->segs, st->cap_segs, sizeof(*st->segs));
    }
    st->segs[st->n_segs++] = (struct fetch_seg){ SEG_FILE, 0, 0, off, len };
}

static bool was_seen_by_us(const struct fetch_state *st, uint32_t uid)
{
    for (size_t i = 0; i < st->n_seen; i++) {
        if (st->seen_uids[i] == uid)
            return true;
    }
    return false;
}

/* NUL is not CHAR8: 0x80 in its place, in place, same length. */
static void replace_nuls(char *p, size_t len)
{
    if (len == 0)
        return;
    char *end = p + len;
    while ((p = memchr(p, '\0', (size_t)(end - p))) != NULL)
        *p++ = (char)0x80;
}

/* Reads the whole file (small ones, or in the thread pool). */
static int read_whole(int fd, uint64_t size, char **data_r)
{
    char *data = mg_malloc(size + 1);
    size_t got;
    if (mg_fd_pread_all(fd, data, size, 0, &got) != 0 || got != size) {
        free(data);
        return -1;
    }
    data[size] = '\0';
    *data_r = data;
    return 0;
}

/* Appends a literal of the section's bytes (or "" for a part that does
 * not exist, as Dovecot does) to text. */
static void append_section_literal(struct mg_buf *text, const struct fetch_item *it,
                                   const struct mime_part *root, const char *data)
{
    struct mg_buf bytes = MG_BUF_INIT;
    if (imap_section_write(root, data, &it->section, &bytes) != 0)
        mg_buf_reset(&bytes);
    const char *p = mg_buf_cstr(&bytes);
    uint64_t len = bytes.len;
    if (it->has_partial) {
        if (it->partial_off >= len) {
            len = 0;
        } else {
            p += it->partial_off;
            len -= it->partial_off;
            if (len > it->partial_len)
                len = it->partial_len;
        }
    }
    mg_buf_printf(text, "{%llu}\r\n", (unsigned long long)len);
    size_t at = text->len;
    mg_buf_append(text, p, (size_t)len);
    replace_nuls(text->data + at, (size_t)len);
    mg_buf_free(&bytes);
}

/* Builds the segments of one message. With parsed set (data, root) the
 * structured sections are produced; whole-message items become file
 * segments. */
static void build_message(struct imap_cmd *cmd, struct fetch_state *st, size_t seq,
                          const struct index_msg_rec *rec, const char *data,
                          const struct mime_part *root)
{
    struct imap_session *s = cmd->s;
    struct mg_buf *t = &st->msg_text;
    size_t seg_start = t->len;
    mg_buf_printf(t, "* %zu FETCH (", seq);
    bool first = true;
    bool want_uid = cmd->is_uid;
    bool flags_done = false;
    for (size_t i = 0; i < st->n_items; i++) {
        const struct fetch_item *it = &st->items[i];
        if (!first)
            mg_buf_append_byte(t, ' ');
        first = false;
        switch (it->kind) {
        case FI_FLAGS:
            mg_buf_append_str(t, "FLAGS ");
            imap_flags_write(s, &st->keywords, t, rec->flags, rec->keywords,
                             imap_view_is_recent(s->view, rec->uid));
            flags_done = true;
            break;
        case FI_UID:
            mg_buf_printf(t, "UID %u", rec->uid);
            want_uid = false;
            break;
        case FI_INTERNALDATE: {
            char d[IMAP_DATETIME_SIZE];
            imap_date_format_datetime((time_t)rec->internaldate, d);
            mg_buf_printf(t, "INTERNALDATE \"%s\"", d);
            break;
        }
        case FI_RFC822_SIZE:
            mg_buf_printf(t, "RFC822.SIZE %llu", (unsigned long long)rec->size);
            break;
        case FI_ENVELOPE:
        case FI_BODY:
        case FI_BODYSTRUCTURE: {
            struct mg_buf c = MG_BUF_INIT;
            struct store_msg_cache mc;
            const char *name = it->kind == FI_ENVELOPE ? "ENVELOPE" : it->kind == FI_BODY ? "BODY" : "BODYSTRUCTURE";
            if (store_msg_cache(s->user, s->view->mailbox_id, rec->uid, &c, &mc) == STORE_OK) {
                size_t off = it->kind == FI_ENVELOPE ? mc.envelope_off : it->kind == FI_BODY ? mc.body_off : mc.bodystructure_off;
                size_t len = it->kind == FI_ENVELOPE ? mc.envelope_len : it->kind == FI_BODY ? mc.body_len : mc.bodystructure_len;
                mg_buf_printf(t, "%s (", name);
                mg_buf_append(t, c.data + off, len);
                mg_buf_append_byte(t, ')');
            } else if (it->kind == FI_ENVELOPE) {
                mg_buf_append_str(t, "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
            } else {
                mg_buf_printf(t, "%s (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)", name);
            }
            mg_buf_free(&c);
            break;
        }
        case FI_SECTION:
            mg_buf_printf(t, "%s ", it->resp_name);
            if (it->is_whole) {
                uint64_t off = 0, len = st->file_size;
                if (it->has_partial) {
                    off = it->partial_off < len ? it->partial_off : len;
                    len = len - off < it->partial_len ? len - off : it->partial_len;
                }
                mg_buf_printf(t, "{%llu}\r\n", (unsigned long long)len);
                seg_text(st, seg_start);
                seg_file(st, off, len);
                seg_start = t->len;
            } else {
                append_section_literal(t, it, root, data);
            }
            break;
        }
    }
    if (!flags_done && was_seen_by_us(st, rec->uid)) {
        mg_buf_append_str(t, " FLAGS ");
        imap_flags_write(s, &st->keywords, t, rec->flags, rec->keywords,
                         imap_view_is_recent(s->view, rec->uid));
    }
    if (want_uid)
        mg_buf_printf(t, " UID %u", rec->uid);
    mg_buf_append_str(t, ")\r\n");
    seg_text(st, seg_start);
}

static void message_reset(struct fetch_state *st)
{
    mg_buf_reset(&st->msg_text);
    st->n_segs = 0;
    st->seg_pos = 0;
    if (st->fd >= 0) {
        close(st->fd);
        st->fd = -1;
    }
}

/* ---- sending segments ---- */

static void read_cb(uv_fs_t *req);

/* Sends segments until done (true) or waiting (false). */
static bool send_segments(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct fetch_state *st = cmd->state;
    while (st->seg_pos < st->n_segs) {
        if (!imap_session_is_alive(s))
            return false;
        if (mg_conn_output_pending(s->conn) >= MG_CONN_HIGH_WATERMARK) {
            mg_conn_want_drain(s->conn);
            return false;
        }
        struct fetch_seg *g = &st->segs[st->seg_pos];
        if (g->type == SEG_TEXT) {
            imap_write(s, st->msg_text.data + g->text_off, g->text_len);
            st->seg_pos++;
            continue;
        }
        if (st->stream_left == 0 && !st->is_reading) {
            if (g->file_len == 0) {
                st->seg_pos++;
                continue;
            }
            st->stream_off = g->file_off;
            st->stream_left = g->file_len;
        }
        uint64_t n = st->stream_left < IMAP_STREAM_CHUNK ? st->stream_left : IMAP_STREAM_CHUNK;
        if (st->file_size <= IMAP_SYNC_READ_MAX) {
            /* A small file: one read from the page cache. */
            ssize_t r = pread(st->fd, st->chunk, n, (off_t)st->stream_off);
            if (r <= 0) {
                /* Short file: pad so the literal length holds. */
                memset(st->chunk, ' ', n);
                r = (ssize_t)n;
            }
            replace_nuls(st->chunk, (size_t)r);
            imap_write(s, st->chunk, (size_t)r);
            st->stream_off += (uint64_t)r;
            st->stream_left -= (uint64_t)r;
        } else {
            uv_buf_t b = uv_buf_init(st->chunk, (unsigned int)n);
            st->is_reading = true;
            st->read_req.data = cmd;
            uv_fs_read(s->server->loop, &st->read_req, st->fd, &b, 1, (int64_t)st->stream_off, read_cb);
            return false;
        }
        if (st->stream_left == 0)
            st->seg_pos++;
    }
    return true;
}

static void read_cb(uv_fs_t *req)
{
    struct imap_cmd *cmd = req->data;
    struct fetch_state *st = cmd->state;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    st->is_reading = false;
    if (st->is_cancelled || !imap_session_is_alive(cmd->s)) {
        /* The session went while we read: all of the state goes. */
        fetch_free_state(st);
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    uint64_t want = st->stream_left < IMAP_STREAM_CHUNK ? st->stream_left : IMAP_STREAM_CHUNK;
    if (r <= 0) {
        /* The file shrank under us: keep the literal's promise. */
        memset(st->chunk, ' ', want);
        r = (ssize_t)want;
    }
    replace_nuls(st->chunk, (size_t)r);
    imap_write(cmd->s, st->chunk, (size_t)r);
    st->stream_off += (uint64_t)r;
    st->stream_left -= (uint64_t)r;
    if (st->stream_left == 0)
        st->seg_pos++;
    fetch_continue(cmd);
}

/* ---- large messages: parse in the thread pool ---- */

static void parse_work(uv_work_t *req)
{
    struct imap_cmd *cmd = req->data;
    struct fetch_state *st = cmd->state;
    char *data = NULL;
    size_t len = st->file_size;
    if (read_whole(st->fd, st->file_size, &data) < 0) {
        data = mg_strdup("");
        len = 0;
    }
    struct mg_arena *arena = mg_arena_new(65536);
    struct mime_part *root = mime_parser_parse(arena, data, len);
    /* build_message reads the index for ENVELOPE and friends: that is a
     * snapshot read, safe from this thread; nothing else touches the
     * command while the job runs. */
    build_message(cmd, st, st->work_seq, &st->work_rec, data, root);
    mg_arena_free(&arena);
    free(data);
}

static void parse_after(uv_work_t *req, int status)
{
    (void)status;
    struct imap_cmd *cmd = req->data;
    struct fetch_state *st = cmd->state;
    st->is_working = false;
    if (st->is_cancelled || !imap_session_is_alive(cmd->s)) {
        fetch_free_state(st);
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    fetch_continue(cmd);
}

/* ---- the loop over messages ---- */

static void fetch_free_state(struct fetch_state *st)
{
    message_reset(st);
    mg_buf_free(&st->msg_text);
    free(st->segs);
    free(st->chunk);
    free(st->seen_uids);
    imap_flags_names_free(&st->keywords);
}

static bool fetch_cancel(struct imap_cmd *cmd)
{
    struct fetch_state *st = cmd->state;
    if (st->is_reading || st->is_working) {
        /* The callback finishes the command. */
        st->is_cancelled = true;
        return false;
    }
    fetch_free_state(st);
    return true;
}

static void fetch_done(struct imap_cmd *cmd)
{
    struct fetch_state *st = cmd->state;
    cmd->on_drain = NULL;
    cmd->on_cancel = NULL;
    /* UID FETCH skips messages that are gone: their EXPUNGE follows
     * (Dovecot, RFC 2180 4.1.2). By sequence number the client asked for a
     * message it still believes in, and is told. */
    bool expunged = st->had_expunged && !cmd->is_uid;
    fetch_free_state(st);
    if (expunged)
        imap_cmd_finish(cmd, "NO", "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
    else
        imap_cmd_finish(cmd, "OK", "Fetch completed.");
}

static void fetch_drain(struct imap_cmd *cmd)
{
    fetch_continue(cmd);
}

static void fetch_continue(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct fetch_state *st = cmd->state;
    cmd->on_drain = fetch_drain;
    cmd->on_cancel = fetch_cancel;
    while (imap_session_is_alive(s)) {
        if (st->n_segs > 0) {
            if (!send_segments(cmd))
                return; /* waiting for output to drain or a read */
            message_reset(st);
            st->pos++;
        }
        if (st->pos >= st->n) {
            fetch_done(cmd);
            return;
        }
        if (mg_conn_output_pending(s->conn) >= MG_CONN_HIGH_WATERMARK) {
            mg_conn_want_drain(s->conn);
            return;
        }
        uint32_t uid = st->uids[st->pos];
        long pos = imap_view_find(s->view, uid);
        struct index_msg_rec rec;
        if (pos < 0 || store_msg_get(s->user, s->view->mailbox_id, uid, &rec) != STORE_OK) {
            st->had_expunged = true;
            st->pos++;
            continue;
        }
        if (st->needs_file) {
            st->fd = store_msg_open(s->user, s->view->name, &rec);
            struct stat sb;
            if (st->fd < 0 || fstat(st->fd, &sb) != 0) {
                if (st->fd >= 0)
                    close(st->fd);
                st->fd = -1;
                st->had_expunged = true;
                st->pos++;
                continue;
            }
            st->file_size = (uint64_t)sb.st_size;
        }
        if (st->needs_parse && st->file_size > IMAP_SYNC_READ_MAX) {
            st->work_rec = rec;
            st->work_seq = (size_t)pos + 1;
            st->is_working = true;
            st->work.data = cmd;
            uv_queue_work(s->server->loop, &st->work, parse_work, parse_after);
            return;
        }
        if (st->needs_parse) {
            char *data = NULL;
            if (read_whole(st->fd, st->file_size, &data) < 0) {
                st->had_expunged = true;
                message_reset(st);
                st->pos++;
                continue;
            }
            struct mg_arena *arena = mg_arena_new(16384);
            struct mime_part *root = mime_parser_parse(arena, data, st->file_size);
            build_message(cmd, st, (size_t)pos + 1, &rec, data, root);
            mg_arena_free(&arena);
            free(data);
        } else {
            build_message(cmd, st, (size_t)pos + 1, &rec, NULL, NULL);
        }
    }
    /* The session is closing: its close calls fetch_cancel. */
}

static void seen_done(int status, const char *error, const struct store_flag_change *changes,
                      size_t count, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    struct fetch_state *st = cmd->state;
    (void)error;
    if (!imap_session_is_alive(cmd->s) || cmd->s->view == NULL) {
        fetch_free_state(st);
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    if (status == STORE_OK) {
        st->seen_uids = mg_reallocarray(NULL, count ? count : 1, sizeof(uint32_t));
        for (size_t i = 0; i < count; i++) {
            st->seen_uids[i] = changes[i].uid;
            imap_view_note_own_change(cmd->s->view, changes[i].uid, changes[i].modseq);
        }
        st->n_seen = count;
    }
    fetch_continue(cmd);
}

enum imap_cmd_result cmd_fetch(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    if (cmd->nargs != 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_cmd_bad(cmd, "FETCH needs a set and items");
        return IMAP_CMD_DONE;
    }
    struct imap_seqset set;
    uint32_t *idx;
    size_t n;
    if (imap_seqset_parse(cmd->arena, cmd->args[0].str, cmd->args[0].len, &set) < 0 ||
        imap_seqset_resolve(cmd->arena, &set, cmd->is_uid, v->uids, v->count, &idx, &n) < 0) {
        imap_cmd_bad(cmd, "Invalid messageset");
        return IMAP_CMD_DONE;
    }
    struct fetch_state *st = mg_arena_zalloc(cmd->arena, sizeof(*st));
    st->fd = -1;
    const char *error;
    if (parse_items(cmd, st, &cmd->args[1], &error) < 0) {
        imap_cmd_bad(cmd, error);
        return IMAP_CMD_DONE;
    }
    st->uids = mg_arena_alloc(cmd->arena, (n ? n : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        st->uids[i] = v->uids[idx[i]];
    st->n = n;
    st->chunk = mg_malloc(IMAP_STREAM_CHUNK);
    cmd->state = st;
    if (st->sets_seen && !v->is_readonly && n > 0) {
        /* \Seen first, so the responses carry the new flags. */
        struct store_flags seen = { MAILDIR_FLAG_SEEN, NULL, 0 };
        store_set_flags(s->user, v->mailbox_id, st->uids, n, STORE_FLAGS_ADD, &seen, seen_done, cmd);
        return IMAP_CMD_ASYNC;
    }
    fetch_continue(cmd);
    return IMAP_CMD_ASYNC;
}
