package health

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

var (
	refusing   = lbview.Down{LB: lbview.LB{Addr: netip.MustParseAddr("10.0.0.2"), Port: 81}}
	unanswered = lbview.Down{LB: lbview.LB{Addr: netip.MustParseAddr("10.0.0.3"), Port: 81}, Unanswered: true}
)

func TestJudge(t *testing.T) {
	ready := Inputs{InService: true, ReadyKnown: true, Ready: true}
	for _, c := range []struct {
		name     string
		in       func(Inputs) Inputs
		want     pool.Health
		complete bool
	}{
		{"in service, ready, no load balancer", func(in Inputs) Inputs { return in }, pool.Health{InService: true}, true},
		{"readiness not decided yet", func(in Inputs) Inputs { in.ReadyKnown, in.Ready = false, false; return in }, pool.Health{}, false},
		{"not decided, and the load balancers refuse: still wait for the readiness check",
			func(in Inputs) Inputs { in.ReadyKnown, in.Down = false, []lbview.Down{refusing}; return in }, pool.Health{}, false},
		{"held, readiness not decided: the maintenance decides alone",
			func(in Inputs) Inputs {
				in.InService, in.PhaseWhy, in.ReadyKnown = false, "in maintenance (held)", false
				return in
			},
			pool.Health{Why: "in maintenance (held)"}, true},
		{"held and the web server down: the maintenance says why",
			func(in Inputs) Inputs {
				in.InService, in.PhaseWhy, in.Ready, in.ReadyWhy = false, "in maintenance (restart)", false, "connection refused"
				return in
			}, pool.Health{Why: "in maintenance (restart)"}, true},
		{"web server not ready, load balancers refusing: the web server is the cause",
			func(in Inputs) Inputs {
				in.Ready, in.ReadyWhy, in.Down = false, `Get "http://127.0.0.1:80/": connection refused`, []lbview.Down{refusing}
				return in
			}, pool.Health{Why: `web server not answering: Get "http://127.0.0.1:80/": connection refused`}, true},
		{"ready, but the load balancers see it out",
			func(in Inputs) Inputs { in.Down = []lbview.Down{refusing, unanswered}; return in },
			pool.Health{Why: "load balancer 10.0.0.2: checks on port 81 refused; load balancer 10.0.0.3: checks on port 81 unanswered"}, true},
	} {
		h, complete := Judge(c.in(ready))
		if h != c.want || complete != c.complete {
			t.Errorf("%s: %+v, %v; want %+v, %v", c.name, h, complete, c.want, c.complete)
		}
	}
}

// Fall failures in a row take the web server out, Rise successes in a
// row put it back; nothing is known before either; the failure that took
// it out stays its reason while it stays out.
func TestReadiness(t *testing.T) {
	refused, reset := errors.New("connection refused"), errors.New("read tcp 127.0.0.1:54321: connection reset")
	type verdict struct {
		known, ready bool
		why          string
	}
	r := Readiness{Fall: 2, Rise: 3}
	for i, c := range []struct {
		err  error
		want verdict
	}{
		{nil, verdict{}},
		{refused, verdict{}},
		{nil, verdict{}},
		{nil, verdict{}},
		{nil, verdict{true, true, ""}},
		{refused, verdict{true, true, ""}},
		{nil, verdict{true, true, ""}},
		{refused, verdict{true, true, ""}},
		{refused, verdict{true, false, "connection refused"}},
		{reset, verdict{true, false, "connection refused"}},
		{nil, verdict{true, false, "connection refused"}},
		{nil, verdict{true, false, "connection refused"}},
		{reset, verdict{true, false, "connection refused"}},
		{nil, verdict{true, false, "connection refused"}},
		{nil, verdict{true, false, "connection refused"}},
		{nil, verdict{true, true, ""}},
	} {
		r.Add(c.err)
		var got verdict
		got.known, got.ready, got.why = r.Verdict()
		if got != c.want {
			t.Fatalf("after probe %d (%v): %+v, want %+v", i+1, c.err, got, c.want)
		}
	}
	// Failures first: out after Fall of them, with the first judgement.
	r = Readiness{Fall: 2, Rise: 2}
	r.Add(reset)
	r.Add(refused)
	if known, ready, why := r.Verdict(); !known || ready || why != "connection refused" {
		t.Fatalf("two failures from the start: %v %v %q", known, ready, why)
	}
}

func TestPhaseOf(t *testing.T) {
	for _, c := range []struct {
		st   state.State
		in   bool
		want string
	}{
		{state.State{Phase: state.InService}, true, ""},
		{state.State{Phase: state.Withdrawing, Op: state.OpEnter}, false, "in maintenance (held)"},
		{state.State{Phase: state.Held, Holder: &state.Holder{Who: "alice"}}, false, "in maintenance (held)"},
		{state.State{Phase: state.ReadyCheck, Op: state.OpExit}, false, "in maintenance (held)"},
		{state.State{Phase: state.Draining, Op: state.OpRestart}, false, "in maintenance (restart)"},
		{state.State{Phase: state.Restarting, Op: state.OpRestart}, false, "in maintenance (restart)"},
		{state.State{Phase: state.Rebooting, Op: state.OpReboot}, false, "in maintenance (reboot)"},
		{state.State{Phase: state.Restoring, Op: state.OpReboot}, false, "in maintenance (reboot)"},
		{state.State{Phase: state.Held, Holder: &state.Holder{Unit: "apache2.service"}}, false, "in maintenance (web server unit stopped)"},
		{state.State{Phase: state.Restoring, Op: state.OpWebStart}, false, "in maintenance (web server unit stopped)"},
	} {
		in, why := PhaseOf(c.st)
		if in != c.in || why != c.want {
			t.Errorf("%s/%s: %v %q, want %v %q", c.st.Phase, c.st.Op, in, why, c.in, c.want)
		}
	}
}
