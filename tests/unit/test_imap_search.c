/* mda/imap/imap_search: every RFC 3501 search key, parsed from command
 * text and matched against synthetic messages (index facts), and the
 * content keys against small messages through the load callback. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/imap/imap_parser.h"
#include "mda/imap/imap_search.h"
#include "mda/store/maildir.h"

static char *const keywords[] = { "$Forwarded", "Work", "$Junk" };

/* ---- the messages ---- */

#define NMSG 6

static const char *const contents[NMSG] = {
    /* 1: encoded words, base64 body, an empty field, two Received */
    "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.de>\r\n"
    "To: alice@example.com,\r\n bob@example.com\r\n"
    "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
    "Date: Tue, 14 Nov 2023 23:30:00 -0500\r\n"
    "X-Empty:\r\n"
    "Received: from a by b\r\n"
    "Received: from c by d; hop2\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "SGFsbG8gV2VsdCwgc2Now7ZuZSBHcsO8w59lIQ0K\r\n",
    /* 2: multipart, quoted-printable Latin-1 with a soft line break */
    "From: Bob <bob@example.com>\r\n"
    "To: alice@example.com\r\n"
    "Cc: Carol <carol@example.org>\r\n"
    "Subject: Quarterly report\r\n"
    "Date: Wed, 15 Nov 2023 01:00:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 cr=E8me, soft =\r\n"
    "line break joined\r\n"
    "--XX--\r\n",
    /* 3: no Date, an empty Subject, a header only TEXT finds */
    "From: carol@example.org\r\n"
    "Subject:\r\n"
    "X-Spam: yes\r\n"
    "\r\n"
    "body text mentions quarterly figures\r\n",
    /* 4: LF line ends, folded subject */
    "From: dave@example.net\n"
    "Bcc: eve@example.net\n"
    "Subject: a long\n subject line\n"
    "Date: 1 Jan 2020 00:00:00 +0000\n"
    "\n"
    "plain\n",
    /* 5: empty message */
    "",
    /* 6: unreadable (load fails) */
    NULL,
};

struct msg_fixture {
    struct search_msg msg;
    unsigned loads;
    size_t i;
};

static struct msg_fixture fixtures[NMSG];

static int load_cb(void *ctx, const char **data_r, size_t *len_r)
{
    struct msg_fixture *f = ctx;
    f->loads++;
    if (contents[f->i] == NULL)
        return -1;
    *data_r = contents[f->i];
    *len_r = strlen(contents[f->i]);
    return 0;
}

static void setup_messages(void)
{
    static const struct {
        uint32_t uid, flags;
        uint64_t keywords, size;
        int64_t date;
        bool recent;
    } facts[NMSG] = {
        { 10, MAILDIR_FLAG_SEEN, 1u << 1, 100, 1700000000, false },
        { 20, MAILDIR_FLAG_ANSWERED | MAILDIR_FLAG_FLAGGED, 0, 5000, 1700000000 + 86400, true },
        { 30, MAILDIR_FLAG_DELETED | MAILDIR_FLAG_SEEN, (1u << 0) | (1u << 1), 2048, 1699920000,
          false },
        { 35, MAILDIR_FLAG_DRAFT, 1u << 2, 0, 1690000000, true },
        { 50, 0, 0, 100000, 1700000000 - 86400 * 30, false },
        { 60, MAILDIR_FLAGS_ALL, 0, 101, 1700006400, false },
    };
    for (size_t i = 0; i < NMSG; i++) {
        struct msg_fixture *f = &fixtures[i];
        memset(f, 0, sizeof(*f));
        f->i = i;
        f->msg.seq = (uint32_t)(i + 1);
        f->msg.uid = facts[i].uid;
        f->msg.flags = facts[i].flags;
        f->msg.keywords = facts[i].keywords;
        f->msg.size = facts[i].size;
        f->msg.internaldate = facts[i].date;
        f->msg.is_recent = facts[i].recent;
        f->msg.load = load_cb;
        f->msg.load_ctx = f;
    }
}

/* Parses the program (command text after SEARCH) and returns the
 * matching sequence numbers as "1 3 5", or NULL with *error_r. */
