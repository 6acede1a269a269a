#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/dotstuff.h"

struct decoded {
    char content[512];
    size_t content_len;
    bool is_done;
    size_t consumed;
    uint64_t bare_lf, bare_cr;
    bool too_big;
};

static void decode(const char *in, size_t len, size_t step, uint64_t max, bool normalize,
                   struct decoded *d)
{
    struct mg_dotstuff_decoder dec;
    mg_dotstuff_decoder_init(&dec, max, normalize);
    struct mg_buf out = MG_BUF_INIT;
    size_t pos = 0;
    bool done = false;
    while (pos < len && !done) {
        size_t n = step == 0 ? len - pos : (len - pos < step ? len - pos : step);
        size_t used = mg_dotstuff_decode(&dec, in + pos, n, &out, &done);
        assert_true(used <= n);
        pos += used;
        if (!done)
            assert_int_equal(used, n);
    }
    assert_true(out.len < sizeof(d->content));
    memcpy(d->content, mg_buf_cstr(&out), out.len);
    d->content[out.len] = '\0';
    d->content_len = out.len;
    d->is_done = done;
    d->consumed = pos;
    d->bare_lf = dec.bare_lf;
    d->bare_cr = dec.bare_cr;
    d->too_big = dec.is_too_big;
    mg_buf_free(&out);
}

static const struct {
    const char *input;
    bool normalize;
    const char *content;
    int done;           /* 1: the end marker was found */
    size_t rest;        /* bytes left after the marker */
    unsigned bare_lf, bare_cr;
} cases[] = {
    { ".\r\n", false, "", 1, 0, 0, 0 },
    { "a\r\n.\r\n", false, "a\r\n", 1, 0, 0, 0 },
    { "a\r\n.\r\nQUIT\r\n", false, "a\r\n", 1, 6, 0, 0 },
    { "..a\r\n.\r\n", false, ".a\r\n", 1, 0, 0, 0 },
    { "x\r\n..\r\n.\r\n", false, "x\r\n.\r\n", 1, 0, 0, 0 },
    { "x\r\n...\r\n.\r\n", false, "x\r\n..\r\n", 1, 0, 0, 0 },
    { "a.b\r\n.\r\n", false, "a.b\r\n", 1, 0, 0, 0 },
    /* Smuggling attempts: none of these end the data. */
    { "a\n.\n", false, "a\n.\n", 0, 0, 2, 0 },
    { "a\n.\r\nMAIL FROM:<x>\r\n", false, "a\n.\r\nMAIL FROM:<x>\r\n", 0, 0, 1, 0 },
    { "a\r\n.\nMAIL", false, "a\r\n\nMAIL", 0, 0, 1, 0 },
    { "a\r.\r\nRCPT", false, "a\r.\r\nRCPT", 0, 0, 0, 1 },
    { "a\r\n.\rb", false, "a\r\n\rb", 0, 0, 0, 1 },
    /* Bare line ends normalised. */
    { "a\nb\rc\r\n.\r\n", true, "a\r\nb\r\nc\r\n", 1, 0, 1, 1 },
    { "a\n.\n", true, "a\r\n.\r\n", 0, 0, 2, 0 },
    { "a\r\r\n.\r\n", true, "a\r\n\r\n", 1, 0, 0, 1 },
};

static void test_dotstuff_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].input;
        size_t len = strlen(in);
        for (size_t step = 0; step <= 2; step++) {
            struct decoded d;
            decode(in, len, step, 0, cases[i].normalize, &d);
            if (strcmp(d.content, cases[i].content) != 0)
                fail_msg("case %zu step %zu: content mismatch", i, step);
            assert_int_equal(d.is_done, cases[i].done);
            if (d.is_done)
                assert_int_equal(len - d.consumed, cases[i].rest);
            assert_int_equal(d.bare_lf, cases[i].bare_lf);
            assert_int_equal(d.bare_cr, cases[i].bare_cr);
        }
    }
}

static void test_dotstuff_size_limit(void **state)
{
    (void)state;
    struct decoded d;
    decode("0123456789\r\n.\r\n", 15, 1, 5, false, &d);
    assert_true(d.is_done);
    assert_true(d.too_big);
    assert_true(d.content_len <= 5);
    decode("0123\r\n.\r\n", 9, 0, 6, false, &d);
    assert_false(d.too_big);
    assert_string_equal(d.content, "0123\r\n");
}

static void test_dotstuff_roundtrip(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "", "a\r\n", ".\r\n", "..\r\n", ".a\r\n.b\r\n", "no newline at end",
        "x\r\n.\r\ny\r\n", "line\r\n.\r\n.\r\n", ".",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        for (size_t split = 0; split <= strlen(bodies[i]); split++) {
            struct mg_dotstuff_encoder enc;
            mg_dotstuff_encoder_init(&enc);
            struct mg_buf wire = MG_BUF_INIT;
            mg_dotstuff_encode(&enc, bodies[i], split, &wire);
            mg_dotstuff_encode(&enc, bodies[i] + split, strlen(bodies[i]) - split, &wire);
            mg_dotstuff_encode_end(&enc, &wire);
            struct decoded d;
            decode(wire.data, wire.len, 0, 0, false, &d);
            assert_true(d.is_done);
            assert_int_equal(d.consumed, wire.len);
            /* Content comes back, with CR LF added if it lacked one. */
            size_t blen = strlen(bodies[i]);
            assert_memory_equal(d.content, bodies[i], blen);
            bool had_crlf = blen == 0 || (blen >= 2 && strcmp(bodies[i] + blen - 2, "\r\n") == 0);
            assert_int_equal(d.content_len, blen + (had_crlf ? 0 : 2));
            mg_buf_free(&wire);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dotstuff_decode_table),
        cmocka_unit_test(test_dotstuff_size_limit),
        cmocka_unit_test(test_dotstuff_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
