/* IMAP BODY, BODYSTRUCTURE and ENVELOPE against Dovecot's vectors
 * (tests/data/corpora/dovecot-bodystructure-vectors, extracted from
 * Dovecot's src/lib-imap/test-imap-bodystructure.c and test-imap-envelope.c,
 * LGPL-2.1; see its SOURCE file), plus handcrafted structures. */
#define TEST_MIME_UTIL_LIB
#include "test_mime_util.c"

#include "common/arena.h"
#include "mda/mime/imap_bodystructure.h"
#include "mda/mime/imap_envelope.h"
#include "mda/mime/mime_parser.h"

#define VECTORS "tests/data/corpora/dovecot-bodystructure-vectors/"

/* The vectors use LF line endings; the same message with CRLF must give
 * the same sizes (they count LF as CRLF). */
static char *to_crlf(const char *s, size_t len, size_t *len_r)
{
    struct mg_buf b = MG_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            mg_buf_append_byte(&b, '\r');
        mg_buf_append_byte(&b, s[i]);
    }
    mg_buf_reserve(&b, 0);
    return mg_buf_steal(&b, len_r);
}

static char *structure_of(const char *msg, size_t len, unsigned int flags)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_buf out = MG_BUF_INIT;
    struct mime_part *root = mime_parser_parse(arena, msg, len);
    imap_bodystructure_write(&out, msg, root, flags);
    mg_arena_free(&arena);
    mg_buf_reserve(&out, 0);
    return mg_buf_steal(&out, NULL);
}

static char *envelope_of(const char *msg, size_t len)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_buf out = MG_BUF_INIT;
    struct mime_part *root = mime_parser_parse(arena, msg, len);
    imap_envelope_write(&out, msg, root);
    mg_arena_free(&arena);
    mg_buf_reserve(&out, 0);
    return mg_buf_steal(&out, NULL);
}

static void check_structure(const char *msg, size_t len, const char *expected,
                            unsigned int flags)
{
    char *got = structure_of(msg, len, flags);
    if (strcmp(got, expected) != 0)
        fail_msg("structure mismatch\n got: %s\nwant: %s\n msg: %s", got, expected, msg);
    const char *err = NULL;
    struct ti *v = ti_parse(got, strlen(got), &err);
    if (v == NULL)
        fail_msg("invalid IMAP (%s): %s", err, got);
    err = ti_check_body(v, (flags & IMAP_BODYSTRUCTURE_FLAG_EXTENDED) != 0);
    if (err != NULL)
        fail_msg("invalid structure (%s): %s", err, got);
    ti_free(v);
    free(got);
}

static void check_both_endings(const char *msg, size_t len, const char *expected,
                               unsigned int flags)
{
    check_structure(msg, len, expected, flags);
    size_t clen;
    char *crlf = to_crlf(msg, len, &clen);
    check_structure(crlf, clen, expected, flags);
    free(crlf);
}

