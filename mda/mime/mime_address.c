#include "mda/mime/mime_address.h"

#include <string.h>

#include "mda/mime/mime_content.h"
#include "mda/mime/mime_lex.h"

struct addr_parser {
    struct mg_arena *arena;
    struct mime_lex lx;
    struct mg_buf str;
    struct mg_buf comment;
    struct mime_address addr; /* being built */
    struct mime_address *first, *last;
    unsigned int count;
    bool fill_missing;
};

static const char *str_copy(struct addr_parser *ap)
{
    return mime_content_strdup(ap->arena, ap->str.data != NULL ? ap->str.data : "",
                               ap->str.len);
}

static bool at_end(const struct addr_parser *ap)
{
    return ap->lx.p >= ap->lx.end;
}

static void add_address(struct addr_parser *ap)
{
    struct mime_address *a = mg_arena_alloc(ap->arena, sizeof(*a));
    *a = ap->addr;
    a->next = NULL;
    memset(&ap->addr, 0, sizeof(ap->addr));
    if (ap->first == NULL)
        ap->first = a;
    else
        ap->last->next = a;
    ap->last = a;
    ap->count++;
}

static void add_fixed_address(struct addr_parser *ap)
{
    if (ap->addr.mailbox == NULL) {
        ap->addr.mailbox = ap->fill_missing ? "MISSING_MAILBOX" : "";
        ap->addr.invalid_syntax = true;
    }
    if (ap->addr.domain == NULL || ap->addr.domain[0] == '\0') {
        ap->addr.domain = ap->fill_missing ? "MISSING_DOMAIN" : "";
        ap->addr.invalid_syntax = true;
    }
    add_address(ap);
}

static int parse_local_part(struct addr_parser *ap)
{
    int ret;

    /* local-part = dot-atom / quoted-string / obs-local-part */
    mg_buf_reset(&ap->str);
    if (*ap->lx.p == '"')
        ret = mime_lex_quoted(&ap->lx, &ap->str);
    else
        ret = mime_lex_dot_atom(&ap->lx, &ap->str);
    if (ret < 0)
        return -1;
    ap->addr.mailbox = str_copy(ap);
    return ret;
}

static int parse_domain(struct addr_parser *ap)
{
    mg_buf_reset(&ap->str);
    int ret = mime_lex_domain(&ap->lx, &ap->str);
    if (ret < 0)
        return -1;
    ap->addr.domain = str_copy(ap);
    return ret;
}

static int parse_domain_list(struct addr_parser *ap)
{
    /* obs-domain-list = "@" domain *(*(CFWS / ",") [CFWS] "@" domain) */
    mg_buf_reset(&ap->str);
    for (;;) {
        if (at_end(ap))
            return 0;
        if (*ap->lx.p != '@')
            break;
        if (ap->str.len > 0)
            mg_buf_append_byte(&ap->str, ',');
        mg_buf_append_byte(&ap->str, '@');
        int ret = mime_lex_domain(&ap->lx, &ap->str);
        if (ret <= 0)
            return ret;
        while (mime_lex_skip_cfws(&ap->lx) > 0 && *ap->lx.p == ',')
            ap->lx.p++;
    }
    ap->addr.route = str_copy(ap);
    return 1;
}

static int parse_angle_addr(struct addr_parser *ap)
{
    /* "<" [ "@" route ":" ] local-part "@" domain ">" */
    ap->lx.p++;
    if (mime_lex_skip_cfws(&ap->lx) <= 0)
        return -1;
    if (*ap->lx.p == '@') {
        if (parse_domain_list(ap) > 0 && *ap->lx.p == ':') {
            ap->lx.p++;
        } else {
            if (ap->fill_missing)
                ap->addr.route = "INVALID_ROUTE";
            if (at_end(ap))
                return -1;
            /* try to continue anyway */
        }
        if (mime_lex_skip_cfws(&ap->lx) <= 0)
            return -1;
    }
    if (*ap->lx.p != '>') {
        if (parse_local_part(ap) <= 0)
            return -1;
        if (*ap->lx.p == '@' && parse_domain(ap) <= 0)
            return -1;
    }
    if (*ap->lx.p != '>')
        return -1;
    ap->lx.p++;
    return mime_lex_skip_cfws(&ap->lx);
}

static int parse_name_addr(struct addr_parser *ap)
{
    /* name-addr = [display-name] angle-addr */
    mg_buf_reset(&ap->str);
    if (mime_lex_phrase(&ap->lx, &ap->str) <= 0 || *ap->lx.p != '<')
        return -1;
    ap->addr.name = ap->str.len == 0 ? NULL : str_copy(ap);
    if (parse_angle_addr(ap) < 0) {
        if (ap->fill_missing)
            ap->addr.domain = "SYNTAX_ERROR";
        ap->addr.invalid_syntax = true;
    }
    return at_end(ap) ? 0 : 1;
}

