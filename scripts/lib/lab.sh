# Shared helpers for drainctl's lab scripts (demo, end-to-end): test hosts
# in network namespaces joined by veth links, with no route out, and an
# Apache per host. Source it; every name made here carries $LAB_ID so runs
# never collide, and lab_cleanup removes exactly what this run made.

LAB_ID=${LAB_ID:-$$}
LAB_DIR=${LAB_DIR:-/tmp/drainctl-lab-$LAB_ID}
LAB_NS=()      # namespaces this run made
LAB_PIDS=()    # processes this run started

lab_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# lab_ns NAME: make a namespace (loopback up) and remember it for cleanup.
lab_ns() {
	ip netns add "$1"
	LAB_NS+=("$1")
	ip -n "$1" link set lo up
}

# lab_link NS_A ADDR4_A ADDR6_A NS_B ADDR4_B ADDR6_B: a veth pair between
# two namespaces (CIDR addresses). IPv6 skips duplicate address detection.
lab_link() {
	local a=$1 a4=$2 a6=$3 b=$4 b4=$5 b6=$6 ifa=${7:-veth0} ifb=${8:-veth0}
	ip -n "$a" link add "$ifa" type veth peer name "$ifb" netns "$b"
	ip -n "$a" addr add "$a4" dev "$ifa"
	ip -n "$a" -6 addr add "$a6" dev "$ifa" nodad
	ip -n "$b" addr add "$b4" dev "$ifb"
	ip -n "$b" -6 addr add "$b6" dev "$ifb" nodad
	ip -n "$a" link set "$ifa" up
	ip -n "$b" link set "$ifb" up
}

# lab_apache NS NAME: start Debian's apache2 in NS with its own ServerRoot,
# pid file, mutex dir and logs under $LAB_DIR/NAME, listening on :80 with
# keep-alive on, from the Go lab's config (pkg/internal/lab/apache2.conf;
# run from the repository's root). Prints nothing; the pid file is $LAB_DIR/NAME/apache.pid.
lab_apache() {
	local ns=$1 name=$2 dir=$LAB_DIR/$2
	mkdir -p "$dir/www" "$dir/run"
	chown www-data:www-data "$dir/run"
	echo "hello from $name" >"$dir/www/index.html"
	sed -e "s|@NAME@|$name|g" -e "s|@DIR@|$dir|g" pkg/internal/lab/apache2.conf >"$dir/apache2.conf"
	ip netns exec "$ns" apache2 -f "$dir/apache2.conf" -k start
	local i
	for i in $(seq 50); do
		[ -s "$dir/apache.pid" ] && break
		sleep 0.1
	done
	[ -s "$dir/apache.pid" ] || { echo "apache in $ns did not start:" >&2; cat "$dir/error.log" >&2; return 1; }
	LAB_PIDS+=("$(cat "$dir/apache.pid")")
}

# lab_cleanup: stop what this run started (by pid) and delete its
# namespaces. Safe to call twice.
lab_cleanup() {
	set +e # a process already gone must not stop the cleanup (errexit applies in traps)
	local p ns
	for p in "${LAB_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${LAB_PIDS[@]}"; do
		for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	for ns in "${LAB_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	LAB_PIDS=() LAB_NS=()
	rm -rf "$LAB_DIR"
}
