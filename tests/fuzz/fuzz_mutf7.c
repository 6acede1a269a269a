/* libFuzzer harness for mda/imap/mutf7 (modified UTF-7 mailbox names).
 *
 * The input is tried both ways:
 *  - as modified UTF-7: when it decodes, the result is valid UTF-8 without
 *    NUL, and encoding it gives the input back byte for byte (the decoder
 *    accepts exactly one spelling of each name), which decodes again to
 *    the same UTF-8;
 *  - as UTF-8: when it encodes, the result is printable ASCII, the input
 *    was valid UTF-8, and it decodes back to the input.
 * Failed calls leave the output buffer as it was. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/utf8.h"
#include "mda/imap/mutf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char prefix[] = "prefix";
#define PREFIX_LEN (sizeof(prefix) - 1)

/* memcmp() that takes NULL for empty buffers. */
static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_prefix(const struct mg_buf *b)
{
    if (b->len < PREFIX_LEN || memcmp(b->data, prefix, PREFIX_LEN) != 0)
        mg_panic("output prefix damaged");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct mg_buf dec = MG_BUF_INIT, enc = MG_BUF_INIT, dec2 = MG_BUF_INIT;

    /* modified UTF-7 -> UTF-8 -> modified UTF-7 */
    mg_buf_append_str(&dec, prefix);
    if (mutf7_decode(in, size, &dec) == 0) {
        check_prefix(&dec);
        const char *u = dec.data + PREFIX_LEN;
        size_t ulen = dec.len - PREFIX_LEN;
        if (!mg_utf8_is_valid(u, ulen))
            mg_panic("decoded name is not UTF-8");
        if (memchr(u, '\0', ulen) != NULL)
            mg_panic("decoded name holds NUL");
        if (mutf7_encode(u, ulen, &enc) < 0)
            mg_panic("decoded name does not encode");
        if (!same(enc.data, enc.len, in, size))
            mg_panic("\"%.*s\" decodes, but encodes back as \"%.*s\"", (int)size, in,
                     (int)enc.len, enc.data);
        if (mutf7_decode(enc.data != NULL ? enc.data : "", enc.len, &dec2) < 0 ||
            !same(dec2.data, dec2.len, u, ulen))
            mg_panic("re-encoded name decodes differently");
    } else if (dec.len != PREFIX_LEN) {
        mg_panic("failed decode left output behind");
    }

    /* UTF-8 -> modified UTF-7 -> UTF-8 */
    mg_buf_reset(&enc);
    mg_buf_reset(&dec2);
    mg_buf_append_str(&enc, prefix);
    if (mutf7_encode(in, size, &enc) == 0) {
        check_prefix(&enc);
        const char *e = enc.data + PREFIX_LEN;
        size_t elen = enc.len - PREFIX_LEN;
        if (!mg_utf8_is_valid(in, size) || memchr(in, '\0', size) != NULL)
            mg_panic("invalid UTF-8 encoded");
        for (size_t i = 0; i < elen; i++) {
            if (e[i] < 0x20 || e[i] > 0x7e)
                mg_panic("encoding is not printable ASCII");
        }
        if (mutf7_decode(e, elen, &dec2) < 0)
            mg_panic("our encoding \"%.*s\" does not decode", (int)elen, e);
        if (!same(dec2.data, dec2.len, in, size))
            mg_panic("encoding does not decode to the input");
    } else {
        if (enc.len != PREFIX_LEN)
            mg_panic("failed encode left output behind");
        if (mg_utf8_is_valid(in, size) && memchr(in, '\0', size) == NULL)
            mg_panic("valid UTF-8 refused");
    }

    mg_buf_free(&dec);
    mg_buf_free(&enc);
    mg_buf_free(&dec2);
    return 0;
}
