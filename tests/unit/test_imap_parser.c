/* mda/imap/imap_parser: command arguments and "tag SP name" splitting.
 *
 * Every case is parsed from an exactly sized heap copy (so ASan sees any
 * read past the end), and every proper prefix of it is parsed too: the
 * session hands the parser whole commands, but a prefix is what a broken
 * or hostile client leaves behind, and it must fail or succeed cleanly. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/imap/imap_parser.h"

/* The tree in one line: atoms as they are, NIL as NIL, quoted strings in
 * quotes, literals as {n}text, file literals as <FILEn>, lists in
 * parentheses; bytes outside printable ASCII (and quote, backslash) as
 * \xNN. */
static void dump_text(struct mg_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            mg_buf_printf(out, "\\x%02x", c);
        else
            mg_buf_append_byte(out, (char)c);
    }
}

static void dump_args(struct mg_buf *out, const struct imap_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (i > 0)
            mg_buf_append_byte(out, ' ');
        /* Every string is NUL-terminated at len. */
        if (a->type != IMAP_ARG_LIST)
            assert_int_equal(a->str[a->len], '\0');
        switch (a->type) {
        case IMAP_ARG_ATOM:
            assert_true(a->len > 0);
            mg_buf_append(out, a->str, a->len);
            break;
        case IMAP_ARG_NIL:
            assert_int_equal(a->len, 3);
            mg_buf_append_str(out, "NIL");
            break;
        case IMAP_ARG_QUOTED:
            mg_buf_append_byte(out, '"');
            dump_text(out, a->str, a->len);
            mg_buf_append_byte(out, '"');
            break;
        case IMAP_ARG_LITERAL:
            mg_buf_printf(out, "{%zu}", a->len);
            dump_text(out, a->str, a->len);
            break;
        case IMAP_ARG_FILE:
            mg_buf_printf(out, "<FILE%u>", a->file_index);
            break;
        case IMAP_ARG_LIST:
            mg_buf_append_byte(out, '(');
            dump_args(out, a->list, a->list_count);
            mg_buf_append_byte(out, ')');
            break;
        }
    }
}

/* Parses text[0..len) from an exact copy; returns the dump or NULL with
 * *error_r. */
static char *parse_dump(const char *text, size_t len, const char **error_r)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_arg *args = NULL;
    size_t n = 0;
    const char *error = NULL;
    char *result = NULL;
    if (imap_parse_args(arena, copy, len, &args, &n, &error) == 0) {
        struct mg_buf out = MG_BUF_INIT;
        dump_args(&out, args, n);
        result = strdup(mg_buf_cstr(&out));
        mg_buf_free(&out);
    } else {
        assert_non_null(error);
        *error_r = error;
    }
    mg_arena_free(&arena);
    free(copy);
    return result;
}

struct args_case {
    const char *input;
    size_t len;           /* 0: strlen(input) */
    const char *expected; /* dump, or NULL for an error */
    const char *error;    /* substring of the error (when expected is NULL) */
};

