/* FETCH BODY[section]: the section text parser and byte-exact section
 * contents on handcrafted messages (RFC 3501 section 6.4.5). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/mime/imap_section.h"
#include "mda/mime/mime_parser.h"

static const char nested_msg[] =
    "From: a@example.com\r\n"
    "To: b@example.com\r\n"
    "Subject: test\r\n"
    " folded\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"xyz\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--xyz\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "part one\r\n"
    "--xyz\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "From: c@example.com\r\n"
    "Content-Type: multipart/alternative; boundary=\"abc\"\r\n"
    "\r\n"
    "--abc\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "inner plain\r\n"
    "--abc\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<b>inner</b>\r\n"
    "--abc--\r\n"
    "--xyz\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: single\r\n"
    "\r\n"
    "single body\r\n"
    "--xyz--\r\n"
    "epilogue\r\n";

#define NESTED_HEADER                                                           \
    "From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n folded\r\n" \
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xyz\"\r\n\r\n"
#define INNER_HEADER                                                             \
    "Subject: inner\r\nFrom: c@example.com\r\n"                                 \
    "Content-Type: multipart/alternative; boundary=\"abc\"\r\n\r\n"
#define INNER_TEXT                                                              \
    "--abc\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--abc\r\n"         \
    "Content-Type: text/html\r\n\r\n<b>inner</b>\r\n--abc--\r\n"

struct section_case {
    const char *section;
    const char *want; /* NULL: the part does not exist */
};

static const struct section_case nested_cases[] = {
    { "", nested_msg },
    { "HEADER", NESTED_HEADER },
    { "header.fields (SUBJECT to)", "To: b@example.com\r\nSubject: test\r\n folded\r\n\r\n" },
    { "HEADER.FIELDS.NOT (subject From MIME-Version Content-Type)", "To: b@example.com\r\n\r\n" },
    { "HEADER.FIELDS (X-Missing)", "\r\n" },
    { "TEXT", nested_msg + sizeof(NESTED_HEADER) - 1 },
    { "1", "part one" },
    { "1.MIME", "Content-Type: text/plain\r\n\r\n" },
    { "1.HEADER", NULL },
    { "1.TEXT", NULL },
    { "1.1", NULL },
    { "2", INNER_HEADER INNER_TEXT },
    { "2.MIME", "Content-Type: message/rfc822\r\n\r\n" },
    { "2.HEADER", INNER_HEADER },
    { "2.TEXT", INNER_TEXT },
    { "2.HEADER.FIELDS (From)", "From: c@example.com\r\n\r\n" },
    { "2.1", "inner plain" },
    { "2.1.MIME", "Content-Type: text/plain\r\n\r\n" },
    { "2.2", "<b>inner</b>" },
    { "2.2.MIME", "Content-Type: text/html\r\n\r\n" },
    { "2.3", NULL },
    { "2.1.1", NULL },
    { "3", "Subject: single\r\n\r\nsingle body" },
    { "3.HEADER", "Subject: single\r\n\r\n" },
    { "3.TEXT", "single body" },
    { "3.1", "single body" },
    { "3.1.MIME", "Subject: single\r\n\r\n" },
    { "3.2", NULL },
    { "3.1.1", NULL },
    { "4", NULL },
    { "4294967295", NULL },
};

static void run_cases(const char *msg, const struct section_case *cases, size_t n)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, msg, strlen(msg));
    struct mg_buf out = MG_BUF_INIT;

    for (size_t i = 0; i < n; i++) {
        struct imap_section sec;
        const char *err = NULL;
        if (imap_section_parse(arena, cases[i].section, strlen(cases[i].section), &sec, &err) < 0)
            fail_msg("section %s rejected: %s", cases[i].section, err);
        mg_buf_reset(&out);
        int ret = imap_section_write(root, msg, &sec, &out);
        if (cases[i].want == NULL) {
            if (ret != IMAP_SECTION_ENOENT)
                fail_msg("section %s: exists, got \"%s\"", cases[i].section, mg_buf_cstr(&out));
            assert_int_equal(out.len, 0);
            continue;
        }
        if (ret != 0)
            fail_msg("section %s: not found", cases[i].section);
        if (out.len != strlen(cases[i].want) || memcmp(out.data, cases[i].want, out.len) != 0)
            fail_msg("section %s:\n got \"%s\"\nwant \"%s\"", cases[i].section,
                     mg_buf_cstr(&out), cases[i].want);
    }
    mg_buf_free(&out);
    mg_arena_free(&arena);
}

static void test_nested_sections(void **state)
{
    (void)state;
    run_cases(nested_msg, nested_cases, sizeof(nested_cases) / sizeof(nested_cases[0]));
}

/* A non-multipart message has part 1 only: its body. */
static void test_single_part_sections(void **state)
{
    (void)state;
    static const char msg[] = "Subject: x\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
    static const struct section_case cases[] = {
        { "1", "body\r\n" },
        { "1.MIME", "Subject: x\r\nContent-Type: text/plain\r\n\r\n" },
        { "TEXT", "body\r\n" },
        { "HEADER.FIELDS (Content-Type)", "Content-Type: text/plain\r\n\r\n" },
        { "2", NULL },
        { "1.1", NULL },
        { "1.HEADER", NULL },
    };
    run_cases(msg, cases, sizeof(cases) / sizeof(cases[0]));
}

/* A message that is itself message/rfc822: 1 is the encapsulated message,
 * 1.1 its body. */
