/* Header value parsing against the stalwart-mail-parser header vectors
 * (tests/data/corpora/stalwart-mail-parser/resources/{address,content_type,
 * date,unstructured}.json; Apache-2.0 OR MIT, see its SOURCE): RFC 2047
 * decoding, Content-Type and Content-Disposition with RFC 2231 parameters,
 * dates, address lists. Every vector of each file runs; the asserted fields
 * must match exactly. Vectors where stalwart's choice differs from ours on
 * purpose are listed with the reason (the test fails if such a vector
 * starts to match, so the list stays true). */
#define TEST_MIME_UTIL_LIB
#include "test_mime_util.c"

#include "common/arena.h"
#include "common/ascii.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_content.h"
#include "mda/mime/mime_date.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_header.h"

#define RES "tests/data/corpora/stalwart-mail-parser/resources/"

struct known_diff {
    size_t index;
    const char *why;
};

/* The header value as a header parser sees it: "X:" + the vector, one
 * field (a line break not followed by white space ends it). */
static void field_value(const char *header, size_t len, struct mg_buf *tmp,
                        const char **value_r, size_t *len_r)
{
    struct mime_header_field f;
    mg_buf_reset(tmp);
    mg_buf_append_str(tmp, "X:");
    mg_buf_append(tmp, header, len);
    mime_header_parse_field(tmp->data, tmp->len, 0, &f);
    *value_r = f.value;
    *len_r = f.value_len;
}

static const char *known_why(const struct known_diff *known, size_t n, size_t index)
{
    for (size_t i = 0; i < n; i++) {
        if (known[i].index == index)
            return known[i].why;
    }
    return NULL;
}

/* Runs check() over every vector; a mismatch fails unless listed, a listed
 * vector must mismatch. */
static void run_vectors(const char *file, const struct known_diff *known, size_t nknown,
                        bool (*check)(const struct tj *vec, struct mg_buf *why))
{
    struct tj *vectors = read_json_file(file);
    struct mg_buf why = MG_BUF_INIT;
    unsigned int failures = 0, matched = 0;

    for (size_t i = 0; i < vectors->count; i++) {
        mg_buf_reset(&why);
        bool ok = check(vectors->items[i], &why);
        const char *listed = known_why(known, nknown, i);
        if (ok && listed != NULL) {
            print_error("%s #%zu matches now; remove it from the known list\n", file, i);
            failures++;
        } else if (!ok && listed == NULL) {
            print_error("%s #%zu: %s\n", file, i, mg_buf_cstr(&why));
            failures++;
        } else if (ok) {
            matched++;
        }
    }
    print_message("%s: %zu vectors, %u match, %zu known differences\n", file,
                  vectors->count, matched, nknown);
    mg_buf_free(&why);
    tj_free(vectors);
    assert_int_equal(failures, 0);
}

/*
 * unstructured.json: RFC 2047 decoding
 */

static bool check_unstructured(const struct tj *vec, struct mg_buf *why)
{
    const struct tj *h = tj_get(vec, "header");
    const char *want = tj_str(tj_get(vec, "expected"));
    struct mg_buf tmp = MG_BUF_INIT, out = MG_BUF_INIT;
    const char *value;
    size_t len;

    field_value(h->str, h->len, &tmp, &value, &len);
    mime_encword_decode(value, len, &out);
    bool ok = strcmp(mg_buf_cstr(&out), want) == 0;
    if (!ok)
        mg_buf_printf(why, "want \"%s\", got \"%s\"", want, mg_buf_cstr(&out));
    mg_buf_free(&tmp);
    mg_buf_free(&out);
    return ok;
}

static void test_unstructured(void **state)
{
    (void)state;
    static const struct known_diff known[] = {
        { 21, "text glued to an encoded word stays glued; stalwart inserts a space" },
        { 22, "an empty encoded word adds nothing between \"text \" and \"here\"; stalwart "
              "keeps both spaces" },
        { 27, "text glued to an encoded word stays glued; stalwart inserts a space" },
        { 28, "text glued to an encoded word stays glued; stalwart inserts a space" },
    };
    run_vectors(RES "unstructured.json", known, sizeof(known) / sizeof(known[0]),
                check_unstructured);
}

/*
 * content_type.json: Content-Type / Content-Disposition with parameters
 */

