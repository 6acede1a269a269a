#include "common/address.h"

#include <arpa/inet.h>
#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "common/utf8.h"

static bool is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Bytes >= 0x80 are allowed only as parts of valid UTF-8, checked once for
 * the whole string by the callers. */
static bool is_atext_or_utf8(unsigned char c, unsigned flags)
{
    return is_atext(c) || (c >= 0x80 && (flags & MG_ADDRESS_ALLOW_UTF8));
}

static bool dot_string_is_valid(const char *s, size_t len, unsigned flags)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext_or_utf8(c, flags)) {
            return false;
        }
    }
    return true;
}

bool mg_address_local_needs_quotes(const char *local, size_t len)
{
    return !dot_string_is_valid(local, len, MG_ADDRESS_ALLOW_UTF8);
}

/* Validates a quoted string s[0..len) including its quotes and writes its
 * content (quoted-pairs resolved) to out, which has room for len bytes.
 * Returns the content length or -1. */
static long quoted_string_unquote(const char *s, size_t len, unsigned flags, char *out)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return -1;
    size_t o = 0;
    for (size_t i = 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 1 >= len - 1)
                return -1;
            unsigned char q = (unsigned char)s[++i];
            if (q < 32 || q > 126)
                return -1;
            out[o++] = (char)q;
        } else if ((c >= 32 && c <= 126 && c != '"') ||
                   (c >= 0x80 && (flags & MG_ADDRESS_ALLOW_UTF8))) {
            out[o++] = (char)c;
        } else {
            return -1;
        }
    }
    return (long)o;
}

static bool ldh_domain_is_valid(const char *d, size_t len, unsigned flags)
{
    if (len == 0 || len > MG_ADDRESS_DOMAIN_MAX)
        return false;
    size_t label_len = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            /* An empty label, or one ending in '-'. */
            if (label_len == 0 || d[i - 1] == '-')
                return false;
            label_len = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || (c >= 0x80 && (flags & MG_ADDRESS_ALLOW_UTF8));
        if (c == '-' && label_len > 0)
            ok = true;
        if (!ok)
            return false;
        if (++label_len > 63)
            return false;
    }
    return label_len > 0 && d[len - 1] != '-';
}

static bool address_literal_is_valid(const char *d, size_t len)
{
    char tmp[MG_ADDRESS_DOMAIN_MAX + 1];
    if (len < 3 || d[0] != '[' || d[len - 1] != ']' || len - 2 >= sizeof(tmp))
        return false;
    const char *in = d + 1;
    size_t inlen = len - 2;
    unsigned char addr[16];
    if (inlen > 5 && mg_ascii_has_prefix(in, inlen, "IPv6:")) {
        memcpy(tmp, in + 5, inlen - 5);
        tmp[inlen - 5] = '\0';
        return inet_pton(AF_INET6, tmp, addr) == 1;
    }
    memcpy(tmp, in, inlen);
    tmp[inlen] = '\0';
    /* General-address-literals (RFC 5321 4.1.3) name no standardised tag
     * we could route to; accept only IPv4 and IPv6. */
    return inet_pton(AF_INET, tmp, addr) == 1;
}

bool mg_address_domain_is_valid(const char *domain, size_t len, unsigned flags)
{
    if (len > 0 && domain[0] == '[')
        return address_literal_is_valid(domain, len);
    if ((flags & MG_ADDRESS_ALLOW_UTF8) && !mg_utf8_is_valid(domain, len))
        return false;
    return ldh_domain_is_valid(domain, len, flags);
}

