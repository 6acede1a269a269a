#!/bin/sh
# `make dev`: the whole system on its embedded default, in the foreground.
#
# State lives in $MG_DEV_DIR (default ./run/dev): configuration, a
# self-signed certificate, the user directory, mail, index, queue, logs and
# sockets. Re-running keeps the state; the configuration file is written
# anew each time from the environment (docs/development.md).
#
#   MG_DEV_DIR            state directory (default ./run/dev)
#   MG_SMTP_PORT          SMTP with STARTTLS       (default 2525)
#   MG_SUBMISSIONS_PORT   submission, implicit TLS (default 4465)
#   MG_IMAPS_PORT         IMAP, implicit TLS       (default 9993)
#   MG_BUILD_DIR          where the programs are   (default ./build)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MG_BUILD_DIR:-build}
case $build in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
dev=${MG_DEV_DIR:-$top/run/dev}
mkdir -p "$dev"
dev=$(cd "$dev" && pwd)
smtp_port=${MG_SMTP_PORT:-2525}
submissions_port=${MG_SUBMISSIONS_PORT:-4465}
imaps_port=${MG_IMAPS_PORT:-9993}
domain=mailgenic.test
user=demo@$domain
conf="$dev/mailgenic.conf"

umask 077
mkdir -p "$dev/tls" "$dev/mail" "$dev/index" "$dev/spool" "$dev/log"

# A certificate for localhost and the dev domain, made once.
if [ ! -s "$dev/tls/cert.pem" ] || [ ! -s "$dev/tls/key.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,DNS:$domain,DNS:mail.$domain,IP:127.0.0.1,IP:::1" \
        -keyout "$dev/tls/key.pem" -out "$dev/tls/cert.pem" >/dev/null 2>&1
    echo "dev: created a self-signed certificate in $dev/tls/"
fi

# The configuration: derived from the environment on every run.
cat > "$conf" <<CONF
# Written by deploy/dev.sh on every run of 'make dev'; edits are lost.
hostname = mail.$domain
log_level = info

[tls]
cert_file = $dev/tls/cert.pem
key_file = $dev/tls/key.pem

[userdb]
path = $dev/userdb

[auth]
socket = $dev/auth.sock
# Development runs every process as the invoking user, with its group
# on the sockets.
socket_group =
user =
group =

[mda]
user =
group =
mail_dir = $dev/mail
index_dir = $dev/index

[imap]
listen = 127.0.0.1:$imaps_port

[lmtp]
socket = $dev/lmtp.sock
socket_group =

[mta]
user =
group =
queue_dir = $dev/spool
submit_socket = $dev/submit.sock
control_socket = $dev/mgsmtpd.ctl

[smtp]
listen = 127.0.0.1:$smtp_port

[submission]
listen = 127.0.0.1:$submissions_port
CONF

if [ ! -x "$bin/mgadm" ]; then
    echo "dev: $bin/mgadm is missing: build first (make build)" >&2
    exit 1
fi

mgadm() { "$bin/mgadm" -c "$conf" "$@"; }

# The demo domain and user, made once; the password is printed once.
if ! mgadm domain list 2>/dev/null | grep -qx "$domain"; then
    mgadm domain add "$domain"
fi
if ! mgadm user list "$domain" 2>/dev/null | grep -q "^$user"; then
    password=$(openssl rand -base64 18 | tr -d '/+=' | cut -c1-20)
    printf '%s\n' "$password" | mgadm user add "$user" --password-stdin
    (umask 077; printf '%s\n' "$password" > "$dev/demo-password")
    chmod 600 "$dev/demo-password"
    echo "dev: created $user with password: $password"
    echo "dev: (stored in $dev/demo-password)"
fi

cat <<INFO

Mailgenic development instance
  state        $dev
  config       $conf
  IMAP (TLS)   127.0.0.1:$imaps_port      user $user, password in $dev/demo-password
  submissions  127.0.0.1:$submissions_port      (implicit TLS, AUTH)
  SMTP         127.0.0.1:$smtp_port      (STARTTLS)
  LMTP socket  $dev/lmtp.sock
  manage with  $bin/mgadm -c $conf

INFO

missing=""
for prog in mgimapd mgsmtpd; do
    [ -x "$bin/$prog" ] || missing="$missing $prog"
done
if [ -n "$missing" ]; then
    echo "dev: not built yet:$missing. The state above is ready; the daemons arrive with their issues."
    exit 0
fi

pids=""
stop() {
    trap - INT TERM HUP EXIT
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait 2>/dev/null
}
# HUP: the terminal went away. The daemons get it too and take it as a
# reload; they must stop with the terminal instead of living on orphaned.
trap stop INT TERM HUP EXIT
"$bin/mgimapd" -c "$conf" &
pids="$pids $!"
"$bin/mgsmtpd" -c "$conf" &
pids="$pids $!"
echo "dev: running (Ctrl-C stops both daemons)"
wait
