#include "mda/mime/mime_lex.h"

/* Character classes: bit 1 = atext, bit 2 = MIME token character. The
 * specials of RFC 5322 are in neither; '/', '=' and '?' are atext but MIME
 * tspecials; '.' is a token character (Content-Type subtypes such as
 * "vnd.ms-excel") but not atext (dot-atom handles it). */
#define A 1 /* atext only */
#define T 2 /* token only */
#define B 3 /* both */
static const unsigned char char_class[256] = {
    /* 0x00 - 0x1f: controls */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /*    !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
    0, B, 0, B, B, B, B, B, 0, 0, B, B, 0, B, T, A,
    /* 0  1  2  3  4  5  6  7  8  9  :  ;  <  =  >  ? */
    B, B, B, B, B, B, B, B, B, B, 0, 0, 0, A, 0, A,
    /* @  A  ...                                     */
    0, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    /* P  ...                     Z  [  \  ]  ^  _   */
    B, B, B, B, B, B, B, B, B, B, B, 0, 0, 0, B, B,
    /* `  a  ...                                     */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    /* p  ...                     z  {  |  }  ~  DEL */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, 0,
    /* 0x80 - 0xff: 8-bit text (UTF-8 or legacy charsets) */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
};
#undef A
#undef T
#undef B

void mime_lex_init(struct mime_lex *lx, const char *data, size_t len)
{
    lx->p = (const unsigned char *)data;
    lx->end = lx->p + len;
    lx->comment = NULL;
}

bool mime_lex_is_atext(unsigned char c)
{
    return (char_class[c] & 1) != 0;
}

bool mime_lex_is_token(unsigned char c)
{
    return (char_class[c] & 2) != 0;
}

static int lex_state(const struct mime_lex *lx)
{
    return lx->p < lx->end ? 1 : 0;
}

/* At '(': skips a (nested) comment. */
static int lex_skip_comment(struct mime_lex *lx)
{
    unsigned int level = 1;
    const unsigned char *start = ++lx->p;

    if (lx->comment != NULL)
        mg_buf_reset(lx->comment);
    for (; lx->p < lx->end; lx->p++) {
        switch (*lx->p) {
        case '(':
            level++;
            break;
        case ')':
            if (--level == 0) {
                if (lx->comment != NULL)
                    mg_buf_append(lx->comment, start, (size_t)(lx->p - start));
                lx->p++;
                return lex_state(lx);
            }
            break;
        case '\\':
            /* quoted-pair: keep the escaped character, drop the '\'. A
             * line break cannot be escaped (it is folding). */
            if (lx->p + 1 < lx->end && (lx->p[1] == '\r' || lx->p[1] == '\n'))
                break;
            if (lx->comment != NULL)
                mg_buf_append(lx->comment, start, (size_t)(lx->p - start));
            start = lx->p + 1;
            if (++lx->p >= lx->end)
                return -1;
            break;
        default:
            break;
        }
    }
    return -1; /* missing ')' */
}

int mime_lex_skip_cfws(struct mime_lex *lx)
{
    while (lx->p < lx->end) {
        unsigned char c = *lx->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx->p++;
        } else if (c == '(') {
            if (lex_skip_comment(lx) < 0)
                return -1;
        } else {
            break;
        }
    }
    return lex_state(lx);
}

int mime_lex_atom(struct mime_lex *lx, struct mg_buf *out)
{
    const unsigned char *start = lx->p;

    while (lx->p < lx->end && mime_lex_is_atext(*lx->p))
        lx->p++;
    if (lx->p == start)
        return -1;
    mg_buf_append(out, start, (size_t)(lx->p - start));
    return mime_lex_skip_cfws(lx);
}

int mime_lex_dot_atom(struct mime_lex *lx, struct mg_buf *out)
{
    int ret;

    if (lx->p >= lx->end || !mime_lex_is_atext(*lx->p))
        return -1;
    for (;;) {
        const unsigned char *start = lx->p;
        while (lx->p < lx->end && mime_lex_is_atext(*lx->p))
            lx->p++;
        mg_buf_append(out, start, (size_t)(lx->p - start));
        if ((ret = mime_lex_skip_cfws(lx)) <= 0)
            return ret;
        if (*lx->p != '.')
            return 1;
        lx->p++;
        mg_buf_append_byte(out, '.');
        if ((ret = mime_lex_skip_cfws(lx)) <= 0)
            return ret;
    }
}

