// Package doctor says whether drainctl will work on a host before anyone
// trusts it with a maintenance: the firewall and the backend, whether the
// load balancers check the forward port, the web server's commands, the
// agent and its unit, the pool and reboots. Each finding says what is
// so, what will go wrong, and the fix.
//
// The work is in two halves: Gather reads the host into Facts (it changes
// nothing: no rule, no state, no restart), and Judge turns Facts into
// findings. Judge is pure, so every rule is unit-tested on facts made by
// hand; Gather is tested on real hosts (kernel, lab and systemd tests).
package doctor

import (
	"fmt"
	"strings"
)

// Severity orders findings: the exit status follows the worst.
type Severity int

const (
	// OK is as it should be; the finding says what was seen.
	OK Severity = iota
	// Warning is where drainctl works, but something will surprise an operator
	// (a maintenance that waits longer, a view it cannot confirm, a
	// reboot owed).
	Warning
	// Fail is where requests will be lost, or drainctl's commands will fail.
	Fail
)

var severityNames = []string{"ok", "warning", "fail"}

func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the name: scripts match "fail", not 2.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name MarshalText wrote.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if string(b) == n {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("severity %q: want one of %s", b, strings.Join(severityNames, ", "))
}

// Areas, in the order a report lists them.
const (
	AreaFirewall = "firewall"
	AreaChecks   = "load-balancers"
	AreaWeb      = "web-server"
	AreaAgent    = "agent"
	AreaPool     = "pool"
	AreaReboot   = "reboot"
	// AreaRestarts is the restarts nobody asks drainctl for.
	AreaRestarts = "restarts"
	AreaHAProxy  = "haproxy-config"
)

// Finding is one thing doctor found.
type Finding struct {
	Area     string   `json:"area"`
	Severity Severity `json:"severity"`
	// ID names the rule that made the finding (e.g. "checks.service-port"),
	// stable for scripts and tests; the texts may be reworded.
	ID string `json:"id"`
	// Found says what is so.
	Found string `json:"found"`
	// Impact says what will go wrong (empty when nothing will).
	Impact string `json:"impact,omitempty"`
	// Fix says what to change.
	Fix string `json:"fix,omitempty"`
}

// Report is doctor's answer, as --json prints it.
type Report struct {
	Worst    Severity  `json:"worst"`
	Findings []Finding `json:"findings"`
}

// NewReport is the report of fs.
func NewReport(fs []Finding) Report { return Report{Worst(fs), fs} }

// Worst is the highest severity of fs (OK for none).
func Worst(fs []Finding) Severity {
	w := OK
	for _, f := range fs {
		w = max(w, f.Severity)
	}
	return w
}

// Judge turns facts into findings, area by area in a fixed order.
func Judge(f Facts) []Finding {
	var out []Finding
	for _, judge := range []func(Facts) []Finding{
		judgeFirewall, judgeChecks, judgeWeb, judgeAgent, judgePool, judgeReboot, judgeRestarts, judgeHAProxy,
	} {
		out = append(out, judge(f)...)
	}
	return out
}

// finding builders keep the judges short.
func ok(area, id, found string) Finding {
	return Finding{Area: area, Severity: OK, ID: id, Found: found}
}

func warn(area, id, found, impact, fix string) Finding {
	return Finding{Area: area, Severity: Warning, ID: id, Found: found, Impact: impact, Fix: fix}
}

func fail(area, id, found, impact, fix string) Finding {
	return Finding{Area: area, Severity: Fail, ID: id, Found: found, Impact: impact, Fix: fix}
}
