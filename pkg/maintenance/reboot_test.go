package maintenance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// fakeBoot is the host's boot: its id, its start, whether it needs a
// reboot.
type fakeBoot struct {
	mu       sync.Mutex
	id       string
	started  time.Time
	required bool
}

func (b *fakeBoot) ID() (string, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.id, nil }
func (b *fakeBoot) Started() (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started, nil
}
func (b *fakeBoot) RebootRequired(context.Context) (bool, string, error) {
	if b.required {
		return true, "/var/run/reboot-required exists", nil
	}
	return false, "checked /var/run/reboot-required", nil
}

// fakeRebooter stands for systemctl reboot: it notes the call, and the
// test plays the shutdown (cancelling the agent's context).
type fakeRebooter struct {
	calls []string
	err   error
	exit  int // the command's exit code (-1: killed by a signal)
	ran   chan struct{}
}

func (f *fakeRebooter) Reboot(context.Context) (runner.Output, error) {
	f.calls = append(f.calls, "reboot")
	if f.ran != nil {
		close(f.ran)
	}
	return runner.Output{Command: "systemctl reboot", ExitCode: f.exit}, f.err
}

func (f *fakeRebooter) String() string { return "systemctl reboot" }

// rebootRig is a rig that can reboot: boot b1, a fake reboot command, the
// history kept, a pool slot when slots is set.
func rebootRig(t *testing.T, ctx context.Context, st *state.State, boot *fakeBoot, rb *fakeRebooter, slots *fakeSlots) (*rig, *memHistory) {
	t.Helper()
	rebootGrace = 100 * time.Millisecond
	h := &memHistory{}
	r := newRigDeps(t, ctx, st, func(d *Deps) {
		d.Boot, d.Rebooter, d.History, d.RebootTimeout = boot, rb, h, 200*time.Millisecond
		if slots != nil {
			d.Slots, d.PoolWait = slots, time.Second
		}
	})
	return r, h
}

// waitIdle waits for the engine's background work (finishing a reboot).
func waitIdle(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	time.Sleep(10 * time.Millisecond)
	if err := e.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// The reboot across two boots: slot, withdraw, drain, "rebooting" with
// the boot id written before the command; the shutdown stops the agent
// (nothing recorded then); the next boot's agent sees a new boot id,
// checks the web server, restores, gives the slot back, and writes one
// history entry spanning both boots, phase by phase.
func TestRebootAcrossBoots(t *testing.T) {
	ctx, shutdown := context.WithCancel(context.Background())
	boot, cmd, slots := &fakeBoot{id: "b1"}, &fakeRebooter{ran: make(chan struct{})}, &fakeSlots{}
	r, h := rebootRig(t, ctx, nil, boot, cmd, slots)
	slots.log = &r.fw.calls
	go func() { <-cmd.ran; shutdown() }() // systemd stops the agent
	_, err := r.e.Reboot(alice, nil)
	if CodeOf(err) != CodeStopping {
		t.Fatalf("reboot: %v, want agent-stopping (the shutdown)", err)
	}
	st := r.store.st
	if st.Phase != state.Rebooting || st.Op != state.OpReboot || st.Reboot == nil || st.Reboot.BootID != "b1" || st.Slot == nil {
		t.Fatalf("state before the boot: %+v", st)
	}
	if len(h.entries) != 0 {
		t.Fatalf("recorded before the boot: %+v", h.entries)
	}
	if got := strings.Join(r.fw.calls, ","); !strings.Contains(got, "acquire,withdraw") {
		t.Errorf("calls %s", got)
	}

	// The next boot: same state file, a new boot id.
	boot.id, boot.started = "b2", r.clock.Now().Add(time.Second)
	r.clock.advance(3 * time.Second)
	next, h2 := rebootRig(t, context.Background(), &st, boot, cmd, slots)
	waitIdle(t, next.e)
	st, _ = next.store.Load()
	if st.Phase != state.InService || st.Op != state.OpNone || st.Reboot != nil || st.Slot != nil || slots.isHeld() {
		t.Fatalf("after the boot: %+v, slot held %v", st, slots.isHeld())
	}
	if len(h2.entries) != 1 {
		t.Fatalf("history: %+v", h2.entries)
	}
	e := h2.entries[0]
	var names []string
	for _, p := range e.Phases {
		names = append(names, p.Phase)
	}
	want := "waiting-for-slot,withdrawing,draining,rebooting,booting,ready-check,restoring,in-service"
	if e.Op != "reboot" || e.Outcome != "ok" || e.Who != "alice" || strings.Join(names, ",") != want {
		t.Errorf("entry %+v: phases %v, want %s", e, names, want)
	}
	if !e.Start.Equal(st.History[0].Time) && e.DurationMS < 3000 {
		t.Errorf("the entry must span both boots: %d ms", e.DurationMS)
	}
	if len(cmd.calls) != 1 {
		t.Errorf("reboot command ran %d times", len(cmd.calls))
	}
}

// The reboot command fails: held with its reason, exit code
// reboot-failed, and a second reboot is refused (busy) until a person
// ends the hold.
func TestRebootCommandFailsHolds(t *testing.T) {
	cmd := &fakeRebooter{err: errors.New("exit status 1: Failed to connect to bus")}
	r, h := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, cmd, nil)
	_, err := r.e.Reboot(alice, nil)
	if CodeOf(err) != CodeRebootFailed || !strings.Contains(err.Error(), "does not try again") {
		t.Fatalf("reboot: %v", err)
	}
	if st := r.store.st; st.Phase != state.Held || !strings.Contains(st.LastError, "Failed to connect to bus") || st.Reboot != nil {
		t.Fatalf("state: %+v", st)
	}
	if _, err := r.e.Reboot(alice, nil); CodeOf(err) != CodeBusy {
		t.Fatalf("second reboot: %v, want busy", err)
	}
	if len(cmd.calls) != 1 || len(h.entries) < 1 || h.entries[0].Outcome != string(CodeRebootFailed) {
		t.Errorf("reboot ran %d times; history %+v", len(cmd.calls), h.entries)
	}
}

