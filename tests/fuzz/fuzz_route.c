/* libFuzzer harness: the next-hop parsers of mta/delivery/route.c.
 *
 * The first byte picks the [relay] options (bit 0 relayhost_security =
 * starttls, bit 1 tls_verify = verify, bit 2 a relayhost_user); the rest
 * is split at line feeds:
 *   line 1      [relay] transport
 *   line 2      [relay] relayhost, and our own hostname for the MX step
 *   line 3...   recipient domains for route_choose, and MX records for
 *               route_mx_prepare (first byte: preference, rest: host)
 * Every line also goes to route_host_parse as it is, NUL bytes included,
 * because that function takes a length and not a C string. What parses
 * must hold its promises: lower-case names, a port, and a host written
 * back in its own syntax parses to the same host. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/settings.h"
#include "mta/delivery/dns.h"
#include "mta/delivery/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_LINES_MAX 64

struct line {
    const char *text;
    size_t len;
};

static void check_host(const char *text, size_t len)
{
    struct route_host host;
    const char *error = NULL;
    if (route_host_parse(text, len, ROUTE_SMTP_PORT, &host, &error) != 0) {
        if (error == NULL)
            mg_panic("route_host_parse failed without a reason");
        return;
    }
    size_t name_len = strlen(host.name);
    if (name_len == 0 || name_len > DNS_NAME_MAX)
        mg_panic("host name of %zu bytes", name_len);
    for (size_t i = 0; i < name_len; i++) {
        if (host.name[i] >= 'A' && host.name[i] <= 'Z')
            mg_panic("host name not lower case: %s", host.name);
    }
    if (host.port == 0)
        mg_panic("port 0");
    if (host.is_ip && !host.is_literal)
        mg_panic("an address that is not literal");
    /* Written back in the configuration syntax, it must parse the same. */
    char *again_text = mg_asprintf(host.is_literal ? "[%s]:%u" : "%s:%u", host.name, host.port);
    struct route_host again;
    if (route_host_parse(again_text, strlen(again_text), 1, &again, &error) != 0)
        mg_panic("\"%s\" does not parse again: %s", again_text, error);
    if (strcmp(again.name, host.name) != 0 || again.port != host.port ||
        again.is_literal != host.is_literal || again.is_ip != host.is_ip)
        mg_panic("\"%s\" parses to another host", again_text);
    route_host_free(&again);
    free(again_text);
    route_host_free(&host);
    if (host.name != NULL)
        mg_panic("route_host_free left the name");
}

static void check_choose(const struct route_table *table, const char *domain)
{
    struct route_hop hop;
    const char *error = NULL;
    if (route_choose(table, domain, &hop, &error) != 0) {
        if (error == NULL)
            mg_panic("route_choose failed without a reason");
        return;
    }
    if (hop.name == NULL || hop.domain != domain || hop.port == 0)
        mg_panic("incomplete hop for %s", domain);
    char key[ROUTE_KEY_MAX];
    route_hop_key(&hop, key);
    if (memchr(key, '\0', sizeof(key)) == NULL)
        mg_panic("unterminated key");
    if (hop.is_ip) {
        struct route_result result;
        route_result_literal(&hop, &result);
        if (result.n_targets > 1 || (result.n_targets == 0) != (result.result != 0))
            mg_panic("literal %s: %zu targets, result %d", hop.name, result.n_targets, result.result);
        if (result.n_targets == 1 && result.targets[0].port != hop.port)
            mg_panic("literal %s: port changed", hop.name);
        route_result_free(&result);
    }
}

/* Deterministic: a crash must replay from its input alone. */
static uint32_t fuzz_random(void *ctx)
{
    uint32_t *state = ctx;
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static void check_mx(const struct line *lines, size_t n_lines, const char *self, uint32_t seed)
{
    struct route_mx mx[FUZZ_LINES_MAX];
    size_t n = 0;
    bool has_host = false;
    for (size_t i = 2; i < n_lines; i++) {
        if (lines[i].len == 0)
            continue;
        /* Few preferences, so that equal ones are shuffled. */
        mx[n].pref = (unsigned char)lines[i].text[0] % 8;
        mx[n].host = mg_strndup(lines[i].text + 1, lines[i].len - 1);
        has_host |= mx[n].host[0] != '\0';
        n++;
    }
    if (n == 0)
        return;
    size_t n_in = n;
    enum route_mx_status st = route_mx_prepare(mx, &n, self, fuzz_random, &seed);
    switch (st) {
    case ROUTE_MX_OK:
        if (n == 0 || n > ROUTE_MX_MAX || n > n_in)
            mg_panic("%zu hosts left of %zu", n, n_in);
        for (size_t i = 0; i < n; i++) {
            if (mx[i].host[0] == '\0')
                mg_panic("a null MX among real hosts is kept");
            if (i > 0 && mx[i - 1].pref > mx[i].pref)
                mg_panic("not sorted by preference");
            if (self[0] != '\0' && route_name_eq(mx[i].host, self))
                mg_panic("our own host %s is kept", self);
        }
        break;
    case ROUTE_MX_NULL:
        if (has_host)
            mg_panic("null MX among real hosts");
        break;
    case ROUTE_MX_LOOP:
        if (n != 0 || self[0] == '\0')
            mg_panic("loop with %zu hosts left", n);
        break;
    }
    for (size_t i = 0; i < n; i++)
        free(mx[i].host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    struct line lines[FUZZ_LINES_MAX];
    size_t n_lines = 0;
    for (size_t off = 0; off <= len && n_lines < FUZZ_LINES_MAX;) {
        const char *lf = memchr(text + off, '\n', len - off);
        size_t end = lf != NULL ? (size_t)(lf - text) : len;
        lines[n_lines++] = (struct line){ text + off, end - off };
        off = end + 1;
    }
    for (size_t i = 0; i < n_lines; i++)
        check_host(lines[i].text, lines[i].len);

    /* Settings values are C strings: a NUL byte ends them there. */
    char *transport = mg_strndup(lines[0].text, lines[0].len);
    char *relayhost = n_lines > 1 ? mg_strndup(lines[1].text, lines[1].len) : mg_strdup("");
    struct mg_settings_relay relay = {
        .relayhost = relayhost,
        .relayhost_security = (flags & 1) ? "starttls" : "tls",
        .relayhost_user = (flags & 4) ? "user" : "",
        .transport = transport,
        .tls_verify = (flags & 2) ? "verify" : "none",
    };
    struct route_table *table = NULL;
    char *error = NULL;
    if (route_table_new(&relay, &table, &error) == 0) {
        if (route_table_transport_count(table) > ROUTE_TRANSPORT_MAX)
            mg_panic("more than ROUTE_TRANSPORT_MAX entries");
        for (size_t i = 2; i < n_lines; i++) {
            char *domain = mg_strndup(lines[i].text, lines[i].len);
            check_choose(table, domain);
            free(domain);
        }
        route_table_free(&table);
        if (table != NULL)
            mg_panic("route_table_free left the table");
    } else {
        if (error == NULL || table != NULL)
            mg_panic("route_table_new failed without a reason");
        free(error);
    }

    check_mx(lines, n_lines, relayhost, (uint32_t)size);
    (void)route_name_eq(transport, relayhost);
    free(transport);
    free(relayhost);
    return 0;
}
