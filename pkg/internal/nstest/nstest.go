// Package nstest gives tests their own network namespaces: hosts joined by
// veth links, with no route out. Each namespace has a unique name so tests
// can run in parallel and a crashed run cannot break the next one; each is
// deleted when its test ends.
//
// Kernel tests need root. They skip without it, unless RequireEnv is set
// (CI sets it): then a skip would hide a suite that did not run, so they
// fail instead. Under go test -short they always skip, root or not,
// RequireEnv or not: -short is the unit tier alone (no root, no
// namespaces, no built binary; see ExitIfShort for the packages whose
// TestMain builds the binary).
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// RequireEnv is the environment variable that, when "1", turns every
// would-be skip of a kernel test into a failure (except under -short).
const RequireEnv = "DRAINCTL_REQUIRE_KERNEL_TESTS"

// Skip skips the test with reason, or fails it when RequireEnv is set.
func Skip(t testing.TB, reason string) {
	t.Helper()
	SkipShort(t)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, RequireEnv)
	}
	t.Skip(reason)
}

// SkipShort skips the test under go test -short, which runs the unit
// tier alone: for tests that need root, namespaces, the built binary or
// other programs.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the unit tier alone (this test needs root, namespaces, the built binary or other programs)")
	}
}

// RequireRoot skips (or fails, see RequireEnv) unless running as root;
// under -short it skips.
func RequireRoot(t testing.TB) {
	t.Helper()
	SkipShort(t)
	if os.Geteuid() != 0 {
		Skip(t, "kernel test needs root (network namespaces, netfilter)")
	}
}

// ExitIfShort ends a test binary whose TestMain builds and runs the
// drainctl binary under go test -short, before it builds anything: the
// unit tier runs no built binary. It prints why and exits 0.
func ExitIfShort(pkg string) {
	if !flag.Parsed() {
		flag.Parse()
	}
	if testing.Short() {
		fmt.Printf("%s: -short: not run (its tests run the built binary; go test without -short runs them)\n", pkg)
		os.Exit(0)
	}
}

// RequireCmd skips (or fails) unless every command is installed.
func RequireCmd(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			Skip(t, fmt.Sprintf("command %s not installed", c))
		}
	}
}

// NS is one network namespace made for a test.
type NS struct {
	*namespace.NS
}

// New makes a namespace named "dct-PREFIX-PID-RANDOM" with loopback up,
// and deletes it when the test ends. The first call in a process also
// deletes namespaces left by test processes that died (killed, crashed):
// the PID in their name is no longer running.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(sweep)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("dct-%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]))
	n, err := namespace.New(name)
	if err != nil {
		t.Fatal(err)
	}
	ns := &NS{n}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return ns
}

var sweepOnce sync.Once

// sweep deletes "dct-*-PID-*" namespaces whose PID is not running.
func sweep() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) < 4 || parts[0] != "dct" {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// MustExec is Exec that fails the test on error.
func (n *NS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Link joins a and b with a veth pair and gives each end an IPv4 and an
// IPv6 address (CIDR notation). IPv6 addresses skip duplicate address
// detection so they work at once.
func Link(t testing.TB, a, b *NS, a4, a6, b4, b6 string) {
	t.Helper()
	out, err := exec.Command("ip", "-n", a.Name, "link", "add", "veth0", "type", "veth",
		"peer", "name", "veth0", "netns", b.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("veth %s<->%s: %v: %s", a.Name, b.Name, err, out)
	}
	for _, side := range []struct {
		ns     *NS
		v4, v6 string
	}{{a, a4, a6}, {b, b4, b6}} {
		side.ns.MustExec(t, "ip", "addr", "add", side.v4, "dev", "veth0")
		side.ns.MustExec(t, "ip", "-6", "addr", "add", side.v6, "dev", "veth0", "nodad")
		side.ns.MustExec(t, "ip", "link", "set", "veth0", "up")
	}
}

// Addresses of the two hosts Pair makes. 198.18.0.0/15 is the benchmarking
// range (RFC 2544) and fd00:dc::/64 a unique local prefix: neither is
// routed, and the namespaces have no route out anyway.
const (
	Srv4 = "198.18.0.1" // the server's IPv4 address
	Srv6 = "fd00:dc::1" // the server's IPv6 address
	Cli4 = "198.18.0.2" // the client's IPv4 address
	Cli6 = "fd00:dc::2" // the client's IPv6 address
)

// Pair makes a server and a client host joined by a veth link, with the
// addresses above.
func Pair(t testing.TB, prefix string) (srv, cli *NS) {
	t.Helper()
	srv, cli = New(t, prefix+"-srv"), New(t, prefix+"-cli")
	Link(t, srv, cli, Srv4+"/24", Srv6+"/64", Cli4+"/24", Cli6+"/64")
	return srv, cli
}
