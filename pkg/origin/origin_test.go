package origin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProc is one process of a fake /proc tree.
type fakeProc struct {
	pid, ppid int
	comm      string   // stat's name; argv[0]'s (or argv[1]'s, for a script) base cut to 15 bytes when empty
	argv      []string // the command line
	uid       string   // loginuid; "" for none (4294967295)
	tty       int      // tty_nr
	start     uint64   // starttime
	env       []string // environ
	fd0       string   // where fd/0 points, "" for nowhere
}

// writeProcs lays a fake /proc out under root: stat, cmdline, loginuid,
// environ and fd/0 for each process, and self/cgroup for the caller (the
// guard's ExecStop).
func writeProcs(t *testing.T, root string, ps ...fakeProc) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(root+"/self", 0o755))
	must(os.WriteFile(root+"/self/cgroup", []byte("0::/system.slice/system-drainctl\\x2dguard.slice/drainctl-guard@apache2.service\n"), 0o644))
	for _, p := range ps {
		dir := fmt.Sprintf("%s/%d", root, p.pid)
		must(os.MkdirAll(dir+"/fd", 0o755))
		comm := p.comm
		if comm == "" {
			comm = filepath.Base(p.argv[0])
			if len(p.argv) > 1 && (strings.HasSuffix(p.argv[0], "/sh") || strings.HasSuffix(p.argv[0], "/perl") || strings.HasPrefix(filepath.Base(p.argv[0]), "python")) {
				comm = filepath.Base(p.argv[1])
			}
			comm = comm[:min(15, len(comm))]
		}
		start := p.start
		if start == 0 {
			start = uint64(1000 + p.pid)
		}
		stat := fmt.Sprintf("%d (%s) S %d %d %d %d -1 4194560 100 0 0 0 1 1 0 0 20 0 1 0 %d 1000000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
			p.pid, comm, p.ppid, p.pid, p.pid, p.tty, start)
		must(os.WriteFile(dir+"/stat", []byte(stat), 0o644))
		must(os.WriteFile(dir+"/cmdline", []byte(strings.Join(p.argv, "\x00")+"\x00"), 0o644))
		uid := p.uid
		if uid == "" {
			uid = "4294967295"
		}
		must(os.WriteFile(dir+"/loginuid", []byte(uid), 0o644))
		must(os.WriteFile(dir+"/environ", []byte(strings.Join(p.env, "\x00")), 0o644))
		if p.fd0 != "" {
			must(os.Symlink(p.fd0, dir+"/fd/0"))
		}
	}
}

// fakeRunner answers the commands Of runs, by command line.
type fakeRunner struct {
	mu      sync.Mutex
	answers map[string]string // "systemctl list-jobs ..." → output; missing: an error
	ran     []string
}

func (r *fakeRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, line)
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("no deadline: Of must bound every command")
	}
	for prefix, out := range r.answers {
		if strings.HasPrefix(line, prefix) {
			return []byte(out), nil
		}
	}
	return nil, fmt.Errorf("%s: exit status 1", line)
}

