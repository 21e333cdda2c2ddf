package integration

// Scenario 4 of TestSystemdEveryRestart: a real upgrade of Apache by
// unattended-upgrades. The container's root has bookworm's apache2
// (debootstrap reads the release alone); the archive's newer one
// (bookworm-security's) is fetched on the host at run time, with
// unattended-upgrades and what it needs, into a flat repository bound
// into the container, whose Release names the origin unattended-upgrades
// takes by default (Origin Debian, Label Debian-Security, Codename
// bookworm-security). unattended-upgrades installs it as it does every
// morning: dpkg runs apache2's postinst, whose deb-systemd-invoke
// restarts apache2.service.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// repoInside is where the repository is bound in the container.
const repoInside = "/srv/upgrade-repo"

// apachePackages are the binary packages of Debian's apache2 source that
// the root holds and the upgrade replaces.
var apachePackages = []string{"apache2", "apache2-bin", "apache2-data", "apache2-utils"}

// upgradeRepo is the repository: made empty before the boot (a bind needs
// it), filled by build on the host.
type upgradeRepo struct {
	dir      string
	old, new string // apache2-bin's version in the root, and in the repository
	mainPID  int    // Apache's before the upgrade
	done     chan struct{}
	err      error
	took     time.Duration
}

func newUpgradeRepo(t *testing.T) *upgradeRepo {
	t.Helper()
	dir := t.TempDir()
	// apt's file: method reads it as _apt.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &upgradeRepo{dir: dir, done: make(chan struct{})}
}

// build fills the repository, for the container whose root is root (on
// the host): apt on the host, given the container's dpkg status, says
// what installing unattended-upgrades and the newer Apache takes; those
// versions are downloaded from the archive.
func (r *upgradeRepo) build(root string) {
	defer close(r.done)
	begin := time.Now()
	defer func() { r.took = time.Since(begin) }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status := filepath.Join(root, "var/lib/dpkg/status")
	host := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = r.dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				stderr = string(ee.Stderr)
			}
			return "", fmt.Errorf("%s: %w\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return string(out), nil
	}
	fail := func(err error) { r.err = err }

	out, err := host("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Version}", "apache2-bin")
	if err != nil {
		fail(fmt.Errorf("the root's apache2-bin: %w", err))
		return
	}
	r.old = strings.TrimSpace(out)
	// The newest version the archive has, if newer than the root's.
	out, err = host("apt-cache", "madison", "apache2-bin")
	if err != nil {
		fail(err)
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 2 {
			continue
		}
		v := strings.TrimSpace(f[1])
		if _, err := host("dpkg", "--compare-versions", v, "gt", r.old); err != nil {
			continue
		}
		if r.new == "" {
			r.new = v
		} else if _, err := host("dpkg", "--compare-versions", v, "gt", r.new); err == nil {
			r.new = v
		}
	}
	// When the archive has nothing newer (a point release caught up with
	// the security archive): the root's own version, repacked higher.
	repack := r.new == ""
	if repack {
		r.new = r.old + "+drainctl1"
	}
	apt := []string{"apt-get", "-s", "-o", "Dir::State::status=" + status, "--no-install-recommends", "install"}
	uu, err := host(append(apt, "unattended-upgrades")...)
	if err != nil {
		fail(err)
		return
	}
	var want []string
	for _, p := range apachePackages {
		want = append(want, p+"="+r.new)
	}
	var ap string
	if !repack {
		if ap, err = host(append(apt, want...)...); err != nil {
			fail(err)
			return
		}
	}
	// "Inst NAME [OLD] (VERSION ORIGIN [ARCH])"
	inst := regexp.MustCompile(`(?m)^Inst (\S+) (?:\[[^]]*\] )?\((\S+) `)
	seen := map[string]bool{}
	var get []string
	for _, m := range inst.FindAllStringSubmatch(uu+ap, -1) {
		if p := m[1] + "=" + m[2]; !seen[p] {
			seen[p] = true
			get = append(get, p)
		}
	}
	if repack {
		for _, p := range apachePackages {
			get = append(get, p+"="+r.old)
		}
	}
	if _, err := host(append([]string{"apt-get", "download", "-q"}, get...)...); err != nil {
		fail(err)
		return
	}
	if repack {
		if err := r.repack(host); err != nil {
			fail(err)
			return
		}
	}
	packages, err := host("dpkg-scanpackages", "-m", ".", "/dev/null")
	if err != nil {
		fail(err)
		return
	}
	sum := sha256.Sum256([]byte(packages))
	release := fmt.Sprintf("Origin: Debian\nLabel: Debian-Security\nSuite: bookworm-security\nCodename: bookworm-security\n"+
		"Date: %s\nArchitectures: amd64 all\nComponents: main\nDescription: issue 25's upgrade, for the test\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Format(time.RFC1123), hex.EncodeToString(sum[:]), len(packages))
	for name, b := range map[string]string{"Packages": packages, "Release": release} {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(b), 0o644); err != nil {
			fail(err)
			return
		}
	}
}