static const struct args_case args_cases[] = {
    /* atoms, sequence sets, LIST patterns */
    { "", 0, "", NULL },
    { "INBOX", 0, "INBOX", NULL },
    { "a b c", 0, "a b c", NULL },
    { "a  b", 0, "a b", NULL },
    { "a ", 0, "a", NULL },
    { "1:*,7", 0, "1:*,7", NULL },
    { "\"\" *", 0, "\"\" *", NULL },
    { "% Lists/%", 0, "% Lists/%", NULL },
    { "foo]bar a]", 0, "foo]bar a]", NULL },
    { "$Forwarded", 0, "$Forwarded", NULL },
    /* NIL keeps its case in the text; an atom that only starts with NIL
     * is an atom */
    { "NIL nil Nil NILS NI", 0, "NIL NIL NIL NILS NI", NULL },
    /* flags */
    { "\\Seen", 0, "\\Seen", NULL },
    { "(\\Seen \\Answered $Junk)", 0, "(\\Seen \\Answered $Junk)", NULL },
    { "\\*", 0, "\\*", NULL },
    { "(\\* \\Deleted)", 0, "(\\* \\Deleted)", NULL },
    { "\\", 0, NULL, "Invalid flag" },
    { "(\\ \\Seen)", 0, NULL, "Invalid flag" },
    { "\\(", 0, NULL, "Invalid flag" },
    { "\\%", 0, NULL, "Invalid flag" },
    { "\\*x", 0, NULL, "Missing space" },
    { "a\\b", 0, NULL, "Missing space" },
    /* FETCH items with sections are single atoms */
    { "BODY[HEADER.FIELDS (From To)]<0.100>", 0, "BODY[HEADER.FIELDS (From To)]<0.100>", NULL },
    { "(FLAGS BODY.PEEK[HEADER.FIELDS.NOT (\"X-A b\" Subject)] UID)", 0,
      "(FLAGS BODY.PEEK[HEADER.FIELDS.NOT (\"X-A b\" Subject)] UID)", NULL },
    { "BODY[] BODY[1.2.MIME] BINARY[1]<5.10>", 0, "BODY[] BODY[1.2.MIME] BINARY[1]<5.10>", NULL },
    { "BODY[a[b]c]", 0, "BODY[a[b]c]", NULL },
    { "BODY[\"]\"]", 0, "BODY[\"]\"]", NULL },
    { "BODY[HEADER", 0, NULL, "Missing ']'" },
    { "BODY[HEADER.FIELDS (From", 0, NULL, "Missing ']'" },
    { "BODY[\"x]", 0, NULL, "Missing ']'" },
    { "BODY[\xc3\xa9]", 0, NULL, "Missing ']'" },
    { "BODY[a\r\nb]", 0, NULL, "Missing ']'" },
    { "BODY[a\tb]", 0, NULL, "Missing ']'" },
    { "BODY[a\0b]", 9, NULL, "Missing ']'" },
    /* an escaped byte inside a quoted name is checked too (fuzz_imap_parser) */
    { "BODY[(\"a\\\0\")]", 13, NULL, "Missing ']'" },
    { "BODY[(\"a\\\xff\")]", 0, NULL, "Missing ']'" },
    { "BODY[(\"a\\\"\")]", 0, "BODY[(\"a\\\"\")]", NULL },
    /* quoted strings */
    { "\"hello world\"", 0, "\"hello world\"", NULL },
    { "\"\"", 0, "\"\"", NULL },
    { "\"a\\\"b\\\\c\"", 0, "\"a\\x22b\\x5cc\"", NULL },
    { "\"(not a list)\" \"{5}\"", 0, "\"(not a list)\" \"{5}\"", NULL },
    { "\"caf\xc3\xa9\"", 0, "\"caf\\xc3\\xa9\"", NULL },
    { "\"a\\b\"", 0, NULL, "Invalid escape" },
    { "\"a\\", 0, NULL, "Invalid escape" },
    { "\"abc", 0, NULL, "Missing '\"'" },
    { "\"", 0, NULL, "Missing '\"'" },
    { "\"a\rb\"", 0, NULL, "Invalid character" },
    { "\"a\nb\"", 0, NULL, "Invalid character" },
    { "\"a\r\nb\"", 0, NULL, "Invalid character" },
    { "\"a\0b\"", 5, NULL, "Invalid character" },
    { "\"abc\"def", 0, NULL, "Missing space" },
    { "\"abc\"(x)", 0, NULL, "Missing space" },
    /* literals */
    { "{5}\r\nhello", 0, "{5}hello", NULL },
    { "{5+}\r\nhello", 0, "{5}hello", NULL },
    { "{0}\r\n", 0, "{0}", NULL },
    { "{0}\r\n x", 0, "{0} x", NULL },
    { "{7}\r\nhe\r\nllo", 0, "{7}he\\x0d\\x0allo", NULL },
    { "x {3}\r\nabc y", 0, "x {3}abc y", NULL },
    { "({1}\r\n)) {1}\r\n(", 0, "({1})) {1}(", NULL },
    { "{3}\r\n\xff\x80\x7f", 0, "{3}\\xff\\x80\\x7f", NULL },
    { "{05}\r\nhello", 0, "{5}hello", NULL },
    { "{5}\r\nhell", 0, NULL, "shorter than announced" },
    { "{5}\r\n", 0, NULL, "shorter than announced" },
    { "{5}hello", 0, NULL, "Invalid literal" },
    { "{5}\nhello", 0, NULL, "Invalid literal" },
    { "{5}\r", 0, NULL, "Invalid literal" },
    { "{5", 0, NULL, "Invalid literal" },
    { "{5++}\r\nhello", 0, NULL, "Invalid literal" },
    { "{5-}\r\nhello", 0, NULL, "Invalid literal" },
    { "{}\r\n", 0, NULL, "Invalid literal size" },
    { "{+}\r\n", 0, NULL, "Invalid literal size" },
    { "{-1}\r\n", 0, NULL, "Invalid literal size" },
    { "{", 0, NULL, "Invalid literal size" },
    { "{99999999999999999999999}\r\n", 0, NULL, "too large" },
    { "{18446744073709551615}\r\n", 0, NULL, "too large" },
    { "{1844674407370955160}\r\n", 0, NULL, "shorter than announced" },
    { "{3}\r\na\0b", 8, NULL, "NUL in literal" },
    { "~{3}\r\nabc", 0, NULL, "Binary literals" },
    { "{2}\r\nab{3}\r\nabc", 0, NULL, "Missing space" },
    /* file literals (APPEND's message, streamed by the session) */
    { "{FILE}\r\n", 0, "<FILE0>", NULL },
    { "INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {FILE}\r\n", 0,
      "INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" <FILE0>", NULL },
    { "{FILE}\r\n {FILE}\r\n", 0, "<FILE0> <FILE1>", NULL },
    { "{FILE}", 0, NULL, "Invalid literal size" },
    { "{FILE}\r", 0, NULL, "Invalid literal size" },
    { "{file}\r\n", 0, NULL, "Invalid literal size" },
    /* lists */
    { "()", 0, "()", NULL },
    { "(())", 0, "(())", NULL },
    { "(a (b (c)) d)", 0, "(a (b (c)) d)", NULL },
    { "(a )", 0, "(a)", NULL },
    { "(a  b)", 0, "(a b)", NULL },
    { "(NIL \"x\" {1}\r\ny)", 0, "(NIL \"x\" {1}y)", NULL },
    { "(", 0, NULL, "Missing ')'" },
    { "((a)", 0, NULL, "Missing ')'" },
    { "(a", 0, NULL, "Missing ')'" },
    { "(a ", 0, NULL, "Missing ')'" },
    { ")", 0, NULL, "Unexpected ')'" },
    { "a )", 0, NULL, "Unexpected ')'" },
    { "(a))", 0, NULL, "Missing space" },
    { "(a)(b)", 0, NULL, "Missing space" },
    { "( a)", 0, NULL, "Unexpected character" },
    { "(a)b", 0, NULL, "Missing space" },
    /* bytes that start nothing */
    { " a", 0, NULL, "Unexpected character" },
    { "\xff", 0, NULL, "Unexpected character" },
    { "a\xff", 0, NULL, "Missing space" },
    { "\xc3\xa9t\xc3\xa9", 0, NULL, "Unexpected character" },
    { "\0", 1, NULL, "Unexpected character" },
    { "a\0", 2, NULL, "Missing space" },
    { "a\r\nb", 0, NULL, "Missing space" },
    { "\r\n", 0, NULL, "Unexpected character" },
    { "\t", 0, NULL, "Unexpected character" },
    { "a\tb", 0, NULL, "Missing space" },
    { "{", 0, NULL, "Invalid literal size" },
    { "]", 0, "]", NULL },
};

static void check_args_case(const struct args_case *c)
{
    size_t len = c->len ? c->len : strlen(c->input);
    const char *error = NULL;
    char *got = parse_dump(c->input, len, &error);
    if (c->expected != NULL) {
        if (got == NULL)
            fail_msg("\"%s\": unexpected error %s", c->input, error);
        if (strcmp(got, c->expected) != 0)
            fail_msg("\"%s\": got %s, expected %s", c->input, got, c->expected);
    } else {
        if (got != NULL)
            fail_msg("\"%s\": parsed as %s, expected error %s", c->input, got, c->error);
        if (strstr(error, c->error) == NULL)
            fail_msg("\"%s\": error \"%s\", expected \"%s\"", c->input, error, c->error);
    }
    free(got);
    /* Every prefix: no crash, no over-read, a result or an error. */
    for (size_t i = 0; i < len; i++) {
        error = NULL;
        char *p = parse_dump(c->input, i, &error);
        assert_true(p != NULL || error != NULL);
        free(p);
    }
}

static void test_args_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(args_cases) / sizeof(args_cases[0]); i++)
        check_args_case(&args_cases[i]);
}

