/* The MIME parser and decoders against the expected parses of the
 * stalwart-mail-parser corpus (tests/data/corpora/stalwart-mail-parser,
 * resources/eml: 107 messages, Apache-2.0 OR MIT, see its SOURCE).
 *
 * Every message is parsed twice: with LF line endings (offsets from the
 * .json file) and with CRLF (offsets from .crlf.json). Checked exactly, for
 * every part: header start, body start and body end offsets; number of
 * children; type/subtype; the charset, boundary and name parameters and the
 * disposition filename (decoded); decoded Subject; From/To/Cc addresses
 * (decoded display name and address); decoded text of text/ * parts; the
 * transfer-decoded bytes of other leaves.
 *
 * Where stalwart's choices differ from Dovecot's (whose semantics IMAP needs
 * here) the message is listed in skips[] below with the reason; for those
 * only the checks that are not skipped run (for SKIP_STRUCT: the values of
 * the top-level header). */
#define TEST_MIME_UTIL_LIB
#include "test_mime_util.c"

#include <dirent.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_header.h"
#include "mda/mime/mime_parser.h"
#include "mda/mime/mime_text.h"

#define EML_DIR "tests/data/corpora/stalwart-mail-parser/resources/eml/"

enum skip_what {
    SKIP_STRUCT = 1 << 0, /* offsets and part structure */
    SKIP_TEXT = 1 << 1,   /* decoded text of text parts */
    SKIP_ADDR = 1 << 2,   /* address lists */
    ONLY_LF = 1 << 3,     /* the skip applies to the LF variant only */
    ONLY_CRLF = 1 << 4,   /* ... to the CRLF variant only */
};

static const struct skip {
    const char *file;
    unsigned int what;
    const char *why;
} skips[] = {
    { "legacy/049.eml", SKIP_STRUCT | SKIP_TEXT | ONLY_LF,
      "ends in a bare CR, which stalwart leaves out of the body" },
    { "malformed/000.eml", SKIP_STRUCT,
      "boundary lines inside MIME headers end the header (Dovecot's truncated-header rule)" },
    { "malformed/001.eml", SKIP_STRUCT,
      "a boundary line right after a header's blank line takes that blank line as its line "
      "break, and an inner multipart cut there has no parts (Dovecot)" },
    { "malformed/004.eml", SKIP_STRUCT,
      "\"--ab\" is a boundary line of \"a\": only the start of the line must match (RFC 2046, Dovecot)" },
    { "malformed/005.eml", SKIP_STRUCT,
      "boundaries ending in \"--\" (\"a--\", \"a----\"): the closing dashes are taken off before "
      "matching, as Dovecot does" },
    { "malformed/007.eml", SKIP_STRUCT,
      "an inner header cut by a boundary: the following boundary lines belong to the outer part (Dovecot)" },
    { "malformed/008.eml", SKIP_STRUCT,
      "of several matching boundaries the longest wins (\"--ab\" ends the inner \"a\"), as in Dovecot" },
    { "malformed/009.eml", SKIP_STRUCT,
      "the boundary of an enclosing multipart ends an inner multipart that lacks its close delimiter" },
    { "malformed/011.eml", SKIP_STRUCT,
      "the boundary of an enclosing multipart ends an inner multipart that lacks its close delimiter" },
    { "malformed/012.eml", SKIP_STRUCT,
      "the boundary of an enclosing multipart ends an inner multipart that lacks its close delimiter" },
    { "malformed/013.eml", SKIP_STRUCT,
      "nested multiparts with the same boundary: the innermost one gets the boundary lines (Dovecot)" },
    { "malformed/014.eml", SKIP_STRUCT,
      "a boundary line at the very end still starts an (empty) part, as in Dovecot" },
    { "malformed/016.eml", SKIP_STRUCT,
      "boundaries are cut to 80 characters (Dovecot), and the rest of a boundary line is not part of "
      "the next header" },
    { "malformed/019.eml", SKIP_STRUCT | SKIP_TEXT,
      "a boundary right after a header's blank line takes the blank line (Dovecot); 8-bit bytes in a "
      "us-ascii part are read as UTF-8 (U+FFFD), not as Latin-1" },
    { "malformed/020.eml", SKIP_STRUCT,
      "the first Content-Type field counts (Dovecot), stalwart takes the last" },
    { "malformed/021.eml", SKIP_STRUCT,
      "the first Content-Type field counts (Dovecot), stalwart takes the last" },
    { "malformed/022.eml", SKIP_STRUCT,
      "a message/rfc822 part that is no message is still parsed as one (Dovecot); stalwart makes it text" },
    { "rfc/000.eml", SKIP_TEXT | SKIP_ADDR,
      "\"base64\" parts that hold plain text are decoded as base64 (stalwart shows them raw); "
      "\"From: (comment)\" has no address" },
    { "rfc/001.eml", SKIP_ADDR, "a bare word is a mailbox without domain (Dovecot), not a name" },
    { "rfc/002.eml", SKIP_ADDR, "a comment after <addr> is not part of the display name (Dovecot)" },
    { "rfc/004.eml", SKIP_ADDR, "a bare word is a mailbox without domain (Dovecot), not a name" },
    { "rfc/008.eml", SKIP_STRUCT,
      "a base64-encoded message/rfc822 is not decoded: offsets point into the raw data (Dovecot too)" },
    { "rfc/009.eml", SKIP_ADDR, "a display name without address is a mailbox without domain (Dovecot)" },
    { "thirdparty/002.eml", SKIP_TEXT,
      "text with bytes invalid in its charset: one U+FFFD per byte here, per sequence in stalwart" },
    { "thirdparty/005.eml", SKIP_STRUCT | SKIP_TEXT,
      "\"--1--\" in the middle of a line is no boundary; a binary UTF-16 part changes under LF->CRLF" },
    { "thirdparty/007.eml", SKIP_STRUCT,
      "the line break after a close delimiter belongs to the closed multipart (Dovecot)" },
    { "thirdparty/008.eml", SKIP_STRUCT,
      "the line break after a close delimiter belongs to the closed multipart (Dovecot)" },
    { "thirdparty/011.eml", SKIP_STRUCT,
      "a boundary right after a header's blank line takes the blank line (Dovecot)" },
    { "thirdparty/015.eml", SKIP_STRUCT,
      "attached messages whose header is cut by the outer boundary end there (Dovecot)" },
};

