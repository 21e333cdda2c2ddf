package integration

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The drain policy is a floor for the socket's group and a ceiling for
// everyone: a member (uid 65534, from the kernel's peer credentials)
// may tighten it but not loosen it, root may loosen it up to
// limits.max_deadline, and nobody may ask past that; each refusal
// changes nothing.
func TestAgentPolicyTightenOnly(t *testing.T) {
	nstest.RequireCmd(t, "setpriv")
	h := newHost(t)
	h.agent(t, "--socket-group", "nogroup", "--limits-max-deadline", "30s") // drain.deadline: 10s
	member := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		argv := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", binary, "--socket", h.sock}, args...)
		out, err := exec.CommandContext(ctx, "setpriv", argv...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	for _, args := range [][]string{{"--deadline", "20s"}, {"--on-deadline", "proceed", "--deadline", "11s"}} {
		out, code := member(append([]string{"maintenance", "enter"}, args...)...)
		if code != exitUsage || !strings.Contains(out, "only root may") {
			t.Fatalf("a member's enter %v: exit %d: %s", args, code, out)
		}
		if st := h.status(t); !inService(st) {
			t.Fatalf("after a refused enter the server is out: %+v", st.State)
		}
	}
	if out, code := member("maintenance", "enter", "--deadline", "5s", "--on-deadline", "abort"); code != 0 {
		t.Fatalf("a member's stricter enter: exit %d: %s", code, out)
	}
	if out, code := member("maintenance", "exit"); code != 0 {
		t.Fatalf("a member's exit: exit %d: %s", code, out)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--deadline", "31s"); code != exitUsage || !strings.Contains(stderr, "limits.max_deadline") {
		t.Fatalf("root past limits.max_deadline: exit %d: %s", code, stderr)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--deadline", "20s", "--ttl", "1h"); code != 0 {
		t.Fatalf("root's looser enter: exit %d: %s", code, stderr)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "exit"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--ttl", "1752000h"); code != exitUsage || !strings.Contains(stderr, "limits.max_ttl") || !inService(h.status(t)) {
		t.Fatalf("a TTL of 200 years: exit %d: %s", code, stderr)
	}
}
