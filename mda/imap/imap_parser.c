#include "mda/imap/imap_parser.h"

#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"

bool imap_is_atom_char(unsigned char c)
{
    /* atom-specials: ( ) { SP CTL % * " \ ] — of which we let '%' and
     * '*' through (list-wildcards, sequence sets). */
    if (c <= 0x20 || c >= 0x7f)
        return false;
    return strchr("(){\"\\]", c) == NULL;
}

bool imap_is_atom(const char *s, size_t len)
{
    /* "NIL" as an atom would be read back as NIL. */
    if (len == 0 || (len == 3 && mg_ascii_has_prefix(s, 3, "NIL")))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!imap_is_atom_char(c) || c == '%' || c == '*')
            return false;
    }
    return true;
}

struct parser {
    struct mg_arena *arena;
    const char *p;
    const char *end;
    const char *error;
    unsigned files;
    size_t nargs;
};

static bool at_end(const struct parser *ps)
{
    return ps->p >= ps->end;
}

static int parse_quoted(struct parser *ps, struct imap_arg *arg)
{
    const char *start = ++ps->p;
    size_t escapes = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\') {
            if (ps->p + 1 >= ps->end || (ps->p[1] != '"' && ps->p[1] != '\\')) {
                ps->error = "Invalid escape in quoted string";
                return -1;
            }
            ps->p++;
            escapes++;
        } else if (*ps->p == '\r' || *ps->p == '\n' || *ps->p == '\0') {
            ps->error = "Invalid character in quoted string";
            return -1;
        }
        ps->p++;
    }
    if (ps->p >= ps->end) {
        ps->error = "Missing '\"'";
        return -1;
    }
    size_t raw = (size_t)(ps->p - start);
    char *s = mg_arena_alloc(ps->arena, raw - escapes + 1);
    size_t o = 0;
    for (const char *q = start; q < ps->p; q++) {
        if (*q == '\\')
            q++;
        s[o++] = *q;
    }
    s[o] = '\0';
    ps->p++; /* closing quote */
    arg->type = IMAP_ARG_QUOTED;
    arg->str = s;
    arg->len = o;
    return 0;
}

static int parse_literal(struct parser *ps, struct imap_arg *arg)
{
    const char *q = ps->p + 1;
    if ((size_t)(ps->end - q) >= 7 && memcmp(q, "FILE}\r\n", 7) == 0) {
        arg->type = IMAP_ARG_FILE;
        arg->file_index = ps->files++;
        arg->str = "";
        ps->p = q + 7;
        return 0;
    }
    size_t n = 0;
    size_t digits = 0;
    while (q < ps->end && *q >= '0' && *q <= '9') {
        if (n > (SIZE_MAX - 9) / 10) {
            ps->error = "Literal size too large";
            return -1;
        }
        n = n * 10 + (size_t)(*q - '0');
        q++;
        digits++;
    }
    if (digits == 0) {
        ps->error = "Invalid literal size";
        return -1;
    }
    if (q < ps->end && *q == '+')
        q++;
    if ((size_t)(ps->end - q) < 3 || q[0] != '}' || q[1] != '\r' || q[2] != '\n') {
        ps->error = "Invalid literal";
        return -1;
    }
    q += 3;
    if ((size_t)(ps->end - q) < n) {
        ps->error = "Literal is shorter than announced";
        return -1;
    }
    /* literal = "{" number "}" CRLF *CHAR8, and CHAR8 excludes NUL: users
     * of the text treat it as a C string too. */
    if (memchr(q, '\0', n) != NULL) {
        ps->error = "NUL in literal";
        return -1;
    }
    arg->type = IMAP_ARG_LITERAL;
    arg->str = mg_arena_strndup(ps->arena, q, n);
    arg->len = n;
    ps->p = q + n;
    return 0;
}

/* An atom, possibly with a bracketed section and a <partial> suffix. */
static int parse_atom(struct parser *ps, struct imap_arg *arg)
{
    const char *start = ps->p;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '[') {
            /* Section text up to the matching ']' (parenthesised header
             * lists with spaces and quoted names inside). */
            int depth = 0;
            bool in_quote = false;
            ps->p++;
            while (ps->p < ps->end) {
                unsigned char d = (unsigned char)*ps->p;
                /* Section texts are ASCII (part numbers, header names). */
                if (d < 0x20 || d >= 0x7f)
                    break;
                if (in_quote) {
                    if (d == '\\') {
                        /* The escaped byte must pass the same test. */
                        if (ps->p + 1 >= ps->end || (unsigned char)ps->p[1] < 0x20 ||
                            (unsigned char)ps->p[1] >= 0x7f)
                            break;
                        ps->p++;
                    } else if (d == '"') {
                        in_quote = false;
                    }
                } else if (d == '"') {
                    in_quote = true;
                } else if (d == '[') {
                    depth++;
                } else if (d == ']') {
                    if (depth-- == 0)
                        break;
                }
                ps->p++;
            }
            if (ps->p >= ps->end || *ps->p != ']') {
                ps->error = "Missing ']'";
                return -1;
            }
            ps->p++;
            continue;
        }
        if (c == '\\' && ps->p == start) {
            /* A flag: "\Seen", "\*"; a lone "\" is nothing. */
            ps->p++;
            if (ps->p < ps->end && *ps->p == '*') {
                ps->p++;
                break;
            }
            if (ps->p >= ps->end || !imap_is_atom_char((unsigned char)*ps->p) ||
                *ps->p == '*' || *ps->p == '%') {
                ps->error = "Invalid flag";
                return -1;
            }
            continue;
        }
        /* ASTRING-CHAR includes ']' (resp-specials): "foo]bar" is a
         * mailbox name, "a]" a tag. */
        if (!imap_is_atom_char(c) && c != ']')
            break;
        ps->p++;
    }
    size_t len = (size_t)(ps->p - start);
    if (len == 0) {
        ps->error = "Unexpected character";
        return -1;
    }
    /* NIL keeps its text: where an astring is expected it is the atom
     * "nil" in whatever case the client wrote. */
    arg->type = len == 3 && mg_ascii_has_prefix(start, 3, "NIL") ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
    arg->str = mg_arena_strndup(ps->arena, start, len);
    arg->len = len;
    return 0;
}

