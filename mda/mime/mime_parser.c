#include "mda/mime/mime_parser.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "mda/mime/mime_header.h"

/* The Content-* fields a part's structure depends on; the first one of
 * each kind counts (later duplicates are ignored, as in Dovecot). */
enum field_kind {
    FIELD_CONTENT_TYPE,
    FIELD_CONTENT_TRANSFER_ENCODING,
    FIELD_CONTENT_ID,
    FIELD_CONTENT_DESCRIPTION,
    FIELD_CONTENT_DISPOSITION,
    FIELD_CONTENT_LANGUAGE,
    FIELD_CONTENT_LOCATION,
    FIELD_CONTENT_MD5,
    FIELD_MIME_VERSION,
    FIELD_COUNT
};

static const char *const field_names[FIELD_COUNT] = {
    [FIELD_CONTENT_TYPE] = "Content-Type",
    [FIELD_CONTENT_TRANSFER_ENCODING] = "Content-Transfer-Encoding",
    [FIELD_CONTENT_ID] = "Content-ID",
    [FIELD_CONTENT_DESCRIPTION] = "Content-Description",
    [FIELD_CONTENT_DISPOSITION] = "Content-Disposition",
    [FIELD_CONTENT_LANGUAGE] = "Content-Language",
    [FIELD_CONTENT_LOCATION] = "Content-Location",
    [FIELD_CONTENT_MD5] = "Content-MD5",
    [FIELD_MIME_VERSION] = "MIME-Version",
};

struct field_value {
    const char *value;
    size_t len;
    bool seen;
};

struct boundary {
    const char *str;
    size_t len;
};

struct parser {
    struct mg_arena *arena;
    const char *data;
    size_t len;
    struct mime_content_ctx content;
    struct mg_buf tmp;

    /* Boundaries of the enclosing multiparts, outermost first. */
    struct boundary boundaries[MIME_PARSER_MAX_DEPTH];
    unsigned int nboundaries;
    unsigned int part_count;

    /* Why the innermost part stopped: at the boundary line starting at
     * stop_line (boundaries[stop_index]), or at the end of the data
     * (stop_index < 0). stop_end is where the stopped part's content ends:
     * before the line break that precedes the boundary line. */
    int stop_index;
    bool stop_close;
    size_t stop_line;
    size_t stop_end;
};

static void parse_part(struct parser *p, struct mime_part *part, size_t pos);

static size_t next_line(const struct parser *p, size_t pos)
{
    const char *nl = memchr(p->data + pos, '\n', p->len - pos);
    return nl == NULL ? p->len : (size_t)(nl - p->data) + 1;
}

/* Which active boundary, if any, the line at pos is; the longest match
 * wins (RFC 2046 only asks that the line start with it). */
static int find_boundary(const struct parser *p, size_t pos, bool *close_r)
{
    const char *d = p->data;

    if (p->nboundaries == 0 || p->len - pos < 3 || d[pos] != '-' ||
        d[pos + 1] != '-')
        return -1;
    size_t content_end;
    const char *nl = memchr(d + pos + 2, '\n', p->len - pos - 2);
    content_end = nl == NULL ? p->len : (size_t)(nl - d);
    if (content_end > pos + 2 && d[content_end - 1] == '\r')
        content_end--;
    size_t size = content_end - (pos + 2);
    /* "--boundary--": match without the closing dashes first, so that they
     * are not taken for part of a longer boundary (Dovecot's rule); then,
     * for boundaries that end in "--" themselves (RFC 2046's own example
     * "---- main boundary ----"), with them. */
    size_t find_size = size;
    if (find_size > 2 && d[content_end - 1] == '-' && d[content_end - 2] == '-')
        find_size -= 2;

    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; pass++) {
        if (pass == 1) {
            if (find_size == size)
                break;
            find_size = size;
        }
        for (int i = (int)p->nboundaries - 1; i >= 0; i--) {
            const struct boundary *b = &p->boundaries[i];
            if (b->len <= find_size && (best < 0 || b->len > p->boundaries[best].len) &&
                memcmp(d + pos + 2, b->str, b->len) == 0) {
                best = i;
                if (b->len == find_size)
                    break;
            }
        }
    }
    if (best >= 0) {
        size_t blen = p->boundaries[best].len;
        *close_r = size >= blen + 2 && d[pos + 2 + blen] == '-' &&
                   d[pos + 3 + blen] == '-';
    }
    return best;
}

