package maintenance

import (
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
)

// systemd, restarting apache2 for someone else, as the guard's hook asks.
var sysRestart = Request{Who: "systemd", Reason: "dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1", Unit: "apache2.service", Job: JobRestart}

func started(unit string) Request { return Request{Who: "systemd", Unit: unit} }

// calls is the forwarder's calls, without the phases they were made in.
func calls(r *rig) string {
	var out []string
	for _, c := range r.fw.Calls() {
		op, _, _ := strings.Cut(c, "@")
		out = append(out, op)
	}
	return strings.Join(out, ",")
}

// A restart by someone else: out (withdraw, drain) before the unit
// stops, new connections held through the gap, held with the unit as
// holder; back after its start, the hold released first; one history
// entry each, naming who asked.
func TestWebRestartTakenOutAndPutBack(t *testing.T) {
	r := newRig(t, nil)
	h := &memHistory{}
	r.e.d.History = h
	res, err := r.e.WebStop(sysRestart, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := r.e.led.get()
	if st.Phase != state.Held || st.Holder == nil || st.Holder.Unit != "apache2.service" || st.Holder.Who != "systemd" ||
		!strings.Contains(st.Holder.Reason, "dpkg: apache2") || !r.fw.withdrawn || !r.fw.isHeld() {
		t.Fatalf("after web-stop: %+v %+v, withdrawn %v held %v", st, st.Holder, r.fw.withdrawn, r.fw.isHeld())
	}
	if res.Drain == nil || !strings.Contains(res.Note, "until apache2.service starts again") || !strings.Contains(res.Note, "new connections held") {
		t.Fatalf("result: %+v", res)
	}
	if got := calls(r); got != "withdraw,hold" {
		t.Fatalf("calls %s", got)
	}
	// Another unit's start (php-fpm's, at boot before Apache) ends no
	// hold of Apache's: only the release of the connections' hold.
	if res, err := r.e.WebStart(started("php8.2-fpm.service"), nil); err != nil || r.e.Phase() != state.Held || !strings.Contains(res.Note, "nothing to put back") {
		t.Fatalf("another unit's start: %v %+v", err, res)
	}
	if r.fw.isHeld() {
		t.Fatal("the connections' hold outlived a unit's start")
	}
	res, err = r.e.WebStart(started("apache2.service"), nil)
	if err != nil || r.e.Phase() != state.InService || r.fw.withdrawn || r.e.led.get().Holder != nil {
		t.Fatalf("web-start: %v %+v", err, res)
	}
	if len(h.entries) != 2 || h.entries[0].Op != "web-stop" || h.entries[1].Op != "web-start" || !strings.Contains(h.entries[0].Reason, "dpkg: apache2") ||
		h.entries[1].Reason != h.entries[0].Reason {
		t.Fatalf("history: %+v", h.entries)
	}
}

// A plain stop: the server stays out, its pool slot kept, until the
// start; new connections are held (at most HoldStopMax). A shutdown
// holds none: the reboot ends the sessions anyway.
func TestWebStopKeepsTheSlotUntilStart(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	req := sysRestart
	req.Job, req.Reason = JobStop, "systemctl stop apache2 by alice"
	if _, err := r.e.WebStop(req, nil); err != nil {
		t.Fatal(err)
	}
	if !r.fw.isHeld() || !slots.isHeld() || r.e.Phase() != state.Held {
		t.Fatalf("after a stop: held conns %v, slot %v, %s", r.fw.isHeld(), slots.isHeld(), r.e.Phase())
	}
	if _, err := r.e.WebStart(started("apache2.service"), nil); err != nil {
		t.Fatal(err)
	}
	if slots.isHeld() || r.e.Phase() != state.InService || r.fw.isHeld() {
		t.Fatalf("after the start: slot %v, %s, held conns %v", slots.isHeld(), r.e.Phase(), r.fw.isHeld())
	}
	req.Job = JobShutdown
	if _, err := r.e.WebStop(req, nil); err != nil || r.fw.isHeld() || r.e.Phase() != state.Held {
		t.Fatalf("a shutdown: %v, held conns %v, %s", err, r.fw.isHeld(), r.e.Phase())
	}
}

// A server already out (a person's hold, a maintenance run whose command
// restarts Apache) stays as it is: the restart only holds new
// connections, and the start only releases them.
func TestWebRestartOfAHeldServer(t *testing.T) {
	r := newRig(t, nil)
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	h := &memHistory{}
	r.e.d.History = h
	r.fw.mu.Lock()
	r.fw.calls = nil
	r.fw.mu.Unlock()
	res, err := r.e.WebStop(sysRestart, nil)
	if err != nil || !strings.Contains(res.Note, "already out of rotation") || r.e.led.get().Holder.Who != "alice" {
		t.Fatalf("web-stop of a held server: %v %+v", err, res)
	}
	if _, err := r.e.WebStart(started("apache2.service"), nil); err != nil {
		t.Fatal(err)
	}
	if got := calls(r); got != "hold,release" || r.e.Phase() != state.Held || r.e.led.get().Holder.Who != "alice" {
		t.Fatalf("calls %s, %s held by %+v", got, r.e.Phase(), r.e.led.get().Holder)
	}
	if len(h.entries) != 1 || h.entries[0].Op != "web-stop" {
		t.Fatalf("history (the start had nothing to put back): %+v", h.entries)
	}
}

// No slot within the web wait: the stop goes ahead over the budget (the
// unit stops whatever drainctl says), taken out all the same, and the
// result and the history say so. etcd down: the same.
func TestWebStopOverTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		slots *fakeSlots
		want  string
	}{
		{"pool full", &fakeSlots{busy: true}, "no slot of pool web within 200ms"},
		{"etcd down", &fakeSlots{down: true}, "no answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigDeps(t, t.Context(), nil, func(d *Deps) { d.Slots = tc.slots; d.WebWait = 200 * time.Millisecond })
			h := &memHistory{}
			r.e.d.History = h
			res, err := r.e.WebStop(sysRestart, nil)
			if err != nil || r.e.Phase() != state.Held || !r.fw.withdrawn {
				t.Fatalf("%v %+v", err, res)
			}
			if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "over the pool's budget") || !strings.Contains(res.Warnings[0], tc.want) {
				t.Fatalf("warnings %q", res.Warnings)
			}
			if len(h.entries) != 1 || !h.entries[0].OverBudget || len(h.entries[0].Warnings) == 0 || !strings.Contains(h.entries[0].Warnings[0], "over the pool's budget") {
				t.Fatalf("history %+v", h.entries)
			}
		})
	}
}

