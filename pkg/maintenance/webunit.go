package maintenance

// The web server's unit stopped and started by someone else: systemd,
// for dpkg's maintainer scripts, needrestart, unattended-upgrades, a
// person's `systemctl restart|stop` and a shutdown. None of them asks
// drainctl; systemd tells it through the guard unit
// (drainctl-guard@UNIT.service, PartOf= the web server's unit and ordered
// after it: stopped before it, started after it), whose ExecStop and
// ExecStart run `drainctl hook`, which asks the agent for WebStop and
// WebStart. The opening and the closing are the safety sequence's, as
// for drainctl's own operations; what differs is that the stop cannot be
// refused, only delayed: systemd goes ahead when the hook returns, so
// a slot or a drain that does not come within the agent's web wait is
// given up, the server taken out over the pool's budget, and the history
// says so.

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/state"
)

// The jobs of Request.Job: what systemd is doing to the web server's
// unit.
const (
	// JobRestart: the unit stops and starts again at once (systemctl
	// restart, dpkg's postinst, needrestart). New connections are held
	// through the listener's gap.
	JobRestart = "restart"
	// JobStop: the unit stops, and nobody says when it starts again. The
	// server stays out, its slot kept, until the unit's next start.
	JobStop = "stop"
	// JobShutdown: the host goes down; the boot's start of the unit puts
	// the server back.
	JobShutdown = "shutdown"
)

var jobs = []string{JobRestart, JobStop, JobShutdown}

// DefaultWebWait is how long a web server's stop waits for a pool slot,
// and then for the drain, before it goes ahead anyway: long enough for
// a pool's other server to finish a restart (seconds) and for the load
// balancers to confirm the server out, short enough that a person's
// `systemctl restart` is not mistaken for a hang. The guard unit's
// TimeoutStopSec (5 min) is above twice it.
const DefaultWebWait = time.Minute

// HoldMax bounds the hold of new connections during a restart's
// listener gap, should the unit never start again (or the hook never
// say so): past it, new connections are refused again, as without
// drainctl. 30 s is past what a load balancer waits for a connection
// (HAProxy: timeout connect, 5 s in Debian's haproxy.cfg, times its
// retries).
const HoldMax = 30 * time.Second

// HoldStopMax bounds the hold after a plain stop: nobody says when the
// unit starts again. A stop and a start a few seconds apart (a script, a
// person's quick fix) keep their users; a longer stop refuses again
// after it, and the load balancer sends the users elsewhere at once
// instead of letting each wait for its connect timeout.
const HoldStopMax = 10 * time.Second

