/* mda/imap/imap_seqset: parsing, normalising, resolving against a view,
 * membership, and writing UID sets. Random sets are checked against a
 * naive reading of the text. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/imap/imap_seqset.h"

/* The normalised ranges as text ("1:4,7,9:*"), or NULL when refused. */
static char *parse_dump(const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_seqset set;
    char *result = NULL;
    if (imap_seqset_parse(arena, copy, len, &set) == 0) {
        struct mg_buf b = MG_BUF_INIT;
        for (size_t i = 0; i < set.count; i++) {
            const struct imap_seq_range *r = &set.ranges[i];
            assert_true(r->lo <= r->hi);
            if (i > 0)
                mg_buf_append_byte(&b, ',');
            if (r->lo == IMAP_SEQ_STAR)
                mg_buf_append_byte(&b, '*');
            else
                mg_buf_printf(&b, "%u", r->lo);
            if (r->hi != r->lo) {
                if (r->hi == IMAP_SEQ_STAR)
                    mg_buf_append_str(&b, ":*");
                else
                    mg_buf_printf(&b, ":%u", r->hi);
            }
        }
        result = strdup(mg_buf_cstr(&b));
        mg_buf_free(&b);
    }
    mg_arena_free(&arena);
    free(copy);
    return result;
}

static const struct {
    const char *text;
    const char *normalised; /* NULL: refused */
} parse_cases[] = {
    { "1", "1" },
    { "1:4,7,9:*", "1:4,7,9:*" },
    { "*", "*" },
    { "*:*", "*" },
    { "5:2", "2:5" },
    { "*:5", "5:*" },
    { "3,1,2", "1:3" },
    { "1:5,3:8", "1:8" },
    { "7:9,1:2,4", "1:2,4,7:9" },
    { "1:2,4:5", "1:2,4:5" },
    { "1:2,3:5", "1:5" },
    { "2,2,2", "2" },
    { "10:1,5", "1:10" },
    /* every "n:*" contains '*': the smallest and the largest n say it all */
    { "5:*,2:*,*,9:*", "2:*,9:*" },
    { "*,*", "*" },
    { "*,3", "3,*" },
    { "4294967294", "4294967294" },
    { "1:4294967294", "1:4294967294" },
    { "4294967294:*", "4294967294:*" },
    /* refused */
    { "", NULL },
    { "0", NULL },
    { "0:5", NULL },
    { "5:0", NULL },
    { "01", NULL },
    { "1:02", NULL },
    { "4294967295", NULL },
    { "4294967296", NULL },
    { "99999999999999999999", NULL },
    { "1,", NULL },
    { ",1", NULL },
    { "1,,2", NULL },
    { "1::2", NULL },
    { "1:", NULL },
    { ":1", NULL },
    { "1:*:3", NULL },
    { "**", NULL },
    { "*1", NULL },
    { "1*", NULL },
    { "a", NULL },
    { "1 2", NULL },
    { "-1", NULL },
    { "+1", NULL },
    { "1.5", NULL },
    { "$", NULL },
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        char *got = parse_dump(parse_cases[i].text);
        const char *exp = parse_cases[i].normalised;
        if ((got == NULL) != (exp == NULL) || (got != NULL && strcmp(got, exp) != 0))
            fail_msg("\"%s\": got %s, expected %s", parse_cases[i].text, got ? got : "(refused)",
                     exp ? exp : "(refused)");
        free(got);
    }
}

/* Resolves text against uids[0..count); returns -1 or the positions as
 * "0,1,4" in *out. */
static int resolve(const char *text, bool is_uid, const uint32_t *uids, size_t count, char *out,
                   size_t out_size)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_seqset set;
    uint32_t *idx;
    size_t n;
    int r = imap_seqset_parse(arena, text, strlen(text), &set);
    assert_int_equal(r, 0);
    r = imap_seqset_resolve(arena, &set, is_uid, uids, count, &idx, &n);
    if (r == 0) {
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            assert_true(idx[i] < count);
            if (i > 0)
                assert_true(idx[i] > idx[i - 1]);
            o += (size_t)snprintf(out + o, out_size - o, "%s%u", i ? "," : "", idx[i]);
            assert_true(o < out_size);
        }
    }
    mg_arena_free(&arena);
    return r;
}

