#!/bin/sh
# The MTA benchmark (`make bench-mta`, and the second half of `make
# bench`): bench/mta_run.sh BUILD_DIR
#
# Sets up a throw-away Mailgenic instance with the programs in
# BUILD_DIR/bin (mgimapd with its mgauthd, and mgsmtpd, as the invoking
# user; by default in one state directory, see BENCH_LAYOUT; a
# self-signed certificate; a domain with BENCH_USERS users), warms it up with one message per user, then sends
# BENCH_MESSAGES messages of BENCH_SIZE bytes to user1..userN over
# BENCH_SESSIONS parallel sessions with BUILD_DIR/bench/smtp_load:
#
#   a. port 25, plain SMTP, connections reused;
#   b. port 25, one connection per message;
#   c. submissions: implicit TLS and AUTH PLAIN, connections reused;
#   accept. workload (a) with deliveries held: mgsmtpd restarted with its
#      LMTP target pointing where nobody listens, so the queue
#      still writes and fsyncs every message but nothing leaves it.
#
# (a)-(c) are timed from the start of smtp_load (its first connection) to
# the moment every accepted message is a file in its Maildir (new/ or
# cur/). CPU per message is utime + stime from /proc/PID/stat of each
# daemon and its children, before and after (after the spool is empty
# again, so the queue's clean-up is counted too). Each row also shows the
# CPU the whole machine spent meanwhile, so that other load is visible.
#
# It prints a table with the targets beside the figures, removes the
# instance and exits 0 when every target is met, 1 when one is missed.
#
# Knobs (environment): BENCH_USERS (100), BENCH_MESSAGES (5000),
# BENCH_SIZE (5120), BENCH_SESSIONS (20), BENCH_WORKLOADS ("a b c accept",
# any subset), BENCH_LOG_LEVEL (info, the daemons' default),
# BENCH_WAIT (300: seconds to wait for deliveries), BENCH_EXTRA_CONF
# (lines appended to the configuration, e.g. "[queue]" and
# "local_concurrency = 32" to try a setting), BENCH_DIR (a directory for
# the instance; default a new one under $TMPDIR), BENCH_KEEP=1 (keep it,
# with the logs), BENCH_LAYOUT (single, or two-hosts: mgimapd and
# mgsmtpd in two network namespaces, LMTP and auth over TCP with mutual
# TLS; needs root; see the layout_* functions below).
set -eu

usage() {
    echo "usage: bench/mta_run.sh BUILD_DIR" >&2
    exit 2
}
[ $# -eq 1 ] || usage
top=$(cd "$(dirname "$0")/.." && pwd)
build=$1
case $build in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
tools="$build/bench"

users=${BENCH_USERS:-100}
messages=${BENCH_MESSAGES:-5000}
size=${BENCH_SIZE:-5120}
sessions=${BENCH_SESSIONS:-20}
workloads=${BENCH_WORKLOADS:-a b c accept}
log_level=${BENCH_LOG_LEVEL:-info}
wait_max=${BENCH_WAIT:-300}
layout=${BENCH_LAYOUT:-single}
extra_conf=${BENCH_EXTRA_CONF:-}
domain=bench.test

# Targets (from the issue) and reference figures (Postfix 3.7 over LMTP
# to Dovecot 2.3 on the same kind of machine).
target_a=2000
target_c=1000
target_cpu_ms=1.0
postfix_a=400
postfix_accept=1000
postfix_cpu_ms=4

for prog in "$bin/mgimapd" "$bin/mgauthd" "$bin/mgsmtpd" "$bin/mgadm" "$tools/smtp_load"; do
    if [ ! -x "$prog" ]; then
        echo "bench: $prog is missing: build first (make build)" >&2
        exit 1
    fi
done
for cmd in openssl awk getconf find; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "bench: $cmd is needed" >&2; exit 1; }
done
for w in $workloads; do
    case $w in a|b|c|accept) ;; *) echo "bench: BENCH_WORKLOADS: a, b, c or accept, not $w" >&2; exit 2 ;; esac
done

if [ -n "${BENCH_DIR:-}" ]; then
    dir=$BENCH_DIR
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mgbench-mta.XXXXXX")
fi
imapd_pid=""
smtpd_pid=""
layout_netns=""
mda_ip=""
cleanup() {
    trap - EXIT INT TERM
    stop_mta
    stop_mda
    layout_cleanup
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: instance kept in $dir"
    else
        rm -rf "$dir"
    fi
}