static char *run_with(const char *program, char *const *kw, unsigned kw_count,
                      bool *needs_content_r, const char **error_r)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_arg *args;
    size_t n;
    const char *error = NULL;
    if (imap_parse_args(arena, program, strlen(program), &args, &n, &error) < 0) {
        mg_arena_free(&arena);
        fail_msg("\"%s\": IMAP parse error %s", program, error);
    }
    struct search_key *root = NULL;
    if (search_parse(arena, args, n, kw, kw_count, &root, &error) < 0) {
        assert_non_null(error);
        *error_r = error;
        mg_arena_free(&arena);
        return NULL;
    }
    if (needs_content_r != NULL)
        *needs_content_r = search_needs_content(root);
    struct mg_buf out = MG_BUF_INIT;
    for (size_t i = 0; i < NMSG; i++) {
        if (search_match(root, &fixtures[i].msg, NMSG, fixtures[NMSG - 1].msg.uid))
            mg_buf_printf(&out, "%s%u", out.len ? " " : "", fixtures[i].msg.seq);
    }
    char *result = strdup(mg_buf_cstr(&out));
    mg_buf_free(&out);
    search_free(root);
    mg_arena_free(&arena);
    return result;
}

static char *run(const char *program, const char **error_r)
{
    return run_with(program, keywords, 3, NULL, error_r);
}

struct match_case {
    const char *program;
    const char *expected;
};

static void check_cases(const struct match_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *error = NULL;
        char *got = run(cases[i].program, &error);
        if (got == NULL)
            fail_msg("\"%s\": refused: %s", cases[i].program, error);
        if (strcmp(got, cases[i].expected) != 0)
            fail_msg("\"%s\": matched \"%s\", expected \"%s\"", cases[i].program, got,
                     cases[i].expected);
        free(got);
    }
}

static char *saved_tz;

static int group_setup(void **state)
{
    (void)state;
    saved_tz = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "UTC0", 1);
    tzset();
    setup_messages();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (saved_tz != NULL) {
        setenv("TZ", saved_tz, 1);
        free(saved_tz);
    } else {
        unsetenv("TZ");
    }
    tzset();
    return 0;
}

static const struct match_case index_cases[] = {
    { "ALL", "1 2 3 4 5 6" },
    { "SEEN", "1 3 6" },
    { "seen", "1 3 6" },
    { "UNSEEN", "2 4 5" },
    { "ANSWERED", "2 6" },
    { "UNANSWERED", "1 3 4 5" },
    { "FLAGGED", "2 6" },
    { "UNFLAGGED", "1 3 4 5" },
    { "DELETED", "3 6" },
    { "UNDELETED", "1 2 4 5" },
    { "DRAFT", "4 6" },
    { "UNDRAFT", "1 2 3 5" },
    { "KEYWORD Work", "1 3" },
    { "KEYWORD work", "1 3" },
    { "KEYWORD \"Work\"", "1 3" },
    { "KEYWORD $Forwarded", "3" },
    { "KEYWORD $Junk", "4" },
    { "KEYWORD Unknown", "" },
    { "UNKEYWORD Work", "2 4 5 6" },
    { "UNKEYWORD Unknown", "1 2 3 4 5 6" },
    { "NEW", "2 4" },
    { "OLD", "1 3 5 6" },
    { "RECENT", "2 4" },
    { "LARGER 100", "2 3 5 6" },
    { "LARGER 0", "1 2 3 5 6" },
    { "SMALLER 100", "4" },
    { "SMALLER 101", "1 4" },
    { "SMALLER 18446744073709551", "1 2 3 4 5 6" },
    { "LARGER 9999999999999999999", "" },
    /* INTERNALDATE in the server's zone (UTC here) */
    { "BEFORE 14-Nov-2023", "4 5" },
    { "ON 14-Nov-2023", "1 3" },
    { "ON 15-Nov-2023", "2 6" },
    { "SINCE 15-Nov-2023", "2 6" },
    { "SINCE 14-Nov-2023", "1 2 3 6" },
    { "SINCE \"14-Nov-2023\"", "1 2 3 6" },
    { "BEFORE 1-Jan-1970", "" },
    { "ON 22-Jul-2023", "4" },
    /* sequence sets, '*' the last message */
    { "1:3", "1 2 3" },
    { "*", "6" },
    { "2,4:5", "2 4 5" },
    { "5:*", "5 6" },
    { "*:5", "5 6" },
    { "9", "" },
    { "1:*", "1 2 3 4 5 6" },
    /* UID sets, '*' the last UID */
    { "UID 20:35", "2 3 4" },
    { "UID 21:34", "3" },
    { "UID *", "6" },
    { "UID 55:*", "6" },
    { "UID 100:*", "6" },
    { "UID 1:*", "1 2 3 4 5 6" },
    { "UID 10,60", "1 6" },
    /* NOT, OR, lists and the implicit AND */
    { "NOT SEEN", "2 4 5" },
    { "NOT NOT SEEN", "1 3 6" },
    { "OR SEEN FLAGGED", "1 2 3 6" },
    { "OR (SEEN DELETED) DRAFT", "3 4 6" },
    { "NOT OR SEEN DRAFT", "2 5" },
    { "OR OR SEEN DRAFT KEYWORD $Junk", "1 3 4 6" },
    { "SEEN UNDELETED", "1" },
    { "(SEEN) (KEYWORD Work)", "1 3" },
    { "((SEEN (NOT DELETED)))", "1" },
    { "ALL SEEN NOT DELETED", "1" },
    { "UID 10,60 OR 2 3", "" },
    { "OR NOT 1:3 UID 10", "1 4 5 6" },
    { "NOT (OR SEEN (OR DRAFT FLAGGED))", "5" },
};