int mg_address_parse(const char *text, size_t len, unsigned flags,
                     struct mg_arena *arena, struct mg_address *addr_r,
                     const char **error_r)
{
    if (len == 0) {
        if (flags & MG_ADDRESS_ALLOW_NULL) {
            addr_r->local = "";
            addr_r->domain = "";
            return 0;
        }
        *error_r = "empty address";
        return -1;
    }
    if (len > MG_ADDRESS_PATH_MAX) {
        *error_r = "address too long";
        return -1;
    }
    if (memchr(text, '\0', len) != NULL) {
        *error_r = "NUL in address";
        return -1;
    }
    if ((flags & MG_ADDRESS_ALLOW_UTF8) && !mg_utf8_is_valid(text, len)) {
        *error_r = "invalid UTF-8 in address";
        return -1;
    }

    /* The local part ends at the first '@' after a quoted string, or at
     * the first '@' of a dot-string ('@' is not atext). */
    size_t at;
    if (text[0] == '"') {
        size_t i = 1;
        while (i < len && text[i] != '"') {
            if (text[i] == '\\')
                i++;
            i++;
        }
        if (i >= len) {
            *error_r = "unterminated quoted local part";
            return -1;
        }
        at = i + 1;
        if (at < len && text[at] != '@') {
            *error_r = "garbage after quoted local part";
            return -1;
        }
    } else {
        const char *p = memchr(text, '@', len);
        at = p != NULL ? (size_t)(p - text) : len;
    }

    const char *local = text;
    size_t local_len = at;
    const char *domain = at < len ? text + at + 1 : "";
    size_t domain_len = at < len ? len - at - 1 : 0;

    if (at == len && !(flags & MG_ADDRESS_ALLOW_NO_DOMAIN)) {
        *error_r = "address has no domain";
        return -1;
    }
    if (at < len && domain_len == 0) {
        *error_r = "empty domain";
        return -1;
    }

    char *local_out;
    if (local_len > 0 && local[0] == '"') {
        char *content = mg_arena_alloc(arena, local_len + 1);
        long clen = quoted_string_unquote(local, local_len, flags, content);
        if (clen < 0) {
            *error_r = "invalid quoted local part";
            return -1;
        }
        content[clen] = '\0';
        if (clen > 0 && !mg_address_local_needs_quotes(content, (size_t)clen)) {
            local_out = content;
        } else {
            /* Keep the quoted form, re-escaped minimally. */
            local_out = mg_arena_strndup(arena, local, local_len);
        }
    } else {
        if (!dot_string_is_valid(local, local_len, flags)) {
            *error_r = "invalid local part";
            return -1;
        }
        local_out = mg_arena_strndup(arena, local, local_len);
    }
    if (strlen(local_out) > MG_ADDRESS_LOCAL_MAX) {
        *error_r = "local part too long";
        return -1;
    }

    if (domain_len > 0 && !mg_address_domain_is_valid(domain, domain_len, flags)) {
        *error_r = "invalid domain";
        return -1;
    }
    char *domain_out = mg_arena_strndup(arena, domain, domain_len);
    mg_ascii_lower(domain_out, domain_len);

    addr_r->local = local_out;
    addr_r->domain = domain_out;
    return 0;
}

/* Skips an obsolete source route "@a,@b:" at s; returns its length or -1. */
static long source_route_len(const char *s, size_t len)
{
    if (len == 0 || s[0] != '@')
        return 0;
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return -1;
    size_t rlen = (size_t)(colon - s);
    size_t i = 0;
    while (i < rlen) {
        if (s[i] != '@')
            return -1;
        size_t j = i + 1;
        while (j < rlen && s[j] != ',')
            j++;
        if (!mg_address_domain_is_valid(s + i + 1, j - i - 1, 0))
            return -1;
        i = j + 1;
    }
    return (long)rlen + 1;
}

int mg_address_parse_path(const char *text, size_t len, unsigned flags,
                          struct mg_arena *arena, struct mg_address *addr_r,
                          size_t *consumed_r, const char **error_r)
{
    if (len == 0 || text[0] != '<') {
        *error_r = "path must be in angle brackets";
        return -1;
    }
    /* Find the closing '>' outside a quoted string. */
    size_t i = 1;
    bool in_quotes = false;
    for (; i < len; i++) {
        char c = text[i];
        if (in_quotes && c == '\\') {
            i++;
            continue;
        }
        if (c == '"')
            in_quotes = !in_quotes;
        else if (c == '>' && !in_quotes)
            break;
    }
    if (i >= len) {
        *error_r = "missing '>' in path";
        return -1;
    }
    const char *inner = text + 1;
    size_t inner_len = i - 1;
    long route = source_route_len(inner, inner_len);
    if (route < 0) {
        *error_r = "invalid source route";
        return -1;
    }
    if (route > 0 && (size_t)route == inner_len) {
        *error_r = "source route without mailbox";
        return -1;
    }
    if (mg_address_parse(inner + route, inner_len - (size_t)route, flags, arena,
                         addr_r, error_r) < 0)
        return -1;
    *consumed_r = i + 1;
    return 0;
}

char *mg_address_format(struct mg_arena *arena, const struct mg_address *addr)
{
    if (addr->local[0] == '\0' && addr->domain[0] == '\0')
        return mg_arena_strdup(arena, "");
    if (addr->domain[0] == '\0')
        return mg_arena_strdup(arena, addr->local);
    return mg_arena_printf(arena, "%s@%s", addr->local, addr->domain);
}

char *mg_address_key(struct mg_arena *arena, const struct mg_address *addr)
{
    char *key = mg_address_format(arena, addr);
    mg_ascii_lower(key, strlen(key));
    return key;
}

size_t mg_address_base_local_len(const char *local, size_t len, const char *delimiters)
{
    if (delimiters == NULL || delimiters[0] == '\0' || (len > 0 && local[0] == '"'))
        return len;
    for (size_t i = 1; i < len; i++) {
        if (strchr(delimiters, local[i]) != NULL)
            return i;
    }
    return len;
}