# ---- helpers over /proc ----

# ROOT and every process below it.
tree_pids() {
    [ -n "$1" ] || return 0
    # cat, not awk, opens the files: processes come and go meanwhile, and
    # mawk gives up at the first one that is gone.
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
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

# utime + stime of the processes listed on standard input, in clock
# ticks (threads included).
ticks_of() {
    total=0
    while read -r p; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# "mgsmtpd mgimapd mgauthd" ticks: the MTA and its children; mgimapd
# itself; everything below mgimapd (mgauthd's supervisor and worker).
daemon_ticks() {
    smtpd=$(mta_pids | ticks_of)
    imapd=$(mda_pids | head -1 | ticks_of)
    authd=$(mda_pids | tail -n +2 | ticks_of)
    echo "$smtpd $imapd $authd"
}

# Busy ticks of the whole machine (all CPUs, everything but idle and
# iowait): shows how much else ran during a measurement.
machine_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

now_ns() {
    date +%s%N
}

# The value of key=... in a RESULT line.
field() {
    printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# Whether anything on this host's (this namespace's) TCP uses PORT.
port_in_use() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h=":$hex" '$2 ~ h"$" { f = 1 } END { exit !f }'
}

free_port() {
    p=$1
    while port_in_use "$p"; do
        p=$((p + 1))
    done
    echo "$p"
}

# Messages in the users' INBOXes: files in <mail_dir>/<domain>/<user>/new
# and cur (find reads directory entries only, no stat per file).
maildir_count() {
    find "$(layout_mail_dir)/$domain" -mindepth 3 -maxdepth 3 -type f \
        \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null | wc -l
}

# Messages in mgsmtpd's spool.
spool_count() {
    find "$(layout_queue_dir)/msg" -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null | wc -l
}

# wait_until COMMAND TARGET SECONDS: polls until COMMAND prints at least
# TARGET (or at most, with a negative TARGET: -0 means "empty"). Returns
# 1 on timeout.
wait_count() {
    deadline=$(($(date +%s) + $3))
    while :; do
        n=$($1)
        case $2 in
            -*) [ "$n" -le "${2#-}" ] && return 0 ;;
            *) [ "$n" -ge "$2" ] && return 0 ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# ---- the layout: where each daemon runs and how they reach each other ----
#
# Everything that differs between layouts is in these functions: the
# addresses, the configuration files, the command prefix that runs a
# program "on" a host, where the Maildirs and the spool are.
#
# single: both daemons on this host in one state directory ($dir), one
#   configuration file, LMTP and the auth service over UNIX sockets; the
#   listeners on free loopback ports.
# two-hosts: mgimapd in one network namespace and mgsmtpd in another,
#   joined by a veth pair; mgsmtpd reaches LMTP (port 24) and the auth
#   service (port 8024) over TCP with mutual TLS, with certificates of a
#   private CA made by `mgadm ca` (docs/scale-out.md). Each daemon has its
#   own state directory ($dir/mda, $dir/mta) and configuration; smtp_load
#   runs in the MTA's namespace. Needs root and ip(8).

layout_init() {
    case $layout in
        single)
            smtp_host=127.0.0.1
            smtp_port=$(free_port $((30000 + $$ % 20000)))
            submission_port=$(free_port $((smtp_port + 1)))
            imaps_port=$(free_port $((submission_port + 1)))
            mda_dir=$dir
            mta_dir=$dir
            ;;
        two-hosts)
            if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
                echo "bench: BENCH_LAYOUT=two-hosts needs root and ip(8) (network namespaces)" >&2
                exit 1
            fi
            tag=$(($$ % 100000))
            ns_mta="mgbmta$tag" ns_mda="mgbmda$tag"
            net="10.78.$(($$ % 250))"
            mta_ip="$net.1" mda_ip="$net.2"
            smtp_host=$mta_ip smtp_port=25 submission_port=465 imaps_port=993
            lmtp_port=24 auth_port=8024
            mda_dir="$dir/mda"
            mta_dir="$dir/mta"
            for ns in "$ns_mta" "$ns_mda"; do
                ip netns add "$ns"
                layout_netns="$layout_netns $ns"
                ip -n "$ns" link set lo up
            done
            ip link add "mgb${tag}a" netns "$ns_mta" type veth peer name "mgb${tag}b" netns "$ns_mda"
            ip -n "$ns_mta" addr add "$mta_ip/30" dev "mgb${tag}a"
            ip -n "$ns_mda" addr add "$mda_ip/30" dev "mgb${tag}b"
            ip -n "$ns_mta" link set "mgb${tag}a" up
            ip -n "$ns_mda" link set "mgb${tag}b" up
            ;;
        *)
            echo "bench: BENCH_LAYOUT: single or two-hosts, not $layout" >&2
            exit 2
            ;;
    esac
    mda_conf="$mda_dir/mailgenic.conf"
    mta_conf="$mta_dir/mailgenic.conf"
    mkdir -p "$mda_dir/mail" "$mda_dir/index" "$mta_dir/spool" "$dir/held"
}

