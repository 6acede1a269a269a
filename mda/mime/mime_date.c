#include "mda/mime/mime_date.h"

#include <stdbool.h>
#include <string.h>

#include "common/ascii.h"
#include "mda/mime/mime_lex.h"

enum tok_type { TOK_END, TOK_NUMBER, TOK_WORD, TOK_CHAR };

struct date_tok {
    enum tok_type type;
    const char *s; /* TOK_WORD, TOK_NUMBER: the text */
    size_t len;
    long num;      /* TOK_NUMBER */
    char c;        /* TOK_CHAR */
};

struct date_lexer {
    struct mime_lex lx;
    bool broken; /* unterminated comment */
};

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void next_tok(struct date_lexer *dl, struct date_tok *t)
{
    struct mime_lex *lx = &dl->lx;

    memset(t, 0, sizeof(*t));
    if (mime_lex_skip_cfws(lx) < 0)
        dl->broken = true;
    if (dl->broken || lx->p >= lx->end) {
        t->type = TOK_END;
        return;
    }
    const unsigned char *start = lx->p;
    if (is_digit(*lx->p)) {
        t->type = TOK_NUMBER;
        while (lx->p < lx->end && is_digit(*lx->p) && lx->p - start < 9) {
            t->num = t->num * 10 + (*lx->p - '0');
            lx->p++;
        }
    } else if (is_alpha(*lx->p)) {
        t->type = TOK_WORD;
        while (lx->p < lx->end && is_alpha(*lx->p))
            lx->p++;
    } else {
        t->type = TOK_CHAR;
        t->c = (char)*lx->p++;
    }
    t->s = (const char *)start;
    t->len = (size_t)(lx->p - start);
}

static int month_from_word(const struct date_tok *t)
{
    static const char *const months[] = {
        "january", "february", "march", "april", "may", "june", "july",
        "august", "september", "october", "november", "december",
    };
    if (t->len < 3)
        return -1;
    for (int i = 0; i < 12; i++) {
        size_t mlen = strlen(months[i]);
        /* "Jan", "Janu", "January", but not "Janx" */
        if (t->len > mlen)
            continue;
        bool ok = true;
        for (size_t k = 0; k < t->len && ok; k++)
            ok = mg_ascii_tolower(t->s[k]) == months[i][k];
        if (ok)
            return i + 1;
    }
    return -1;
}

static int zone_from_word(const struct date_tok *t)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {
        { "UT", 0 },       { "UTC", 0 },      { "GMT", 0 },      { "Z", 0 },
        { "EST", -5 * 60 }, { "EDT", -4 * 60 }, { "CST", -6 * 60 }, { "CDT", -5 * 60 },
        { "MST", -7 * 60 }, { "MDT", -6 * 60 }, { "PST", -8 * 60 }, { "PDT", -7 * 60 },
    };
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        if (mg_ascii_eq(t->s, t->len, zones[i].name))
            return zones[i].minutes;
    }
    /* Military letters and unknown names: RFC 5322 section 4.3 says to
     * read them as -0000 (unknown offset). */
    return 0;
}

long mime_date_days_from_civil(int year, int month, int day)
{
    /* Howard Hinnant's days_from_civil */
    long y = (long)year - (month <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (month + 9) % 12;
    long doy = (153 * mp + 2) / 5 + day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int mime_date_parse_fields(const char *value, size_t len, struct mime_date *date_r)
{
    struct date_lexer dl;
    struct date_tok t;

    memset(date_r, 0, sizeof(*date_r));
    memset(&dl, 0, sizeof(dl));
    mime_lex_init(&dl.lx, value, len);

    next_tok(&dl, &t);
    if (t.type == TOK_WORD) {
        /* day of week, checked by nobody */
        next_tok(&dl, &t);
        if (t.type == TOK_CHAR && t.c == ',')
            next_tok(&dl, &t);
    }
    /* day */
    if (t.type != TOK_NUMBER || t.len > 2 || t.num < 1 || t.num > 31)
        return -1;
    date_r->day = (int)t.num;
    next_tok(&dl, &t);
    if (t.type == TOK_CHAR && (t.c == '-' || t.c == '/'))
        next_tok(&dl, &t);
    /* month */
    if (t.type == TOK_WORD)
        date_r->month = month_from_word(&t);
    else if (t.type == TOK_NUMBER && t.len <= 2 && t.num >= 1 && t.num <= 12)
        date_r->month = (int)t.num;
    else
        return -1;
    if (date_r->month < 0)
        return -1;
    next_tok(&dl, &t);
    if (t.type == TOK_CHAR && (t.c == '-' || t.c == '/'))
        next_tok(&dl, &t);
    /* year */
    if (t.type != TOK_NUMBER || t.len < 2 || t.len > 4)
        return -1;
    date_r->year = (int)t.num;
    if (t.len == 2)
        date_r->year += date_r->year < 50 ? 2000 : 1900;
    else if (t.len == 3)
        date_r->year += 1900;
    /* time */
    next_tok(&dl, &t);
    if (t.type != TOK_NUMBER || t.len > 2 || t.num > 23)
        return -1;
    date_r->hour = (int)t.num;
    next_tok(&dl, &t);
    if (t.type != TOK_CHAR || (t.c != ':' && t.c != '.'))
        return -1;
    next_tok(&dl, &t);
    if (t.type != TOK_NUMBER || t.len > 2 || t.num > 59)
        return -1;
    date_r->minute = (int)t.num;
    next_tok(&dl, &t);
    if (t.type == TOK_CHAR && (t.c == ':' || t.c == '.')) {
        next_tok(&dl, &t);
        if (t.type != TOK_NUMBER || t.len > 2 || t.num > 60)
            return -1;
        date_r->second = (int)t.num;
        next_tok(&dl, &t);
    }
    /* zone */
    if (t.type == TOK_CHAR && (t.c == '+' || t.c == '-')) {
        int sign = t.c == '-' ? -1 : 1;
        next_tok(&dl, &t);
        if (t.type == TOK_NUMBER && t.len == 4 && t.num % 100 < 60)
            date_r->zone_minutes = sign * (int)(t.num / 100 * 60 + t.num % 100);
    } else if (t.type == TOK_WORD) {
        date_r->zone_minutes = zone_from_word(&t);
    } else if (t.type == TOK_NUMBER && t.len == 4 && t.num % 100 < 60) {
        /* "0200" without its sign */
        date_r->zone_minutes = (int)(t.num / 100 * 60 + t.num % 100);
    }
    return 0;
}

int mime_date_parse(const char *value, size_t len, time_t *time_r,
                    int *zone_minutes_r)
{
    struct mime_date d;

    if (mime_date_parse_fields(value, len, &d) < 0)
        return -1;
    long days = mime_date_days_from_civil(d.year, d.month, d.day);
    long long t = (long long)days * 86400 + d.hour * 3600 + d.minute * 60 + d.second;
    t -= (long long)d.zone_minutes * 60;
    *time_r = (time_t)t;
    if (zone_minutes_r != NULL)
        *zone_minutes_r = d.zone_minutes;
    return 0;
}
