/* ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 section 4.1.2
 * Mail-parameters / Rcpt-parameters): SIZE (RFC 1870), BODY (RFC 6152,
 * RFC 3030), SMTPUTF8 (RFC 6531), RET, ENVID, NOTIFY, ORCPT (RFC 3461),
 * AUTH (RFC 4954).
 *
 * What the session offered decides what is accepted: a parameter of an
 * extension that was not advertised is "not recognized" (555), like an
 * unknown one; a known parameter with a bad value, or given twice, is a
 * syntax error (501). Decoded values are allocated from the caller's arena. */
#ifndef MG_LMTP_SMTP_PARAMS_H
#define MG_LMTP_SMTP_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmtp/smtp_reply.h"
#include "lmtp/smtp_server.h"

struct mg_arena;

/* RFC 3461 section 4.4 and 4.2: decoded length limits. */
#define SMTP_PARAMS_ENVID_MAX 100
#define SMTP_PARAMS_ORCPT_MAX 500
/* AUTH=<mailbox>: a path plus room for xtext. */
#define SMTP_PARAMS_AUTH_MAX 500

struct smtp_params_options {
    bool is_esmtp;       /* EHLO/LHLO: without it no parameter is valid */
    bool allow_smtputf8; /* SMTPUTF8 advertised */
    bool allow_dsn;      /* DSN advertised */
    bool is_smtputf8;    /* RCPT: the transaction declared SMTPUTF8 */
};

struct smtp_mail_params {
    bool has_size;
    uint64_t size;            /* UINT64_MAX when the value overflows */
    enum smtp_body_type body;
    bool is_smtputf8;
    enum smtp_dsn_ret ret;
    const char *envid;        /* decoded, or NULL */
    const char *auth;         /* decoded, "<>" kept, or NULL */
};

struct smtp_rcpt_params {
    unsigned notify;          /* enum smtp_dsn_notify bits */
    const char *orcpt;        /* "type;address" with the address decoded, or NULL */
};

/* Parse the parameter list after the path: text is "" or starts with a
 * space. Returns 0, or -1 with the reply in *error_r. */
int smtp_params_parse_mail(const char *text, size_t len, const struct smtp_params_options *options,
                           struct mg_arena *arena, struct smtp_mail_params *params_r,
                           struct smtp_status *error_r);
int smtp_params_parse_rcpt(const char *text, size_t len, const struct smtp_params_options *options,
                           struct mg_arena *arena, struct smtp_rcpt_params *params_r,
                           struct smtp_status *error_r);

#endif
