/* Message content: DATA (dot-stuffed, RFC 5321 section 4.1.1.4) and BDAT
 * chunks (RFC 3030), streamed to data_chunk as input arrives, and the
 * replies after the end of data (one per recipient in LMTP, RFC 2033
 * section 4.2).
 *
 * LMTP replies go out in recipient order as soon as they can: the answer
 * for recipient 0 is sent when it arrives, the one for recipient 2 waits
 * for recipient 1's. The client gets each result as early as order allows
 * and the engine holds at most one answer per recipient. */
#include <stdio.h>

#include "common/log.h"
#include "lmtp/smtp_command.h"
#include "lmtp/smtp_server_private.h"

static bool is_lmtp(const struct smtp_server *server)
{
    return server->set.protocol == SMTP_PROTOCOL_LMTP;
}

static bool has_bare_newline(const struct smtp_server *server)
{
    return server->decoder.bare_cr > 0 || server->decoder.bare_lf > 0;
}

void smtp_server_reply_final(struct smtp_server *server, const struct smtp_status *status)
{
    size_t n = 1;
    if (is_lmtp(server) && server->tx != NULL && server->tx->tx.rcpt_count > 0)
        n = server->tx->tx.rcpt_count;
    for (size_t i = 0; i < n; i++)
        smtp_server_reply_status(server, status);
}

static void data_chunk(struct smtp_server *server, const char *data, size_t len)
{
    if (len > 0 && server->hooks->data_chunk != NULL)
        server->hooks->data_chunk(server, &server->tx->tx, data, len, server->ctx);
}

/* The end of content: the daemon makes it durable and answers. */
static void data_end(struct smtp_server *server, bool is_bdat)
{
    size_t n = is_lmtp(server) ? server->tx->tx.rcpt_count : 1;
    struct smtp_server_reply *reply = smtp_server_reply_new(server, SMTP_SERVER_REPLY_DATA_END, n);
    reply->is_bdat = is_bdat;
    if (server->hooks->data_end != NULL)
        server->hooks->data_end(server, reply, &server->tx->tx, server->ctx);
    else
        smtp_server_reply_send(reply, 250, "2.0.0", "Ok");
    smtp_server_hook_returned(server, reply);
}

bool smtp_server_data_end_answered(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    while (reply->next_to_send < reply->answer_count &&
           reply->answers[reply->next_to_send].is_set) {
        const struct smtp_server_answer *a = &reply->answers[reply->next_to_send++];
        smtp_server_reply(server, a->code, a->enhanced, a->text);
    }
    return reply->next_to_send == reply->answer_count;
}

/* ---- DATA ---- */

void smtp_server_cmd_data(struct smtp_server *server, const char *args, size_t len)
{
    if (server->tx->tx.rcpt_count == 0) {
        smtp_server_reply(server, 554, "5.5.1", "Error: no valid recipients");
        return;
    }
    struct smtp_server_reply *reply =
        smtp_server_reply_new(server, SMTP_SERVER_REPLY_DATA_BEGIN, 1);
    if (server->hooks->data_begin != NULL)
        server->hooks->data_begin(server, reply, &server->tx->tx, server->ctx);
    else
        smtp_server_reply_send(reply, 354, NULL, NULL);
    smtp_server_hook_returned(server, reply);
}

static void data_start(struct smtp_server *server, const struct smtp_server_answer *a)
{
    server->tx->has_data_begun = true;
    mg_dotstuff_decoder_init(&server->decoder, server->set.max_message_size,
                             server->set.bare_newline == SMTP_BARE_NEWLINE_NORMALIZE);
    server->is_data_discarding = false;
    smtp_server_set_state(server, SMTP_SERVER_STATE_DATA);
    smtp_server_reply(server, 354, NULL,
                      a->text[0] != '\0' ? a->text : "End data with <CR><LF>.<CR><LF>");
}

static void data_finish(struct smtp_server *server)
{
    if (server->decoder.is_too_big) {
        static const struct smtp_status too_big = { 552, "5.3.4",
                                                    "Error: message size exceeds fixed limit" };
        smtp_server_reply_final(server, &too_big);
        smtp_server_tx_end(server);
    } else if (server->set.bare_newline == SMTP_BARE_NEWLINE_REJECT && has_bare_newline(server)) {
        /* Never half-accept: a relay that sent bare line ends may disagree
         * with us about where lines, and so the message, end. */
        static const struct smtp_status bare = { 554, "5.6.0",
                                                 "Error: message contains bare CR or LF" };
        smtp_server_reply_final(server, &bare);
        smtp_server_tx_end(server);
    } else {
        data_end(server, false);
    }
}

bool smtp_server_data_input(struct smtp_server *server)
{
    struct mg_buf *in = server->in;
    struct mg_line_reader *reader = &server->reader;
    size_t avail = in->len - reader->pos;
    if (avail == 0)
        return false;
    size_t n = avail < SMTP_SERVER_CHUNK_MAX ? avail : SMTP_SERVER_CHUNK_MAX;
    bool is_done;
    size_t used = mg_dotstuff_decode(&server->decoder, in->data + reader->pos, n, &server->chunk,
                                     &is_done);
    /* The content bypasses the line reader: advance its position past the
     * bytes the decoder took; lines resume after the end marker. */
    reader->pos += used;
    reader->scan = 0;
    server->tx->tx.data_size = server->decoder.size;
    if (server->decoder.is_too_big ||
        (server->set.bare_newline == SMTP_BARE_NEWLINE_REJECT && has_bare_newline(server)))
        server->is_data_discarding = true;
    if (!server->is_data_discarding)
        data_chunk(server, server->chunk.data, server->chunk.len);
    mg_buf_reset(&server->chunk);
    if (server->state != SMTP_SERVER_STATE_DATA)
        return false; /* closed or freed from within data_chunk */
    if (is_done)
        data_finish(server);
    return true;
}

