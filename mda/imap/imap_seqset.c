#include "mda/imap/imap_seqset.h"

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
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
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
    /* Count first to size the result. */
    uint64_t total = 0;
    uint32_t max_uid = count > 0 ? uids[count - 1] : 0;
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
        if (is_uid) {
            if (hi == IMAP_SEQ_STAR)
                hi = max_uid;
            if (lo == IMAP_SEQ_STAR)
                lo = max_uid;
            if (lo > hi) {
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            size_t a = lower_bound(uids, count, lo);
            size_t b = lower_bound(uids, count, hi == UINT32_MAX ? hi : hi + 1);
            total += b - a;
        } else {
            if (hi == IMAP_SEQ_STAR)
                hi = (uint32_t)count;
            if (lo == IMAP_SEQ_STAR)
                lo = (uint32_t)count;
            if (lo > hi) {
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            if (count == 0) {
                /* "1:*" in an empty mailbox names nothing; "1" is wrong. */
                if (set->ranges[i].hi != IMAP_SEQ_STAR)
                    return -1;
                continue;
            }
            if (hi > count || lo == 0)
                return -1;
            total += hi - lo + 1;
        }
    }
    if (total > count * (uint64_t)set->count + count)
        total = count * (uint64_t)set->count + count;
    uint32_t *idx = mg_arena_alloc(arena, (total ? total : 1) * sizeof(*idx));
    size_t n = 0;
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
        if (is_uid) {
            if (hi == IMAP_SEQ_STAR)
                hi = max_uid;
            if (lo == IMAP_SEQ_STAR)
                lo = max_uid;
            if (lo > hi) {
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            size_t a = lower_bound(uids, count, lo);
            size_t b = lower_bound(uids, count, hi == UINT32_MAX ? hi : hi + 1);
            for (size_t k = a; k < b && n < total; k++)
                idx[n++] = (uint32_t)k;
        } else {
            if (hi == IMAP_SEQ_STAR)
                hi = (uint32_t)count;
            if (lo == IMAP_SEQ_STAR)
                lo = (uint32_t)count;
            if (lo > hi) {
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            for (uint32_t k = lo; count > 0 && k <= hi && n < total; k++)
                idx[n++] = k - 1;
        }
    }
    if (set->count > 1 && n > 1) {
        qsort(idx, n, sizeof(*idx), cmp_u32);
        size_t w = 1;
        for (size_t r = 1; r < n; r++) {
            if (idx[r] != idx[w - 1])
                idx[w++] = idx[r];
        }
        n = w;
    }
    *idx_r = idx;
    *n_r = n;
    return 0;
}

bool imap_seqset_contains_uid(const struct imap_seqset *set, uint32_t uid, uint32_t max_uid)
{
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
        if (hi == IMAP_SEQ_STAR)
            hi = max_uid;
        if (lo == IMAP_SEQ_STAR)
            lo = max_uid;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (uid >= lo && uid <= hi)
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
        while (j + 1 < n && uids[j + 1] == uids[j] + 1)
            j++;
        if (!first)
            mg_buf_append_byte(out, ',');
        first = false;
        if (j == i)
            mg_buf_printf(out, "%u", uids[i]);
        else
            mg_buf_printf(out, "%u:%u", uids[i], uids[j]);
        i = j + 1;
    }
}
