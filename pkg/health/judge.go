// Package health is the agent's account of its own server, kept in the
// pool (pool.Health): in service, or why not. The pool counts a member
// out of service against its budget whatever took it out — a maintenance,
// a web server that stopped answering, load balancers that refuse or get
// no answer to their checks — as Kubernetes' PodDisruptionBudget counts
// the pods that are not ready, so that one host's maintenance cannot take
// the last server standing.
//
// The judge (Judge) is pure: the engine's phase, the readiness check's
// verdict (Readiness: fall and rise, as a load balancer judges), and
// which load balancers see the host out (lbview.Down) make a
// pool.Health. The watch (Watch) asks them every period and publishes
// the judgement; the pool writes it only when it changed, so an agent
// whose server stays as it was makes no revision.
package health

import (
	"strings"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// Readiness is the readiness check's verdict over its last probes: Fall
// failures in a row make the web server not ready, Rise successes in a
// row ready again, as HAProxy's fall and rise judge a server. One
// failed probe (a request that met a graceful reload) takes nothing out,
// and one success does not put back a server that fails every other
// request.
type Readiness struct {
	// Fall and Rise: probes in a row that decide (below 1: 1).
	Fall, Rise int

	known, ready bool
	fails, oks   int
	// why is the failure that made it not ready, kept while it stays so:
	// the next failures' messages may differ in details (a port, a
	// timing) and each change of the health is a write to etcd.
	why string
}

// Add counts one probe: nil for a success, else why it failed.
func (r *Readiness) Add(err error) {
	fall, rise := max(r.Fall, 1), max(r.Rise, 1)
	if err == nil {
		r.oks, r.fails = r.oks+1, 0
		if r.oks >= rise {
			r.known, r.ready, r.why = true, true, ""
		}
		return
	}
	r.fails, r.oks = r.fails+1, 0
	if r.fails >= fall && (!r.known || r.ready) {
		r.known, r.ready, r.why = true, false, err.Error()
	}
}

// Verdict says whether the probes decided yet (Fall or Rise in a row
// since the start), and if so whether the web server is ready, and why
// not.
func (r *Readiness) Verdict() (known, ready bool, why string) {
	return r.known, r.ready, r.why
}

// Inputs are what the judge decides on.
type Inputs struct {
	// InService: the engine has the server in service (its forward in
	// place, no operation taking it out); PhaseWhy says why not.
	InService bool
	PhaseWhy  string
	// ReadyKnown, Ready and ReadyWhy are the readiness check's verdict
	// (Readiness.Verdict).
	ReadyKnown, Ready bool
	ReadyWhy          string
	// Down are the load balancers that see the host out of rotation.
	// None: in rotation as far as they say, or none checks this host
	// (then it is judged by its readiness check alone).
	Down []lbview.Down
}

// Judge says the server's health from its inputs, and whether it can
// say yet (complete): with the server in service by the engine, the
// readiness check must have decided first. Until then nothing is to be
// published: an agent just started knows nothing yet, and saying "out"
// before it knows would count a healthy host as unavailable at every
// restart of the agent.
//
// One reason is given, the first of: the engine's (a maintenance says
// why the rest fails too), the web server's readiness (the cause of the
// load balancers' refusals when both fail), the load balancers'.
func Judge(in Inputs) (h pool.Health, complete bool) {
	switch {
	case !in.InService:
		return pool.Health{Why: in.PhaseWhy}, true
	case !in.ReadyKnown:
		return pool.Health{}, false
	case !in.Ready:
		return pool.Health{Why: "web server not answering: " + in.ReadyWhy}, true
	case len(in.Down) > 0:
		whys := make([]string, len(in.Down))
		for i, d := range in.Down {
			whys[i] = d.Why()
		}
		return pool.Health{Why: strings.Join(whys, "; ")}, true
	}
	return pool.Health{InService: true}, true
}

// PhaseOf says whether a state has the server in service, and why not,
// in words that stay the same for the whole of an operation (each
// change is a write to etcd): a restart is "in maintenance (restart)"
// from its withdraw to its restore, not one reason per step.
func PhaseOf(st state.State) (inService bool, why string) {
	if st.Phase == state.InService {
		return true, ""
	}
	what := "held"
	switch {
	case st.Op == state.OpReboot || st.Phase == state.Rebooting:
		what = "reboot"
	case st.Op == state.OpRestart:
		what = "restart"
	case st.Op == state.OpWebStop || st.Op == state.OpWebStart || (st.Holder != nil && st.Holder.Unit != ""):
		what = "web server unit stopped"
	}
	return false, "in maintenance (" + what + ")"
}
