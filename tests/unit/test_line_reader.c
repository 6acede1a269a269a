#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/line_reader.h"

/* Feeds input in chunks of `step` bytes (0: all at once) and renders every
 * event as text: "L:<line>|", "B:<line>|" (bare LF), "T|" (too long),
 * "X:<chunk>|" (literal chunk, "X$" for the last one). Lines ending with
 * {n} switch to literal mode, as an IMAP session would. */
static char *run_reader(const char *input, size_t len, size_t max_len, size_t step)
{
    struct mg_line_reader r;
    mg_line_reader_init(&r, max_len);
    struct mg_buf in = MG_BUF_INIT;
    struct mg_buf events = MG_BUF_INIT;
    size_t fed = 0;
    for (;;) {
        size_t n = step == 0 ? len - fed : (len - fed < step ? len - fed : step);
        mg_buf_append(&in, input + fed, n);
        fed += n;
        struct mg_line line;
        enum mg_line_status st;
        while ((st = mg_line_reader_next(&r, &in, &line)) != MG_LINE_NEED_MORE) {
            switch (st) {
            case MG_LINE_OK: {
                mg_buf_printf(&events, "%c:%.*s|", line.is_bare_lf ? 'B' : 'L', (int)line.len, line.data);
                uint64_t size;
                bool nonsync;
                size_t prefix;
                if (mg_line_literal_announcement(line.data, line.len, &size, &nonsync, &prefix) == 1)
                    mg_line_reader_expect_literal(&r, size);
                break;
            }
            case MG_LINE_TOO_LONG:
                mg_buf_append_str(&events, "T|");
                break;
            case MG_LINE_LITERAL:
                mg_buf_printf(&events, "X%s:%.*s|", line.is_literal_end ? "$" : "", (int)line.len, line.data);
                break;
            default:
                break;
            }
        }
        mg_line_reader_compact(&r, &in);
        if (fed == len)
            break;
    }
    mg_buf_free(&in);
    return mg_buf_steal(&events, NULL);
}

/* Literal chunks depend on how input arrives; merge them for comparison. */
static void merge_literal_chunks(char *s)
{
    char *out = s;
    const char *p = s;
    while (*p) {
        if (p[0] == 'X' && p[1] == ':') {
            /* a non-final chunk: copy "X$:" marker later */
            const char *end = strchr(p, '|');
            const char *q = end + 1;
            struct mg_buf acc = MG_BUF_INIT;
            mg_buf_append(&acc, p + 2, (size_t)(end - p - 2));
            while (q[0] == 'X') {
                bool last = q[1] == '$';
                const char *e2 = strchr(q, '|');
                mg_buf_append(&acc, q + (last ? 3 : 2), (size_t)(e2 - q - (last ? 3 : 2)));
                q = e2 + 1;
                if (last)
                    break;
            }
            out += sprintf(out, "X$:%s|", mg_buf_cstr(&acc));
            mg_buf_free(&acc);
            p = q;
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
}

static const struct {
    const char *input;
    size_t max_len;
    const char *expect;
} line_cases[] = {
    { "", 100, "" },
    { "abc\r\n", 100, "L:abc|" },
    { "abc\r\ndef\r\n", 100, "L:abc|L:def|" },
    { "abc\ndef\r\n", 100, "B:abc|L:def|" },
    { "\r\n\r\n", 100, "L:|L:|" },
    { "partial", 100, "" },
    { "a\rb\r\n", 100, "L:a\rb|" },
    { "0123456789\r\nok\r\n", 10, "L:0123456789|L:ok|" },
    { "01234567890\r\nok\r\n", 10, "T|L:ok|" },
    { "0123456789012345678901234567890\r\nok\r\n", 10, "T|L:ok|" },
    { "a1 APPEND INBOX {5}\r\nhello\r\n", 100, "L:a1 APPEND INBOX {5}|X$:hello|L:|" },
    { "a1 LOGIN {3+}\r\nbob {4}\r\npass\r\n", 100, "L:a1 LOGIN {3+}|X$:bob|L: {4}|X$:pass|L:|" },
    { "x {0}\r\n\r\n", 100, "L:x {0}|L:|" },
    { "x {4}\r\n\r\n\r\n\r\n", 100, "L:x {4}|X$:\r\n\r\n|L:|" },
};

static void test_line_reader_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const char *in = line_cases[i].input;
        /* Every case, whole and one byte at a time, must give the same. */
        for (size_t step = 0; step <= 3; step++) {
            char *got = run_reader(in, strlen(in), line_cases[i].max_len, step);
            merge_literal_chunks(got);
            if (strcmp(got, line_cases[i].expect) != 0)
                fail_msg("case %zu step %zu: got '%s' want '%s'", i, step, got, line_cases[i].expect);
            free(got);
        }
    }
}

