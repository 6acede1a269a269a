#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/settings.h"

struct collected {
    char text[4096];
};

static int collect_cb(const struct mg_config_entry *e, void *ctx, const char **error_r)
{
    struct collected *c = ctx;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof(c->text) - n, "%u:%s.%s=%s|", e->line, e->section, e->key,
             e->value);
    if (strcmp(e->key, "reject") == 0) {
        *error_r = "rejected by callback";
        return -1;
    }
    return 0;
}

static const struct {
    const char *input;
    const char *expect; /* collected entries, or NULL when an error is expected */
    const char *error;  /* expected error text (substring) */
} parse_cases[] = {
    { "", "", NULL },
    { "# only a comment\n\n   \n", "", NULL },
    { "a = 1\n", "1:.a=1|", NULL },
    { "a=1", "1:.a=1|", NULL },
    { "  a  =   spaced value  \r\n", "1:.a=spaced value|", NULL },
    { "a = x # comment\n", "1:.a=x|", NULL },
    { "a = x#notcomment\n", "1:.a=x#notcomment|", NULL },
    { "a = \"  quoted # kept \"  # comment\n", "1:.a=  quoted # kept |", NULL },
    { "a = \"esc \\\" \\\\ end\"\n", "1:.a=esc \" \\ end|", NULL },
    { "a =\n", "1:.a=|", NULL },
    { "[imap]\nlisten = *:993\n[lmtp]\nsocket = /x\n", "2:imap.listen=*:993|4:lmtp.socket=/x|", NULL },
    { "[ imap ]\nk = v\n", "2:imap.k=v|", NULL },
    { "a = 1\na = 2\n", NULL, "<t>:2: 'a' given twice" },
    { "[s]\na = 1\n[t]\na = 2\n[s]\na = 3\n", NULL, "<t>:6: 'a' given twice in [s]" },
    { "novalue\n", NULL, "<t>:1: expected 'key = value'" },
    { "= v\n", NULL, "<t>:1: missing key" },
    { "Upper = v\n", NULL, "<t>:1: keys use a-z" },
    { "[sec\n", NULL, "<t>:1: section header must end" },
    { "[]\n", NULL, "<t>:1: empty section name" },
    { "[a b]\n", NULL, "<t>:1: section names use" },
    { "a = \"open\n", NULL, "<t>:1: unterminated quoted value" },
    { "a = \"x\" y\n", NULL, "<t>:1: text after quoted value" },
    { "a = \"bad \\n\"\n", NULL, "<t>:1: invalid escape" },
    { "a = x\"y\n", NULL, "<t>:1: '\"' inside an unquoted value" },
    { "a = 1\nreject = 1\n", NULL, "<t>:2: rejected by callback" },
    { "a = \xff\xfe\n", NULL, "<t>:1: line is not valid UTF-8" },
};

static void test_config_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        struct collected c = { "" };
        char *error = NULL;
        const char *in = parse_cases[i].input;
        int ret = mg_config_parse(in, strlen(in), "<t>", collect_cb, &c, &error);
        if (parse_cases[i].expect != NULL) {
            if (ret != 0)
                fail_msg("case %zu: unexpected error %s", i, error);
            assert_string_equal(c.text, parse_cases[i].expect);
        } else {
            if (ret == 0)
                fail_msg("case %zu: expected error %s", i, parse_cases[i].error);
            if (strstr(error, parse_cases[i].error) == NULL)
                fail_msg("case %zu: error '%s' lacks '%s'", i, error, parse_cases[i].error);
            free(error);
        }
    }
}

static void test_config_nul_and_long_line(void **state)
{
    (void)state;
    char *error = NULL;
    struct collected c = { "" };
    const char nul[] = "a = x\0y\n";
    assert_int_equal(mg_config_parse(nul, sizeof(nul) - 1, "f", collect_cb, &c, &error), -1);
    assert_non_null(strstr(error, "f:1: NUL byte"));
    free(error);

    size_t n = MG_CONFIG_LINE_MAX + 10;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    memcpy(big, "a = ", 4);
    big[n] = '\0';
    assert_int_equal(mg_config_parse(big, n, "f", collect_cb, &c, &error), -1);
    assert_non_null(strstr(error, "f:1: line too long"));
    free(error);
    free(big);
}