static int parse_addr_spec(struct addr_parser *ap)
{
    /* addr-spec = local-part "@" domain */
    int ret, ret2 = -2;

    mg_buf_reset(&ap->comment);
    bool quoted = *ap->lx.p == '"';
    ret = parse_local_part(ap);
    if (ret <= 0)
        ap->addr.invalid_syntax = true;
    if (ret != 0 && !at_end(ap) && *ap->lx.p == '@') {
        ret2 = parse_domain(ap);
        if (ret2 <= 0)
            ret = ret2;
    }

    if (ap->comment.len > 0) {
        ap->addr.name = mime_content_strdup(ap->arena, ap->comment.data,
                                            ap->comment.len);
    } else if (ret2 == -2) {
        /* A word without @domain: a mailbox on its own, but if more words
         * follow, it was a display name. */
        if (ap->str.data == NULL)
            mg_buf_reserve(&ap->str, 0);
        mg_buf_append_byte(&ap->str, ' ');
        size_t orig_len = ap->str.len;
        if (!at_end(ap))
            (void)mime_lex_phrase(&ap->lx, &ap->str);
        if (ap->str.len != orig_len) {
            ap->addr.mailbox = NULL;
            ap->addr.name = str_copy(ap);
        } else if (!quoted) {
            ap->addr.domain = "";
        }
        ap->addr.invalid_syntax = true;
        ret = -1;
    }
    return ret;
}

static int parse_mailbox(struct addr_parser *ap)
{
    const unsigned char *start = ap->lx.p;
    int ret;

    /* mailbox = name-addr / addr-spec */
    if ((ret = parse_name_addr(ap)) < 0) {
        ap->lx.p = start;
        ret = parse_addr_spec(ap);
        if (ap->addr.invalid_syntax && ap->addr.name == NULL &&
            ap->addr.mailbox != NULL && ap->addr.domain == NULL) {
            ap->addr.name = ap->addr.mailbox;
            ap->addr.mailbox = NULL;
        }
    }
    if (ret < 0)
        ap->addr.invalid_syntax = true;
    add_fixed_address(ap);
    return ret;
}

static int parse_group(struct addr_parser *ap)
{
    /* group = display-name ":" [mailbox-list / CFWS] ";" [CFWS] */
    mg_buf_reset(&ap->str);
    if (mime_lex_phrase(&ap->lx, &ap->str) <= 0 || *ap->lx.p != ':')
        return -1;

    /* from here on it is a group, whatever follows */
    ap->lx.p++;
    int ret = mime_lex_skip_cfws(&ap->lx);
    if (ret <= 0)
        ap->addr.invalid_syntax = true;
    ap->addr.mailbox = str_copy(ap);
    add_address(ap);

    if (ret > 0 && *ap->lx.p != ';') {
        while (ap->count < MIME_ADDRESS_MAX) {
            (void)parse_mailbox(ap);
            if (at_end(ap) || *ap->lx.p != ',')
                break;
            ap->lx.p++;
            if (mime_lex_skip_cfws(&ap->lx) <= 0) {
                ret = -1;
                break;
            }
        }
    }
    if (ret >= 0) {
        if (at_end(ap) || *ap->lx.p != ';') {
            ret = -1;
        } else {
            ap->lx.p++;
            ret = mime_lex_skip_cfws(&ap->lx);
        }
    }
    if (ret < 0)
        ap->addr.invalid_syntax = true;
    add_address(ap); /* group end */
    return ret == 0 ? 0 : 1;
}

static int parse_address(struct addr_parser *ap)
{
    const unsigned char *start = ap->lx.p;
    int ret;

    /* address = mailbox / group */
    if ((ret = parse_group(ap)) < 0) {
        ap->lx.p = start;
        memset(&ap->addr, 0, sizeof(ap->addr));
        ret = parse_mailbox(ap);
    }
    return ret;
}

struct mime_address *mime_address_parse(struct mg_arena *arena,
                                        const char *value, size_t len,
                                        unsigned int flags)
{
    struct addr_parser ap;

    memset(&ap, 0, sizeof(ap));
    ap.arena = arena;
    ap.fill_missing = (flags & MIME_ADDRESS_FLAG_FILL_MISSING) != 0;
    mime_lex_init(&ap.lx, value, len);
    ap.lx.comment = &ap.comment;

    if (mime_lex_skip_cfws(&ap.lx) > 0) {
        /* address-list = (address *("," address)) / obs-addr-list */
        while (ap.count < MIME_ADDRESS_MAX) {
            struct mime_address *before = ap.last;
            int ret = parse_address(&ap);
            if (ret == 0)
                break;
            if (!at_end(&ap) && *ap.lx.p != ',' && ap.last != before &&
                ap.last->mailbox == NULL && ap.last->domain == NULL) {
                /* "g1: a;  g2: b;" - a group ends clearly at its ';', so
                 * a missing ',' after it is tolerated */
                continue;
            }
            if (at_end(&ap) || *ap.lx.p != ',')
                break;
            ap.lx.p++;
            ret = mime_lex_skip_cfws(&ap.lx);
            if (ret <= 0) {
                if (ret < 0)
                    add_fixed_address(&ap); /* ends with garbage */
                break;
            }
        }
    }
    mg_buf_free(&ap.str);
    mg_buf_free(&ap.comment);
    return ap.first;
}
