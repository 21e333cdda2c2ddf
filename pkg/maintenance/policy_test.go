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

// dpkgRestart is what policy-rc.d asks for apache2's postinst.
var dpkgRestart = Request{Who: "dpkg", Reason: "dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1", Unit: "apache2.service", Job: "restart"}

// unitRestarts is a fake systemd: systemctl restart and nginx's binary
// upgrade note each unit ("upgrade UNIT" for the latter), and the
// forwarder's calls so far (what was done before it); replaced is what
// /proc says the unit's main process runs that was replaced (the binary,
// unless a test says), replacedErr its failure, upgradeErr the binary
// upgrade's.
type unitRestarts struct {
	mu                      sync.Mutex
	units                   []string
	before                  []string
	replaced                []string
	replacedErr, upgradeErr error
	r                       *rig
	done                    chan struct{}
}

func (u *unitRestarts) restart(_ context.Context, unit string) (runner.Output, error) {
	return u.note(unit, "systemctl restart "+unit, nil)
}

func (u *unitRestarts) upgrade(_ context.Context, unit string) (runner.Output, error) {
	u.mu.Lock()
	err := u.upgradeErr
	u.mu.Unlock()
	return u.note("upgrade "+unit, "/etc/init.d/nginx upgrade", err)
}

func (u *unitRestarts) note(what, cmd string, err error) (runner.Output, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.units = append(u.units, what)
	u.before = append(u.before, calls(u.r))
	if err == nil {
		select {
		case <-u.done:
		default:
			close(u.done)
		}
	}
	return runner.Output{Command: cmd}, err
}

func (u *unitRestarts) stale(context.Context, string) ([]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.replaced, u.replacedErr
}

