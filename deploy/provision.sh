#!/bin/sh
# Provisions a Debian 12 host with Mailgenic, idempotently: a second run
# changes nothing. Used by the Vagrantfile; run it on a fresh server too.
#
#   deploy/provision.sh [--deb FILE] [--reinstall] [ROLE]
#   deploy/provision.sh [...] --ca DIR --address ADDR --peer ADDR mta|mda
#
#   --deb FILE      install this package (made by `make deb`); without it the
#                   package is built from this source tree first
#   --reinstall     install the package even when the same one is installed
#   ROLE            all (default): both daemons on this host; mta: mgsmtpd
#                   only, mda: mgimapd only (the two-host layout,
#                   docs/scale-out.md)
#   --ca DIR        the cluster CA (ca.crt and ca.key, from mgadm ca init):
#                   this host's link certificate is issued from it
#   --address ADDR  this host's address on the link between the hosts
#   --peer ADDR     the other host's address on that link; for mda, once
#                   per MTA host that delivers to it
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
ca_dir=""
address=""
peer=""
while [ $# -gt 0 ]; do
    case $1 in
        --deb) [ $# -ge 2 ] || usage; deb=$2; shift 2 ;;
        --deb=*) deb=${1#--deb=}; shift ;;
        --reinstall) reinstall=1; shift ;;
        --ca | --address | --peer)
            [ $# -ge 2 ] || usage
            case $1 in
                --ca) ca_dir=$2 ;;
                --address) address=$2 ;;
                --peer) peer="${peer:+$peer }$2" ;;
            esac
            shift 2 ;;
        -h | --help) usage ;;
        -*) echo "provision: unknown option $1" >&2; usage ;;
        *) role=$1; shift ;;
    esac
done
case $role in
    all) ;;
    mta | mda)
        if [ -z "$ca_dir" ] || [ -z "$address" ] || [ -z "$peer" ]; then
            echo "provision: role '$role' needs --ca DIR, --address ADDR and --peer ADDR" >&2
            exit 2
        fi
        if [ "$role" = mta ] && [ "$peer" != "${peer% *}" ]; then
            echo "provision: an MTA delivers to one MDA: give --peer once" >&2
            exit 2
        fi
        for f in ca.crt ca.key; do
            [ -r "$ca_dir/$f" ] || { echo "provision: no $ca_dir/$f (mgadm ca init makes it)" >&2; exit 2; }
        done ;;
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

# ---- the role: which daemon, and the link between the hosts ----

cluster=/etc/mailgenic/cluster
role_changed=0
dropin=/etc/mailgenic/mailgenic.conf.d/50-provision-role.conf
# The address in the forms the configuration wants: [v6]:port.
bracket() { case $1 in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }

# This host's certificate of the cluster CA, named after the host and
# valid for its link address: issued once, again only when the CA or the
# address changed.
cluster_certificate() {
    install -d -o root -g mailgenic-tls -m 0750 "$cluster"
    if [ -f "$cluster/host.crt" ] && cmp -s "$ca_dir/ca.crt" "$cluster/ca.crt" &&
        openssl verify -CAfile "$cluster/ca.crt" "$cluster/host.crt" >/dev/null 2>&1 &&
        openssl x509 -in "$cluster/host.crt" -noout -checkip "$address" 2>/dev/null | grep -q 'does match'; then
        log "$cluster/host.crt is up to date"
        return
    fi
    work=$(mktemp -d)
    cp "$ca_dir/ca.crt" "$ca_dir/ca.key" "$work/"
    name=$(hostname)
    MG_CA_DIR=$work mgadm ca issue "$name" "$address" >/dev/null
    install -o root -g mailgenic-tls -m 0644 "$work/ca.crt" "$cluster/ca.crt"
    install -o root -g mailgenic-tls -m 0644 "$work/$name.crt" "$cluster/host.crt"
    install -o root -g mailgenic-tls -m 0640 "$work/$name.key" "$cluster/host.key"
    rm -rf "$work"
    role_changed=1
    log "issued $cluster/host.crt for $name and $address"
}

