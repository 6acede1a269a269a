#include "mda/store/mailbox_name.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/utf8.h"

bool mailbox_name_is_inbox(const char *name)
{
    return mg_ascii_strcasecmp(name, "INBOX") == 0;
}

int mailbox_name_normalize(const char *name, size_t len, char out[MAILBOX_NAME_MAX + 1],
                           const char **error_r)
{
    if (len == 0) {
        *error_r = "Empty mailbox name";
        return -1;
    }
    if (len > MAILBOX_NAME_MAX) {
        *error_r = "Mailbox name too long";
        return -1;
    }
    if (!mg_utf8_is_valid(name, len) || memchr(name, '\0', len) != NULL) {
        *error_r = "Mailbox name is not valid UTF-8";
        return -1;
    }
    size_t depth = 1;
    size_t comp_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len) {
            unsigned char c = (unsigned char)name[i];
            if (c < 0x20 || c == 0x7f) {
                *error_r = "Control characters are not allowed in mailbox names";
                return -1;
            }
            if (c == '%' || c == '*') {
                *error_r = "Wildcards are not allowed in mailbox names";
                return -1;
            }
            if (c != MAILBOX_SEPARATOR)
                continue;
        }
        size_t clen = i - comp_start;
        if (clen == 0) {
            *error_r = "Empty hierarchy level in mailbox name";
            return -1;
        }
        if ((clen == 1 && name[comp_start] == '.') ||
            (clen == 2 && name[comp_start] == '.' && name[comp_start + 1] == '.')) {
            *error_r = "Invalid mailbox name";
            return -1;
        }
        if (i < len && ++depth > MAILBOX_NAME_DEPTH_MAX) {
            *error_r = "Mailbox hierarchy too deep";
            return -1;
        }
        comp_start = i + 1;
    }
    memcpy(out, name, len);
    out[len] = '\0';
    /* INBOX is case-insensitive, also as the parent of a hierarchy. */
    if ((len == 5 || (len > 5 && name[5] == MAILBOX_SEPARATOR)) &&
        mg_ascii_has_prefix(name, len, "inbox"))
        memcpy(out, "INBOX", 5);
    return 0;
}

char *mailbox_name_to_disk(const char *name)
{
    if (strcmp(name, "INBOX") == 0)
        return mg_strdup("");
    struct mg_buf b = MG_BUF_INIT;
    for (const char *p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == MAILBOX_SEPARATOR)
            mg_buf_append_byte(&b, '.');
        else if (c == '.' || c == '%' || c < 0x20 || c == 0x7f)
            mg_buf_printf(&b, "%%%02X", c);
        else
            mg_buf_append_byte(&b, (char)c);
    }
    return mg_buf_steal(&b, NULL);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *mailbox_name_from_disk(const char *disk)
{
    struct mg_buf b = MG_BUF_INIT;
    for (const char *p = disk; *p != '\0'; p++) {
        if (*p == '.') {
            mg_buf_append_byte(&b, MAILBOX_SEPARATOR);
        } else if (*p == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0) {
                mg_buf_free(&b);
                return NULL;
            }
            mg_buf_append_byte(&b, (char)(hi * 16 + lo));
            p += 2;
        } else {
            mg_buf_append_byte(&b, *p);
        }
    }
    char *name = mg_buf_steal(&b, NULL);
    char out[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (mailbox_name_normalize(name, strlen(name), out, &error) != 0 ||
        strcmp(out, name) != 0) {
        free(name);
        return NULL;
    }
    return name;
}

bool mailbox_name_is_child(const char *parent, const char *child)
{
    size_t plen = strlen(parent);
    return strncmp(parent, child, plen) == 0 && child[plen] == MAILBOX_SEPARATOR;
}