func (r *fakeRunner) didRun(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.ran {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

const (
	listJobs = "systemctl list-jobs"
	sysState = "systemctl is-system-running"
	pts0     = 136 << 8 // tty_nr of /dev/pts/0
)

// What systemd 252 (Debian 12) listed during the guard's ExecStop, in a
// container: for `systemctl restart apache2` (try-restart and
// deb-systemd-invoke's restart list the same) and `systemctl stop apache2`.
const (
	jobsRestart = "187 apache2.service                restart waiting\n241 drainctl-guard@apache2.service restart running\n"
	jobsStop    = "293 apache2.service                stop waiting\n294 drainctl-guard@apache2.service stop running\n"
)

// jobsReboot is the job list during `systemctl reboot` (a part of it:
// 36 jobs), as systemd 252 listed it.
const jobsReboot = `424 dbus.socket                                                       stop  waiting
406 reboot.target                                                     start waiting
416 shutdown.target                                                   start waiting
469 apache2.service                                                   stop  running
473 drainctl-guard@apache2.service                                    stop  running
408 umount.target                                                     start waiting
519 final.target                                                      start waiting
407 systemd-reboot.service                                            start waiting
420 basic.target                                                      stop  waiting
`

// base is what runs on any host: systemd, sshd, a shell of bob's,
// Apache, drainctl's agent and the guard's hook itself (the caller).
func base() []fakeProc {
	return []fakeProc{
		{pid: 1, ppid: 0, argv: []string{"/sbin/init"}, comm: "systemd"},
		{pid: 300, ppid: 1, argv: []string{"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}, comm: "sshd"},
		{pid: 310, ppid: 300, argv: []string{"-bash"}, comm: "bash", uid: "1001", tty: pts0 + 1},
		{pid: 400, ppid: 1, argv: []string{"/usr/sbin/apache2", "-k", "start"}},
		{pid: 401, ppid: 400, argv: []string{"/usr/sbin/apache2", "-k", "start"}},
		{pid: 450, ppid: 1, argv: []string{"/usr/bin/drainctl", "agent"}},
		// A name with a space and parentheses: stat's COMM ends at the last ')'.
		{pid: 460, ppid: 1, argv: []string{"/usr/bin/odd"}, comm: "a) (b"},
		{pid: 900, ppid: 1, argv: []string{"/usr/bin/drainctl", "hook", "stopping", "apache2.service"}},
		// A zombie systemctl is no ask.
		{pid: 910, ppid: 1, argv: nil, comm: "systemctl"},
	}
}

func users(uid string) string {
	return map[string]string{"0": "root", "1000": "alice", "1001": "bob"}[uid]
}

// of runs Of on a fake /proc of ps with the runner's answers.
func of(t *testing.T, unit string, answers map[string]string, ps ...fakeProc) (Origin, *fakeRunner) {
	t.Helper()
	root := t.TempDir()
	writeProcs(t, root, append(base(), ps...)...)
	// The zombie: state Z.
	stat, err := os.ReadFile(root + "/910/stat")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+"/910/stat", []byte(strings.Replace(string(stat), ") S ", ") Z ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{answers: answers}
	f := finder{procfs: root, self: 900, run: r.run, lookupUser: users}
	o := f.of(context.Background(), unit)
	t.Logf("%+v", o)
	return o, r
}

func check(t *testing.T, got, want Origin) {
	t.Helper()
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// unattended-upgrades upgrading apache2: dpkg configures it, its postinst
// restarts it through deb-systemd-invoke (the chain as Debian 12 runs it).
func TestDpkgUnderUnattendedUpgrades(t *testing.T) {
	o, r := of(t, "apache2.service", map[string]string{listJobs: jobsRestart, "dpkg-query -W -f ${Version} apache2": "2.4.71-1~deb12u1"},
		fakeProc{pid: 1000, ppid: 1, argv: []string{"/bin/sh", "/usr/lib/apt/apt.systemd.daily", "install"}},
		fakeProc{pid: 1010, ppid: 1000, argv: []string{"/usr/bin/python3", "/usr/bin/unattended-upgrade"}},
		fakeProc{pid: 1020, ppid: 1010, argv: []string{"/usr/bin/dpkg", "--status-fd", "11", "--no-triggers", "--configure", "apache2:amd64"}},
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"/bin/sh", "/var/lib/dpkg/info/apache2.postinst", "configure", "2.4.68-1~deb12u1"},
			env: []string{"DPKG_MAINTSCRIPT_PACKAGE=apache2", "DPKG_MAINTSCRIPT_NAME=postinst"}},
		fakeProc{pid: 1040, ppid: 1030, argv: []string{"/usr/bin/perl", "/usr/bin/deb-systemd-invoke", "restart", "apache2.service"}},
		fakeProc{pid: 1050, ppid: 1040, argv: []string{"systemctl", "--quiet", "--system", "restart", "apache2.service"}},
	)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindUnattended,
		Text: "unattended-upgrades: dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1"})
	if !o.Restart() {
		t.Error("not a restart")
	}
	// unattended-upgrade forks a child of its own name that runs dpkg (seen
	// in the systemd tier): named once.
	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsRestart, "dpkg-query -W -f ${Version} apache2": "2.4.71-1~deb12u1"},
		fakeProc{pid: 1010, ppid: 1, argv: []string{"/usr/bin/python3", "/usr/bin/unattended-upgrade"}},
		fakeProc{pid: 1015, ppid: 1010, argv: []string{"/usr/bin/python3", "/usr/bin/unattended-upgrade"}},
		fakeProc{pid: 1020, ppid: 1015, argv: []string{"/usr/bin/dpkg", "--configure", "apache2:amd64"}},
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"/bin/sh", "/var/lib/dpkg/info/apache2.postinst", "configure", "2.4.68-1~deb12u1"}},
		fakeProc{pid: 1050, ppid: 1030, argv: []string{"systemctl", "restart", "apache2.service"}},
	)
	if o.Text != "unattended-upgrades: dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1" {
		t.Errorf("with unattended-upgrade's child: %q", o.Text)
	}
	if r.didRun(sysState) {
		t.Error("asked systemd's state during a restart: never a shutdown")
	}
}

