/* SMTP command lines: the verb, and the arguments of MAIL FROM, RCPT TO
 * and BDAT (RFC 5321 section 4.1.1, RFC 3030).
 *
 * Pure functions over one line (no CR LF): the server engine, the unit
 * tests and fuzz_smtp_command call them the same way. Errors come back as
 * the reply to send. Strings in results point into the line (verb, args)
 * or are allocated from the caller's arena (addresses, decoded values). */
#ifndef MG_LMTP_SMTP_COMMAND_H
#define MG_LMTP_SMTP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmtp/smtp_params.h"
#include "lmtp/smtp_reply.h"

struct mg_arena;

/* Longest verb we look up (STARTTLS); longer words are unknown. */
#define SMTP_COMMAND_VERB_MAX 8

struct smtp_command {
    const char *verb;  /* points into the line */
    size_t verb_len;
    const char *args;  /* after the spaces following the verb; trailing */
    size_t args_len;   /* spaces removed; "" when there are none */
};

/* Splits a line into verb and arguments. Refuses (500 5.5.2) an empty
 * line and any control character, NUL included: nothing after such a byte
 * could be interpreted safely. 8-bit bytes are left to each command. */
int smtp_command_split(const char *line, size_t len, struct smtp_command *cmd_r,
                       struct smtp_status *error_r);

struct smtp_mail_command {
    const char *address;            /* normalised (mg_address_format); "" for <> */
    struct smtp_mail_params params;
};

struct smtp_rcpt_command {
    const char *address;            /* normalised; "postmaster" may lack a domain */
    struct smtp_rcpt_params params;
};

/* "FROM:<path> [params]" (a space after the colon is tolerated). A UTF-8
 * address needs the SMTPUTF8 parameter (553 5.6.7 otherwise). */
int smtp_command_parse_mail(const char *args, size_t len, const struct smtp_params_options *options,
                            struct mg_arena *arena, struct smtp_mail_command *mail_r,
                            struct smtp_status *error_r);
/* "TO:<path> [params]". Only <postmaster> may omit the domain (RFC 5321
 * section 4.1.1.3); UTF-8 needs options->is_smtputf8. */
int smtp_command_parse_rcpt(const char *args, size_t len, const struct smtp_params_options *options,
                            struct mg_arena *arena, struct smtp_rcpt_command *rcpt_r,
                            struct smtp_status *error_r);
/* "<size> [LAST]": 1 to 20 digits, no overflow. Returns 0 or -1. */
int smtp_command_parse_bdat(const char *args, size_t len, uint64_t *size_r, bool *is_last_r);

#endif