static void test_config_missing_file(void **state)
{
    (void)state;
    char *error = NULL;
    struct collected c = { "" };
    assert_int_equal(mg_config_parse_file("/nonexistent/mailgenic.conf", collect_cb, &c, &error), -1);
    assert_non_null(strstr(error, "/nonexistent/mailgenic.conf: cannot open"));
    free(error);
}

static void test_settings_defaults_and_values(void **state)
{
    (void)state;
    const char *text =
        "hostname = mx.example.com\n"
        "log_level = debug\n"
        "[tls]\n"
        "cert_file = /etc/c.pem\n"
        "handshake_timeout = 1500ms\n"
        "[imap]\n"
        "listen = 127.0.0.1:9993, [::1]:9993\n"
        "append_limit = 10M\n"
        "idle_timeout = 2h\n"
        "[lmtp]\n"
        "socket_mode = 0600\n";
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load_string(text, strlen(text), "t.conf", &set, &error) != 0)
        fail_msg("%s", error);
    assert_string_equal(set->hostname, "mx.example.com");
    assert_int_equal(set->log_level, MG_LOG_DEBUG);
    assert_string_equal(set->tls.cert_file, "/etc/c.pem");
    assert_int_equal(set->tls.handshake_timeout_ms, 1500);
    assert_int_equal(set->imap.listen.count, 2);
    assert_string_equal(set->imap.listen.addrs[0].host, "127.0.0.1");
    assert_int_equal(set->imap.listen.addrs[0].port, 9993);
    assert_string_equal(set->imap.listen.addrs[1].host, "::1");
    assert_int_equal(set->imap.append_limit, 10 * 1024 * 1024);
    assert_int_equal(set->imap.idle_timeout_ms, 2 * 3600 * 1000);
    assert_int_equal(set->lmtp.socket_mode, 0600);
    /* Defaults stay where the file says nothing. */
    assert_string_equal(set->userdb.recipient_delimiter, "+");
    assert_int_equal(set->imap.max_auth_failures, 3);
    assert_int_equal(set->lmtp.listen.count, 0);

    const char *need[] = { "tls.cert_file", "hostname", NULL };
    assert_int_equal(mg_settings_require(set, need, &error), 0);
    const char *need2[] = { "tls.key_file", NULL };
    assert_int_equal(mg_settings_require(set, need2, &error), -1);
    assert_string_equal(error, "t.conf: [tls] key_file must be set");
    free(error);

    /* The dump is itself a valid configuration with the same values. */
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    mg_settings_dump(set, f);
    fclose(f);
    struct mg_settings *again = NULL;
    if (mg_settings_load_string(dump, dump_len, "dump", &again, &error) != 0)
        fail_msg("dump does not load: %s\n%s", error, dump);
    assert_int_equal(again->imap.append_limit, set->imap.append_limit);
    assert_int_equal(again->tls.handshake_timeout_ms, 1500);
    assert_string_equal(again->imap.listen.addrs[1].host, "::1");
    assert_int_equal(again->lmtp.socket_mode, 0600);
    assert_string_equal(again->tls.ciphers, set->tls.ciphers);
    free(dump);
    mg_settings_free(&again);
    mg_settings_free(&set);
    assert_null(set);
}