# The host's own keys: the public certificate for 25, 465 and 993 and, on
# two hosts, the private CA and a certificate for each end of the link.
layout_make_keys() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" >/dev/null 2>&1
    [ "$layout" = two-hosts ] || return 0
    MG_CA_DIR="$dir/ca" "$bin/mgadm" ca init "Benchmark CA" >/dev/null
    MG_CA_DIR="$dir/ca" "$bin/mgadm" ca issue mda.bench.test "$mda_ip" >/dev/null
    MG_CA_DIR="$dir/ca" "$bin/mgadm" ca issue mta.bench.test "$mta_ip" >/dev/null
}

layout_cleanup() {
    for ns in $layout_netns; do
        ip netns del "$ns" 2>/dev/null || true
    done
    layout_netns=""
}

# layout_on HOST COMMAND...: runs a program on that host (mda or mta);
# layout_exec HOST COMMAND...: becomes it (for daemons started in a
# subshell, so that $! is the daemon's own pid).
layout_on() {
    h=$1
    shift
    if [ "$layout" = two-hosts ]; then
        if [ "$h" = mda ]; then ip netns exec "$ns_mda" "$@"; else ip netns exec "$ns_mta" "$@"; fi
    else
        "$@"
    fi
}
layout_exec() {
    h=$1
    shift
    if [ "$layout" = two-hosts ]; then
        if [ "$h" = mda ]; then exec ip netns exec "$ns_mda" "$@"; else exec ip netns exec "$ns_mta" "$@"; fi
    else
        exec "$@"
    fi
}

# Where mgsmtpd sends local mail and asks about users. With "held", a
# place nobody listens on: deliveries wait in the queue ("not attempted",
# retried every 2 s), which keeps acceptance alone measurable.
layout_lmtp_target() {
    case $layout/${1:-} in
        single/held) echo "$dir/held/lmtp.sock" ;;
        single/) echo "$mda_dir/lmtp.sock" ;;
        two-hosts/held) echo "$mda_ip:$((lmtp_port + 2400))" ;;
        two-hosts/) echo "$mda_ip:$lmtp_port" ;;
    esac
}
layout_auth_target() {
    if [ "$layout" = two-hosts ]; then echo "$mda_ip:$auth_port"; else echo "$mda_dir/auth.sock"; fi
}
layout_mail_dir() {
    echo "$mda_dir/mail"
}
layout_queue_dir() {
    echo "$mta_dir/spool"
}

conf_common() { # conf_common CLUSTER-NAME: global keys, [tls], [cluster]
    cat <<CONF
# Written by bench/mta_run.sh for one benchmark run.
hostname = mail.$domain
log_level = $log_level

[tls]
cert_file = $dir/tls/cert.pem
key_file = $dir/tls/key.pem
CONF
    [ -n "$1" ] || return 0
    cat <<CONF

[cluster]
ca_file = $dir/ca/ca.crt
cert_file = $dir/ca/$1.crt
key_file = $dir/ca/$1.key
CONF
}

conf_mda() {
    d=$mda_dir
    cat <<CONF

[userdb]
path = $d/userdb

[auth]
socket = $d/auth.sock
socket_group =
user =
group =
CONF
    [ "$layout" = single ] || echo "listen = $mda_ip:$auth_port"
    cat <<CONF

[mda]
user =
group =
mail_dir = $(layout_mail_dir)
index_dir = $d/index

[imap]
listen = ${mda_ip:-127.0.0.1}:$imaps_port

[lmtp]
socket = $d/lmtp.sock
socket_group =
CONF
    [ "$layout" = single ] || echo "listen = $mda_ip:$lmtp_port"
}