/* ---- BDAT ---- */

static void bdat_chunk_done(struct smtp_server *server)
{
    if (server->is_bdat_discarding) {
        struct smtp_status error = server->bdat_error;
        if (error.code == 503)
            smtp_server_reply_error_status(server, &error); /* a client bug: counts */
        else if (server->is_bdat_last)
            smtp_server_reply_final(server, &error);
        else
            smtp_server_reply_status(server, &error);
        /* Any failed chunk ends the transaction: RFC 3030 section 2 lets
         * the client do nothing useful with it but RSET. */
        if (server->tx != NULL)
            smtp_server_tx_end(server);
        else
            smtp_server_set_state(server, smtp_server_idle_state(server));
        return;
    }
    if (server->is_bdat_last) {
        data_end(server, true);
        return;
    }
    char text[64];
    snprintf(text, sizeof(text), "Ok: %llu octets received",
             (unsigned long long)server->bdat_size);
    smtp_server_set_state(server, SMTP_SERVER_STATE_CHUNKING);
    smtp_server_reply(server, 250, "2.0.0", text);
}

/* Reads the chunk's bytes: passed on, or dropped when discarding. */
static void bdat_read(struct smtp_server *server, bool is_discarding)
{
    server->is_bdat_discarding = is_discarding;
    smtp_server_set_state(server, SMTP_SERVER_STATE_BDAT);
    if (server->bdat_size > 0)
        mg_line_reader_expect_literal(&server->reader, server->bdat_size);
    else
        bdat_chunk_done(server);
}

/* Reads and drops the chunk, then answers with status. The status text
 * must be static or copied: it is kept until the chunk is read. */
static void bdat_discard(struct smtp_server *server, const struct smtp_status *status)
{
    server->bdat_error = *status;
    bdat_read(server, true);
}

void smtp_server_cmd_bdat(struct smtp_server *server, const char *args, size_t len)
{
    if (!server->set.offer_chunking) {
        smtp_server_reply_error(server, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    uint64_t size;
    bool is_last;
    if (smtp_command_parse_bdat(args, len, &size, &is_last) < 0) {
        /* Without the size we cannot tell where the chunk ends, so no
         * later byte can be trusted to be a command (RFC 3030 section 2). */
        smtp_server_reply(server, 501, "5.5.4", "Syntax: BDAT size [LAST]");
        smtp_server_close(server);
        return;
    }
    server->bdat_size = size;
    server->is_bdat_last = is_last;
    struct smtp_server_tx *stx = server->tx;
    if (stx == NULL) {
        static const struct smtp_status no_mail = { 503, "5.5.1", "Error: need MAIL command" };
        bdat_discard(server, &no_mail);
        return;
    }
    if (stx->tx.rcpt_count == 0) {
        static const struct smtp_status no_rcpt = { 554, "5.5.1", "Error: no valid recipients" };
        bdat_discard(server, &no_rcpt);
        return;
    }
    uint64_t max = server->set.max_message_size;
    if (max > 0 && (size > max || stx->tx.data_size > max - size)) {
        static const struct smtp_status too_big = { 552, "5.3.4",
                                                    "Error: message size exceeds fixed limit" };
        bdat_discard(server, &too_big);
        return;
    }
    if (stx->has_data_begun) {
        bdat_read(server, false);
        return;
    }
    struct smtp_server_reply *reply =
        smtp_server_reply_new(server, SMTP_SERVER_REPLY_DATA_BEGIN, 1);
    reply->is_bdat = true;
    if (server->hooks->data_begin != NULL)
        server->hooks->data_begin(server, reply, &stx->tx, server->ctx);
    else
        smtp_server_reply_send(reply, 250, "2.0.0", "Ok");
    smtp_server_hook_returned(server, reply);
}

void smtp_server_bdat_input(struct smtp_server *server, const char *data, size_t len,
                            bool is_end)
{
    if (!server->is_bdat_discarding) {
        server->tx->tx.data_size += len;
        /* Bounded pieces, whatever the input buffer holds. */
        for (size_t off = 0; off < len; off += SMTP_SERVER_CHUNK_MAX) {
            size_t n = len - off < SMTP_SERVER_CHUNK_MAX ? len - off : SMTP_SERVER_CHUNK_MAX;
            data_chunk(server, data + off, n);
            if (server->state != SMTP_SERVER_STATE_BDAT)
                return;
        }
    }
    if (is_end)
        bdat_chunk_done(server);
}

void smtp_server_data_begin_answered(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    const struct smtp_server_answer *a = &reply->answers[0];
    bool is_go = a->code < 400;
    if (!reply->is_bdat) {
        if (is_go)
            data_start(server, a);
        else
            smtp_server_reply(server, a->code, a->enhanced, a->text);
        return;
    }
    if (is_go) {
        server->tx->has_data_begun = true;
        bdat_read(server, false);
        return;
    }
    /* The hook's text dies with the reply: keep a copy for after the
     * chunk has been read. */
    snprintf(server->bdat_error_text, sizeof(server->bdat_error_text), "%s", a->text);
    snprintf(server->bdat_error_enhanced, sizeof(server->bdat_error_enhanced), "%s",
             a->enhanced);
    struct smtp_status status = { a->code, server->bdat_error_enhanced, server->bdat_error_text };
    bdat_discard(server, &status);
}
