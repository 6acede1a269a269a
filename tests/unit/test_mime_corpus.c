/* Robustness over the malformed and unusual messages of the public corpora
 * (tests/data/corpora: enmime-testdata, MIT; cpython-email-data, PSF; and
 * the stalwart-mail-parser messages; see each SOURCE). For every file, as
 * it is and with every bare LF turned into CRLF:
 *  - the tree is consistent (ranges nested, in order, inside the data);
 *  - the two line-ending variants give the same tree, with offsets that
 *    map onto each other, and the same BODY, BODYSTRUCTURE and ENVELOPE
 *    (sizes count LF as CRLF);
 *  - BODY, BODYSTRUCTURE and ENVELOPE are valid IMAP (parentheses, literal
 *    counts, quoted strings, RFC 3501 grammar);
 *  - every part number that exists resolves through the section parser to
 *    the expected part and a range inside the data, with MIME, HEADER,
 *    TEXT and HEADER.FIELDS where they apply; one past the last does not;
 *  - decoded text and headers are valid UTF-8.
 * Running under ASan/UBSan, this also checks for crashes and leaks. */
#define TEST_MIME_UTIL_LIB
#include "test_mime_util.c"

#include <dirent.h>
#include <sys/stat.h>

#include "common/arena.h"
#include "common/utf8.h"
#include "mda/mime/imap_bodystructure.h"
#include "mda/mime/imap_envelope.h"
#include "mda/mime/imap_section.h"
#include "mda/mime/mime_header.h"
#include "mda/mime/mime_parser.h"
#include "mda/mime/mime_text.h"

struct file_list {
    char **paths;
    size_t count;
};

static void list_files(const char *dir, struct file_list *list)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = mg_asprintf("%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            list_files(path, list);
            free(path);
        } else if (strcmp(e->d_name, "SOURCE") == 0 || strcmp(e->d_name, "copyright") == 0 ||
                   strstr(e->d_name, ".json") != NULL) {
            free(path);
        } else {
            list->paths = mg_reallocarray(list->paths, list->count + 1, sizeof(*list->paths));
            list->paths[list->count++] = path;
        }
    }
    closedir(d);
}

struct parsed {
    char *data;
    size_t len;
    struct mg_arena *arena;
    struct mime_part *root;
    char *body, *bodystructure, *envelope;
};

static char *write_string(const struct mime_part *root, const char *data, int what)
{
    struct mg_buf b = MG_BUF_INIT;
    if (what == 2)
        imap_envelope_write(&b, data, root);
    else
        imap_bodystructure_write(&b, data, root, what == 1 ? IMAP_BODYSTRUCTURE_FLAG_EXTENDED : 0);
    mg_buf_reserve(&b, 0);
    return mg_buf_steal(&b, NULL);
}

static void parse(struct parsed *p, char *data, size_t len)
{
    p->data = data;
    p->len = len;
    p->arena = mg_arena_new(0);
    p->root = mime_parser_parse(p->arena, data, len);
    p->body = write_string(p->root, data, 0);
    p->bodystructure = write_string(p->root, data, 1);
    p->envelope = write_string(p->root, data, 2);
}

static void parsed_free(struct parsed *p)
{
    mg_arena_free(&p->arena);
    free(p->data);
    free(p->body);
    free(p->bodystructure);
    free(p->envelope);
}

static void check_imap(const char *file, const char *what, const char *s, bool structure,
                       bool extended)
{
    const char *err = NULL;
    struct ti *v = ti_parse(s, strlen(s), &err);
    if (v == NULL)
        fail_msg("%s: %s is not valid IMAP (%s): %s", file, what, err, s);
    if (structure)
        err = ti_check_body(v, extended);
    else
        err = ti_check_envelope(v->items, v->count);
    if (err != NULL)
        fail_msg("%s: %s: %s: %s", file, what, err, s);
    ti_free(v);
}

static void check_tree(const char *file, const struct parsed *p)
{
    for (const struct mime_part *part = p->root; part != NULL; part = mime_part_next(part)) {
        if (!(part->header_start <= part->header_end && part->header_end <= part->body_end &&
              part->body_end <= p->len))
            fail_msg("%s: bad ranges %zu %zu %zu", file, part->header_start, part->header_end,
                     part->body_end);
        const struct mime_part *parent = part->parent;
        if (parent != NULL &&
            (part->header_start < parent->header_end || part->body_end > parent->body_end))
            fail_msg("%s: part outside its parent", file);
        if (part->next != NULL && part->next->header_start < part->body_end)
            fail_msg("%s: siblings overlap", file);
        if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0 &&
            (part->children == NULL || part->children->next != NULL))
            fail_msg("%s: message part without exactly one child", file);
    }
}

/* Offsets of the LF variant mapped into the CRLF variant: one more byte
 * for every bare LF before the offset. */