/* Where content that started at region_start ends when the line at
 * line_start is a boundary: the line break before it is the boundary's. */
static size_t end_before_line(const struct parser *p, size_t line_start,
                              size_t region_start)
{
    if (line_start <= region_start)
        return region_start;
    size_t e = line_start - 1; /* the LF */
    if (e > region_start && p->data[e - 1] == '\r')
        e--;
    return e;
}

static void stop_at(struct parser *p, size_t line, int index, bool close,
                    size_t region_start)
{
    p->stop_line = line;
    p->stop_index = index;
    p->stop_close = close;
    p->stop_end = end_before_line(p, line, region_start);
}

static void stop_at_eof(struct parser *p)
{
    p->stop_line = p->len;
    p->stop_index = -1;
    p->stop_close = false;
    p->stop_end = p->len;
}

/* Scans lines from region_start (a line start) to the next boundary line
 * of any enclosing multipart, or the end. */
static void scan_to_boundary(struct parser *p, size_t region_start)
{
    size_t pos = region_start;

    if (p->nboundaries == 0) {
        stop_at_eof(p);
        return;
    }
    while (pos < p->len) {
        bool close;
        int k = find_boundary(p, pos, &close);
        if (k >= 0) {
            stop_at(p, pos, k, close, region_start);
            return;
        }
        pos = next_line(p, pos);
    }
    stop_at_eof(p);
}

static struct mime_part *new_part(struct parser *p, struct mime_part *parent,
                                  struct mime_part ***tail)
{
    struct mime_part *part = mg_arena_zalloc(p->arena, sizeof(*part));
    part->parent = parent;
    part->depth = parent == NULL ? 0 : parent->depth + 1;
    part->type = "text";
    part->subtype = "plain";
    p->part_count++;
    if (tail != NULL) {
        **tail = part;
        *tail = &part->next;
    }
    return part;
}

static bool can_have_children(const struct parser *p, const struct mime_part *part)
{
    return part->depth + 1 < MIME_PARSER_MAX_DEPTH &&
           p->part_count < MIME_PARSER_MAX_PARTS;
}

static enum field_kind field_kind(const struct mime_header_field *f)
{
    char c = mg_ascii_tolower(f->name[0]);
    if (f->name_len < 10 || (c != 'c' && c != 'm'))
        return FIELD_COUNT;
    for (int k = 0; k < FIELD_COUNT; k++) {
        if (strlen(field_names[k]) == f->name_len &&
            mime_header_field_is(f, field_names[k]))
            return (enum field_kind)k;
    }
    return FIELD_COUNT;
}

static const char *unfolded_copy(struct parser *p, const struct field_value *fv)
{
    mg_buf_reset(&p->tmp);
    mime_header_unfold(fv->value, fv->len, &p->tmp);
    return mime_content_strdup(p->arena, p->tmp.data, p->tmp.len);
}

static void apply_default_type(struct mime_part *part)
{
    const struct mime_part *parent = part->parent;
    if (parent != NULL && (parent->flags & MIME_PART_FLAG_MULTIPART) != 0 &&
        strcmp(parent->subtype, "digest") == 0) {
        part->type = "message";
        part->subtype = "rfc822";
    } else {
        part->type = "text";
        part->subtype = "plain";
    }
}

/* Sets the part's content fields from the collected header values. */
static void apply_fields(struct parser *p, struct mime_part *part,
                         struct field_value *fv)
{
    struct mime_content_ctx *ctx = &p->content;
    bool is_mime = fv[FIELD_MIME_VERSION].seen || fv[FIELD_CONTENT_TYPE].seen ||
                   (part->parent != NULL &&
                    (part->parent->flags & MIME_PART_FLAG_MULTIPART) != 0);

    apply_default_type(part);
    if (!is_mime)
        return;
    part->flags |= MIME_PART_FLAG_IS_MIME;

