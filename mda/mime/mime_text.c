#include "mda/mime/mime_text.h"

#include "mda/mime/mime_charset.h"
#include "mda/mime/mime_transfer.h"

static void decode_part(const struct mime_part *part, const char *data,
                        struct mg_buf *out, struct mg_buf *tmp)
{
    const char *body = data + part->header_end;
    size_t len = part->body_end - part->header_end;
    const char *charset = mime_part_param(part, "charset");

    if (part->cte == MIME_CTE_BASE64 || part->cte == MIME_CTE_QUOTED_PRINTABLE) {
        mg_buf_reset(tmp);
        mime_transfer_decode(part->cte, body, len, tmp);
        body = tmp->data != NULL ? tmp->data : "";
        len = tmp->len;
    }
    mime_charset_to_utf8(charset, body, len, out);
}

void mime_text_decode_part(const struct mime_part *part, const char *data,
                           struct mg_buf *out)
{
    struct mg_buf tmp = MG_BUF_INIT;
    decode_part(part, data, out, &tmp);
    mg_buf_free(&tmp);
}

bool mime_text_foreach(const struct mime_part *root, const char *data,
                       mime_text_callback *cb, void *context)
{
    struct mg_buf text = MG_BUF_INIT, tmp = MG_BUF_INIT;
    bool go_on = true;

    for (const struct mime_part *part = root; part != NULL && go_on;
         part = mime_part_next_in(part, root)) {
        if (part->children != NULL || !mime_part_is_text(part))
            continue;
        mg_buf_reset(&text);
        decode_part(part, data, &text, &tmp);
        go_on = cb(context, part, text.data != NULL ? text.data : "", text.len);
    }
    mg_buf_free(&text);
    mg_buf_free(&tmp);
    return go_on;
}
