#include "mda/imap/imap_seqset.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"

static int parse_number(const char **p, const char *end, uint32_t *n_r)
{
    if (*p < end && **p == '*') {
        (*p)++;
        *n_r = IMAP_SEQ_STAR;
        return 0;
    }
    uint64_t n = 0;
    const char *start = *p;
    while (*p < end && **p >= '0' && **p <= '9') {
        n = n * 10 + (uint64_t)(**p - '0');
        if (n > 0xffffffffull - 1)
            return -1;
        (*p)++;
    }
    if (*p == start || n == 0 || *start == '0')
        return -1;
    *n_r = (uint32_t)n;
    return 0;
}

static int cmp_range(const void *x, const void *y)
{
    const struct imap_seq_range *p = x, *q = y;
    return p->lo < q->lo ? -1 : p->lo > q->lo;
}

/* Sorts and merges the ranges without '*' and keeps at most two with it.
 * Every "n:*" means [min(n, max), max(n, max)] for the '*' value max, so
 * all of them contain max and their union is the span of the smallest
 * and the largest n: two ranges say the same whatever max turns out to
 * be. Membership is then a binary search, and resolving errors are the
 * same as for the set as written. */
static void normalize(struct imap_seqset *set)
{
    struct imap_seq_range *r = set->ranges;
    size_t w = 0;
    /* "*" alone is {max}, inside every "n:*": needed only without one. */
    bool has_star = false, has_n_star = false;
    uint32_t star_min = 0, star_max = 0;
    for (size_t i = 0; i < set->count; i++) {
        if (r[i].hi == IMAP_SEQ_STAR) {
            has_star = true;
            if (r[i].lo == IMAP_SEQ_STAR)
                continue;
            if (!has_n_star || r[i].lo < star_min)
                star_min = r[i].lo;
            if (!has_n_star || r[i].lo > star_max)
                star_max = r[i].lo;
            has_n_star = true;
        } else {
            r[w++] = r[i];
        }
    }
    if (w > 1)
        qsort(r, w, sizeof(*r), cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < w; i++) {
        /* hi < 2^32 - 1 here, so hi + 1 does not wrap. */
        if (m > 0 && r[i].lo <= r[m - 1].hi + 1) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
        } else {
            r[m++] = r[i];
        }
    }
    if (has_star && !has_n_star) {
        r[m].lo = IMAP_SEQ_STAR;
        r[m++].hi = IMAP_SEQ_STAR;
    } else if (has_n_star) {
        r[m].lo = star_min;
        r[m++].hi = IMAP_SEQ_STAR;
        if (star_max != star_min) {
            r[m].lo = star_max;
            r[m++].hi = IMAP_SEQ_STAR;
        }
    }
    set->count = m;
}

int imap_seqset_parse(struct mg_arena *arena, const char *text, size_t len,
                      struct imap_seqset *set_r)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == ',';
    struct imap_seq_range *ranges = mg_arena_alloc(arena, cap * sizeof(*ranges));
    size_t n = 0;
    const char *p = text, *end = text + len;
    if (len == 0)
        return -1;
    while (p < end) {
        uint32_t a, b;
        if (parse_number(&p, end, &a) < 0)
            return -1;
        b = a;
        if (p < end && *p == ':') {
            p++;
            if (parse_number(&p, end, &b) < 0)
                return -1;
        }
        if (a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        ranges[n].lo = a;
        ranges[n].hi = b;
        n++;
        if (p < end) {
            if (*p != ',' || p + 1 == end)
                return -1;
            p++;
        }
    }
    set_r->ranges = ranges;
    set_r->count = n;
    normalize(set_r);
    return 0;
}

/* A range of positions in the view, half-open. */
struct pos_range {
    size_t a, b;
};

static int cmp_pos_range(const void *x, const void *y)
{
    const struct pos_range *p = x, *q = y;
    return p->a < q->a ? -1 : p->a > q->a;
}

