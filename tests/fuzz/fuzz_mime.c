/* libFuzzer harness for mda/mime: parses the input as a message, writes
 * BODY, BODYSTRUCTURE and ENVELOPE, fetches every section that exists,
 * decodes every text part and header, and checks the invariants:
 *  - every part's ranges are inside the data and inside its parent;
 *  - the IMAP output is well formed (balanced parentheses outside strings,
 *    literal counts that fit, quoted strings without CR/LF/8-bit);
 *  - the message with every bare LF turned into CRLF gives the same
 *    BODYSTRUCTURE and ENVELOPE (sizes count LF as CRLF);
 *  - decoded text is valid UTF-8.
 * The first line of the input is also tried as a FETCH section text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/utf8.h"
#include "mda/mime/imap_bodystructure.h"
#include "mda/mime/imap_envelope.h"
#include "mda/mime/imap_section.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_date.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_header.h"
#include "mda/mime/mime_parser.h"
#include "mda/mime/mime_search.h"
#include "mda/mime/mime_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The equivalence check converts the input; keep it for small inputs. */
#define CRLF_CHECK_MAX (64 * 1024)

static void check_imap(const char *s, size_t len)
{
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            for (i++;; i++) {
                if (i >= len)
                    mg_panic("unterminated quoted string");
                unsigned char q = (unsigned char)s[i];
                if (q == '"')
                    break;
                if (q == '\r' || q == '\n' || q == '\0' || q >= 0x80)
                    mg_panic("bad byte in quoted string");
                if (q == '\\') {
                    i++;
                    if (i >= len || (s[i] != '"' && s[i] != '\\'))
                        mg_panic("bad escape");
                }
            }
            i++;
        } else if (c == '{') {
            size_t n = 0;
            for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                n = n * 10 + (size_t)(s[i] - '0');
            if (len - i < 3 || memcmp(s + i, "}\r\n", 3) != 0)
                mg_panic("bad literal");
            i += 3;
            if (len - i < n || memchr(s + i, '\0', n) != NULL)
                mg_panic("bad literal length or NUL");
            i += n;
        } else {
            if (c == '(')
                depth++;
            else if (c == ')' && --depth < 0)
                mg_panic("unbalanced parentheses");
            else if (c == '\r' || c == '\n' || c == '\0')
                mg_panic("line break outside a literal");
            i++;
        }
    }
    if (depth != 0)
        mg_panic("unbalanced parentheses");
}

static void check_tree(const struct mime_part *root, size_t len)
{
    for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p)) {
        if (!(p->header_start <= p->header_end && p->header_end <= p->body_end &&
              p->body_end <= len))
            mg_panic("bad part ranges");
        if (p->parent != NULL &&
            (p->header_start < p->parent->header_end || p->body_end > p->parent->body_end))
            mg_panic("part outside its parent");
        if (p->next != NULL && p->next->header_start < p->body_end)
            mg_panic("siblings overlap");
        if (p->depth >= MIME_PARSER_MAX_DEPTH)
            mg_panic("too deep");
    }
}

static void write_all(struct mg_buf *out, const char *data, const struct mime_part *root)
{
    mg_buf_reset(out);
    imap_bodystructure_write(out, data, root, IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
    mg_buf_append_byte(out, ' ');
    imap_bodystructure_write(out, data, root, 0);
    mg_buf_append(out, " (", 2);
    imap_envelope_write(out, data, root);
    mg_buf_append_byte(out, ')');
}

static void fetch(struct mg_arena *arena, const struct mime_part *root, const char *data,
                  size_t len, const char *spec, struct mg_buf *out)
{
    struct imap_section sec;
    struct imap_section_result res;
    const char *error;

    if (imap_section_parse(arena, spec, strlen(spec), &sec, &error) < 0)
        mg_panic("generated section rejected: %s", spec);
    if (imap_section_find(root, &sec, &res) < 0)
        return;
    if (res.start > res.end || res.end > len)
        mg_panic("section range outside the data");
    mg_buf_reset(out);
    if (imap_section_write(root, data, &sec, out) < 0)
        mg_panic("section write failed after find");
}

/* Fetches the sections of part (reached as path) and below. */
static void walk(struct mg_arena *arena, const struct mime_part *root, const char *data,
                 size_t len, const struct mime_part *part, char *path, size_t plen,
                 struct mg_buf *out)
{
    static const char *const suffixes[] = {
        "", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (From Subject)",
        ".HEADER.FIELDS.NOT (Content-Type)",
    };
    char spec[1200];

    if (plen > 900)
        return;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(spec, sizeof(spec), "%s%s", path, suffixes[i]);
        fetch(arena, root, data, len, spec, out);
    }
    const struct mime_part *container = part;
    if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0 && part->children != NULL) {
        container = part->children;
        if ((container->flags & MIME_PART_FLAG_MULTIPART) == 0) {
            int n = snprintf(path + plen, 1000 - plen, ".1");
            walk(arena, root, data, len, container, path, plen + (size_t)n, out);
            path[plen] = '\0';
            return;
        }
    }
    if ((container->flags & MIME_PART_FLAG_MULTIPART) == 0)
        return;
    unsigned int i = 0;
    for (const struct mime_part *c = container->children; c != NULL; c = c->next) {
        int n = snprintf(path + plen, 1000 - plen, ".%u", ++i);
        walk(arena, root, data, len, c, path, plen + (size_t)n, out);
        path[plen] = '\0';
    }
}

