package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/debs"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

var binary string

// testEnv is the environment of every drainctl the tests run: the
// configuration is an empty file of the test's own (DRAINCTL_CONFIG), never
// the host's /etc/drainctl/drainctl.yaml.
var testEnv []string

func TestMain(m *testing.M) {
	nstest.ExitIfShort("pkg/internal/integration")
	bin, cleanup, err := nstest.BuildBinary("../../../cmd/drainctl", "drainctl")
	if err != nil {
		panic(err)
	}
	binary = bin
	empty, err := os.CreateTemp("", "drainctl-test-config-*.yaml")
	if err != nil {
		panic(err)
	}
	empty.Close()
	testEnv = append(os.Environ(), "DRAINCTL_CONFIG="+empty.Name())
	code := m.Run()
	cleanup()
	os.Remove(empty.Name())
	debs.Remove()
	nspawn.RemoveCache()
	os.Exit(code)
}

// drainctl runs the binary in ns (or on the host when ns is nil) and
// returns its stdout, stderr and exit code.
func drainctl(t *testing.T, ns *nstest.NS, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return drainctlEnv(t, nil, ns, args...)
}

// drainctlEnv is drainctl with more environment variables (NAME=VALUE).
func drainctlEnv(t *testing.T, env []string, ns *nstest.NS, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmdline := append([]string{binary}, args...)
	if ns != nil {
		cmdline = append([]string{"ip", "netns", "exec", ns.Name}, cmdline...)
	}
	// Bounded: a command that hangs fails its test, not the whole run.
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Env = append(append([]string{}, testEnv...), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("drainctl %s: still running after %v", strings.Join(args, " "), cliTimeout)
	}
	return o.String(), e.String(), exitCodeOf(t, err)
}

// exitCodeOf is a finished command's exit code; any other error (the
// command did not start) fails the test.
func exitCodeOf(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		t.Fatalf("run: %v", err)
	}
	return 0
}

func TestHelpTeaches(t *testing.T) {
	out, _, code := drainctl(t, nil, "forward", "withdraw", "--help")
	if code != 0 || !strings.Contains(out, "--forward FROM:TO") || !strings.Contains(out, "established") {
		t.Fatalf("help (exit %d):\n%s", code, out)
	}
}

func TestBadInputExitsTwoAndChangesNothing(t *testing.T) {
	nstest.RequireCmd(t, "nft")
	ns := nstest.New(t, "cli")
	before := ns.MustExec(t, "nft", "list", "ruleset")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("forwards:\n  - 81:80\n  - 81:81\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forward", "apply", "--from", "0", "--to", "80"}, `forward port "0": must be a number between 1 and 65535`},
		{[]string{"forward", "apply", "--forward", "81"}, `want FROM:TO, e.g. 81:80`},
		{[]string{"forward", "apply", "--from", "81"}, "--from and --to go together"},
		{[]string{"forward", "withdraw", "--backend", "pf"}, `backend "pf": want one of auto, nftables`},
		{[]string{"forward", "apply", "-f", "81:80", "-f", "80:8080"}, "also a service port"},
		{[]string{"forward", "apply", "--config", bad}, "bad.yaml: line 3"},
		{[]string{"forward", "apply", "--bogus"}, "flag provided but not defined"},
		{[]string{"forward", "apply", "81:80"}, `unexpected argument "81:80"`},
	} {
		_, stderr, code := drainctl(t, ns, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("drainctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, exitUsage, tc.want)
		}
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("bad input changed the ruleset:\n%s", after)
	}
}

