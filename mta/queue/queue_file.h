/* The spool file of one message: <queue_dir>/msg/<ID>.
 *
 *   MGQ1
 *   id 0ABCDEF...                        one line per envelope field,
 *   arrival 1795869079                   values %XX-escaped
 *   from alice@example.com
 *   rcpt L bob@mailgenic.test - 0        route, address, ORCPT, NOTIFY
 *   ...
 *   data 00000000000000004711            content length, fixed width
 *   <content: exactly that many bytes>
 *   end 0ABCDEF...
 *
 * The file carries its own framing: a file cut short (a crash while it was
 * being written, a full disk) has no valid "end" line where the length
 * says, and is never delivered. Files are written in <queue_dir>/tmp/ (or
 * free/, rewriting a finished message's file), fsynced and renamed into
 * msg/ (then msg/ is fsynced) before the 250 (queue_spool.c). */
#ifndef MG_MTA_QUEUE_FILE_H
#define MG_MTA_QUEUE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/unique_id.h"

struct mg_buf;
struct mg_arena;

/* Where a recipient goes: a local mailbox (LMTP), a remote address (SMTP),
 * or not known yet (resolved by the queue manager). */
enum queue_route {
    QUEUE_ROUTE_LOCAL = 'L',
    QUEUE_ROUTE_REMOTE = 'R',
    QUEUE_ROUTE_UNKNOWN = '?',
};

enum queue_ret { QUEUE_RET_DEFAULT = 0, QUEUE_RET_FULL, QUEUE_RET_HDRS };
enum queue_body { QUEUE_BODY_DEFAULT = 0, QUEUE_BODY_7BIT, QUEUE_BODY_8BITMIME };

struct queue_file_rcpt {
    char route;             /* enum queue_route */
    const char *address;
    const char *orcpt;      /* NULL: none */
    unsigned notify;        /* enum smtp_dsn_notify bits */
};

struct queue_envelope {
    char id[MG_UNIQUE_ID_LEN + 1];
    time_t arrival;
    const char *from;       /* "" for the null reverse-path */
    const char *envid;      /* NULL: none */
    enum queue_ret ret;
    enum queue_body body;
    bool is_smtputf8;
    bool is_bounce;         /* a DSN we made: its failure goes to the
                             * postmaster, not to its (null) sender */
    bool is_double_bounce;  /* that notice to the postmaster: dropped
                             * if it fails too (is_bounce is set as well) */
    const char *auth_user;  /* NULL: not authenticated */
    const char *client;     /* "[192.0.2.1] helo-name", for logs */
    struct queue_file_rcpt *rcpts;
    size_t n_rcpts;
};

/* Writes the head (envelope and the data line with a placeholder length)
 * into out. */
void queue_file_write_head(const struct queue_envelope *env, struct mg_buf *out);
/* Offset of the length field in the head, for patching. */
size_t queue_file_length_offset(const struct mg_buf *head);
/* Formats the 20-digit length field. */
void queue_file_format_length(uint64_t len, char out[21]);
/* The trailer after content. */
void queue_file_write_trailer(const char *id, struct mg_buf *out);

/* Reads and checks a spool file: the envelope (strings from arena) and
 * where the content is. Returns 0, or -1 with a reason (damaged,
 * truncated, unreadable). */
int queue_file_read(const char *path, struct mg_arena *arena, struct queue_envelope *env_r,
                    uint64_t *content_off_r, uint64_t *content_len_r, const char **error_r);

#endif