// newPolicyRig is a rig with the fake systemd and a history; slots nil
// for no pool.
func newPolicyRig(t *testing.T, slots *fakeSlots, initial *state.State, packagesBusy func() bool) (*rig, *unitRestarts, *memHistory) {
	t.Helper()
	u := &unitRestarts{done: make(chan struct{}), replaced: []string{"/usr/sbin/apache2"}}
	h := &memHistory{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := newRigDeps(t, ctx, initial, func(d *Deps) {
		if slots != nil {
			d.Slots = slots
		}
		d.PoolWait, d.WebWait, d.History = 100*time.Millisecond, 100*time.Millisecond, h
		d.UnitRestart, d.UnitUpgrade, d.Replaced, d.WebUnit, d.PackagesBusy = u.restart, u.upgrade, u.stale, "apache2.service", packagesBusy
	})
	u.r = r
	if slots != nil {
		slots.log = &r.fw.calls
	}
	return r, u, h
}

// waitRestart waits (bounded) for the owed restart to have run and the
// engine to be idle again.
func waitRestart(t *testing.T, r *rig, u *unitRestarts, h *memHistory) {
	t.Helper()
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart owed never ran")
	}
	// Its history entry is written once the engine is let go.
	for i := 0; ; i++ {
		h.mu.Lock()
		n := len(h.entries)
		h.mu.Unlock()
		if n > 0 {
			break
		}
		if i == 1000 {
			t.Fatal("the restart owed left no history entry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.e.led.get().Op != state.OpNone {
		t.Fatalf("an operation still runs: %+v", r.e.led.get())
	}
}

// The pool full: dpkg's restart is deferred (101), owed in the state
// file; once the slot comes drainctl restarts the unit itself, drained
// (slot, withdraw, new connections held, the restart, release, restore,
// slot back), and the owed record goes; the history names it.
func TestPolicyDefersUntilASlotThenRestartsDrained(t *testing.T) {
	slots := &fakeSlots{busy: true, freed: make(chan struct{})}
	r, u, h := newPolicyRig(t, slots, nil, func() bool { return false })
	ans, err := r.e.WebPolicy(dpkgRestart)
	if err != nil || !ans.Defer || ans.Owed == nil || ans.Owed.Unit != "apache2.service" || !strings.Contains(ans.Note, "deferred") {
		t.Fatalf("policy: %+v, %v", ans, err)
	}
	saved, _ := r.store.Load()
	if saved.Owed == nil || saved.Owed.Reason != dpkgRestart.Reason || saved.Owed.Action != "restart" {
		t.Fatalf("the restart owed is not in the state file: %+v", saved.Owed)
	}
	// A second package of the same upgrade asks again: the same restart.
	again := dpkgRestart
	again.Job = "try-restart"
	if ans, err := r.e.WebPolicy(again); err != nil || !ans.Defer || !strings.Contains(ans.Note, "owed already") {
		t.Fatalf("policy again: %+v, %v", ans, err)
	}
	// Waiting in line: nothing touched, still in service, still owed.
	if r.e.Phase() != state.InService || r.fw.withdrawn || len(u.units) != 0 || r.e.led.get().Owed == nil {
		t.Fatalf("while the pool is full: %s, withdrawn %v, restarts %v", r.e.Phase(), r.fw.withdrawn, u.units)
	}
	close(slots.freed)
	waitRestart(t, r, u, h)
	st := r.e.led.get()
	if st.Phase != state.InService || st.Owed != nil || r.fw.withdrawn || r.fw.isHeld() || slots.isHeld() {
		t.Fatalf("after the owed restart: %+v, withdrawn %v, conns held %v, slot %v", st, r.fw.withdrawn, r.fw.isHeld(), slots.isHeld())
	}
	if len(u.units) != 1 || u.units[0] != "apache2.service" || u.before[0] != "acquire,withdraw,hold" {
		t.Fatalf("restarts %v, before them %v", u.units, u.before)
	}
	if got := calls(r); got != "acquire,withdraw,hold,release,restore,release" {
		t.Errorf("calls %s", got)
	}
	if len(h.entries) != 1 || h.entries[0].Op != "restart" || h.entries[0].Reason != dpkgRestart.Reason+" (deferred for a pool slot)" {
		t.Fatalf("history: %+v", h.entries)
	}
}

// What policy-rc.d does not defer: another action, a server already out
// (the guard's stop finds it).
func TestPolicyGoesOn(t *testing.T) {
	r, u, _ := newPolicyRig(t, &fakeSlots{busy: true}, nil, func() bool { return false })
	for _, job := range []string{"start", "stop", "reload", "status"} {
		req := dpkgRestart
		req.Job = job
		if ans, err := r.e.WebPolicy(req); err != nil || ans.Defer {
			t.Errorf("%s: %+v, %v", job, ans, err)
		}
	}
	bad := dpkgRestart
	bad.Unit = "apache2 restart; rm"
	if _, err := r.e.WebPolicy(bad); err == nil {
		t.Error("a malformed unit was taken")
	}
	if _, err := r.e.Enter(alice, nil); err == nil {
		t.Fatal("enter with the pool full")
	}
	held := state.State{Version: state.Version, Phase: state.Held, Holder: &state.Holder{Who: "alice", Since: time.Now()}}
	rh, _, _ := newPolicyRig(t, &fakeSlots{busy: true}, &held, func() bool { return false })
	if ans, err := rh.e.WebPolicy(dpkgRestart); err != nil || ans.Defer || rh.e.led.get().Owed != nil {
		t.Errorf("held: %+v, %v", ans, err)
	}
	if len(u.units) != 0 || r.e.led.get().Owed != nil {
		t.Errorf("restarts %v, owed %+v", u.units, r.e.led.get().Owed)
	}
}

// A restart owed when the agent stopped is run by the next one, after
// the package manager is done; a restart by systemd meanwhile (a
// person's), drained as ever while the owed one waits for its slot,
// clears it.
func TestOwedRestartSurvivesTheAgentAndWaitsForDpkg(t *testing.T) {
	owed := state.State{Version: state.Version, Phase: state.InService,
		Owed: &state.Owed{Unit: "apache2.service", Action: "restart", Reason: "dpkg: apache2", Since: time.Unix(1_700_000_000, 0)}}
	var mu sync.Mutex
	dpkg := true
	asked := make(chan struct{}, 1)
	busy := func() bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case asked <- struct{}{}:
		default:
		}
		return dpkg
	}
	r, u, h := newPolicyRig(t, &fakeSlots{}, &owed, busy)
	<-asked
	if len(u.units) != 0 || r.e.led.get().Owed == nil {
		t.Fatalf("restarted while dpkg runs: %v", u.units)
	}
	mu.Lock()
	dpkg = false
	mu.Unlock()
	waitRestart(t, r, u, h)
	if st := r.e.led.get(); st.Owed != nil || st.Phase != state.InService || len(h.entries) != 1 || !strings.Contains(h.entries[0].Reason, "deferred") {
		t.Fatalf("after: %+v, history %+v", st, h.entries)
	}

	r2, u2, _ := newPolicyRig(t, &fakeSlots{busy: true}, nil, func() bool { return false })
	if ans, _ := r2.e.WebPolicy(dpkgRestart); !ans.Defer {
		t.Fatal("not deferred")
	}
	hand := sysRestart
	hand.Reason = "systemctl restart apache2 by alice"
	// The owed restart waits in the pool's line without claiming the
	// engine: a person's restart meanwhile is drained, not busy.
	if _, err := r2.e.WebStop(hand, nil); err != nil {
		t.Fatalf("a restart by hand while the restart owed waits for a slot: %v", err)
	}
	if st := r2.e.led.get(); st.Owed != nil {
		t.Fatalf("a restart by hand left the restart owed: %+v", st.Owed)
	}
	if len(u2.units) != 0 {
		t.Fatalf("restarts: %v", u2.units)
	}
}