    if (fv[FIELD_CONTENT_TYPE].seen) {
        const char *type, *subtype;
        const struct mime_param *params;
        unsigned int count;
        if (mime_content_parse_type(ctx, fv[FIELD_CONTENT_TYPE].value,
                                    fv[FIELD_CONTENT_TYPE].len, &type, &subtype,
                                    &params, &count) == 0) {
            part->type = type;
            part->subtype = subtype;
            part->params = params;
            part->param_count = count;
        }
    }
    if (fv[FIELD_CONTENT_TRANSFER_ENCODING].seen) {
        const char *cte;
        if (mime_content_parse_cte(ctx, fv[FIELD_CONTENT_TRANSFER_ENCODING].value,
                                   fv[FIELD_CONTENT_TRANSFER_ENCODING].len, &cte) == 0) {
            part->content_transfer_encoding = cte;
            part->cte = mime_transfer_cte_from_name(cte, strlen(cte));
        }
    }
    if (fv[FIELD_CONTENT_DISPOSITION].seen) {
        (void)mime_content_parse_disposition(
            ctx, fv[FIELD_CONTENT_DISPOSITION].value, fv[FIELD_CONTENT_DISPOSITION].len,
            &part->disposition, &part->disposition_params,
            &part->disposition_param_count);
    }
    if (fv[FIELD_CONTENT_LANGUAGE].seen) {
        (void)mime_content_parse_language(
            ctx, fv[FIELD_CONTENT_LANGUAGE].value, fv[FIELD_CONTENT_LANGUAGE].len,
            &part->languages, &part->language_count);
    }
    if (fv[FIELD_CONTENT_ID].seen)
        part->content_id = unfolded_copy(p, &fv[FIELD_CONTENT_ID]);
    if (fv[FIELD_CONTENT_DESCRIPTION].seen)
        part->content_description = unfolded_copy(p, &fv[FIELD_CONTENT_DESCRIPTION]);
    if (fv[FIELD_CONTENT_LOCATION].seen)
        part->content_location = unfolded_copy(p, &fv[FIELD_CONTENT_LOCATION]);
    if (fv[FIELD_CONTENT_MD5].seen)
        part->content_md5 = unfolded_copy(p, &fv[FIELD_CONTENT_MD5]);
}

static void classify(const struct parser *p, struct mime_part *part)
{
    if (strcmp(part->type, "multipart") == 0) {
        part->flags |= MIME_PART_FLAG_MULTIPART;
    } else if (strcmp(part->type, "message") == 0 &&
               (strcmp(part->subtype, "rfc822") == 0 ||
                strcmp(part->subtype, "global") == 0)) {
        part->flags |= MIME_PART_FLAG_MESSAGE;
    } else if (strcmp(part->type, "text") == 0) {
        part->flags |= MIME_PART_FLAG_TEXT;
    }
    if ((part->flags & (MIME_PART_FLAG_MULTIPART | MIME_PART_FLAG_MESSAGE)) != 0 &&
        !can_have_children(p, part)) {
        part->flags &= ~(unsigned int)(MIME_PART_FLAG_MULTIPART | MIME_PART_FLAG_MESSAGE);
        part->flags |= MIME_PART_FLAG_OVERFLOW;
    }
}

/* The raw boundary of a multipart part that will be split, or NULL. */
static const char *own_boundary(const struct mime_part *part, size_t *len_r)
{
    if ((part->flags & MIME_PART_FLAG_MULTIPART) == 0)
        return NULL;
    const char *b = mime_param_get_raw(part->params, part->param_count, "boundary");
    if (b == NULL || b[0] == '\0')
        return NULL;
    size_t len = strlen(b);
    *len_r = len > MIME_PARSER_MAX_BOUNDARY ? MIME_PARSER_MAX_BOUNDARY : len;
    return b;
}

/* A boundary line right after the blank line that ends a header takes the
 * blank line as its preceding line break (Dovecot does the same): the
 * header then ends before the blank line and the body is empty. The part's
 * own boundary (a multipart starting with its first part) does not count. */
