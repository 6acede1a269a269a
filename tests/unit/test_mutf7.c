/* mda/imap/mutf7: modified UTF-7 mailbox names (RFC 3501 5.1.3). */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/utf8.h"
#include "mda/imap/mutf7.h"

/* Decodes from an exactly sized copy; returns the result (to free) or
 * NULL. The output buffer starts with a prefix that must survive. */
static char *decode(const char *s, size_t len, size_t *len_r)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    struct mg_buf out = MG_BUF_INIT;
    mg_buf_append_str(&out, "pre:");
    int r = mutf7_decode(copy, len, &out);
    free(copy);
    assert_true(out.len >= 4);
    assert_memory_equal(out.data, "pre:", 4);
    char *result = NULL;
    if (r == 0) {
        *len_r = out.len - 4;
        result = malloc(out.len - 4 + 1);
        memcpy(result, out.data + 4, out.len - 4);
        result[out.len - 4] = '\0';
    } else {
        assert_int_equal(r, -1);
        assert_int_equal(out.len, 4); /* nothing left behind */
    }
    mg_buf_free(&out);
    return result;
}

static char *encode(const char *s, size_t len, size_t *len_r)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    struct mg_buf out = MG_BUF_INIT;
    mg_buf_append_str(&out, "pre:");
    int r = mutf7_encode(copy, len, &out);
    free(copy);
    assert_memory_equal(out.data, "pre:", 4);
    char *result = NULL;
    if (r == 0) {
        *len_r = out.len - 4;
        result = malloc(out.len - 4 + 1);
        memcpy(result, out.data + 4, out.len - 4);
        result[out.len - 4] = '\0';
        /* The encoding is printable ASCII. */
        for (size_t i = 0; i < *len_r; i++)
            assert_true(result[i] >= 0x20 && result[i] <= 0x7e);
    } else {
        assert_int_equal(r, -1);
        assert_int_equal(out.len, 4);
    }
    mg_buf_free(&out);
    return result;
}

static const struct {
    const char *mutf7;
    const char *utf8;
} pairs[] = {
    { "", "" },
    { "INBOX", "INBOX" },
    /* RFC 3501 5.1.3 */
    { "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
    { "&-", "&" },
    { "a&-b&-&-", "a&b&&" },
    { "&AOk-", "\xc3\xa9" },
    { "&AOkA6Q-", "\xc3\xa9\xc3\xa9" },
    { "caf&AOk-", "caf\xc3\xa9" },
    { "&AOk--", "\xc3\xa9-" },
    { "&AOk-&-", "\xc3\xa9&" },
    { "&-&AOk-", "&\xc3\xa9" },
    { "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
    /* controls and DEL are shifted */
    { "&AH8-", "\x7f" },
    { "a&AAk-b", "a\tb" },
    /* astral plane: a surrogate pair */
    { "&2D3eAA-", "\xf0\x9f\x98\x80" },
    { "&2,,f,w-", "\xf4\x8f\xbf\xbf" },
    { "x&2D3eAADp-y", "x\xf0\x9f\x98\x80\xc3\xa9y" },
    /* '-' and '+' and '/' are plain */
    { "a-b+c/d", "a-b+c/d" },
};

static void test_pairs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        size_t len = 0;
        char *d = decode(pairs[i].mutf7, strlen(pairs[i].mutf7), &len);
        if (d == NULL || strcmp(d, pairs[i].utf8) != 0)
            fail_msg("decode \"%s\": %s", pairs[i].mutf7, d ? d : "(error)");
        free(d);
        char *e = encode(pairs[i].utf8, strlen(pairs[i].utf8), &len);
        if (e == NULL || strcmp(e, pairs[i].mutf7) != 0)
            fail_msg("encode \"%s\": %s", pairs[i].utf8, e ? e : "(error)");
        free(e);
    }
}

static const char *const bad_mutf7[] = {
    /* unterminated shifts */
    "&", "a&", "&AOk", "&AOkA6Q", "INBOX/&U,BTFw",
    /* empty shift that is not "&-": '&' is not base64 */
    "&&-",
    /* adjacent shifts must have been one */
    "&AOk-&AOk-", "&AOk-&AOkA6Q-",
    /* printable ASCII in base64 */
    "&AGE-", "&AGEAYQ-", "&ACY-", "&AC0-", "&AH4-", "&ACA-",
    /* U+0000 */
    "&AAA-",
    /* bad base64 characters ('/' is ',' here, no padding) */
    "&A/k-", "&AO.-", "&AOk=-", "&AO k-", "&AO\x80k-",
    /* leftover bits that are not zero padding, and too many characters */
    "&AOl-", "&AOn-", "&AOkA-", "&AOkA6QA-", "&A-", "&AO-",
    /* unpaired surrogates */
    "&2D0-", "&3gA-", "&2D0A6Q-", "&2D3YPd4A-", "&3gDYPQ-", "&2D3YPQ-",
    /* raw bytes outside printable ASCII */
    "caf\xc3\xa9", "\xff", "a\x01", "a\x7f", "a\tb", "a\r\nb",
};

