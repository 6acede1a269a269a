/* Per-address accounting for listeners: connections open, and failed
 * logins within a window. Entries disappear when an address has neither
 * (failures once their window is over), so a scan of the internet costs
 * no memory. */
#ifndef MG_COMMON_IP_LIMITER_H
#define MG_COMMON_IP_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_ip_limiter;

struct mg_ip_limiter *mg_ip_limiter_new(uint64_t failure_window_ms);
void mg_ip_limiter_free(struct mg_ip_limiter **lim);
/* Counts a new connection; returns its number for this address (the
 * caller compares with its limit and still calls _disconnect). Addresses
 * are compared as text: pass one canonical form (mg_conn_peer_ip()). */
unsigned mg_ip_limiter_connect(struct mg_ip_limiter *lim, const char *ip);
/* Uncounts a connection of ip; does nothing when ip has none open. */
void mg_ip_limiter_disconnect(struct mg_ip_limiter *lim, const char *ip);
/* Failed logins: the window opens with an address's first failure and
 * closes failure_window_ms later (a failure at exactly that time still
 * counts); the next failure after it opens a new one. now_ms is a
 * monotonic clock in milliseconds, never going back. */
void mg_ip_limiter_fail(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms);
unsigned mg_ip_limiter_failures(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms);
/* Connections open in total. */
unsigned mg_ip_limiter_total(const struct mg_ip_limiter *lim);
/* Addresses tracked: with a connection open, or failures in an open
 * window (expired ones are swept as failures come in). */
size_t mg_ip_limiter_count(const struct mg_ip_limiter *lim);

#endif