static bool check_params(const struct tj *attrs, const struct mime_param *params,
                         unsigned int count, struct mg_buf *why)
{
    unsigned int k = 0;
    for (size_t i = 0; attrs != NULL && attrs->type == TJ_ARR && i < attrs->count; i++) {
        const char *name = tj_str(attrs->items[i]->items[0]);
        const struct tj *value = attrs->items[i]->items[1];
        size_t nlen = strlen(name);
        if (nlen > 9 && strcmp(name + nlen - 9, "-language") == 0) {
            /* stalwart's pseudo parameter for the RFC 2231 language */
            bool found = false;
            for (unsigned int j = 0; j < count; j++) {
                if (params[j].language != NULL && strncmp(params[j].name, name, nlen - 9) == 0 &&
                    params[j].name[nlen - 9] == '\0' && strcmp(params[j].language, value->str) == 0)
                    found = true;
            }
            if (!found) {
                mg_buf_printf(why, "no language %s for %.*s", value->str, (int)(nlen - 9), name);
                return false;
            }
            continue;
        }
        if (k >= count) {
            mg_buf_printf(why, "missing parameter %s", name);
            return false;
        }
        if (strcmp(params[k].name, name) != 0 || strlen(params[k].value) != value->len ||
            memcmp(params[k].value, value->str, value->len) != 0) {
            mg_buf_printf(why, "parameter %u: want %s=\"%s\", got %s=\"%s\"", k, name,
                          value->str, params[k].name, params[k].value);
            return false;
        }
        k++;
    }
    if (k != count) {
        mg_buf_printf(why, "%u parameters, want %u", count, k);
        return false;
    }
    return true;
}

static bool check_content_type(const struct tj *vec, struct mg_buf *why)
{
    const struct tj *h = tj_get(vec, "header");
    const struct tj *want = tj_get(vec, "expected");
    struct mg_arena *arena = mg_arena_new(0);
    struct mime_content_ctx ctx;
    struct mg_buf tmp = MG_BUF_INIT;
    const char *value, *type = NULL, *subtype = NULL, *disp = NULL;
    const struct mime_param *params = NULL;
    unsigned int count = 0;
    size_t len;
    bool ok = true;

    mime_content_ctx_init(&ctx, arena);
    field_value(h->str, h->len, &tmp, &value, &len);
    int ret = mime_content_parse_type(&ctx, value, len, &type, &subtype, &params, &count);
    if (tj_is_null(want)) {
        /* invalid: neither a type nor a disposition */
        const struct mime_param *dp;
        unsigned int dc;
        if (ret == 0 || mime_content_parse_disposition(&ctx, value, len, &disp, &dp, &dc) == 0) {
            mg_buf_printf(why, "accepted an invalid value");
            ok = false;
        }
    } else if (tj_str(tj_get(want, "c_subtype")) != NULL) {
        mg_buf_append_str(&tmp, "");
        char *wt = mg_strdup(tj_str(tj_get(want, "c_type")));
        char *ws = mg_strdup(tj_str(tj_get(want, "c_subtype")));
        mg_ascii_lower(wt, strlen(wt));
        mg_ascii_lower(ws, strlen(ws));
        if (ret < 0) {
            mg_buf_printf(why, "rejected");
            ok = false;
        } else if (strcmp(type, wt) != 0 || strcmp(subtype, ws) != 0) {
            mg_buf_printf(why, "want %s/%s, got %s/%s", wt, ws, type, subtype);
            ok = false;
        } else {
            ok = check_params(tj_get(want, "attributes"), params, count, why);
        }
        free(wt);
        free(ws);
    } else {
        /* no subtype: not a valid Content-Type (we default to text/plain),
         * but a disposition ("attachment; filename=...") */
        const struct mime_param *dp;
        unsigned int dc;
        if (ret == 0) {
            mg_buf_printf(why, "accepted %s/%s", type, subtype);
            ok = false;
        } else if (mime_content_parse_disposition(&ctx, value, len, &disp, &dp, &dc) < 0) {
            mg_buf_printf(why, "no disposition");
            ok = false;
        } else if (mg_ascii_strcasecmp(disp, tj_str(tj_get(want, "c_type"))) != 0) {
            mg_buf_printf(why, "disposition %s", disp);
            ok = false;
        } else {
            ok = check_params(tj_get(want, "attributes"), dp, dc, why);
        }
    }
    mime_content_ctx_deinit(&ctx);
    mg_buf_free(&tmp);
    mg_arena_free(&arena);
    return ok;
}