static void test_index_keys(void **state)
{
    (void)state;
    check_cases(index_cases, sizeof(index_cases) / sizeof(index_cases[0]));
    /* none of that looked into a message */
    for (size_t i = 0; i < NMSG; i++)
        assert_int_equal(fixtures[i].loads, 0);
}

/* SINCE/ON/BEFORE use the server's zone: 14-Nov-2023 22:13:20 UTC is the
 * 15th in India. */
static void test_date_zone(void **state)
{
    (void)state;
    setenv("TZ", "IST-5:30", 1);
    tzset();
    static const struct match_case cases[] = {
        { "ON 15-Nov-2023", "1 6" },
        { "ON 14-Nov-2023", "3" },
        { "BEFORE 15-Nov-2023", "3 4 5" },
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
    setenv("TZ", "EST5", 1);
    tzset();
    static const struct match_case cases2[] = {
        { "ON 14-Nov-2023", "1 6" },
        { "ON 13-Nov-2023", "3" },
        { "SINCE 15-Nov-2023", "2" },
    };
    check_cases(cases2, sizeof(cases2) / sizeof(cases2[0]));
    setenv("TZ", "UTC0", 1);
    tzset();
}

static const struct match_case content_cases[] = {
    /* address and subject headers, RFC 2047 decoded, case-folded */
    { "FROM \"j\xc3\xbcrgen\"", "1" },
    { "FROM \"M\xc3\x9cLLER\"", "1" },
    { "FROM juergen@example.de", "1" },
    { "FROM example.com", "2" },
    { "FROM \"\"", "1 2 3 4" },
    { "TO bob", "1" },
    { "TO alice@example.com", "1 2" },
    { "CC carol", "2" },
    { "BCC eve", "4" },
    { "SUBJECT \"gr\xc3\xbc\xc3\x9f" "e\"", "1" },
    { "SUBJECT {5}\r\nK\xc3\x96LN", "1" },
    { "SUBJECT quarterly", "2" },
    { "SUBJECT \"long subject\"", "4" },
    { "SUBJECT {4}\r\nlong", "4" },
    /* HEADER: any field of the name; "" matches when the field exists,
     * even empty */
    { "HEADER Subject \"\"", "1 2 3 4" },
    { "HEADER X-Empty \"\"", "1" },
    { "HEADER X-Missing \"\"", "" },
    { "HEADER X-Spam yes", "3" },
    { "HEADER x-spam YES", "3" },
    { "HEADER Received hop2", "1" },
    { "HEADER received \"from a\"", "1" },
    { "HEADER Date 2020", "4" },
    /* BODY: decoded text of the text parts only */
    { "BODY \"sch\xc3\xb6ne\"", "1" },
    { "BODY \"GR\xc3\x9c\xc3\x9f" "E\"", "1" },
    { "BODY \"caf\xc3\xa9\"", "2" },
    { "BODY \"CAF\xc3\x89 CR\xc3\x88ME\"", "2" },
    { "BODY \"soft line break\"", "2" },
    { "BODY quarterly", "3" },
    { "BODY X-Spam", "" },
    { "BODY \"\"", "1 2 3 4 5" },
    /* TEXT: header and body */
    { "TEXT quarterly", "2 3" },
    { "TEXT X-Spam", "3" },
    { "TEXT \"sch\xc3\xb6ne\"", "1" },
    { "TEXT \"M\xc3\xbcller\"", "1" },
    { "TEXT \"Subject: a long subject\"", "4" },
    /* SENT*: the Date header's day in its own zone */
    { "SENTON 14-Nov-2023", "1" },
    { "SENTON 15-Nov-2023", "2" },
    { "SENTBEFORE 15-Nov-2023", "1 4" },
    { "SENTSINCE 15-Nov-2023", "2" },
    { "SENTSINCE 1-Jan-2020", "1 2 4" },
    { "SENTON 1-Jan-2020", "4" },
    { "NOT SENTBEFORE 1-Jan-2030", "3 5 6" },
    /* mixed with index keys */
    { "SEEN FROM example", "1 3" },
    { "SEEN FROM example.de", "1" },
    { "OR DRAFT BODY quarterly", "3 4 6" },
    { "NOT FROM bob", "1 3 4 5 6" },
};

static void test_content_keys(void **state)
{
    (void)state;
    check_cases(content_cases, sizeof(content_cases) / sizeof(content_cases[0]));
}

/* An AND stops at the first key that fails: the message is loaded only
 * when an index key did not already decide. */
static void test_short_circuit(void **state)
{
    (void)state;
    setup_messages();
    const char *error;
    char *got = run("DELETED FROM nobody", &error);
    assert_string_equal(got, "");
    free(got);
    for (size_t i = 0; i < NMSG; i++)
        assert_int_equal(fixtures[i].loads, (i == 2 || i == 5) ? 1 : 0);
    setup_messages();
    got = run("OR SEEN SUBJECT x", &error);
    free(got);
    for (size_t i = 0; i < NMSG; i++)
        assert_int_equal(fixtures[i].loads, (fixtures[i].msg.flags & MAILDIR_FLAG_SEEN) ? 0 : 1);
    /* without a load callback content keys never match */
    setup_messages();
    for (size_t i = 0; i < NMSG; i++)
        fixtures[i].msg.load = NULL;
    got = run("FROM \"\"", &error);
    assert_string_equal(got, "");
    free(got);
    setup_messages();
}

static void test_needs_content(void **state)
{
    (void)state;
    static const struct {
        const char *program;
        bool needs;
    } cases[] = {
        { "SEEN", false },
        { "ALL UID 1:* LARGER 5 BEFORE 1-Jan-2020 NOT (KEYWORD x)", false },
        { "OR SEEN FROM x", true },
        { "NOT SENTON 1-Jan-2020", true },
        { "(UID 1 (BODY x))", true },
        { "TEXT x", true },
        { "HEADER a b", true },
        { "SENTSINCE 1-Jan-2020", true },
        { "SENTBEFORE 1-Jan-2020", true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool needs = !cases[i].needs;
        const char *error;
        char *got = run_with(cases[i].program, keywords, 3, &needs, &error);
        assert_non_null(got);
        if (needs != cases[i].needs)
            fail_msg("\"%s\": needs content %d", cases[i].program, needs);
        free(got);
    }
}

static const struct {
    const char *program;
    const char *error;
} bad_cases[] = {
    { "", "Missing search program" },
    { "FOO", "Unknown search key" },
    { "SEEN FOO", "Unknown search key" },
    { "\"SEEN\"", "Unknown search key" },
    { "{4}\r\nSEEN", "Unknown search key" },
    { "NIL", "Unknown search key" },
    { "CHARSET UTF-8 ALL", "Unknown search key" },
    { "KEYWORD", "Missing search argument" },
    { "KEYWORD (a)", "Expected a string" },
    { "LARGER", "Missing search argument" },
    { "LARGER abc", "Invalid number" },
    { "LARGER -1", "Invalid number" },
    { "LARGER \"\"", "Invalid number" },
    { "SMALLER 99999999999999999999", "Invalid number" },
    { "LARGER 1.5", "Invalid number" },
    { "BEFORE", "Missing search argument" },
    { "BEFORE 1-Foo-2023", "Invalid search date" },
    { "SINCE 31-Feb-2024", "Invalid search date" },
    { "ON \"1-Jan-2023 00:00:00 +0000\"", "Invalid search date" },
    { "ON 1-Jan-2023 00:00:00", "Invalid sequence set" },
    { "SENTON 2023-01-01", "Invalid search date" },
    { "ON (1-Jan-2023)", "Expected a string" },
    { "UID", "Invalid UID set" },
    { "UID abc", "Invalid UID set" },
    { "UID 0", "Invalid UID set" },
    { "UID (1)", "Invalid UID set" },
    { "0", "Invalid sequence set" },
    { "1:0", "Invalid sequence set" },
    { "1,", "Invalid sequence set" },
    { "*x", "Invalid sequence set" },
    { "NOT", "Missing search argument" },
    { "OR SEEN", "Missing search argument" },
    { "OR", "Missing search argument" },
    { "()", "Empty search list" },
    { "(SEEN ())", "Empty search list" },
    { "HEADER", "Missing search argument" },
    { "HEADER From", "Missing search argument" },
    { "HEADER \"\" x", "Invalid header name" },
    { "FROM", "Missing search argument" },
    { "FROM (a)", "Expected a string" },
    { "BODY", "Missing search argument" },
    { "TEXT", "Missing search argument" },
    /* a failure after content keys were set up (leak check under ASan) */
    { "OR FROM x", "Missing search argument" },
    { "NOT (FROM x BODY y TEXT z HEADER a b SUBJECT)", "Missing search argument" },
    { "(OR (FROM x) (NOT TEXT))", "Missing search argument" },
    { "FROM x (TO y (CC z (BOGUS)))", "Unknown search key" },
};

static void test_bad_programs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const char *error = NULL;
        char *got = run(bad_cases[i].program, &error);
        if (got != NULL)
            fail_msg("\"%s\": accepted (matched \"%s\")", bad_cases[i].program, got);
        if (strstr(error, bad_cases[i].error) == NULL)
            fail_msg("\"%s\": error \"%s\", expected \"%s\"", bad_cases[i].program, error,
                     bad_cases[i].error);
    }
    /* a header name of 201 characters */
    char prog[300];
    memset(prog, 0, sizeof(prog));
    strcpy(prog, "HEADER ");
    memset(prog + 7, 'X', 201);
    strcat(prog, " x");
    const char *error;
    assert_null(run(prog, &error));
    assert_string_equal(error, "Invalid header name");
    prog[7 + 200] = ' ';
    prog[7 + 201] = 'x';
    prog[7 + 202] = '\0';
    char *got = run(prog, &error);
    assert_non_null(got);
    free(got);
}