static const struct {
    const char *input;
    const char *error;
} bad_settings[] = {
    { "nosuchkey = 1\n", "t:1: unknown key 'nosuchkey'" },
    { "[nosuch]\nk = 1\n", "t:2: unknown section [nosuch]" },
    { "[imap]\nbogus = 1\n", "t:2: unknown key 'bogus' in [imap]" },
    { "log_level = loud\n", "t:1: log_level: must be debug" },
    { "[imap]\nmax_connections = -1\n", "t:2: max_connections: must be a whole number" },
    { "[imap]\nmax_connections = 0\n", "t:2: max_connections: value out of range" },
    { "[imap]\nmax_connections = 99999999999999999999999\n", "max_connections: must be a whole number" },
    { "[imap]\nidle_timeout = 5m\n", "t:2: idle_timeout: value out of range" },
    { "[imap]\nidle_timeout = soon\n", "idle_timeout: must be a duration" },
    { "[imap]\nappend_limit = 10X\n", "append_limit: must be a size" },
    { "[imap]\nlisten = 127.0.0.1\n", "listen: listen address needs a port" },
    { "[imap]\nlisten = ::1:993\n", "listen: IPv6 listen addresses go in brackets" },
    { "[imap]\nlisten = host.example:993\n", "listen host must be an IP address" },
    { "[imap]\nlisten = 127.0.0.1:70000\n", "port out of range" },
    { "[imap]\nlisten = 127.0.0.1:0\n", "port out of range" },
    { "[tls]\ncert_file = relative.pem\n", "cert_file: must be an absolute path" },
    { "[lmtp]\nsocket_mode = 0999\n", "socket_mode: must be an octal mode" },
    { "[lmtp]\nsocket_mode = 01777\n", "socket_mode: must be an octal mode" },
    /* links over TCP only with mutual TLS */
    { "[lmtp]\nlisten = 127.0.0.1:24\n", "t: LMTP or the auth service over TCP needs [cluster]" },
    { "[auth]\nlisten = 127.0.0.1:8024\n", "needs [cluster] ca_file, cert_file and key_file" },
    { "[mta]\nlmtp = 10.0.0.2:24\n", "needs [cluster]" },
    { "[mta]\nauth = 10.0.0.2:8024\n[cluster]\nca_file = /ca.crt\ncert_file = /h.crt\n",
      "needs [cluster]" },
};

static void test_settings_dropins(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *main_path = mg_asprintf("%s/m.conf", dir);
    char *d = mg_asprintf("%s/m.conf.d", dir);
    const char *main_text = "[imap]\nmax_connections = 7\n[userdb]\npath = /a\n";
    testutil_write_file(main_path, main_text, strlen(main_text));
    assert_int_equal(mkdir(d, 0755), 0);
    const char *files[][2] = {
        { "20-later.conf", "[userdb]\npath = /c\n" },
        { "10-first.conf", "[userdb]\npath = /b\n[imap]\nlisten = 127.0.0.1:1993\n" },
        { "README", "not = read\n" },
        { ".hidden.conf", "not = read\n" },
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = mg_asprintf("%s/%s", d, files[i][0]);
        testutil_write_file(p, files[i][1], strlen(files[i][1]));
        free(p);
    }
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load(main_path, &set, &error) != 0)
        fail_msg("%s", error);
    assert_int_equal(set->imap.max_connections, 7);   /* main file */
    assert_string_equal(set->userdb.path, "/c");      /* last drop-in wins */
    assert_int_equal(set->imap.listen.count, 1);
    assert_int_equal(set->imap.listen.addrs[0].port, 1993);
    mg_settings_free(&set);

    /* an error in a drop-in names it */
    char *bad = mg_asprintf("%s/30-bad.conf", d);
    testutil_write_file(bad, "\n[imap]\nbogus = 1\n", 17);
    assert_int_equal(mg_settings_load(main_path, &set, &error), -1);
    if (strstr(error, "30-bad.conf:3: unknown key 'bogus'") == NULL)
        fail_msg("error: %s", error);
    free(error);
    free(bad);
    testutil_rmtree(dir);
    free(main_path);
    free(d);
    free(dir);
}

static void test_settings_tcp_links(void **state)
{
    (void)state;
    const char *in = "[mta]\nlmtp = 10.0.0.2:24\nauth = /run/auth.sock\n"
                     "[cluster]\nca_file = /c/ca.crt\ncert_file = /c/h.crt\nkey_file = /c/h.key\n";
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load_string(in, strlen(in), "t", &set, &error) != 0)
        fail_msg("%s", error);
    assert_true(mg_settings_has_tcp_links(set));
    assert_string_equal(set->cluster.ca_dir, "/etc/mailgenic/ca");
    mg_settings_free(&set);
    in = "[mta]\nlmtp = /run/lmtp.sock\n";
    assert_int_equal(mg_settings_load_string(in, strlen(in), "t", &set, &error), 0);
    assert_false(mg_settings_has_tcp_links(set));
    mg_settings_free(&set);
}

