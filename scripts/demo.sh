#!/usr/bin/env bash
# drainctl demo: an Apache server behind the 81→80 forward, a user on a
# keep-alive connection through port 81, and what happens to that user
# when the forward is withdrawn the drainctl way and the naive way.
#
# Needs root (network namespaces). Installs what is missing, builds
# drainctl, and removes everything it made when it ends or is interrupted.
# Usage: sudo scripts/demo.sh [nftables|iptables-nft|iptables-legacy]
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-nftables}
. scripts/lib/lab.sh

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it makes network namespaces): sudo $0" >&2; exit 2; }
need=()
for c in nft:nftables iptables:iptables apache2:apache2 curl:curl ip:iproute2; do
	command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	lab_log "installing ${need[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "demo: Go is needed to build drainctl (https://go.dev/dl)" >&2; exit 2; }
lab_log "building drainctl"
go build -o bin/drainctl ./cmd/drainctl
DRAINCTL=$PWD/bin/drainctl

trap 'lab_cleanup' EXIT
trap 'exit 130' INT TERM
SRV=drainctl-demo-srv-$LAB_ID CLI=drainctl-demo-cli-$LAB_ID
lab_ns "$SRV"
lab_ns "$CLI"
# 198.18.0.0/15 is the benchmarking range: never routed, and these
# namespaces have no route out anyway.
lab_link "$SRV" 198.18.0.1/24 fd00:dc::1/64 "$CLI" 198.18.0.2/24 fd00:dc::2/64
lab_apache "$SRV" web1
in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }

# user N: one keep-alive connection, 4 requests a second, N requests; prints
# one line per request: HTTP status and whether it needed a new connection.
user() {
	in_cli curl -s --rate 4/s -o /dev/null -w '%{http_code} new_connections=%{num_connects} %{errormsg}\n' \
		"http://198.18.0.1:81/?req=[1-$1]" 2>&1 || true
}
summary() {
	local ok fail conns
	ok=$(grep -c '^200 ' "$1" || true)
	fail=$(grep -vc '^200 ' "$1" || true)
	conns=$(awk '{split($2,a,"="); s+=a[2]} END {print s+0}' "$1")
	echo "   requests answered 200: $ok, failed: $fail, TCP connections opened: $conns"
}

lab_log "apply the forward 81→80 ($BACKEND backend)"
in_srv "$DRAINCTL" forward apply --backend "$BACKEND"
in_srv "$DRAINCTL" forward status --backend "$BACKEND"
echo "   a new user through :81 gets: $(in_cli curl -s http://198.18.0.1:81/)"

lab_log "drainctl's way: a user keeps a connection through :81; the forward is withdrawn and restored under it"
user 24 >"$LAB_DIR/user1.log" &
USER=$!
sleep 1.5
in_srv "$DRAINCTL" forward withdraw --backend "$BACKEND"
echo "   a NEW connection to :81 now gets: $(in_cli curl -sS --max-time 3 http://198.18.0.1:81/ 2>&1 || true)"
echo "   (HAProxy's check of :81 fails the same way, so the server goes DOWN for new users)"
sleep 2.5
in_srv "$DRAINCTL" forward status --backend "$BACKEND"
in_srv "$DRAINCTL" forward restore --backend "$BACKEND"
wait $USER
echo "   the user's 24 requests, every 250 ms across withdraw and restore:"
summary "$LAB_DIR/user1.log"

lab_log "the naive way: delete the REDIRECT under the same user"
user 12 >"$LAB_DIR/user2.log" &
USER=$!
sleep 1.5
in_srv "$DRAINCTL" forward remove --backend "$BACKEND" >/dev/null
echo "   REDIRECT deleted"
wait $USER
summary "$LAB_DIR/user2.log"
grep -v '^200 ' "$LAB_DIR/user2.log" | head -3 | sed "s/^/   failed: /" || true

lab_log "done: namespaces, Apache and rules of this demo are being removed"
