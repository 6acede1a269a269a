#!/bin/sh
# Installs every package Mailgenic needs to build, test and run in development,
# from Debian's archive. Idempotent and silent when everything is present, so
# `make dev` and `make test` can call it every time.
set -eu

# Build: compilers (gcc for the release build, clang for sanitizers and
# libFuzzer), CMake and the libraries the daemons link against.
BUILD_PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libssl-dev libuv1-dev libdb5.3-dev libcrypt-dev libc-ares-dev libcmocka-dev"

# Run and test: openssl(1) for the dev certificate, db5.3-util for
# db_hotbackup/db_recover, real protocol clients for the integration tests,
# dnsmasq as the test resolver, iproute2 for network namespaces. The mail
# clients the tests drive: swaks, msmtp, isync (mbsync), curl, fetchmail,
# Mail::IMAPClient (with IO::Socket::SSL, only recommended by it),
# offlineimap3, mutt.
TEST_PKGS="openssl ca-certificates tzdata python3 python3-aiosmtpd db5.3-util
swaks msmtp isync curl fetchmail libmail-imapclient-perl libio-socket-ssl-perl
offlineimap3 mutt
dnsmasq-base iproute2 procps psmisc sslscan"

# Deployment: dpkg-dev (dpkg-shlibdeps) and file for `make deb`; for `make
# test-deploy` debootstrap (a clean Debian 12 root), systemd-container
# (systemd-nspawn boots it), systemd (systemd-analyze verify), nftables
# (nft -c on the rules), ruby (ruby -c on the Vagrantfile), shellcheck,
# lintian (the package).
DEPLOY_PKGS="dpkg-dev file lintian debootstrap systemd systemd-container nftables ruby shellcheck"

missing=""
for pkg in $BUILD_PKGS $TEST_PKGS $DEPLOY_PKGS; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing >/dev/null