static const uint32_t view_uids[] = { 10, 20, 30, 40, 50 };

static const struct {
    const char *text;
    bool is_uid;
    const char *positions; /* NULL: error */
} resolve_cases[] = {
    /* sequence numbers */
    { "1:*", false, "0,1,2,3,4" },
    { "2,4", false, "1,3" },
    { "*", false, "4" },
    { "5:2", false, "1,2,3,4" },
    { "*:3", false, "2,3,4" },
    { "4,2,2,3:4", false, "1,2,3" },
    { "1:2,2:3,5", false, "0,1,2,4" },
    { "1:*,1:*,2", false, "0,1,2,3,4" },
    { "6", false, NULL },
    { "1:6", false, NULL },
    { "6:*", false, NULL },
    { "2,6", false, NULL },
    { "4294967294", false, NULL },
    /* UIDs: missing ones are skipped, '*' is the highest UID */
    { "10:30", true, "0,1,2" },
    { "15:35", true, "1,2" },
    { "*", true, "4" },
    { "60:*", true, "4" },
    { "*:60", true, "4" },
    { "45:*", true, "4" },
    { "1:*", true, "0,1,2,3,4" },
    { "55", true, "" },
    { "1:9", true, "" },
    { "25,10,50", true, "0,4" },
    { "50,40,30:30,10", true, "0,2,3,4" },
    { "1:4294967294", true, "0,1,2,3,4" },
    { "4294967294:*", true, "4" },
};

static void test_resolve(void **state)
{
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof(resolve_cases) / sizeof(resolve_cases[0]); i++) {
        int r = resolve(resolve_cases[i].text, resolve_cases[i].is_uid, view_uids, 5, out,
                        sizeof(out));
        const char *exp = resolve_cases[i].positions;
        if (exp == NULL) {
            if (r != -1)
                fail_msg("%s \"%s\": resolved as %s", resolve_cases[i].is_uid ? "UID" : "seq",
                         resolve_cases[i].text, out);
        } else if (r != 0 || strcmp(out, exp) != 0) {
            fail_msg("%s \"%s\": got %s, expected %s", resolve_cases[i].is_uid ? "UID" : "seq",
                     resolve_cases[i].text, r ? "(error)" : out, exp);
        }
    }
}

