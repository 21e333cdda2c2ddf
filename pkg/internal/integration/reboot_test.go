package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/state"
)

// maintenance reboot, as the binary does it, for the failures that need
// no real reboot (the systemd tier reboots containers for real): every
// one leaves the server held, names why, and is not tried again.
func TestAgentRebootFailuresHold(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name, cmd, want string
	}{
		{"command fails", "echo no bus >&2; exit 1", "reboot command \"echo no bus >&2; exit 1\" failed"},
		{"command does nothing", "true", "did not reboot within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			h.agent(t, "--reboot-cmd", tc.cmd, "--reboot-timeout", "1s")
			out, stderr, code := h.ctl(t, "maintenance", "reboot", "--reason", "kernel")
			if code != 14 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "does not try again") {
				t.Fatalf("reboot: exit %d, want 14\n%s%s", code, out, stderr)
			}
			st := h.status(t)
			if st.State.Phase != apitype.PhaseHeld || !withdrawn(st) || !strings.Contains(st.State.LastError, tc.want) {
				t.Fatalf("after the failed reboot: %+v", st.State)
			}
			// No second try: a held server is not rebooted, by cron or anyone.
			if _, stderr, code := h.ctl(t, "maintenance", "reboot"); code != 5 {
				t.Fatalf("second reboot: exit %d, want busy (5)\n%s", code, stderr)
			}
			out, _, _ = h.ctl(t, "history", "--json")
			if !strings.Contains(out, `"reboot-failed"`) {
				t.Errorf("history has no failed reboot:\n%s", out)
			}
		})
	}
}

// The host going down under the CLI: the agent stops (SIGTERM, as
// systemd's shutdown does) while its reboot command runs; the CLI says
// the host is going down and exits 0. The agent started again on the
// same boot knows the reboot is owed, is busy until the reboot timeout,
// then holds: the host did not reboot.
func TestAgentRebootCutOffByShutdown(t *testing.T) {
	nstest.RequireRoot(t)
	h := newHost(t)
	// sh -c's parent is the agent: the command plays systemd stopping it.
	agent := h.agent(t, "--reboot-cmd", "kill -TERM $PPID", "--reboot-timeout", "3s")
	out, stderr, code := h.ctl(t, "maintenance", "reboot", "--reason", "kernel")
	if code != 0 || !strings.Contains(out, "rebooting: the host is going down") {
		t.Fatalf("reboot: exit %d, want 0 and the going-down line\n%s%s", code, out, stderr)
	}
	agent.Wait()
	if op, phase := h.phaseOnDisk(); op != state.OpReboot || phase != state.Rebooting {
		t.Fatalf("state file after the shutdown: %s/%s, want reboot/rebooting", op, phase)
	}
	h.agent(t, "--reboot-cmd", "kill -TERM $PPID", "--reboot-timeout", "3s")
	st := h.status(t)
	if !st.Running || st.State.Reboot == nil || !withdrawn(st) {
		t.Fatalf("restarted on the same boot: %+v (want busy, withdrawn, the reboot owed)", st.State)
	}
	if out, _, _ := h.ctl(t, "status"); !strings.Contains(out, "reboot:") {
		t.Errorf("status does not show the reboot owed:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.status(t).State.Phase != apitype.PhaseHeld {
		if time.Now().After(deadline) {
			t.Fatalf("never held: %+v", h.status(t).State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := h.status(t); !strings.Contains(st.State.LastError, "did not reboot within 3s") || !withdrawn(st) {
		t.Fatalf("held: %+v", st.State)
	}
}

// Outside its window nothing is touched: exit 13, in service.
func TestAgentRebootOutsideWindow(t *testing.T) {
	nstest.RequireRoot(t)
	h := newHost(t)
	h.agent(t, "--reboot-cmd", "false")
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Weekday().String()[:3]
	w := fmt.Sprintf("%s 00:00-24:00 UTC", tomorrow)
	out, stderr, code := h.ctl(t, "maintenance", "reboot", "--window", w)
	if code != 13 || !strings.Contains(stderr, "outside the window") {
		t.Fatalf("reboot outside %q: exit %d, want 13\n%s%s", w, code, out, stderr)
	}
	if st := h.status(t); !inService(st) {
		t.Fatalf("changed: %+v", st.State)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "reboot", "--window", "Mon-Fry 02:00-05:00"); code != 2 || !strings.Contains(stderr, `unknown day "Fry"`) {
		t.Fatalf("bad window: exit %d\n%s", code, stderr)
	}
}