// Without a pool too, dpkg's restart is taken over: once the package
// manager is done drainctl does the cheapest action the new files need,
// drained. Nothing the server runs replaced: the web server's config
// test and graceful reload, no restart, no hold of new connections.
func TestOwedReloadWhenNothingItRunsWasReplaced(t *testing.T) {
	r, u, h := newPolicyRig(t, nil, nil, func() bool { return false })
	u.mu.Lock()
	u.replaced = nil
	u.mu.Unlock()
	ans, err := r.e.WebPolicy(dpkgRestart)
	if err != nil || !ans.Defer || !strings.Contains(ans.Note, "once the package manager is done") || strings.Contains(ans.Note, "pool") {
		t.Fatalf("policy without a pool: %+v, %v", ans, err)
	}
	waitHistory(t, r, h)
	if len(u.units) != 0 {
		t.Fatalf("restarted %v: a reload would do", u.units)
	}
	if got := strings.Join(r.run.calls, ","); got != "configtest,restart" {
		t.Fatalf("the web server's commands: %s, want its config test and graceful reload", got)
	}
	if got := calls(r); got != "withdraw,restore" {
		t.Errorf("forwarder calls %s (no hold: the listener stays)", got)
	}
	e := h.entries[0]
	if e.Op != "restart" || e.Reason != dpkgRestart.Reason || !strings.Contains(e.Action, "reload: it runs the binary and libraries on disk") {
		t.Fatalf("history: %+v", e)
	}
	if st := r.e.led.get(); st.Owed != nil || st.Phase != state.InService {
		t.Fatalf("after: %+v", st)
	}
}