static void test_args_details(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_arg *args;
    size_t n;
    const char *error;
    const char *text = "nil \"q\" {3}\r\nlit atom (x) {FILE}\r\n";
    assert_int_equal(imap_parse_args(arena, text, strlen(text), &args, &n, &error), 0);
    assert_int_equal(n, 6);
    /* NIL keeps the client's spelling and is an astring "nil". */
    assert_int_equal(args[0].type, IMAP_ARG_NIL);
    assert_string_equal(args[0].str, "nil");
    const char *s;
    size_t l;
    assert_true(imap_arg_get_astring(&args[0], &s, &l));
    assert_int_equal(l, 3);
    assert_memory_equal(s, "nil", 3);
    assert_false(imap_arg_get_string(&args[0], &s, &l));
    /* quoted and literal: strings and astrings */
    assert_true(imap_arg_get_string(&args[1], &s, &l));
    assert_int_equal(l, 1);
    assert_true(imap_arg_get_astring(&args[1], &s, &l));
    assert_true(imap_arg_get_string(&args[2], &s, &l));
    assert_string_equal(s, "lit");
    /* atoms: astrings, not strings */
    assert_true(imap_arg_get_astring(&args[3], &s, &l));
    assert_false(imap_arg_get_string(&args[3], &s, &l));
    assert_true(imap_arg_is_atom(&args[3], "ATOM"));
    assert_true(imap_arg_is_atom(&args[3], "atom"));
    assert_false(imap_arg_is_atom(&args[3], "ato"));
    assert_false(imap_arg_is_atom(&args[1], "q"));
    /* lists and files are neither */
    assert_false(imap_arg_get_astring(&args[4], &s, &l));
    assert_false(imap_arg_get_string(&args[4], &s, &l));
    assert_int_equal(args[4].list_count, 1);
    assert_false(imap_arg_get_astring(&args[5], &s, &l));
    assert_int_equal(args[5].type, IMAP_ARG_FILE);
    assert_int_equal(args[5].file_index, 0);
    mg_arena_free(&arena);
}

