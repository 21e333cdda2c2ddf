package integration

// The .deb, installed, upgraded, removed and purged for real by dpkg, in a
// sandbox: a mount namespace whose root is an overlay of the host's (the
// writes land in a tmpfs that dies with the test) and a network namespace
// of its own. The host's packages, files and rules are never touched.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/debs"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// sandbox is a throw-away copy-on-write root with its own network.
type sandbox struct {
	t    *testing.T
	pid  int    // the process that holds the namespaces
	dir  string // a tmpfs in the sandbox's mount namespace: upper, work, root
	root string
}

const sandboxSetup = `set -e
mount -t tmpfs tmpfs "$1"
mkdir "$1/upper" "$1/work" "$1/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$1/root"
mount --rbind /dev "$1/root/dev"
mount -t proc proc "$1/root/proc"
mount --rbind /sys "$1/root/sys"
mount -t tmpfs tmpfs "$1/root/run"
mount -t tmpfs tmpfs "$1/root/tmp"
ip link set lo up
echo ready
exec sleep 600
`

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir, err := os.MkdirTemp("", "drainctl-pkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", sandboxSetup, "sandbox", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killing the holder ends the namespaces and every mount in them.
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("sandbox: %q, %v", line, err)
	}
	return &sandbox{t: t, pid: cmd.Process.Pid, dir: dir, root: filepath.Join(dir, "root")}
}

// nsenter is the command line that runs args in the sandbox's namespaces,
// chrooted into its root unless host is set.
func (s *sandbox) nsenter(host bool, args ...string) []string {
	line := []string{"nsenter", "-t", fmt.Sprint(s.pid), "-m", "-n"}
	if !host {
		line = append(line, "chroot", s.root)
	}
	return append(line, args...)
}

