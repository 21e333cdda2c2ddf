#!/usr/bin/env bash
# Captures the rule sets real firewalls write, for the firewall tests
# (testdata/firewalls/). Each runs for real in a throw-away network and
# mount namespace, with its state in a temporary directory; nothing of the
# host changes. Needs root and Debian's firewalld, docker.io (with
# containerd) and nftables. Usage: scripts/testdata/capture-firewalls.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=testdata/firewalls
tmp=$(mktemp -d /tmp/drainctl-capture-XXXXXX)
ns=dct-capture-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

# firewalld (nftables backend, Debian's default zone "public") with the
# http service allowed, as on a web server. It needs a system bus: a
# private one on a tmpfs over /run/dbus.
cat >"$tmp/firewalld.sh" <<'INNER'
set -e
mount -t tmpfs tmpfs /run/dbus
dbus-daemon --system --fork --nopidfile
firewalld --nofork --nopid >"$TMP/firewalld.log" 2>&1 &
for i in $(seq 1 60); do sleep 0.5; firewall-cmd --state >/dev/null 2>&1 && break; done
firewall-cmd --add-service=http >/dev/null
nft list ruleset >"$TMP/firewalld.nft"
kill %1
INNER
TMP=$tmp ip netns exec "$ns" unshare -m --propagation private bash "$tmp/firewalld.sh"
{ echo "# nft list ruleset of firewalld $(dpkg-query -W -f='${Version}' firewalld) (Debian), zone public + http,"
  echo "# captured by scripts/testdata/capture-firewalls.sh"
  cat "$tmp/firewalld.nft"; } >"$out/firewalld.nft"

# Docker's daemon (docker.io, iptables-nft): the chains and rules it writes
# when it starts, before any container.
cat >"$tmp/docker.sh" <<'INNER'
set -e
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null || true
mkdir -p "$TMP/c" "$TMP/d"
containerd --address "$TMP/ctd.sock" --root "$TMP/c/root" --state "$TMP/c/state" >"$TMP/containerd.log" 2>&1 &
C=$!
sleep 2
dockerd --data-root "$TMP/d/root" --exec-root "$TMP/d/exec" --pidfile "$TMP/d.pid" -H "unix://$TMP/d.sock" \
	--containerd "$TMP/ctd.sock" >"$TMP/dockerd.log" 2>&1 &
D=$!
for i in $(seq 1 60); do sleep 0.5; iptables-save | grep -q DOCKER-USER && break; done
sleep 1
iptables-save >"$TMP/docker.iptables"
kill $D; wait $D || true; kill $C; wait $C || true
INNER
TMP=$tmp ip netns exec "$ns" unshare -m --propagation private bash "$tmp/docker.sh"
{ echo "# iptables-save of a Docker host: dockerd $(dpkg-query -W -f='${Version}' docker.io) (Debian) just started,"
  echo "# captured by scripts/testdata/capture-firewalls.sh"
  grep -v '^# ' "$tmp/docker.iptables"; } >"$out/docker.iptables"
echo "captured: $out/firewalld.nft $out/docker.iptables"
