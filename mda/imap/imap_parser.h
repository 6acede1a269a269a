/* The IMAP command argument parser.
 *
 * The session collects a whole command first (lines and the literals
 * between them, bounded by the limits in imap_limits.h), so this parser
 * works on complete text: it never sees a socket and never waits. Literals
 * appear in the text as on the wire ("{5}\r\nhello", "{5+}\r\nhello"). A
 * literal the session streamed to a file instead (APPEND's message) is
 * marked "{FILE}\r\n" and becomes an IMAP_ARG_FILE.
 *
 * Leniency where clients differ from the grammar: atoms may hold '*' and
 * '%' (sequence sets, LIST patterns) and ']' (astrings), and an atom may
 * contain a bracketed part with spaces
 * ("BODY[HEADER.FIELDS (From To)]<0.100>"), so FETCH items arrive as
 * single atoms.
 *
 * Strictness: quoted strings take any byte but CR, LF and NUL (8-bit for
 * UTF8=ACCEPT) and only the escapes \" and \\; literals may not hold NUL
 * (RFC 3501 CHAR8); the bracketed part of an atom is printable ASCII; a
 * flag is "\" followed by an atom or "*". */
#ifndef MG_MDA_IMAP_PARSER_H
#define MG_MDA_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

struct mg_arena;

enum imap_arg_type {
    IMAP_ARG_ATOM,
    IMAP_ARG_QUOTED,
    IMAP_ARG_LITERAL,
    IMAP_ARG_LIST,
    IMAP_ARG_NIL,             /* str: the text as sent ("NIL", "nil") */
    IMAP_ARG_FILE, /* a literal streamed to a file by the session */
};

struct imap_arg {
    enum imap_arg_type type;
    const char *str;          /* atoms and strings: NUL-terminated copy */
    size_t len;
    struct imap_arg *list;    /* IMAP_ARG_LIST: the elements */
    size_t list_count;
    unsigned file_index;      /* IMAP_ARG_FILE: the n-th file literal */
};

#define IMAP_PARSER_MAX_DEPTH 64
#define IMAP_PARSER_MAX_ARGS 100000

/* Parses the arguments after "tag SP command" (text without the final
 * CRLF). Returns 0, or -1 with a reason for a BAD reply in *error_r. */
int imap_parse_args(struct mg_arena *arena, const char *text, size_t len,
                    struct imap_arg **args_r, size_t *count_r, const char **error_r);

/* Splits "tag SP name [SP rest]": returns 0 with the pieces, -1 when the
 * tag or the command name is malformed (then *tag_len_r is the length of
 * a usable tag or 0). Names are atoms; "UID FETCH" style prefixes are the
 * caller's business. */
int imap_parse_command_start(const char *text, size_t len, size_t *tag_len_r,
                             const char **name_r, size_t *name_len_r, const char **rest_r,
                             size_t *rest_len_r);

/* Whether arg is an atom or a string (astring); *s_r the text. NIL counts:
 * where an astring is expected, "NIL" is an atom like any other. */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **s_r, size_t *len_r);
/* Strings only (quoted, literal). NIL is not a string: callers that take
 * an nstring check for IMAP_ARG_NIL first. */
bool imap_arg_get_string(const struct imap_arg *arg, const char **s_r, size_t *len_r);
bool imap_arg_is_atom(const struct imap_arg *arg, const char *word); /* case-insensitive */

bool imap_is_atom_char(unsigned char c);
/* Whether the text can be sent as an atom (not "NIL", which would be read
 * back as NIL, nor list wildcards). */
bool imap_is_atom(const char *s, size_t len);

#endif
