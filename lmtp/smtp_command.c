#include "lmtp/smtp_command.h"

#include <string.h>

#include "common/address.h"
#include "common/arena.h"
#include "common/ascii.h"

int smtp_command_split(const char *line, size_t len, struct smtp_command *cmd_r,
                       struct smtp_status *error_r)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            *error_r = (struct smtp_status){ 500, "5.5.2", "Error: control characters in command" };
            return -1;
        }
    }
    while (len > 0 && line[len - 1] == ' ')
        len--;
    /* Nothing, or a space where the verb should be. */
    if (len == 0 || line[0] == ' ') {
        *error_r = (struct smtp_status){ 500, "5.5.2", "Error: bad syntax" };
        return -1;
    }
    size_t v = 0;
    while (v < len && line[v] != ' ')
        v++;
    size_t a = v;
    while (a < len && line[a] == ' ')
        a++;
    cmd_r->verb = line;
    cmd_r->verb_len = v;
    cmd_r->args = line + a;
    cmd_r->args_len = len - a;
    return 0;
}

static bool has_8bit(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x80)
            return true;
    }
    return false;
}

/* "FROM:" / "TO:" then optional spaces: the path's offset, or -1. */
static long path_offset(const char *args, size_t len, const char *keyword)
{
    size_t k = strlen(keyword);
    if (len < k || !mg_ascii_has_prefix(args, len, keyword))
        return -1;
    /* RFC 5321 has no space here; many clients put one, and refusing them
     * helps nobody. */
    while (k < len && args[k] == ' ')
        k++;
    return (long)k;
}

/* Parses "<path> params" from args+off: the path with every flag it may
 * need (so that its end is found), then the parameters. */
static int parse_path_and_params(const char *args, size_t len, size_t off, unsigned flags,
                                 struct mg_arena *arena, struct mg_address *addr_r,
                                 size_t *params_off_r, const struct smtp_status *bad_address,
                                 struct smtp_status *error_r)
{
    const char *error;
    size_t consumed;
    if (off >= len || args[off] != '<') {
        *error_r = (struct smtp_status){ 501, "5.5.4", "Error: the address must be in <>" };
        return -1;
    }
    if (mg_address_parse_path(args + off, len - off, flags, arena, addr_r, &consumed,
                              &error) < 0) {
        *error_r = *bad_address;
        return -1;
    }
    *params_off_r = off + consumed;
    return 0;
}

int smtp_command_parse_mail(const char *args, size_t len, const struct smtp_params_options *options,
                            struct mg_arena *arena, struct smtp_mail_command *mail_r,
                            struct smtp_status *error_r)
{
    static const struct smtp_status bad_address = { 501, "5.1.7", "Error: bad sender address syntax" };
    long off = path_offset(args, len, "FROM:");
    if (off < 0) {
        *error_r = (struct smtp_status){ 501, "5.5.4", "Syntax: MAIL FROM:<address>" };
        return -1;
    }
    struct mg_address addr;
    size_t poff;
    unsigned flags = MG_ADDRESS_ALLOW_NULL | (options->allow_smtputf8 ? MG_ADDRESS_ALLOW_UTF8 : 0);
    if (parse_path_and_params(args, len, (size_t)off, flags, arena, &addr, &poff, &bad_address,
                              error_r) < 0)
        return -1;
    if (smtp_params_parse_mail(args + poff, len - poff, options, arena, &mail_r->params,
                               error_r) < 0)
        return -1;
    mail_r->address = mg_address_format(arena, &addr);
    if (!mail_r->params.is_smtputf8 && has_8bit(mail_r->address)) {
        *error_r = (struct smtp_status){ 553, "5.6.7", "Error: a UTF-8 address needs SMTPUTF8" };
        return -1;
    }
    return 0;
}

int smtp_command_parse_rcpt(const char *args, size_t len, const struct smtp_params_options *options,
                            struct mg_arena *arena, struct smtp_rcpt_command *rcpt_r,
                            struct smtp_status *error_r)
{
    static const struct smtp_status bad_address = { 501, "5.1.3",
                                                    "Error: bad recipient address syntax" };
    long off = path_offset(args, len, "TO:");
    if (off < 0) {
        *error_r = (struct smtp_status){ 501, "5.5.4", "Syntax: RCPT TO:<address>" };
        return -1;
    }
    struct mg_address addr;
    size_t poff;
    unsigned flags = MG_ADDRESS_ALLOW_NO_DOMAIN |
                     (options->allow_smtputf8 ? MG_ADDRESS_ALLOW_UTF8 : 0);
    if (parse_path_and_params(args, len, (size_t)off, flags, arena, &addr, &poff, &bad_address,
                              error_r) < 0)
        return -1;
    if (addr.domain[0] == '\0' && mg_ascii_strcasecmp(addr.local, "postmaster") != 0) {
        *error_r = bad_address;
        return -1;
    }
    if (smtp_params_parse_rcpt(args + poff, len - poff, options, arena, &rcpt_r->params,
                               error_r) < 0)
        return -1;
    rcpt_r->address = mg_address_format(arena, &addr);
    if (!options->is_smtputf8 && has_8bit(rcpt_r->address)) {
        *error_r = (struct smtp_status){ 553, "5.6.7", "Error: a UTF-8 address needs SMTPUTF8" };
        return -1;
    }
    return 0;
}

int smtp_command_parse_bdat(const char *args, size_t len, uint64_t *size_r, bool *is_last_r)
{
    size_t i = 0;
    uint64_t size = 0;
    while (i < len && args[i] >= '0' && args[i] <= '9') {
        unsigned d = (unsigned)(args[i] - '0');
        if (i >= 20 || size > (UINT64_MAX - d) / 10)
            return -1;
        size = size * 10 + d;
        i++;
    }
    if (i == 0)
        return -1;
    bool is_last = false;
    if (i < len) {
        if (args[i] != ' ')
            return -1;
        while (i < len && args[i] == ' ')
            i++;
        if (!mg_ascii_eq(args + i, len - i, "LAST"))
            return -1;
        is_last = true;
    }
    *size_r = size;
    *is_last_r = is_last;
    return 0;
}
