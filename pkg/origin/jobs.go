package origin

// systemd's side: its job list and state, read with systemctl.

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// jobList is what systemd's job list said.
type jobList struct {
	known    bool              // the list was read
	byUnit   map[string]string // a unit's job type
	shutdown string            // the shutdown's kind ("reboot", "poweroff"...; "shutdown" when only shutdown.target tells), "" for none
	reboot   bool              // that shutdown reboots
}

// shutdownTargets are the targets whose start job means the system goes
// down, and the word for each; reboots are marked.
var shutdownTargets = map[string]struct {
	word   string
	reboot bool
}{
	"reboot.target":      {"reboot", true},
	"kexec.target":       {"kexec", true},
	"soft-reboot.target": {"soft-reboot", true},
	"poweroff.target":    {"poweroff", false},
	"halt.target":        {"halt", false},
	"shutdown.target":    {"shutdown", false},
}

// jobs reads systemd's job list (at most a second).
func (f finder) jobs(ctx context.Context) (jobList, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out, err := f.run(ctx, "systemctl", "list-jobs", "--no-legend", "--plain", "--no-pager")
	if err != nil {
		return jobList{}, fmt.Errorf("systemctl list-jobs: %w", err)
	}
	return parseJobs(string(out)), nil
}

// parseJobs reads `systemctl list-jobs --no-legend --plain`: one job a
// line, "ID UNIT TYPE STATE" in columns padded with spaces (a unit's name
// has none: systemd escapes them), e.g.
//
//	187 apache2.service                restart waiting
//	241 drainctl-guard@apache2.service restart running
//
// Nothing at all when there is no job.
func parseJobs(out string) jobList {
	l := jobList{known: true, byUnit: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) != 4 || atoi(fs[0]) <= 0 {
			continue
		}
		unit, typ := fs[1], fs[2]
		l.byUnit[unit] = typ
		if t, ok := shutdownTargets[unit]; ok && typ == "start" {
			// A specific target (reboot) tells more than shutdown.target,
			// which every kind of shutdown starts.
			if l.shutdown == "" || l.shutdown == "shutdown" {
				l.shutdown = t.word
			}
			l.reboot = l.reboot || t.reboot
		}
	}
	return l
}

// systemState is `systemctl is-system-running`: "running", "degraded",
// "stopping"... It exits non-zero for all but running, and still says.
func (f finder) systemState(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	out, err := f.run(ctx, "systemctl", "is-system-running")
	state := strings.TrimSpace(string(out))
	if state == "" {
		return "", fmt.Errorf("systemctl is-system-running: %w", err)
	}
	return state, nil
}