static void test_resolve_empty(void **state)
{
    (void)state;
    char out[64];
    /* "1:*" and "*" name nothing in an empty mailbox; a number is wrong */
    assert_int_equal(resolve("1:*", false, NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(resolve("*", false, NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(resolve("5:*", false, NULL, 0, out, sizeof(out)), 0);
    assert_int_equal(resolve("1", false, NULL, 0, out, sizeof(out)), -1);
    assert_int_equal(resolve("1,2:*", false, NULL, 0, out, sizeof(out)), -1);
    /* UIDs: nothing, never an error */
    assert_int_equal(resolve("1:*", true, NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(resolve("*", true, NULL, 0, out, sizeof(out)), 0);
    assert_int_equal(resolve("7", true, NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

/* "1:*,1:*,..." over a big view: the result is bounded by the view, and
 * it costs ranges + messages, not their product. */
static void test_resolve_many_ranges(void **state)
{
    (void)state;
    size_t count = 100000;
    uint32_t *uids = malloc(count * sizeof(*uids));
    for (size_t i = 0; i < count; i++)
        uids[i] = (uint32_t)(i * 2 + 1);
    struct mg_buf text = MG_BUF_INIT;
    for (int i = 0; i < 100000; i++)
        mg_buf_append_str(&text, i ? ",1:*" : "1:*");
    for (int i = 0; i < 50000; i++)
        mg_buf_printf(&text, ",%d", i + 1);
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_seqset set;
    assert_int_equal(imap_seqset_parse(arena, text.data, text.len, &set), 0);
    assert_true(set.count <= 3);
    for (int is_uid = 0; is_uid < 2; is_uid++) {
        uint32_t *idx;
        size_t n;
        assert_int_equal(imap_seqset_resolve(arena, &set, is_uid, uids, count, &idx, &n), 0);
        assert_int_equal(n, count);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(idx[i], i);
    }
    /* many disjoint ranges: membership by binary search */
    mg_buf_reset(&text);
    for (int i = 0; i < 100000; i++)
        mg_buf_printf(&text, "%s%d", i ? "," : "", 4 * i + 1);
    assert_int_equal(imap_seqset_parse(arena, text.data, text.len, &set), 0);
    assert_int_equal(set.count, 100000);
    for (uint32_t u = 1; u < 400010; u++)
        assert_int_equal(imap_seqset_contains_uid(&set, u, 500000), u % 4 == 1 && u < 400000);
    mg_arena_free(&arena);
    mg_buf_free(&text);
    free(uids);
}

static void test_contains(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_seqset set;
    assert_int_equal(imap_seqset_parse(arena, "1:3,7,10:*", 10, &set), 0);
    static const uint32_t yes[] = { 1, 2, 3, 7, 10, 11, 12 };
    static const uint32_t no[] = { 4, 5, 6, 8, 9, 13, 100 };
    for (size_t i = 0; i < 7; i++) {
        assert_true(imap_seqset_contains_uid(&set, yes[i], 12));
        assert_false(imap_seqset_contains_uid(&set, no[i], 12));
    }
    /* "15:*" with 12 as '*' is 12:15 */
    assert_int_equal(imap_seqset_parse(arena, "15:*", 4, &set), 0);
    assert_true(imap_seqset_contains_uid(&set, 12, 12));
    assert_true(imap_seqset_contains_uid(&set, 15, 12));
    assert_false(imap_seqset_contains_uid(&set, 11, 12));
    assert_false(imap_seqset_contains_uid(&set, 16, 12));
    assert_int_equal(imap_seqset_parse(arena, "*", 1, &set), 0);
    assert_true(imap_seqset_contains_uid(&set, 12, 12));
    assert_false(imap_seqset_contains_uid(&set, 11, 12));
    mg_arena_free(&arena);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* The naive meaning of a set as written: each range with '*' replaced by
 * star, then swapped into order. */
struct naive_range {
    uint32_t a, b;
    bool a_star, b_star;
};

static bool naive_contains(const struct naive_range *r, size_t n, uint32_t x, uint32_t star)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t a = r[i].a_star ? star : r[i].a, b = r[i].b_star ? star : r[i].b;
        if (a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        if (x >= a && x <= b)
            return true;
    }
    return false;
}

static void test_random_sets(void **state)
{
    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        struct naive_range r[8];
        size_t n = 1 + rng() % 8;
        char text[256];
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            r[i].a_star = rng() % 6 == 0;
            r[i].b_star = rng() % 4 == 0;
            r[i].a = 1 + rng() % 30;
            r[i].b = rng() % 2 ? r[i].a : 1 + rng() % 30;
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", i ? "," : "");
            if (r[i].a_star)
                o += (size_t)snprintf(text + o, sizeof(text) - o, "*");
            else
                o += (size_t)snprintf(text + o, sizeof(text) - o, "%u", r[i].a);
            if (r[i].b_star || r[i].b != r[i].a || r[i].a_star) {
                if (r[i].b_star)
                    o += (size_t)snprintf(text + o, sizeof(text) - o, ":*");
                else
                    o += (size_t)snprintf(text + o, sizeof(text) - o, ":%u", r[i].b);
            } else {
                r[i].b = r[i].a;
            }
        }
        struct mg_arena *arena = mg_arena_new(0);
        struct imap_seqset set;
        assert_int_equal(imap_seqset_parse(arena, text, o, &set), 0);

        /* membership against every value, for several '*' values */
        for (uint32_t star = 0; star <= 32; star += 1 + rng() % 8) {
            for (uint32_t x = 0; x <= 34; x++) {
                if (imap_seqset_contains_uid(&set, x, star) != naive_contains(r, n, x, star))
                    fail_msg("\"%s\" with * = %u: contains(%u) is wrong", text, star, x);
            }
        }

        /* resolve: a random view of ascending UIDs */
        uint32_t uids[32];
        size_t count = 0;
        for (uint32_t u = 1; u <= 32 && count < 32; u++) {
            if (rng() % 3 == 0)
                uids[count++] = u;
        }
        for (int is_uid = 0; is_uid < 2; is_uid++) {
            uint32_t *idx;
            size_t nidx;
            int ret = imap_seqset_resolve(arena, &set, is_uid, uids, count, &idx, &nidx);
            uint32_t star = is_uid ? (count ? uids[count - 1] : 0) : (uint32_t)count;
            /* naive: in sequence mode any number beyond count (after '*'
             * is replaced) is an error, except that an empty mailbox
             * tolerates ranges that end in '*' */
            bool naive_error = false;
            if (!is_uid) {
                for (size_t i = 0; i < n; i++) {
                    uint32_t a = r[i].a_star ? star : r[i].a, b = r[i].b_star ? star : r[i].b;
                    uint32_t hi = a > b ? a : b;
                    if (count == 0 ? !(r[i].a_star || r[i].b_star) : hi > count)
                        naive_error = true;
                }
            }
            if (naive_error) {
                if (ret != -1)
                    fail_msg("seq \"%s\" (count %zu) should be an error", text, count);
                continue;
            }
            if (ret != 0)
                fail_msg("%s \"%s\" (count %zu) refused", is_uid ? "UID" : "seq", text, count);
            size_t k = 0;
            for (size_t pos = 0; pos < count; pos++) {
                uint32_t x = is_uid ? uids[pos] : (uint32_t)(pos + 1);
                if (count > 0 && naive_contains(r, n, x, star)) {
                    if (k >= nidx || idx[k] != pos)
                        fail_msg("%s \"%s\": position %zu missing", is_uid ? "UID" : "seq", text,
                                 pos);
                    k++;
                }
            }
            assert_int_equal(k, nidx);
        }
        mg_arena_free(&arena);
    }
}

static void test_write_uids(void **state)
{
    (void)state;
    static const struct {
        uint32_t uids[8];
        size_t n;
        const char *text;
    } cases[] = {
        { { 0 }, 0, "" },
        { { 1 }, 1, "1" },
        { { 1, 2, 3 }, 3, "1:3" },
        { { 1, 2, 3, 7 }, 4, "1:3,7" },
        { { 1, 3, 5 }, 3, "1,3,5" },
        { { 4, 5, 9, 10, 11, 20 }, 6, "4:5,9:11,20" },
        { { 1, 1, 2 }, 3, "1:2" },
        { { 5, 5 }, 2, "5" },
        { { 5, 5, 7, 7, 8 }, 5, "5,7:8" },
        { { 4294967293, 4294967294 }, 2, "4294967293:4294967294" },
        { { 4294967295 }, 1, "4294967295" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mg_buf b = MG_BUF_INIT;
        imap_seqset_write_uids(&b, cases[i].uids, cases[i].n);
        assert_string_equal(mg_buf_cstr(&b), cases[i].text);
        mg_buf_free(&b);
    }
    /* random ascending UIDs: written, parsed and resolved back */
    for (int iter = 0; iter < 2000; iter++) {
        uint32_t uids[64];
        size_t n = 0;
        uint32_t u = 0;
        while (n < 64 && rng() % 20 != 0) {
            u += 1 + (rng() % 3 == 0 ? rng() % 5 : 0);
            uids[n++] = u;
        }
        if (n == 0)
            continue;
        struct mg_buf b = MG_BUF_INIT;
        imap_seqset_write_uids(&b, uids, n);
        struct mg_arena *arena = mg_arena_new(0);
        struct imap_seqset set;
        assert_int_equal(imap_seqset_parse(arena, b.data, b.len, &set), 0);
        uint32_t *idx;
        size_t nidx;
        assert_int_equal(imap_seqset_resolve(arena, &set, true, uids, n, &idx, &nidx), 0);
        assert_int_equal(nidx, n);
        /* compact: as many ranges as runs */
        size_t runs = 1;
        for (size_t i = 1; i < n; i++)
            runs += uids[i] != uids[i - 1] + 1;
        assert_int_equal(set.count, runs);
        mg_arena_free(&arena);
        mg_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_empty),
        cmocka_unit_test(test_resolve_many_ranges),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_random_sets),
        cmocka_unit_test(test_write_uids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