role_settings() {
    echo "# Written by deploy/provision.sh for the role '$role'; it is rewritten on"
    echo "# each run. Change the role with provision.sh, not here."
    case $role in
        mta)
            echo "[mta]"
            echo "lmtp = $(bracket "$peer"):24"
            echo "auth = $(bracket "$peer"):8024" ;;
        mda)
            echo "[lmtp]"
            echo "listen = $(bracket "$address"):24"
            echo "[auth]"
            echo "listen = $(bracket "$address"):8024" ;;
    esac
    echo "[cluster]"
    echo "ca_file = $cluster/ca.crt"
    echo "cert_file = $cluster/host.crt"
    echo "key_file = $cluster/host.key"
}

if [ "$role" = all ]; then
    if [ -f "$dropin" ]; then
        rm -f "$dropin"
        role_changed=1
        log "removed $dropin: both daemons on this host"
    fi
else
    cluster_certificate
    install -d -m 0755 "$(dirname "$dropin")"
    role_settings >"$dropin.new"
    if cmp -s "$dropin.new" "$dropin"; then
        rm -f "$dropin.new"
        log "$dropin is up to date"
    else
        chmod 0644 "$dropin.new"
        mv "$dropin.new" "$dropin"
        role_changed=1
        log "wrote $dropin"
    fi
    mgadm config check >/dev/null
fi

# ---- the firewall ----

apt_install nftables
rules=$here/nftables.conf
[ -f "$rules" ] || rules=/usr/share/doc/mailgenic/examples/nftables.conf
# The ports of the role: the MDA opens LMTP and the auth service to the
# MTA's address alone, and the mail ports it does not serve are closed.
if [ "$role" != all ]; then
    ports="22, 25, 465"
    link=""
    if [ "$role" = mda ]; then
        ports="22, 993"
        for p in $peer; do
            case $p in *:*) family=ip6 ;; *) family=ip ;; esac
            link="${link:+$link\n}        $family saddr $p tcp dport { 24, 8024 } accept"
        done
    fi
    rendered=$(mktemp)
    trap 'rm -f "$rendered"' EXIT
    awk -v ports="$ports" -v link="$link" '
        /tcp dport \{ 22, 25, 465, 993 \} accept/ {
            sub(/22, 25, 465, 993/, ports); print; if (link != "") printf "%s\n", link; next }
        { print }' "$rules" >"$rendered"
    rules=$rendered
fi
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
    log "installed $target for the role $role"
else
    log "$target was changed by hand: kept it. Merge $rules into it yourself."
fi
if ! systemctl --quiet is-enabled nftables.service 2>/dev/null; then
    systemctl --quiet enable nftables.service
fi

# ---- the services ----

case $role in
    all) units="mgimapd.service mgsmtpd.service"; unwanted="" ;;
    mta) units="mgsmtpd.service"; unwanted="mgimapd.service" ;;
    mda) units="mgimapd.service"; unwanted="mgsmtpd.service" ;;
esac
for unit in $units; do
    if ! systemctl --quiet is-enabled "$unit" 2>/dev/null; then
        systemctl --quiet enable "$unit"
    fi
done
for unit in $unwanted; do
    if systemctl --quiet is-enabled "$unit" 2>/dev/null; then
        systemctl --quiet disable "$unit"
        log "disabled $unit: not part of the role $role"
    fi
    if [ "$has_systemd" -eq 1 ] && systemctl --quiet is-active "$unit"; then
        systemctl stop "$unit"
    fi
done

if [ "$has_systemd" -eq 1 ]; then
    if [ "$rules_changed" -eq 1 ] || ! systemctl --quiet is-active nftables.service; then
        systemctl restart nftables.service
    fi
    # A new role or certificate needs a restart; otherwise leave running
    # daemons alone (a second run changes nothing).
    # shellcheck disable=SC2086 # a list of units
    if [ "$role_changed" -eq 1 ]; then systemctl restart $units; else systemctl start $units; fi
    # shellcheck disable=SC2086
    systemctl --no-pager --lines=0 status $units || true
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
