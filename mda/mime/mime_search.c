#include "mda/mime/mime_search.h"

#include <string.h>

#include "common/utf8.h"

/* Upper case at even code points, lower case right after. */
static bool in_even_pairs(uint32_t cp, uint32_t first, uint32_t last)
{
    return cp >= first && cp <= last && ((cp - first) & 1) == 0;
}

uint32_t mime_search_fold_char(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp < 0x100) {
        if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
            return cp + 32;
        if (cp == 0xb5)
            return 0x3bc; /* micro sign -> mu */
        return cp;
    }
    if (cp < 0x180) { /* Latin Extended-A */
        if (in_even_pairs(cp, 0x100, 0x12f) || in_even_pairs(cp, 0x132, 0x137) ||
            in_even_pairs(cp, 0x14a, 0x177))
            return cp + 1;
        if (in_even_pairs(cp, 0x139, 0x148) || in_even_pairs(cp, 0x179, 0x17e))
            return cp + 1;
        if (cp == 0x178)
            return 0xff;
        if (cp == 0x17f)
            return 's';
        return cp;
    }
    if (cp < 0x250) { /* Latin Extended-B: the regular pairs */
        if (in_even_pairs(cp, 0x1cd, 0x1dc) || in_even_pairs(cp, 0x1de, 0x1ef) ||
            in_even_pairs(cp, 0x1f8, 0x21f) || in_even_pairs(cp, 0x222, 0x233) ||
            in_even_pairs(cp, 0x246, 0x24f))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x370 && cp < 0x400) { /* Greek */
        if (cp == 0x386)
            return 0x3ac;
        if (cp >= 0x388 && cp <= 0x38a)
            return cp + 37;
        if (cp == 0x38c)
            return 0x3cc;
        if (cp == 0x38e || cp == 0x38f)
            return cp + 63;
        if ((cp >= 0x391 && cp <= 0x3a1) || (cp >= 0x3a3 && cp <= 0x3ab))
            return cp + 32;
        if (cp == 0x3c2)
            return 0x3c3; /* final sigma */
        if (in_even_pairs(cp, 0x3d8, 0x3ef))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x400 && cp < 0x530) { /* Cyrillic */
        if (cp <= 0x40f)
            return cp + 80;
        if (cp <= 0x42f)
            return cp + 32;
        if (in_even_pairs(cp, 0x460, 0x481) || in_even_pairs(cp, 0x48a, 0x4bf) ||
            in_even_pairs(cp, 0x4d0, 0x52f))
            return cp + 1;
        if (cp == 0x4c0)
            return 0x4cf;
        if (cp >= 0x4c1 && cp <= 0x4ce && ((cp - 0x4c1) & 1) == 0)
            return cp + 1;
        return cp;
    }
    if (cp >= 0x531 && cp <= 0x556) /* Armenian */
        return cp + 48;
    if (cp >= 0x1e00 && cp < 0x1f00) { /* Latin Extended Additional */
        if (in_even_pairs(cp, 0x1e00, 0x1e95) || in_even_pairs(cp, 0x1ea0, 0x1eff))
            return cp + 1;
        if (cp == 0x1e9e)
            return 0xdf; /* capital sharp s */
        return cp;
    }
    if (cp >= 0xff21 && cp <= 0xff3a) /* fullwidth A-Z */
        return cp + 32;
    return cp;
}

void mime_search_fold(const char *in, size_t len, struct mg_buf *out)
{
    size_t i = 0;

    mg_buf_reserve(out, len);
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x80) {
            mg_buf_append_byte(out, c >= 'A' && c <= 'Z' ? (char)(c + 32) : (char)c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = mg_utf8_decode(in + i, len - i, &cp);
        if (n == 0) {
            cp = 0xfffd;
            n = 1;
        }
        char enc[4];
        size_t m = mg_utf8_encode(mime_search_fold_char(cp), enc);
        mg_buf_append(out, enc, m);
        i += n;
    }
}

void mime_search_init(struct mime_search *search, const char *key, size_t len)
{
    memset(search, 0, sizeof(*search));
    mime_search_fold(key, len, &search->needle);
}

void mime_search_deinit(struct mime_search *search)
{
    mg_buf_free(&search->needle);
    mg_buf_free(&search->scratch);
}

bool mime_search_match(struct mime_search *search, const char *text, size_t len)
{
    if (search->needle.len == 0)
        return true;
    mg_buf_reset(&search->scratch);
    mime_search_fold(text, len, &search->scratch);
    return memmem(search->scratch.data, search->scratch.len, search->needle.data,
                  search->needle.len) != NULL;
}