int mime_lex_token(struct mime_lex *lx, struct mg_buf *out)
{
    const unsigned char *start = lx->p;

    while (lx->p < lx->end && mime_lex_is_token(*lx->p))
        lx->p++;
    mg_buf_append(out, start, (size_t)(lx->p - start));
    return mime_lex_skip_cfws(lx);
}

int mime_lex_quoted(struct mime_lex *lx, struct mg_buf *out)
{
    const unsigned char *start;

    lx->p++; /* the opening quote */
    for (start = lx->p; lx->p < lx->end; lx->p++) {
        switch (*lx->p) {
        case '"':
            mg_buf_append(out, start, (size_t)(lx->p - start));
            lx->p++;
            return mime_lex_skip_cfws(lx);
        case '\n': {
            /* folding inside the string: drop the line break, keep the
             * white space of the continuation line */
            size_t n = (size_t)(lx->p - start);
            if (n > 0 && start[n - 1] == '\r')
                n--;
            mg_buf_append(out, start, n);
            start = lx->p + 1;
            break;
        }
        case '\\':
            mg_buf_append(out, start, (size_t)(lx->p - start));
            if (lx->p + 1 < lx->end && (lx->p[1] == '\r' || lx->p[1] == '\n')) {
                /* a line break cannot be escaped: drop the '\' and let
                 * the break be folding */
                start = lx->p + 1;
                break;
            }
            if (++lx->p >= lx->end)
                return -1;
            start = lx->p;
            break;
        default:
            break;
        }
    }
    /* Missing '"': keep what was there so callers can be lenient. */
    mg_buf_append(out, start, (size_t)(lx->p - start));
    return -1;
}

/* A word of a phrase that is not quoted: atext and dots (obs-phrase). */
static int lex_atom_or_dots(struct mime_lex *lx, struct mg_buf *out)
{
    const unsigned char *start = lx->p;

    while (lx->p < lx->end && (mime_lex_is_atext(*lx->p) || *lx->p == '.'))
        lx->p++;
    mg_buf_append(out, start, (size_t)(lx->p - start));
    return mime_lex_skip_cfws(lx);
}

int mime_lex_phrase(struct mime_lex *lx, struct mg_buf *out)
{
    int ret;

    if (lx->p >= lx->end)
        return 0;
    if (*lx->p == '.')
        return -1;
    for (;;) {
        if (*lx->p == '"')
            ret = mime_lex_quoted(lx, out);
        else
            ret = lex_atom_or_dots(lx, out);
        if (ret <= 0)
            return ret;
        if (!mime_lex_is_atext(*lx->p) && *lx->p != '"' && *lx->p != '.')
            return 1;
        mg_buf_append_byte(out, ' ');
    }
}

/* At '[': copies the literal with its brackets, line breaks of folding
 * removed. */
static int lex_domain_literal(struct mime_lex *lx, struct mg_buf *out)
{
    const unsigned char *start = lx->p;
    size_t mark = out->len;

    for (; lx->p < lx->end; lx->p++) {
        if (*lx->p == '\\') {
            if (lx->p + 1 < lx->end && (lx->p[1] == '\r' || lx->p[1] == '\n'))
                continue; /* no escaping a line break */
            if (++lx->p >= lx->end)
                break;
        } else if (*lx->p == '\n') {
            size_t n = (size_t)(lx->p - start);
            if (n > 0 && start[n - 1] == '\r')
                n--;
            mg_buf_append(out, start, n);
            start = lx->p + 1;
        } else if (*lx->p == ']') {
            lx->p++;
            mg_buf_append(out, start, (size_t)(lx->p - start));
            return mime_lex_skip_cfws(lx);
        }
    }
    mg_buf_truncate(out, mark);
    return -1; /* missing ']' */
}

int mime_lex_domain(struct mime_lex *lx, struct mg_buf *out)
{
    lx->p++; /* '@' */
    if (mime_lex_skip_cfws(lx) <= 0)
        return -1;
    if (*lx->p == '[')
        return lex_domain_literal(lx, out);
    return mime_lex_dot_atom(lx, out);
}
