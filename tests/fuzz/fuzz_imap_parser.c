/* libFuzzer harness for the IMAP command parser and what consumes its
 * arguments: the input is a command ("tag NAME args", without the final
 * CRLF, literals inline as the session assembles them) or, when it does
 * not start like one, the arguments alone.
 *
 * Invariants checked:
 *  - every string argument is NUL-terminated at len, NIL has three
 *    characters, atoms are not empty, lists nest at most
 *    IMAP_PARSER_MAX_DEPTH deep and there are at most IMAP_PARSER_MAX_ARGS;
 *  - the tree written back as IMAP text (quoted strings, literals, NIL and
 *    atoms as they came) parses to the same tree;
 *  - sequence sets that parse resolve to ascending, unique positions inside
 *    the view, agree with imap_seqset_contains_uid(), and the UIDs written
 *    back with imap_seqset_write_uids() name the same messages;
 *  - the arguments as a SEARCH program parse or fail cleanly, and a program
 *    that parses matches synthetic messages (with content from a load
 *    callback) without crashing and is freed without leaks;
 *  - bracketed parts of atoms go through the FETCH section parser; quoted
 *    strings through the date parsers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "mda/imap/imap_date.h"
#include "mda/imap/imap_parser.h"
#include "mda/imap/imap_search.h"
#include "mda/imap/imap_seqset.h"
#include "mda/mime/imap_section.h"
#include "mda/store/maildir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *const keywords[] = { "$Forwarded", "Work", "$Junk", "NonJunk" };

static const uint32_t view_uids[] = { 3, 4, 5, 9, 10, 200, 4000000000u };
#define VIEW_COUNT (sizeof(view_uids) / sizeof(view_uids[0]))

static const char message[] =
    "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.de>\r\n"
    "To: a@example.com,\r\n b@example.com\r\n"
    "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
    "Date: Tue, 14 Nov 2023 23:30:00 -0500\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n"
    "\r\n"
    "--b\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "SGFsbG8gV2VsdA==\r\n"
    "--b\r\n"
    "Content-Type: text/html; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>Caf=E9</p>=\r\n"
    "--b--\r\n";

static int load_message(void *ctx, const char **data_r, size_t *len_r)
{
    (void)ctx;
    *data_r = message;
    *len_r = sizeof(message) - 1;
    return 0;
}

static void check_tree(const struct imap_arg *args, size_t n, unsigned depth, size_t *total)
{
    if (depth > IMAP_PARSER_MAX_DEPTH)
        mg_panic("lists nested %u deep", depth);
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (++*total > IMAP_PARSER_MAX_ARGS)
            mg_panic("more than IMAP_PARSER_MAX_ARGS arguments");
        switch (a->type) {
        case IMAP_ARG_LIST:
            check_tree(a->list, a->list_count, depth + 1, total);
            continue;
        case IMAP_ARG_ATOM:
            if (a->len == 0)
                mg_panic("empty atom");
            if (memchr(a->str, '\0', a->len) != NULL)
                mg_panic("NUL in an atom");
            break;
        case IMAP_ARG_NIL:
            if (a->len != 3)
                mg_panic("NIL of length %zu", a->len);
            break;
        case IMAP_ARG_QUOTED:
            if (memchr(a->str, '\0', a->len) || memchr(a->str, '\r', a->len) ||
                memchr(a->str, '\n', a->len))
                mg_panic("NUL or line break in a quoted string");
            break;
        case IMAP_ARG_LITERAL:
            if (memchr(a->str, '\0', a->len) != NULL)
                mg_panic("NUL in a literal");
            break;
        case IMAP_ARG_FILE:
            break;
        }
        if (a->str == NULL || a->str[a->len] != '\0')
            mg_panic("string not terminated at its length");
    }
}

/* The tree as IMAP text, parseable back into the same tree. */
static void write_args(struct mg_buf *out, const struct imap_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (i > 0)
            mg_buf_append_byte(out, ' ');
        switch (a->type) {
        case IMAP_ARG_ATOM:
        case IMAP_ARG_NIL:
            mg_buf_append(out, a->str, a->len);
            break;
        case IMAP_ARG_QUOTED:
            mg_buf_append_byte(out, '"');
            for (size_t k = 0; k < a->len; k++) {
                if (a->str[k] == '"' || a->str[k] == '\\')
                    mg_buf_append_byte(out, '\\');
                mg_buf_append_byte(out, a->str[k]);
            }
            mg_buf_append_byte(out, '"');
            break;
        case IMAP_ARG_LITERAL:
            mg_buf_printf(out, "{%zu}\r\n", a->len);
            mg_buf_append(out, a->str, a->len);
            break;
        case IMAP_ARG_FILE:
            mg_buf_append_str(out, "{FILE}\r\n");
            break;
        case IMAP_ARG_LIST:
            mg_buf_append_byte(out, '(');
            write_args(out, a->list, a->list_count);
            mg_buf_append_byte(out, ')');
            break;
        }
    }
}