static int parse_list(struct parser *ps, char close, unsigned depth, struct imap_arg **args_r,
                      size_t *count_r);

static int parse_one(struct parser *ps, unsigned depth, struct imap_arg *arg)
{
    memset(arg, 0, sizeof(*arg));
    if (++ps->nargs > IMAP_PARSER_MAX_ARGS) {
        ps->error = "Too many arguments";
        return -1;
    }
    char c = *ps->p;
    if (c == '"')
        return parse_quoted(ps, arg);
    if (c == '{')
        return parse_literal(ps, arg);
    if (c == '~' && ps->p + 1 < ps->end && ps->p[1] == '{') {
        ps->error = "Binary literals are not supported";
        return -1;
    }
    if (c == '(') {
        if (depth >= IMAP_PARSER_MAX_DEPTH) {
            ps->error = "Lists nested too deep";
            return -1;
        }
        ps->p++;
        arg->type = IMAP_ARG_LIST;
        return parse_list(ps, ')', depth + 1, &arg->list, &arg->list_count);
    }
    if (c == ')') {
        ps->error = "Unexpected ')'";
        return -1;
    }
    return parse_atom(ps, arg);
}

static int parse_list(struct parser *ps, char close, unsigned depth, struct imap_arg **args_r,
                      size_t *count_r)
{
    size_t cap = 4, n = 0;
    struct imap_arg *args = mg_arena_alloc(ps->arena, cap * sizeof(*args));
    for (;;) {
        if (at_end(ps)) {
            if (close != '\0') {
                ps->error = "Missing ')'";
                return -1;
            }
            break;
        }
        if (close != '\0' && *ps->p == close) {
            ps->p++;
            break;
        }
        if (n > 0) {
            /* Elements are separated by exactly one space (we accept
             * more, as Dovecot does); none is needed after '('. */
            if (*ps->p != ' ') {
                ps->error = "Missing space between arguments";
                return -1;
            }
            while (ps->p < ps->end && *ps->p == ' ')
                ps->p++;
            if (at_end(ps) || (close != '\0' && *ps->p == close))
                continue;
        }
        if (n == cap) {
            struct imap_arg *bigger = mg_arena_alloc(ps->arena, cap * 2 * sizeof(*args));
            memcpy(bigger, args, cap * sizeof(*args));
            args = bigger;
            cap *= 2;
        }
        if (parse_one(ps, depth, &args[n]) < 0)
            return -1;
        n++;
    }
    *args_r = args;
    *count_r = n;
    return 0;
}

int imap_parse_args(struct mg_arena *arena, const char *text, size_t len,
                    struct imap_arg **args_r, size_t *count_r, const char **error_r)
{
    struct parser ps = { .arena = arena, .p = text, .end = text + len };
    if (parse_list(&ps, '\0', 0, args_r, count_r) < 0) {
        *error_r = ps.error;
        return -1;
    }
    return 0;
}

int imap_parse_command_start(const char *text, size_t len, size_t *tag_len_r,
                             const char **name_r, size_t *name_len_r, const char **rest_r,
                             size_t *rest_len_r)
{
    /* tag = 1*<ASTRING-CHAR except "+">: atom characters and ']', without
     * the wildcards. */
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (!(imap_is_atom_char(c) || c == ']') || c == '+' || c == '%' || c == '*')
            break;
        i++;
    }
    *tag_len_r = i;
    if (i == 0 || i >= len || text[i] != ' ') {
        if (i < len && text[i] != ' ')
            *tag_len_r = 0;
        return -1;
    }
    size_t n = i + 1;
    size_t start = n;
    while (n < len && imap_is_atom_char((unsigned char)text[n]))
        n++;
    if (n == start || (n < len && text[n] != ' '))
        return -1;
    *name_r = text + start;
    *name_len_r = n - start;
    if (n < len) {
        *rest_r = text + n + 1;
        *rest_len_r = len - n - 1;
    } else {
        *rest_r = text + n;
        *rest_len_r = 0;
    }
    return 0;
}

bool imap_arg_get_astring(const struct imap_arg *arg, const char **s_r, size_t *len_r)
{
    if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_QUOTED &&
        arg->type != IMAP_ARG_LITERAL && arg->type != IMAP_ARG_NIL)
        return false;
    *s_r = arg->str;
    *len_r = arg->len;
    return true;
}

bool imap_arg_get_string(const struct imap_arg *arg, const char **s_r, size_t *len_r)
{
    if (arg->type != IMAP_ARG_QUOTED && arg->type != IMAP_ARG_LITERAL)
        return false;
    *s_r = arg->str;
    *len_r = arg->len;
    return true;
}

bool imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
    return arg->type == IMAP_ARG_ATOM && mg_ascii_eq(arg->str, arg->len, word);
}