// `dpkg -i` by hand (a root shell of alice's, through sudo) of a package
// whose postinst restarts the unit, and apt upgrading one.
func TestDpkg(t *testing.T) {
	answers := map[string]string{listJobs: jobsRestart, "dpkg-query -W -f ${Version} libapache2-mod-php8.2:amd64": "8.2.36-1~deb12u1"}
	alice := []fakeProc{
		{pid: 1000, ppid: 300, argv: []string{"-bash"}, comm: "bash", uid: "1000", tty: pts0},
		{pid: 1010, ppid: 1000, argv: []string{"sudo", "-i"}, uid: "1000", tty: pts0},
		{pid: 1020, ppid: 1010, argv: []string{"-bash"}, comm: "bash", uid: "1000", tty: pts0},
	}
	script := []fakeProc{
		{pid: 1040, ppid: 1030, argv: []string{"/bin/sh", "/var/lib/dpkg/info/libapache2-mod-php8.2:amd64.postinst", "configure", "8.2.35-1~deb12u1"}, uid: "1000", tty: pts0},
		{pid: 1050, ppid: 1040, argv: []string{"/bin/sh", "/usr/sbin/invoke-rc.d", "apache2", "restart"}, uid: "1000", tty: pts0},
		{pid: 1060, ppid: 1050, argv: []string{"systemctl", "restart", "apache2.service"}, uid: "1000", tty: pts0},
	}
	o, _ := of(t, "apache2", answers, append(append(alice,
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"dpkg", "-i", "/tmp/libapache2-mod-php8.2.deb"}, uid: "1000", tty: pts0}), script...)...)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindDpkg,
		Text: "dpkg: libapache2-mod-php8.2 8.2.35-1~deb12u1 → 8.2.36-1~deb12u1 by alice (pts/0)"})

	o, _ = of(t, "apache2", answers, append(append(alice,
		fakeProc{pid: 1025, ppid: 1020, argv: []string{"apt-get", "-o", "Dpkg::Options::=--force-confold", "-y", "upgrade"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1030, ppid: 1025, argv: []string{"/usr/bin/dpkg", "--status-fd", "45", "--configure", "--pending"}, uid: "1000", tty: pts0}), script...)...)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindApt,
		Text: "apt-get upgrade: dpkg: libapache2-mod-php8.2 8.2.35-1~deb12u1 → 8.2.36-1~deb12u1 by alice (pts/0)"})
}

// A maintainer script that exec'd its last command (nginx's postinst:
// exec invoke-rc.d) is gone from the chain: dpkg's environment names the
// package.
func TestDpkgScriptExecd(t *testing.T) {
	o, _ := of(t, "nginx.service", map[string]string{listJobs: "5 nginx.service restart waiting\n", "dpkg-query -W -f ${Version} nginx": "1.22.1-9+deb12u12"},
		fakeProc{pid: 1020, ppid: 1, argv: []string{"dpkg", "--configure", "-a"}},
		fakeProc{pid: 1050, ppid: 1020, argv: []string{"/bin/sh", "/usr/sbin/invoke-rc.d", "nginx", "restart"},
			env: []string{"PATH=/usr/bin", "DPKG_MAINTSCRIPT_PACKAGE=nginx", "DPKG_MAINTSCRIPT_NAME=postinst"}},
		fakeProc{pid: 1060, ppid: 1050, argv: []string{"systemctl", "restart", "nginx.service"},
			env: []string{"PATH=/usr/bin", "DPKG_MAINTSCRIPT_PACKAGE=nginx", "DPKG_MAINTSCRIPT_NAME=postinst"}},
	)
	check(t, o, Origin{Job: "restart", Kind: KindDpkg, Text: "dpkg: nginx 1.22.1-9+deb12u12"})
}