// The shutdown kills the reboot command before it stops the agent
// (systemctl reboot waiting on its job when systemd stops the agent's
// cgroup): that is the reboot going as planned, not a failure to hold.
func TestRebootCommandKilledByTheShutdown(t *testing.T) {
	ctx, shutdown := context.WithCancel(context.Background())
	cmd := &fakeRebooter{err: errors.New("signal: terminated"), exit: -1, ran: make(chan struct{})}
	r, h := rebootRig(t, ctx, nil, &fakeBoot{id: "b1"}, cmd, nil)
	go func() { <-cmd.ran; time.Sleep(20 * time.Millisecond); shutdown() }()
	if _, err := r.e.Reboot(alice, nil); CodeOf(err) != CodeStopping {
		t.Fatalf("reboot: %v, want agent-stopping", err)
	}
	if st := r.store.st; st.Phase != state.Rebooting || len(h.entries) != 0 {
		t.Fatalf("state %+v, history %+v: want rebooting, nothing recorded", st, h.entries)
	}
}

// A reboot command that does nothing: the boot id stays, and after the
// reboot timeout the server is held with the reason.
func TestRebootThatDoesNotHappenHolds(t *testing.T) {
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, &fakeRebooter{}, nil)
	_, err := r.e.Reboot(alice, nil)
	if CodeOf(err) != CodeRebootFailed || !strings.Contains(err.Error(), "did not reboot within 200ms") {
		t.Fatalf("reboot: %v", err)
	}
	if st := r.store.st; st.Phase != state.Held || st.Holder == nil || st.Holder.Who != "drainctl" {
		t.Fatalf("state: %+v", st)
	}
}

// The agent restarted while the host had not yet gone down: it waits out
// the rest of the reboot timeout, then holds; the command is not run again.
func TestRebootAgentRestartSameBoot(t *testing.T) {
	boot, cmd := &fakeBoot{id: "b1"}, &fakeRebooter{}
	st := state.State{Version: state.Version, Op: state.OpReboot, Phase: state.Rebooting,
		Holder: &state.Holder{Who: "alice"}, Reboot: &state.Reboot{BootID: "b1", Since: time.Unix(1_700_000_000, 0).UTC(), Who: "alice"}}
	r, h := rebootRig(t, context.Background(), &st, boot, cmd, nil)
	if !r.e.Snapshot().Running {
		t.Fatal("the engine must be busy while it waits for the reboot")
	}
	waitIdle(t, r.e)
	if st, _ := r.store.Load(); st.Phase != state.Held || !strings.Contains(st.LastError, "did not reboot") || len(cmd.calls) != 0 {
		t.Fatalf("state %+v, reboot ran %d times", st, len(cmd.calls))
	}
	if len(h.entries) != 1 || h.entries[0].Op != "reboot" {
		t.Errorf("history %+v", h.entries)
	}
}

