package origin

// The caller's side: the processes that asked, found in /proc, and their
// ancestors.

import (
	"bytes"
	"context"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Bounds of the walk: a host has a few hundred processes, a busy one some
// thousands; a chain of ancestors a dozen.
const (
	maxProcs = 1 << 16
	maxChain = 64
)

// role is what a process found in the table may have asked.
type role int

const (
	roleNone     role = iota
	rolePackage       // dpkg, apt, apt-get, unattended-upgrade: may be behind it
	roleShutdown      // shutdown, reboot, systemctl reboot...
	roleNeeds         // needrestart
	roleInvoke        // deb-systemd-invoke or invoke-rc.d naming the unit
	roleUnit          // systemctl naming the unit: the very ask
)

// proc is one process as /proc tells it.
type proc struct {
	pid, ppid int
	comm      string // /proc/PID/stat's name: at most 15 bytes, a script's own name
	state     byte
	tty       int    // tty_nr
	start     uint64 // starttime, in clock ticks since boot
	argv      []string
	loaded    bool // argv read
	role      role
	verb      string // the action asked: "restart", "stop", "reboot"...
}

// name is the program's own name: for a script run by its interpreter
// (/bin/sh /var/lib/dpkg/info/apache2.postinst, /usr/bin/perl
// /usr/bin/deb-systemd-invoke) the script's; comm is cut to 15 bytes.
func (p *proc) name() string {
	if a := p.cmd(); len(a) > 0 {
		return path.Base(a[0])
	}
	return p.comm
}

// cmd is argv without the interpreter of a script: the kernel names a
// script's process after the script (comm), while argv[0] is the
// interpreter's path and argv[1] the script's.
func (p *proc) cmd() []string {
	a := p.argv
	if len(a) > 1 && p.comm != "" && !strings.HasPrefix(path.Base(a[0]), p.comm) && strings.HasPrefix(path.Base(a[1]), p.comm) {
		return a[1:]
	}
	return a
}

// table is the processes read so far, by PID.
type table struct {
	f     finder
	procs map[int]*proc
	found []*proc // those with a role
}

// interesting are the names (comm) of the processes that may have asked,
// or be behind an ask; only their command lines are read.
var interesting = map[string]bool{
	"systemctl": true, "deb-systemd-inv": true, "invoke-rc.d": true, "needrestart": true,
	"unattended-upgr": true, "dpkg": true, "apt": true, "apt-get": true, "aptitude": true,
	"shutdown": true, "reboot": true, "poweroff": true, "halt": true,
}

// scan reads every process's stat, and the command line of those whose
// name may ask, and gives each found a role for unit (or guard: a
// systemctl naming the guard alone asked for it).
func (f finder) scan(ctx context.Context, unit, guard string) *table {
	t := &table{f: f, procs: map[int]*proc{}}
	d, err := os.Open(f.procfs)
	if err != nil {
		return t
	}
	defer d.Close()
	names, err := d.Readdirnames(maxProcs)
	if err != nil && len(names) == 0 {
		return t
	}
	for i, n := range names {
		if i%256 == 0 && ctx.Err() != nil {
			break
		}
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 1 || pid == f.self {
			continue
		}
		p := f.read(pid)
		if p == nil || p.state == 'Z' || !interesting[p.comm] {
			continue
		}
		t.procs[pid] = p
		f.load(p)
		p.role, p.verb = roleOf(p, unit, guard)
		if p.role != roleNone {
			t.found = append(t.found, p)
		}
	}
	return t
}

// asker is the process found that asked most precisely: a systemctl
// naming the unit over deb-systemd-invoke over needrestart over a
// shutdown over a package tool; of equals the oldest (the first ask is
// the job systemd runs; later ones joined it), then the lowest PID.
func (t *table) asker() *proc {
	var best *proc
	for _, p := range t.found {
		if best == nil || p.role > best.role ||
			p.role == best.role && (p.start < best.start || p.start == best.start && p.pid < best.pid) {
			best = p
		}
	}
	return best
}

// chain is p and its ancestors, up to and without PID 1, read with their
// command lines.
func (t *table) chain(ctx context.Context, p *proc) []*proc {
	var c []*proc
	for len(c) < maxChain && p != nil && p.pid > 1 && ctx.Err() == nil {
		if slices.Contains(c, p) {
			break // a loop: only a fake /proc could say so
		}
		t.f.load(p)
		c = append(c, p)
		pp, ok := t.procs[p.ppid]
		if !ok {
			pp = t.f.read(p.ppid)
			t.procs[p.ppid] = pp
		}
		p = pp
	}
	return c
}

// read is a process's stat, nil when it is gone (or never was).
func (f finder) read(pid int) *proc {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(f.procfs + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	// "PID (COMM) STATE PPID PGRP SESSION TTY_NR ..."; COMM may hold
	// spaces and parentheses: it ends at the last ')'.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return nil
	}
	fs := strings.Fields(s[end+1:])
	if len(fs) < 20 {
		return nil
	}
	p := &proc{pid: pid, comm: s[open+1 : end], state: fs[0][0], ppid: atoi(fs[1]), tty: atoi(fs[4])}
	p.start, _ = strconv.ParseUint(fs[19], 10, 64)
	return p
}

// load reads p's command line, once.
func (f finder) load(p *proc) {
	if p.loaded {
		return
	}
	p.loaded = true
	b, err := os.ReadFile(f.procfs + "/" + strconv.Itoa(p.pid) + "/cmdline")
	if err != nil {
		return
	}
	for a := range bytes.SplitSeq(bytes.TrimRight(b, "\x00"), []byte{0}) {
		p.argv = append(p.argv, string(a))
	}
}

// systemctl's verbs that stop a unit, and those that take the system
// down.
var (
	unitVerbs = map[string]bool{
		"stop": true, "restart": true, "try-restart": true, "reload-or-restart": true,
		"try-reload-or-restart": true, "condrestart": true, "force-reload": true, "kill": true, "start": true, "reload": true,
	}
	shutdownVerbs = map[string]string{
		"reboot": "reboot", "poweroff": "poweroff", "halt": "halt", "kexec": "kexec", "soft-reboot": "soft-reboot",
	}
)

// roleOf is what p may have asked of unit or guard, and the verb.
func roleOf(p *proc, unit, guard string) (role, string) {
	a := p.cmd()
	if len(a) == 0 {
		return roleNone, ""
	}
	args := a[1:]
	base := strings.TrimSuffix(unit, ".service")
	names := slices.ContainsFunc(args, func(s string) bool { return s == unit || s == base || s == guard })
	switch p.name() {
	case "systemctl":
		return systemctlRole(args, names)
	case "deb-systemd-invoke", "invoke-rc.d":
		if names {
			return roleInvoke, firstOf(args, func(s string) bool { return unitVerbs[s] })
		}
	case "needrestart":
		return roleNeeds, "restart"
	case "shutdown":
		switch {
		case slices.Contains(args, "-c"):
			return roleNone, "" // cancels one
		case slices.Contains(args, "-r") || slices.Contains(args, "--reboot"):
			return roleShutdown, "reboot"
		case slices.Contains(args, "-H") || slices.Contains(args, "--halt"):
			return roleShutdown, "halt"
		}
		return roleShutdown, "poweroff"
	case "reboot", "poweroff", "halt":
		return roleShutdown, p.name()
	case "dpkg", "apt", "apt-get", "aptitude", "unattended-upgrade":
		return rolePackage, ""
	}
	return roleNone, ""
}

// systemctlRole is what a systemctl with args asked: the system down
// (reboot, or start or isolate of a shutdown target), or the unit (names:
// args name it).
func systemctlRole(args []string, names bool) (role, string) {
	if w := firstOf(args, func(s string) bool { return shutdownVerbs[s] != "" }); w != "" {
		return roleShutdown, w
	}
	if slices.Contains(args, "isolate") || slices.Contains(args, "start") {
		for _, s := range args {
			if t, ok := shutdownTargets[s]; ok {
				return roleShutdown, t.word
			}
		}
	}
	if names {
		return roleUnit, firstOf(args, func(s string) bool { return unitVerbs[s] })
	}
	return roleNone, ""
}

// firstOf is the first of args in a set, "" for none.
func firstOf(args []string, in func(string) bool) string {
	for _, s := range args {
		if in(s) {
			return s
		}
	}
	return ""
}

// loginUser is the login user of p's session (/proc/PID/loginuid, which
// su and sudo keep), "" when none: a service's, a boot's.
func (f finder) loginUser(p *proc) string {
	b, err := os.ReadFile(f.procfs + "/" + strconv.Itoa(p.pid) + "/loginuid")
	if err != nil {
		return ""
	}
	uid := strings.TrimSpace(string(b))
	if uid == "" || uid == "4294967295" || uid == "-1" {
		return ""
	}
	if name := f.lookupUser(uid); name != "" {
		return name
	}
	return uid
}

// terminal is the first controlling terminal up the chain ("pts/0",
// "tty1"), else where the asker's standard input is a terminal; "" for
// none.
func (f finder) terminal(chain []*proc) string {
	for _, p := range chain {
		if name := ttyName(p.tty); name != "" {
			return name
		}
	}
	if len(chain) > 0 {
		if l, err := os.Readlink(f.procfs + "/" + strconv.Itoa(chain[0].pid) + "/fd/0"); err == nil &&
			(strings.HasPrefix(l, "/dev/pts/") || strings.HasPrefix(l, "/dev/tty")) {
			return strings.TrimPrefix(l, "/dev/")
		}
	}
	return ""
}

// ttyName names the terminal of a tty_nr (a device number), "" for none
// or a device of another kind.
func ttyName(nr int) string {
	if nr == 0 {
		return ""
	}
	major, minor := (nr>>8)&0xfff, (nr&0xff)|((nr>>12)&0xfff00)
	switch {
	case major >= 136 && major <= 143: // Unix98 PTY slaves
		return "pts/" + strconv.Itoa((major-136)*256+minor)
	case major == 4 && minor < 64:
		return "tty" + strconv.Itoa(minor)
	case major == 4:
		return "ttyS" + strconv.Itoa(minor-64)
	case major == 5 && minor == 1:
		return "console"
	}
	return ""
}

// environ is one variable of p's environment, "" when unset or
// unreadable.
func (f finder) environ(p *proc, name string) string {
	b, err := os.ReadFile(f.procfs + "/" + strconv.Itoa(p.pid) + "/environ")
	if err != nil {
		return ""
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(name+"=")); ok {
			return string(v)
		}
	}
	return ""
}