static void check_boundary_after_header(struct parser *p, struct mime_part *part,
                                        size_t blank, size_t next)
{
    bool close;
    size_t own_len = 0;
    const char *own = own_boundary(part, &own_len);

    if (next >= p->len || p->nboundaries == 0)
        return;
    unsigned int own_index = p->nboundaries;
    if (own != NULL) {
        p->boundaries[p->nboundaries].str = own;
        p->boundaries[p->nboundaries].len = own_len;
        p->nboundaries++;
    }
    int k = find_boundary(p, next, &close);
    if (own != NULL)
        p->nboundaries--;
    if (k < 0 || (own != NULL && (unsigned int)k == own_index))
        return;
    part->header_end = blank;
    part->flags |= MIME_PART_FLAG_HEADER_CUT;
    p->stop_line = next;
    p->stop_index = k;
    p->stop_close = close;
    p->stop_end = blank;
}

/* Reads the header that starts at pos, up to the blank line, the end of
 * the data or a boundary line (which then sets the stop). */
static void parse_header(struct parser *p, struct mime_part *part, size_t pos)
{
    struct field_value fv[FIELD_COUNT];

    memset(fv, 0, sizeof(fv));
    part->header_start = pos;
    for (;;) {
        size_t next;
        bool close;
        if (pos >= p->len) {
            part->header_end = p->len;
            stop_at_eof(p);
            break;
        }
        if (mime_header_is_blank_line(p->data, p->len, pos, &next)) {
            part->header_end = next;
            apply_fields(p, part, fv);
            classify(p, part);
            check_boundary_after_header(p, part, pos, next);
            return;
        }
        int k = find_boundary(p, pos, &close);
        if (k >= 0) {
            stop_at(p, pos, k, close, part->header_start);
            part->header_end = p->stop_end;
            part->flags |= MIME_PART_FLAG_HEADER_CUT;
            break;
        }
        struct mime_header_field field;
        pos = mime_header_parse_field(p->data, p->len, pos, &field);
        enum field_kind kind = field_kind(&field);
        if (kind != FIELD_COUNT && !fv[kind].seen) {
            fv[kind].seen = true;
            fv[kind].value = field.value;
            fv[kind].len = field.value_len > MIME_PARSER_MAX_VALUE ?
                           MIME_PARSER_MAX_VALUE : field.value_len;
        }
    }
    apply_fields(p, part, fv);
    classify(p, part);
}

static void parse_multipart(struct parser *p, struct mime_part *part)
{
    size_t blen = 0;
    const char *boundary = own_boundary(part, &blen);

    if (boundary == NULL) {
        /* No boundary: a multipart without parts (Dovecot shows one empty
         * text/plain part). Its body runs like a leaf's. */
        scan_to_boundary(p, part->header_end);
        part->body_end = p->stop_end;
        return;
    }

    unsigned int k = p->nboundaries++;
    p->boundaries[k].str = boundary;
    p->boundaries[k].len = blen;

    struct mime_part **tail = &part->children;
    scan_to_boundary(p, part->header_end); /* preamble */
    for (;;) {
        if (p->stop_index < (int)k) {
            /* end of data, or the boundary of an enclosing multipart */
            break;
        }
        size_t next = next_line(p, p->stop_line);
        if (p->stop_close) {
            /* the epilogue runs to an enclosing boundary or the end */
            p->nboundaries = k;
            scan_to_boundary(p, next);
            break;
        }
        if (next == p->len && p->data[p->len - 1] != '\n') {
            /* "--boundary" without a line break at the very end: no
             * part starts after it */
            stop_at_eof(p);
            break;
        }
        if (p->part_count >= MIME_PARSER_MAX_PARTS) {
            part->flags |= MIME_PART_FLAG_TRUNCATED;
            scan_to_boundary(p, next);
            continue;
        }
        struct mime_part *child = new_part(p, part, &tail);
        parse_part(p, child, next);
    }
    p->nboundaries = k;
    part->body_end = p->stop_end;
}