static void test_content_type(void **state)
{
    (void)state;
    static const struct known_diff known[] = {
        { 34, "white space between encoded words is dropped (RFC 2047 section 6.2), also in a "
              "quoted parameter; stalwart keeps it there" },
        { 47, "\"=\" is no token: neither a type nor a disposition" },
        { 48, "\"name=value\" alone: the disposition token is \"name\"" },
        { 58, "\"name=value\" alone: the disposition token is \"name\"" },
        { 49, "\"name=  \" keeps an empty value (Dovecot); stalwart drops it" },
        { 59, "RFC 2231 sections 0, 1, 9999 are not contiguous: kept one by one, as Dovecot does; "
              "stalwart joins them" },
        { 61, "odd RFC 2231 names (\"1*2*\", \"*5**6*\") are kept as written, as Dovecot does" },
        { 76, "\"text/plain/format\": the subtype is the token \"plain\"" },
        { 77, "\"text/plain/format\": the subtype is the token \"plain\"" },
        { 78, "\"text/plain/format\": the subtype is the token \"plain\"" },
    };
    run_vectors(RES "content_type.json", known, sizeof(known) / sizeof(known[0]),
                check_content_type);
}

/*
 * date.json
 */

static bool check_date(const struct tj *vec, struct mg_buf *why)
{
    const struct tj *h = tj_get(vec, "header");
    const struct tj *want = tj_get(vec, "expected");
    struct mg_buf tmp = MG_BUF_INIT;
    struct mime_date d;
    const char *value;
    size_t len;
    bool ok;

    field_value(h->str, h->len, &tmp, &value, &len);
    int ret = mime_date_parse_fields(value, len, &d);
    if (tj_is_null(want)) {
        ok = ret < 0;
        if (!ok)
            mg_buf_printf(why, "accepted %04d-%02d-%02d", d.year, d.month, d.day);
    } else if (ret < 0) {
        mg_buf_printf(why, "rejected");
        ok = false;
    } else {
        int zone = (int)(tj_long(tj_get(want, "tz_hour")) * 60 + tj_long(tj_get(want, "tz_minute")));
        if (tj_get(want, "tz_before_gmt")->b)
            zone = -zone;
        ok = d.year == tj_long(tj_get(want, "year")) && d.month == tj_long(tj_get(want, "month")) &&
             d.day == tj_long(tj_get(want, "day")) && d.hour == tj_long(tj_get(want, "hour")) &&
             d.minute == tj_long(tj_get(want, "minute")) &&
             d.second == tj_long(tj_get(want, "second")) && d.zone_minutes == zone;
        if (!ok) {
            mg_buf_printf(why, "got %04d-%02d-%02d %02d:%02d:%02d %+d", d.year, d.month, d.day,
                          d.hour, d.minute, d.second, d.zone_minutes);
        } else {
            /* and the instant */
            time_t t;
            assert_int_equal(mime_date_parse(value, len, &t, NULL), 0);
            long days = mime_date_days_from_civil(d.year, d.month, d.day);
            assert_true((long long)t == (long long)days * 86400 + d.hour * 3600 +
                                            d.minute * 60 + d.second - zone * 60);
        }
    }
    mg_buf_free(&tmp);
    return ok;
}

static void test_date(void **state)
{
    (void)state;
    static const struct known_diff known[] = {
        { 12, "\"4 8 15 16 23 42\": a time needs ':' between hours and minutes" },
        { 28, "a Received-style value (\"by ...; date\") is no Date" },
    };
    run_vectors(RES "date.json", known, sizeof(known) / sizeof(known[0]), check_date);
}

/*
 * address.json: display names (RFC 2047 decoded) and addresses
 */