/* Bounds: nesting depth and the number of keys. */
static void test_limits(void **state)
{
    (void)state;
    struct mg_buf b = MG_BUF_INIT;
    const char *error;
    /* NOT chains: the key under 63 NOTs is at depth 64 */
    for (int i = 0; i < 63; i++)
        mg_buf_append_str(&b, "NOT ");
    mg_buf_append_str(&b, "SEEN");
    char *got = run(mg_buf_cstr(&b), &error);
    assert_non_null(got);
    assert_string_equal(got, "2 4 5");
    free(got);
    mg_buf_reset(&b);
    for (int i = 0; i < 64; i++)
        mg_buf_append_str(&b, "NOT ");
    mg_buf_append_str(&b, "FROM x");
    assert_null(run(mg_buf_cstr(&b), &error));
    assert_string_equal(error, "Search program too complex");
    /* OR chains */
    mg_buf_reset(&b);
    for (int i = 0; i < 70; i++)
        mg_buf_append_str(&b, "OR SEEN ");
    mg_buf_append_str(&b, "SUBJECT x");
    assert_null(run(mg_buf_cstr(&b), &error));
    assert_string_equal(error, "Search program too complex");
    /* keys: 1000 fine, 1001 too many */
    mg_buf_reset(&b);
    for (int i = 0; i < 999; i++)
        mg_buf_append_str(&b, "SEEN ");
    mg_buf_append_str(&b, "ALL");
    got = run(mg_buf_cstr(&b), &error);
    assert_non_null(got);
    free(got);
    mg_buf_append_str(&b, " FROM x");
    assert_null(run(mg_buf_cstr(&b), &error));
    assert_string_equal(error, "Search program too complex");
    mg_buf_free(&b);
}

/* Keywords are bits of a 64-bit mask: names past the 64th never match
 * (and shifting by them would be undefined). */
static void test_many_keywords(void **state)
{
    (void)state;
    char *names[70];
    for (int i = 0; i < 70; i++) {
        names[i] = malloc(8);
        snprintf(names[i], 8, "k%d", i);
    }
    for (size_t i = 0; i < NMSG; i++)
        fixtures[i].msg.keywords = UINT64_MAX;
    const char *error;
    char *got = run_with("KEYWORD k63", names, 70, NULL, &error);
    assert_string_equal(got, "1 2 3 4 5 6");
    free(got);
    got = run_with("KEYWORD k64", names, 70, NULL, &error);
    assert_string_equal(got, "");
    free(got);
    got = run_with("UNKEYWORD k69", names, 70, NULL, &error);
    assert_string_equal(got, "1 2 3 4 5 6");
    free(got);
    for (int i = 0; i < 70; i++)
        free(names[i]);
    setup_messages();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_keys),
        cmocka_unit_test(test_date_zone),
        cmocka_unit_test(test_content_keys),
        cmocka_unit_test(test_short_circuit),
        cmocka_unit_test(test_needs_content),
        cmocka_unit_test(test_bad_programs),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_many_keywords),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
