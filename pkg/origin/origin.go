// Package origin tells who asked systemd to stop or restart a web server
// unit, and what systemd is doing to it, for the guard unit's ExecStop
// hook (drainctl-guard@UNIT.service, PartOf= and After= the web server):
// systemd runs the hook before the web server's own stop, with PID 1 as
// its parent, so the hook cannot learn the caller from its own process.
//
// Two sources, each read once and bounded:
//
//   - systemd's job list (systemctl list-jobs): the job on the web server
//     unit (restart, stop...), the one on the guard itself, and whether a
//     shutdown or reboot target's start job is queued.
//   - the process table (/proc): the command that asked and is still
//     waiting for its job (systemctl, deb-systemd-invoke, invoke-rc.d,
//     needrestart, shutdown...), and its ancestors up to PID 1: a dpkg
//     maintainer script names the package and its versions,
//     unattended-upgrade, apt or needrestart the tool, drainctl the
//     project's own asks, /proc/PID/loginuid and the terminal the person.
//
// Of never fails: what it cannot learn stays empty ("unknown" for Kind).
// The job list is read with systemctl rather than go-systemd's dbus
// package: that package needs github.com/godbus/dbus, not a dependency
// of the project, and systemctl run as root talks to PID 1 over its
// private socket, which stays up during a shutdown (dbus.service is
// stopped alongside the web server).
package origin

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// Kinds of Origin.Kind.
const (
	KindDpkg        = "dpkg"
	KindNeedrestart = "needrestart"
	KindUnattended  = "unattended-upgrades"
	KindApt         = "apt"
	KindSystemctl   = "systemctl"
	KindShutdown    = "shutdown"
	KindDrainctl    = "drainctl"
	KindUnknown     = "unknown"
)

// Origin is who asked systemd to stop or restart a unit, and the job.
type Origin struct {
	// Job is systemd's job on the unit: "restart" (what systemd lists for
	// restart, try-restart and a reload-or-restart of a unit that cannot
	// reload), "stop", ...; "" when it has none or it is unknown. When
	// systemd's list could not be read, the verb of the systemctl command
	// that asked, if one was found.
	Job string `json:"job,omitempty"`
	// GuardJob is systemd's job on the unit the caller runs in (the guard,
	// from /proc/self/cgroup; drainctl-guard@UNIT without one): "restart"
	// or "stop" when the web server's job propagated to it, the same with
	// Job "" when the guard alone is being stopped or restarted and the
	// web server stays up.
	GuardJob string `json:"guard_job,omitempty"`
	// Shutdown: the system is shutting down or rebooting (a start job of
	// shutdown.target, reboot.target, poweroff.target, halt.target,
	// kexec.target or soft-reboot.target is queued, or systemd's state is
	// "stopping").
	Shutdown bool `json:"shutdown,omitempty"`
	// Reboot: that shutdown is a reboot (reboot, kexec or soft-reboot).
	Reboot bool `json:"reboot,omitempty"`
	// Kind is who asked: one of the Kind constants.
	Kind string `json:"kind"`
	// Text is one line for history and status, e.g.
	// "unattended-upgrades: dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1",
	// "needrestart", "systemctl restart apache2 by alice (pts/0)",
	// "shutdown (reboot)".
	Text string `json:"text"`
}

// Restart reports whether the unit is being restarted (a stop then a
// start) and not stopped for a shutdown.
func (o Origin) Restart() bool {
	if o.Shutdown {
		return false
	}
	switch o.Job {
	case "restart", "try-restart", "reload-or-restart", "try-reload-or-restart", "condrestart", "force-reload":
		return true
	}
	return false
}

// budget bounds Of as a whole, whatever the caller's context: it runs
// in a stop hook, before the web server's stop, and must never hold it up.
const budget = 2 * time.Second

// Of tells who asked systemd to stop or restart unit ("apache2" or
// "apache2.service") and what the job is. It takes a few milliseconds,
// at most about 2 s (less when ctx ends first), and never fails: unknown
// is an answer.
func Of(ctx context.Context, unit string) Origin {
	f := finder{procfs: "/proc", self: os.Getpid(), run: runCommand, lookupUser: lookupUser}
	return f.of(ctx, unit)
}

// finder is Of with what it reads made replaceable: the tests point it
// at a /proc tree of their own and a fake systemctl.
type finder struct {
	procfs     string                                                                 // the /proc root
	self       int                                                                    // our own PID, never a caller
	run        func(ctx context.Context, name string, args ...string) ([]byte, error) // runs a command, its standard output
	lookupUser func(uid string) string                                                // a user's name, "" if none
}

func (f finder) of(ctx context.Context, unit string) Origin {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	unit = unitName(unit)
	guard := f.ownUnit()
	if guard == "" {
		guard = "drainctl-guard@" + unit
	}

	var o Origin
	jobs, err := f.jobs(ctx)
	if err != nil {
		slog.Debug("origin: systemd's jobs unknown", "err", err)
	}
	o.Job, o.GuardJob = jobs.byUnit[unit], jobs.byUnit[guard]
	o.Shutdown, o.Reboot = jobs.shutdown != "", jobs.reboot
	// No shutdown target queued: systemd's state still tells a shutdown
	// begun some other way. A restart is never part of one: not asked.
	if jobs.known && !o.Shutdown && o.Job != "restart" {
		if state, err := f.systemState(ctx); err == nil && state == "stopping" {
			o.Shutdown = true
		}
	}

	ps := f.scan(ctx, unit, guard)
	asker := ps.asker()
	var chain []*proc
	if asker != nil {
		chain = ps.chain(ctx, asker)
	}
	if !jobs.known && asker != nil {
		// No job list (systemctl failed): the asking command's word is
		// the best left.
		switch {
		case (asker.role == roleUnit || asker.role == roleInvoke) && asker.verb != "":
			o.Job = asker.verb
		case asker.role == roleShutdown:
			o.Shutdown = true
			o.Reboot = asker.verb == "reboot" || asker.verb == "kexec" || asker.verb == "soft-reboot"
			jobs.shutdown = asker.verb
		}
	}
	o.Kind, o.Text = f.describe(ctx, o, jobs.shutdown, asker, chain)
	return o
}

// unitName completes a bare name to a service unit's.
func unitName(u string) string {
	for _, suffix := range []string{".service", ".socket", ".target", ".mount", ".timer", ".path", ".scope", ".slice", ".swap", ".device", ".automount"} {
		if strings.HasSuffix(u, suffix) {
			return u
		}
	}
	return u + ".service"
}

// ownUnit is the unit of our own cgroup (cgroup v2's "0::" line, or v1's
// name=systemd), "" when it is not a service's.
func (f finder) ownUnit() string {
	b, err := os.ReadFile(f.procfs + "/self/cgroup")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "0::") && !strings.Contains(l, ":name=systemd:") {
			continue
		}
		p := l[strings.LastIndex(l, "/")+1:]
		if strings.HasSuffix(p, ".service") {
			return p
		}
	}
	return ""
}

// runCommand runs a command bounded by ctx and returns its standard
// output, which systemctl writes also when it exits non-zero
// (is-system-running).
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	// A child that keeps the pipe open must not hold us past ctx.
	cmd.WaitDelay = 100 * time.Millisecond
	return cmd.Output()
}

// lookupUser is a user's name from the system's database, the number
// when it has none.
func lookupUser(uid string) string {
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return uid
}

// atoi is strconv.Atoi without the error: 0 for what is not a number.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
