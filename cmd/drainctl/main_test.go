package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/nstest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drainctl-cli-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "drainctl")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build drainctl: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// drainctl runs the binary in ns (or on the host when ns is nil) and
// returns its stdout, stderr and exit code.
func drainctl(t *testing.T, ns *nstest.NS, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmdline := append([]string{binary}, args...)
	if ns != nil {
		cmdline = append([]string{"ip", "netns", "exec", ns.Name}, cmdline...)
	}
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run drainctl: %v", err)
	}
	return o.String(), e.String(), 0
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