// The choice, case by case: Apache's binary replaced is a restart with
// new connections held; nginx's, its binary upgrade (no hold: its
// listener stays), and its restart if the upgrade fails; a unit that is
// not the agent's web server, or one whose files cannot be read, a
// restart.
func TestOwedActionIsTheCheapest(t *testing.T) {
	nginx := dpkgRestart
	nginx.Unit, nginx.Reason = "nginx.service", "dpkg: nginx-common 1.22.1-9+deb12u9 → 1.22.1-9+deb12u12"
	fpm := dpkgRestart
	fpm.Unit = "php8.2-fpm.service"
	cases := []struct {
		name        string
		req         Request
		replaced    []string
		replacedErr error
		upgradeErr  error
		units       string // the fake systemd's actions
		fw          string // the forwarder's calls
		note        string
		reload      string // the web server's commands run
	}{
		{"apache's binary replaced", dpkgRestart, []string{"/usr/sbin/apache2"}, nil, nil,
			"apache2.service", "withdraw,hold,release,restore", "restart: /usr/sbin/apache2 replaced: a new process", ""},
		{"nginx's binary replaced", nginx, []string{"/usr/sbin/nginx"}, nil, nil,
			"upgrade nginx.service", "withdraw,restore", "upgrade: /usr/sbin/nginx replaced: its binary upgrade, which keeps the listener", ""},
		{"nginx's upgrade fails", nginx, []string{"/usr/sbin/nginx"}, nil, errors.New("exit status 2"),
			"upgrade nginx.service,nginx.service", "withdraw,hold,release,restore", "restart: /usr/sbin/nginx replaced: its binary upgrade, which keeps the listener; the binary upgrade failed", ""},
		// php-fpm: held whatever listens (the web server does), and the
		// web server's keep-alive connections closed by its reload first.
		{"php-fpm, behind the web server", fpm, nil, nil, nil,
			"php8.2-fpm.service", "withdraw,hold-all,release,restore", "restart: not the agent's web server", "restart"},
		{"files not known", dpkgRestart, nil, errors.New("no main process"), nil,
			"apache2.service", "withdraw,hold,release,restore", "restart: whether it runs the files on disk is not known (no main process): restarted", ""},
		{"many libraries", dpkgRestart, []string{"/a.so", "/b.so", "/c.so", "/d.so", "/e.so"}, nil, nil,
			"apache2.service", "withdraw,hold,release,restore", "restart: /a.so, /b.so, /c.so and 2 more replaced", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, u, h := newPolicyRig(t, nil, nil, func() bool { return false })
			u.mu.Lock()
			u.replaced, u.replacedErr, u.upgradeErr = c.replaced, c.replacedErr, c.upgradeErr
			u.mu.Unlock()
			if ans, err := r.e.WebPolicy(c.req); err != nil || !ans.Defer {
				t.Fatalf("policy: %+v, %v", ans, err)
			}
			waitHistory(t, r, h)
			u.mu.Lock()
			units := strings.Join(u.units, ",")
			u.mu.Unlock()
			if units != c.units {
				t.Errorf("systemd did %q, want %q", units, c.units)
			}
			if got := calls(r); got != c.fw {
				t.Errorf("forwarder calls %s, want %s", got, c.fw)
			}
			if got := strings.Join(r.run.calls, ","); got != c.reload {
				t.Errorf("the web server's commands: %q, want %q", got, c.reload)
			}
			if e := h.entries[0]; e.Outcome != "ok" || !strings.Contains(e.Action, c.note) {
				t.Errorf("history: %+v, want a note with %q", e, c.note)
			}
		})
	}
}

// nginx's postinst asks for its binary upgrade after nginx-common asked
// for a restart: the same restart owed.
func TestPolicyDefersNginxUpgrade(t *testing.T) {
	r, _, _ := newPolicyRig(t, &fakeSlots{busy: true}, nil, func() bool { return false })
	req := dpkgRestart
	req.Unit, req.Job = "nginx.service", "upgrade"
	ans, err := r.e.WebPolicy(req)
	if err != nil || !ans.Defer || ans.Owed == nil || ans.Owed.Action != "upgrade" {
		t.Fatalf("nginx upgrade: %+v, %v", ans, err)
	}
	req.Job = "restart"
	if ans, err := r.e.WebPolicy(req); err != nil || !ans.Defer || !strings.Contains(ans.Note, "owed already") {
		t.Fatalf("then a restart: %+v, %v", ans, err)
	}
}

// waitHistory waits (bounded) for the owed operation's history entry and
// the engine to be idle.
func waitHistory(t *testing.T, r *rig, h *memHistory) {
	t.Helper()
	for i := 0; ; i++ {
		h.mu.Lock()
		n := len(h.entries)
		h.mu.Unlock()
		if n > 0 && r.e.led.get().Op == state.OpNone {
			return
		}
		if i == 1000 {
			t.Fatal("the restart owed left no history entry")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
