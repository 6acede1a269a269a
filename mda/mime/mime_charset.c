#include "mda/mime/mime_charset.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "common/ascii.h"
#include "common/utf8.h"

static const char replacement_char[] = "\xef\xbf\xbd"; /* U+FFFD */

void mime_charset_utf8_sanitize(const char *in, size_t len, struct mg_buf *out)
{
    size_t i = 0, run = 0;

    mg_buf_reserve(out, len);
    if (len == 0)
        return; /* in may be NULL then */
    while (i < len) {
        if ((unsigned char)in[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = mg_utf8_decode(in + i, len - i, &cp);
        if (n > 0) {
            i += n;
            continue;
        }
        mg_buf_append(out, in + run, i - run);
        mg_buf_append(out, replacement_char, 3);
        i++;
        run = i;
    }
    mg_buf_append(out, in + run, len - run);
}

static bool name_in(const char *name, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (mg_ascii_strcasecmp(name, *list) == 0)
            return true;
    }
    return false;
}

bool mime_charset_is_utf8(const char *charset)
{
    static const char *const utf8_names[] = {
        "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "us",
        "unicode-1-1-utf-8", "x-unknown", "unknown-8bit", "unknown", NULL,
    };
    return charset == NULL || charset[0] == '\0' || name_in(charset, utf8_names);
}

static bool charset_is_latin1(const char *charset)
{
    static const char *const latin1_names[] = {
        "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1",
        "iso-ir-100", "cp819", "ibm819", NULL,
    };
    return name_in(charset, latin1_names);
}

static void latin1_to_utf8(const char *in, size_t len, struct mg_buf *out)
{
    mg_buf_reserve(out, len * 2);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x80) {
            out->data[out->len++] = (char)c;
        } else {
            out->data[out->len++] = (char)(0xc0 | (c >> 6));
            out->data[out->len++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out->data[out->len] = '\0';
}

/* Only plain names reach iconv: glibc gives meaning to suffixes such as
 * "//TRANSLIT", and a message must not choose them. */
static bool charset_name_ok(const char *charset)
{
    size_t n = strlen(charset);
    if (n == 0 || n > MIME_CHARSET_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = charset[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':' || c == '+'))
            return false;
    }
    return true;
}

static bool iconv_to_utf8(const char *charset, const char *in, size_t len,
                          struct mg_buf *out)
{
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1)
        return false;

    char tmp[2048];
    char *inp = (char *)in;
    size_t inleft = len;
    bool flushed = false;
    while (!flushed) {
        char *outp = tmp;
        size_t outleft = sizeof(tmp);
        size_t r;
        if (inleft > 0) {
            r = iconv(cd, &inp, &inleft, &outp, &outleft);
        } else {
            /* end of input: let stateful charsets (ISO-2022-*) return to
             * their initial state */
            r = iconv(cd, NULL, NULL, &outp, &outleft);
            flushed = true;
        }
        mg_buf_append(out, tmp, (size_t)(outp - tmp));
        if (r != (size_t)-1)
            continue;
        if (errno == E2BIG) {
            flushed = false;
            continue;
        }
        /* EILSEQ, or EINVAL for a sequence cut at the end: skip a byte */
        mg_buf_append(out, replacement_char, 3);
        if (inleft > 0) {
            inp++;
            inleft--;
        }
    }
    iconv_close(cd);
    return true;
}

bool mime_charset_to_utf8(const char *charset, const char *in, size_t len,
                          struct mg_buf *out)
{
    if (len == 0) {
        mg_buf_reserve(out, 0);
        return true; /* in may be NULL then */
    }
    if (mime_charset_is_utf8(charset)) {
        mime_charset_utf8_sanitize(in, len, out);
        return true;
    }
    if (charset_is_latin1(charset)) {
        latin1_to_utf8(in, len, out);
        return true;
    }
    if (charset_name_ok(charset)) {
        size_t mark = out->len;
        if (iconv_to_utf8(charset, in, len, out))
            return true;
        mg_buf_truncate(out, mark);
    }
    mime_charset_utf8_sanitize(in, len, out);
    return false;
}