conf_mta() { # conf_mta [held]
    d=$mta_dir
    [ "$layout" = single ] || printf '\n[userdb]\n# no user directory on the MTA host\npath = %s/no-userdb\n' "$d"
    cat <<CONF

[mta]
user =
group =
queue_dir = $(layout_queue_dir)
submit_socket = $d/submit.sock
control_socket = $d/mgsmtpd.ctl
lmtp = $(layout_lmtp_target "${1:-}")
auth = $(layout_auth_target)

[smtp]
listen = $smtp_host:$smtp_port
# One connection per message (workload b) keeps closing connections
# around for a moment: the per-address limit must not be what is measured.
max_connections = $((sessions * 4 + 100))
max_connections_per_ip = $((sessions * 4 + 100))

[submission]
listen = $smtp_host:$submission_port

[relay]
# No remote mail in this benchmark; should some appear, it stays queued.
relayhost = 127.0.0.1:9
CONF
}

conf_extra() {
    [ -z "$extra_conf" ] || printf '\n# BENCH_EXTRA_CONF\n%s\n' "$extra_conf"
}

# layout_write_conf [held]: the configuration of both daemons.
layout_write_conf() {
    if [ "$layout" = single ]; then
        { conf_common ""; conf_mda; conf_mta "${1:-}"; conf_extra; } >"$mda_conf"
    else
        { conf_common mda.bench.test; conf_mda; conf_extra; } >"$mda_conf"
        { conf_common mta.bench.test; conf_mta "${1:-}"; conf_extra; } >"$mta_conf"
    fi
}

# listening PID PORT: whether something listens on PORT (TCP) in the
# network namespace of process PID.
listening() {
    hex=$(printf '%04X' "$2")
    cat "/proc/$1/net/tcp" "/proc/$1/net/tcp6" 2>/dev/null |
        awk -v h=":$hex" '$2 ~ h"$" && $4 == "0A" { f = 1 } END { exit !f }'
}

mda_pids() {
    tree_pids "$imapd_pid"
}
mta_pids() {
    tree_pids "$smtpd_pid"
}

mda_ready() {
    [ -S "$mda_dir/lmtp.sock" ] && [ -S "$mda_dir/auth.sock" ] &&
        listening "$imapd_pid" "$imaps_port" && [ "$(mda_pids | wc -l)" -ge 2 ] || return 1
    [ "$layout" = single ] && return 0
    listening "$imapd_pid" "$lmtp_port" && listening "$imapd_pid" "$auth_port"
}

mta_ready() {
    # The control socket comes last, after the listeners and the queue.
    [ -S "$mta_dir/mgsmtpd.ctl" ] && listening "$smtpd_pid" "$smtp_port" &&
        listening "$smtpd_pid" "$submission_port"
}

# start_daemon NAME READY: starts NAME (mgimapd on the MDA host, mgsmtpd
# on the MTA host) and waits until READY succeeds; sets its pid.
start_daemon() {
    if [ "$1" = mgimapd ]; then
        (layout_exec mda "$bin/mgimapd" -c "$mda_conf") >>"$dir/log/mgimapd.log" 2>&1 &
        imapd_pid=$!
        pid=$imapd_pid
    else
        (layout_exec mta "$bin/mgsmtpd" -c "$mta_conf") >>"$dir/log/mgsmtpd.log" 2>&1 &
        smtpd_pid=$!
        pid=$smtpd_pid
    fi
    i=0
    while [ $i -lt 100 ]; do
        "$2" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench: $1 did not start:" >&2
            tail -5 "$dir/log/$1.log" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "bench: $1 did not come up in 10 s" >&2
    exit 1
}

start_mda() {
    start_daemon mgimapd mda_ready
}
start_mta() {
    start_daemon mgsmtpd mta_ready
}

# stop_daemon NAME PID
stop_daemon() {
    [ -n "$2" ] || return 0
    kill -TERM "$2" 2>/dev/null || true
    i=0
    while kill -0 "$2" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$2" 2>/dev/null || true
    status=0
    wait "$2" 2>/dev/null || status=$?
    if [ "$status" -ne 0 ]; then
        echo "bench: warning: $1 exited with status $status when stopped; its log ends:" >&2
        tail -5 "$dir/log/$1.log" >&2
    fi
}

stop_mda() {
    stop_daemon mgimapd "$imapd_pid"
    imapd_pid=""
    rm -f "$mda_dir/lmtp.sock" "$mda_dir/auth.sock"
}

