#include "mda/mime/imap_envelope.h"

#include <string.h>

#include "mda/mime/imap_quote.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_header.h"

enum env_field {
    ENV_DATE,
    ENV_SUBJECT,
    ENV_FROM,
    ENV_SENDER,
    ENV_REPLY_TO,
    ENV_TO,
    ENV_CC,
    ENV_BCC,
    ENV_IN_REPLY_TO,
    ENV_MESSAGE_ID,
    ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
    "Date", "Subject", "From", "Sender", "Reply-To",
    "To", "Cc", "Bcc", "In-Reply-To", "Message-ID",
};

static void write_string(struct mg_buf *out, struct mg_buf *tmp,
                         const struct mime_header_field *f)
{
    if (f == NULL) {
        mg_buf_append(out, "NIL", 3);
        return;
    }
    mg_buf_reset(tmp);
    mime_header_unfold(f->value, f->value_len, tmp);
    imap_quote_append_string(out, tmp->data != NULL ? tmp->data : "", tmp->len);
}

static void write_addresses(struct mg_buf *out, const struct mime_address *addr)
{
    if (addr == NULL) {
        mg_buf_append(out, "NIL", 3);
        return;
    }
    mg_buf_append_byte(out, '(');
    for (; addr != NULL; addr = addr->next) {
        mg_buf_append_byte(out, '(');
        if (addr->name == NULL)
            mg_buf_append(out, "NIL", 3);
        else
            imap_quote_append_string_for_humans(out, addr->name, strlen(addr->name));
        mg_buf_append_byte(out, ' ');
        imap_quote_append_cnstring(out, addr->route);
        mg_buf_append_byte(out, ' ');
        imap_quote_append_cnstring(out, addr->mailbox);
        mg_buf_append_byte(out, ' ');
        imap_quote_append_cnstring(out, addr->domain);
        mg_buf_append_byte(out, ')');
    }
    mg_buf_append_byte(out, ')');
}

void imap_envelope_write(struct mg_buf *out, const char *data,
                         const struct mime_part *msg)
{
    struct mime_header_field fields[ENV_COUNT];
    bool seen[ENV_COUNT] = { false };
    struct mime_header_iter iter;
    struct mime_header_field f;

    mime_header_iter_init(&iter, data, msg->header_start, msg->header_end);
    while (mime_header_iter_next(&iter, &f)) {
        if (f.name_len < 2 || f.name_len > 11)
            continue;
        for (int i = 0; i < ENV_COUNT; i++) {
            if (!seen[i] && strlen(env_names[i]) == f.name_len &&
                mime_header_field_is(&f, env_names[i])) {
                fields[i] = f;
                seen[i] = true;
                break;
            }
        }
    }

    struct mg_arena *arena = mg_arena_new(2048);
    struct mime_address *addrs[ENV_COUNT] = { NULL };
    for (int i = ENV_FROM; i <= ENV_BCC; i++) {
        if (seen[i]) {
            addrs[i] = mime_address_parse(arena, fields[i].value, fields[i].value_len,
                                          MIME_ADDRESS_FLAG_FILL_MISSING);
        }
    }
    if (addrs[ENV_SENDER] == NULL)
        addrs[ENV_SENDER] = addrs[ENV_FROM];
    if (addrs[ENV_REPLY_TO] == NULL)
        addrs[ENV_REPLY_TO] = addrs[ENV_FROM];

    struct mg_buf tmp = MG_BUF_INIT;
    write_string(out, &tmp, seen[ENV_DATE] ? &fields[ENV_DATE] : NULL);
    mg_buf_append_byte(out, ' ');
    if (!seen[ENV_SUBJECT])
        mg_buf_append(out, "NIL", 3);
    else
        imap_quote_append_string_for_humans(out, fields[ENV_SUBJECT].value,
                                            fields[ENV_SUBJECT].value_len);
    for (int i = ENV_FROM; i <= ENV_BCC; i++) {
        mg_buf_append_byte(out, ' ');
        write_addresses(out, addrs[i]);
    }
    mg_buf_append_byte(out, ' ');
    write_string(out, &tmp, seen[ENV_IN_REPLY_TO] ? &fields[ENV_IN_REPLY_TO] : NULL);
    mg_buf_append_byte(out, ' ');
    write_string(out, &tmp, seen[ENV_MESSAGE_ID] ? &fields[ENV_MESSAGE_ID] : NULL);
    mg_buf_free(&tmp);
    mg_arena_free(&arena);
}
