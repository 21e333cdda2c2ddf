package doctor

// Gathering the restarts nobody asks drainctl for: the guard units, and
// the configuration of the tools that restart the web server (needrestart,
// unattended-upgrades, policy-rc.d). Files are read under a root, so
// that tests point it at a temp dir.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
)

// The files and programs read, under the root.
const (
	needrestartProgram = "/usr/sbin/needrestart"
	needrestartConf    = "/etc/needrestart/needrestart.conf"
	needrestartConfD   = "/etc/needrestart/conf.d"
	unattendedProgram  = "/usr/bin/unattended-upgrade"
	aptConf            = "/etc/apt/apt.conf"
	aptConfD           = "/etc/apt/apt.conf.d"
	policyRCD          = "/usr/sbin/policy-rc.d"
	// aptUpgradeTimer starts unattended-upgrades' runs on Debian.
	aptUpgradeTimer = "apt-daily-upgrade.timer"
)

// guardOf is the guard unit of a unit: drainctl-guard@apache2.service
// for apache2.service.
func guardOf(unit string) string {
	return "drainctl-guard@" + strings.TrimSuffix(unit, ".service") + ".service"
}

func gatherRestarts(ctx context.Context, root string, systemd bool, web *Unit, look forward.LookPath) Restarts {
	var r Restarts
	if systemd {
		if web != nil && web.LoadState == "loaded" {
			r.Guarded = append(r.Guarded, Guarded{Unit: web, Guard: showUnit(ctx, look, guardOf(web.Name)), Web: true})
		}
		fpm, err := activeUnits(ctx, look, "php*-fpm.service")
		if err != nil {
			r.ListErr = err
		}
		for _, name := range fpm {
			if u := showUnit(ctx, look, name); u != nil {
				r.Guarded = append(r.Guarded, Guarded{Unit: u, Guard: showUnit(ctx, look, guardOf(name))})
			}
		}
	}
	r.Needrestart = readNeedrestart(root)
	r.Unattended = readUnattended(root)
	if systemd && r.Unattended.Installed {
		r.Unattended.Timer = showTimer(ctx, look, aptUpgradeTimer)
	}
	r.PolicyRCD = readPolicyRCD(root)
	return r
}

// activeUnits lists the active units that match a pattern.
func activeUnits(ctx context.Context, look forward.LookPath, pattern string) ([]string, error) {
	systemctl, err := look("systemctl")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "list-units", "--type=service", "--state=active", "--no-legend", "--plain", "--no-pager", pattern).Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl list-units %s: %w", pattern, err)
	}
	return parseUnitList(string(out)), nil
}

// parseUnitList reads list-units' lines: the unit is the first field.
func parseUnitList(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], ".service") {
			out = append(out, f[0])
		}
	}
	return out
}

// showTimer reads a timer's schedule; nil if systemctl cannot say or
// systemd does not know the timer.
func showTimer(ctx context.Context, look forward.LookPath, name string) *Timer {
	systemctl, err := look("systemctl")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// --timestamp=unix (systemd 248, Debian 12 has 252): TimersCalendar's
	// next_elapse as "@SECONDS", not in a zone abbreviation Go may not
	// read back. NextElapseUSecRealtime is formatted all the same.
	out, err := exec.CommandContext(ctx, systemctl, "show", name, "--timestamp=unix",
		"-p", "LoadState,TimersCalendar,NextElapseUSecRealtime,RandomizedDelayUSec,DropInPaths").Output()
	if err != nil {
		return nil
	}
	return parseTimer(name, string(out))
}

// TimersCalendar is "{ OnCalendar=*-*-* 06:00:00 ; next_elapse=@1796709600 }",
// a line for each.
var (
	onCalendar = regexp.MustCompile(`OnCalendar=([^;]*?)\s*;`)
	nextElapse = regexp.MustCompile(`next_elapse=([^;}]*?)\s*[;}]`)
)

