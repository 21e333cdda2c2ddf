package lab

// The fleet tools (scripts/contrib) on real parts: three app servers, each
// with a real sshd, Apache and the agent, behind real HAProxy, under the
// e2e load. The controller runs in the load balancer's namespace.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// fleet is a lab of three app servers reachable over SSH, under load.
type fleet struct {
	l     *Lab
	ssh   SSH
	dir   string
	hosts []string // the app servers' addresses
	lock  string   // the pool's lock (a directory; a temporary one here)
}

func startFleet(t testing.TB) *fleet {
	t.Helper()
	return startFleetWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 3})
}

// startFleetWith is startFleet on a lab of o.
func startFleetWith(t testing.TB, o Options) *fleet {
	t.Helper()
	nstest.RequireCmd(t, "sshd", "ssh", "ssh-keygen", "jq", "flock")
	l := startLabWith(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := l.StartSSH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{l: l, ssh: s, dir: t.TempDir()}
	f.lock = filepath.Join(f.dir, "drainctl-roll.lock")
	for _, w := range l.Webs {
		f.hosts = append(f.hosts, w.Addr)
	}
	return f
}

// generations is each app server's Apache generation (a restart adds 1).
func (f *fleet) generations(t testing.TB) []int {
	t.Helper()
	var gs []int
	for _, w := range f.l.Webs {
		g, err := w.Generation()
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// generationsAfter is each app server's Apache generation once it has
// passed before's (at most 5 s each: see Web.GenerationAfter).
func (f *fleet) generationsAfter(t testing.TB, before []int) []int {
	t.Helper()
	var gs []int
	for i, w := range f.l.Webs {
		g, err := w.GenerationAfter(before[i])
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// start runs a controller command (bounded to 3 minutes) and returns it
// running, with its combined output.
func (f *fleet) start(t testing.TB, env []string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := f.l.Command(ctx, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func exitCode(err error) int {
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// waitOut waits until HAProxy sees the app server DOWN (a roll has taken
// it out).
func (f *fleet) waitOut(t testing.TB, name string) {
	t.Helper()
	if _, err := f.l.WaitStatus(context.Background(), name, "DOWN", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// rollTool is one fleet tool: how to start a roll of the pool.
type rollTool struct {
	name string
	// roll starts a roll (of restarts, or of maintenance runs of the
	// shell command run when it is set) and returns it running.
	roll func(t testing.TB, f *fleet, run string) (*exec.Cmd, *strings.Builder)
	// failed is what the tool says of the host that stopped the roll.
	failed func(host string) string
	// refused starts what it says when it refuses to roll.
	refused string
}

var rollScript, _ = filepath.Abs("../../../scripts/contrib/drainctl-roll")
var playbook, _ = filepath.Abs("../../../scripts/contrib/ansible/drainctl-roll.yml")

var sshRoll = rollTool{
	name: "ssh",
	roll: func(t testing.TB, f *fleet, run string) (*exec.Cmd, *strings.Builder) {
		args := []string{rollScript, "--reason", "fleet e2e"}
		if run != "" {
			args = append(args, "--run", run)
		}
		return f.start(t, []string{"DRAINCTL_ROLL_SSH=" + f.ssh.Command(), "DRAINCTL_ROLL_DRAINCTL=" + f.ssh.Drainctl, "DRAINCTL_ROLL_LOCK=" + f.lock},
			append(args, f.hosts...)...)
	},
	failed:  func(host string) string { return "FAILED on " + host },
	refused: "refusing to start: ",
}

var ansibleRoll = rollTool{
	name: "ansible",
	roll: func(t testing.TB, f *fleet, run string) (*exec.Cmd, *strings.Builder) {
		vars := fmt.Sprintf("drainctl=%s\ndrainctl_reason='fleet e2e'\ndrainctl_lock=%s\n", f.ssh.Drainctl, f.lock)
		if run != "" {
			vars += fmt.Sprintf("drainctl_run=%q\n", run)
		}
		return f.ansible(t, playbook, vars)
	},
	failed:  func(host string) string { return "drainctl failed on web" + host[len("198.18."):len("198.18.")+1] },
	refused: "refusing to roll: ",
}

// ansible runs a playbook over the pool (web1..3 by SSH; localhost is the
// load balancer's namespace) with more group variables.
func (f *fleet) ansible(t testing.TB, playbook, vars string, extra ...string) (*exec.Cmd, *strings.Builder) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory")
	var b strings.Builder
	b.WriteString("[pool]\n")
	for i, w := range f.l.Webs {
		fmt.Fprintf(&b, "web%d ansible_host=%s apache_conf=%s\n", i+1, w.Addr, w.conf)
	}
	fmt.Fprintf(&b, "[pool:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\n%s",
		f.ssh.Key, f.ssh.KnownHosts, vars)
	if err := os.WriteFile(inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f.start(t, []string{"ANSIBLE_PIPELINING=True", "ANSIBLE_LOCAL_TEMP=" + filepath.Join(dir, "local"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(dir, "remote"), "ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=False", "ANSIBLE_FORCE_COLOR=0", "HOME=" + dir},
		append([]string{"ansible-playbook", "-i", inv, playbook}, extra...)...)
}

// Each fleet tool rolls the pool under load: every host restarted, 0
// failed requests, 0 users moved; a second roll started while the first
// has a host out is refused; a host whose config test fails stops the roll,
// stays in service and is named, and the hosts after it are not touched.
func TestE2EFleetSSH(t *testing.T) { testFleet(t, sshRoll) }

func TestE2EFleetAnsible(t *testing.T) {
	nstest.RequireCmd(t, "ansible-playbook")
	testFleet(t, ansibleRoll)
}

func testFleet(t *testing.T, tool rollTool) {
	f := startFleet(t)
	run := users(t, f.l)
	time.Sleep(time.Second)

	// A whole roll; a second one started while the first is at its
	// first host (two more to go) is refused.
	before := f.generations(t)
	first, out1 := tool.roll(t, f, "")
	f.waitOut(t, f.l.Webs[0].Name)
	second, out2 := tool.roll(t, f, "")
	if code := exitCode(second.Wait()); code == 0 || !strings.Contains(out2.String(), tool.refused) {
		t.Errorf("a second %s roll during the first: exit %d, want %q\n%s", tool.name, code, tool.refused, out2)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the %s roll: %v\n%s", tool.name, err, out1)
	}
	if _, err := os.Stat(f.lock); !os.IsNotExist(err) {
		t.Fatalf("the roll left its lock %s (%v)", f.lock, err)
	}
	after := f.generationsAfter(t, before)
	for i := range after {
		if after[i] != before[i]+1 {
			t.Fatalf("Apache generations %v -> %v: every host restarted once\n%s", before, after, out1)
		}
	}
	t.Logf("%s roll:\n%s", tool.name, out1)

	// A roll of maintenance runs: the command ran on every host, under a
	// hold of its own, each host back in service; nothing restarted.
	before = f.generations(t)
	runRoll, out := tool.roll(t, f, "echo patched >&2")
	if err := runRoll.Wait(); err != nil {
		t.Fatalf("a %s roll of maintenance runs: %v\n%s", tool.name, err, out)
	}
	for i, w := range f.l.Webs {
		out, _, _ := w.Drainctl(context.Background(), "history", "-n", "1", "--json")
		var hist []apitype.HistoryEntry
		if err := json.Unmarshal([]byte(out), &hist); err != nil || len(hist) != 1 || hist[0].Op != "exit" ||
			hist[0].Command != "sh -c 'echo patched >&2'" || hist[0].CommandExit == nil || *hist[0].CommandExit != 0 || hist[0].CommandOutput != "patched\n" {
			t.Fatalf("%s's last operation is not the run's end (%v):\n%s", w.Name, err, out)
		}
		if g := f.generations(t)[i]; g != before[i] {
			t.Fatalf("%s restarted by a roll of runs", w.Name)
		}
		backInService(t, context.Background(), f.l, w)
	}

	// The pool's lock, held by a roll elsewhere: refused, whoever holds it
	// named, nothing touched.
	if err := os.MkdirAll(f.lock, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.lock, "owner"), []byte("a roll by ops@elsewhere\n"), 0o644)
	before = f.generations(t)
	locked, out := tool.roll(t, f, "")
	code := exitCode(locked.Wait())
	if code == 0 || !strings.Contains(out.String(), tool.refused+"another roll is running (a roll by ops@elsewhere") {
		t.Fatalf("a %s roll while the lock is held: exit %d\n%s", tool.name, code, out)
	}
	if after := f.generations(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused roll restarted something: %v -> %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(f.lock, "owner")); err != nil {
		t.Fatalf("a refused roll removed another's lock: %v", err)
	}
	os.RemoveAll(f.lock)

	// A broken config on the second host stops the roll there.
	if err := f.l.Webs[1].BreakConfig(true); err != nil {
		t.Fatal(err)
	}
	before = f.generations(t)
	roll, out := tool.roll(t, f, "")
	code = exitCode(roll.Wait())
	f.l.Webs[1].BreakConfig(false)
	f.l.Webs[0].GenerationAfter(before[0])
	after = f.generations(t)
	if code == 0 || !strings.Contains(out.String(), tool.failed(f.hosts[1])) {
		t.Fatalf("a roll over a broken config: exit %d, want the host named (%q)\n%s", code, tool.failed(f.hosts[1]), out)
	}
	if after[0] != before[0]+1 || after[1] != before[1] || after[2] != before[2] {
		t.Fatalf("Apache generations %v -> %v: want web1 restarted, web2 (failed config test) and web3 untouched\n%s", before, after, out)
	}
	for _, w := range f.l.Webs {
		backInService(t, context.Background(), f.l, w)
	}
	if _, err := os.Stat(f.lock); !os.IsNotExist(err) {
		t.Fatalf("the failed roll left its lock %s (%v)", f.lock, err)
	}

	noLoss(t, f.l, run)
}

// maintenance run under load, through the real agent: the command (here a
// graceful restart) runs while the server is out; 0 failed, 0 moved.
func TestE2EMaintenanceRun(t *testing.T) {
	l := startLab(t, "nftables", Recommended)
	run := users(t, l)
	time.Sleep(time.Second)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		w := l.Webs[i%2]
		gen, _ := w.Generation()
		out, code, err := w.Drainctl(ctx, "maintenance", "run", "--reason", "e2e run", "--log", filepath.Join(t.TempDir(), "run.log"),
			"--", "apache2", "-f", w.conf, "-k", "graceful")
		if err != nil || code != 0 {
			t.Fatalf("maintenance run on %s: exit %d %v\n%s", w.Name, code, err, out)
		}
		if g, _ := w.GenerationAfter(gen); g != gen+1 {
			t.Fatalf("%s: generation %d -> %d", w.Name, gen, g)
		}
		backInService(t, ctx, l, w)
	}
	noLoss(t, l, run)
}
