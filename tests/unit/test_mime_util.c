/* Helpers for the mda/mime tests, and their own test:
 *  - a small JSON reader (the expected results in tests/data/corpora are
 *    JSON);
 *  - a strict reader of IMAP data (lists, NIL, numbers, quoted strings,
 *    literals) with a checker of the RFC 3501 BODY/BODYSTRUCTURE grammar;
 *  - file helpers.
 *
 * Other test programs include this file with TEST_MIME_UTIL_LIB defined to
 * get the helpers without this file's main(). */
#ifndef TEST_MIME_UTIL_C
#define TEST_MIME_UTIL_C

#include "testutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/utf8.h"

#define TJ_UNUSED __attribute__((unused))

enum tj_type { TJ_NULL, TJ_BOOL, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };

struct tj {
    enum tj_type type;
    bool b;
    double num;
    char *str; /* TJ_STR: NUL-terminated, may contain NULs (see len) */
    size_t len;
    struct tj **items; /* TJ_ARR, TJ_OBJ values */
    char **keys;       /* TJ_OBJ */
    size_t count;
};

struct tj_reader {
    const char *p, *end;
    unsigned int depth;
};

static struct tj *tj_value(struct tj_reader *r);

static void tj_ws(struct tj_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int tj_hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        *v <<= 4;
        if (c >= '0' && c <= '9')
            *v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            *v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

static char *tj_string(struct tj_reader *r, size_t *len_r)
{
    struct mg_buf b = MG_BUF_INIT;

    r->p++; /* '"' */
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c != '\\') {
            mg_buf_append_byte(&b, c);
            continue;
        }
        if (r->p >= r->end)
            goto fail;
        c = *r->p++;
        switch (c) {
        case 'n': mg_buf_append_byte(&b, '\n'); break;
        case 'r': mg_buf_append_byte(&b, '\r'); break;
        case 't': mg_buf_append_byte(&b, '\t'); break;
        case 'b': mg_buf_append_byte(&b, '\b'); break;
        case 'f': mg_buf_append_byte(&b, '\f'); break;
        case 'u': {
            uint32_t cp, lo;
            if (r->end - r->p < 4 || tj_hex4(r->p, &cp) < 0)
                goto fail;
            r->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && r->end - r->p >= 6 &&
                r->p[0] == '\\' && r->p[1] == 'u' && tj_hex4(r->p + 2, &lo) == 0 &&
                lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->p += 6;
            }
            char enc[4];
            size_t n = mg_utf8_encode(cp, enc);
            if (n == 0)
                goto fail;
            mg_buf_append(&b, enc, n);
            break;
        }
        default: mg_buf_append_byte(&b, c); break;
        }
    }
    if (r->p >= r->end)
        goto fail;
    r->p++;
    return mg_buf_steal(&b, len_r);
fail:
    mg_buf_free(&b);
    return NULL;
}

static TJ_UNUSED void tj_free(struct tj *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->count; i++) {
        tj_free(v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static struct tj *tj_container(struct tj_reader *r, bool object)
{
    struct tj *v = mg_calloc(1, sizeof(*v));
    size_t cap = 0;

    v->type = object ? TJ_OBJ : TJ_ARR;
    r->p++;
    tj_ws(r);
    if (r->p < r->end && *r->p == (object ? '}' : ']')) {
        r->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        tj_ws(r);
        if (object) {
            size_t klen;
            if (r->p >= r->end || *r->p != '"' || (key = tj_string(r, &klen)) == NULL)
                goto fail;
            tj_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                free(key);
                goto fail;
            }
            r->p++;
        }
        struct tj *item = tj_value(r);
        if (item == NULL) {
            free(key);
            goto fail;
        }
        if (v->count == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            v->items = mg_reallocarray(v->items, cap, sizeof(*v->items));
            if (object)
                v->keys = mg_reallocarray(v->keys, cap, sizeof(*v->keys));
        }
        v->items[v->count] = item;
        if (object)
            v->keys[v->count] = key;
        v->count++;
        tj_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == (object ? '}' : ']')) {
            r->p++;
            return v;
        }
        goto fail;
    }
fail:
    tj_free(v);
    return NULL;
}

