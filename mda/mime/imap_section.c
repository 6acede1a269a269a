#include "mda/mime/imap_section.h"

#include <string.h>

#include "common/ascii.h"
#include "mda/mime/mime_header.h"

struct section_reader {
    const char *p;
    const char *end;
    const char *error;
};

static bool reader_keyword(struct section_reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || !mg_ascii_has_prefix(r->p, n, word))
        return false;
    r->p += n;
    return true;
}

static int parse_number(struct section_reader *r, uint32_t *num_r)
{
    uint64_t num = 0;

    if (r->p >= r->end || *r->p < '1' || *r->p > '9')
        return -1;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        num = num * 10 + (uint64_t)(*r->p - '0');
        if (num > UINT32_MAX) {
            r->error = "Part number too large";
            return -1;
        }
        r->p++;
    }
    *num_r = (uint32_t)num;
    return 0;
}

/* RFC 5322 ftext: printable US-ASCII except ':'. */
static bool field_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > IMAP_SECTION_MAX_FIELD_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 33 || s[i] > 126 || s[i] == ':')
            return false;
    }
    return true;
}

static bool is_astring_char(char c)
{
    return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

/* One astring of the header list into buf. */
static int parse_astring(struct section_reader *r, struct mg_buf *buf)
{
    mg_buf_reset(buf);
    if (r->p >= r->end)
        return -1;
    if (*r->p == '"') {
        r->p++;
        while (r->p < r->end && *r->p != '"') {
            char c = *r->p++;
            if (c == '\\') {
                if (r->p >= r->end || (*r->p != '"' && *r->p != '\\'))
                    return -1;
                c = *r->p++;
            } else if (c == '\r' || c == '\n' || c == '\0') {
                return -1;
            }
            mg_buf_append_byte(buf, c);
        }
        if (r->p >= r->end)
            return -1;
        r->p++;
        return 0;
    }
    if (*r->p == '{') {
        size_t n = 0;
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            n = n * 10 + (size_t)(*r->p++ - '0');
            if (n > IMAP_SECTION_MAX_FIELD_LEN)
                return -1;
        }
        if (r->p < r->end && *r->p == '+')
            r->p++;
        if (r->end - r->p < 3 || memcmp(r->p, "}\r\n", 3) != 0)
            return -1;
        r->p += 3;
        if ((size_t)(r->end - r->p) < n)
            return -1;
        mg_buf_append(buf, r->p, n);
        r->p += n;
        return 0;
    }
    const char *start = r->p;
    while (r->p < r->end && is_astring_char(*r->p))
        r->p++;
    if (r->p == start)
        return -1;
    mg_buf_append(buf, start, (size_t)(r->p - start));
    return 0;
}

static int parse_header_list(struct mg_arena *arena, struct section_reader *r,
                             struct imap_section *sec)
{
    const char **fields = NULL;
    unsigned int count = 0, cap = 0;
    struct mg_buf buf = MG_BUF_INIT;
    int ret = -1;

    if (r->p >= r->end || *r->p != ' ') {
        r->error = "Missing header field list";
        return -1;
    }
    r->p++;
    if (r->p >= r->end || *r->p != '(') {
        r->error = "Missing header field list";
        return -1;
    }
    r->p++;
    for (;;) {
        if (parse_astring(r, &buf) < 0 || !field_name_ok(buf.data, buf.len)) {
            r->error = "Invalid header field name";
            goto out;
        }
        if (count == IMAP_SECTION_MAX_FIELDS) {
            r->error = "Too many header fields";
            goto out;
        }
        if (count == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            const char **n = mg_arena_alloc(arena, sizeof(*n) * cap);
            if (count > 0)
                memcpy(n, fields, sizeof(*n) * count);
            fields = n;
        }
        fields[count++] = mg_arena_strndup(arena, buf.data, buf.len);
        if (r->p < r->end && *r->p == ')') {
            r->p++;
            break;
        }
        if (r->p >= r->end || *r->p != ' ') {
            r->error = "Invalid header field list";
            goto out;
        }
        r->p++;
    }
    sec->fields = fields;
    sec->field_count = count;
    ret = 0;
out:
    mg_buf_free(&buf);
    return ret;
}

/* HEADER, HEADER.FIELDS (..), HEADER.FIELDS.NOT (..), TEXT, and MIME when
 * allow_mime. */
static int parse_text(struct mg_arena *arena, struct section_reader *r,
                      struct imap_section *sec, bool allow_mime)
{
    if (reader_keyword(r, "HEADER.FIELDS.NOT")) {
        sec->text = IMAP_SECTION_TEXT_HEADER_FIELDS_NOT;
        return parse_header_list(arena, r, sec);
    }
    if (reader_keyword(r, "HEADER.FIELDS")) {
        sec->text = IMAP_SECTION_TEXT_HEADER_FIELDS;
        return parse_header_list(arena, r, sec);
    }
    if (reader_keyword(r, "HEADER")) {
        sec->text = IMAP_SECTION_TEXT_HEADER;
        return 0;
    }
    if (reader_keyword(r, "TEXT")) {
        sec->text = IMAP_SECTION_TEXT_TEXT;
        return 0;
    }
    if (allow_mime && reader_keyword(r, "MIME")) {
        sec->text = IMAP_SECTION_TEXT_MIME;
        return 0;
    }
    r->error = "Invalid section";
    return -1;
}

int imap_section_parse(struct mg_arena *arena, const char *spec, size_t len,
                       struct imap_section *sec_r, const char **error_r)
{
    struct section_reader r = { spec, spec + len, NULL };