static void walk_sections(struct mg_arena *arena, const struct mime_part *root,
                          const char *data, size_t len, struct mg_buf *out)
{
    char path[1000];

    fetch(arena, root, data, len, "", out);
    fetch(arena, root, data, len, "HEADER", out);
    fetch(arena, root, data, len, "TEXT", out);
    if ((root->flags & MIME_PART_FLAG_MULTIPART) == 0) {
        snprintf(path, sizeof(path), "1");
        walk(arena, root, data, len, root, path, 1, out);
        return;
    }
    unsigned int i = 0;
    for (const struct mime_part *c = root->children; c != NULL; c = c->next) {
        int n = snprintf(path, sizeof(path), "%u", ++i);
        walk(arena, root, data, len, c, path, (size_t)n, out);
    }
}

static bool text_cb(void *context, const struct mime_part *part, const char *text,
                    size_t len)
{
    struct mime_search *search = context;
    (void)part;
    if (!mg_utf8_is_valid(text, len))
        mg_panic("decoded text is not UTF-8");
    (void)mime_search_match(search, text, len);
    return true;
}

static void decode_headers(const struct mime_part *root, const char *data,
                           struct mg_arena *arena, struct mg_buf *out)
{
    struct mime_header_iter iter;
    struct mime_header_field f;

    mime_header_iter_init(&iter, data, root->header_start, root->header_end);
    while (mime_header_iter_next(&iter, &f)) {
        mg_buf_reset(out);
        mime_encword_decode(f.value, f.value_len, out);
        if (!mg_utf8_is_valid(out->data, out->len))
            mg_panic("decoded header is not UTF-8");
        (void)mime_address_parse(arena, f.value, f.value_len, MIME_ADDRESS_FLAG_FILL_MISSING);
        time_t t;
        (void)mime_date_parse(f.value, f.value_len, &t, NULL);
    }
}

static char *to_crlf(const char *s, size_t len, size_t *len_r)
{
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_reserve(&b, len + len / 4);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            mg_buf_append_byte(&b, '\r');
        mg_buf_append_byte(&b, s[i]);
    }
    return mg_buf_steal(&b, len_r);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
    const char *data = (const char *)input;
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_buf out = MG_BUF_INIT, tmp = MG_BUF_INIT;

    struct mime_part *root = mime_parser_parse(arena, data, size);
    check_tree(root, size);
    write_all(&out, data, root);
    check_imap(out.data, out.len);
    mg_buf_reset(&tmp);
    imap_bodystructure_write(&tmp, data, root,
                             IMAP_BODYSTRUCTURE_FLAG_EXTENDED |
                                 IMAP_BODYSTRUCTURE_FLAG_GLOBAL_AS_MESSAGE);
    check_imap(tmp.data, tmp.len);

    walk_sections(arena, root, data, size, &tmp);

    struct mime_search search;
    mime_search_init(&search, "fo\xc3\xb6", 4);
    (void)mime_text_foreach(root, data, text_cb, &search);
    mime_search_deinit(&search);
    decode_headers(root, data, arena, &tmp);

    if (size <= CRLF_CHECK_MAX) {
        size_t clen;
        char *crlf = to_crlf(data, size, &clen);
        struct mg_arena *arena2 = mg_arena_new(0);
        struct mime_part *root2 = mime_parser_parse(arena2, crlf, clen);
        check_tree(root2, clen);
        write_all(&tmp, crlf, root2);
        if (tmp.len != out.len || memcmp(tmp.data, out.data, out.len) != 0)
            mg_panic("LF and CRLF give different structures:\n%s\n%s", mg_buf_cstr(&out),
                     mg_buf_cstr(&tmp));
        mg_arena_free(&arena2);
        free(crlf);
    }

    /* the first line as a section text */
    const char *nl = memchr(data, '\n', size < 512 ? size : 512);
    size_t slen = nl != NULL ? (size_t)(nl - data) : (size < 512 ? size : 512);
    struct imap_section sec;
    const char *error;
    if (imap_section_parse(arena, data, slen, &sec, &error) == 0) {
        mg_buf_reset(&tmp);
        (void)imap_section_write(root, data, &sec, &tmp);
    }

    mg_buf_free(&out);
    mg_buf_free(&tmp);
    mg_arena_free(&arena);
    return 0;
}