// needrestart restarting Apache: run by apt's hook (alice's apt-get
// upgrade), and on its own from a service (no user, no terminal).
func TestNeedrestart(t *testing.T) {
	o, _ := of(t, "apache2.service", map[string]string{listJobs: jobsRestart},
		fakeProc{pid: 1000, ppid: 300, argv: []string{"-bash"}, comm: "bash", uid: "1000", tty: pts0},
		fakeProc{pid: 1010, ppid: 1000, argv: []string{"apt-get", "upgrade"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1020, ppid: 1010, argv: []string{"sh", "-c", "test -x /usr/lib/needrestart/apt-pinvoke && /usr/lib/needrestart/apt-pinvoke -m u || true"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"/usr/bin/perl", "/usr/sbin/needrestart", "-m", "u"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1040, ppid: 1030, argv: []string{"systemctl", "restart", "apache2.service"}, uid: "1000", tty: pts0},
	)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindNeedrestart, Text: "apt-get upgrade: needrestart by alice (pts/0)"})

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsRestart},
		fakeProc{pid: 1030, ppid: 1, argv: []string{"/usr/bin/perl", "/usr/sbin/needrestart", "-r", "a"}},
		fakeProc{pid: 1040, ppid: 1030, argv: []string{"systemctl", "restart", "apache2.service"}},
	)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindNeedrestart, Text: "needrestart"})

	// Under unattended-upgrades (apt's hook runs it there too): the
	// automatic upgrade is who asked.
	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsRestart},
		fakeProc{pid: 1010, ppid: 1, argv: []string{"/usr/bin/python3", "/usr/bin/unattended-upgrade"}},
		fakeProc{pid: 1020, ppid: 1010, argv: []string{"/bin/sh", "-c", "/usr/lib/needrestart/apt-pinvoke -m u"}},
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"/usr/bin/perl", "/usr/sbin/needrestart", "-m", "u"}},
		fakeProc{pid: 1040, ppid: 1030, argv: []string{"systemctl", "restart", "apache2.service"}},
	)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindUnattended, Text: "unattended-upgrades: needrestart"})
}

// `systemctl restart apache2` by alice on pts/0, through sudo; then
// `systemctl stop`, where systemd's state is asked too (running).
func TestSystemctlByUser(t *testing.T) {
	alice := []fakeProc{
		{pid: 1000, ppid: 300, argv: []string{"-bash"}, comm: "bash", uid: "1000", tty: pts0},
		{pid: 1010, ppid: 1000, argv: []string{"sudo", "systemctl", "restart", "apache2"}, uid: "1000", tty: pts0},
	}
	o, _ := of(t, "apache2.service", map[string]string{listJobs: jobsRestart},
		append(alice, fakeProc{pid: 1020, ppid: 1010, argv: []string{"systemctl", "restart", "apache2"}, uid: "1000", tty: pts0})...)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindSystemctl, Text: "systemctl restart apache2 by alice (pts/0)"})

	// No controlling terminal (a pipe's session), but stdin is the terminal.
	o, r := of(t, "apache2.service", map[string]string{listJobs: jobsStop, sysState: "running\n"},
		append(alice, fakeProc{pid: 1020, ppid: 1010, argv: []string{"systemctl", "stop", "apache2.service"}, uid: "1000", fd0: "/dev/pts/7"})...)
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Kind: KindSystemctl, Text: "systemctl stop apache2.service by alice (pts/0)"})
	if o.Restart() || !r.didRun(sysState) {
		t.Errorf("a stop: Restart %v, systemd's state asked %v", o.Restart(), r.didRun(sysState))
	}

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsStop, sysState: "running\n"},
		fakeProc{pid: 1020, ppid: 1, argv: []string{"systemctl", "stop", "apache2.service"}, fd0: "/dev/pts/7"})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Kind: KindSystemctl, Text: "systemctl stop apache2.service (pts/7)"})
}