// Not ready after the boot: held, the slot kept (the pool stops there),
// and nothing reboots it again.
func TestRebootNotReadyAfterBootKeepsSlot(t *testing.T) {
	slots := &fakeSlots{}
	st := state.State{Version: state.Version, Op: state.OpReboot, Phase: state.Rebooting,
		Holder: &state.Holder{Who: "alice"}, Slot: &state.Slot{Pool: "web", Op: state.OpReboot},
		Reboot: &state.Reboot{BootID: "b1", Who: "alice", Start: time.Unix(1_700_000_000, 0).UTC()}}
	boot := &fakeBoot{id: "b2"}
	h := &memHistory{}
	r := newRigDeps(t, context.Background(), &st, func(d *Deps) {
		d.Boot, d.Rebooter, d.History, d.Slots = boot, &fakeRebooter{}, h, slots
		d.BootReady = &fakeReady{err: errors.New("connection refused")}
	})
	waitIdle(t, r.e)
	got, _ := r.store.Load()
	if got.Phase != state.Held || got.Slot == nil || !strings.Contains(got.LastError, "not ready after the reboot") {
		t.Fatalf("state: %+v", got)
	}
	if len(h.entries) != 1 || h.entries[0].Outcome != string(CodeNotReady) {
		t.Errorf("history %+v", h.entries)
	}
	if _, err := r.e.Reboot(alice, nil); CodeOf(err) != CodeBusy {
		t.Errorf("a reboot of the held server: %v, want busy", err)
	}
}

// --if-required on a host that needs nothing: nothing touched, nothing
// recorded; on one that does, the reason is the host's.
func TestRebootIfRequired(t *testing.T) {
	boot := &fakeBoot{id: "b1"}
	r, h := rebootRig(t, context.Background(), nil, boot, &fakeRebooter{}, nil)
	res, err := r.e.Reboot(Request{Who: "cron", IfRequired: true}, nil)
	if err != nil || !strings.HasPrefix(res.Note, "no reboot required") || len(r.fw.calls) != 0 || len(h.entries) != 0 {
		t.Fatalf("not required: %+v, %v, calls %v", res, err, r.fw.calls)
	}
	boot.required = true
	_, err = r.e.Reboot(Request{Who: "cron", IfRequired: true}, nil)
	if CodeOf(err) != CodeRebootFailed { // the fake command does not reboot
		t.Fatalf("required: %v", err)
	}
	if h.entries[0].Reason != "/var/run/reboot-required exists" {
		t.Errorf("reason %q", h.entries[0].Reason)
	}
}

// Interrupted before the reboot command: the next start rolls back.
func TestRebootInterruptedBeforeCommandRollsBack(t *testing.T) {
	st := state.State{Version: state.Version, Op: state.OpReboot, Phase: state.Draining, Holder: &state.Holder{Who: "alice"}}
	r, _ := rebootRig(t, context.Background(), &st, &fakeBoot{id: "b1"}, &fakeRebooter{}, nil)
	waitIdle(t, r.e)
	if got, _ := r.store.Load(); got.Phase != state.InService || got.Op != state.OpNone {
		t.Fatalf("state %+v", got)
	}
}

// Windows: outside, skip changes nothing; a bad window is a bad request.
func TestRebootOutsideWindow(t *testing.T) {
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, &fakeRebooter{}, nil)
	now := r.clock.Now() // 2023-11-14 22:13 UTC, a Tuesday
	req := alice
	req.Window = "Sat 02:00-03:00 UTC"
	_, err := r.e.Reboot(req, nil)
	if CodeOf(err) != CodeOutsideWindow || !strings.Contains(err.Error(), "2023-11-18T02:00:00Z") || len(r.fw.calls) != 0 {
		t.Fatalf("outside: %v, calls %v (now %v)", err, r.fw.calls, now)
	}
	req.Window = "Tue 02:00-03:00 Mars/Olympus"
	if _, err := r.e.Reboot(req, nil); CodeOf(err) != CodeBadRequest {
		t.Fatalf("bad window: %v", err)
	}
	req.Window, req.OutsideWindow = "", OutsideWait
	if _, err := r.e.Reboot(req, nil); CodeOf(err) != CodeBadRequest {
		t.Fatalf("outside_window without a window: %v", err)
	}
}

