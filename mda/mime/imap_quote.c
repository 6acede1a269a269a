#include "mda/mime/imap_quote.h"

#include <stdbool.h>
#include <string.h>

/* After this many '"' and '\' a literal is shorter than escaping. */
#define QUOTED_MAX_ESCAPES 4

static void append_literal(struct mg_buf *out, const char *s, size_t len)
{
    mg_buf_printf(out, "{%zu}\r\n", len);
    size_t start = out->len;
    mg_buf_append(out, s, len);
    for (size_t i = start; i < out->len; i++) {
        if (out->data[i] == '\0')
            out->data[i] = (char)0x80;
    }
}

/* Bytes that need a look when quoting: CR, LF, NUL, '"', '\\', 8-bit. */
static bool needs_care(unsigned char c)
{
    return c >= 0x80 || c == '"' || c == '\\' || c == '\r' || c == '\n' || c == '\0';
}

void imap_quote_append_string(struct mg_buf *out, const char *s, size_t len)
{
    unsigned int escapes = 0;
    size_t i = 0;

    /* the common case: plain text, copied as one quoted block */
    while (i < len && !needs_care((unsigned char)s[i]))
        i++;
    if (i == len) {
        mg_buf_reserve(out, len + 2);
        out->data[out->len++] = '"';
        if (len > 0)
            memcpy(out->data + out->len, s, len);
        out->len += len;
        out->data[out->len++] = '"';
        out->data[out->len] = '\0';
        return;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (++escapes > QUOTED_MAX_ESCAPES) {
                append_literal(out, s, len);
                return;
            }
        } else if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80) {
            append_literal(out, s, len);
            return;
        }
    }
    mg_buf_reserve(out, len + escapes + 2);
    out->data[out->len++] = '"';
    for (size_t k = 0; k < len; k++) {
        if (s[k] == '"' || s[k] == '\\')
            out->data[out->len++] = '\\';
        out->data[out->len++] = s[k];
    }
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
}

void imap_quote_append_nstring(struct mg_buf *out, const char *s, size_t len)
{
    if (s == NULL)
        mg_buf_append(out, "NIL", 3);
    else
        imap_quote_append_string(out, s, len);
}

static bool is_astring_char(unsigned char c)
{
    /* ATOM-CHAR / resp-specials: anything but CTL, SP, 8-bit and
     * "(){%*\"\\" (']' is allowed in ASTRING-CHAR). */
    if (c <= 0x20 || c >= 0x7f)
        return false;
    return strchr("(){%*\"\\", c) == NULL;
}

void imap_quote_append_astring(struct mg_buf *out, const char *s, size_t len)
{
    bool atom = len > 0 && !(len == 3 && (s[0] == 'N' || s[0] == 'n') &&
                             (s[1] == 'I' || s[1] == 'i') &&
                             (s[2] == 'L' || s[2] == 'l'));
    for (size_t i = 0; atom && i < len; i++)
        atom = is_astring_char((unsigned char)s[i]);
    if (atom)
        mg_buf_append(out, s, len);
    else
        imap_quote_append_string(out, s, len);
}

void imap_quote_append_cstring(struct mg_buf *out, const char *s)
{
    imap_quote_append_string(out, s, strlen(s));
}

void imap_quote_append_cnstring(struct mg_buf *out, const char *s)
{
    imap_quote_append_nstring(out, s, s == NULL ? 0 : strlen(s));
}

void imap_quote_append_nstring_nolf(struct mg_buf *out, const char *s)
{
    if (s == NULL || strpbrk(s, "\r\n") == NULL) {
        imap_quote_append_cnstring(out, s);
        return;
    }
    struct mg_buf tmp = MG_BUF_INIT;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] != '\r' && s[i] != '\n') {
            mg_buf_append_byte(&tmp, s[i]);
        } else if (s[i + 1] != ' ' && s[i + 1] != '\t' && s[i + 1] != '\r' &&
                   s[i + 1] != '\n' && s[i + 1] != '\0') {
            mg_buf_append_byte(&tmp, ' ');
        }
    }
    imap_quote_append_string(out, tmp.data != NULL ? tmp.data : "", tmp.len);
    mg_buf_free(&tmp);
}

static bool is_lwsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void imap_quote_append_string_for_humans(struct mg_buf *out, const char *s,
                                         size_t len)
{
    bool modify = false, last_lwsp = true, only_lwsp = true;
    size_t removed = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_lwsp((char)c)) {
            if (c != ' ')
                modify = true;
            if (last_lwsp) {
                modify = true;
                removed++;
            }
            last_lwsp = true;
            continue;
        }
        if (c == '"' || c == '\\' || c == '\0' || c >= 0x80)
            modify = true;
        last_lwsp = false;
        only_lwsp = false;
    }
    if (len > 0 && last_lwsp && !only_lwsp) {
        modify = true;
        removed++; /* the trailing space */
    }
    if (!modify) {
        mg_buf_reserve(out, len + 2);
        mg_buf_append_byte(out, '"');
        mg_buf_append(out, s, len);
        mg_buf_append_byte(out, '"');
        return;
    }
    if (removed == len) {
        mg_buf_append(out, "\"\"", 2);
        return;
    }

    mg_buf_printf(out, "{%zu}\r\n", len - removed);
    size_t start = out->len;
    last_lwsp = true;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_lwsp(c)) {
            if (!last_lwsp)
                mg_buf_append_byte(out, ' ');
            last_lwsp = true;
            continue;
        }
        mg_buf_append_byte(out, c == '\0' ? (char)0x80 : c);
        last_lwsp = false;
    }
    if (last_lwsp && out->len > start)
        mg_buf_truncate(out, out->len - 1);
}
