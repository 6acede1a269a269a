#!/bin/sh
# The MDA benchmark (`make bench`): bench/run.sh BUILD_DIR
#
# Sets up a throw-away Mailgenic instance with the programs in
# BUILD_DIR/bin (configuration, self-signed certificate, a domain with
# BENCH_USERS users and one user for the big INBOX), starts mgimapd and
# measures, with the load tools in BUILD_DIR/bench:
#
#   1. LMTP deliveries per second: BENCH_MESSAGES messages of BENCH_SIZE
#      bytes to user1..userN over BENCH_SESSIONS parallel sessions (the
#      store fsyncs every delivery; there is no switch to turn that off),
#      and the CPU time mgimapd and mgauthd spent per delivery;
#   2. filling one INBOX with BENCH_FILL messages over LMTP;
#   3. one client doing LOGIN, SELECT of that INBOX, FETCH 1:* (FLAGS
#      ENVELOPE), LOGOUT (median of BENCH_FETCH_RUNS sessions);
#   4. memory per idle connection: mgimapd is restarted, and the PSS of all
#      mgimapd and mgauthd processes with BENCH_IDLE authenticated IMAPS
#      connections in IDLE minus the PSS before them, per connection.
#
# It prints a table with the targets beside the figures, removes the
# instance and exits 0 when every target is met, 1 when one is missed.
#
# Knobs (environment): BENCH_USERS (100), BENCH_MESSAGES (20000),
# BENCH_SIZE (5120), BENCH_SESSIONS (4), BENCH_FILL (10000),
# BENCH_FETCH_RUNS (5), BENCH_IDLE (1000), BENCH_DIR (a directory for the
# instance; default a new one under $TMPDIR), BENCH_KEEP=1 (keep it).
set -eu

usage() {
    echo "usage: bench/run.sh BUILD_DIR" >&2
    exit 2
}
[ $# -eq 1 ] || usage
top=$(cd "$(dirname "$0")/.." && pwd)
build=$1
case $build in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
tools="$build/bench"

users=${BENCH_USERS:-100}
messages=${BENCH_MESSAGES:-20000}
size=${BENCH_SIZE:-5120}
sessions=${BENCH_SESSIONS:-4}
fill=${BENCH_FILL:-10000}
fetch_runs=${BENCH_FETCH_RUNS:-5}
idle=${BENCH_IDLE:-1000}
domain=bench.test

# Targets (from the issue) and reference figures (Dovecot 2.3 on the
# same kind of machine).
target_rate=2000
target_fetch=0.5
target_pss_kib=64

for prog in "$bin/mgimapd" "$bin/mgauthd" "$bin/mgadm" "$tools/lmtp_load" \
    "$tools/imap_fetch" "$tools/imap_idle"; do
    if [ ! -x "$prog" ]; then
        echo "bench: $prog is missing: build first (make build)" >&2
        exit 1
    fi
done
for cmd in openssl awk getconf; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "bench: $cmd is needed" >&2; exit 1; }
done

# Connections: the idle test needs a descriptor per connection on both
# sides (the tool and mgimapd inherit this limit).
need_fds=$((idle + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fds" ]; then
        echo "bench: the open-files limit (hard $hard) is below $need_fds; lower BENCH_IDLE" >&2
        exit 1
    fi
    ulimit -n "$need_fds"
fi

if [ -n "${BENCH_DIR:-}" ]; then
    dir=$BENCH_DIR
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mgbench.XXXXXX")
fi
imapd_pid=""
idle_pids=""
cleanup() {
    trap - EXIT INT TERM
    for p in $idle_pids; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    stop_imapd
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: instance kept in $dir"
    else
        rm -rf "$dir"
    fi
}

# ---- helpers over /proc ----

# mgimapd and every process below it (mgauthd's supervisor and worker).
server_pids() {
    [ -n "$imapd_pid" ] || return 0
    # cat, not awk, opens the files: processes come and go meanwhile, and
    # mawk gives up at the first one that is gone.
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$imapd_pid" '
        { pid = $1; sub(/^.*\) /, ""); ppid[pid] = $2 }
        END {
            print root
            n = 1; found[root] = 1
            while (n > 0) {
                n = 0
                for (p in ppid)
                    if (!(p in found) && (ppid[p] in found)) { found[p] = 1; print p; n++ }
            }
        }'
}

# utime + stime of the server processes, in clock ticks.
server_ticks() {
    total=0
    for p in $(server_pids); do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# Sum of Pss (KiB) of the server processes.
server_pss() {
    total=0
    for p in $(server_pids); do
        k=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${k:-0}))
    done
    echo "$total"
}