// An agent that starts releases a hold its last run left (stopped
// between the web server's stop and start): nothing else would.
func TestResumeReleasesAHoldLeft(t *testing.T) {
	r := newRig(t, nil)
	if _, err := r.e.WebStop(sysRestart, nil); err != nil || !r.fw.isHeld() {
		t.Fatalf("%v, held %v", err, r.fw.isHeld())
	}
	st, _ := r.store.Load()
	r2 := newRig(t, &st)
	r2.fw.held = true // the kernel's rules, as the last run left them
	if _, err := r2.e.Resume(); err != nil {
		t.Fatal(err)
	}
	if r2.fw.isHeld() || r2.e.Phase() != state.Held {
		t.Fatalf("after the agent's start: held %v, %s", r2.fw.isHeld(), r2.e.Phase())
	}
}

// A hold of connections that fails is a warning; the stop goes on.
func TestWebRestartHoldFails(t *testing.T) {
	r := newRig(t, nil)
	r.fw.failHold = true
	res, err := r.e.WebStop(sysRestart, nil)
	if err != nil || r.e.Phase() != state.Held || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "hold new connections") {
		t.Fatalf("%v %+v", err, res)
	}
}

// The hook's requests are checked like every other: the unit named and
// well-formed, the job known, nothing that does not apply.
func TestWebRequestsChecked(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct {
		req   Request
		field string
	}{
		{Request{Who: "systemd", Job: JobRestart}, "unit"},
		{Request{Who: "systemd", Unit: "apache2; rm -rf /", Job: JobRestart}, "unit"},
		{Request{Who: "systemd", Unit: "apache2.service", Job: "reload"}, "job"},
		{Request{Who: "systemd", Unit: "apache2.service", Job: JobStop, TTL: time.Hour}, "ttl_ms"},
		{Request{Who: "systemd", Unit: "apache2.service", Job: JobStop, Window: "02:00-03:00"}, "window"},
	} {
		if _, err := r.e.WebStop(tc.req, nil); CodeOf(err) != CodeBadRequest || FieldOf(err) != tc.field {
			t.Errorf("%+v: %v (field %q), want bad-request on %s", tc.req, err, FieldOf(err), tc.field)
		}
	}
	if _, err := r.e.WebStart(Request{Who: "systemd"}, nil); FieldOf(err) != "unit" {
		t.Errorf("web-start without a unit: %v", err)
	}
	if len(r.fw.Calls()) != 0 || r.e.Phase() != state.InService {
		t.Fatalf("a refused request changed something: %v", r.fw.Calls())
	}
}

