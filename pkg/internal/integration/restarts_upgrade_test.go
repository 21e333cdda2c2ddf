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
// restarts apache2.service. Run twice: the second time, with HAProxy's
// timeout connect at Debian's 5 s, to the newer version repacked higher
// (the repository's second/, made once the first is ready).
//
// The repository also serves what scenario 5 takes (needrestart and its
// dependencies, and the root's own libapr1, to replace under Apache:
// restarts_needrestart_test.go).

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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// repoInside is where the repository is bound in the container.
const repoInside = "/srv/upgrade-repo"

// apachePackages are the binary packages of Debian's apache2 source that
// the root holds and the upgrade replaces.
var apachePackages = []string{"apache2", "apache2-bin", "apache2-data", "apache2-utils"}

// secondDir is the repository's subdirectory (a repository of its own)
// with the second upgrade's packages.
const secondDir = "second"

// upgradeRepo is the repository: made empty before the boot (a bind needs
// it), filled by build on the host.
type upgradeRepo struct {
	dir      string
	old, new string // apache2-bin's version in the root, and in the repository
	newer    string // in second/: new repacked higher
	config   string // in config/: apache2 alone, new repacked higher (restarts_reload_test.go)
	lib      string // libapr1's version in the root (and the repository)
	// done is closed when the repository is ready (err says whether),
	// secondDone when second/ is (secondErr).
	done, secondDone chan struct{}
	err, secondErr   error
	took, secondTook time.Duration
}

func newUpgradeRepo(t *testing.T) *upgradeRepo {
	t.Helper()
	dir := t.TempDir()
	// apt's file: method reads it as _apt.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &upgradeRepo{dir: dir, done: make(chan struct{}), secondDone: make(chan struct{})}
}

// hostCmd runs a command on the host in dir, and returns its output or
// an error with its output.
func hostCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
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

// build fills the repository, then second/, for the container whose
// root is root (on the host).
func (r *upgradeRepo) build(root string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	r.err = r.buildFirst(ctx, root)
	r.took = time.Since(begin)
	close(r.done)
	if r.err != nil {
		r.secondErr = fmt.Errorf("no repository for it: %w", r.err)
	} else {
		r.secondErr = errors.Join(r.buildSecond(ctx), r.buildConfig(ctx))
	}
	r.secondTook = time.Since(begin)
	close(r.secondDone)
}

// buildFirst: apt on the host, given the container's dpkg status, says
// what installing unattended-upgrades, needrestart and the newer Apache
// takes; those versions are downloaded from the archive, with the root's
// libapr1.
func (r *upgradeRepo) buildFirst(ctx context.Context, root string) error {
	status := filepath.Join(root, "var/lib/dpkg/status")
	host := func(args ...string) (string, error) { return hostCmd(ctx, r.dir, args...) }
	for p, v := range map[string]*string{"apache2-bin": &r.old, "libapr1": &r.lib} {
		out, err := host("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Version}", p)
		if err != nil {
			return fmt.Errorf("the root's %s: %w", p, err)
		}
		*v = strings.TrimSpace(out)
	}
	// The newest version the archive has, if newer than the root's.
	out, err := host("apt-cache", "madison", "apache2-bin")
	if err != nil {
		return err
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
	uu, err := host(append(apt, "unattended-upgrades", "needrestart")...)
	if err != nil {
		return err
	}
	var want []string
	for _, p := range apachePackages {
		want = append(want, p+"="+r.new)
	}
	var ap string
	if !repack {
		if ap, err = host(append(apt, want...)...); err != nil {
			return err
		}
	}
	// "Inst NAME [OLD] (VERSION ORIGIN [ARCH])"
	inst := regexp.MustCompile(`(?m)^Inst (\S+) (?:\[[^]]*\] )?\((\S+) `)
	seen := map[string]bool{}
	get := []string{"libapr1=" + r.lib}
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
		return err
	}
	if repack {
		if err := repackApache(host, r.dir, r.dir, r.old, r.new, true); err != nil {
			return err
		}
	}
	return writeIndex(host, r.dir)
}