// parseTimer reads systemctl show's lines of a timer; nil when it is
// not loaded.
func parseTimer(name, text string) *Timer {
	t := &Timer{Name: name}
	loaded := false
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "LoadState":
			loaded = v == "loaded"
		case "TimersCalendar":
			for _, m := range onCalendar.FindAllStringSubmatch(v, -1) {
				t.Calendar = append(t.Calendar, m[1])
			}
			for _, m := range nextElapse.FindAllStringSubmatch(v, -1) {
				if n := parseTimestamp(m[1]); !n.IsZero() && (t.Next.IsZero() || n.Before(t.Next)) {
					t.Next = n
				}
			}
		case "NextElapseUSecRealtime":
			t.Drawn = parseTimestamp(v)
		case "RandomizedDelayUSec":
			t.RandomDelay = parseTimespan(v)
		case "DropInPaths":
			t.DropIns = strings.Fields(v)
		}
	}
	if !loaded {
		return nil
	}
	if t.Next.IsZero() {
		t.Next = t.Drawn
	}
	return t
}

// parseTimestamp reads a timestamp as systemctl show prints it: "@SECONDS"
// with --timestamp=unix, else "Tue 2026-12-08 06:00:00 UTC" in the
// host's zone (doctor's, as it runs there), or microseconds; zero for
// none ("", "n/a").
func parseTimestamp(v string) time.Time {
	if s, ok := strings.CutPrefix(v, "@"); ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return time.Unix(n, 0)
		}
		return time.Time{}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
		return time.UnixMicro(n)
	}
	if t, err := time.ParseInLocation("Mon 2006-01-02 15:04:05 MST", v, time.Local); err == nil {
		return t
	}
	return time.Time{}
}

var timespanPart = regexp.MustCompile(`(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d|w)?`)

// parseTimespan reads a systemd time span as systemctl show prints it
// ("1h", "1h 30min", "0"); 0 for what it cannot read.
func parseTimespan(s string) time.Duration {
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "": time.Second, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	var d time.Duration
	for _, m := range timespanPart.FindAllStringSubmatch(s, -1) {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0
		}
		d += time.Duration(n * float64(units[m[2]]))
	}
	return d
}

// nrRestart is needrestart.conf's (Perl) $nrconf{restart} = 'a';
var nrRestart = regexp.MustCompile(`^\s*\$nrconf\{\s*['"]?restart['"]?\s*\}\s*=\s*['"]([ail])['"]`)

// readNeedrestart reads needrestart's restart mode as needrestart does:
// needrestart.conf, then conf.d/*.conf in order, the last one setting
// it wins.
func readNeedrestart(root string) Needrestart {
	var n Needrestart
	if _, err := os.Stat(filepath.Join(root, needrestartProgram)); err != nil {
		return n
	}
	n.Installed = true
	files := []string{needrestartConf}
	if more, err := filepath.Glob(filepath.Join(root, needrestartConfD, "*.conf")); err == nil {
		slices.Sort(more)
		for _, m := range more {
			files = append(files, strings.TrimPrefix(m, root))
		}
	}
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				n.Err = err
			}
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := nrRestart.FindStringSubmatch(line); m != nil {
				n.Mode, n.ModeFile = m[1], file
			}
		}
	}
	return n
}

// readUnattended reads unattended-upgrades' settings from apt's
// configuration, in apt's order: apt.conf.d's files, then apt.conf.
func readUnattended(root string) Unattended {
	var u Unattended
	if _, err := os.Stat(filepath.Join(root, unattendedProgram)); err != nil {
		return u
	}
	u.Installed = true
	conf, err := readAptConfig(root)
	u.Err = err
	get := func(key string) (string, string) {
		s := conf[strings.ToLower(key)]
		return s.value, s.file
	}
	u.Upgrade, u.UpgradeFile = get("APT::Periodic::Unattended-Upgrade")
	u.Reboot, u.RebootFile = get("Unattended-Upgrade::Automatic-Reboot")
	u.RebootTime, _ = get("Unattended-Upgrade::Automatic-Reboot-Time")
	return u
}

// aptSetting is one setting's value and the file that set it last.
type aptSetting struct{ value, file string }

// aptIgnored are names apt skips in apt.conf.d (Dir::Ignore-Files-Silently).
var aptIgnored = regexp.MustCompile(`(~|\.disabled|\.bak|\.dpkg-[a-z]+|\.ucf-[a-z]+|\.save|\.orig|\.distUpgrade)$`)