    memset(sec_r, 0, sizeof(*sec_r));
    if (len == 0)
        return 0;
    if (*r.p >= '0' && *r.p <= '9') {
        for (;;) {
            if (sec_r->part_count == IMAP_SECTION_MAX_PARTS) {
                *error_r = "Section part path too deep";
                return -1;
            }
            if (parse_number(&r, &sec_r->parts[sec_r->part_count]) < 0) {
                *error_r = r.error != NULL ? r.error : "Invalid part number";
                return -1;
            }
            sec_r->part_count++;
            if (r.p == r.end)
                return 0;
            if (*r.p != '.') {
                *error_r = "Invalid section";
                return -1;
            }
            r.p++;
            if (r.p < r.end && (*r.p < '0' || *r.p > '9'))
                break;
        }
    }
    if (parse_text(arena, &r, sec_r, sec_r->part_count > 0) < 0 || r.p != r.end) {
        *error_r = r.error != NULL ? r.error : "Invalid section";
        return -1;
    }
    return 0;
}

/* Finds the part a part number path points to. A non-multipart message
 * (the message itself or an encapsulated one) has only part 1, its body;
 * a number after a message part goes into the encapsulated message. A leaf
 * inside a multipart has no parts (Dovecot lets "1.1" mean "1" there). */
static const struct mime_part *find_part(const struct mime_part *root,
                                         const uint32_t *parts,
                                         unsigned int count)
{
    const struct mime_part *part = root;
    bool message_level = true;

    for (unsigned int i = 0; i < count; i++) {
        uint32_t num = parts[i];
        if ((part->flags & MIME_PART_FLAG_MULTIPART) != 0) {
            part = part->children;
            for (; num > 1 && part != NULL; num--)
                part = part->next;
            if (part == NULL)
                return NULL;
        } else if (!message_level || num != 1) {
            return NULL;
        }
        message_level = false;
        if (i + 1 < count && (part->flags & MIME_PART_FLAG_MESSAGE) != 0) {
            part = part->children;
            message_level = true;
        }
    }
    return part;
}

int imap_section_find(const struct mime_part *root,
                      const struct imap_section *sec,
                      struct imap_section_result *result_r)
{
    const struct mime_part *part = root;

    if (sec->part_count > 0) {
        part = find_part(root, sec->parts, sec->part_count);
        if (part == NULL)
            return IMAP_SECTION_ENOENT;
    }

    switch (sec->text) {
    case IMAP_SECTION_TEXT_NONE:
        result_r->part = part;
        if (sec->part_count == 0) {
            result_r->start = part->header_start;
            result_r->end = part->body_end;
        } else {
            result_r->start = part->header_end;
            result_r->end = part->body_end;
        }
        return 0;
    case IMAP_SECTION_TEXT_MIME:
        result_r->part = part;
        result_r->start = part->header_start;
        result_r->end = part->header_end;
        return 0;
    case IMAP_SECTION_TEXT_HEADER:
    case IMAP_SECTION_TEXT_HEADER_FIELDS:
    case IMAP_SECTION_TEXT_HEADER_FIELDS_NOT:
    case IMAP_SECTION_TEXT_TEXT:
        if (sec->part_count > 0) {
            if ((part->flags & MIME_PART_FLAG_MESSAGE) == 0 || part->children == NULL)
                return IMAP_SECTION_ENOENT;
            part = part->children;
        }
        result_r->part = part;
        if (sec->text == IMAP_SECTION_TEXT_TEXT) {
            result_r->start = part->header_end;
            result_r->end = part->body_end;
        } else {
            result_r->start = part->header_start;
            result_r->end = part->header_end;
        }
        return 0;
    }
    return IMAP_SECTION_ENOENT;
}

static bool field_listed(const struct mime_header_field *f,
                         const char *const *fields, unsigned int count)
{
    for (unsigned int i = 0; i < count; i++) {
        if (mime_header_field_is(f, fields[i]))
            return true;
    }
    return false;
}

void imap_section_filter_header(const char *data, size_t start, size_t end,
                                const char *const *fields,
                                unsigned int field_count, bool exclude,
                                struct mg_buf *out)
{
    struct mime_header_iter iter;
    struct mime_header_field f;
    const char *eol = "\r\n";

    mime_header_iter_init(&iter, data, start, end);
    while (mime_header_iter_next(&iter, &f)) {
        /* a message with bare LFs keeps them in the added line breaks */
        if (data[f.end - 1] == '\n')
            eol = f.end - f.start >= 2 && data[f.end - 2] == '\r' ? "\r\n" : "\n";
        if (field_listed(&f, fields, field_count) == exclude)
            continue;
        mg_buf_append(out, data + f.start, f.end - f.start);
        if (data[f.end - 1] != '\n')
            mg_buf_append_str(out, eol); /* the last line had no break */
    }
    /* the blank line that ends the header: the message's own if it has one */
    if (iter.pos < end)
        mg_buf_append(out, data + iter.pos, end - iter.pos);
    else
        mg_buf_append_str(out, eol);
}

int imap_section_write(const struct mime_part *root, const char *data,
                       const struct imap_section *sec, struct mg_buf *out)
{
    struct imap_section_result res;
    int ret = imap_section_find(root, sec, &res);

    if (ret < 0)
        return ret;
    if (sec->text == IMAP_SECTION_TEXT_HEADER_FIELDS ||
        sec->text == IMAP_SECTION_TEXT_HEADER_FIELDS_NOT) {
        imap_section_filter_header(data, res.start, res.end, sec->fields,
                                   sec->field_count,
                                   sec->text == IMAP_SECTION_TEXT_HEADER_FIELDS_NOT,
                                   out);
    } else {
        mg_buf_append(out, data + res.start, res.end - res.start);
    }
    return 0;
}