func TestForwardCommandsInNamespace(t *testing.T) {
	nstest.RequireCmd(t, "nft", "iptables-legacy")
	ns := nstest.New(t, "cli")
	out, stderr, code := drainctl(t, ns, "forward", "apply", "-f", "81:80", "-f", "444:443")
	if code != 0 || !strings.Contains(out, "apply 81→80,444→443: done (backend nftables: no firewall rules yet") {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code := drainctl(t, ns, "forward", "withdraw", "--from", "81", "--to", "80"); code != 0 {
		t.Fatal("withdraw failed")
	}
	out, _, code = drainctl(t, ns, "forward", "status", "--json")
	var st struct {
		Backend  string
		Forwards []forward.Status
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v:\n%s", code, err, out)
	}
	if st.Backend != "nftables" || len(st.Forwards) != 2 || !st.Forwards[0].Withdrawn || st.Forwards[1].Withdrawn {
		t.Fatalf("status = %+v, want 81:80 withdrawn and 444:443 in service", st)
	}
	out, _, _ = drainctl(t, ns, "forward", "status")
	if !strings.Contains(out, "81→80    withdrawn") || !strings.Contains(out, "444→443  in-service") {
		t.Fatalf("status table:\n%s", out)
	}
	if out, _, code := drainctl(t, ns, "forward", "remove"); code != 0 || !strings.Contains(out, "remove all forwards: done") {
		t.Fatalf("remove: exit %d: %s", code, out)
	}
	if rs := ns.MustExec(t, "nft", "list", "ruleset"); rs != "" {
		t.Fatalf("ruleset after remove:\n%s", rs)
	}
}

func TestAutoBackendFollowsTheHost(t *testing.T) {
	nstest.RequireCmd(t, "nft", "iptables-legacy", "iptables-nft")
	for _, tc := range []struct {
		seed []string
		want string
	}{
		{[]string{"iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"}, "backend iptables-legacy: the host's firewall uses iptables-legacy"},
		{[]string{"iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"}, "backend iptables-nft: the host's firewall uses iptables-nft"},
		{[]string{"nft", "add table inet fw; add chain inet fw in { type filter hook input priority 0; }; add rule inet fw in tcp dport 22 accept"}, "backend nftables: the host's firewall uses nftables"},
	} {
		ns := nstest.New(t, "auto")
		ns.MustExec(t, tc.seed...)
		out, stderr, code := drainctl(t, ns, "forward", "apply")
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("seeded with %s: exit %d, %s%s; want %q", tc.seed[0], code, out, stderr, tc.want)
		}
	}
}