static void test_bad_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_mutf7) / sizeof(bad_mutf7[0]); i++) {
        size_t len;
        char *d = decode(bad_mutf7[i], strlen(bad_mutf7[i]), &len);
        if (d != NULL)
            fail_msg("decoded invalid \"%s\"", bad_mutf7[i]);
    }
    /* NUL as a raw byte */
    size_t len;
    assert_null(decode("a\0b", 3, &len));
}

static void test_bad_encode(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xff", "\xc3", "a\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80", "\xc3\xa9\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len;
        char *e = encode(bad[i], strlen(bad[i]), &len);
        if (e != NULL)
            fail_msg("encoded invalid UTF-8 #%zu as %s", i, e);
    }
    size_t len;
    assert_null(encode("a\0b", 3, &len));
}

/* A run of any length is one shift: the decoder refuses adjacent shifts,
 * so the encoder must never split one. */
static void test_long_run(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 1100; n += (n < 300 ? 1 : 97)) {
        struct mg_buf in = MG_BUF_INIT;
        mg_buf_append_byte(&in, 'x');
        for (size_t i = 0; i < n; i++) {
            char enc[4];
            uint32_t cp = i % 3 == 2 ? 0x1f600 + (uint32_t)i % 50 : 0x4e00 + (uint32_t)i;
            mg_buf_append(&in, enc, mg_utf8_encode(cp, enc));
        }
        mg_buf_append_byte(&in, 'y');
        size_t elen, dlen;
        char *e = encode(in.data, in.len, &elen);
        assert_non_null(e);
        /* one '&' and one '-' */
        assert_int_equal(e[0], 'x');
        assert_int_equal(e[1], '&');
        assert_null(strchr(e + 2, '&'));
        assert_ptr_equal(strchr(e, '-'), e + elen - 2);
        char *d = decode(e, elen, &dlen);
        assert_non_null(d);
        assert_int_equal(dlen, in.len);
        assert_memory_equal(d, in.data, in.len);
        free(e);
        free(d);
        mg_buf_free(&in);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static uint32_t random_cp(void)
{
    switch (rng() % 6) {
    case 0:
    case 1:
        return 0x20 + rng() % 0x5f; /* printable ASCII, '&' included */
    case 2:
        return rng() % 3 == 0 ? '&' : (rng() % 2 ? '-' : 1 + rng() % 0x7f);
    case 3:
        return 0x80 + rng() % 0x780; /* two bytes */
    case 4: {
        uint32_t cp;
        do
            cp = 0x800 + rng() % 0xf800;
        while (cp >= 0xd800 && cp <= 0xdfff);
        return cp;
    }
    default:
        return 0x10000 + rng() % 0x100000; /* astral: surrogate pairs */
    }
}

/* Random valid UTF-8 (without NUL) encodes, decodes back, and the
 * encoding is canonical: decoding it and encoding again gives it back. */
static void test_round_trip(void **state)
{
    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        struct mg_buf in = MG_BUF_INIT;
        size_t n = rng() % 24;
        for (size_t i = 0; i < n; i++) {
            char enc[4];
            size_t l = mg_utf8_encode(random_cp(), enc);
            assert_true(l > 0);
            mg_buf_append(&in, enc, l);
        }
        assert_true(mg_utf8_is_valid(in.data, in.len));
        size_t elen, dlen, e2len;
        char *e = encode(in.data ? in.data : "", in.len, &elen);
        assert_non_null(e);
        char *d = decode(e, elen, &dlen);
        if (d == NULL)
            fail_msg("could not decode our own \"%s\"", e);
        assert_int_equal(dlen, in.len);
        assert_memory_equal(d, in.data ? in.data : "", in.len);
        char *e2 = encode(d, dlen, &e2len);
        assert_int_equal(e2len, elen);
        assert_memory_equal(e2, e, elen);
        free(e);
        free(d);
        free(e2);
        mg_buf_free(&in);
    }
}

/* Random printable strings: when one decodes, encoding the result gives
 * the same text back (there is exactly one encoding of each name). */
static void test_canonical(void **state)
{
    (void)state;
    static const char alphabet[] = "&-AOkZeVn2D3eAA,+/x";
    for (int iter = 0; iter < 200000; iter++) {
        char s[16];
        size_t n = 1 + rng() % sizeof(s);
        for (size_t i = 0; i < n; i++)
            s[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
        size_t dlen, elen;
        char *d = decode(s, n, &dlen);
        if (d == NULL)
            continue;
        assert_true(mg_utf8_is_valid(d, dlen));
        char *e = encode(d, dlen, &elen);
        assert_non_null(e);
        if (elen != n || memcmp(e, s, n) != 0)
            fail_msg("\"%.*s\" decodes, but encodes back as \"%s\"", (int)n, s, e);
        free(d);
        free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_bad_decode),
        cmocka_unit_test(test_bad_encode),
        cmocka_unit_test(test_long_run),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