static void parse_part(struct parser *p, struct mime_part *part, size_t pos)
{
    parse_header(p, part, pos);

    if ((part->flags & MIME_PART_FLAG_HEADER_CUT) != 0) {
        /* The stop is already set: the body is empty. An encapsulated
         * message still gets its (empty) child. */
        part->body_end = part->header_end;
        if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0) {
            struct mime_part *child = new_part(p, part, NULL);
            part->children = child;
            child->header_start = child->header_end = child->body_end = part->header_end;
            child->flags |= MIME_PART_FLAG_HEADER_CUT | MIME_PART_FLAG_TEXT;
        }
        return;
    }
    if ((part->flags & MIME_PART_FLAG_MULTIPART) != 0) {
        parse_multipart(p, part);
    } else if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0) {
        struct mime_part *child = new_part(p, part, NULL);
        part->children = child;
        parse_part(p, child, part->header_end);
        part->body_end = p->stop_end;
    } else {
        scan_to_boundary(p, part->header_end);
        part->body_end = p->stop_end;
    }
}

/* Body sizes and line counts, in one pass over the data: every body start
 * and end is a point where the running counts are sampled. */
struct size_point {
    size_t offset;
    struct mime_part *part;
    bool is_end;
};

static int size_point_cmp(const void *a, const void *b)
{
    const struct size_point *pa = a, *pb = b;
    if (pa->offset != pb->offset)
        return pa->offset < pb->offset ? -1 : 1;
    return (int)pa->is_end - (int)pb->is_end; /* starts first */
}

static void compute_sizes(struct parser *p, struct mime_part *root)
{
    size_t n = 0, count = p->part_count * 2;
    struct size_point *points = mg_reallocarray(NULL, count, sizeof(*points));

    for (struct mime_part *part = root; part != NULL; part = mime_part_next(part)) {
        points[n++] = (struct size_point){ part->header_end, part, false };
        points[n++] = (struct size_point){ part->body_end, part, true };
    }
    qsort(points, n, sizeof(*points), size_point_cmp);

    size_t pos = 0;
    uint64_t lf = 0, bare = 0;
    for (size_t i = 0; i < n; i++) {
        size_t off = points[i].offset;
        while (pos < off) {
            const char *nl = memchr(p->data + pos, '\n', off - pos);
            if (nl == NULL) {
                pos = off;
                break;
            }
            size_t at = (size_t)(nl - p->data);
            lf++;
            if (at == 0 || p->data[at - 1] != '\r')
                bare++;
            pos = at + 1;
        }
        struct mime_part *part = points[i].part;
        if (!points[i].is_end) {
            part->body_lines = lf;
            part->body_size = bare;
        } else {
            part->body_lines = lf - part->body_lines;
            part->body_size = (part->body_end - part->header_end) + (bare - part->body_size);
        }
    }
    free(points);
}

struct mime_part *mime_parser_parse(struct mg_arena *arena, const char *data,
                                    size_t len)
{
    struct parser p;

    memset(&p, 0, sizeof(p));
    p.arena = arena;
    p.data = data;
    p.len = len;
    mime_content_ctx_init(&p.content, arena);

    struct mime_part *root = new_part(&p, NULL, NULL);
    parse_part(&p, root, 0);
    compute_sizes(&p, root);

    mime_content_ctx_deinit(&p.content);
    mg_buf_free(&p.tmp);
    return root;
}

struct mime_part *mime_part_next(const struct mime_part *part)
{
    if (part->children != NULL)
        return part->children;
    while (part != NULL) {
        if (part->next != NULL)
            return part->next;
        part = part->parent;
    }
    return NULL;
}

struct mime_part *mime_part_next_in(const struct mime_part *part,
                                    const struct mime_part *top)
{
    if (part->children != NULL)
        return part->children;
    while (part != NULL && part != top) {
        if (part->next != NULL)
            return part->next;
        part = part->parent;
    }
    return NULL;
}

unsigned int mime_part_count(const struct mime_part *part)
{
    unsigned int n = 1;
    for (const struct mime_part *c = part->children; c != NULL; c = c->next)
        n += mime_part_count(c);
    return n;
}

const char *mime_part_param(const struct mime_part *part, const char *name)
{
    return mime_param_get(part->params, part->param_count, name);
}

bool mime_part_is_text(const struct mime_part *part)
{
    return (part->flags & (MIME_PART_FLAG_TEXT | MIME_PART_FLAG_OVERFLOW)) != 0;
}