/* First position with uids[pos] >= uid. */
static size_t lower_bound(const uint32_t *uids, size_t count, uint32_t uid)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int imap_seqset_resolve(struct mg_arena *arena, const struct imap_seqset *set, bool is_uid,
                        const uint32_t *uids, size_t count, uint32_t **idx_r, size_t *n_r)
{
    /* Each range becomes a range of positions; sorted and merged they give
     * the answer in O(ranges log ranges + count), whatever the overlap
     * ("1:*,1:*,..." must not cost ranges * count). */
    uint32_t max_uid = count > 0 ? uids[count - 1] : 0;
    struct pos_range *pr = mg_arena_alloc(arena, (set->count ? set->count : 1) * sizeof(*pr));
    size_t npr = 0;
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
        uint32_t star = is_uid ? max_uid : (uint32_t)count;
        if (hi == IMAP_SEQ_STAR)
            hi = star;
        if (lo == IMAP_SEQ_STAR)
            lo = star;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        size_t a, b;
        if (is_uid) {
            a = lower_bound(uids, count, lo);
            b = hi == UINT32_MAX ? count : lower_bound(uids, count, hi + 1);
        } else {
            if (count == 0) {
                /* "1:*" in an empty mailbox names nothing; "1" is wrong. */
                if (set->ranges[i].hi != IMAP_SEQ_STAR)
                    return -1;
                continue;
            }
            if (hi > count || lo == 0)
                return -1;
            a = lo - 1;
            b = hi;
        }
        if (a < b) {
            pr[npr].a = a;
            pr[npr].b = b;
            npr++;
        }
    }
    if (npr > 1)
        qsort(pr, npr, sizeof(*pr), cmp_pos_range);
    size_t w = 0, total = 0;
    for (size_t r = 0; r < npr; r++) {
        if (w > 0 && pr[r].a <= pr[w - 1].b) {
            if (pr[r].b > pr[w - 1].b)
                pr[w - 1].b = pr[r].b;
        } else {
            pr[w++] = pr[r];
        }
    }
    for (size_t r = 0; r < w; r++)
        total += pr[r].b - pr[r].a;
    uint32_t *idx = mg_arena_alloc(arena, (total ? total : 1) * sizeof(*idx));
    size_t n = 0;
    for (size_t r = 0; r < w; r++) {
        for (size_t k = pr[r].a; k < pr[r].b; k++)
            idx[n++] = (uint32_t)k;
    }
    *idx_r = idx;
    *n_r = n;
    return 0;
}

bool imap_seqset_contains_uid(const struct imap_seqset *set, uint32_t uid, uint32_t max_uid)
{
    /* Sorted, disjoint ranges first (binary search), then at most two
     * with '*' (see normalize()). */
    size_t plain = set->count;
    while (plain > 0 && set->ranges[plain - 1].hi == IMAP_SEQ_STAR)
        plain--;
    size_t lo = 0, hi = plain;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (set->ranges[mid].hi < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < plain && set->ranges[lo].lo <= uid)
        return true;
    for (size_t i = plain; i < set->count; i++) {
        uint32_t a = set->ranges[i].lo == IMAP_SEQ_STAR ? max_uid : set->ranges[i].lo;
        uint32_t b = max_uid;
        if (a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        if (uid >= a && uid <= b)
            return true;
    }
    return false;
}

void imap_seqset_write_uids(struct mg_buf *out, const uint32_t *uids, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        size_t j = i;
        /* Duplicates fold into the run too. */
        while (j + 1 < n && (uids[j + 1] == uids[j] ||
                             (uids[j] != UINT32_MAX && uids[j + 1] == uids[j] + 1)))
            j++;
        if (!first)
            mg_buf_append_byte(out, ',');
        first = false;
        if (uids[j] == uids[i])
            mg_buf_printf(out, "%u", uids[i]);
        else
            mg_buf_printf(out, "%u:%u", uids[i], uids[j]);
        i = j + 1;
    }
}
