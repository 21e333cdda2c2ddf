package lab

// drainctl doctor on an app server, as its agent is configured: the same
// settings flags (agentSettings), run inside the server's namespace, where
// it captures the load balancers' checks and reads netfilter.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drainctl/drainctl/pkg/doctor"
)

// DoctorListen is the capture Doctor asks for unless told otherwise: the
// lab's HAProxy checks every 500 ms, so 2 s sees 4 checks (doctor judges
// the answers from 3).
const DoctorListen = "2s"

// Report is doctor --json's output, with the tests' lookups.
type Report struct{ doctor.Report }

// Find returns the findings with id, in the report's order.
func (r Report) Find(id string) []doctor.Finding {
	var out []doctor.Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// IDs are the ids of the findings of severity s, sorted, each once.
func (r Report) IDs(s doctor.Severity) []string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == s && !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// String lists the findings one a line, for a test's failure message.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worst %s:", r.Worst)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n  %-8s %-28s %s", f.Severity, f.ID, f.Found)
	}
	return b.String()
}

// Doctor runs `drainctl doctor --json` in w's namespace with w's agent's
// settings flags and extra (--listen DoctorListen unless extra sets it),
// and returns the report and the exit code (0 all ok, 15 a warning, 16
// a fail). err is for a doctor that did not run or printed no report.
func (w *Web) Doctor(ctx context.Context, extra ...string) (Report, int, error) {
	if w.Hosted || w.dir == "" {
		return Report{}, 0, fmt.Errorf("%s: the lab does not run this server's agent", w.Name)
	}
	args := append([]string{"netns", "exec", w.ns.Name, w.binary, "doctor", "--json"}, w.lab.agentSettings(w)...)
	if !slices.ContainsFunc(extra, func(a string) bool { return a == "--listen" || strings.HasPrefix(a, "--listen=") }) {
		args = append(args, "--listen", DoctorListen)
	}
	cmd := exec.CommandContext(ctx, "ip", append(args, extra...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return Report{}, 0, fmt.Errorf("doctor on %s: %w", w.Name, err)
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Report{}, code, fmt.Errorf("doctor on %s (exit %d): no report: %w\nstdout: %s\nstderr: %s", w.Name, code, err, stdout.Bytes(), stderr.Bytes())
	}
	return r, code, nil
}

// ConfigFile is w's web server's config file (apache2.conf or
// nginx.conf in its directory), the one its config test reads.
func (w *Web) ConfigFile() string { return w.conf }

// HAProxyConfigFile is the haproxy.cfg the lab's (active) HAProxy runs.
func (l *Lab) HAProxyConfigFile() string { return filepath.Join(l.o.Dir, "haproxy.cfg") }
