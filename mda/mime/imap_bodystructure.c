#include "mda/mime/imap_bodystructure.h"

#include <inttypes.h>
#include <string.h>

#include "common/ascii.h"
#include "mda/mime/imap_envelope.h"
#include "mda/mime/imap_quote.h"

#define DEFAULT_CHARSET_PARAM "\"charset\" \"us-ascii\""
#define EMPTY_BODY "(\"text\" \"plain\" (" DEFAULT_CHARSET_PARAM ") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE \
    "(\"text\" \"plain\" (" DEFAULT_CHARSET_PARAM ") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"

static void write_part(struct mg_buf *out, const char *data,
                       const struct mime_part *part, unsigned int flags);

static void write_params(struct mg_buf *out, const struct mime_param *params,
                         unsigned int count, bool default_charset)
{
    bool seen_charset = false;

    if (count == 0 && !default_charset) {
        mg_buf_append(out, "NIL", 3);
        return;
    }
    mg_buf_append_byte(out, '(');
    for (unsigned int i = 0; i < count; i++) {
        if (i > 0)
            mg_buf_append_byte(out, ' ');
        if (mg_ascii_strcasecmp(params[i].raw_name, "charset") == 0)
            seen_charset = true;
        imap_quote_append_cstring(out, params[i].raw_name);
        mg_buf_append_byte(out, ' ');
        imap_quote_append_cstring(out, params[i].raw_value);
    }
    if (default_charset && !seen_charset) {
        if (count > 0)
            mg_buf_append_byte(out, ' ');
        mg_buf_append_str(out, DEFAULT_CHARSET_PARAM);
    }
    mg_buf_append_byte(out, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void write_ext_common(struct mg_buf *out, const struct mime_part *part)
{
    mg_buf_append_byte(out, ' ');
    if (part->disposition == NULL) {
        mg_buf_append(out, "NIL", 3);
    } else {
        mg_buf_append_byte(out, '(');
        imap_quote_append_cstring(out, part->disposition);
        mg_buf_append_byte(out, ' ');
        write_params(out, part->disposition_params, part->disposition_param_count,
                     false);
        mg_buf_append_byte(out, ')');
    }
    mg_buf_append_byte(out, ' ');
    if (part->language_count == 0) {
        mg_buf_append(out, "NIL", 3);
    } else {
        mg_buf_append_byte(out, '(');
        for (unsigned int i = 0; i < part->language_count; i++) {
            if (i > 0)
                mg_buf_append_byte(out, ' ');
            imap_quote_append_cstring(out, part->languages[i]);
        }
        mg_buf_append_byte(out, ')');
    }
    mg_buf_append_byte(out, ' ');
    imap_quote_append_nstring_nolf(out, part->content_location);
}

static void write_multipart(struct mg_buf *out, const char *data,
                            const struct mime_part *part, unsigned int flags)
{
    bool extended = (flags & IMAP_BODYSTRUCTURE_FLAG_EXTENDED) != 0;

    if (part->children == NULL) {
        /* IMAP needs at least one part */
        mg_buf_append_str(out, extended ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
    }
    for (const struct mime_part *c = part->children; c != NULL; c = c->next) {
        mg_buf_append_byte(out, '(');
        write_part(out, data, c, flags);
        mg_buf_append_byte(out, ')');
    }
    mg_buf_append_byte(out, ' ');
    imap_quote_append_cstring(out, part->subtype);
    if (!extended)
        return;
    mg_buf_append_byte(out, ' ');
    write_params(out, part->params, part->param_count, false);
    write_ext_common(out, part);
}

static void write_leaf(struct mg_buf *out, const char *data,
                       const struct mime_part *part, unsigned int flags)
{
    bool extended = (flags & IMAP_BODYSTRUCTURE_FLAG_EXTENDED) != 0;
    bool overflow = (part->flags & MIME_PART_FLAG_OVERFLOW) != 0;
    bool message = (part->flags & MIME_PART_FLAG_MESSAGE) != 0 &&
                   part->children != NULL &&
                   (strcmp(part->subtype, "rfc822") == 0 ||
                    (flags & IMAP_BODYSTRUCTURE_FLAG_GLOBAL_AS_MESSAGE) != 0);
    bool text;

    if (overflow) {
        text = true;
        mg_buf_append_str(out, "\"text\" \"plain\" (" DEFAULT_CHARSET_PARAM ")");
    } else {
        text = strcmp(part->type, "text") == 0;
        imap_quote_append_cstring(out, part->type);
        mg_buf_append_byte(out, ' ');
        imap_quote_append_cstring(out, part->subtype);
        mg_buf_append_byte(out, ' ');
        write_params(out, part->params, part->param_count, text);
    }

    mg_buf_append_byte(out, ' ');
    imap_quote_append_nstring_nolf(out, part->content_id);
    mg_buf_append_byte(out, ' ');
    imap_quote_append_nstring_nolf(out, part->content_description);
    mg_buf_append_byte(out, ' ');
    if (part->content_transfer_encoding != NULL)
        imap_quote_append_cstring(out, part->content_transfer_encoding);
    else
        mg_buf_append(out, "\"7bit\"", 6);
    mg_buf_printf(out, " %" PRIu64, part->body_size);

    if (text) {
        mg_buf_printf(out, " %" PRIu64, part->body_lines);
    } else if (message) {
        const struct mime_part *child = part->children;
        mg_buf_append(out, " (", 2);
        imap_envelope_write(out, data, child);
        mg_buf_append(out, ") (", 3);
        write_part(out, data, child, flags);
        mg_buf_printf(out, ") %" PRIu64, part->body_lines);
    }

    if (!extended)
        return;
    mg_buf_append_byte(out, ' ');
    imap_quote_append_nstring_nolf(out, part->content_md5);
    write_ext_common(out, part);
}

static void write_part(struct mg_buf *out, const char *data,
                       const struct mime_part *part, unsigned int flags)
{
    if ((part->flags & MIME_PART_FLAG_MULTIPART) != 0)
        write_multipart(out, data, part, flags);
    else
        write_leaf(out, data, part, flags);
}

void imap_bodystructure_write(struct mg_buf *out, const char *data,
                              const struct mime_part *part, unsigned int flags)
{
    write_part(out, data, part, flags);
}