stop_mta() {
    stop_daemon mgsmtpd "$smtpd_pid"
    smtpd_pid=""
    rm -f "$mta_dir/mgsmtpd.ctl" "$mta_dir/submit.sock"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the instance ----

umask 077
mkdir -p "$dir/tls" "$dir/log"
layout_init
layout_make_keys
layout_write_conf
password=$(openssl rand -hex 12)
printf 'user1@%s:%s\n' "$domain" "$password" >"$dir/auth"

mgadm() { "$bin/mgadm" -c "$mda_conf" "$@"; }
echo "bench: creating $users users in $dir"
mgadm domain add "$domain"
i=1
while [ "$i" -le "$users" ]; do
    printf '%s\n' "$password" | mgadm user add "user$i@$domain" --password-stdin
    i=$((i + 1))
done

start_mda
start_mta
hz=$(getconf CLK_TCK)
cpus=$(getconf _NPROCESSORS_ONLN)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

smtp_load() { # smtp_load WORKLOAD [-q] [-n N]: the load tool for one workload
    w=$1
    shift
    case $w in
        a|accept) set -- -H "$smtp_host" -p "$smtp_port" -m plain -f "bench@sender.test" "$@" ;;
        b) set -- -H "$smtp_host" -p "$smtp_port" -m plain -f "bench@sender.test" --conn-per-message "$@" ;;
        c) set -- -H "$smtp_host" -p "$submission_port" -m tls --auth-file "$dir/auth" \
            -f "user1@$domain" "$@" ;;
    esac
    layout_on mta "$tools/smtp_load" -c "$sessions" -s "$size" -r "user%d@$domain" -R "1-$users" "$@"
}

echo "bench: warming up (one message per user)"
base=$(maildir_count)
smtp_load a -q -n "$users" >/dev/null
wait_count maildir_count $((base + users)) 60 || { echo "bench: warm-up mail not delivered" >&2; exit 1; }

# measure WORKLOAD: runs it and appends one line to $results: workload,
# rate, messages sent, ok (1: all sent and delivered), CPU ms per message
# of mgsmtpd, mgimapd, mgauthd and their total, latency p50 and p99 (ms),
# the machine's busy share (%), smtp_load's CPU (s), load average before
# and after.
measure() {
    w=$1
    base=$(maildir_count)
    l0=$(cut -d' ' -f1 /proc/loadavg)
    d0=$(daemon_ticks)
    m0=$(machine_ticks)
    t0=$(now_ns)
    status=0
    out=$(smtp_load "$w" -n "$messages") || status=$?
    t_sent=$(now_ns)
    echo "$out" | sed 's/^/    /'
    result=$(echo "$out" | grep '^RESULT')
    sent=$(field sent "$result")
    ok=1
    [ "$status" -eq 0 ] || ok=0
    if [ "$w" = accept ]; then
        # Acceptance alone: from the first connection to the last 250.
        rate=$(field rate "$result")
        t1=$t_sent
        delivered=$(($(maildir_count) - base))
        if [ "$delivered" -ne 0 ]; then
            echo "bench: $delivered messages were delivered although deliveries were held" >&2
            ok=0
        fi
        spooled=$(spool_count)
        echo "    $spooled messages in the spool, none delivered"
    else
        if ! wait_count maildir_count $((base + sent)) "$wait_max"; then
            echo "bench: only $(($(maildir_count) - base)) of $sent messages delivered after ${wait_max} s" >&2
            ok=0
        fi
        t1=$(now_ns)
        rate=$(awk -v n="$sent" -v t=$((t1 - t0)) 'BEGIN { printf "%.1f", (t > 0) ? n / (t / 1e9) : 0 }')
        # The queue removes a message once its result is logged: that is
        # part of its cost.
        wait_count spool_count -0 60 || echo "bench: warning: the spool is not empty" >&2
        echo "    delivered to the Maildirs $(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.3f", t / 1e9 }') s after the first connection" \
            "($(awk -v t=$((t1 - t_sent)) 'BEGIN { printf "%.3f", t / 1e9 }') s after the last 250)"
    fi
    d1=$(daemon_ticks)
    m1=$(machine_ticks)
    tm=$(now_ns)
    l1=$(cut -d' ' -f1 /proc/loadavg)
    cpu=$(printf '%s %s\n' "$d0" "$d1" | awk -v hz="$hz" -v n="$sent" '{
        if (n == 0) n = 1
        s = ($4 - $1) / hz * 1000 / n; i = ($5 - $2) / hz * 1000 / n; a = ($6 - $3) / hz * 1000 / n
        printf "%.3f %.3f %.3f %.3f", s, i, a, s + i + a }')
    machine=$(awk -v m=$((m1 - m0)) -v hz="$hz" -v t=$((tm - t0)) -v n="$cpus" \
        'BEGIN { printf "%.0f", (t > 0) ? m / hz / (t / 1e9) / n * 100 : 0 }')
    echo "$w $rate $sent $ok $cpu $(field p50_ms "$result") $(field p99_ms "$result")" \
        "$machine $(field client_cpu "$result") $l0 $l1" >>"$results"
}