static void test_settings_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_settings) / sizeof(bad_settings[0]); i++) {
        struct mg_settings *set = NULL;
        char *error = NULL;
        const char *in = bad_settings[i].input;
        if (mg_settings_load_string(in, strlen(in), "t", &set, &error) == 0)
            fail_msg("case %zu accepted: %s", i, in);
        assert_null(set);
        if (strstr(error, bad_settings[i].error) == NULL)
            fail_msg("case %zu: error '%s' lacks '%s'", i, error, bad_settings[i].error);
        free(error);
    }
}

static void test_settings_value_parsers(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(mg_settings_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(mg_settings_parse_size("512K", &v), 0);
    assert_int_equal(v, 512 * 1024);
    assert_int_equal(mg_settings_parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(mg_settings_parse_size("1MB", &v), 0);
    assert_int_equal(v, 1 << 20);
    assert_int_equal(mg_settings_parse_size("", &v), -1);
    assert_int_equal(mg_settings_parse_size("-1", &v), -1);
    assert_int_equal(mg_settings_parse_size("99999999999T", &v), -1);
    assert_int_equal(mg_settings_parse_duration("30", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(mg_settings_parse_duration("5d", &v), 0);
    assert_int_equal(v, 5ull * 86400000);
    assert_int_equal(mg_settings_parse_duration("10min", &v), 0);
    assert_int_equal(v, 600000);
    assert_int_equal(mg_settings_parse_duration("1y", &v), -1);
    assert_int_equal(mg_settings_parse_duration("s", &v), -1);
}

static void test_settings_file_and_schema(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char path[512];
    snprintf(path, sizeof(path), "%s/m.conf", dir);
    testutil_write_file(path, "[userdb]\npath = /x/y\n", 20);
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load(path, &set, &error) != 0)
        fail_msg("%s", error);
    assert_string_equal(set->userdb.path, "/x/y");
    assert_string_equal(set->source_file, path);
    /* The hostname falls back to the system's name. */
    assert_true(set->hostname[0] != '\0');
    mg_settings_free(&set);

    char *schema = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&schema, &len);
    mg_settings_dump_schema(f);
    fclose(f);
    assert_non_null(strstr(schema, "imap.listen listen \"*:993\"\n"));
    assert_non_null(strstr(schema, "log_level log-level \"info\"\n"));
    free(schema);
    testutil_rmtree(dir);
    free(dir);
}

/* Every key of the schema is documented in docs/configuration.md, under
 * the heading of its section ("## Global" or "## [section]"). */
static void test_settings_documented(void **state)
{
    (void)state;
    char *path = testutil_source_path("docs/configuration.md");
    char *doc = testutil_read_file(path, NULL);
    if (doc == NULL)
        fail_msg("cannot read %s", path);
    char *schema = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&schema, &len);
    mg_settings_dump_schema(f);
    fclose(f);
    int missing = 0;
    for (char *line = strtok(schema, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[128];
        if (sscanf(line, "%127s", name) != 1)
            continue;
        char *dot = strchr(name, '.');
        char heading[160];
        const char *key = name;
        if (dot != NULL) {
            *dot = '\0';
            snprintf(heading, sizeof(heading), "\n## [%s]\n", name);
            key = dot + 1;
        } else {
            snprintf(heading, sizeof(heading), "\n## Global\n");
        }
        const char *sec = strstr(doc, heading);
        if (sec == NULL) {
            print_error("docs/configuration.md: no section heading %s", heading + 1);
            missing++;
            continue;
        }
        const char *end = strstr(sec + strlen(heading), "\n## ");
        char needle[140];
        snprintf(needle, sizeof(needle), "| `%s` |", key);
        const char *hit = strstr(sec, needle);
        if (hit == NULL || (end != NULL && hit > end)) {
            print_error("docs/configuration.md: key %s of %s is not documented\n", key, heading + 1);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    free(schema);
    free(doc);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse_table),
        cmocka_unit_test(test_config_nul_and_long_line),
        cmocka_unit_test(test_config_missing_file),
        cmocka_unit_test(test_settings_defaults_and_values),
        cmocka_unit_test(test_settings_errors),
        cmocka_unit_test(test_settings_value_parsers),
        cmocka_unit_test(test_settings_tcp_links),
        cmocka_unit_test(test_settings_dropins),
        cmocka_unit_test(test_settings_file_and_schema),
        cmocka_unit_test(test_settings_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
