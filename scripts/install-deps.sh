#!/usr/bin/env bash
# Installs what drainctl's tests, demo and lab need, from Debian's packages,
# when something is missing. Pass --always to update and install anyway
# (CI does). Go itself is expected at /usr/local/go or on PATH.
set -euo pipefail
# systemd: systemd-analyze and systemd-sysusers for the package tests;
# rpm: to read the .rpm; util-linux: unshare and nsenter for their sandbox;
# openssh-server, openssh-client, ansible-core, jq: the fleet tools and their tests;
# etcd-server, etcd-client: the pool's etcd members (the tests run their own);
# openssl: the certificates of the TLS etcd test; nginx-light: the lab's
# nginx app servers (Options.WebServer, make demo WEB=nginx).
PKGS=(iptables nftables conntrack haproxy apache2 iproute2 curl sudo make ufw systemd rpm util-linux
	openssh-server openssh-client ansible-core jq etcd-server etcd-client openssl nginx-light)
# lintian and rpmlint: TestPackageLint judges the .deb and the .rpm with them.
PKGS+=(lintian rpmlint)
# The systemd tier (pkg/internal/nspawn): systemd-nspawn and debootstrap,
# and dpkg-dev for dpkg-scanpackages (the local repository an upgrade by
# unattended-upgrades installs from), without their recommends:
# systemd-container recommends libnss-mymachines, whose postinst edits
# the host's /etc/nsswitch.conf, and dpkg-dev a compiler.
NORECOMMENDS=(systemd-container debootstrap dpkg-dev)
missing=()
for p in "${PKGS[@]}" "${NORECOMMENDS[@]}"; do
	# Any of Debian's nginx flavours will do: installing nginx-light
	# over nginx-core or nginx-full would remove it.
	[ "$p" = nginx-light ] && command -v nginx >/dev/null && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = --always ] || [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "install-deps: missing ${missing[*]}; run as root" >&2; exit 2; }
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	install=()
	for p in "${PKGS[@]}"; do
		[ "$p" = nginx-light ] && command -v nginx >/dev/null && continue
		install+=("$p")
	done
	apt-get install -y -qq "${install[@]}" >/dev/null
	apt-get install -y -qq --no-install-recommends "${NORECOMMENDS[@]}" >/dev/null
fi
# Debian enables apache2, haproxy and nginx as services on install; the lab
# runs its own instances in namespaces and does not need the host's: those
# this run installed (all three with --always) are stopped and disabled; a
# host's own, installed before, are left alone.
for s in apache2 haproxy nginx; do
	p=$s
	[ "$s" = nginx ] && p=nginx-light
	[ "${1:-}" = --always ] || [[ " ${missing[*]} " == *" $p "* ]] || continue
	if [ -d /run/systemd/system ]; then
		systemctl disable --now -q "$s.service" 2>/dev/null || true
	elif [ -x "/etc/init.d/$s" ]; then
		"/etc/init.d/$s" stop >/dev/null 2>&1 || true
		update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
done
