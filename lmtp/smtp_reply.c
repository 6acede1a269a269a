#include "lmtp/smtp_reply.h"

#include <string.h>

#include "lmtp/smtp_client.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

void smtp_reply_append(struct mg_buf *out, unsigned code, bool is_last, const char *enhanced,
                       const char *text)
{
    if (code < 100 || code > 999)
        code = 451; /* a caller bug; never send a malformed code */
    mg_buf_printf(out, "%03u%c", code, is_last ? ' ' : '-');
    if (enhanced != NULL && enhanced[0] != '\0') {
        mg_buf_append_str(out, enhanced);
        if (text != NULL && text[0] != '\0')
            mg_buf_append_byte(out, ' ');
    }
    if (text != NULL) {
        size_t n = strnlen(text, SMTP_REPLY_TEXT_MAX);
        size_t start = out->len;
        mg_buf_append(out, text, n);
        for (size_t i = start; i < out->len; i++) {
            unsigned char c = (unsigned char)out->data[i];
            if (c < 0x20 || c >= 0x7f)
                out->data[i] = '?';
        }
    }
    mg_buf_append(out, "\r\n", 2);
}

size_t smtp_reply_enhanced_len(const char *text, size_t len)
{
    /* class "." subject "." detail: 1 digit, 1-3 digits, 1-3 digits */
    size_t i = 0;
    if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && is_digit(text[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    return i;
}

bool smtp_reply_enhanced_is_valid(const char *enhanced, unsigned code)
{
    if (enhanced == NULL)
        return false;
    size_t len = strlen(enhanced);
    return len <= SMTP_REPLY_ENHANCED_MAX && smtp_reply_enhanced_len(enhanced, len) == len &&
           (unsigned)(enhanced[0] - '0') == code / 100;
}

void smtp_reply_parser_init(struct smtp_reply_parser *parser, size_t max_text)
{
    memset(parser, 0, sizeof(*parser));
    mg_line_reader_init(&parser->reader, SMTP_REPLY_LINE_MAX);
    parser->max_text = max_text != 0 ? max_text : SMTP_REPLY_KEEP_DEFAULT;
}

void smtp_reply_parser_deinit(struct smtp_reply_parser *parser)
{
    mg_buf_free(&parser->text);
}

void smtp_reply_parser_discard(struct smtp_reply_parser *parser, struct mg_buf *in)
{
    mg_line_reader_discard(&parser->reader, in);
    mg_buf_reset(&parser->text);
    parser->code = 0;
    parser->lines = 0;
}

/* Adds one line's text to the joined reply text, within max_text. */
static void append_text(struct smtp_reply_parser *parser, const char *s, size_t len)
{
    if (parser->lines > 1 && parser->text.len < parser->max_text)
        mg_buf_append_byte(&parser->text, '\n');
    size_t room = parser->max_text > parser->text.len ? parser->max_text - parser->text.len : 0;
    size_t n = len < room ? len : room;
    size_t start = parser->text.len;
    mg_buf_append(&parser->text, s, n);
    /* The text is a C string for the daemon and its logs. */
    for (size_t i = start; i < parser->text.len; i++) {
        unsigned char c = (unsigned char)parser->text.data[i];
        if (c < 0x20 || c == 0x7f)
            parser->text.data[i] = '?';
    }
}

enum smtp_reply_status smtp_reply_parser_next(struct smtp_reply_parser *parser, struct mg_buf *in,
                                              struct smtp_reply *reply_r, const char **error_r)
{
    enum smtp_reply_status result = SMTP_REPLY_NEED_MORE;
    if (parser->code == 0 && parser->lines == 0)
        mg_buf_reset(&parser->text);
    for (;;) {
        /* An empty buffer may have no storage: do not hand it over. */
        if (mg_line_reader_pending(&parser->reader, in) == 0)
            break;
        struct mg_line line;
        enum mg_line_status st = mg_line_reader_next(&parser->reader, in, &line);
        if (st == MG_LINE_NEED_MORE)
            break;
        if (st != MG_LINE_OK) {
            *error_r = "reply line too long";
            result = SMTP_REPLY_ERROR;
            break;
        }
        const char *p = line.data;
        if (line.len < 3 || !is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2]) ||
            p[0] < '2' || p[0] > '5' || (line.len > 3 && p[3] != ' ' && p[3] != '-')) {
            *error_r = "malformed reply line";
            result = SMTP_REPLY_ERROR;
            break;
        }
        unsigned code = (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
        if (parser->lines > 0 && code != parser->code) {
            *error_r = "reply code changed within a multi-line reply";
            result = SMTP_REPLY_ERROR;
            break;
        }
        if (++parser->lines > SMTP_REPLY_LINES_MAX) {
            *error_r = "reply has too many lines";
            result = SMTP_REPLY_ERROR;
            break;
        }
        bool is_last = line.len == 3 || p[3] == ' ';
        const char *text = line.len > 4 ? p + 4 : "";
        size_t text_len = line.len > 4 ? line.len - 4 : 0;
        size_t elen = smtp_reply_enhanced_len(text, text_len);
        if (elen > SMTP_REPLY_ENHANCED_MAX || (elen > 0 && (unsigned)(text[0] - '0') != code / 100))
            elen = 0;
        if (parser->lines == 1) {
            parser->code = code;
            memcpy(parser->enhanced, text, elen);
            parser->enhanced[elen] = '\0';
        } else if (elen != strlen(parser->enhanced) ||
                   memcmp(text, parser->enhanced, elen) != 0) {
            /* Only the first line's code is stripped from later lines. */
            elen = 0;
        }
        if (elen > 0) {
            text += elen;
            text_len -= elen;
            if (text_len > 0) {
                text++;
                text_len--;
            }
        }
        append_text(parser, text, text_len);
        if (is_last) {
            reply_r->code = parser->code;
            memcpy(reply_r->enhanced, parser->enhanced, sizeof(parser->enhanced));
            reply_r->text = mg_buf_cstr(&parser->text);
            parser->code = 0;
            parser->lines = 0;
            result = SMTP_REPLY_DONE;
            break;
        }
    }
    mg_line_reader_compact(&parser->reader, in);
    return result;
}