// The guard stopped alone: the web server has no job, so it stays up.
func TestGuardAlone(t *testing.T) {
	o, _ := of(t, "apache2.service", map[string]string{listJobs: "566 drainctl-guard@apache2.service stop running\n", sysState: "running"},
		fakeProc{pid: 1020, ppid: 1, argv: []string{"systemctl", "stop", "drainctl-guard@apache2.service"}})
	check(t, o, Origin{GuardJob: "stop", Kind: KindSystemctl, Text: "systemctl stop drainctl-guard@apache2.service"})
}

// A reboot: the systemctl that asked is gone, the job list tells
// (reboot.target's start job); unattended-upgrades' Automatic-Reboot
// (shutdown -r) still waiting; a poweroff known from systemd's state
// alone.
func TestShutdown(t *testing.T) {
	o, r := of(t, "apache2.service", map[string]string{listJobs: jobsReboot},
		// A dpkg of the moment did not ask for the shutdown.
		fakeProc{pid: 1020, ppid: 1, argv: []string{"dpkg", "--configure", "-a"}})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Shutdown: true, Reboot: true, Kind: KindShutdown, Text: "shutdown (reboot)"})
	if o.Restart() || r.didRun(sysState) {
		t.Errorf("Restart %v; systemd's state asked though the job list told: %v", o.Restart(), r.didRun(sysState))
	}

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsReboot},
		fakeProc{pid: 1010, ppid: 1, argv: []string{"/usr/bin/python3", "/usr/bin/unattended-upgrade"}},
		fakeProc{pid: 1020, ppid: 1010, argv: []string{"/sbin/shutdown", "-r", "now"}})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Shutdown: true, Reboot: true, Kind: KindShutdown, Text: "unattended-upgrades: shutdown (reboot)"})

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsStop, sysState: "stopping\n"})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Shutdown: true, Kind: KindShutdown, Text: "shutdown"})

	o, _ = of(t, "apache2.service", map[string]string{listJobs: strings.ReplaceAll(jobsReboot, "reboot.target", "poweroff.target")})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Shutdown: true, Kind: KindShutdown, Text: "shutdown (poweroff)"})
}

