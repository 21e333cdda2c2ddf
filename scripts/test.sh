#!/usr/bin/env bash
# The test suite: format, vet and lint checks, then every Go test, unit and
# kernel (kernel tests make network namespaces; they need root). Kernel
# tests that cannot run fail instead of skipping (DRAINCTL_REQUIRE_KERNEL_TESTS),
# and any "--- SKIP" left in the output fails the run as well, so a green
# run means every suite ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" = 0 ] || { echo "test: run as root (kernel tests need network namespaces): sudo make test" >&2; exit 2; }

unformatted=$(gofmt -l cmd pkg)
[ -z "$unformatted" ] || { echo "gofmt needed:" >&2; echo "$unformatted" >&2; exit 1; }
go vet ./...
# The linters of .golangci.yml (doc comments, errors.Is/As, staticcheck,
# function length and complexity): any finding fails the run. The tool
# builds from scripts/tools/go.mod on first use (about a minute).
go tool -modfile=scripts/tools/go.mod golangci-lint run ./...
# The shell tools: syntax (their behaviour is tested by the Go tests).
bash -n scripts/contrib/drainctl-roll scripts/install-deps.sh scripts/test.sh
sh -n scripts/contrib/cron/drainctl-patch systemd/generators/drainctl-guard-generator scripts/package/policy-rc.d scripts/package/postinst scripts/package/prerm scripts/package/postrm scripts/package/version
sh -n scripts/package/changelog

log=$(mktemp /tmp/drainctl-test-XXXXXX.log)
# The systemd tier's container root (pkg/internal/nspawn): one debootstrap
# for the whole run, shared by every test binary through this directory,
# removed at the end unless the caller gave one of their own (to keep it
# between runs).
nspawn_cache=
if [ -z "${DRAINCTL_NSPAWN_CACHE:-}" ]; then
	nspawn_cache=$(mktemp -d /tmp/drainctl-nspawn-cache-XXXXXX)
	export DRAINCTL_NSPAWN_CACHE=$nspawn_cache
fi
trap 'rm -f "$log"; [ -z "$nspawn_cache" ] || rm -rf "$nspawn_cache"' EXIT
status=0
# The end-to-end tests (pkg/internal/lab) run after the others, alone: they load
# both cores, and timing-sensitive kernel tests should not share them. So
# do the systemd tier's tests under the e2e load (TestSystemdEveryRestart:
# the web server in a container restarted every way nobody asks drainctl;
# TestSystemdPoolUnattended: two containers upgraded at once in a pool;
# TestSystemdDeferredUpgrade: an upgrade deferred by policy-rc.d until
# the pool has a slot; TestSystemdNginxUpgrade: nginx upgraded by
# unattended-upgrades in a container, TestE2ENginx's pattern).
pkgs=$(go list ./... | grep -v '/pkg/internal/lab$')
alone='^(TestSystemdEveryRestart|TestSystemdPoolUnattended|TestSystemdDeferredUpgrade|TestSystemdNginxUpgrade)$'
DRAINCTL_REQUIRE_KERNEL_TESTS=1 go test -count=1 -timeout 10m -v -skip "$alone" $pkgs >"$log" 2>&1 || status=$?
DRAINCTL_REQUIRE_KERNEL_TESTS=1 go test -count=1 -timeout 25m -v ./pkg/internal/lab >>"$log" 2>&1 || status=$?
DRAINCTL_REQUIRE_KERNEL_TESTS=1 go test -count=1 -timeout 10m -v -run "$alone" ./pkg/internal/integration >>"$log" 2>&1 || status=$?
# Fuzz targets, briefly: the parsers of what drainctl reads from clients,
# files and the kernel. A crash fails the run (its input is saved under
# the package's testdata/fuzz for a regression test). Bounded by a count
# of inputs, not a time: with -fuzztime 5s, Go's fuzzer sometimes failed
# with "context deadline exceeded" when the time ran out while its workers
# were still busy (twice in this session's runs, no input at fault).
for target in "pkg/api FuzzDecodeRequest" "pkg/config FuzzParse" "pkg/state FuzzParse" \
	"pkg/haproxy FuzzCheck" "pkg/conntable FuzzNetlinkDecoders" "pkg/forward FuzzParseSave" \
	"pkg/history FuzzLastLines" "pkg/pool FuzzReadKeys" \
	"pkg/lbview FuzzParse" "pkg/lbview FuzzLoad" "pkg/agentcheck FuzzLikeAgentCheck"; do
	set -- $target
	echo "=== FUZZ $1 $2" >>"$log"
	go test "./$1" -run '^$' -fuzz "^$2\$" -fuzztime "${DRAINCTL_FUZZTIME:-50000x}" >>"$log" 2>&1 || { echo "--- FAIL: fuzz $1 $2" >>"$log"; status=1; }
done
# Show failures in full, and every test's verdict.
grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL|panic)|_test\.go:[0-9]+|^=== FUZZ' "$log" || true
if grep -q -- '--- SKIP' "$log"; then
	echo "test: some tests were skipped; every suite must run (see above)" >&2
	exit 1
fi
if [ $status -ne 0 ]; then
	echo "---- full output of the failed run, less the passing tests ----" >&2
	grep -vE '^\s*(=== (RUN|PAUSE|CONT|NAME)|--- PASS)' "$log" >&2 || true
	echo "test: FAILED" >&2
	exit $status
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
echo "$passed passed, 0 failed"