/* Depth: 64 nested lists are fine, 65 are refused. */
static void test_args_depth(void **state)
{
    (void)state;
    char text[300];
    for (int depth = 63; depth <= 66; depth++) {
        size_t o = 0;
        for (int i = 0; i < depth; i++)
            text[o++] = '(';
        text[o++] = 'x';
        for (int i = 0; i < depth; i++)
            text[o++] = ')';
        const char *error = NULL;
        char *got = parse_dump(text, o, &error);
        if (depth <= IMAP_PARSER_MAX_DEPTH) {
            assert_non_null(got);
        } else {
            assert_null(got);
            assert_non_null(strstr(error, "too deep"));
        }
        free(got);
    }
}

/* Argument count: every argument counts, list elements too. */
static void test_args_count(void **state)
{
    (void)state;
    struct mg_buf b = MG_BUF_INIT;
    for (size_t i = 0; i < IMAP_PARSER_MAX_ARGS; i++)
        mg_buf_append_str(&b, i ? " 1" : "1");
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_arg *args;
    size_t n;
    const char *error;
    assert_int_equal(imap_parse_args(arena, b.data, b.len, &args, &n, &error), 0);
    assert_int_equal(n, IMAP_PARSER_MAX_ARGS);
    mg_arena_free(&arena);

    mg_buf_append_str(&b, " 1");
    arena = mg_arena_new(0);
    assert_int_equal(imap_parse_args(arena, b.data, b.len, &args, &n, &error), -1);
    assert_non_null(strstr(error, "Too many"));
    mg_arena_free(&arena);

    /* A list and its element are two. */
    mg_buf_reset(&b);
    for (size_t i = 0; i < IMAP_PARSER_MAX_ARGS / 2; i++)
        mg_buf_append_str(&b, i ? " (1)" : "(1)");
    arena = mg_arena_new(0);
    assert_int_equal(imap_parse_args(arena, b.data, b.len, &args, &n, &error), 0);
    mg_arena_free(&arena);
    mg_buf_append_str(&b, " (1)");
    arena = mg_arena_new(0);
    assert_int_equal(imap_parse_args(arena, b.data, b.len, &args, &n, &error), -1);
    mg_arena_free(&arena);
    mg_buf_free(&b);
}

/* A large literal in the middle of a command. */
static void test_args_big_literal(void **state)
{
    (void)state;
    size_t size = 200000;
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_printf(&b, "x {%zu+}\r\n", size);
    for (size_t i = 0; i < size; i++)
        mg_buf_append_byte(&b, (char)('a' + i % 26));
    mg_buf_append_str(&b, " y");
    struct mg_arena *arena = mg_arena_new(0);
    struct imap_arg *args;
    size_t n;
    const char *error;
    assert_int_equal(imap_parse_args(arena, b.data, b.len, &args, &n, &error), 0);
    assert_int_equal(n, 3);
    assert_int_equal(args[1].type, IMAP_ARG_LITERAL);
    assert_int_equal(args[1].len, size);
    assert_memory_equal(args[1].str, b.data + b.len - 2 - size, size);
    mg_arena_free(&arena);
    mg_buf_free(&b);
}

struct start_case {
    const char *input;
    int ret;
    size_t tag_len;
    const char *name; /* when ret == 0 */
    const char *rest;
};