static struct tj *tj_value(struct tj_reader *r)
{
    tj_ws(r);
    if (r->p >= r->end || r->depth > 200)
        return NULL;
    char c = *r->p;
    struct tj *v;
    if (c == '{' || c == '[') {
        r->depth++;
        v = tj_container(r, c == '{');
        r->depth--;
        return v;
    }
    v = mg_calloc(1, sizeof(*v));
    if (c == '"') {
        v->type = TJ_STR;
        if ((v->str = tj_string(r, &v->len)) == NULL) {
            free(v);
            return NULL;
        }
    } else if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
        v->type = TJ_NULL;
        r->p += 4;
    } else if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
        v->type = TJ_BOOL;
        v->b = true;
        r->p += 4;
    } else if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
        v->type = TJ_BOOL;
        r->p += 5;
    } else {
        char *endp;
        char tmp[64];
        size_t n = (size_t)(r->end - r->p) < sizeof(tmp) - 1 ? (size_t)(r->end - r->p) : sizeof(tmp) - 1;
        memcpy(tmp, r->p, n);
        tmp[n] = '\0';
        v->type = TJ_NUM;
        v->num = strtod(tmp, &endp);
        if (endp == tmp) {
            free(v);
            return NULL;
        }
        r->p += endp - tmp;
    }
    return v;
}

/* Parses a whole JSON text; NULL on a syntax error. */
static TJ_UNUSED struct tj *tj_parse(const char *text, size_t len)
{
    struct tj_reader r = { text, text + len, 0 };
    struct tj *v = tj_value(&r);
    tj_ws(&r);
    if (v != NULL && r.p != r.end) {
        tj_free(v);
        return NULL;
    }
    return v;
}

/* Member of an object, or NULL. */
static TJ_UNUSED const struct tj *tj_get(const struct tj *obj, const char *key)
{
    if (obj == NULL || obj->type != TJ_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->count; i++) {
        if (strcmp(obj->keys[i], key) == 0)
            return obj->items[i];
    }
    return NULL;
}

/* The string, or NULL for anything else (null included). */
static TJ_UNUSED const char *tj_str(const struct tj *v)
{
    return v != NULL && v->type == TJ_STR ? v->str : NULL;
}

static TJ_UNUSED bool tj_is_null(const struct tj *v)
{
    return v == NULL || v->type == TJ_NULL;
}

static TJ_UNUSED long tj_long(const struct tj *v)
{
    return v != NULL && v->type == TJ_NUM ? (long)v->num : -1;
}

/*
 * IMAP data
 */

enum ti_type { TI_NIL, TI_NUMBER, TI_ATOM, TI_STRING, TI_LIST };

struct ti {
    enum ti_type type;
    char *str; /* TI_ATOM, TI_STRING, TI_NUMBER: content */
    size_t len;
    bool literal;
    struct ti **items; /* TI_LIST */
    size_t count;
};

static TJ_UNUSED void ti_free(struct ti *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->count; i++)
        ti_free(v->items[i]);
    free(v->items);
    free(v->str);
    free(v);
}

struct ti_reader {
    const char *p, *end;
    const char *error;
    unsigned int depth;
};

static struct ti *ti_item(struct ti_reader *r);

static void ti_append(struct ti *list, struct ti *item)
{
    list->items = mg_reallocarray(list->items, list->count + 1, sizeof(*list->items));
    list->items[list->count++] = item;
}

/* Items separated by one SP (none between ")" and "("), up to end or ')'. */
static bool ti_items(struct ti_reader *r, struct ti *list, bool in_list)
{
    bool first = true;
    while (r->p < r->end && !(in_list && *r->p == ')')) {
        if (!first) {
            if (*r->p == ' ') {
                r->p++;
            } else if (!(*r->p == '(' && r->p[-1] == ')')) {
                r->error = "missing space between items";
                return false;
            }
        }
        struct ti *item = ti_item(r);
        if (item == NULL)
            return false;
        ti_append(list, item);
        first = false;
    }
    if (!first && r->p[-1] == ' ') {
        r->error = "trailing space";
        return false;
    }
    return true;
}