static void test_dovecot_parse_vectors(void **state)
{
    (void)state;
    struct tj *vectors = read_json_file(VECTORS "imap-bodystructure-parse.json");
    assert_true(vectors->count >= 8);
    for (size_t i = 0; i < vectors->count; i++) {
        const struct tj *v = vectors->items[i];
        const struct tj *msg = tj_get(v, "message");
        check_both_endings(msg->str, msg->len, tj_str(tj_get(v, "bodystructure")),
                           IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
        check_both_endings(msg->str, msg->len, tj_str(tj_get(v, "body")), 0);
    }
    tj_free(vectors);
}

/* Dovecot's normalize vectors give the BODYSTRUCTURE that Dovecot writes
 * after reading a (possibly abbreviated) one back; the message is the one it
 * was made from. Every field the vector has must be ours exactly; a NIL in
 * the vector may stand for data that the abbreviated input left out. */
static void compare_normalized(const struct ti *want, const struct ti *got,
                               const char *text)
{
    if (want->type == TI_NIL)
        return;
    if (want->type != got->type)
        fail_msg("type mismatch in %s", text);
    if (want->type == TI_LIST) {
        if (want->count != got->count)
            fail_msg("list length mismatch in %s", text);
        for (size_t i = 0; i < want->count; i++)
            compare_normalized(want->items[i], got->items[i], text);
        return;
    }
    if (want->len != got->len || memcmp(want->str, got->str, want->len) != 0)
        fail_msg("value %s != %s in %s", want->str, got->str, text);
}

static void test_dovecot_normalize_vectors(void **state)
{
    (void)state;
    struct tj *vectors = read_json_file(VECTORS "imap-bodystructure-normalize.json");
    assert_int_equal(vectors->count, 7);
    for (size_t i = 0; i < vectors->count; i++) {
        const struct tj *v = vectors->items[i];
        const struct tj *msg = tj_get(v, "message");
        const char *output = tj_str(tj_get(v, "output"));
        char *got = structure_of(msg->str, msg->len, IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
        const char *err = NULL;
        struct ti *want_ti = ti_parse(output, strlen(output), &err);
        struct ti *got_ti = ti_parse(got, strlen(got), &err);
        assert_non_null(want_ti);
        assert_non_null(got_ti);
        compare_normalized(want_ti, got_ti, output);
        ti_free(want_ti);
        ti_free(got_ti);
        free(got);
    }
    tj_free(vectors);
}

static void test_dovecot_envelope_vectors(void **state)
{
    (void)state;
    struct tj *vectors = read_json_file(VECTORS "imap-envelope-parse.json");
    assert_int_equal(vectors->count, 6);
    for (size_t i = 0; i < vectors->count; i++) {
        const struct tj *v = vectors->items[i];
        const struct tj *msg = tj_get(v, "message");
        const char *want = tj_str(tj_get(v, "envelope"));
        for (int crlf = 0; crlf < 2; crlf++) {
            size_t len = msg->len;
            char *m = crlf ? to_crlf(msg->str, msg->len, &len) : mg_strndup(msg->str, len);
            char *got = envelope_of(m, len);
            if (strcmp(got, want) != 0)
                fail_msg("envelope mismatch\n got: %s\nwant: %s", got, want);
            free(got);
            free(m);
        }
    }
    tj_free(vectors);
}

struct structure_case {
    const char *msg;
    const char *body; /* BODY */
    const char *bodystructure;
};

/* Handcrafted structures: the cases of Dovecot's message parser tests and
 * the limits. */
static const struct structure_case structure_cases[] = {
    /* no header at all */
    { "", "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0", NULL },
    /* header without body or blank line */
    { "a:b\n", "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0", NULL },
    /* no MIME-Version and no Content-Type: Content-* are ignored */
    { "Content-Transfer-Encoding: base64\nContent-ID: <x>\n\nabc",
      "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0", NULL },
    /* invalid Content-Type: text/plain */
    { "Content-Type: /plain; charset=utf-8\n\nx\n",
      "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1", NULL },
    /* type/subtype lower-cased, parameters kept as sent */
    { "Content-Type: TEXT/HTML; CharSet=\"UTF-8\"\nContent-Transfer-Encoding: Base64\n\nPGI+\n",
      "\"text\" \"html\" (\"CharSet\" \"UTF-8\") NIL NIL \"Base64\" 6 1", NULL },
    /* multipart without boundary: one empty text/plain part */
    { "Content-Type: multipart/mixed\n\n--x\nContent-Type: text/html\n\nhi\n--x--\n",
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\"",
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL" },
    /* Dovecot "truncated mime headers": boundaries inside headers */
    { "Content-Type: multipart/mixed; boundary=\":foo\"\n\n--:foo\n--:foo\nContent-Type: text/plain\n--:foo\n"
      "Content-Type: text/plain\r\n--:foo\nContent-Type: text/html\n--:foo--\n",
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
      "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\"", NULL },
    /* "truncated mime headers 2": the inner multipart never sees its
     * boundary; "--a" in the text part is no boundary of an enclosing
     * multipart at that point */
    { "Content-Type: multipart/mixed; boundary=\"ab\"\n\n--ab\nContent-Type: multipart/mixed; boundary=\"a\"\n\n"
      "--ab\nContent-Type: text/plain\n\n--a\n\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 2) \"mixed\"", NULL },
    /* "duplicate mime boundary": the inner one is used */
    { "Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\nContent-Type: multipart/mixed; boundary=\"a\"\n\n"
      "--a\nContent-Type: text/plain\n\nbody\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) \"mixed\") \"mixed\"", NULL },
    /* "garbage suffix mime boundary": "--ab" starts with "--a" */
    { "Content-Type: multipart/mixed; boundary=\"a\"\n\n--ab\nContent-Type: multipart/mixed; boundary=\"a\"\n\n"
      "--ac\nContent-Type: text/plain\n\nbody\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) \"mixed\") \"mixed\"", NULL },
    /* "continuing mime boundary": inner "ab" extends outer "a" */
    { "Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\nContent-Type: multipart/mixed; boundary=\"ab\"\n\n"
      "--ab\nContent-Type: text/plain\n\nbody\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) \"mixed\") \"mixed\"", NULL },
    /* "continuing truncated mime boundary": the inner header is cut, so
     * "--ab" and "--ab--" are boundaries of the outer "a" */
    { "Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\nContent-Type: multipart/mixed; boundary=\"ab\"\n"
      "MIME-Version: 1.0\n--ab\nContent-Type: text/plain\n\n--ab--\n--a--\n\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\"", NULL },
    /* a blank line right before a boundary belongs to the boundary: the
     * encapsulated message is the header only (Dovecot counts it so) */
    { "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
      "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 12 (NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) "
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 1) \"mixed\"", NULL },
    /* inner boundary a prefix of the outer one, both closing properly */
    { "Content-Type: multipart/mixed; boundary=\"outer-x\"\n\n--outer-x\n"
      "Content-Type: multipart/alternative; boundary=\"outer\"\n\n--outer\n\none\n--outer\n\ntwo\n--outer--\n"
      "--outer-x\n\nthree\n--outer-x--\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"alternative\")"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) \"mixed\"", NULL },
    /* missing inner close: the outer boundary ends the inner parts */
    { "Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n"
      "Content-Type: multipart/alternative; boundary=\"b2\"\n\n--b2\n\nin\n--b1\n\nout\n--b1--\n",
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0) \"alternative\")"
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\"", NULL },
    /* missing final boundary: the part runs to the end */
    { "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nline1\nline2\n",
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2) \"mixed\"", NULL },
    /* transport padding after the boundary, epilogue and preamble */
    { "Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b  \t\n\nx\n--b-- \nepilogue\n",
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\"", NULL },
    /* multipart/digest: parts default to message/rfc822 */
    { "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nbody\n--d--\n",
      "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 18 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) "
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) 2) \"digest\"", NULL },
    /* message/rfc822 whose header is cut by a boundary */
    { "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n--b--\n",
      "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 0) \"mixed\"", NULL },
    /* message/global: a basic body for IMAP4rev1 */
    { "Content-Type: message/global\n\nSubject: x\n\ny\n",
      "\"message\" \"global\" NIL NIL NIL \"7bit\" 17", NULL },
    /* RFC 2231 parameters: written merged but undecoded, like Dovecot */
    { "Content-Type: application/x-stuff;\n title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
      " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n title*2=\"isn't it!\"\n\n",
      "\"application\" \"x-stuff\" (\"title*\" \"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!\") "
      "NIL NIL \"7bit\" 0", NULL },
    /* a backslash cannot escape a line break: the break is folding */
    { "Content-Type: text/plain; name=\"a\\\n b\"\n\n",
      "\"text\" \"plain\" (\"name\" \"a b\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0", NULL },
    /* quoting: 8-bit and more than 4 quote characters make literals */
    { "Content-Type: text/plain; name=\"caf\xc3\xa9\"; q=\"\\\"\\\"\\\"\\\"\\\"\"\nContent-Description: a\n b\n\n",
      "\"text\" \"plain\" (\"name\" {5}\r\ncaf\xc3\xa9 \"q\" {5}\r\n\"\"\"\"\" \"charset\" \"us-ascii\") NIL \"a b\" \"7bit\" 0 0",
      NULL },
};