static bool check_address(const struct tj *vec, struct mg_buf *why)
{
    const struct tj *h = tj_get(vec, "header");
    const struct tj *want = tj_get(vec, "expected");
    struct mg_buf tmp = MG_BUF_INIT, name = MG_BUF_INIT, addr = MG_BUF_INIT;
    struct mg_arena *arena = mg_arena_new(0);
    const char *value;
    size_t len;
    bool ok = true;

    field_value(h->str, h->len, &tmp, &value, &len);
    struct mime_address *list = mime_address_parse(arena, value, len, 0);

    /* expected entries, groups flattened: (group name or NULL, name, address) */
    const struct tj *entries[64], *groups[64];
    size_t n = 0;
    const struct tj *l = tj_get(want, "List");
    if (l != NULL) {
        for (size_t i = 0; i < l->count && n < 64; i++, n++) {
            entries[n] = l->items[i];
            groups[n] = NULL;
        }
    } else {
        const struct tj *g = tj_get(want, "Group");
        for (size_t gi = 0; g != NULL && gi < g->count; gi++) {
            const struct tj *m = tj_get(g->items[gi], "addresses");
            for (size_t i = 0; m != NULL && i < m->count && n < 64; i++, n++) {
                entries[n] = m->items[i];
                groups[n] = g->items[gi];
            }
        }
    }

    size_t i = 0;
    const char *group = NULL;
    for (const struct mime_address *a = list; a != NULL && ok; a = a->next) {
        if (a->domain == NULL) {
            group = a->mailbox; /* NULL at the end of a group */
            continue;
        }
        if (a->mailbox[0] == '\0' && a->domain[0] == '\0')
            continue; /* nothing there (", ,") */
        if (i >= n) {
            mg_buf_printf(why, "more addresses than expected");
            ok = false;
            break;
        }
        const char *wname = tj_str(tj_get(entries[i], "name"));
        const char *waddr = tj_str(tj_get(entries[i], "address"));
        const char *wgroup = groups[i] != NULL ? tj_str(tj_get(groups[i], "name")) : NULL;
        mg_buf_reset(&name);
        if (a->name != NULL)
            mime_encword_decode(a->name, strlen(a->name), &name);
        mg_buf_reset(&addr);
        if (a->route != NULL)
            mg_buf_printf(&addr, "%s:", a->route);
        if (a->domain[0] == '\0')
            mg_buf_append_str(&addr, a->mailbox);
        else
            mg_buf_printf(&addr, "%s@%s", a->mailbox, a->domain);
        if ((wname == NULL) != (a->name == NULL) ||
            (wname != NULL && strcmp(wname, mg_buf_cstr(&name)) != 0) || waddr == NULL ||
            strcmp(waddr, mg_buf_cstr(&addr)) != 0) {
            mg_buf_printf(why, "#%zu: want (%s, %s), got (%s, %s)", i, wname ? wname : "NULL",
                          waddr ? waddr : "NULL", a->name ? mg_buf_cstr(&name) : "NULL",
                          mg_buf_cstr(&addr));
            ok = false;
        } else if (wgroup != NULL) {
            mg_buf_reset(&name);
            if (group != NULL)
                mime_encword_decode(group, strlen(group), &name);
            if (group == NULL || strcmp(wgroup, mg_buf_cstr(&name)) != 0) {
                mg_buf_printf(why, "#%zu: group %s, got %s", i, wgroup,
                              group ? mg_buf_cstr(&name) : "NULL");
                ok = false;
            }
        }
        i++;
    }
    if (ok && i != n) {
        mg_buf_printf(why, "%zu addresses, want %zu", i, n);
        ok = false;
    }
    mg_buf_free(&tmp);
    mg_buf_free(&name);
    mg_buf_free(&addr);
    mg_arena_free(&arena);
    return ok;
}

static void test_address(void **state)
{
    (void)state;
    static const char comments[] =
        "comments are not part of a display name, except the comment after a bare "
        "addr-spec (\"user@host (Name)\"), as in Dovecot and RFC 5322";
    static const char uris[] =
        "a List-* header URI (\"<http://...>\", \"<mailto:...>\") is no RFC 5322 address";
    static const struct known_diff known[] = {
        { 8, comments },
        { 9, "an escaped line break inside a comment ends nothing: the comment is malformed" },
        { 10, comments },
        { 11, "a group holding only a comment has no member" },
        { 13, "white space around the dots of an obsolete domain is removed" },
        { 14, comments },
        { 22, comments },
        { 33, "decoded display names are trimmed" },
        { 37, uris }, { 38, uris }, { 39, uris }, { 40, uris }, { 41, uris },
        { 43, uris }, { 44, uris }, { 45, uris }, { 46, uris }, { 47, uris },
        { 51, "an unquoted '@' cannot be in a display name: \"phil@example.com\" is the address "
              "and the rest is garbage" },
        { 55, "a phrase after <addr> is not a display name" },
        { 56, comments },
    };
    run_vectors(RES "address.json", known, sizeof(known) / sizeof(known[0]), check_address);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unstructured),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