static struct ti *ti_item(struct ti_reader *r)
{
    if (r->p >= r->end) {
        r->error = "unexpected end";
        return NULL;
    }
    struct ti *v = mg_calloc(1, sizeof(*v));
    char c = *r->p;
    if (c == '(') {
        if (++r->depth > 1000) {
            r->error = "too deep";
            goto fail;
        }
        r->p++;
        v->type = TI_LIST;
        if (!ti_items(r, v, true))
            goto fail;
        if (r->p >= r->end || *r->p != ')') {
            r->error = "unbalanced parentheses";
            goto fail;
        }
        r->p++;
        r->depth--;
    } else if (c == '"') {
        struct mg_buf b = MG_BUF_INIT;
        r->p++;
        for (;;) {
            if (r->p >= r->end) {
                r->error = "unterminated quoted string";
                mg_buf_free(&b);
                goto fail;
            }
            unsigned char q = (unsigned char)*r->p++;
            if (q == '"')
                break;
            if (q == '\r' || q == '\n' || q == '\0' || q >= 0x80) {
                r->error = "CR, LF, NUL or 8-bit in quoted string";
                mg_buf_free(&b);
                goto fail;
            }
            if (q == '\\') {
                if (r->p >= r->end || (*r->p != '"' && *r->p != '\\')) {
                    r->error = "bad escape in quoted string";
                    mg_buf_free(&b);
                    goto fail;
                }
                q = (unsigned char)*r->p++;
            }
            mg_buf_append_byte(&b, (char)q);
        }
        mg_buf_reserve(&b, 0);
        v->type = TI_STRING;
        v->str = mg_buf_steal(&b, &v->len);
    } else if (c == '{') {
        size_t n = 0;
        r->p++;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            n = n * 10 + (size_t)(*r->p++ - '0');
        if (r->end - r->p < 3 || memcmp(r->p, "}\r\n", 3) != 0) {
            r->error = "bad literal header";
            goto fail;
        }
        r->p += 3;
        if ((size_t)(r->end - r->p) < n) {
            r->error = "literal longer than the data";
            goto fail;
        }
        if (memchr(r->p, '\0', n) != NULL) {
            r->error = "NUL in literal";
            goto fail;
        }
        v->type = TI_STRING;
        v->literal = true;
        v->str = mg_strndup(r->p, n);
        v->len = n;
        r->p += n;
    } else {
        const char *start = r->p;
        while (r->p < r->end && *r->p != ' ' && *r->p != '(' && *r->p != ')') {
            unsigned char a = (unsigned char)*r->p;
            if (a < 0x20 || a >= 0x7f || a == '"' || a == '{' || a == '\\') {
                r->error = "bad atom character";
                goto fail;
            }
            r->p++;
        }
        if (r->p == start) {
            r->error = "empty item";
            goto fail;
        }
        v->str = mg_strndup(start, (size_t)(r->p - start));
        v->len = (size_t)(r->p - start);
        if (v->len == 3 && memcmp(start, "NIL", 3) == 0) {
            v->type = TI_NIL;
        } else {
            v->type = TI_NUMBER;
            for (size_t i = 0; i < v->len; i++) {
                if (start[i] < '0' || start[i] > '9')
                    v->type = TI_ATOM;
            }
        }
    }
    return v;
fail:
    ti_free(v);
    return NULL;
}

/* Parses a sequence of items (as in a FETCH BODYSTRUCTURE value without its
 * outer parentheses) into a list; NULL with *error_r on bad syntax. */
static TJ_UNUSED struct ti *ti_parse(const char *text, size_t len, const char **error_r)
{
    struct ti_reader r = { text, text + len, NULL, 0 };
    struct ti *list = mg_calloc(1, sizeof(*list));
    list->type = TI_LIST;
    if (!ti_items(&r, list, false) || r.p != r.end) {
        *error_r = r.error != NULL ? r.error : "unbalanced parentheses";
        ti_free(list);
        return NULL;
    }
    return list;
}

static bool ti_is_string(const struct ti *v)
{
    return v->type == TI_STRING;
}

static bool ti_is_nstring(const struct ti *v)
{
    return v->type == TI_STRING || v->type == TI_NIL;
}