static void test_structure_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(structure_cases) / sizeof(structure_cases[0]); i++) {
        const struct structure_case *c = &structure_cases[i];
        check_both_endings(c->msg, strlen(c->msg), c->body, 0);
        if (c->bodystructure != NULL)
            check_both_endings(c->msg, strlen(c->msg), c->bodystructure,
                               IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
    }
}

static void test_message_global_rev2(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: message/global\n\nSubject: x\n\ny\n";
    check_structure(msg, sizeof(msg) - 1,
                    "\"message\" \"global\" NIL NIL NIL \"7bit\" 17 (NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) "
                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) 3",
                    IMAP_BODYSTRUCTURE_FLAG_GLOBAL_AS_MESSAGE);
}

/* Nesting beyond MIME_PARSER_MAX_DEPTH: deeper containers are text/plain
 * leaves and the output stays valid. */
static void test_depth_limit(void **state)
{
    (void)state;
    struct mg_buf m = MG_BUF_INIT;
    unsigned int levels = MIME_PARSER_MAX_DEPTH + 50;
    for (unsigned int i = 0; i < levels; i++)
        mg_buf_printf(&m, "Content-Type: multipart/mixed; boundary=\"b%u\"\r\n\r\n--b%u\r\n", i, i);
    mg_buf_append_str(&m, "\r\ninnermost\r\n");
    for (unsigned int i = levels; i-- > 0;)
        mg_buf_printf(&m, "--b%u--\r\n", i);

    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, m.data, m.len);
    unsigned int max_depth = 0, overflow = 0;
    for (struct mime_part *p = root; p != NULL; p = mime_part_next(p)) {
        if (p->depth > max_depth)
            max_depth = p->depth;
        if (p->flags & MIME_PART_FLAG_OVERFLOW)
            overflow++;
        assert_true(p->header_start <= p->header_end && p->header_end <= p->body_end &&
                    p->body_end <= m.len);
    }
    assert_int_equal(max_depth, MIME_PARSER_MAX_DEPTH - 1);
    assert_int_equal(overflow, 1);
    mg_arena_free(&arena);

    char *bs = structure_of(m.data, m.len, IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
    const char *err = NULL;
    struct ti *v = ti_parse(bs, strlen(bs), &err);
    assert_non_null(v);
    assert_null(ti_check_body(v, true));
    ti_free(v);
    free(bs);
    mg_buf_free(&m);
}

/* More than MIME_PARSER_MAX_PARTS parts: splitting stops. */
static void test_part_limit(void **state)
{
    (void)state;
    struct mg_buf m = MG_BUF_INIT;
    mg_buf_append_str(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    for (unsigned int i = 0; i < MIME_PARSER_MAX_PARTS + 100; i++)
        mg_buf_append_str(&m, "--b\r\n\r\nx\r\n");
    mg_buf_append_str(&m, "--b--\r\n");

    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, m.data, m.len);
    assert_int_equal(mime_part_count(root), MIME_PARSER_MAX_PARTS);
    assert_true(root->flags & MIME_PART_FLAG_TRUNCATED);
    assert_int_equal(root->body_end, m.len);
    mg_arena_free(&arena);
    mg_buf_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dovecot_parse_vectors),
        cmocka_unit_test(test_dovecot_normalize_vectors),
        cmocka_unit_test(test_dovecot_envelope_vectors),
        cmocka_unit_test(test_structure_cases),
        cmocka_unit_test(test_message_global_rev2),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_part_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
