/* FETCH BODY[section] (RFC 3501 section 6.4.5): parsing of the section text
 * and extraction of the bytes from a parsed message.
 *
 * Part numbers work as in RFC 3501 and Dovecot: the parts of a multipart
 * are numbered from 1; a non-multipart message (the message itself or an
 * encapsulated one) has only part 1, its body; a number after a
 * message/rfc822 (or message/global) part descends into the encapsulated
 * message. A leaf inside a multipart has no part numbers below it (Dovecot
 * lets "1.1" mean "1" there; RFC 3501 does not). HEADER, HEADER.FIELDS[.NOT] and TEXT after a part
 * number need a message part and refer to the encapsulated message; MIME
 * is the MIME header of the part itself (for part 1 of a non-multipart
 * message: the message header).
 *
 * A part that does not exist gives IMAP_SECTION_ENOENT. Dovecot answers
 * such a FETCH with an empty string (BODY[5] ""), and so should the server;
 * the section text itself was valid, so it is no BAD. */
#ifndef MG_MDA_IMAP_SECTION_H
#define MG_MDA_IMAP_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/mime/mime_parser.h"

/* Limits of the section text; beyond them it is rejected. */
#define IMAP_SECTION_MAX_PARTS 128
#define IMAP_SECTION_MAX_FIELDS 512
#define IMAP_SECTION_MAX_FIELD_LEN 998

/* No such part (not an error in the request). */
#define IMAP_SECTION_ENOENT (-2)

enum imap_section_text {
    IMAP_SECTION_TEXT_NONE = 0,       /* BODY[] or BODY[1.2] */
    IMAP_SECTION_TEXT_HEADER,
    IMAP_SECTION_TEXT_HEADER_FIELDS,
    IMAP_SECTION_TEXT_HEADER_FIELDS_NOT,
    IMAP_SECTION_TEXT_TEXT,
    IMAP_SECTION_TEXT_MIME,
};

struct imap_section {
    unsigned int part_count;
    uint32_t parts[IMAP_SECTION_MAX_PARTS];
    enum imap_section_text text;
    /* HEADER.FIELDS[.NOT]: field names as given (allocated from the
     * arena passed to imap_section_parse()). */
    const char *const *fields;
    unsigned int field_count;
};

/* Parses the text between "[" and "]", e.g. "1.2.HEADER.FIELDS (From To)".
 * Keywords are case-insensitive; field names are atoms, quoted strings or
 * literals ({n} or {n+} followed by CRLF) and must be RFC 5322 field names.
 * Returns 0, or -1 with *error_r for text that is not a valid section. */
int imap_section_parse(struct mg_arena *arena, const char *spec, size_t len,
                       struct imap_section *sec_r, const char **error_r);

struct imap_section_result {
    /* The part the section's bytes come from (the encapsulated message for
     * HEADER/TEXT after a part number). */
    const struct mime_part *part;
    /* Byte range in the message; for HEADER.FIELDS[.NOT] the header that
     * imap_section_write() filters. */
    size_t start;
    size_t end;
};

/* Resolves the section in the parsed message root. Returns 0 or
 * IMAP_SECTION_ENOENT. */
int imap_section_find(const struct mime_part *root,
                      const struct imap_section *sec,
                      struct imap_section_result *result_r);

/* Appends the section's bytes to out: the range, or for HEADER.FIELDS[.NOT]
 * the matching header fields in their original order and folding,
 * followed by the blank line. Returns 0 or IMAP_SECTION_ENOENT (out
 * unchanged). */
int imap_section_write(const struct mime_part *root, const char *data,
                       const struct imap_section *sec, struct mg_buf *out);

/* The HEADER.FIELDS filter on its own, over the header data[start, end). */
void imap_section_filter_header(const char *data, size_t start, size_t end,
                                const char *const *fields,
                                unsigned int field_count, bool exclude,
                                struct mg_buf *out);

#endif