static bool same_tree(const struct imap_arg *a, size_t an, const struct imap_arg *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        if (a[i].type != b[i].type)
            return false;
        if (a[i].type == IMAP_ARG_LIST) {
            if (!same_tree(a[i].list, a[i].list_count, b[i].list, b[i].list_count))
                return false;
        } else if (a[i].type == IMAP_ARG_FILE) {
            if (a[i].file_index != b[i].file_index)
                return false;
        } else if (a[i].len != b[i].len || memcmp(a[i].str, b[i].str, a[i].len) != 0) {
            return false;
        }
    }
    return true;
}

static void check_seqset(struct mg_arena *arena, const char *s, size_t len)
{
    struct imap_seqset set;
    if (imap_seqset_parse(arena, s, len, &set) < 0)
        return;
    if (set.count == 0)
        mg_panic("empty set parsed");
    for (size_t i = 0; i < set.count; i++) {
        if (set.ranges[i].lo > set.ranges[i].hi || set.ranges[i].lo == 0)
            mg_panic("bad range");
    }
    for (int is_uid = 0; is_uid < 2; is_uid++) {
        for (size_t count = 0; count <= VIEW_COUNT; count += VIEW_COUNT / 2 + 1) {
            uint32_t *idx;
            size_t n;
            if (imap_seqset_resolve(arena, &set, is_uid, view_uids, count, &idx, &n) < 0) {
                if (is_uid)
                    mg_panic("UID set refused");
                continue;
            }
            uint32_t star = is_uid ? (count ? view_uids[count - 1] : 0) : (uint32_t)count;
            size_t k = 0;
            for (size_t pos = 0; pos < count; pos++) {
                uint32_t x = is_uid ? view_uids[pos] : (uint32_t)(pos + 1);
                bool in = imap_seqset_contains_uid(&set, x, star);
                bool listed = k < n && idx[k] == pos;
                if (in != listed)
                    mg_panic("resolve and contains disagree on position %zu", pos);
                if (listed)
                    k++;
            }
            if (k != n)
                mg_panic("resolve gave positions outside the view or out of order");
            if (is_uid && n > 0) {
                uint32_t uids[VIEW_COUNT];
                for (size_t i = 0; i < n; i++)
                    uids[i] = view_uids[idx[i]];
                struct mg_buf b = MG_BUF_INIT;
                imap_seqset_write_uids(&b, uids, n);
                struct imap_seqset again;
                uint32_t *idx2;
                size_t n2;
                if (imap_seqset_parse(arena, b.data, b.len, &again) < 0 ||
                    imap_seqset_resolve(arena, &again, true, view_uids, count, &idx2, &n2) < 0 ||
                    n2 != n || memcmp(idx2, idx, n * sizeof(*idx)) != 0)
                    mg_panic("written UID set \"%s\" names other messages", mg_buf_cstr(&b));
                mg_buf_free(&b);
            }
        }
    }
}

