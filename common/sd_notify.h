/* The systemd notification protocol (sd_notify(3)) without libsystemd:
 * a datagram to $NOTIFY_SOCKET. Does nothing outside systemd. */
#ifndef MG_COMMON_SD_NOTIFY_H
#define MG_COMMON_SD_NOTIFY_H

/* state: "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...". Returns 0
 * when sent or when there is no systemd to tell. */
int mg_sd_notify(const char *state);

#endif