// unitName is what systemd's unit names look like (systemd.unit(5)):
// the hook passes the guard's instance, %i.
var unitName = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]{1,255}\.(service|socket|target)$`)

// behindWeb says whether unit runs behind the web server rather than
// being it: php-fpm (Debian's php8.2-fpm.service, Fedora's
// php-fpm.service), whose guard the package's generator adds. While it
// restarts the web server listens all along and would answer its
// requests 503: new connections are held whether it listens or not
// (HoldAll), and its keep-alive connections closed by a graceful
// reload.
func behindWeb(unit string) bool {
	ok, _ := path.Match("php*-fpm.service", unit)
	return ok
}

// checkUnit refuses a missing or malformed unit name.
func checkUnit(unit string) error {
	if unit == "" {
		return badField("unit", "unit is required (the web server's unit, e.g. apache2.service)")
	}
	if !unitName.MatchString(unit) {
		return badField("unit", "unit %q: not a systemd unit name (e.g. apache2.service)", unit)
	}
	return nil
}

// WebStop takes the server out before systemd stops the web server's
// unit: the pool slot, the withdraw, the load balancers' confirmation
// and the drain (the requests in flight once the load balancers confirm
// it out: the web server's stop closes its listener and then waits for
// them), each bounded by the web wait, then held with the unit as
// holder. A server already out (a person's hold, a maintenance run whose
// command restarts the web server) stays as it is. Unless the host shuts
// down, new connections to the service ports are then held (dropped
// while nothing listens, so the load balancer's kernel sends the SYN
// again) until WebStart, at most HoldMax (a restart) or HoldStopMax.
// Busy while another operation runs: drainctl's own restart and reboot
// already have the server out.
func (e *Engine) WebStop(req Request, progress func(Event)) (Result, error) {
	return e.operate(state.OpWebStop, req, progress, (*opRun).webStop)
}

func (r *opRun) webStop() error {
	st, res := r.st, r.res
	if r.req.Job == JobRestart {
		// systemd restarts the unit whatever drainctl says: a restart
		// owed of it is done by this one.
		r.e.owedDone(r.req.Unit)
	}
	if st.Phase == state.Held {
		res.Phase, res.Holder = state.Held, st.Holder
		res.Note = "already out of rotation" + holderText(st.Holder)
		if r.holdNew() {
			res.Note += "; new connections held until " + r.req.Unit + " listens again"
			if behindWeb(r.req.Unit) {
				// The sticky users still come through the backup entry.
				r.closeKeepAlive()
			}
		}
		return nil
	}
	// The wait is the agent's, not the caller's: systemd stops the unit
	// when the hook returns, whatever drainctl says.
	wait := r.e.webWait()
	r.req.PoolWait = wait
	r.req.Deadline = max(wait, r.e.d.Policy.MinWait)
	r.req.OnDeadline = drain.Proceed
	if err := r.takeOut(opening{note: r.req.Unit + " " + r.req.Job + ": " + r.req.Reason, inFlight: wait, overBudget: true}); err != nil {
		return err
	}
	held := r.holdNew()
	if held && behindWeb(r.req.Unit) {
		r.closeKeepAlive()
	}
	h := r.holder()
	h.Unit = r.req.Unit
	r.hold(h, "")
	res.Phase, res.Holder, res.Elapsed = state.Held, r.e.led.get().Holder, r.elapsed()
	res.Note = fmt.Sprintf("%sdrained (%s after %s); out of rotation until %s starts again",
		confirmed(res.Out), res.Drain.Outcome, res.Drain.Elapsed.Round(time.Millisecond), r.req.Unit)
	if held {
		res.Note += "; new connections held until it listens"
	}
	return nil
}

// WebStart puts the server back after systemd started the web server's
// unit, if the hold is that unit's stop (another unit's, a person's or a
// run's hold stays): readiness, restore, the load balancers'
// confirmation, the slot given back. It ends a restart's hold of new
// connections first, whatever the state. With nothing to put back it
// records nothing (every boot starts the guard).
func (e *Engine) WebStart(req Request, progress func(Event)) (Result, error) {
	if err := CheckRequest(state.OpWebStart, req); err != nil {
		return Result{Op: state.OpWebStart}, err
	}
	e.releaseHold()
	if st := e.led.get(); !ownHold(st, req.Unit) {
		return Result{Op: state.OpWebStart, Phase: st.Phase, Holder: st.Holder, Note: "nothing to put back: the server is " + string(st.Phase) + holderText(st.Holder)}, nil
	}
	return e.operate(state.OpWebStart, req, progress, (*opRun).webStart)
}

// ownHold says whether st is held by unit's stop.
func ownHold(st state.State, unit string) bool {
	return st.Phase == state.Held && st.Holder != nil && st.Holder.Unit != "" && st.Holder.Unit == unit
}

func (r *opRun) webStart() error {
	st, res := r.st, r.res
	if !ownHold(st, r.req.Unit) {
		res.Phase, res.Holder = st.Phase, st.Holder
		res.Note = "nothing to put back: the server is " + string(st.Phase) + holderText(st.Holder)
		return nil
	}
	if r.req.Reason == "" {
		// The history's entry says why the server went out and is back:
		// the stop's reason (who asked), not the guard's empty one.
		r.req.Reason = st.Holder.Reason
	}
	if err := r.putBack(closing{note: r.req.Unit + " started"}); err != nil {
		res.Phase, res.Holder = state.Held, r.e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed, res.Note = state.InService, r.elapsed(), backNote(res.Back)
	return nil
}

// webWait is the agent's web wait.
func (e *Engine) webWait() time.Duration {
	if e.d.WebWait > 0 {
		return e.d.WebWait
	}
	return DefaultWebWait
}

// connHold is the hold of new connections during a restart: its timer
// ends it after HoldMax.
type connHold struct {
	mu    sync.Mutex
	timer *time.Timer
}

// holdNew holds new connections to the service ports through the
// listener's gap of a restart (until WebStart, or HoldMax) or a stop (at
// most HoldStopMax); not at a shutdown, which ends the sessions anyway.
// For a unit behind the web server (behindWeb), whatever listens: the web
// server does all along. A hold that fails is a warning: the restart goes
// on as without it.
func (r *opRun) holdNew() bool {
	e := r.e
	bound := HoldMax
	switch r.req.Job {
	case JobShutdown:
		return false
	case JobStop:
		bound = HoldStopMax
	}
	hold := forward.Forwarder.Hold
	if behindWeb(r.req.Unit) {
		hold = forward.Forwarder.HoldAll
	}
	if err := e.fw.with(func(x fwx) error { return x.do(e.ctx, hold, x.all()...) }); err != nil {
		r.warn(fmt.Sprintf("hold new connections during the restart: %v; they are refused while the web server does not listen", err))
		return false
	}
	e.hold.mu.Lock()
	defer e.hold.mu.Unlock()
	if e.hold.timer != nil {
		e.hold.timer.Stop()
	}
	e.hold.timer = time.AfterFunc(bound, func() {
		e.log.Warn("the web server did not start within the hold's bound: new connections are refused again", "bound", bound)
		e.releaseHold()
	})
	return true
}

// closeKeepAlive makes the web server close its keep-alive connections
// before a unit behind it stops: the hold keeps new connections out, but
// the load balancer's open ones (HAProxy keeps one per client session,
// http-reuse never) would carry the sticky users' next requests to a web
// server whose php-fpm is gone. A graceful reload (the agent's restart
// command, as drainctl restart runs it) closes the idle ones at once and
// the busy ones after their request; the load balancer sends the next
// request on a new connection, held until the unit is back (a request
// sent on one as it closes is retried: retry-on empty-response
// conn-failure). Then the requests the old processes still run are
// waited for (at most the web wait), so none is cut by the unit's stop.
// A reload that fails is a warning: the unit stops all the same.
func (r *opRun) closeKeepAlive() {
	e := r.e
	out, err := e.d.Runner.Restart(e.ctx)
	r.res.Restart = &out
	if err != nil {
		r.warn(fmt.Sprintf("graceful reload of the web server before %s stops, to close its keep-alive connections: %v; requests on them may fail while it is down", r.req.Unit, err))
		return
	}
	r.publish(Event{Op: r.op, Phase: state.Draining, Message: "web server reloaded gracefully: its keep-alive connections closed before " + r.req.Unit + " stops"})
	// The requests in flight now, on connections the reload closes after
	// them: a short quiet (nobody new comes, the hold keeps them out).
	// Bounded by the web wait whatever the policy says: systemd stops
	// the unit when the hook returns.
	p := r.policy()
	p.Deadline, p.OnDeadline = max(e.webWait(), p.MinWait), drain.Proceed
	gate := make(chan drain.Opening, 1)
	gate <- drain.Opening{Quiet: 2 * p.Poll, Grace: e.webWait()}
	if _, err := drain.WaitGated(e.ctx, e.d.Table, p, gate, e.clock, nil); err != nil && e.ctx.Err() == nil {
		r.warn(fmt.Sprintf("the requests in flight after the reload: %v", err))
	}
}

// releaseHold ends the hold of new connections, if any (idempotent: at
// every WebStart, and at the agent's start, a hold the last run left).
func (e *Engine) releaseHold() {
	e.hold.mu.Lock()
	if e.hold.timer != nil {
		e.hold.timer.Stop()
		e.hold.timer = nil
	}
	e.hold.mu.Unlock()
	// Bounded: a netfilter call that hangs must not hang the hook.
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := e.fw.with(func(x fwx) error { return x.do(ctx, forward.Forwarder.Release, x.all()...) }); err != nil && !errors.Is(err, context.Canceled) {
		e.log.Error("release the hold of new connections", "err", err)
	}
}

// releaseLeftHold releases a hold of new connections that the agent's
// last run left (it stopped between the web server's stop and start):
// this run does not know when that gap ends, and the hold's timer is
// gone with the last run.
func (e *Engine) releaseLeftHold() {
	err := e.fw.with(func(x fwx) error {
		fs, err := x.read(e.ctx)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.Held || f.HeldAll {
				e.log.Info("releasing the hold of new connections left by the agent's last run")
				return x.do(e.ctx, forward.Forwarder.Release, x.all()...)
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error("release a hold of new connections left by the last run", "err", err)
	}
}

// overBudget turns a pool slot refused to a web server's stop into a
// warning: systemd stops the unit anyway.
func (r *opRun) overBudget(err error) error {
	var e *Error
	if !errors.As(err, &e) || (e.Code != CodePoolBusy && e.Code != CodePoolUnavailable) {
		return err
	}
	r.pastBudget = true
	r.warn("over the pool's budget: " + strings.TrimSuffix(e.Msg, "; nothing was changed") +
		"; taken out all the same: systemd stops " + r.req.Unit + " whatever drainctl says")
	return nil
}
