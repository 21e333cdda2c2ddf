package maintenance

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/state"
)

// between runs body as an operation of op: the opening, what someone
// else does in between, and the closing, as the next issue's out-of-band
// restarts will (Engine.TakeOut and PutBack would be e.operate around
// each).
func between(e *Engine, op state.Op, req Request, body func(*opRun) error) (Result, error) {
	return e.operate(op, req, nil, body)
}

// The opening and the closing alone: the slot, the note of the withdraw,
// then ready-check, restore and the slot given back, each phase written
// before it is acted on.
func TestTakeOutThenPutBack(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	res, err := between(r.e, state.OpRestart, alice, func(r *opRun) error {
		if err := r.takeOut(opening{note: "systemd restarts apache2"}); err != nil {
			return err
		}
		return r.putBack(closing{note: "apache2 started"})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := phases(state.InService, state.Withdrawing, state.Draining, state.ReadyCheck, state.Restoring, state.InService, state.InService)
	if !reflect.DeepEqual(r.store.saves, want) {
		t.Errorf("written %v, want %v (the slot, the phases, its release)", r.store.saves, want)
	}
	if got := r.fw.Calls(); !reflect.DeepEqual(got, []string{"acquire", "withdraw@withdrawing", "restore@restoring", "release"}) {
		t.Errorf("calls %v", got)
	}
	st, _ := r.store.Load()
	notes := map[state.Phase]string{}
	for _, tr := range st.History {
		notes[tr.Phase] = tr.Note
	}
	if notes[state.Withdrawing] != "systemd restarts apache2" || notes[state.ReadyCheck] != "apache2 started" || st.Slot != nil || st.Holder != nil {
		t.Errorf("state %+v", st)
	}
	if res.Drain == nil || !strings.Contains(res.Note, "pool web: slot released") || slots.isHeld() {
		t.Errorf("result %+v, held %v", res, slots.isHeld())
	}
}

// The window is the opening's option: without it, a closed window does
// not keep the server in.
func TestTakeOutWindowOption(t *testing.T) {
	r := newRig(t, nil)
	req := alice
	req.Window = "Sat 02:00-03:00 UTC" // the clock is on a Tuesday
	out := func(window bool) error {
		_, err := between(r.e, state.OpEnter, req, func(r *opRun) error {
			if err := r.takeOut(opening{window: window}); err != nil {
				return err
			}
			r.hold(nil, "")
			return nil
		})
		return err
	}
	if err := out(true); CodeOf(err) != CodeOutsideWindow || len(r.fw.Calls()) != 0 {
		t.Fatalf("within the window: %v, calls %v", err, r.fw.Calls())
	}
	if err := out(false); err != nil || r.e.Phase() != state.Held || !r.fw.withdrawn {
		t.Fatalf("without the window: %v, phase %s", err, r.e.Phase())
	}
}

// grace: with every load balancer confirming, a busy server's drain ends
// with the requests in flight (a restart's), not at the deadline.
func TestTakeOutGrace(t *testing.T) {
	e, _ := newRotationRig(t, &fakeRotation{lbs: []lbview.LB{lb1}}, true)
	res, err := between(e, state.OpRestart, alice, func(r *opRun) error {
		if err := r.takeOut(opening{grace: true}); err != nil {
			return err
		}
		return r.putBack(closing{note: "restarted elsewhere"})
	})
	if err != nil || res.Drain.Outcome != drain.InFlightDone {
		t.Fatalf("%+v, %v", res.Drain, err)
	}
}

// The closing's readiness option replaces the engine's, and a failure
// names when it ran; the server stays out, held by drainctl.
func TestPutBackReadinessOption(t *testing.T) {
	held := state.State{Version: state.Version, Phase: state.Held, Holder: &state.Holder{Who: "alice"}}
	r := newRig(t, &held)
	boot := &fakeReady{err: errors.New("connection refused")}
	_, err := between(r.e, state.OpExit, alice, func(r *opRun) error {
		return r.putBack(closing{note: "apache2 started", ready: boot, after: " after systemd started it"})
	})
	wantCode(t, err, CodeNotReady)
	st, _ := r.store.Load()
	if !strings.Contains(err.Error(), "web server not ready after systemd started it") || boot.calls != 1 || r.ready.calls != 0 ||
		st.Phase != state.Held || st.Holder == nil || st.Holder.Who != "drainctl" || !r.fw.withdrawn {
		t.Fatalf("%v; ready %d/%d; state %+v", err, boot.calls, r.ready.calls, st)
	}
	if err := r.e.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
}