static unsigned int skips_for(const char *file, bool crlf)
{
    for (size_t i = 0; i < sizeof(skips) / sizeof(skips[0]); i++) {
        if (strcmp(skips[i].file, file) != 0)
            continue;
        unsigned int w = skips[i].what;
        if ((w & ONLY_LF) != 0 && crlf)
            return 0;
        if ((w & ONLY_CRLF) != 0 && !crlf)
            return 0;
        return w;
    }
    return 0;
}

struct check_ctx {
    const char *file;
    const char *variant;
    const char *data;
    unsigned int skip;
    unsigned int parts_checked;
    struct mg_buf buf;
};

#define CHECK(ctx, cond, ...)                                                       \
    do {                                                                            \
        if (!(cond)) {                                                              \
            print_error("%s (%s): ", (ctx)->file, (ctx)->variant);                  \
            fail_msg(__VA_ARGS__);                                                  \
        }                                                                           \
    } while (0)

static const struct tj *st_header(const struct tj *part, const char *name)
{
    const struct tj *headers = tj_get(part, "headers");
    for (size_t i = 0; headers != NULL && i < headers->count; i++) {
        const char *n = tj_str(tj_get(headers->items[i], "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return tj_get(headers->items[i], "value");
    }
    return NULL;
}

/* An attribute of a ContentType value; its list holds {"name","value"}
 * objects or [name, value] pairs. */
static const char *st_attr(const struct tj *ct, const char *name)
{
    const struct tj *attrs = tj_get(ct, "attributes");
    for (size_t i = 0; attrs != NULL && attrs->type == TJ_ARR && i < attrs->count; i++) {
        const struct tj *a = attrs->items[i];
        const char *n = a->type == TJ_ARR ? tj_str(a->items[0]) : tj_str(tj_get(a, "name"));
        const char *v = a->type == TJ_ARR ? tj_str(a->items[1]) : tj_str(tj_get(a, "value"));
        if (n != NULL && mg_ascii_strcasecmp(n, name) == 0)
            return v;
    }
    return NULL;
}

static void check_str(struct check_ctx *ctx, const char *what, const char *want,
                      const char *got)
{
    if (want == NULL)
        return;
    CHECK(ctx, got != NULL && strcmp(want, got) == 0, "%s: want \"%s\", got \"%s\"", what,
          want, got != NULL ? got : "(none)");
}

static void check_addresses(struct check_ctx *ctx, const struct mime_part *part,
                            const struct tj *value, const char *field)
{
    const struct tj *addr = tj_get(value, "Address");
    if (addr == NULL || (ctx->skip & SKIP_ADDR) != 0)
        return;

    /* stalwart's list, groups flattened */
    const struct tj *want[64];
    size_t nwant = 0;
    const struct tj *list = tj_get(addr, "List");
    if (list != NULL) {
        for (size_t i = 0; i < list->count && nwant < 64; i++)
            want[nwant++] = list->items[i];
    } else {
        const struct tj *groups = tj_get(addr, "Group");
        for (size_t g = 0; groups != NULL && g < groups->count; g++) {
            const struct tj *members = tj_get(groups->items[g], "addresses");
            for (size_t i = 0; members != NULL && i < members->count && nwant < 64; i++)
                want[nwant++] = members->items[i];
        }
    }

    struct mime_header_field f;
    CHECK(ctx, mime_header_find(ctx->data, part->header_start, part->header_end, field, &f),
          "no %s field", field);
    struct mg_arena *arena = mg_arena_new(0);
    size_t i = 0;
    for (const struct mime_address *a = mime_address_parse(arena, f.value, f.value_len, 0);
         a != NULL; a = a->next) {
        if (a->domain == NULL)
            continue; /* group markers */
        CHECK(ctx, i < nwant, "%s: more addresses than expected", field);
        const char *want_name = tj_str(tj_get(want[i], "name"));
        const char *want_addr = tj_str(tj_get(want[i], "address"));
        mg_buf_reset(&ctx->buf);
        if (a->name != NULL)
            mime_encword_decode(a->name, strlen(a->name), &ctx->buf);
        CHECK(ctx, (want_name == NULL) == (a->name == NULL) &&
                   (want_name == NULL || strcmp(want_name, mg_buf_cstr(&ctx->buf)) == 0),
              "%s name: want \"%s\", got \"%s\"", field, want_name != NULL ? want_name : "NULL",
              a->name != NULL ? mg_buf_cstr(&ctx->buf) : "NULL");
        mg_buf_reset(&ctx->buf);
        if (a->domain[0] == '\0')
            mg_buf_append_str(&ctx->buf, a->mailbox); /* "undisclosed-recipients" */
        else
            mg_buf_printf(&ctx->buf, "%s@%s", a->mailbox, a->domain);
        CHECK(ctx, want_addr != NULL && strcmp(want_addr, mg_buf_cstr(&ctx->buf)) == 0,
              "%s address: want \"%s\", got \"%s\"", field, want_addr != NULL ? want_addr : "NULL",
              mg_buf_cstr(&ctx->buf));
        i++;
    }
    CHECK(ctx, i == nwant, "%s: %zu addresses, expected %zu", field, i, nwant);
    mg_arena_free(&arena);
}

/* Values from the part's own header. */
static void check_header_values(struct check_ctx *ctx, const struct tj *st,
                                const struct mime_part *part)
{
    const struct tj *ct = tj_get(st_header(st, "content_type"), "ContentType");
    if (ct != NULL && tj_str(tj_get(ct, "c_subtype")) != NULL) {
        mg_buf_reset(&ctx->buf);
        mg_buf_append_str(&ctx->buf, tj_str(tj_get(ct, "c_type")));
        mg_ascii_lower(ctx->buf.data, ctx->buf.len);
        check_str(ctx, "type", mg_buf_cstr(&ctx->buf), part->type);
        mg_buf_reset(&ctx->buf);
        mg_buf_append_str(&ctx->buf, tj_str(tj_get(ct, "c_subtype")));
        mg_ascii_lower(ctx->buf.data, ctx->buf.len);
        check_str(ctx, "subtype", mg_buf_cstr(&ctx->buf), part->subtype);
        static const char *const names[] = { "charset", "boundary", "name" };
        for (size_t i = 0; i < 3; i++)
            check_str(ctx, names[i], st_attr(ct, names[i]), mime_part_param(part, names[i]));
    }
    const struct tj *cd = tj_get(st_header(st, "content_disposition"), "ContentType");
    if (cd != NULL) {
        check_str(ctx, "filename", st_attr(cd, "filename"),
                  mime_param_get(part->disposition_params, part->disposition_param_count,
                                 "filename"));
    }
    const char *subject = tj_str(tj_get(st_header(st, "subject"), "Text"));
    if (subject != NULL) {
        mg_buf_reset(&ctx->buf);
        CHECK(ctx, mime_header_get_decoded(ctx->data, part->header_start, part->header_end,
                                           "Subject", &ctx->buf), "no Subject");
        check_str(ctx, "subject", subject, mg_buf_cstr(&ctx->buf));
    }
    static const char *const addr_fields[][2] = { { "from", "From" }, { "to", "To" }, { "cc", "Cc" } };
    for (size_t i = 0; i < 3; i++) {
        const struct tj *v = st_header(st, addr_fields[i][0]);
        if (v != NULL)
            check_addresses(ctx, part, v, addr_fields[i][1]);
    }
}

static void check_message(struct check_ctx *ctx, const struct tj *msg,
                          const struct mime_part *root);

static void check_part(struct check_ctx *ctx, const struct tj *parts, size_t index,
                       const struct mime_part *part)
{
    CHECK(ctx, index < parts->count, "bad part index %zu", index);
    const struct tj *st = parts->items[index];
    ctx->parts_checked++;

    CHECK(ctx, tj_long(tj_get(st, "offset_header")) == (long)part->header_start &&
               tj_long(tj_get(st, "offset_body")) == (long)part->header_end &&
               tj_long(tj_get(st, "offset_end")) == (long)part->body_end,
          "offsets of part %zu: want %ld %ld %ld, got %zu %zu %zu", index,
          tj_long(tj_get(st, "offset_header")), tj_long(tj_get(st, "offset_body")),
          tj_long(tj_get(st, "offset_end")), part->header_start, part->header_end,
          part->body_end);
    check_header_values(ctx, st, part);

    const struct tj *body = tj_get(st, "body");
    CHECK(ctx, body != NULL && body->type == TJ_OBJ && body->count == 1, "bad body");
    const char *kind = body->keys[0];
    const struct tj *v = body->items[0];
    if (strcmp(kind, "Multipart") == 0) {
        CHECK(ctx, (part->flags & MIME_PART_FLAG_MULTIPART) != 0, "part %zu is no multipart", index);
        const struct mime_part *c = part->children;
        for (size_t i = 0; i < v->count; i++, c = c->next) {
            CHECK(ctx, c != NULL, "part %zu: %zu children expected", index, v->count);
            check_part(ctx, parts, (size_t)tj_long(v->items[i]), c);
        }
        CHECK(ctx, c == NULL, "part %zu: more than %zu children", index, v->count);
    } else if (strcmp(kind, "Message") == 0) {
        CHECK(ctx, (part->flags & MIME_PART_FLAG_MESSAGE) != 0 && part->children != NULL,
              "part %zu is no message", index);
        check_message(ctx, v, part->children);
    } else {
        CHECK(ctx, part->children == NULL, "part %zu has children", index);
        mg_buf_reset(&ctx->buf);
        if (strcmp(kind, "Text") == 0 || strcmp(kind, "Html") == 0) {
            if ((ctx->skip & SKIP_TEXT) != 0)
                return;
            mime_text_decode_part(part, ctx->data, &ctx->buf);
            CHECK(ctx, v->len == ctx->buf.len && memcmp(v->str, ctx->buf.data, v->len) == 0,
                  "text of part %zu differs", index);
        } else {
            mime_transfer_decode(part->cte, ctx->data + part->header_end,
                                 part->body_end - part->header_end, &ctx->buf);
            CHECK(ctx, v->count == ctx->buf.len, "binary part %zu: %zu bytes, want %zu", index,
                  ctx->buf.len, v->count);
            for (size_t i = 0; i < v->count; i++) {
                CHECK(ctx, tj_long(v->items[i]) == (unsigned char)ctx->buf.data[i],
                      "binary part %zu differs at %zu", index, i);
            }
        }
    }
}

static void check_message(struct check_ctx *ctx, const struct tj *msg,
                          const struct mime_part *root)
{
    const struct tj *parts = tj_get(msg, "parts");
    CHECK(ctx, parts != NULL && parts->count > 0, "no parts");
    check_part(ctx, parts, 0, root);
}

static char *line_endings(const char *raw, size_t len, bool crlf, size_t *len_r)
{
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_reserve(&b, len * 2);
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')
            continue; /* CRLF -> LF first */
        if (raw[i] == '\n' && crlf)
            mg_buf_append_byte(&b, '\r');
        mg_buf_append_byte(&b, raw[i]);
    }
    return mg_buf_steal(&b, len_r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .eml files, "dir/name.eml", sorted. */
static size_t list_messages(char ***files_r)
{
    static const char *const dirs[] = { "legacy", "malformed", "rfc", "thirdparty" };
    char **files = NULL;
    size_t n = 0;
    for (size_t d = 0; d < 4; d++) {
        char *path = testutil_source_path(EML_DIR);
        char *dpath = mg_asprintf("%s%s", path, dirs[d]);
        DIR *dir = opendir(dpath);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
                continue;
            files = mg_reallocarray(files, n + 1, sizeof(*files));
            files[n++] = mg_asprintf("%s/%s", dirs[d], e->d_name);
        }
        closedir(dir);
        free(dpath);
        free(path);
    }
    qsort(files, n, sizeof(*files), cmp_str);
    *files_r = files;
    return n;
}

static void test_stalwart_eml(void **state)
{
    (void)state;
    char **files;
    size_t n = list_messages(&files);
    unsigned int parts_checked = 0;

    assert_int_equal(n, 107);
    for (size_t i = 0; i < n; i++) {
        char *rel = mg_asprintf(EML_DIR "%s", files[i]);
        size_t raw_len;
        char *raw = read_source_file(rel, &raw_len);
        for (int crlf = 0; crlf < 2; crlf++) {
            char *json_rel = mg_asprintf("%.*s%s", (int)(strlen(rel) - 4), rel,
                                         crlf ? ".crlf.json" : ".json");
            struct tj *expected = read_json_file(json_rel);
            size_t len;
            char *data = line_endings(raw, raw_len, crlf != 0, &len);
            struct mg_arena *arena = mg_arena_new(0);
            struct mime_part *root = mime_parser_parse(arena, data, len);
            struct check_ctx ctx = {
                .file = files[i], .variant = crlf ? "CRLF" : "LF", .data = data,
                .skip = skips_for(files[i], crlf != 0), .buf = MG_BUF_INIT,
            };
            if ((ctx.skip & SKIP_STRUCT) == 0) {
                check_message(&ctx, expected, root);
            } else {
                ctx.parts_checked++;
                check_header_values(&ctx, tj_get(expected, "parts")->items[0], root);
            }
            parts_checked += ctx.parts_checked;
            mg_buf_free(&ctx.buf);
            mg_arena_free(&arena);
            free(data);
            tj_free(expected);
            free(json_rel);
        }
        free(raw);
        free(rel);
        free(files[i]);
    }
    free(files);
    print_message("stalwart: %zu messages, %u parts compared (LF and CRLF)\n", n, parts_checked);
    assert_true(parts_checked >= 650);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalwart_eml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