static size_t map_offset(const char *lf_data, size_t off)
{
    size_t add = 0;
    for (size_t i = 0; i < off; i++) {
        if (lf_data[i] == '\n' && (i == 0 || lf_data[i - 1] != '\r'))
            add++;
    }
    return off + add;
}

static void compare_variants(const char *file, const struct parsed *a, const struct parsed *b)
{
    const struct mime_part *pa = a->root, *pb = b->root;
    for (; pa != NULL && pb != NULL; pa = mime_part_next(pa), pb = mime_part_next(pb)) {
        if (strcmp(pa->type, pb->type) != 0 || strcmp(pa->subtype, pb->subtype) != 0 ||
            pa->flags != pb->flags || pa->depth != pb->depth)
            fail_msg("%s: trees differ between LF and CRLF", file);
        if (map_offset(a->data, pa->header_start) != pb->header_start ||
            map_offset(a->data, pa->header_end) != pb->header_end ||
            map_offset(a->data, pa->body_end) != pb->body_end)
            fail_msg("%s: offsets %zu %zu %zu do not map to %zu %zu %zu", file, pa->header_start,
                     pa->header_end, pa->body_end, pb->header_start, pb->header_end, pb->body_end);
        if (pa->body_size != pb->body_size || pa->body_lines != pb->body_lines)
            fail_msg("%s: sizes differ between LF and CRLF", file);
    }
    if (pa != NULL || pb != NULL)
        fail_msg("%s: part counts differ between LF and CRLF", file);
    if (strcmp(a->bodystructure, b->bodystructure) != 0 || strcmp(a->body, b->body) != 0)
        fail_msg("%s: BODYSTRUCTURE differs between LF and CRLF:\n%s\n%s", file,
                 a->bodystructure, b->bodystructure);
    if (strcmp(a->envelope, b->envelope) != 0)
        fail_msg("%s: ENVELOPE differs between LF and CRLF", file);
}

struct section_walk {
    const char *file;
    const struct parsed *p;
    struct mg_arena *arena;
    struct mg_buf spec;
    struct mg_buf out;
    unsigned int sections;
};

static void fetch(struct section_walk *w, const char *spec, const struct mime_part *want,
                  bool must_exist)
{
    struct imap_section sec;
    struct imap_section_result res;
    const char *err = NULL;

    if (imap_section_parse(w->arena, spec, strlen(spec), &sec, &err) < 0)
        fail_msg("%s: section %s rejected: %s", w->file, spec, err);
    int ret = imap_section_find(w->p->root, &sec, &res);
    if (!must_exist) {
        if (ret != IMAP_SECTION_ENOENT)
            fail_msg("%s: section %s should not exist", w->file, spec);
        return;
    }
    if (ret != 0)
        fail_msg("%s: section %s not found", w->file, spec);
    if (want != NULL && res.part != want)
        fail_msg("%s: section %s found the wrong part", w->file, spec);
    if (!(res.start <= res.end && res.end <= w->p->len))
        fail_msg("%s: section %s: range %zu-%zu outside the data", w->file, spec, res.start,
                 res.end);
    mg_buf_reset(&w->out);
    assert_int_equal(imap_section_write(w->p->root, w->p->data, &sec, &w->out), 0);
    if (sec.text != IMAP_SECTION_TEXT_HEADER_FIELDS &&
        sec.text != IMAP_SECTION_TEXT_HEADER_FIELDS_NOT &&
        (w->out.len != res.end - res.start ||
         memcmp(w->out.data, w->p->data + res.start, w->out.len) != 0))
        fail_msg("%s: section %s: written bytes differ from the range", w->file, spec);
    w->sections++;
}

static void walk_sections(struct section_walk *w, const struct mime_part *part,
                          const char *path)
{
    char spec[1024];

    if (strlen(path) > 900)
        return;
    fetch(w, path, part, true);
    snprintf(spec, sizeof(spec), "%s.MIME", path);
    fetch(w, spec, part, true);
    if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0) {
        snprintf(spec, sizeof(spec), "%s.HEADER", path);
        fetch(w, spec, part->children, true);
        snprintf(spec, sizeof(spec), "%s.TEXT", path);
        fetch(w, spec, part->children, true);
        snprintf(spec, sizeof(spec), "%s.HEADER.FIELDS (From Subject)", path);
        fetch(w, spec, part->children, true);
    } else {
        snprintf(spec, sizeof(spec), "%s.HEADER", path);
        fetch(w, spec, NULL, false);
    }

    const struct mime_part *container = part;
    if ((part->flags & MIME_PART_FLAG_MESSAGE) != 0) {
        container = part->children;
        if ((container->flags & MIME_PART_FLAG_MULTIPART) == 0) {
            snprintf(spec, sizeof(spec), "%s.1", path);
            walk_sections(w, container, spec);
            snprintf(spec, sizeof(spec), "%s.2", path);
            fetch(w, spec, NULL, false);
            return;
        }
    }
    if ((container->flags & MIME_PART_FLAG_MULTIPART) != 0) {
        unsigned int i = 0;
        for (const struct mime_part *c = container->children; c != NULL; c = c->next) {
            snprintf(spec, sizeof(spec), "%s.%u", path, ++i);
            walk_sections(w, c, spec);
        }
        snprintf(spec, sizeof(spec), "%s.%u", path, i + 1);
        fetch(w, spec, NULL, false);
    } else {
        snprintf(spec, sizeof(spec), "%s.1", path);
        fetch(w, spec, NULL, false);
    }
}