// drainctl's own asks: the agent's restart command, its reboot command
// (drainctl maintenance reboot), and a package upgrade inside
// `drainctl maintenance run`.
func TestDrainctl(t *testing.T) {
	o, _ := of(t, "apache2.service", map[string]string{listJobs: jobsRestart},
		fakeProc{pid: 1020, ppid: 450, argv: []string{"systemctl", "restart", "apache2.service"}})
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindDrainctl, Text: "drainctl agent: systemctl restart apache2.service"})

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsReboot},
		fakeProc{pid: 1020, ppid: 450, argv: []string{"systemctl", "reboot"}})
	check(t, o, Origin{Job: "stop", GuardJob: "stop", Shutdown: true, Reboot: true, Kind: KindDrainctl, Text: "drainctl agent: shutdown (reboot)"})

	o, _ = of(t, "apache2.service", map[string]string{listJobs: jobsRestart, "dpkg-query": "2.4.71-1~deb12u1"},
		fakeProc{pid: 1000, ppid: 300, argv: []string{"-bash"}, comm: "bash", uid: "1000", tty: pts0},
		fakeProc{pid: 1010, ppid: 1000, argv: []string{"drainctl", "maintenance", "run", "--reason", "security updates", "--", "apt-get", "-y", "upgrade"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1015, ppid: 1010, argv: []string{"apt-get", "-y", "upgrade"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1020, ppid: 1015, argv: []string{"/usr/bin/dpkg", "--status-fd", "45", "--configure", "--pending"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1030, ppid: 1020, argv: []string{"/bin/sh", "/var/lib/dpkg/info/apache2.postinst", "configure", "2.4.68-1~deb12u1"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1040, ppid: 1030, argv: []string{"/usr/bin/perl", "/usr/bin/deb-systemd-invoke", "restart", "apache2.service"}, uid: "1000", tty: pts0},
		fakeProc{pid: 1050, ppid: 1040, argv: []string{"systemctl", "--quiet", "--system", "restart", "apache2.service"}, uid: "1000", tty: pts0},
	)
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindDrainctl,
		Text: "drainctl maintenance run: apt-get upgrade: dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1 by alice (pts/0)"})
}

// Nothing that asked is left (or it never was a process: a D-Bus call):
// the job still says what systemd does; without the job list either,
// nothing is known, and that is an answer.
func TestNothingFound(t *testing.T) {
	o, _ := of(t, "apache2.service", map[string]string{listJobs: jobsRestart})
	check(t, o, Origin{Job: "restart", GuardJob: "restart", Kind: KindUnknown, Text: "unknown"})

	o, r := of(t, "apache2.service", nil)
	check(t, o, Origin{Kind: KindUnknown, Text: "unknown"})
	if r.didRun(sysState) {
		t.Error("asked systemd's state though its job list failed")
	}

	// No /proc at all.
	f := finder{procfs: filepath.Join(t.TempDir(), "none"), run: (&fakeRunner{}).run, lookupUser: users}
	check(t, f.of(context.Background(), "apache2"), Origin{Kind: KindUnknown, Text: "unknown"})
}

// Without systemd's job list (systemctl failed), the asking command's
// verb is the job.
func TestJobFromCommand(t *testing.T) {
	o, _ := of(t, "apache2.service", nil,
		fakeProc{pid: 1020, ppid: 1, argv: []string{"systemctl", "try-restart", "apache2.service"}})
	check(t, o, Origin{Job: "try-restart", Kind: KindSystemctl, Text: "systemctl try-restart apache2.service"})
	if !o.Restart() {
		t.Error("try-restart is a restart")
	}
	o, _ = of(t, "apache2.service", nil,
		fakeProc{pid: 1020, ppid: 1, argv: []string{"/sbin/reboot"}})
	check(t, o, Origin{Shutdown: true, Reboot: true, Kind: KindShutdown, Text: "shutdown (reboot)"})
}

// Of is bounded whatever the caller's context: a systemctl that never
// answers is given up at the budget, and Of still answers.
func TestBounded(t *testing.T) {
	root := t.TempDir()
	writeProcs(t, root, base()...)
	var deadlines []time.Duration
	var mu sync.Mutex
	hang := func(ctx context.Context, _ string, _ ...string) ([]byte, error) {
		d, _ := ctx.Deadline()
		mu.Lock()
		deadlines = append(deadlines, time.Until(d))
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a caller already out of time: Of answers at once
	f := finder{procfs: root, self: 900, run: hang, lookupUser: users}
	check(t, f.of(ctx, "apache2"), Origin{Kind: KindUnknown, Text: "unknown"})
	if len(deadlines) != 1 || deadlines[0] > budget {
		t.Errorf("the commands' deadlines: %v, want one within %v", deadlines, budget)
	}
}

func TestParseJobs(t *testing.T) {
	l := parseJobs(jobsReboot)
	if !l.known || l.shutdown != "reboot" || !l.reboot || l.byUnit["apache2.service"] != "stop" || l.byUnit["reboot.target"] != "start" || len(l.byUnit) != 9 {
		t.Errorf("%+v", l)
	}
	l = parseJobs("")
	if !l.known || l.shutdown != "" || len(l.byUnit) != 0 {
		t.Errorf("no job: %+v", l)
	}
	// systemctl without --no-legend, or an odd line: only jobs count.
	l = parseJobs("JOB UNIT TYPE STATE\n7 halt.target start waiting\n\n1 jobs listed.\n")
	if l.shutdown != "halt" || l.reboot || len(l.byUnit) != 1 {
		t.Errorf("with a legend: %+v", l)
	}
}

func TestTTYName(t *testing.T) {
	for nr, want := range map[int]string{0: "", 136 << 8: "pts/0", 136<<8 | 5: "pts/5", 137<<8 | 44: "pts/300", 4<<8 | 1: "tty1", 4<<8 | 64: "ttyS0", 5<<8 | 1: "console", 8<<8 | 1: ""} {
		if got := ttyName(nr); got != want {
			t.Errorf("ttyName(%#x) = %q, want %q", nr, got, want)
		}
	}
}
