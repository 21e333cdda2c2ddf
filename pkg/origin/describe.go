package origin

// From the asker and its ancestors to a Kind and one line of text.

import (
	"context"
	"path"
	"slices"
	"strings"
	"time"
)

// describe names who asked: drainctl's own asks first (the server is
// already out, or on its way), then a shutdown, then unattended-upgrades
// (nobody at the keyboard, whatever it ran: dpkg or needrestart), then
// needrestart (what apt's hook ran), apt, dpkg, and last the plain
// command. The text names every one of them found, outermost first.
// shutdown is the shutdown's word from the job list ("reboot"...).
func (f finder) describe(ctx context.Context, o Origin, shutdown string, asker *proc, chain []*proc) (kind, text string) {
	if o.Shutdown && (asker == nil || asker.role != roleShutdown) {
		// What else runs while the system goes down did not ask for it.
		asker, chain = nil, nil
	}
	labels, kinds := f.labels(ctx, asker, chain)
	who := f.who(asker, chain)
	if o.Shutdown {
		s := "shutdown"
		if shutdown != "" && shutdown != "shutdown" {
			s += " (" + shutdown + ")"
		}
		kind = KindShutdown
		if kinds[KindDrainctl] {
			kind = KindDrainctl
		}
		return kind, strings.Join(append(labels, s), ": ") + who
	}
	for _, k := range []string{KindDrainctl, KindUnattended, KindNeedrestart, KindApt, KindDpkg} {
		if kinds[k] {
			kind = k
			break
		}
	}
	switch {
	case kind == "" && asker != nil && (asker.role == roleUnit || asker.role == roleInvoke):
		return KindSystemctl, command(asker) + who
	case kind == "":
		return KindUnknown, "unknown"
	case kind == KindDrainctl && len(labels) == 1 && asker != nil && (asker.role == roleUnit || asker.role == roleInvoke):
		// drainctl's agent ran the command: which one.
		labels = append(labels, command(asker))
	}
	return kind, strings.Join(labels, ": ") + who
}

// labels names the ancestors that tell who asked, outermost first, and
// the kinds they are of.
func (f finder) labels(ctx context.Context, asker *proc, chain []*proc) ([]string, map[string]bool) {
	var labels []string
	kinds := map[string]bool{}
	script := false
	for _, p := range slices.Backward(chain) {
		switch p.name() {
		case "drainctl":
			kinds[KindDrainctl] = true
			labels = append(labels, subcommand(p))
		case "unattended-upgrade":
			kinds[KindUnattended] = true
			labels = append(labels, "unattended-upgrades")
		case "apt", "apt-get", "aptitude":
			kinds[KindApt] = true
			labels = append(labels, aptCommand(p))
		case "needrestart":
			kinds[KindNeedrestart] = true
			labels = append(labels, "needrestart")
		case "dpkg":
			kinds[KindDpkg] = true
			labels = append(labels, "dpkg")
		default:
			if s, ok := f.maintScript(ctx, p); ok {
				kinds[KindDpkg], script = true, true
				// dpkg's own label, just above, says less.
				if n := len(labels); n > 0 && labels[n-1] == "dpkg" {
					labels = labels[:n-1]
				}
				labels = append(labels, "dpkg: "+s)
			}
		}
	}
	if !script && asker != nil {
		// A maintainer script that exec'd the command (exec invoke-rc.d
		// nginx upgrade) is gone from the chain; dpkg's environment says
		// whose it was.
		if pkg := f.environ(asker, "DPKG_MAINTSCRIPT_PACKAGE"); pkg != "" {
			kinds[KindDpkg] = true
			s := "dpkg: " + packageText(pkg, "", f.installed(ctx, pkg))
			if n := len(labels); n > 0 && labels[n-1] == "dpkg" {
				labels[n-1] = s
			} else {
				labels = append(labels, s)
			}
		}
	}
	// unattended-upgrade forks a child of its own name to run dpkg (as do
	// others): one caller, one label.
	return slices.Compact(labels), kinds
}