static const struct start_case start_cases[] = {
    { "a1 NOOP", 0, 2, "NOOP", "" },
    { "a1 FETCH 1:* (FLAGS)", 0, 2, "FETCH", "1:* (FLAGS)" },
    { "a1 UID FETCH 1 UID", 0, 2, "UID", "FETCH 1 UID" },
    { "A.0001 login user pass", 0, 6, "login", "user pass" },
    { "tag] NOOP", 0, 4, "NOOP", "" },
    { "]]] NOOP", 0, 3, "NOOP", "" },
    { "a1 NOOP ", 0, 2, "NOOP", "" },
    { "a1 X-CMD arg", 0, 2, "X-CMD", "arg" },
    { "a+b NOOP", -1, 0, NULL, NULL },
    { "+ NOOP", -1, 0, NULL, NULL },
    { "* NOOP", -1, 0, NULL, NULL },
    { "a* NOOP", -1, 0, NULL, NULL },
    { "a% NOOP", -1, 0, NULL, NULL },
    { "a(b NOOP", -1, 0, NULL, NULL },
    { "a)b NOOP", -1, 0, NULL, NULL },
    { "a{1} NOOP", -1, 0, NULL, NULL },
    { "a\"b NOOP", -1, 0, NULL, NULL },
    { "a\\b NOOP", -1, 0, NULL, NULL },
    { "\xc3\xa9 NOOP", -1, 0, NULL, NULL },
    { "a\tb NOOP", -1, 0, NULL, NULL },
    { " NOOP", -1, 0, NULL, NULL },
    { "", -1, 0, NULL, NULL },
    /* a usable tag without a command name: BAD with the tag */
    { "a1", -1, 2, NULL, NULL },
    { "a1 ", -1, 2, NULL, NULL },
    { "a1  NOOP", -1, 2, NULL, NULL },
    { "a1 NO(OP", -1, 2, NULL, NULL },
    { "a1 NOOP\xff", -1, 2, NULL, NULL },
    { "a1 \"NOOP\"", -1, 2, NULL, NULL },
    { "a1 {4}", -1, 2, NULL, NULL },
};

static void test_command_start(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(start_cases) / sizeof(start_cases[0]); i++) {
        const struct start_case *c = &start_cases[i];
        size_t len = strlen(c->input);
        char *copy = malloc(len ? len : 1);
        memcpy(copy, c->input, len);
        size_t tag_len = 999, name_len = 0, rest_len = 0;
        const char *name = NULL, *rest = NULL;
        int r = imap_parse_command_start(copy, len, &tag_len, &name, &name_len, &rest, &rest_len);
        if (r != c->ret)
            fail_msg("\"%s\": returned %d", c->input, r);
        if (tag_len != c->tag_len)
            fail_msg("\"%s\": tag length %zu, expected %zu", c->input, tag_len, c->tag_len);
        if (r == 0) {
            assert_int_equal(name_len, strlen(c->name));
            assert_memory_equal(name, c->name, name_len);
            assert_int_equal(rest_len, strlen(c->rest));
            assert_memory_equal(rest, c->rest, rest_len);
            assert_true(rest >= copy && rest + rest_len <= copy + len);
        }
        /* prefixes */
        for (size_t p = 0; p < len; p++)
            (void)imap_parse_command_start(copy, p, &tag_len, &name, &name_len, &rest, &rest_len);
        free(copy);
    }
}

static void test_atom_chars(void **state)
{
    (void)state;
    assert_true(imap_is_atom("INBOX", 5));
    assert_true(imap_is_atom("a.b-c_d$e", 9));
    assert_false(imap_is_atom("", 0));
    assert_false(imap_is_atom("a b", 3));
    assert_false(imap_is_atom("a*", 2));
    assert_false(imap_is_atom("a%", 2));
    assert_false(imap_is_atom("a]", 2));
    assert_false(imap_is_atom("a\"", 2));
    assert_false(imap_is_atom("a\\", 2));
    assert_false(imap_is_atom("\xc3\xa9", 2));
    assert_false(imap_is_atom("NIL", 3));
    assert_false(imap_is_atom("nIl", 3));
    assert_true(imap_is_atom("NILS", 4));
    for (int c = 0; c < 256; c++) {
        bool expected = c > 0x20 && c < 0x7f && strchr("(){\"\\]", c) == NULL;
        if (imap_is_atom_char((unsigned char)c) != expected)
            fail_msg("atom char 0x%02x", c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_table),
        cmocka_unit_test(test_args_details),
        cmocka_unit_test(test_args_depth),
        cmocka_unit_test(test_args_count),
        cmocka_unit_test(test_args_big_literal),
        cmocka_unit_test(test_command_start),
        cmocka_unit_test(test_atom_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