func TestConnectionsAndWaitDrained(t *testing.T) {
	srv, cli := nstest.Pair(t, "cli")
	srv.ServeHTTP(t, ":80")
	if _, stderr, code := drainctl(t, srv, "forward", "apply"); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	through := cli.Dial(t, "198.18.0.1:81")
	through.MustGet(t)
	direct := cli.Dial(t, "[fd00:dc::1]:80")
	direct.MustGet(t)

	out, stderr, code := drainctl(t, srv, "connections", "--json")
	var got struct {
		Ports       []uint16
		Connections []struct {
			Peer string
			Path string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("connections --json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	paths := map[string]string{}
	for _, c := range got.Connections {
		paths[c.Peer] = c.Path
	}
	if paths[through.Peer().String()] != "forward" || paths[direct.Peer().String()] != "direct" || len(paths) != 2 {
		t.Fatalf("paths %v, want %s forward and %s direct", paths, through.Peer(), direct.Peer())
	}
	if out, _, _ := drainctl(t, srv, "connections"); !strings.Contains(out, "2 connections on :80: forward 1, direct 1") {
		t.Fatalf("connections table:\n%s", out)
	}

	// A client that keeps working holds the drain open: abort at the deadline.
	stop := keepBusy(t, through)
	out, stderr, code = drainctl(t, srv, "wait-drained", "--min-wait", "0s", "--deadline", "1500ms", "--idle-after", "500ms", "--on-deadline", "abort", "--poll", "100ms")
	stop()
	if code != exitDeadline || !strings.Contains(stderr, "drain deadline passed with active connections: 1 left") {
		t.Fatalf("wait-drained with a busy client: exit %d, want %d\n%s%s", code, exitDeadline, out, stderr)
	}
	// Now both are silent: drained once they count as idle.
	out, stderr, code = drainctl(t, srv, "wait-drained", "--min-wait", "0s", "--quiet", "300ms", "--idle-after", "500ms", "--poll", "100ms", "--json")
	if code != 0 || !strings.Contains(out, `"outcome":"drained"`) {
		t.Fatalf("wait-drained when idle: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := drainctl(t, srv, "connections", "--port", "0"); code != exitUsage || !strings.Contains(stderr, "--port 0") {
		t.Fatalf("--port 0: exit %d, %s", code, stderr)
	}
	// --on-deadline is the old name of --drain-on-deadline: the error
	// names the setting by its name now.
	if _, stderr, code := drainctl(t, srv, "wait-drained", "--on-deadline", "later"); code != exitUsage || !strings.Contains(stderr, `--drain-on-deadline: on_deadline "later"`) {
		t.Fatalf("--on-deadline later: exit %d, %s", code, stderr)
	}
}

// --version says the version, the commit, when it was built and with
// which Go, for bug reports.
func TestVersion(t *testing.T) {
	out, _, code := drainctl(t, nil, "--version")
	for _, want := range []string{"drainctl ", "\ncommit:  ", "\nbuilt:   ", "\ngo:      go1."} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("--version (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

// agent --check prints the settings it would run with: DRAINCTL_BACKEND
// chooses the backend as the README says, a flag beats it, and durations
// are milliseconds.
func TestAgentCheckSettings(t *testing.T) {
	out, stderr, code := drainctlEnv(t, []string{"DRAINCTL_BACKEND=iptables-nft"}, nil, "agent", "--check", "--restart-cmd", "true")
	if code != 0 || !strings.Contains(out, `"backend": "iptables-nft"`) || !strings.Contains(out, `"deadline_ms": 60000`) || !strings.Contains(out, `"timeout_ms": 15000`) {
		t.Fatalf("exit %d: %s%s", code, out, stderr)
	}
	out, _, code = drainctlEnv(t, []string{"DRAINCTL_BACKEND=iptables-nft"}, nil, "agent", "--check", "--restart-cmd", "true", "--backend", "nftables")
	if code != 0 || !strings.Contains(out, `"backend": "nftables"`) {
		t.Fatalf("--backend beside DRAINCTL_BACKEND: exit %d: %s", code, out)
	}
	_, stderr, code = drainctlEnv(t, []string{"DRAINCTL_BACKEND=pf"}, nil, "agent", "--check", "--restart-cmd", "true")
	if code != exitUsage || !strings.Contains(stderr, `"pf"`) {
		t.Fatalf("DRAINCTL_BACKEND=pf: exit %d: %s", code, stderr)
	}
}

// keepBusy makes c a user at work: a request every 50 ms, at most 100 (5 s),
// until the returned stop is called (which waits for the last request).
func keepBusy(t *testing.T, c *nstest.Client) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if err := c.Get(); err != nil {
				t.Errorf("busy client: %v", err)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// cliTimeout bounds every CLI command a test runs; the longest (a restart
// that waits out a drain deadline) takes well under a minute.
const cliTimeout = 2 * time.Minute

// stopWithin sends SIGTERM to cmd and waits at most d for it to exit; a
// process still running then is killed and the test fails.
func stopWithin(t testing.TB, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s did not exit within %v of SIGTERM", cmd.Path, d)
	}
}

// haproxy-check as a user runs it: findings and exit 1, the agents'
// fall and rise taken into account, bad input exit 2.
func TestHAProxyCheckCLI(t *testing.T) {
	cfg := filepath.Join("..", "..", "..", "testdata", "haproxy", "blogpost.cfg")
	out, _, code := drainctl(t, nil, "haproxy-check", cfg)
	const fall3 = "fall 3, but drainctl's agent counts 2 refused checks"
	if code != exitError || !strings.Contains(out, "blogpost.cfg:13: backend app, server web1: "+fall3) {
		t.Fatalf("blogpost.cfg: exit %d\n%s", code, out)
	}
	// Agents that count 3 (health_checks fall: 3): that finding goes.
	if out, _, code = drainctl(t, nil, "haproxy-check", "--fall", "3", cfg); code != exitError || strings.Contains(out, fall3) {
		t.Fatalf("--fall 3: exit %d\n%s", code, out)
	}
	if out, _, code = drainctl(t, nil, "haproxy-check", filepath.Join("..", "..", "..", "testdata", "haproxy", "recommended.cfg")); code != exitOK || !strings.HasPrefix(out, "no problem found") {
		t.Fatalf("recommended.cfg: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"--fall", "0", cfg}, {filepath.Join(t.TempDir(), "none.cfg")}, {}} {
		if _, stderr, code := drainctl(t, nil, append([]string{"haproxy-check"}, args...)...); code != exitUsage {
			t.Errorf("haproxy-check %v: exit %d, want %d: %s", args, code, exitUsage, stderr)
		}
	}
}