static void check_atoms(struct mg_arena *arena, const struct imap_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (a->type == IMAP_ARG_LIST) {
            check_atoms(arena, a->list, a->list_count);
            continue;
        }
        if (a->type == IMAP_ARG_ATOM) {
            if (a->str[0] == '*' || (a->str[0] >= '0' && a->str[0] <= '9'))
                check_seqset(arena, a->str, a->len);
            const char *open = memchr(a->str, '[', a->len);
            const char *close = NULL;
            for (const char *p = a->str + a->len; p > a->str; p--) {
                if (p[-1] == ']') {
                    close = p - 1;
                    break;
                }
            }
            if (open != NULL && close != NULL && close > open) {
                struct imap_section sec;
                const char *error;
                (void)imap_section_parse(arena, open + 1, (size_t)(close - open - 1), &sec,
                                         &error);
            }
        }
        if (a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL) {
            time_t t;
            long days;
            /* Inside years 0000-9999 in any zone, formatting reads back. */
            if (imap_date_parse_datetime(a->str, a->len, &t) == 0 &&
                t > -62167219200LL + 2 * 86400 && t < 253402300799LL - 2 * 86400) {
                char out[IMAP_DATETIME_SIZE];
                imap_date_format_datetime(t, out);
                time_t t2;
                if (imap_date_parse_datetime(out, strlen(out), &t2) < 0 || t2 != t)
                    mg_panic("date-time \"%s\" does not read back", out);
            }
            (void)imap_date_parse_date(a->str, a->len, &days);
        }
    }
}

static void check_search(struct mg_arena *arena, const struct imap_arg *args, size_t n)
{
    struct search_key *root;
    const char *error;
    if (search_parse(arena, args, n, keywords, 4, &root, &error) < 0) {
        if (error == NULL)
            mg_panic("search refused without a reason");
        return;
    }
    (void)search_needs_content(root);
    static const struct {
        uint32_t uid, flags;
        uint64_t keywords, size;
        int64_t date;
        bool recent;
    } facts[] = {
        { 3, MAILDIR_FLAG_SEEN, 1, 100, 1700000000, false },
        { 9, MAILDIR_FLAG_DELETED | MAILDIR_FLAG_DRAFT, 6, 5000, 1600000000, true },
        { 200, 0, 0, 0, -1, true },
    };
    for (size_t i = 0; i < sizeof(facts) / sizeof(facts[0]); i++) {
        struct search_msg m = {
            .seq = (uint32_t)(i + 1),
            .uid = facts[i].uid,
            .flags = facts[i].flags,
            .keywords = facts[i].keywords,
            .size = facts[i].size,
            .internaldate = facts[i].date,
            .is_recent = facts[i].recent,
            .load = load_message,
        };
        (void)search_match(root, &m, 3, 200);
    }
    search_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact copy, so that reads past the end are caught. */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    struct mg_arena *arena = mg_arena_new(0);

    size_t tag_len;
    const char *name, *rest = text;
    size_t name_len, rest_len = size;
    if (imap_parse_command_start(text, size, &tag_len, &name, &name_len, &rest, &rest_len) == 0) {
        if (tag_len == 0 || name_len == 0 || rest < text || rest + rest_len != text + size)
            mg_panic("bad command split");
    } else {
        if (tag_len > size)
            mg_panic("tag longer than the input");
        rest = text;
        rest_len = size;
    }

    struct imap_arg *args;
    size_t n;
    const char *error;
    if (imap_parse_args(arena, rest, rest_len, &args, &n, &error) == 0) {
        size_t total = 0;
        check_tree(args, n, 0, &total);

        struct mg_buf b = MG_BUF_INIT;
        write_args(&b, args, n);
        struct imap_arg *args2;
        size_t n2;
        if (imap_parse_args(arena, b.data != NULL ? b.data : "", b.len, &args2, &n2, &error) < 0)
            mg_panic("written back, the arguments do not parse: %s", error);
        if (!same_tree(args, n, args2, n2))
            mg_panic("written back, the arguments parse differently");
        mg_buf_free(&b);

        check_atoms(arena, args, n);
        check_search(arena, args, n);
    } else if (error == NULL) {
        mg_panic("refused without a reason");
    }

    mg_arena_free(&arena);
    free(text);
    return 0;
}
