/* MIME structure of a message held in memory (RFC 2045, RFC 2046), as IMAP
 * FETCH BODY/BODYSTRUCTURE/BODY[section] and SEARCH need it.
 *
 * mime_parser_parse() never fails: any bytes give a tree. Every offset is an
 * exact byte offset into the data it was given; lines may end in CR LF or
 * in a bare LF. The rules are Dovecot's (lib-mail/message-parser.c):
 *  - a part is MIME when it has MIME-Version or Content-Type, or is a child
 *    of a multipart; otherwise its Content-* fields are ignored; of each
 *    Content-* field only the first counts;
 *  - no (or an invalid) Content-Type means text/plain; charset=us-ascii,
 *    and message/rfc822 for a child of multipart/digest;
 *  - a boundary line is "--" + boundary at the start of a line; what
 *    follows on the line is ignored (transport padding, or "--" for the
 *    close delimiter). When the boundaries of several enclosing multiparts
 *    match, the longest one wins, so an inner boundary that is a prefix of
 *    an outer one works;
 *  - the line break before a boundary line belongs to the boundary, not to
 *    the part before it (the one after a close delimiter stays with the
 *    closed multipart); preamble and epilogue belong to the multipart's
 *    body only;
 *  - a boundary of an enclosing multipart ends every part inside it (a
 *    missing close delimiter); a missing final boundary runs to the end;
 *  - a boundary line inside a header ends the header (and the part); a
 *    boundary line right after the blank line takes that blank line as its
 *    line break, so the header ends before it and the body is empty;
 *  - multipart without a boundary parameter, or whose body has no boundary
 *    line, has no children (BODYSTRUCTURE then shows one empty text/plain
 *    part, as Dovecot does);
 *  - message/rfc822 and message/global have one child: the encapsulated
 *    message with its own header.
 *
 * Limits (named constants below): parts nested deeper than
 * MIME_PARSER_MAX_DEPTH levels are leaves flagged MIME_PART_FLAG_OVERFLOW
 * (and shown as text/plain, like Dovecot); after MIME_PARSER_MAX_PARTS parts
 * no more are created (the container gets MIME_PART_FLAG_TRUNCATED); header
 * values longer than MIME_PARSER_MAX_VALUE are cut for parsing. Work is
 * linear in the message size; memory is bounded per part.
 *
 * Sizes for IMAP (body_size, body_lines) count every bare LF as CR LF: for
 * the stored CRLF messages body_size is simply body_end - header_end. */
#ifndef MG_MDA_MIME_PARSER_H
#define MG_MDA_MIME_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "mda/mime/mime_content.h"
#include "mda/mime/mime_transfer.h"

#define MIME_PARSER_MAX_DEPTH 100
#define MIME_PARSER_MAX_PARTS 10000
/* Boundaries are at most 70 characters (RFC 2046); longer ones are cut to
 * 70 + 10, as Dovecot does (which makes long boundaries that differ only
 * after that point the same boundary). */
#define MIME_PARSER_MAX_BOUNDARY 80
#define MIME_PARSER_MAX_VALUE (64 * 1024)

enum mime_part_flags {
    MIME_PART_FLAG_MULTIPART = 1 << 0, /* children are body parts */
    MIME_PART_FLAG_MESSAGE = 1 << 1,   /* one child: encapsulated message */
    MIME_PART_FLAG_TEXT = 1 << 2,      /* type "text" */
    MIME_PART_FLAG_IS_MIME = 1 << 3,   /* Content-* fields apply */
    /* A multipart or message part left unparsed because of
     * MIME_PARSER_MAX_DEPTH or MIME_PARSER_MAX_PARTS: a leaf shown as
     * text/plain. MULTIPART/MESSAGE are not set on it. */
    MIME_PART_FLAG_OVERFLOW = 1 << 4,
    /* A multipart whose later body parts were not split off because of
     * MIME_PARSER_MAX_PARTS. */
    MIME_PART_FLAG_TRUNCATED = 1 << 5,
    /* The header ended at a boundary line instead of a blank line (or the
     * blank line went to a boundary line right after it). */
    MIME_PART_FLAG_HEADER_CUT = 1 << 6,
};

struct mime_part {
    struct mime_part *parent;
    struct mime_part *next;     /* sibling */
    struct mime_part *children; /* first child */
    unsigned int flags;         /* enum mime_part_flags */
    unsigned int depth;         /* 0 for the message itself */

    /* Lower-cased; "text"/"plain" when absent or invalid. */
    const char *type;
    const char *subtype;
    const struct mime_param *params;
    unsigned int param_count;

    /* Unfolded header values, NULL when absent. */
    const char *content_id;
    const char *content_description;
    const char *content_transfer_encoding; /* token as written */
    enum mime_cte cte;
    const char *content_md5;
    const char *content_location;
    const char *disposition; /* as written, e.g. "attachment" */
    const struct mime_param *disposition_params;
    unsigned int disposition_param_count;
    const char *const *languages;
    unsigned int language_count;

    /* Byte offsets: the header is [header_start, header_end) including the
     * blank line; the body is [header_end, body_end). */
    size_t header_start;
    size_t header_end;
    size_t body_end;
    /* Body size with bare LFs counted as CR LF, and its number of lines. */
    uint64_t body_size;
    uint64_t body_lines;
};

/* Parses data[0..len) (which must outlive the tree) into parts allocated
 * from arena. Never returns NULL. */
struct mime_part *mime_parser_parse(struct mg_arena *arena, const char *data,
                                    size_t len);

/* The next part in document order (depth first), or NULL. */
struct mime_part *mime_part_next(const struct mime_part *part);
/* The same, without leaving the subtree of top. */
struct mime_part *mime_part_next_in(const struct mime_part *part,
                                    const struct mime_part *top);

/* Number of parts in the tree under and including part. */
unsigned int mime_part_count(const struct mime_part *part);

/* Decoded value of a Content-Type parameter ("charset", "boundary"...). */
const char *mime_part_param(const struct mime_part *part, const char *name);

/* Whether the part is treated as a text/... leaf (also an overflowed
 * container, which is shown as text/plain). */
bool mime_part_is_text(const struct mime_part *part);

#endif
