#!/bin/sh
# Provisions a Debian 12 host with Mailgenic, idempotently: a second run
# changes nothing. Used by the Vagrantfile; run it on a fresh server too.
#
#   deploy/provision.sh [--deb FILE] [--reinstall] [ROLE]
#
#   --deb FILE    install this package (made by `make deb`); without it the
#                 package is built from this source tree first
#   --reinstall   install the package even when the same one is installed
#   ROLE          all (default): both daemons on this host. (mta and mda,
#                 for the two-host layout, come with that layout.)
#
# Steps: install the package (users, directories, certificate, units: see
# docs/operations.md), install the nftables rules (in: 22, 25, 465, 993
# only) when /etc/nftables.conf is Debian's default or ours unchanged
# (a file changed by hand is kept), enable and
# start nftables, mgimapd and mgsmtpd. Without a running systemd (a chroot,
# a container) nothing is started, and the firewall is not loaded.
set -eu

usage() {
    sed -n '4,10s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

role=all
deb=""
reinstall=0
while [ $# -gt 0 ]; do
    case $1 in
        --deb) [ $# -ge 2 ] || usage; deb=$2; shift 2 ;;
        --deb=*) deb=${1#--deb=}; shift ;;
        --reinstall) reinstall=1; shift ;;
        -h | --help) usage ;;
        -*) echo "provision: unknown option $1" >&2; usage ;;
        *) role=$1; shift ;;
    esac
done
case $role in
    all) ;;
    mta | mda)
        echo "provision: role '$role' is for the two-host layout, which is not there yet; use 'all'" >&2
        exit 2 ;;
    *) echo "provision: unknown role '$role'" >&2; usage ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "provision: run as root" >&2
    exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
has_systemd=0
[ -d /run/systemd/system ] && has_systemd=1
log() { echo "provision: $*"; }

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

updated=0
apt_install() {
    missing=""
    for pkg in "$@"; do
        is_installed "$pkg" || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    # Package lists only when something is missing: an up-to-date host
    # is left as it is.
    if [ "$updated" -eq 0 ]; then
        apt-get update -q
        updated=1
    fi
    log "installing$missing"
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -q --no-install-recommends $missing
}

# ---- the package ----

if [ -z "$deb" ]; then
    src=$(dirname "$here")
    build=${MG_BUILD_DIR:-$src/build}
    log "building the package from $src in $build"
    # python3: CMake looks for it (the tests are Python); file and
    # dpkg-dev: CPack finds the package's dependencies with them.
    apt_install build-essential cmake pkg-config dpkg-dev file python3 libssl-dev \
        libuv1-dev libdb5.3-dev libcrypt-dev libc-ares-dev
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)"
    rm -f "$build"/deb/mailgenic_*.deb
    (cd "$build" && cpack >/dev/null)
    deb=$(ls "$build"/deb/mailgenic_*.deb)
fi
[ -f "$deb" ] || { echo "provision: no such package: $deb" >&2; exit 1; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

# Installed already, same version, same files: nothing to do.
same_package() {
    is_installed mailgenic || return 1
    [ "$(dpkg-query -W -f='${Version}' mailgenic)" = "$(dpkg-deb -f "$deb" Version)" ] || return 1
    dpkg-deb -I "$deb" md5sums | cmp -s - /var/lib/dpkg/info/mailgenic.md5sums
}
if [ "$reinstall" -eq 1 ] || ! same_package; then
    if is_installed mailgenic &&
        [ "$(dpkg-query -W -f='${Version}' mailgenic)" = "$(dpkg-deb -f "$deb" Version)" ]; then
        again=--reinstall
    else
        again=""
    fi
    log "installing $deb"
    # apt resolves the dependencies from Debian (the lists may be missing
    # on a fresh host).
    if [ "$updated" -eq 0 ] && ! apt-get install -y -q -s $again "$deb" >/dev/null 2>&1; then
        apt-get update -q
        updated=1
    fi
    apt-get install -y -q $again "$deb"
else
    log "mailgenic $(dpkg-query -W -f='${Version}' mailgenic) is installed"
fi

# ---- the firewall ----

apt_install nftables
rules=$here/nftables.conf
[ -f "$rules" ] || rules=/usr/share/doc/mailgenic/examples/nftables.conf
target=/etc/nftables.conf
# The checksum of the rules we installed last: a file that still has it
# is ours to update; any other change was made by hand and is kept.
record=/var/lib/mailgenic-provision/nftables.conf.sha256
is_ours_or_default() {
    [ -f "$target" ] || return 0
    [ -f "$record" ] && [ "$(sha256sum <"$target")" = "$(cat "$record")" ] && return 0
    # Debian's default, untouched: the md5sum dpkg recorded for it.
    sum=$(dpkg-query -W -f='${Conffiles}\n' nftables | awk -v f="$target" '$1 == f { print $2 }')
    [ -n "$sum" ] && [ "$(md5sum <"$target" | cut -d' ' -f1)" = "$sum" ]
}
rules_changed=0
if cmp -s "$rules" "$target"; then
    log "$target is up to date"
elif is_ours_or_default; then
    nft -c -f "$rules"
    install -o root -g root -m 0755 "$rules" "$target"
    install -d -m 0755 "$(dirname "$record")"
    sha256sum <"$target" >"$record"
    rules_changed=1
    log "installed $target: in 22, 25, 465, 993 only"
else
    log "$target was changed by hand: kept it. Merge $rules into it yourself."
fi
if ! systemctl --quiet is-enabled nftables.service 2>/dev/null; then
    systemctl --quiet enable nftables.service
fi

# ---- the services ----

for unit in mgimapd.service mgsmtpd.service; do
    if ! systemctl --quiet is-enabled "$unit" 2>/dev/null; then
        systemctl --quiet enable "$unit"
    fi
done

if [ "$has_systemd" -eq 1 ]; then
    if [ "$rules_changed" -eq 1 ] || ! systemctl --quiet is-active nftables.service; then
        systemctl restart nftables.service
    fi
    systemctl start mgimapd.service mgsmtpd.service
    systemctl --no-pager --lines=0 status mgimapd.service mgsmtpd.service || true
else
    log "systemd is not running here: nothing started (the units are enabled for the next boot)"
fi

cat <<EOF

Mailgenic is installed (role $role).
  configuration  /etc/mailgenic/mailgenic.conf (hostname, certificates)
  next steps     mgadm domain add example.com
                 mgadm user add you@example.com
                 DNS, certificates, clients: /usr/share/doc/mailgenic/operations.md
EOF
