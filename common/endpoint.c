/* Endpoints of the links between Mailgenic daemons. */
#include "common/endpoint.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/conn.h"

bool mg_endpoint_is_tcp(const char *text)
{
    return text[0] != '/';
}

/* Splits "host:port" / "[v6]:port"; host_r is allocated. */
static int split_host_port(const char *text, char **host_r, uint16_t *port_r, char **error_r)
{
    const char *host = text;
    const char *colon;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
        host = text + 1;
        host_len = colon != NULL ? (size_t)(close - host) : 0;
    } else {
        colon = strrchr(text, ':');
        host_len = colon != NULL ? (size_t)(colon - text) : 0;
        if (host_len > 0 && memchr(host, ':', host_len) != NULL) {
            *error_r = mg_asprintf("%s: put an IPv6 address in brackets: [addr]:port", text);
            return -1;
        }
    }
    if (colon == NULL || host_len == 0) {
        *error_r = mg_asprintf("%s: a socket path (starting with /) or host:port expected", text);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port == 0 || port > 65535 ||
        colon[1] == '+' || colon[1] == '-' || colon[1] == ' ') {
        *error_r = mg_asprintf("%s: bad port", text);
        return -1;
    }
    *host_r = mg_strndup(host, host_len);
    *port_r = (uint16_t)port;
    return 0;
}

static int resolve(struct mg_endpoint *ep, const char *text, char **error_r)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", ep->port);
    int r = getaddrinfo(ep->host, port, &hints, &res);
    if (r != 0) {
        /* AI_ADDRCONFIG hides ::1 on a host whose only interface is
         * loopback: ask again without it. */
        hints.ai_flags = 0;
        r = getaddrinfo(ep->host, port, &hints, &res);
    }
    if (r != 0) {
        *error_r = mg_asprintf("%s: cannot resolve %s: %s", text, ep->host, gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && ep->n_addrs < MG_ENDPOINT_ADDRS_MAX;
         ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&ep->addrs[ep->n_addrs++], ai->ai_addr, ai->ai_addrlen);
    }
    freeaddrinfo(res);
    if (ep->n_addrs == 0) {
        *error_r = mg_asprintf("%s: no address for %s", text, ep->host);
        return -1;
    }
    return 0;
}

int mg_endpoint_parse(const char *text, struct mg_endpoint *ep_r, char **error_r)
{
    memset(ep_r, 0, sizeof(*ep_r));
    if (text[0] == '\0') {
        *error_r = mg_strdup("empty address");
        return -1;
    }
    if (!mg_endpoint_is_tcp(text)) {
        ep_r->is_unix = true;
        ep_r->path = mg_strdup(text);
        return 0;
    }
    if (split_host_port(text, &ep_r->host, &ep_r->port, error_r) < 0 ||
        resolve(ep_r, text, error_r) < 0) {
        mg_endpoint_clear(ep_r);
        return -1;
    }
    return 0;
}

void mg_endpoint_clear(struct mg_endpoint *ep)
{
    free(ep->path);
    free(ep->host);
    memset(ep, 0, sizeof(*ep));
}

struct mg_conn *mg_endpoint_connect(struct mg_endpoint *ep, uv_loop_t *loop, uint64_t timeout_ms,
                                    const struct mg_conn_callbacks *cb, void *data)
{
    if (ep->is_unix)
        return mg_conn_connect_unix(loop, ep->path, timeout_ms, cb, data);
    const struct sockaddr_storage *addr = &ep->addrs[ep->next_addr];
    ep->next_addr = (ep->next_addr + 1) % ep->n_addrs;
    return mg_conn_connect_tcp(loop, (const struct sockaddr *)addr, timeout_ms, cb, data);
}

const char *mg_endpoint_name(const struct mg_endpoint *ep, char *buf, size_t size)
{
    if (ep->is_unix)
        snprintf(buf, size, "%s", ep->path);
    else if (strchr(ep->host, ':') != NULL)
        snprintf(buf, size, "[%s]:%u", ep->host, ep->port);
    else
        snprintf(buf, size, "%s:%u", ep->host, ep->port);
    return buf;
}