// maintScript tells a dpkg maintainer script's process
// (/bin/sh /var/lib/dpkg/info/PKG.postinst configure OLDVERSION) and says
// what it does: "apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1".
func (f finder) maintScript(ctx context.Context, p *proc) (string, bool) {
	a := p.cmd()
	if len(a) == 0 || !strings.Contains(a[0], "/dpkg/info/") {
		return "", false
	}
	base := path.Base(a[0])
	ext := path.Ext(base)
	switch ext {
	case ".postinst", ".preinst", ".prerm", ".postrm":
	default:
		return "", false
	}
	pkg := strings.TrimSuffix(base, ext)
	args := append(a[1:], "", "", "")
	action := args[0]
	var old, nu string
	switch {
	case ext == ".postinst" && action == "configure":
		// The installed version is already the new one.
		old, nu = args[1], f.installed(ctx, pkg)
	case ext == ".preinst" && (action == "install" || action == "upgrade"):
		old, nu = args[1], args[2]
	case ext == ".prerm" && action == "upgrade":
		old, nu = f.installed(ctx, pkg), args[1]
	case ext == ".postrm" && action == "upgrade":
		nu = args[1]
	default:
		// remove, purge, triggered, abort-...: the action says it.
		return packageText(pkg, "", f.installed(ctx, pkg)) + " " + action, true
	}
	return packageText(pkg, old, nu), true
}

// packageText is "PKG OLD → NEW", "PKG NEW" or "PKG", without the
// architecture dpkg adds to a Multi-Arch package's name.
func packageText(pkg, old, nu string) string {
	name, _, _ := strings.Cut(pkg, ":")
	switch {
	case old != "" && nu != "" && old != nu:
		return name + " " + old + " → " + nu
	case nu != "":
		return name + " " + nu
	case old != "":
		return name + " " + old
	}
	return name
}

// installed is a package's version as dpkg's database has it, "" if
// unknown (at most half a second).
func (f finder) installed(ctx context.Context, pkg string) string {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	out, err := f.run(ctx, "dpkg-query", "-W", "-f", "${Version}", pkg)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// who is " by USER (TTY)" for the person behind the ask, each part only
// when known.
func (f finder) who(asker *proc, chain []*proc) string {
	if asker == nil {
		return ""
	}
	var s string
	if u := f.loginUser(asker); u != "" {
		s = " by " + u
	}
	if t := f.terminal(chain); t != "" {
		s += " (" + t + ")"
	}
	return s
}

// command is a process's command line for the text: its name and words,
// without options, at most six words.
func command(p *proc) string {
	words := []string{p.name()}
	for _, a := range p.cmd()[min(1, len(p.cmd())):] {
		if strings.HasPrefix(a, "-") || a == "" {
			continue
		}
		if len(words) == 6 {
			words = append(words, "…")
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// subcommand is a command's name and its words up to the first option:
// "drainctl maintenance reboot" (an option's value says nothing here).
func subcommand(p *proc) string {
	words := []string{p.name()}
	for _, a := range p.cmd()[min(1, len(p.cmd())):] {
		if strings.HasPrefix(a, "-") || a == "" || len(words) == 4 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// aptVerbs are apt's commands that install or remove.
var aptVerbs = map[string]bool{
	"install": true, "reinstall": true, "upgrade": true, "dist-upgrade": true, "full-upgrade": true,
	"safe-upgrade": true, "remove": true, "purge": true, "autoremove": true,
}

// aptCommand is "apt upgrade", "apt-get install": apt's name and its
// command (its options, -o A::B=C, say nothing here).
func aptCommand(p *proc) string {
	for _, a := range p.cmd()[min(1, len(p.cmd())):] {
		if aptVerbs[a] {
			return p.name() + " " + a
		}
	}
	return p.name()
}