static bool ti_str_is(const struct ti *v, const char *s)
{
    return v->type == TI_STRING && v->len == strlen(s) && strncasecmp(v->str, s, v->len) == 0;
}

static const char *ti_check_params(const struct ti *v)
{
    if (v->type == TI_NIL)
        return NULL;
    if (v->type != TI_LIST || v->count == 0 || v->count % 2 != 0)
        return "bad body-fld-param";
    for (size_t i = 0; i < v->count; i++) {
        if (!ti_is_string(v->items[i]))
            return "body-fld-param item is not a string";
    }
    return NULL;
}

static const char *ti_check_addresses(const struct ti *v)
{
    if (v->type == TI_NIL)
        return NULL;
    if (v->type != TI_LIST || v->count == 0)
        return "bad address list";
    for (size_t i = 0; i < v->count; i++) {
        const struct ti *a = v->items[i];
        if (a->type != TI_LIST || a->count != 4)
            return "bad address";
        for (size_t j = 0; j < 4; j++) {
            if (!ti_is_nstring(a->items[j]))
                return "address field is not an nstring";
        }
    }
    return NULL;
}

static TJ_UNUSED const char *ti_check_envelope(struct ti *const *f, size_t count)
{
    if (count != 10)
        return "envelope needs 10 fields";
    if (!ti_is_nstring(f[0]) || !ti_is_nstring(f[1]) || !ti_is_nstring(f[8]) ||
        !ti_is_nstring(f[9]))
        return "envelope string field is not an nstring";
    for (size_t i = 2; i < 8; i++) {
        const char *err = ti_check_addresses(f[i]);
        if (err != NULL)
            return err;
    }
    return NULL;
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc, from f[0] on. */
static const char *ti_check_ext_common(struct ti *const *f, size_t n)
{
    if (n >= 1 && f[0]->type != TI_NIL) {
        if (f[0]->type != TI_LIST || f[0]->count != 2 || !ti_is_string(f[0]->items[0]))
            return "bad body-fld-dsp";
        const char *err = ti_check_params(f[0]->items[1]);
        if (err != NULL)
            return err;
    }
    if (n >= 2 && !ti_is_nstring(f[1])) {
        if (f[1]->type != TI_LIST || f[1]->count == 0)
            return "bad body-fld-lang";
        for (size_t i = 0; i < f[1]->count; i++) {
            if (!ti_is_string(f[1]->items[i]))
                return "body-fld-lang item is not a string";
        }
    }
    if (n >= 3 && !ti_is_nstring(f[2]))
        return "bad body-fld-loc";
    return NULL;
}

/* Checks the fields of one body (the content of its parentheses). */
static TJ_UNUSED const char *ti_check_body(const struct ti *body, bool extended)
{
    struct ti *const *f = body->items;
    size_t n = body->count, i = 0;
    const char *err;

    if (n == 0)
        return "empty body";
    if (f[0]->type == TI_LIST) {
        while (i < n && f[i]->type == TI_LIST) {
            if ((err = ti_check_body(f[i], extended)) != NULL)
                return err;
            i++;
        }
        if (i >= n || !ti_is_string(f[i]))
            return "multipart without subtype";
        i++;
        if (!extended)
            return i == n ? NULL : "extension data in BODY";
        if (i >= n)
            return NULL;
        if ((err = ti_check_params(f[i])) != NULL)
            return err;
        return ti_check_ext_common(f + i + 1, n - i - 1);
    }
    if (n < 7)
        return "too few body fields";
    if (!ti_is_string(f[0]) || !ti_is_string(f[1]))
        return "media type is not a string";
    if ((err = ti_check_params(f[2])) != NULL)
        return err;
    if (!ti_is_nstring(f[3]) || !ti_is_nstring(f[4]) || !ti_is_string(f[5]))
        return "bad body-fld-id/desc/enc";
    if (f[6]->type != TI_NUMBER)
        return "body-fld-octets is not a number";
    i = 7;
    if (ti_str_is(f[0], "text")) {
        if (i >= n || f[i]->type != TI_NUMBER)
            return "text body without lines";
        i++;
    } else if (ti_str_is(f[0], "message") &&
               (ti_str_is(f[1], "rfc822") ||
                /* IMAP4rev2 (RFC 9051) message/global */
                (ti_str_is(f[1], "global") && n >= 10 && f[7]->type == TI_LIST))) {
        if (n < 10 || f[7]->type != TI_LIST || f[8]->type != TI_LIST ||
            f[9]->type != TI_NUMBER)
            return "bad message/rfc822 body";
        if ((err = ti_check_envelope(f[7]->items,
                                     f[7]->count)) != NULL)
            return err;
        if ((err = ti_check_body(f[8], extended)) != NULL)
            return err;
        i = 10;
    }
    if (!extended)
        return i == n ? NULL : "extension data in BODY";
    if (i < n && !ti_is_nstring(f[i]))
        return "bad body-fld-md5";
    if (i >= n)
        return NULL;
    return ti_check_ext_common(f + i + 1, n - i - 1);
}

/* Reads a file of the source tree (path relative to its top); fails the
 * test when it is missing. */
static TJ_UNUSED char *read_source_file(const char *rel, size_t *len_r)
{
    char *path = testutil_source_path(rel);
    char *data = testutil_read_file(path, len_r);
    if (data == NULL)
        fail_msg("cannot read %s", path);
    free(path);
    return data;
}

/* Parses a JSON file of the source tree; fails the test on error. */
static TJ_UNUSED struct tj *read_json_file(const char *rel)
{
    size_t len;
    char *text = read_source_file(rel, &len);
    struct tj *v = tj_parse(text, len);
    if (v == NULL)
        fail_msg("%s: bad JSON", rel);
    free(text);
    return v;
}

#endif /* TEST_MIME_UTIL_C */

#ifndef TEST_MIME_UTIL_LIB

static void test_json_reader(void **state)
{
    (void)state;
    static const char text[] =
        "{\"a\": [1, -2.5, true, false, null], \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\u0000y\","
        " \"o\": {\"k\": \"v\"}, \"e\": [], \"f\": {}}";
    struct tj *v = tj_parse(text, sizeof(text) - 1);
    assert_non_null(v);
    const struct tj *a = tj_get(v, "a");
    assert_int_equal(a->count, 5);
    assert_int_equal(tj_long(a->items[0]), 1);
    assert_true(a->items[1]->num == -2.5);
    assert_true(a->items[2]->b);
    assert_true(tj_is_null(a->items[4]));
    const struct tj *s = tj_get(v, "s");
    assert_int_equal(s->len, 10);
    assert_memory_equal(s->str, "x\n\xc3\xa9\xf0\x9f\x98\x80\0y", 10);
    assert_string_equal(tj_str(tj_get(tj_get(v, "o"), "k")), "v");
    assert_int_equal(tj_get(v, "e")->count, 0);
    assert_null(tj_get(v, "missing"));
    tj_free(v);

    static const char *const bad[] = { "", "[", "{\"a\" 1}", "[1,]", "\"abc", "[1] x", "tru" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(tj_parse(bad[i], strlen(bad[i])));
}

static void test_imap_reader(void **state)
{
    (void)state;
    static const char *const good[] = {
        "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1",
        "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)(\"text\" \"html\" NIL NIL NIL \"7bit\" 0 0) \"mixed\"",
        "\"a\\\"b\" {3}\r\nx\"y ()",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *err = NULL;
        struct ti *v = ti_parse(good[i], strlen(good[i]), &err);
        assert_non_null(v);
        ti_free(v);
    }
    const char *err = NULL;
    struct ti *v = ti_parse(good[0], strlen(good[0]), &err);
    assert_null(ti_check_body(v, false));
    ti_free(v);
    v = ti_parse(good[1], strlen(good[1]), &err);
    assert_null(ti_check_body(v, false));
    ti_free(v);

    static const char *const bad[] = {
        "(", ")", "\"abc", "{5}\r\nab", "a  b", "(a) ", "\"a\nb\"", "\"\\x\"", "a(b)",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        v = ti_parse(bad[i], strlen(bad[i]), &err);
        if (v != NULL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_imap_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
