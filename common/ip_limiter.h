/* Per-address accounting for listeners: connections open, and failed
 * logins within a sliding window. Entries disappear when an address has
 * neither, so a scan of the internet costs no memory. */
#ifndef MG_COMMON_IP_LIMITER_H
#define MG_COMMON_IP_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct mg_ip_limiter;

struct mg_ip_limiter *mg_ip_limiter_new(uint64_t failure_window_ms);
void mg_ip_limiter_free(struct mg_ip_limiter **lim);
/* Counts a new connection; returns its number for this address (the
 * caller compares with its limit and still calls _disconnect). */
unsigned mg_ip_limiter_connect(struct mg_ip_limiter *lim, const char *ip);
void mg_ip_limiter_disconnect(struct mg_ip_limiter *lim, const char *ip);
/* Failed logins within the window. */
void mg_ip_limiter_fail(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms);
unsigned mg_ip_limiter_failures(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms);
/* Connections open in total. */
unsigned mg_ip_limiter_total(const struct mg_ip_limiter *lim);

#endif