static void test_line_reader_endless_line_bounded(void **state)
{
    (void)state;
    struct mg_line_reader r;
    mg_line_reader_init(&r, 1000);
    struct mg_buf in = MG_BUF_INIT;
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    int too_long = 0;
    for (int i = 0; i < 1000; i++) { /* 4 MB without a newline */
        mg_buf_append(&in, chunk, sizeof(chunk));
        struct mg_line line;
        enum mg_line_status st;
        while ((st = mg_line_reader_next(&r, &in, &line)) != MG_LINE_NEED_MORE)
            too_long += st == MG_LINE_TOO_LONG;
        mg_line_reader_compact(&r, &in);
        assert_true(in.len <= sizeof(chunk)); /* nothing accumulates */
    }
    assert_int_equal(too_long, 1);
    mg_buf_append_str(&in, "tail\r\nnext\r\n");
    struct mg_line line;
    assert_int_equal(mg_line_reader_next(&r, &in, &line), MG_LINE_OK);
    assert_int_equal(line.len, 4);
    assert_memory_equal(line.data, "next", 4);
    mg_buf_free(&in);
}

static void test_line_reader_discard(void **state)
{
    (void)state;
    struct mg_line_reader r;
    mg_line_reader_init(&r, 100);
    struct mg_buf in = MG_BUF_INIT;
    mg_buf_append_str(&in, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
    struct mg_line line;
    assert_int_equal(mg_line_reader_next(&r, &in, &line), MG_LINE_OK);
    assert_int_equal(mg_line_reader_pending(&r, &in), 20);
    assert_int_equal(mg_line_reader_discard(&r, &in), 20);
    assert_int_equal(mg_line_reader_next(&r, &in, &line), MG_LINE_NEED_MORE);
    mg_buf_free(&in);
}

static void test_literal_announcement(void **state)
{
    (void)state;
    uint64_t size;
    bool nonsync;
    size_t prefix;
    assert_int_equal(mg_line_literal_announcement("A APPEND x {12}", 15, &size, &nonsync, &prefix), 1);
    assert_int_equal(size, 12);
    assert_false(nonsync);
    assert_int_equal(prefix, 11);
    assert_int_equal(mg_line_literal_announcement("{0+}", 4, &size, &nonsync, &prefix), 1);
    assert_true(nonsync);
    assert_int_equal(size, 0);
    assert_int_equal(mg_line_literal_announcement("x {4294967295}", 14, &size, &nonsync, &prefix), 1);
    assert_int_equal(mg_line_literal_announcement("x {4294967296}", 14, &size, &nonsync, &prefix), -1);
    assert_int_equal(mg_line_literal_announcement("x {99999999999999999999}", 24, &size, &nonsync, &prefix), -1);
    assert_int_equal(mg_line_literal_announcement("x {}", 4, &size, &nonsync, &prefix), -1);
    assert_int_equal(mg_line_literal_announcement("x {a}", 5, &size, &nonsync, &prefix), 0);
    assert_int_equal(mg_line_literal_announcement("x }", 3, &size, &nonsync, &prefix), 0);
    assert_int_equal(mg_line_literal_announcement("x", 1, &size, &nonsync, &prefix), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_reader_table),
        cmocka_unit_test(test_line_reader_endless_line_bounded),
        cmocka_unit_test(test_line_reader_discard),
        cmocka_unit_test(test_literal_announcement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