static unsigned int check_sections(const char *file, const struct parsed *p)
{
    struct section_walk w = { file, p, mg_arena_new(0), MG_BUF_INIT, MG_BUF_INIT, 0 };
    const struct mime_part *root = p->root;

    fetch(&w, "", root, true);
    fetch(&w, "HEADER", root, true);
    fetch(&w, "TEXT", root, true);
    fetch(&w, "HEADER.FIELDS.NOT (Received)", root, true);
    if ((root->flags & MIME_PART_FLAG_MULTIPART) != 0) {
        unsigned int i = 0;
        char spec[32];
        for (const struct mime_part *c = root->children; c != NULL; c = c->next) {
            snprintf(spec, sizeof(spec), "%u", ++i);
            walk_sections(&w, c, spec);
        }
        snprintf(spec, sizeof(spec), "%u", i + 1);
        fetch(&w, spec, NULL, false);
    } else {
        walk_sections(&w, root, "1");
        fetch(&w, "2", NULL, false);
    }
    mg_arena_free(&w.arena);
    mg_buf_free(&w.spec);
    mg_buf_free(&w.out);
    return w.sections;
}

static bool text_cb(void *context, const struct mime_part *part, const char *text, size_t len)
{
    const char *file = context;
    (void)part;
    if (!mg_utf8_is_valid(text, len))
        fail_msg("%s: decoded text is not UTF-8", file);
    return true;
}

static void check_decoding(const char *file, const struct parsed *p)
{
    struct mg_buf b = MG_BUF_INIT;
    assert_true(mime_text_foreach(p->root, p->data, text_cb, (void *)file));
    for (const struct mime_part *part = p->root; part != NULL; part = mime_part_next(part)) {
        mg_buf_reset(&b);
        if (mime_header_get_decoded(p->data, part->header_start, part->header_end, "Subject", &b) &&
            !mg_utf8_is_valid(b.data, b.len))
            fail_msg("%s: decoded Subject is not UTF-8", file);
        for (unsigned int i = 0; i < part->param_count; i++) {
            if (!mg_utf8_is_valid(part->params[i].value, strlen(part->params[i].value)))
                fail_msg("%s: decoded parameter is not UTF-8", file);
        }
    }
    mg_buf_free(&b);
}

static char *to_crlf(const char *s, size_t len, size_t *len_r)
{
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_reserve(&b, len + len / 8);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            mg_buf_append_byte(&b, '\r');
        mg_buf_append_byte(&b, s[i]);
    }
    return mg_buf_steal(&b, len_r);
}

static void run_corpus(const char *rel_dir, size_t min_files)
{
    char *dir = testutil_source_path(rel_dir);
    struct file_list list = { NULL, 0 };
    unsigned int parts = 0, sections = 0;

    list_files(dir, &list);
    assert_true(list.count >= min_files);
    for (size_t i = 0; i < list.count; i++) {
        const char *file = list.paths[i];
        size_t len, crlf_len;
        char *data = testutil_read_file(file, &len);
        assert_non_null(data);
        char *crlf = to_crlf(data, len, &crlf_len);

        struct parsed a, b;
        parse(&a, data, len);
        parse(&b, crlf, crlf_len);
        check_tree(file, &a);
        check_tree(file, &b);
        check_imap(file, "BODY", a.body, true, false);
        check_imap(file, "BODYSTRUCTURE", a.bodystructure, true, true);
        check_imap(file, "ENVELOPE", a.envelope, false, false);
        compare_variants(file, &a, &b);
        sections += check_sections(file, &a) + check_sections(file, &b);
        check_decoding(file, &a);
        parts += mime_part_count(a.root);
        parsed_free(&a);
        parsed_free(&b);
        free(list.paths[i]);
    }
    print_message("%s: %zu files, %u parts, %u sections fetched\n", rel_dir, list.count, parts,
                  sections);
    free(list.paths);
    free(dir);
}

static void test_enmime(void **state)
{
    (void)state;
    run_corpus("tests/data/corpora/enmime-testdata", 79);
}

static void test_cpython(void **state)
{
    (void)state;
    run_corpus("tests/data/corpora/cpython-email-data", 47);
}

static void test_stalwart(void **state)
{
    (void)state;
    run_corpus("tests/data/corpora/stalwart-mail-parser/resources/eml", 107);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enmime),
        cmocka_unit_test(test_cpython),
        cmocka_unit_test(test_stalwart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
