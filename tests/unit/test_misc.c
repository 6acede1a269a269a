/* Small common modules: base64, unique IDs, dates, logging format. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/unique_id.h"

static void test_base64(void **state)
{
    (void)state;
    static const struct { const char *plain; const char *enc; } v[] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct mg_buf b = MG_BUF_INIT;
        mg_base64_encode(v[i].plain, strlen(v[i].plain), &b);
        assert_string_equal(mg_buf_cstr(&b), v[i].enc);
        mg_buf_reset(&b);
        assert_int_equal(mg_base64_decode(v[i].enc, strlen(v[i].enc), &b), 0);
        assert_int_equal(b.len, strlen(v[i].plain));
        assert_memory_equal(mg_buf_cstr(&b), v[i].plain, b.len);
        mg_buf_free(&b);
    }
    /* SASL PLAIN with NULs. */
    struct mg_buf b = MG_BUF_INIT;
    assert_int_equal(mg_base64_decode("AGRlbW8AcGFzcw==", 16, &b), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "\0demo\0pass", 10);
    mg_buf_free(&b);
    static const char *const bad[] = { "Zg=", "Zg", "Z===", "Zm9v\r\n", "Zh==", "Zm9=", "Zg==Zg==", "Zm 9v", "=Zm9" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mg_buf o = MG_BUF_INIT;
        mg_buf_append_str(&o, "keep");
        if (mg_base64_decode(bad[i], strlen(bad[i]), &o) == 0)
            fail_msg("accepted bad base64 '%s'", bad[i]);
        assert_string_equal(mg_buf_cstr(&o), "keep");
        mg_buf_free(&o);
    }
}

static void test_unique_id(void **state)
{
    (void)state;
    char prev[MG_UNIQUE_ID_LEN + 1] = "";
    for (int i = 0; i < 10000; i++) {
        char id[MG_UNIQUE_ID_LEN + 1];
        mg_unique_id_new(id);
        assert_int_equal(strlen(id), MG_UNIQUE_ID_LEN);
        assert_true(mg_unique_id_is_valid(id));
        /* Strictly increasing, so lexical order is creation order. */
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof(id));
    }
    assert_false(mg_unique_id_is_valid("short"));
    assert_false(mg_unique_id_is_valid("0123456789ABCDEI")); /* I is not in the alphabet */
    assert_false(mg_unique_id_is_valid("../../etc/passwd"));
    char s[MG_SESSION_ID_LEN + 1];
    mg_unique_id_session(s);
    assert_int_equal(strlen(s), MG_SESSION_ID_LEN);
}

static void test_datetime(void **state)
{
    (void)state;
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    char buf[MG_DATETIME_RFC5322_SIZE];
    mg_datetime_rfc5322(1795869079, buf); /* 2026-11-28 12:31:19 UTC */
    assert_string_equal(buf, "Sat, 28 Nov 2026 13:31:19 +0100");
    setenv("TZ", "UTC", 1);
    tzset();
    mg_datetime_rfc5322(0, buf);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 +0000");
    setenv("TZ", "America/St_Johns", 1);
    tzset();
    mg_datetime_rfc5322(1795869079, buf);
    assert_string_equal(buf, "Sat, 28 Nov 2026 09:01:19 -0330");
    char iso[MG_DATETIME_ISO8601_SIZE];
    mg_datetime_iso8601(1795869079, iso);
    assert_string_equal(iso, "2026-11-28T12:31:19Z");
    unsetenv("TZ");
    tzset();
    unsigned long long a = mg_datetime_monotonic_ms();
    assert_true(mg_datetime_monotonic_ms() >= a);
}

/* Runs fn with stderr captured; returns what was written. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/mglogtest.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    char *text = testutil_read_file(path, NULL);
    unlink(path);
    return text;
}

static void log_some_lines(void)
{
    char v[MG_LOG_VALUE_MAX];
    mg_log_info("imap", "login user=%s remote=%s", mg_log_str(v, "demo@mailgenic.test"), "127.0.0.1");
    mg_log_info("smtp", "reply text=%s", mg_log_str(v, "evil\r\n<3>error forged: line"));
    mg_log_debug("smtp", "not shown at info");
    mg_log_warning("tls", "line with\nnewline");
}

static void test_log_format(void **state)
{
    (void)state;
    setenv("JOURNAL_STREAM", "8:1234", 1);
    mg_log_init("mgtest");
    char *out = capture_stderr(log_some_lines);
    assert_string_equal(out,
        "<6>info imap: login user=demo@mailgenic.test remote=127.0.0.1\n"
        "<6>info smtp: reply text=\"evil\\x0d\\x0a<3>error forged: line\"\n"
        "<4>warning tls: line with newline\n");
    free(out);
    unsetenv("JOURNAL_STREAM");
    mg_log_init("mgtest");
    out = capture_stderr(log_some_lines);
    /* Outside journald: timestamp, program and pid first. */
    assert_non_null(strstr(out, "Z mgtest["));
    assert_non_null(strstr(out, "]: info imap: login user=demo@mailgenic.test"));
    free(out);

    char v[16];
    assert_string_equal(mg_log_value(v, sizeof(v), "", 0), "\"\"");
    assert_string_equal(mg_log_value(v, sizeof(v), "a b", 3), "\"a b\"");
    assert_string_equal(mg_log_value(v, sizeof(v), "k=v", 3), "\"k=v\"");
    assert_string_equal(mg_log_value(v, sizeof(v), "aaaaaaaaaaaaaaaaaaaaaaaaaa", 26), "\"aaaaaaaaaa...\"");
    enum mg_log_level l;
    assert_int_equal(mg_log_level_parse("warning", &l), 0);
    assert_int_equal(l, MG_LOG_WARNING);
    assert_int_equal(mg_log_level_parse("fatal", &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_unique_id),
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_log_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
