/* Flag lists: parsed from commands, "(\Seen \Flagged $Forwarded)", and
 * written in responses from the keyword names read once per command. */
#include "mda/imap/imap_private.h"

#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"

static const struct {
    const char *name;
    uint32_t flag;
} imap_system_flags[] = {
    { "\\Seen", MAILDIR_FLAG_SEEN },     { "\\Answered", MAILDIR_FLAG_ANSWERED },
    { "\\Flagged", MAILDIR_FLAG_FLAGGED }, { "\\Deleted", MAILDIR_FLAG_DELETED },
    { "\\Draft", MAILDIR_FLAG_DRAFT },
};

/* Keywords are atoms: no wildcards or specials, and not too long. */
static bool keyword_is_valid(const char *s, size_t len)
{
    if (len == 0 || len > 100 || s[0] == '\\')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!imap_is_atom_char(c) || c == '%' || c == '*' || c == '[')
            return false;
    }
    return true;
}

int imap_flags_parse(struct imap_cmd *cmd, const struct imap_arg *arg, bool is_list_ok,
                     struct store_flags *flags_r, const char **error_r)
{
    const struct imap_arg *items = arg;
    size_t n = 1;
    if (arg->type == IMAP_ARG_LIST) {
        items = arg->list;
        n = arg->list_count;
    } else if (!is_list_ok || arg->type != IMAP_ARG_ATOM) {
        *error_r = "Invalid flag list";
        return -1;
    }
    memset(flags_r, 0, sizeof(*flags_r));
    const char **kw = mg_arena_alloc(cmd->arena, (n ? n : 1) * sizeof(*kw));
    unsigned nk = 0;
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *f = &items[i];
        if (f->type != IMAP_ARG_ATOM) {
            *error_r = "Invalid flag";
            return -1;
        }
        if (f->str[0] == '\\') {
            size_t k = 0;
            for (; k < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); k++) {
                if (mg_ascii_eq(f->str, f->len, imap_system_flags[k].name))
                    break;
            }
            if (k == sizeof(imap_system_flags) / sizeof(imap_system_flags[0])) {
                /* \Recent cannot be set; other \names are not flags. */
                *error_r = "Invalid system flag";
                return -1;
            }
            flags_r->flags |= imap_system_flags[k].flag;
            continue;
        }
        if (!keyword_is_valid(f->str, f->len)) {
            *error_r = "Invalid keyword";
            return -1;
        }
        bool dup = false;
        for (unsigned j = 0; j < nk; j++)
            dup |= mg_ascii_eq(kw[j], strlen(kw[j]), f->str);
        if (!dup)
            kw[nk++] = f->str;
    }
    flags_r->keywords = kw;
    flags_r->keyword_count = nk;
    return 0;
}

void imap_flags_names_load(struct imap_session *s, struct imap_flags_names *names)
{
    imap_flags_names_free(names);
    if (store_keywords(s->user, &names->names, &names->count) != 0) {
        names->names = NULL;
        names->count = 0;
    }
    names->is_loaded = true;
}

void imap_flags_names_free(struct imap_flags_names *names)
{
    store_keywords_free(names->names, names->count);
    names->names = NULL;
    names->count = 0;
    names->is_loaded = false;
}

void imap_flags_write(struct imap_session *s, struct imap_flags_names *names, struct mg_buf *out,
                      uint32_t flags, uint64_t keywords, bool is_recent)
{
    /* Keywords only grow (a bit never changes its name): a bit past the
     * list read is one created since, by us or another session. */
    if (!names->is_loaded || (names->count < 64 && (keywords >> names->count) != 0))
        imap_flags_names_load(s, names);
    mg_buf_append_byte(out, '(');
    bool first = true;
    for (size_t i = 0; i < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); i++) {
        if (flags & imap_system_flags[i].flag) {
            if (!first)
                mg_buf_append_byte(out, ' ');
            mg_buf_append_str(out, imap_system_flags[i].name);
            first = false;
        }
    }
    if (is_recent) {
        if (!first)
            mg_buf_append_byte(out, ' ');
        mg_buf_append_str(out, "\\Recent");
        first = false;
    }
    for (unsigned i = 0; i < names->count && i < 64 && keywords != 0; i++) {
        if (keywords & (1ull << i)) {
            if (!first)
                mg_buf_append_byte(out, ' ');
            mg_buf_append_str(out, names->names[i]);
            first = false;
        }
    }
    mg_buf_append_byte(out, ')');
}