static void test_message_rfc822_root(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: message/rfc822\n\nSubject: in\n\ntext\n";
    static const struct section_case cases[] = {
        { "1", "Subject: in\n\ntext\n" },
        { "1.HEADER", "Subject: in\n\n" },
        { "1.HEADER.FIELDS (Subject)", "Subject: in\n\n" },
        { "1.HEADER.FIELDS.NOT (Subject)", "\n" },
        { "1.TEXT", "text\n" },
        { "1.1", "text\n" },
        { "1.1.MIME", "Subject: in\n\n" },
        { "1.2", NULL },
        { "2", NULL },
    };
    run_cases(msg, cases, sizeof(cases) / sizeof(cases[0]));
}

/* HEADER.FIELDS: folding kept, original order, duplicates all included,
 * a last field without line break gets one, bare LF messages keep LF. */
static void test_header_fields_filter(void **state)
{
    (void)state;
    static const char msg[] = "Received: one\n\tfolded\nX-A: 1\nreceived: two\nX-B: 2";
    static const struct section_case cases[] = {
        { "HEADER.FIELDS (RECEIVED)", "Received: one\n\tfolded\nreceived: two\n\n" },
        { "HEADER.FIELDS (x-b)", "X-B: 2\n\n" },
        { "HEADER.FIELDS.NOT (Received X-B)", "X-A: 1\n\n" },
        { "HEADER", msg },
        { "TEXT", "" },
    };
    run_cases(msg, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_section_parse(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_section sec;
    const char *err = NULL;

    assert_int_equal(imap_section_parse(arena, "", 0, &sec, &err), 0);
    assert_int_equal(sec.part_count, 0);
    assert_int_equal(sec.text, IMAP_SECTION_TEXT_NONE);

    static const char s1[] = "1.22.333.MIME";
    assert_int_equal(imap_section_parse(arena, s1, strlen(s1), &sec, &err), 0);
    assert_int_equal(sec.part_count, 3);
    assert_int_equal(sec.parts[0], 1);
    assert_int_equal(sec.parts[1], 22);
    assert_int_equal(sec.parts[2], 333);
    assert_int_equal(sec.text, IMAP_SECTION_TEXT_MIME);

    static const char s2[] = "4.header.fields.not (\"X-Quoted\" {5}\r\nX-Lit {5+}\r\nX-Syn Atom])";
    assert_int_equal(imap_section_parse(arena, s2, strlen(s2), &sec, &err), 0);
    assert_int_equal(sec.text, IMAP_SECTION_TEXT_HEADER_FIELDS_NOT);
    assert_int_equal(sec.field_count, 4);
    assert_string_equal(sec.fields[0], "X-Quoted");
    assert_string_equal(sec.fields[1], "X-Lit");
    assert_string_equal(sec.fields[2], "X-Syn");
    assert_string_equal(sec.fields[3], "Atom]");

    static const char s3[] = "HEADER.FIELDS (From)";
    assert_int_equal(imap_section_parse(arena, s3, strlen(s3), &sec, &err), 0);
    assert_int_equal(sec.part_count, 0);
    assert_int_equal(sec.text, IMAP_SECTION_TEXT_HEADER_FIELDS);

    static const char *const bad[] = {
        "MIME", "0", "01", "1.", ".1", "1..2", "1.0", "HEADER.FIELDS", "HEADER.FIELDS ()",
        "HEADER.FIELDS (a:b)", "HEADER.FIELDS(From)", "HEADER.FIELDS (From", "HEADER.FIELDS (From) ",
        "HEADER.FIELDS  (From)", "HEADER.FIELDS (From  To)", "TEXT ", "1.MIMEX", "BODY", "HEADERS",
        "4294967296", "1.2.TEXT.MIME", "HEADER.FIELDS (\"a\nb\")", "HEADER.FIELDS ({3}\r\nab)",
        "HEADER.FIELDS (\"\")", " 1", "1 ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (imap_section_parse(arena, bad[i], strlen(bad[i]), &sec, &err) == 0)
            fail_msg("accepted bad section \"%s\"", bad[i]);
        assert_non_null(err);
    }

    /* limits */
    struct mg_buf b = MG_BUF_INIT;
    for (unsigned int i = 0; i <= IMAP_SECTION_MAX_PARTS; i++)
        mg_buf_append_str(&b, i == 0 ? "1" : ".1");
    assert_int_equal(imap_section_parse(arena, b.data, b.len, &sec, &err), -1);
    mg_buf_reset(&b);
    mg_buf_append_str(&b, "HEADER.FIELDS (");
    for (unsigned int i = 0; i <= IMAP_SECTION_MAX_FIELDS; i++)
        mg_buf_printf(&b, "%sX-%u", i == 0 ? "" : " ", i);
    mg_buf_append_str(&b, ")");
    assert_int_equal(imap_section_parse(arena, b.data, b.len, &sec, &err), -1);
    mg_buf_free(&b);
    mg_arena_free(&arena);
}

/* The result range and part for callers that stream the bytes themselves. */
static void test_section_find(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, nested_msg, strlen(nested_msg));
    struct imap_section sec;
    struct imap_section_result res;
    const char *err;

    assert_int_equal(imap_section_parse(arena, "2.2", 3, &sec, &err), 0);
    assert_int_equal(imap_section_find(root, &sec, &res), 0);
    assert_string_equal(res.part->subtype, "html");
    assert_int_equal(res.end - res.start, strlen("<b>inner</b>"));
    assert_memory_equal(nested_msg + res.start, "<b>inner</b>", res.end - res.start);

    assert_int_equal(imap_section_parse(arena, "2.TEXT", 6, &sec, &err), 0);
    assert_int_equal(imap_section_find(root, &sec, &res), 0);
    assert_string_equal(res.part->subtype, "alternative");
    mg_arena_free(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_sections),
        cmocka_unit_test(test_single_part_sections),
        cmocka_unit_test(test_message_rfc822_root),
        cmocka_unit_test(test_header_fields_filter),
        cmocka_unit_test(test_section_parse),
        cmocka_unit_test(test_section_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