results="$dir/results"
: >"$results"
for w in $workloads; do
    case $w in
        a) echo "bench: (a) port 25, plain SMTP, connections reused: $messages messages of $size bytes, $sessions sessions" ;;
        b) echo "bench: (b) port 25, one connection per message: $messages messages of $size bytes, $sessions sessions" ;;
        c) echo "bench: (c) submissions, implicit TLS and AUTH PLAIN: $messages messages of $size bytes, $sessions sessions" ;;
        accept)
            echo "bench: acceptance alone: (a) with deliveries held (LMTP target $(layout_lmtp_target held))"
            stop_mta
            layout_write_conf held
            start_mta
            ;;
    esac
    measure "$w"
done

# ---- summary ----

verdict() { # verdict OK-CONDITION
    if [ "$1" = 1 ]; then echo "met"; else echo "MISSED"; fi
}
row() { # row MEASUREMENT RESULT [TARGET [VERDICT]]
    printf '  %-58s %-17s %-12s %s\n' "$1" "$2" "${3:-}" "${4:-}"
}
all_ok=1
echo
echo "Mailgenic MTA benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $cpus CPUs, load average before: $load_before"
echo "programs: $bin; $messages messages of $size bytes to $users users, $sessions sessions, fsync on; log_level $log_level"
echo "layout: $layout; instance on: $(df -PT "$dir" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')"
echo
row "measurement" "result" "target" "verdict"
while read -r w rate sent ok cpu_s cpu_i cpu_a cpu_t p50 p99 machine client l0 l1; do
    target="" v=""
    case $w in
        a) title="(a) port 25, connections reused: msgs/s end to end"; ref="Postfix+Dovecot ~$postfix_a/s"
           target=">= $target_a/s"
           ok=$(awk -v r="$rate" -v t="$target_a" -v ok="$ok" 'BEGIN { print (ok && r >= t) ? 1 : 0 }') ;;
        b) title="(b) port 25, one connection per message: msgs/s e2e"; ref="" ;;
        c) title="(c) submissions, TLS + AUTH: msgs/s end to end"; ref=""
           target=">= $target_c/s"
           ok=$(awk -v r="$rate" -v t="$target_c" -v ok="$ok" 'BEGIN { print (ok && r >= t) ? 1 : 0 }') ;;
        accept) title="acceptance alone (a, deliveries held): msgs/s"; ref="Postfix ~$postfix_accept/s" ;;
    esac
    if [ -n "$target" ]; then
        v=$(verdict "$ok")
    elif [ "$ok" != 1 ]; then
        v="FAILED"
    fi
    [ "$ok" = 1 ] || all_ok=0
    row "$title" "$rate/s" "$target" "$v"
    [ "$sent" = "$messages" ] || row "  (only $sent of $messages messages accepted)" ""
    [ -z "$ref" ] || row "  for scale: $ref" ""
    if [ "$w" = a ] || [ "$w" = c ]; then
        cpu_ok=$(awk -v c="$cpu_t" -v t="$target_cpu_ms" 'BEGIN { print (c < t) ? 1 : 0 }')
        [ "$cpu_ok" = 1 ] || all_ok=0
        row "  CPU per message, all daemons (Postfix+Dovecot ~$postfix_cpu_ms ms)" "$cpu_t ms" "< $target_cpu_ms ms" "$(verdict "$cpu_ok")"
    else
        row "  CPU per message, all daemons" "$cpu_t ms"
    fi
    row "    mgsmtpd / mgimapd / mgauthd" "$cpu_s / $cpu_i / $cpu_a ms"
    row "  transaction latency p50 / p99 (MAIL to 250 after the dot)" "$p50 / $p99 ms"
    row "  machine busy meanwhile (all processes); smtp_load CPU" "$machine %; $client s"
    row "  load average (1 min) before -> after" "$l0 -> $l1"
done <"$results"

[ "$all_ok" = 1 ]
