#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/utf8.h"

/* Sections seen so far, to refuse a key given twice in one section: with
 * two values, which one wins is a question nobody should have to ask. */
struct config_seen {
    char **keys; /* "section\0key" flattened as "section/key" */
    size_t n, cap;
};

struct config_parser {
    const char *file;
    unsigned line;
    char section[MG_CONFIG_LINE_MAX + 1];
    struct config_seen seen;
    char **error_r;
};

static int config_error(struct config_parser *p, const char *reason)
{
    *p->error_r = mg_asprintf("%s:%u: %s", p->file, p->line, reason);
    return -1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*s)[*len - 1]))
        (*len)--;
}

static bool config_seen_add(struct config_seen *seen, const char *section, const char *key)
{
    char *name = mg_asprintf("%s/%s", section, key);
    for (size_t i = 0; i < seen->n; i++) {
        if (strcmp(seen->keys[i], name) == 0) {
            free(name);
            return false;
        }
    }
    if (seen->n == seen->cap) {
        seen->cap = seen->cap ? seen->cap * 2 : 16;
        seen->keys = mg_reallocarray(seen->keys, seen->cap, sizeof(*seen->keys));
    }
    seen->keys[seen->n++] = name;
    return true;
}

static void config_seen_free(struct config_seen *seen)
{
    for (size_t i = 0; i < seen->n; i++)
        free(seen->keys[i]);
    free(seen->keys);
}

/* Parses the value part: out receives the unquoted value. */
static int config_parse_value(struct config_parser *p, const char *s, size_t len, char *out)
{
    trim(&s, &len);
    if (len > 0 && s[0] == '"') {
        size_t o = 0, i = 1;
        for (; i < len && s[i] != '"'; i++) {
            if (s[i] == '\\') {
                if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\'))
                    return config_error(p, "invalid escape in quoted value (only \\\" and \\\\)");
                i++;
            }
            out[o++] = s[i];
        }
        if (i >= len)
            return config_error(p, "unterminated quoted value");
        /* After the closing quote: blanks, then nothing or a comment. */
        i++;
        while (i < len && is_blank(s[i]))
            i++;
        if (i < len && s[i] != '#')
            return config_error(p, "text after quoted value");
        out[o] = '\0';
        return 0;
    }
    /* Unquoted: a '#' preceded by a blank starts a comment. */
    size_t end = len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '#' && (i == 0 || is_blank(s[i - 1]))) {
            end = i;
            break;
        }
        if (s[i] == '"')
            return config_error(p, "'\"' inside an unquoted value (quote the whole value)");
    }
    while (end > 0 && is_blank(s[end - 1]))
        end--;
    memcpy(out, s, end);
    out[end] = '\0';
    return 0;
}

static int config_parse_line(struct config_parser *p, const char *s, size_t len,
                             mg_config_entry_cb *cb, void *ctx)
{
    trim(&s, &len);
    if (len == 0 || s[0] == '#')
        return 0;

    if (s[0] == '[') {
        if (s[len - 1] != ']')
            return config_error(p, "section header must end with ']'");
        const char *name = s + 1;
        size_t nlen = len - 2;
        trim(&name, &nlen);
        if (nlen == 0)
            return config_error(p, "empty section name");
        for (size_t i = 0; i < nlen; i++) {
            if (!is_key_char(name[i]))
                return config_error(p, "section names use a-z, 0-9 and '_'");
        }
        memcpy(p->section, name, nlen);
        p->section[nlen] = '\0';
        return 0;
    }

    const char *eq = memchr(s, '=', len);
    if (eq == NULL)
        return config_error(p, "expected 'key = value'");
    const char *key = s;
    size_t klen = (size_t)(eq - s);
    trim(&key, &klen);
    if (klen == 0)
        return config_error(p, "missing key before '='");
    for (size_t i = 0; i < klen; i++) {
        if (!is_key_char(key[i]))
            return config_error(p, "keys use a-z, 0-9 and '_'");
    }
    char keybuf[MG_CONFIG_LINE_MAX + 1];
    memcpy(keybuf, key, klen);
    keybuf[klen] = '\0';

    char value[MG_CONFIG_LINE_MAX + 1];
    if (config_parse_value(p, eq + 1, len - (size_t)(eq + 1 - s), value) < 0)
        return -1;

    if (!config_seen_add(&p->seen, p->section, keybuf)) {
        char reason[MG_CONFIG_LINE_MAX + 64];
        snprintf(reason, sizeof(reason), "'%.100s' given twice%s%.100s%s", keybuf,
                 p->section[0] ? " in [" : "", p->section, p->section[0] ? "]" : "");
        return config_error(p, reason);
    }

    struct mg_config_entry entry = {
        .file = p->file,
        .line = p->line,
        .section = p->section,
        .key = keybuf,
        .value = value,
    };
    const char *reason = "invalid setting";
    if (cb(&entry, ctx, &reason) != 0)
        return config_error(p, reason);
    return 0;
}

int mg_config_parse(const char *text, size_t len, const char *file,
                    mg_config_entry_cb *cb, void *ctx, char **error_r)
{
    struct config_parser p = { .file = file, .line = 0, .error_r = error_r };
    p.section[0] = '\0';
    int ret = 0;
    size_t pos = 0;
    while (pos < len && ret == 0) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t llen = end - pos;
        if (llen > 0 && text[pos + llen - 1] == '\r')
            llen--;
        if (llen > MG_CONFIG_LINE_MAX)
            ret = config_error(&p, "line too long");
        else if (memchr(text + pos, '\0', llen) != NULL)
            ret = config_error(&p, "NUL byte in line");
        else if (!mg_utf8_is_valid(text + pos, llen))
            ret = config_error(&p, "line is not valid UTF-8");
        else
            ret = config_parse_line(&p, text + pos, llen, cb, ctx);
        pos = end + 1;
    }
    config_seen_free(&p.seen);
    return ret;
}

int mg_config_parse_file(const char *path, mg_config_entry_cb *cb, void *ctx,
                         char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = mg_asprintf("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error_r = mg_asprintf("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > MG_CONFIG_FILE_MAX) {
        *error_r = mg_asprintf("%s: file too large (limit %d bytes)", path, MG_CONFIG_FILE_MAX);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *text = mg_malloc(size + 1);
    size_t got;
    int r = mg_fd_pread_all(fd, text, size, 0, &got);
    close(fd);
    if (r != 0) {
        *error_r = mg_asprintf("%s: cannot read: %s", path, strerror(-r));
        free(text);
        return -1;
    }
    int ret = mg_config_parse(text, got, path, cb, ctx, error_r);
    free(text);
    return ret;
}
