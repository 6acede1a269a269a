#include "mda/imap/imap_search.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "mda/imap/imap_date.h"
#include "mda/imap/imap_limits.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_date.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_header.h"
#include "mda/mime/mime_parser.h"
#include "mda/mime/mime_text.h"
#include "mda/store/maildir.h"

struct search_parser {
    struct mg_arena *arena;
    const struct imap_arg *args;
    size_t n, pos;
    char *const *keywords;
    unsigned keyword_count;
    unsigned keys;
    const char *error;
};

static int parse_key(struct search_parser *p, struct search_key *key, unsigned depth);

static const struct imap_arg *next_arg(struct search_parser *p)
{
    if (p->pos >= p->n) {
        p->error = "Missing search argument";
        return NULL;
    }
    return &p->args[p->pos++];
}

static int get_string(struct search_parser *p, const char **s_r, size_t *len_r)
{
    const struct imap_arg *a = next_arg(p);
    if (a == NULL)
        return -1;
    if (!imap_arg_get_astring(a, s_r, len_r)) {
        p->error = "Expected a string";
        return -1;
    }
    return 0;
}

static int get_number(struct search_parser *p, uint64_t *n_r)
{
    const char *s;
    size_t len;
    if (get_string(p, &s, &len) < 0)
        return -1;
    uint64_t n = 0;
    if (len == 0 || len > 19) {
        p->error = "Invalid number";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            p->error = "Invalid number";
            return -1;
        }
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    *n_r = n;
    return 0;
}

static int get_date(struct search_parser *p, long *days_r)
{
    const char *s;
    size_t len;
    if (get_string(p, &s, &len) < 0)
        return -1;
    if (imap_date_parse_date(s, len, days_r) < 0) {
        p->error = "Invalid search date";
        return -1;
    }
    return 0;
}

static int keyword_bit(struct search_parser *p, const char *name, size_t len)
{
    /* Keywords are bits of a 64-bit mask: a name beyond those is on no
     * message. */
    for (unsigned i = 0; i < p->keyword_count && i < 64; i++) {
        if (mg_ascii_eq(name, len, p->keywords[i]))
            return (int)i;
    }
    return -1;
}

static int header_key(struct search_parser *p, struct search_key *key, const char *field)
{
    const char *s;
    size_t len;
    if (get_string(p, &s, &len) < 0)
        return -1;
    key->type = SK_HEADER;
    key->field = field;
    mime_search_init(&key->search, s, len);
    return 0;
}

static const struct {
    const char *name;
    enum search_key_type type;
    uint32_t flags;
} flag_keys[] = {
    { "ANSWERED", SK_FLAGS_SET, MAILDIR_FLAG_ANSWERED },
    { "DELETED", SK_FLAGS_SET, MAILDIR_FLAG_DELETED },
    { "DRAFT", SK_FLAGS_SET, MAILDIR_FLAG_DRAFT },
    { "FLAGGED", SK_FLAGS_SET, MAILDIR_FLAG_FLAGGED },
    { "SEEN", SK_FLAGS_SET, MAILDIR_FLAG_SEEN },
    { "UNANSWERED", SK_FLAGS_UNSET, MAILDIR_FLAG_ANSWERED },
    { "UNDELETED", SK_FLAGS_UNSET, MAILDIR_FLAG_DELETED },
    { "UNDRAFT", SK_FLAGS_UNSET, MAILDIR_FLAG_DRAFT },
    { "UNFLAGGED", SK_FLAGS_UNSET, MAILDIR_FLAG_FLAGGED },
    { "UNSEEN", SK_FLAGS_UNSET, MAILDIR_FLAG_SEEN },
};