// aptName are the names apt reads in apt.conf.d: others it skips.
var aptName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// readAptConfig reads apt's configuration files under root into keys
// (lower case, as apt compares them) and their last values. Its error is
// the first file it could not read; the rest are still read.
func readAptConfig(root string) (map[string]aptSetting, error) {
	conf := map[string]aptSetting{}
	var first error
	entries, err := os.ReadDir(filepath.Join(root, aptConfD))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		first = err
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && aptName.MatchString(n) && !aptIgnored.MatchString(n) {
			files = append(files, filepath.Join(aptConfD, n))
		}
	}
	files = append(files, aptConf) // ReadDir sorts: apt's order
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && first == nil {
				first = err
			}
			continue
		}
		for k, v := range parseAptConf(string(b)) {
			conf[k] = aptSetting{v, file}
		}
	}
	return conf, first
}

// parseAptConf reads apt.conf's syntax: `A::B "value";`, blocks
// `A { B "value"; };`, list items `"value";` (skipped), comments `//`,
// `/* */` and `#` lines (#include, #clear: not followed). Keys are lower
// case; a later value wins.
func parseAptConf(text string) map[string]string {
	out := map[string]string{}
	var prefix []string // the open blocks' names
	var words []aptToken
	for _, t := range aptTokens(text) {
		switch {
		case t.text == "{" && !t.quoted:
			name := ""
			if len(words) > 0 && !words[0].quoted {
				name = words[0].text
			}
			prefix, words = append(prefix, name), nil
		case t.text == "}" && !t.quoted:
			if len(prefix) > 0 {
				prefix = prefix[:len(prefix)-1]
			}
			words = nil
		case t.text == ";" && !t.quoted:
			if len(words) >= 2 && !words[0].quoted {
				out[strings.ToLower(strings.Join(append(slices.Clone(prefix), words[0].text), "::"))] = words[1].text
			}
			words = nil
		default:
			words = append(words, t)
		}
	}
	return out
}

// aptToken is a word, a quoted value, or one of { } ;.
type aptToken struct {
	text   string
	quoted bool
}

// aptTokens splits apt.conf's text into tokens, comments left out.
func aptTokens(text string) []aptToken {
	var out []aptToken
	for i := 0; i < len(text); {
		rest := text[i:]
		switch c := text[i]; {
		case strings.HasPrefix(rest, "//"), c == '#':
			j := strings.IndexByte(rest, '\n')
			if j < 0 {
				j = len(rest)
			}
			i += j
		case strings.HasPrefix(rest, "/*"):
			j := strings.Index(rest[2:], "*/")
			if j < 0 {
				j = len(rest) // unterminated: the rest is comment
			}
			i += j + 4
		case c == '"':
			j := strings.IndexByte(rest[1:], '"')
			if j < 0 {
				return out // unterminated: apt refuses the file
			}
			out = append(out, aptToken{rest[1 : 1+j], true})
			i += j + 2
		case c == '{' || c == '}' || c == ';':
			out = append(out, aptToken{text: string(c)})
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			j := 1
			for j < len(rest) && !strings.ContainsRune(" \t\r\n\";{}", rune(rest[j])) && !strings.HasPrefix(rest[j:], "//") {
				j++
			}
			out = append(out, aptToken{text: rest[:j]})
			i += j
		}
	}
	return out
}

// readPolicyRCD reads /usr/sbin/policy-rc.d; nil if there is none.
func readPolicyRCD(root string) *PolicyRCD {
	path := filepath.Join(root, policyRCD)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	p := &PolicyRCD{Path: policyRCD}
	if t, err := os.Readlink(path); err == nil {
		p.Target = t
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return p
	}
	text := string(b)
	p.Drainctl = strings.Contains(text, "drainctl")
	// Docker's images ship one that only exits 101: nothing is started
	// or restarted by dpkg.
	var code []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			code = append(code, l)
		}
	}
	p.Forbids = len(code) == 1 && code[0] == "exit 101"
	return p
}