// sh runs a shell command in the sandbox (at most 60 s) and returns its
// output and exit status.
func (s *sandbox) sh(script string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	line := s.nsenter(false, "sh", "-c", script)
	cmd := exec.CommandContext(ctx, line[0], line[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), exitCodeOf(s.t, err)
}

func (s *sandbox) must(script string) string {
	s.t.Helper()
	out, code := s.sh(script)
	if code != 0 {
		s.t.Fatalf("%s: exit %d\n%s", script, code, out)
	}
	return out
}

// copyIn puts a host file into the sandbox's /tmp.
func (s *sandbox) copyIn(src string) string {
	s.t.Helper()
	dst := "/tmp/" + filepath.Base(src)
	line := s.nsenter(true, "cp", src, filepath.Join(s.root, dst))
	if out, err := exec.Command(line[0], line[1:]...).CombinedOutput(); err != nil {
		s.t.Fatalf("copy %s in: %v\n%s", src, err, out)
	}
	return dst
}

// agent starts the installed agent as its unit does (ExecStart, with
// the packaged config) and waits until it answers; stop sends SIGTERM,
// as systemctl stop does, and waits for it to exit.
func (s *sandbox) agent() (stop func()) {
	s.t.Helper()
	line := s.nsenter(false, "/usr/bin/drainctl", "agent")
	cmd := exec.Command(line[0], line[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	log, _ := os.Create(filepath.Join(s.t.TempDir(), "agent.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			stopWithin(s.t, cmd, 20*time.Second)
		}
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); stop() })
	for i := 0; i < 100; i++ {
		if _, code := s.sh("drainctl status"); code == 0 {
			return stop
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(log.Name())
	s.t.Fatalf("the installed agent did not answer:\n%s", b)
	return nil
}

// ownDrainctl lists the drainctl processes of the sandbox's own, and
// fails when there is none: the sandbox shares the host's PID namespace,
// so pgrep alone would also see the packaged agent of another test's
// container (or a host's agent); a process is the sandbox's when it is in
// its mount namespace.
const ownDrainctl = `own=$(readlink /proc/self/ns/mnt); found=1
for p in $(pgrep -f '^/usr/bin/drainctl '); do
	[ "$(readlink /proc/$p/ns/mnt)" = "$own" ] && { echo "$p: $(tr '\0' ' ' </proc/$p/cmdline)"; found=0; }
done
exit $found`

// otherRules are other software's, in the built-in chains drainctl jumps
// from and a table of their own: a purge must leave them.
const otherRules = `set -e
iptables-legacy -t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 80
ip6tables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT
iptables-nft -A INPUT -p tcp --dport 22 -j ACCEPT
nft add table inet other
nft add chain inet other in '{ type filter hook input priority 0; }'
nft add rule inet other in tcp dport 2222 accept
`

// noRulesOfDrainctl fails the test when any backend holds a rule or chain
// of drainctl's, or when one of otherRules is gone.
func (s *sandbox) noRulesOfDrainctl() {
	s.t.Helper()
	out := s.must("nft list ruleset; for v in iptables-legacy ip6tables-legacy iptables-nft ip6tables-nft; do echo \"# $v\"; $v-save; done")
	if strings.Contains(strings.ToLower(out), "drainctl") {
		s.t.Fatalf("drainctl's rules left after dpkg -P:\n%s", out)
	}
	for want, n := range map[string]int{"--dport 8080 -j REDIRECT --to-ports 80": 1, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT": 2, "tcp dport 2222 accept": 1} {
		if strings.Count(out, want) != n {
			s.t.Fatalf("dpkg -P changed other software's rules (want %s %d times):\n%s", want, n, out)
		}
	}
}

// buildPackages is debs.Build: each version's .deb and .rpm, built once
// per test binary (TestMain removes them).
func buildPackages(t *testing.T, version string) (deb, rpm string) { return debs.Build(t, version) }

// The package's life on a host: install (enabled, not started; the unit
// verifies), a held maintenance through an upgrade (its rules untouched),
// remove (conffile and state stay, and the forward), purge (nothing
// stays, no rule of drainctl's in any backend, every other rule does).
func TestPackageDeb(t *testing.T) {
	// In parallel with the systemd tier's tests, whose containers run the
	// packaged agent too: this test must judge its sandbox alone.
	t.Parallel()
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "dpkg", "unshare", "nsenter", "systemd-analyze", "nft", "iptables-legacy", "iptables-nft")
	oldDeb, _ := buildPackages(t, "0.0.1")
	newDeb, newRPM := buildPackages(t, "0.0.2")
	s := newSandbox(t)
	oldDeb, newDeb = s.copyIn(oldDeb), s.copyIn(newDeb)

	// Install.
	s.must("dpkg -i " + oldDeb)
	if out := s.must("drainctl --version"); !strings.HasPrefix(out, "drainctl 0.0.1\n") {
		t.Fatalf("--version after install:\n%s", out)
	}
	s.must("systemd-analyze verify /usr/lib/systemd/system/drainctl.service /usr/lib/systemd/system/drainctl-forward.service")
	s.must("test -L /etc/systemd/system/multi-user.target.wants/drainctl.service")
	if out, code := s.sh("test -e /run/drainctl/drainctl.sock || " + ownDrainctl); code == 0 {
		t.Fatalf("the agent was started on install (the config must be edited first):\n%s", out)
	}
	s.must("getent group drainctl")
	if out := s.must("dpkg-query -W -f '${Conffiles}' drainctl"); !strings.Contains(out, "/etc/drainctl/drainctl.yaml") {
		t.Fatalf("conffiles: %q", out)
	}
	s.must("test -s /usr/share/man/man8/drainctl-maintenance-enter.8.gz && test -s /usr/share/bash-completion/completions/drainctl && test -s /usr/share/zsh/vendor-completions/_drainctl")
	s.must("drainctl config check")

	// A held maintenance, then an upgrade: the operator's config edit and
	// the hold both survive, and the new agent resumes held.
	stop := s.agent()
	s.must("drainctl maintenance enter --reason 'kernel update'")
	s.must("echo '# edited by the operator' >> /etc/drainctl/drainctl.yaml")
	stop() // as systemd's try-restart would: SIGTERM, then the new binary
	s.must("dpkg -i " + newDeb)
	if out := s.must("drainctl --version"); !strings.HasPrefix(out, "drainctl 0.0.2\n") {
		t.Fatalf("--version after upgrade:\n%s", out)
	}
	// The upgrade itself changed no rule: still withdrawn before any agent runs.
	if out := s.must("nft list table inet drainctl"); !strings.Contains(out, "reject with tcp reset") {
		t.Fatalf("the upgrade removed the withdraw rule:\n%s", out)
	}
	s.must("grep -q 'edited by the operator' /etc/drainctl/drainctl.yaml")
	stop = s.agent()
	var st apitype.Status
	if out := s.must("drainctl status --json"); json.Unmarshal([]byte(out), &st) != nil ||
		st.State.Phase != apitype.PhaseHeld || st.State.Holder == nil || st.State.Holder.Reason != "kernel update" || !withdrawn(st) {
		t.Fatalf("after the upgrade the server must still be held and withdrawn:\n%s", out)
	}
	stop()

	// Remove: the binary goes; the conffile, the state and the forward's
	// rules (a held server stays out) stay.
	s.must("dpkg -r drainctl")
	if out, code := s.sh("test -e /usr/bin/drainctl"); code == 0 {
		t.Fatalf("/usr/bin/drainctl after dpkg -r\n%s", out)
	}
	s.must("test -f /etc/drainctl/drainctl.yaml && test -f /var/lib/drainctl/state.json")
	s.must("nft list table inet drainctl >/dev/null || nft list table ip drainctl >/dev/null")

	// Purge: nothing of drainctl stays in the root's writable layer
	// (dpkg's own database and log aside), the group is gone, and so are
	// drainctl's rules (the binary that could remove them is gone);
	// other software's rules, in the same built-in chains too, stay.
	s.must(otherRules)
	s.must("dpkg -P drainctl")
	s.noRulesOfDrainctl()
	if out, code := s.sh("getent group drainctl"); code == 0 {
		t.Fatalf("group after purge: %s", out)
	}
	line := s.nsenter(true, "find", filepath.Join(s.dir, "upper"), "-mindepth", "1", "-printf", "%P\\n")
	out, err := exec.Command(line[0], line[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("find: %v\n%s", err, out)
	}
	var left []string
	for _, p := range strings.Split(string(out), "\n") {
		// var/cache/man: man-db's formatted pages, from systemd-analyze
		// verify running man on the units' Documentation=; man-db's own.
		if strings.Contains(p, "drainctl") && !strings.HasPrefix(p, "var/lib/dpkg/") && !strings.HasPrefix(p, "var/log/") && !strings.HasPrefix(p, "var/cache/man/") {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Fatalf("left after dpkg -P:\n%s", strings.Join(left, "\n"))
	}

	// The same with the rules in iptables, each flavour, IPv4 and IPv6.
	for _, b := range []string{"iptables-legacy", "iptables-nft"} {
		s.must("dpkg -i " + newDeb)
		s.must("drainctl forward withdraw --backend " + b)
		s.must(b + "-save | grep -q -- '-j DRAINCTL-PREROUTING' && ip6" + strings.TrimPrefix(b, "ip") + "-save | grep -q -- '-j DRAINCTL-INPUT'")
		s.must("dpkg -P drainctl")
		s.noRulesOfDrainctl()
	}

	// The .rpm holds the same files, the config marked as such.
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm is needed to read the .rpm: apt-get install rpm")
	}
	list, err := exec.Command("rpm", "-qlp", newRPM).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, list)
	}
	for _, want := range []string{"/usr/bin/drainctl", "/usr/lib/systemd/system/drainctl.service", "/usr/lib/sysusers.d/drainctl.conf", "/usr/share/man/man8/drainctl.8.gz"} {
		if !strings.Contains(string(list), want+"\n") {
			t.Errorf("the .rpm lacks %s:\n%s", want, list)
		}
	}
	if conf, err := exec.Command("rpm", "-qcp", newRPM).CombinedOutput(); err != nil || strings.TrimSpace(string(conf)) != "/etc/drainctl/drainctl.yaml" {
		t.Errorf("rpm config files: %v\n%s", err, conf)
	}
}