// repack gives the root's Apache packages, downloaded, the version r.new:
// in their control files every mention of r.old (Version, and the
// packages' = dependencies on each other).
func (r *upgradeRepo) repack(host func(args ...string) (string, error)) error {
	tmp, err := os.MkdirTemp("", "drainctl-repack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range apachePackages {
		debs, _ := filepath.Glob(filepath.Join(r.dir, p+"_*.deb"))
		if len(debs) != 1 {
			return fmt.Errorf("repack %s: downloaded %v", p, debs)
		}
		tree := filepath.Join(tmp, p)
		if _, err := host("dpkg-deb", "-R", debs[0], tree); err != nil {
			return err
		}
		control := filepath.Join(tree, "DEBIAN", "control")
		b, err := os.ReadFile(control)
		if err != nil {
			return err
		}
		if err := os.WriteFile(control, []byte(strings.ReplaceAll(string(b), r.old, r.new)), 0o644); err != nil {
			return err
		}
		if _, err := host("dpkg-deb", "-b", tree, filepath.Join(r.dir, p+"_repacked.deb")); err != nil {
			return err
		}
		if err := os.Remove(debs[0]); err != nil {
			return err
		}
	}
	return nil
}

// wait waits for build and fails the test if it failed.
func (r *upgradeRepo) wait(t *testing.T) {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatalf("the upgrade's repository: %v", r.err)
	}
}

// install (before the load) makes the repository the container's only
// source and installs unattended-upgrades from it, as a site has it.
func (r *upgradeRepo) install(t *testing.T, c *nspawn.Container) {
	t.Helper()
	r.wait(t)
	t.Logf("repository with apache2 %s (the root has %s) ready after %v", r.new, r.old, r.took.Round(time.Millisecond))
	csh(t, c, fmt.Sprintf(`set -e
echo 'deb [trusted=yes] file:%s ./' > /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends unattended-upgrades >/dev/null`, repoInside))
	if out := csh(t, c, "apt-get -s upgrade | grep '^Inst' || true"); !strings.Contains(out, "Inst apache2-bin ") {
		t.Fatalf("apache2-bin not upgradable from the repository:\n%s", out)
	}
	r.mainPID = unitPID(t, c, "apache2")
}

// postinst is what the upgrade's restart of Apache runs in: apache2's
// postinst, whose last lines (debhelper's) restart apache2.service. The
// download starts when it appears: unattended-upgrade spends 2 to 16 s
// (idle to busy) in python, apt and dpkg's unpack before, and apt's hooks
// (DPkg::Pre-Invoke, Pre-Install-Pkgs) fire before the unpack.
const postinst = "/var/lib/dpkg/info/apache2.postinst"

// upgrade runs unattended-upgrade, as apt-daily-upgrade.service does, and
// starts the download once apache2's postinst runs.
func (r *upgradeRepo) upgrade(t *testing.T, c *nspawn.Container, start func()) {
	t.Helper()
	begin := time.Now()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := c.Sh(ctx, "unattended-upgrade -v 2>&1")
		done <- result{out, err}
	}()
	var res result
	var seen time.Time
	// The host sees the container's processes in its /proc.
	for seen.IsZero() {
		if runningIn(c.InitPID(), postinst) {
			seen = time.Now()
			start()
			res = <-done
			break
		}
		select {
		case res = <-done:
			t.Fatalf("unattended-upgrade ran no %s: %v\n%s", postinst, res.err, res.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if res.err != nil {
		t.Fatalf("unattended-upgrade: %v", res.err)
	}
	t.Logf("unattended-upgrade in %v (apache2's postinst after %v):\n%s", time.Since(begin).Round(time.Millisecond),
		seen.Sub(begin).Round(time.Millisecond), res.out)
}

// runningIn tells whether a process whose command line contains s runs
// in the PID namespace of the process init (a container's: not another
// test's container).
func runningIn(init int, s string) bool {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), s) {
			if pns, err := os.Readlink(filepath.Join(filepath.Dir(p), "ns", "pid")); err == nil && pns == ns {
				return true
			}
		}
	}
	return false
}

// check: the new version installed, and Apache runs it: a new main
// process whose binary is the file on disk (not a deleted one).
func (r *upgradeRepo) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2-bin")); v != r.new {
		t.Fatalf("apache2-bin %s after the upgrade, want %s", v, r.new)
	}
	pid := unitPID(t, c, "apache2")
	exe := strings.TrimSpace(csh(t, c, fmt.Sprintf("readlink /proc/%d/exe", pid)))
	if pid == r.mainPID || exe != "/usr/sbin/apache2" {
		t.Fatalf("Apache does not run the new binary: main PID %d (before %d), exe %q", pid, r.mainPID, exe)
	}
	t.Logf("Apache runs %s: main PID %d (before %d), exe %s", r.new, pid, r.mainPID, exe)
}