# Pss (KiB) of the server processes by kind of mapping: "heap anon bdb
# other" (heap: [heap]; anon: other anonymous memory, i.e. thread arenas,
# large allocations and stacks; bdb: the Berkeley DB region files, whose
# pages are the index cache; other: binaries, libraries, the rest).
server_pss_kinds() {
    for p in $(server_pids); do
        cat "/proc/$p/smaps" 2>/dev/null
    done | awk '
        /^[0-9a-f]+-[0-9a-f]+ / { kind = "other"
            if (NF < 6) kind = "anon"
            else if ($6 == "[heap]") kind = "heap"
            else if ($6 ~ /\/__db\.[0-9]+$/) kind = "bdb"
            else if ($6 ~ /^\[(stack|anon)/) kind = "anon"
            next }
        /^Pss:/ { sum[kind] += $2 }
        END { printf "%d %d %d %d\n", sum["heap"], sum["anon"], sum["bdb"], sum["other"] }'
}

# The value of key=... in a RESULT line.
field() {
    printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

port_in_use() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h=":$hex" '$2 ~ h"$" { f = 1 } END { exit !f }'
}

start_imapd() {
    "$bin/mgimapd" -c "$conf" >>"$dir/log/mgimapd.log" 2>&1 &
    imapd_pid=$!
    i=0
    while [ $i -lt 100 ]; do
        if [ -S "$dir/lmtp.sock" ] && port_in_use "$port" && \
            [ "$(server_pids | wc -l)" -ge 2 ]; then
            return 0
        fi
        if ! kill -0 "$imapd_pid" 2>/dev/null; then
            echo "bench: mgimapd did not start:" >&2
            tail -5 "$dir/log/mgimapd.log" >&2
            imapd_pid=""
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "bench: mgimapd did not come up in 10 s" >&2
    exit 1
}

stop_imapd() {
    [ -n "$imapd_pid" ] || return 0
    kill -TERM "$imapd_pid" 2>/dev/null || true
    i=0
    while kill -0 "$imapd_pid" 2>/dev/null && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$imapd_pid" 2>/dev/null || true
    status=0
    wait "$imapd_pid" 2>/dev/null || status=$?
    if [ "$status" -ne 0 ]; then
        echo "bench: warning: mgimapd exited with status $status when stopped; its log ends:" >&2
        tail -5 "$dir/log/mgimapd.log" >&2
    fi
    imapd_pid=""
    rm -f "$dir/lmtp.sock" "$dir/auth.sock"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the instance ----

port=$((30000 + $$ % 20000))
while port_in_use "$port"; do
    port=$((port + 1))
done
umask 077
mkdir -p "$dir/tls" "$dir/mail" "$dir/index" "$dir/log"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" >/dev/null 2>&1
conf="$dir/mailgenic.conf"
cat >"$conf" <<CONF
# Written by bench/run.sh for one benchmark run.
hostname = mail.$domain
log_level = warning

[tls]
cert_file = $dir/tls/cert.pem
key_file = $dir/tls/key.pem

[userdb]
path = $dir/userdb

[auth]
socket = $dir/auth.sock
socket_group =
user =
group =

[mda]
user =
group =
mail_dir = $dir/mail
index_dir = $dir/index

[imap]
listen = 127.0.0.1:$port
max_connections = $((idle + 100))
max_connections_per_ip = $((idle + 100))
max_auth_failures_per_ip = 1000

[lmtp]
socket = $dir/lmtp.sock
socket_group =
CONF
password=$(openssl rand -hex 12)
printf '%s\n' "$password" >"$dir/password"

mgadm() { "$bin/mgadm" -c "$conf" "$@"; }
echo "bench: creating $users users in $dir"
mgadm domain add "$domain"
i=1
while [ "$i" -le "$users" ]; do
    printf '%s\n' "$password" | mgadm user add "user$i@$domain" --password-stdin
    i=$((i + 1))
done
printf '%s\n' "$password" | mgadm user add "big@$domain" --password-stdin

start_imapd
hz=$(getconf CLK_TCK)
cpus=$(getconf _NPROCESSORS_ONLN)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. LMTP deliveries ----

echo "bench: warming up (one message per user)"
"$tools/lmtp_load" -q -u "$dir/lmtp.sock" -c "$sessions" -n "$users" -s "$size" \
    -r "user%d@$domain" -R "1-$users" >/dev/null
echo "bench: LMTP: $messages messages of $size bytes to $users users over $sessions sessions"
t0=$(server_ticks)
lmtp_out=$("$tools/lmtp_load" -u "$dir/lmtp.sock" -c "$sessions" -n "$messages" -s "$size" \
    -r "user%d@$domain" -R "1-$users") || { echo "$lmtp_out"; echo "bench: LMTP run failed" >&2; exit 1; }
t1=$(server_ticks)
echo "$lmtp_out" | sed 's/^/    /'
lmtp_result=$(echo "$lmtp_out" | grep '^RESULT')
lmtp_rate=$(field rate "$lmtp_result")
lmtp_ok=$(field ok "$lmtp_result")
lmtp_p50=$(field p50_ms "$lmtp_result")
lmtp_p99=$(field p99_ms "$lmtp_result")
lmtp_cpu_ms=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$lmtp_ok" 'BEGIN { printf "%.3f", n ? t / hz * 1000 / n : 0 }')

# ---- 2. the big INBOX ----

echo "bench: filling big@$domain with $fill messages"
fill_out=$("$tools/lmtp_load" -u "$dir/lmtp.sock" -c "$sessions" -n "$fill" -s "$size" \
    -r "big@$domain" -R 1-1) || { echo "$fill_out"; echo "bench: fill failed" >&2; exit 1; }
echo "$fill_out" | sed 's/^/    /'
fill_rate=$(field rate "$(echo "$fill_out" | grep '^RESULT')")

# ---- 3. LOGIN, SELECT, FETCH 1:* (FLAGS ENVELOPE), LOGOUT ----

echo "bench: IMAP: LOGIN, SELECT INBOX ($fill messages), FETCH 1:* (FLAGS ENVELOPE), LOGOUT x $fetch_runs"
t0=$(server_ticks)
fetch_out=$("$tools/imap_fetch" -H 127.0.0.1 -p "$port" -u "big@$domain" \
    --password-file "$dir/password" -r "$fetch_runs") || { echo "$fetch_out"; echo "bench: fetch failed" >&2; exit 1; }
t1=$(server_ticks)
echo "$fetch_out" | sed 's/^/    /'
fetch_result=$(echo "$fetch_out" | grep '^RESULT')
fetch_total=$(field total "$fetch_result")
fetch_best=$(field best_total "$fetch_result")
fetch_fetch=$(field fetch "$fetch_result")
fetch_msgs=$(field messages "$fetch_result")
fetch_client_cpu=$(field client_cpu "$fetch_result")
fetch_server_cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$fetch_runs" 'BEGIN { printf "%.3f", t / hz / n }')

# ---- 4. memory per idle connection ----

echo "bench: restarting mgimapd for a clean memory baseline"
stop_imapd
start_imapd
# One login first, so that one-time set-up (auth connection, the store's
# environment) is in the baseline and not charged to the connections.
"$tools/imap_fetch" -q -H 127.0.0.1 -p "$port" -u "user1@$domain" \
    --password-file "$dir/password" -i "(FLAGS)" >/dev/null
sleep 1
pss0=$(server_pss)
kinds0=$(server_pss_kinds)
# Two waves of connections: the first half, then the rest. The figure
# the target is about counts everything the connections brought with them
# (PSS with all of them minus the baseline, over their number); the
# second wave alone gives the marginal cost of one more connection, once
# every user's index is loaded and Berkeley DB's shared regions are warm.
half=$((idle / 2))
rest=$((idle - half))
idle_wave() { # idle_wave N NAME: starts imap_idle and waits until all idle
    rm -f "$dir/idle-$2.ready"
    "$tools/imap_idle" -H 127.0.0.1 -p "$port" -u "user%d@$domain" -R "1-$users" \
        --password-file "$dir/password" -n "$1" --ready-file "$dir/idle-$2.ready" \
        >"$dir/log/imap_idle-$2.out" 2>&1 &
    wave_pid=$!
    idle_pids="$idle_pids $wave_pid"
    i=0
    while [ ! -f "$dir/idle-$2.ready" ]; do
        if ! kill -0 "$wave_pid" 2>/dev/null; then
            cat "$dir/log/imap_idle-$2.out" >&2
            echo "bench: imap_idle ended early" >&2
            exit 1
        fi
        [ $i -lt 3000 ] || { echo "bench: connections not idle after 300 s" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
    sleep 2
}
echo "bench: $idle connections: LOGIN, SELECT INBOX, IDLE (users 1-$users), in two waves"
idle_wave "$half" a
pss_half=$(server_pss)
idle_wave "$rest" b
idling=$(($(cat "$dir/idle-a.ready") + $(cat "$dir/idle-b.ready")))
pss1=$(server_pss)
kinds1=$(server_pss_kinds)
nprocs=$(server_pids | wc -l)
for p in $idle_pids; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" || true
done
idle_pids=""
sed 's/^/    /' "$dir/log/imap_idle-a.out" "$dir/log/imap_idle-b.out"
pss_per_conn=$(awk -v a="$pss0" -v b="$pss1" -v n="$idling" 'BEGIN { printf "%.1f", n ? (b - a) / n : 0 }')
pss_marginal=$(awk -v a="$pss_half" -v b="$pss1" -v n="$rest" 'BEGIN { printf "%.1f", n ? (b - a) / n : 0 }')
echo "    PSS of $nprocs server processes: $pss0 KiB before, $pss_half KiB with $half, $pss1 KiB with $idling idle connections"
pss_kinds=$(printf '%s %s\n' "$kinds0" "$kinds1" | awk -v n="$idling" '{
    if (n == 0) n = 1
    printf "heap %.1f, other anonymous %.1f, Berkeley DB regions %.1f, other %.1f KiB", \
        ($5 - $1) / n, ($6 - $2) / n, ($7 - $3) / n, ($8 - $4) / n }')
echo "    per connection: $pss_kinds; the second $rest alone: $pss_marginal KiB each"

# ---- summary ----

verdict() { # verdict OK-CONDITION
    if [ "$1" = 1 ]; then echo "met"; else echo "MISSED"; fi
}
ok_rate=$(awk -v r="$lmtp_rate" -v t="$target_rate" 'BEGIN { print (r >= t) ? 1 : 0 }')
ok_fetch=$(awk -v r="$fetch_total" -v t="$target_fetch" 'BEGIN { print (r < t) ? 1 : 0 }')
ok_pss=$(awk -v r="$pss_per_conn" -v t="$target_pss_kib" -v n="$idling" -v want="$idle" \
    'BEGIN { print (r < t && n == want) ? 1 : 0 }')

row() { # row MEASUREMENT RESULT [TARGET [VERDICT]]
    printf '  %-62s %-15s %-11s %s\n' "$1" "$2" "${3:-}" "${4:-}"
}
echo
echo "Mailgenic MDA benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $cpus CPUs, load average before: $load_before"
echo "programs: $bin"
echo
row "measurement" "result" "target" "verdict"
row "LMTP deliveries/s ($size B, $users users, $sessions sessions, fsync)" "$lmtp_rate/s" ">= $target_rate/s" "$(verdict "$ok_rate")"
row "  mgimapd+mgauthd CPU per delivery (Dovecot 2.3: ~1.7 ms)" "$lmtp_cpu_ms ms"
row "  latency p50 / p99" "$lmtp_p50 / $lmtp_p99 ms"
row "LMTP fill of one INBOX ($fill messages, one user)" "$fill_rate/s"
row "LOGIN, SELECT, FETCH 1:* (FLAGS ENVELOPE), LOGOUT: $fetch_msgs msgs" "$fetch_total s" "< $target_fetch s" "$(verdict "$ok_fetch")"
row "  (median of $fetch_runs sessions); FETCH alone / best session" "$fetch_fetch / $fetch_best s"
row "  server CPU per session / client CPU for all sessions" "$fetch_server_cpu / $fetch_client_cpu s"
row "PSS per idle IMAPS connection ($idling of $idle in IDLE)" "$pss_per_conn KiB" "< $target_pss_kib KiB" "$(verdict "$ok_pss")"
row "  (Dovecot 2.3: ~2 MiB; server PSS $pss0 -> $pss1 KiB)" ""
row "  of which $pss_kinds" ""
row "  marginal cost of one more (connections $((half + 1))-$idle)" "$pss_marginal KiB"

[ "$ok_rate" = 1 ] && [ "$ok_fetch" = 1 ] && [ "$ok_pss" = 1 ]