// buildSecond makes second/: the repository's Apache packages repacked
// with version newer.
func (r *upgradeRepo) buildSecond(ctx context.Context) error {
	dir := filepath.Join(r.dir, secondDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	r.newer = r.new + "+drainctl2"
	host := func(args ...string) (string, error) { return hostCmd(ctx, dir, args...) }
	if err := repackApache(host, r.dir, dir, r.new, r.newer, false); err != nil {
		return err
	}
	return writeIndex(host, dir)
}

// writeIndex writes the repository's Packages and Release in dir (host
// runs there), the Release naming unattended-upgrades' default origin.
func writeIndex(host func(args ...string) (string, error), dir string) error {
	packages, err := host("dpkg-scanpackages", "-m", ".", "/dev/null")
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(packages))
	release := fmt.Sprintf("Origin: Debian\nLabel: Debian-Security\nSuite: bookworm-security\nCodename: bookworm-security\n"+
		"Date: %s\nArchitectures: amd64 all\nComponents: main\nDescription: issue 25's upgrade, for the test\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Format(time.RFC1123), hex.EncodeToString(sum[:]), len(packages))
	for name, b := range map[string]string{"Packages": packages, "Release": release} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// repackApache repacks the Apache packages of version from in src as
// version to, into dst: in their control files every mention of from
// (Version, and the packages' = dependencies on each other). remove
// removes the originals (the repository must not have both).
func repackApache(host func(args ...string) (string, error), src, dst, from, to string, remove bool) error {
	return repackPackages(host, apachePackages, src, dst, from, to, remove)
}

// repackPackages is repackApache for the packages pkgs (nginx's too:
// restarts_nginx_test.go).
func repackPackages(host func(args ...string) (string, error), pkgs []string, src, dst, from, to string, remove bool) error {
	tmp, err := os.MkdirTemp("", "drainctl-repack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range pkgs {
		debs, _ := filepath.Glob(filepath.Join(src, p+"_*.deb"))
		if len(debs) != 1 {
			return fmt.Errorf("repack %s: found %v", p, debs)
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
		if err := os.WriteFile(control, []byte(strings.ReplaceAll(string(b), from, to)), 0o644); err != nil {
			return err
		}
		// Uncompressed: xz would take seconds, for a repository read once.
		if _, err := host("dpkg-deb", "-Znone", "-b", tree, filepath.Join(dst, p+"_repacked.deb")); err != nil {
			return err
		}
		if remove {
			if err := os.Remove(debs[0]); err != nil {
				return err
			}
		}
	}
	return nil
}

// wait waits for build (second: for second/ too) and fails the test if
// it failed.
func (r *upgradeRepo) wait(t *testing.T, second bool) {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatalf("the upgrade's repository: %v", r.err)
	}
	if second {
		<-r.secondDone
		if r.secondErr != nil {
			t.Fatalf("the second upgrade's repository: %v", r.secondErr)
		}
	}
}

// upgradeRun is one of the scenario's runs: the first upgrade (the
// root's Apache to the repository's) or the second (to second/'s).
type upgradeRun struct {
	r        *upgradeRepo
	second   bool
	from, to string
	mainPID  int // Apache's before the upgrade
}

func (r *upgradeRepo) run(second bool) *upgradeRun { return &upgradeRun{r: r, second: second} }

// install (before the load) makes the repository (and second/, for the
// second) the container's only source and installs unattended-upgrades
// from it, as a site has it.
func (u *upgradeRun) install(t *testing.T, c *nspawn.Container) {
	t.Helper()
	r := u.r
	r.wait(t, u.second)
	sources := fmt.Sprintf("deb [trusted=yes] file:%s ./\n", repoInside)
	if u.from, u.to = r.old, r.new; u.second {
		u.from, u.to = r.new, r.newer
		sources += fmt.Sprintf("deb [trusted=yes] file:%s/%s ./\n", repoInside, secondDir)
		t.Logf("repository with apache2 %s ready after %v", r.newer, r.secondTook.Round(time.Millisecond))
	} else {
		t.Logf("repository with apache2 %s (the root has %s) ready after %v", r.new, r.old, r.took.Round(time.Millisecond))
	}
	csh(t, c, fmt.Sprintf(`set -e
printf '%s' > /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends unattended-upgrades >/dev/null`, sources))
	if out := csh(t, c, "apt-get -s upgrade | grep '^Inst' || true"); !strings.Contains(out, "Inst apache2-bin ["+u.from+"] ("+u.to+" ") {
		t.Fatalf("apache2-bin not upgradable from %s to %s from the repository:\n%s", u.from, u.to, out)
	}
	u.mainPID = unitPID(t, c, "apache2")
}

// postinst is what the upgrade's restart of Apache runs in: apache2's
// postinst, whose last lines (debhelper's) restart apache2.service. The
// download starts when it appears: unattended-upgrade spends 2 to 16 s
// (idle to busy) in python, apt and dpkg's unpack before, and apt's hooks
// (DPkg::Pre-Invoke, Pre-Install-Pkgs) fire before the unpack.
const postinst = "/var/lib/dpkg/info/apache2.postinst"

// upgrade runs unattended-upgrade, as apt-daily-upgrade.service does, and
// starts the download once apache2's postinst runs.
func (u *upgradeRun) upgrade(t *testing.T, c *nspawn.Container, start func()) {
	t.Helper()
	runSeeing(t, c, "unattended-upgrade -v 2>&1", postinst, start)
}

// runSeeing runs script in the container and, once a process whose
// command line contains marker runs there, stops it (SIGSTOP), calls
// start and lets it go on (SIGCONT): the download is then in flight,
// its answer begun, before what the process goes on to do (restart
// Apache). Without the pause it could still wait for its first byte when
// the load balancer confirms the server out (needrestart restarts Apache
// 0.2 s after it starts, a postinst 1 to 3 s), and the drain does not
// count such a request as in flight (a new connection whose answer has
// not begun: measured, reported). It fails the test if the script fails
// or never ran one.
func runSeeing(t *testing.T, c *nspawn.Container, script, marker string, start func()) {
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
		out, err := c.Sh(ctx, script)
		done <- result{out, err}
	}()
	var res result
	var seen time.Time
	var paused time.Duration
	// The host sees the container's processes in its /proc.
	for seen.IsZero() {
		if pids := pidsIn(c.InitPID(), marker); len(pids) > 0 {
			seen = time.Now()
			func() {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGSTOP)
				}
				defer func() {
					for _, pid := range pids {
						_ = syscall.Kill(pid, syscall.SIGCONT)
					}
					paused = time.Since(seen)
				}()
				start()
			}()
			res = <-done
			break
		}
		select {
		case res = <-done:
			t.Fatalf("%s ran no %s: %v\n%s", script, marker, res.err, res.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if res.err != nil {
		t.Fatalf("%s: %v\n%s", script, res.err, res.out)
	}
	t.Logf("%s in %v (%s after %v, paused %v while the download started):\n%s", script, time.Since(begin).Round(time.Millisecond),
		marker, seen.Sub(begin).Round(time.Millisecond), paused.Round(time.Millisecond), res.out)
}

// pidsIn is the processes whose command line contains s in the PID
// namespace of the process init (a container's: not another test's
// container).
func pidsIn(init int, s string) []int {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return nil
	}
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), s) {
			if pns, err := os.Readlink(filepath.Join(filepath.Dir(p), "ns", "pid")); err == nil && pns == ns {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// check: the new version installed, and Apache runs it: a new main
// process whose binary is the file on disk (not a deleted one).
func (u *upgradeRun) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2-bin")); v != u.to {
		t.Fatalf("apache2-bin %s after the upgrade, want %s", v, u.to)
	}
	pid := unitPID(t, c, "apache2")
	exe := strings.TrimSpace(csh(t, c, fmt.Sprintf("readlink /proc/%d/exe", pid)))
	if pid == u.mainPID || exe != "/usr/sbin/apache2" {
		t.Fatalf("Apache does not run the new binary: main PID %d (before %d), exe %q", pid, u.mainPID, exe)
	}
	t.Logf("Apache runs %s: main PID %d (before %d), exe %s", u.to, pid, u.mainPID, exe)
}

// checkSeen is check, and the history's reason for the restart: the
// agent saw the binary replaced (it reads Apache's /proc/PID/exe and
// maps: CAP_SYS_PTRACE in its sandbox), it did not restart because it
// could not tell. TestSystemdEveryRestart's first upgrade only: there
// the history's last entries hold that restart.
func (u *upgradeRun) checkSeen(t *testing.T, c *nspawn.Container) {
	t.Helper()
	u.check(t, c)
	if action := lastOwedAction(t, c); !strings.HasPrefix(action, "restart: /usr/sbin/apache2") || !strings.Contains(action, " replaced: a new process") {
		t.Errorf("the last restart owed did %q, want a restart for /usr/sbin/apache2 replaced", action)
	}
}