static const struct {
    const char *name;
    enum search_key_type type;
} date_keys[] = {
    { "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
    { "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
};

static const struct {
    const char *name;
    const char *field;
} header_keys[] = {
    { "FROM", "From" }, { "TO", "To" }, { "CC", "Cc" }, { "BCC", "Bcc" }, { "SUBJECT", "Subject" },
};

static int parse_list(struct search_parser *p, const struct imap_arg *list, size_t n,
                      struct search_key *key, unsigned depth)
{
    struct search_parser sub = *p;
    sub.args = list;
    sub.n = n;
    sub.pos = 0;
    key->type = SK_AND;
    key->children = mg_arena_zalloc(p->arena, (n ? n : 1) * sizeof(*key->children));
    key->n_children = 0;
    while (sub.pos < sub.n) {
        if (parse_key(&sub, &key->children[key->n_children], depth + 1) < 0) {
            /* Counted, so that search_free() releases what the failed key
             * set up already (a NOT or OR with a parsed HEADER below). */
            key->n_children++;
            p->error = sub.error;
            p->keys = sub.keys;
            return -1;
        }
        key->n_children++;
    }
    p->keys = sub.keys;
    if (key->n_children == 0) {
        p->error = "Empty search list";
        return -1;
    }
    return 0;
}

static int parse_key(struct search_parser *p, struct search_key *key, unsigned depth)
{
    memset(key, 0, sizeof(*key));
    if (++p->keys > IMAP_SEARCH_KEYS_MAX || depth > 64) {
        p->error = "Search program too complex";
        return -1;
    }
    const struct imap_arg *a = next_arg(p);
    if (a == NULL)
        return -1;
    if (a->type == IMAP_ARG_LIST)
        return parse_list(p, a->list, a->list_count, key, depth);
    if (a->type != IMAP_ARG_ATOM) {
        p->error = "Unknown search key";
        return -1;
    }
    const char *w = a->str;
    size_t wl = a->len;
    if (w[0] == '*' || (w[0] >= '0' && w[0] <= '9')) {
        key->type = SK_SEQSET;
        if (imap_seqset_parse(p->arena, w, wl, &key->set) < 0) {
            p->error = "Invalid sequence set";
            return -1;
        }
        return 0;
    }
    if (mg_ascii_eq(w, wl, "ALL")) {
        key->type = SK_ALL;
        return 0;
    }
    for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
        if (mg_ascii_eq(w, wl, flag_keys[i].name)) {
            key->type = flag_keys[i].type;
            key->flags = flag_keys[i].flags;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
        if (mg_ascii_eq(w, wl, date_keys[i].name)) {
            key->type = date_keys[i].type;
            return get_date(p, &key->days);
        }
    }
    for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
        if (mg_ascii_eq(w, wl, header_keys[i].name))
            return header_key(p, key, header_keys[i].field);
    }
    if (mg_ascii_eq(w, wl, "NEW")) {
        key->type = SK_NEW;
    } else if (mg_ascii_eq(w, wl, "OLD")) {
        key->type = SK_OLD;
    } else if (mg_ascii_eq(w, wl, "RECENT")) {
        key->type = SK_RECENT;
    } else if (mg_ascii_eq(w, wl, "LARGER") || mg_ascii_eq(w, wl, "SMALLER")) {
        key->type = (w[0] == 'L' || w[0] == 'l') ? SK_LARGER : SK_SMALLER;
        return get_number(p, &key->number);
    } else if (mg_ascii_eq(w, wl, "KEYWORD") || mg_ascii_eq(w, wl, "UNKEYWORD")) {
        key->type = (w[0] == 'K' || w[0] == 'k') ? SK_KEYWORD : SK_UNKEYWORD;
        const char *s;
        size_t len;
        if (get_string(p, &s, &len) < 0)
            return -1;
        key->keyword = keyword_bit(p, s, len);
    } else if (mg_ascii_eq(w, wl, "HEADER")) {
        const char *f;
        size_t fl;
        if (get_string(p, &f, &fl) < 0)
            return -1;
        if (fl == 0 || fl > 200) {
            p->error = "Invalid header name";
            return -1;
        }
        key->field = mg_arena_strndup(p->arena, f, fl);
        const char *s;
        size_t len;
        if (get_string(p, &s, &len) < 0)
            return -1;
        key->type = SK_HEADER;
        mime_search_init(&key->search, s, len);
    } else if (mg_ascii_eq(w, wl, "BODY") || mg_ascii_eq(w, wl, "TEXT")) {
        key->type = (w[0] == 'B' || w[0] == 'b') ? SK_BODY : SK_TEXT;
        const char *s;
        size_t len;
        if (get_string(p, &s, &len) < 0)
            return -1;
        mime_search_init(&key->search, s, len);
    } else if (mg_ascii_eq(w, wl, "UID")) {
        key->type = SK_UIDSET;
        const char *s;
        size_t len;
        if (get_string(p, &s, &len) < 0 || imap_seqset_parse(p->arena, s, len, &key->set) < 0) {
            p->error = "Invalid UID set";
            return -1;
        }
    } else if (mg_ascii_eq(w, wl, "NOT")) {
        key->type = SK_NOT;
        key->children = mg_arena_zalloc(p->arena, sizeof(*key->children));
        key->n_children = 1;
        return parse_key(p, &key->children[0], depth + 1);
    } else if (mg_ascii_eq(w, wl, "OR")) {
        key->type = SK_OR;
        key->children = mg_arena_zalloc(p->arena, 2 * sizeof(*key->children));
        key->n_children = 2;
        if (parse_key(p, &key->children[0], depth + 1) < 0)
            return -1;
        return parse_key(p, &key->children[1], depth + 1);
    } else {
        p->error = "Unknown search key";
        return -1;
    }
    return 0;
}

int search_parse(struct mg_arena *arena, const struct imap_arg *args, size_t n,
                 char *const *keywords, unsigned keyword_count, struct search_key **root_r,
                 const char **error_r)
{
    struct search_parser p = { arena, args, n, 0, keywords, keyword_count, 0, NULL };
    struct search_key *root = mg_arena_zalloc(arena, sizeof(*root));
    if (n == 0) {
        *error_r = "Missing search program";
        return -1;
    }
    if (parse_list(&p, args, n, root, 0) < 0) {
        *error_r = p.error;
        search_free(root);
        return -1;
    }
    *root_r = root;
    return 0;
}

void search_free(struct search_key *key)
{
    if (key == NULL)
        return;
    if (key->type == SK_HEADER || key->type == SK_BODY || key->type == SK_TEXT)
        mime_search_deinit(&key->search);
    for (size_t i = 0; i < key->n_children; i++)
        search_free(&key->children[i]);
}

bool search_needs_content(const struct search_key *key)
{
    switch (key->type) {
    case SK_HEADER:
    case SK_BODY:
    case SK_TEXT:
    case SK_SENTBEFORE:
    case SK_SENTON:
    case SK_SENTSINCE:
        return true;
    default:
        break;
    }
    for (size_t i = 0; i < key->n_children; i++) {
        if (search_needs_content(&key->children[i]))
            return true;
    }
    return false;
}

/* ---- content keys ---- */

/* Fields whose value is an address list. */
static bool is_address_field(const struct mime_header_field *f)
{
    static const char *const names[] = {
        "From", "To", "Cc", "Bcc", "Sender", "Reply-To",
        "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Bcc",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (mime_header_field_is(f, names[i]))
            return true;
    }
    return false;
}

/* An address field as SEARCH sees it: the parsed list written back in one
 * canonical form ("Name <user@host>, group: a@b;"), so that comments,
 * quoting and folding inside the addresses do not hide a match, as in
 * Dovecot. Names are decoded (RFC 2047). */
static void address_field_text(struct mg_arena *arena, const struct mime_header_field *f,
                               struct mg_buf *out)
{
    struct mime_address *a = mime_address_parse(arena, f->value, f->value_len,
                                                 MIME_ADDRESS_FLAG_FILL_MISSING);
    bool is_first = true;
    for (; a != NULL; a = a->next) {
        if (a->mailbox == NULL) {            /* group end */
            mg_buf_append_byte(out, ';');
            continue;
        }
        if (!is_first)
            mg_buf_append_str(out, ", ");
        if (a->domain == NULL) {             /* group start */
            mg_buf_append_str(out, a->mailbox);
            mg_buf_append_str(out, ": ");
            is_first = true;
            continue;
        }
        is_first = false;
        if (a->name != NULL) {
            mime_encword_decode(a->name, strlen(a->name), out);
            mg_buf_append_str(out, " <");
        }
        if (a->route != NULL) {
            mg_buf_append_str(out, a->route);
            mg_buf_append_byte(out, ':');
        }
        mg_buf_append_str(out, a->mailbox);
        mg_buf_append_byte(out, '@');
        mg_buf_append_str(out, a->domain);
        if (a->name != NULL)
            mg_buf_append_byte(out, '>');
    }
}

static bool body_text_cb(void *ctx, const struct mime_part *part, const char *text, size_t len)
{
    (void)part;
    struct search_key *key = ctx;
    /* Stop the walk at the first match. */
    return !mime_search_match(&key->search, text, len);
}

static bool match_content(struct search_key *key, struct search_msg *msg)
{
    const char *data;
    size_t len;
    if (msg->load == NULL || msg->load(msg->load_ctx, &data, &len) < 0)
        return false;
    struct mg_arena *arena = mg_arena_new(16384);
    struct mime_part *root = mime_parser_parse(arena, data, len);
    bool match = false;
    struct mg_buf v = MG_BUF_INIT;
    switch (key->type) {
    case SK_HEADER: {
        /* Every field of that name counts (Received, a second To); with
         * an empty string, HEADER matches any message that has the field,
         * even with an empty value. */
        struct mime_header_iter it;
        struct mime_header_field f;
        mime_header_iter_init(&it, data, root->header_start, root->header_end);
        while (!match && mime_header_iter_next(&it, &f)) {
            if (!mime_header_field_is(&f, key->field))
                continue;
            mg_buf_reset(&v);
            if (is_address_field(&f))
                address_field_text(arena, &f, &v);
            else
                mime_encword_decode(f.value, f.value_len, &v);
            match = mime_search_match(&key->search, mg_buf_cstr(&v), v.len);
        }
        break;
    }
    case SK_BODY:
        match = !mime_text_foreach(root, data, body_text_cb, key);
        break;
    case SK_TEXT: {
        /* The whole header, decoded as unstructured text, and the body. */
        struct mime_header_iter it;
        struct mime_header_field f;
        mime_header_iter_init(&it, data, root->header_start, root->header_end);
        while (!match && mime_header_iter_next(&it, &f)) {
            mg_buf_reset(&v);
            mg_buf_append(&v, f.name, f.name_len);
            mg_buf_append_str(&v, ": ");
            struct mg_buf dec = MG_BUF_INIT;
            mime_encword_decode(f.value, f.value_len, &dec);
            mg_buf_append(&v, dec.data, dec.len);
            mg_buf_free(&dec);
            match = mime_search_match(&key->search, mg_buf_cstr(&v), v.len);
        }
        if (!match)
            match = !mime_text_foreach(root, data, body_text_cb, key);
        break;
    }
    case SK_SENTBEFORE:
    case SK_SENTON:
    case SK_SENTSINCE: {
        struct mime_header_field f;
        time_t t;
        int zone = 0;
        if (mime_header_find(data, root->header_start, root->header_end, "Date", &f) &&
            mime_date_parse(f.value, f.value_len, &t, &zone) == 0) {
            long days = imap_date_days(t, (long)zone * 60);
            match = key->type == SK_SENTBEFORE ? days < key->days
                    : key->type == SK_SENTON   ? days == key->days
                                               : days >= key->days;
        }
        break;
    }
    default:
        break;
    }
    mg_buf_free(&v);
    mg_arena_free(&arena);
    return match;
}

bool search_match(struct search_key *key, struct search_msg *msg, uint32_t max_seq,
                  uint32_t max_uid)
{
    switch (key->type) {
    case SK_ALL:
        return true;
    case SK_AND:
        for (size_t i = 0; i < key->n_children; i++) {
            if (!search_match(&key->children[i], msg, max_seq, max_uid))
                return false;
        }
        return true;
    case SK_OR:
        return search_match(&key->children[0], msg, max_seq, max_uid) ||
               search_match(&key->children[1], msg, max_seq, max_uid);
    case SK_NOT:
        return !search_match(&key->children[0], msg, max_seq, max_uid);
    case SK_SEQSET:
        return imap_seqset_contains_uid(&key->set, msg->seq, max_seq);
    case SK_UIDSET:
        return imap_seqset_contains_uid(&key->set, msg->uid, max_uid);
    case SK_FLAGS_SET:
        return (msg->flags & key->flags) == key->flags;
    case SK_FLAGS_UNSET:
        return (msg->flags & key->flags) == 0;
    case SK_KEYWORD:
        return key->keyword >= 0 && (msg->keywords & (1ull << key->keyword));
    case SK_UNKEYWORD:
        return key->keyword < 0 || !(msg->keywords & (1ull << key->keyword));
    case SK_NEW:
        return msg->is_recent && !(msg->flags & MAILDIR_FLAG_SEEN);
    case SK_OLD:
        return !msg->is_recent;
    case SK_RECENT:
        return msg->is_recent;
    case SK_LARGER:
        return msg->size > key->number;
    case SK_SMALLER:
        return msg->size < key->number;
    case SK_BEFORE:
    case SK_ON:
    case SK_SINCE: {
        /* The date of INTERNALDATE in the server's zone, the zone it is
         * shown in. */
        struct tm tm;
        time_t t = (time_t)msg->internaldate;
        localtime_r(&t, &tm);
        long days = imap_date_days(t, tm.tm_gmtoff);
        return key->type == SK_BEFORE ? days < key->days
               : key->type == SK_ON   ? days == key->days
                                      : days >= key->days;
    }
    case SK_HEADER:
    case SK_BODY:
    case SK_TEXT:
    case SK_SENTBEFORE:
    case SK_SENTON:
    case SK_SENTSINCE:
        return match_content(key, msg);
    }
    return false;
}