// While another operation runs (drainctl's own reboot, a restart), the
// hook is told busy at once: that operation has the server out.
func TestWebStopBusyDuringAnOperation(t *testing.T) {
	r := newRig(t, nil)
	gate := make(chan struct{})
	r.table.gate = gate
	done := make(chan error)
	go func() { _, err := r.e.Restart(alice, nil); done <- err }()
	for i := 0; r.store.last() != state.Draining; i++ {
		if i > 2000 {
			t.Fatal("the restart never started draining")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := r.e.WebStop(sysRestart, nil)
	wantCode(t, err, CodeBusy)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("busy after %v", time.Since(start))
	}
	close(gate)
	if err := within(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// php-fpm's restart behind the web server: out as for the web server's,
// but new connections held whether the web server listens or not (it
// does all along), its keep-alive connections closed by a graceful
// reload before php-fpm stops; back after php-fpm's start, through the
// readiness check, the hold released first.
func TestWebRestartBehindTheWebServer(t *testing.T) {
	r := newRig(t, nil)
	fpm := Request{Who: "systemd", Reason: "systemctl restart php8.2-fpm by alice (pts/0)", Unit: "php8.2-fpm.service", Job: JobRestart}
	res, err := r.e.WebStop(fpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := calls(r); got != "withdraw,hold-all" || !r.fw.isHeld() {
		t.Fatalf("calls %s, held %v", got, r.fw.isHeld())
	}
	if strings.Join(r.run.calls, ",") != "restart" || res.Restart == nil || len(res.Warnings) != 0 {
		t.Fatalf("runner calls %v, result %+v", r.run.calls, res)
	}
	if st := r.e.led.get(); st.Phase != state.Held || st.Holder == nil || st.Holder.Unit != "php8.2-fpm.service" {
		t.Fatalf("after web-stop: %+v", st)
	}
	// Apache's start (at boot, say) does not put php-fpm's hold back.
	if res, err := r.e.WebStart(started("apache2.service"), nil); err != nil || r.e.Phase() != state.Held || !strings.Contains(res.Note, "nothing to put back") {
		t.Fatalf("another unit's start: %v %+v", err, res)
	}
	if _, err := r.e.WebStop(fpm, nil); err != nil {
		t.Fatal(err)
	}
	ready := r.ready.calls
	res, err = r.e.WebStart(started("php8.2-fpm.service"), nil)
	if err != nil || r.e.Phase() != state.InService || r.fw.isHeld() || r.ready.calls != ready+1 {
		t.Fatalf("web-start: %v %+v, held %v, ready checks %d", err, res, r.fw.isHeld(), r.ready.calls)
	}
	if got := calls(r); !strings.HasSuffix(got, ",release,restore") {
		t.Fatalf("calls %s", got)
	}
	// A server a person holds: php-fpm's restart holds everything and
	// closes the keep-alive connections all the same (the sticky users
	// still come through the backup entry); it stays the person's.
	r3 := newRig(t, nil)
	if _, err := r3.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	r3.fw.mu.Lock()
	r3.fw.calls = nil
	r3.fw.mu.Unlock()
	if res, err := r3.e.WebStop(fpm, nil); err != nil || !strings.Contains(res.Note, "already out of rotation") || calls(r3) != "hold-all" ||
		strings.Join(r3.run.calls, ",") != "restart" || r3.e.led.get().Holder.Who != "alice" {
		t.Fatalf("php-fpm's stop of a held server: %v %+v, calls %s, runner %v", err, res, calls(r3), r3.run.calls)
	}
	// A reload that fails is a warning: php-fpm stops all the same.
	r2 := newRig(t, nil)
	r2.run.restartErr = errBoom
	res, err = r2.e.WebStop(fpm, nil)
	if err != nil || r2.e.Phase() != state.Held || !r2.fw.isHeld() || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "keep-alive") {
		t.Fatalf("%v %+v", err, res)
	}
}

// Which units run behind the web server.
func TestBehindWeb(t *testing.T) {
	for unit, want := range map[string]bool{"php8.2-fpm.service": true, "php-fpm.service": true, "php7.4-fpm.service": true,
		"apache2.service": false, "nginx.service": false, "php8.2-fpm.socket": false, "myphp8.2-fpm.service": false} {
		if got := behindWeb(unit); got != want {
			t.Errorf("behindWeb(%q) = %v, want %v", unit, got, want)
		}
	}
}