// A slot granted after the window closed is given back, and the host
// does not go.
func TestWindowClosedWhileWaitingForSlot(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	slots.onAcquire = func() { r.clock.advance(2 * time.Hour) } // the line took two hours
	req := alice
	req.Window = "22:00-23:00 UTC" // the clock is at 22:13
	_, err := r.e.Restart(req, nil)
	if CodeOf(err) != CodeOutsideWindow || !strings.Contains(err.Error(), "closed while waiting") {
		t.Fatalf("restart: %v", err)
	}
	if slots.isHeld() || lastIndex(r.fw.calls, "withdraw") >= 0 {
		t.Fatalf("slot held %v, calls %v", slots.isHeld(), r.fw.calls)
	}
}

// A deadline shorter than the agent's min-wait is a bad request, found
// before anything is withdrawn (it once withdrew and rolled back).
func TestDeadlineBelowMinWaitChangesNothing(t *testing.T) {
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, &fakeRebooter{}, nil)
	req := alice
	req.Deadline = time.Second // the rig's min-wait is 2 s
	for name, op := range map[string]func(Request, func(Event)) (Result, error){"restart": r.e.Restart, "enter": r.e.Enter, "reboot": r.e.Reboot} {
		_, err := op(req, nil)
		if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), "min-wait") || len(r.fw.calls) != 0 {
			t.Errorf("%s: %v, calls %v", name, err, r.fw.calls)
		}
	}
}

// An interrupted rollback before any reboot record (ready-check of op
// reboot, no record) is rolled back, not taken for a finished reboot.
func TestRebootRollbackInterruptedIsNoReboot(t *testing.T) {
	st := state.State{Version: state.Version, Op: state.OpReboot, Phase: state.ReadyCheck, Holder: &state.Holder{Who: "alice"}}
	r, h := rebootRig(t, context.Background(), &st, &fakeBoot{id: "b2"}, &fakeRebooter{}, nil)
	waitIdle(t, r.e)
	if got, _ := r.store.Load(); got.Phase != state.InService || len(h.entries) != 0 {
		t.Fatalf("state %+v, history %+v: want rolled back, no reboot recorded", got, h.entries)
	}
}

// A reboot command killed by a signal is waited out as a reboot (the
// shutdown's SIGTERM): held only once the reboot timeout passed.
func TestRebootCommandKilledWaitsForTheReboot(t *testing.T) {
	cmd := &fakeRebooter{err: errors.New("signal: terminated"), exit: -1}
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, cmd, nil)
	_, err := r.e.Reboot(alice, nil)
	if CodeOf(err) != CodeRebootFailed || !strings.Contains(err.Error(), "did not reboot within") {
		t.Fatalf("reboot: %v", err)
	}
}

// Requests a reboot has no use for are refused before anything.
func TestRebootRefusesWhatDoesNotApply(t *testing.T) {
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, &fakeRebooter{}, nil)
	for _, req := range []Request{{Who: "a", TTL: time.Hour}, {Who: "a", Command: "apt-get upgrade"}, {Who: "a", Force: true}} {
		if _, err := r.e.Reboot(req, nil); CodeOf(err) != CodeBadRequest || len(r.fw.calls) != 0 {
			t.Errorf("%+v: %v, calls %v", req, err, r.fw.calls)
		}
	}
}

// A window that closes during the drain: back in service, no reboot.
func TestRebootWindowClosedDuringDrain(t *testing.T) {
	cmd := &fakeRebooter{}
	r, _ := rebootRig(t, context.Background(), nil, &fakeBoot{id: "b1"}, cmd, nil)
	req := alice
	req.Window = "22:13-22:14 UTC" // open at 22:13:58; the drain's 2 s min-wait ends past 22:14
	r.clock.advance(38 * time.Second)
	_, err := r.e.Reboot(req, nil)
	if CodeOf(err) != CodeOutsideWindow || !strings.Contains(err.Error(), "closed during the drain") || len(cmd.calls) != 0 {
		t.Fatalf("reboot: %v, reboot ran %d times", err, len(cmd.calls))
	}
	if st, _ := r.store.Load(); st.Phase != state.InService {
		t.Fatalf("state %+v", st)
	}
}
