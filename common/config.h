/* The configuration file syntax, shared by every Mailgenic program.
 *
 *   # a comment line
 *   hostname = smtp.example.com      # text after " #" is a comment
 *
 *   [imap]
 *   listen = 0.0.0.0:993, [::]:993
 *   banner = "value with  # kept"    # double quotes keep spaces and '#'
 *
 * Keys are [a-z0-9_]+; keys before the first [section] belong to the
 * global section "". A value is the rest of the line with surrounding
 * blanks removed; inside double quotes \" and \\ are the only escapes.
 * Lines are at most MG_CONFIG_LINE_MAX bytes, the text must be UTF-8
 * without NUL bytes, and a key appears at most once per section.
 *
 * This module only tokenises; what keys exist and what values mean is
 * common/settings.c. */
#ifndef MG_COMMON_CONFIG_H
#define MG_COMMON_CONFIG_H

#include <stddef.h>

#define MG_CONFIG_LINE_MAX 4096
#define MG_CONFIG_FILE_MAX (1024 * 1024)

struct mg_config_entry {
    const char *file;
    unsigned line;
    const char *section; /* "" for the global section */
    const char *key;
    const char *value;
};

/* Called for each key = value; returning non-zero stops the parse. The
 * callback reports its reason through *error_r (static text or text that
 * stays valid until the parse returns); the parser prefixes file:line. */
typedef int mg_config_entry_cb(const struct mg_config_entry *entry, void *ctx,
                               const char **error_r);

/* Parses text. Returns 0, or -1 with "file:line: reason" in *error_r
 * (allocated; the caller frees it). */
int mg_config_parse(const char *text, size_t len, const char *file,
                    mg_config_entry_cb *cb, void *ctx, char **error_r);

/* Reads and parses a file (at most MG_CONFIG_FILE_MAX bytes). */
int mg_config_parse_file(const char *path, mg_config_entry_cb *cb, void *ctx,
                         char **error_r);

#endif
