/* Flag lists in commands: "(\Seen \Flagged $Forwarded)". */
#include "mda/imap/imap_private.h"

#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"

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
