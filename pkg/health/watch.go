package health

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
)

// Publisher keeps the member's health in the pool (pool.Pool): it writes
// only what differs from the pool's record.
type Publisher interface {
	PublishHealth(ctx context.Context, h pool.Health) error
}

// Prober makes one attempt of the readiness check (ready.Check).
type Prober interface {
	Probe(ctx context.Context) error
}

// LoadBalancers says which load balancers see the host out at t
// (lbview.Views).
type LoadBalancers interface {
	Down(t time.Time) []lbview.Down
}

// Phase says whether the engine has the server in service, and why not
// (PhaseOf of its state).
type Phase func() (inService bool, why string)

// Period is how often the agent probes its web server while it is
// ready: a failure is in the pool within Fall periods and a request, a
// few seconds.
const Period = time.Second

// FastPeriod is how often it probes while the web server is not ready,
// or not known yet: a server back (after a maintenance that stopped it)
// is counted back within Rise of these, about as soon as the load
// balancers put it back, and the next host of the pool does not wait on
// a record that lags.
const FastPeriod = 200 * time.Millisecond

// JudgeEvery is how often the judgement is made again between probes:
// the engine's phase and the load balancers' view are in memory, and
// the pool is written only when the judgement changes, so a restore the
// load balancers confirmed is in the pool within this and a request,
// about when the engine gives its slot back.
const JudgeEvery = 100 * time.Millisecond

// Watch judges this host's server and keeps the pool's record of it
// current.
type Watch struct {
	Phase Phase
	Ready Prober
	// LoadBalancers, nil when the agent does not watch the checks: then
	// the host is judged by its phase and readiness alone.
	LoadBalancers LoadBalancers
	Pool          Publisher
	// Fall and Rise of the readiness check (default 2 and 2).
	Fall, Rise int
	// Period, FastPeriod and JudgeEvery replace the defaults of the same
	// names (the tests').
	Period, FastPeriod, JudgeEvery time.Duration
	Log                            *slog.Logger
}

// Run judges and publishes until ctx ends. It publishes nothing before
// its first judgement is complete (Judge), and then only changes reach
// etcd (the Publisher's rule). An etcd that does not answer is told once
// at warn, and tried again a Period later. When ctx ends it just stops:
// a stopping agent says nothing of its server (its record stays as it
// was, as its lease does, for the next start).
func (w *Watch) Run(ctx context.Context) {
	st := &watchState{w: w, log: w.Log, period: orDefault(w.Period, Period),
		r: Readiness{Fall: cmp.Or(w.Fall, 2), Rise: cmp.Or(w.Rise, 2)}}
	if st.log == nil {
		st.log = slog.Default()
	}
	// The probes run on their own (one may take AttemptTimeout): each
	// result is judged, and published, before the next probe starts.
	results, judged := make(chan error), make(chan bool)
	go w.probe(ctx, results, judged, st.period, orDefault(w.FastPeriod, FastPeriod))
	tick := time.NewTicker(orDefault(w.JudgeEvery, JudgeEvery))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-results:
			st.r.Add(err)
			st.round(ctx)
			_, ready, _ := st.r.Verdict()
			select {
			case judged <- ready:
			case <-ctx.Done():
				return
			}
		case <-tick.C:
			st.round(ctx)
		}
	}
}

// watchState is what Run keeps from one judgement to the next.
type watchState struct {
	w      *Watch
	log    *slog.Logger
	period time.Duration
	r      Readiness
	last   *pool.Health // the last judgement, for the log
	failed time.Time    // etcd's last failure: told once, tried again a period later
}

// round judges now, and publishes the judgement once it is complete.
func (st *watchState) round(ctx context.Context) {
	in := Inputs{}
	in.InService, in.PhaseWhy = st.w.Phase()
	in.ReadyKnown, in.Ready, in.ReadyWhy = st.r.Verdict()
	if st.w.LoadBalancers != nil {
		in.Down = st.w.LoadBalancers.Down(time.Now())
	}
	h, complete := Judge(in)
	if !complete {
		return
	}
	if st.last == nil || st.last.InService != h.InService || st.last.Why != h.Why {
		logChange(st.log, h)
		st.last = &h
	}
	if !st.failed.IsZero() && time.Since(st.failed) < st.period {
		return
	}
	err := st.w.Pool.PublishHealth(ctx, h)
	switch {
	case err != nil && ctx.Err() != nil:
		// The stop cut the request short: nothing to say.
	case err != nil && st.failed.IsZero():
		st.log.Warn("health: cannot publish to the pool; trying again", "every", st.period, "err", err)
		st.failed = time.Now()
	case err != nil:
		st.log.Debug("health: cannot publish to the pool", "err", err)
		st.failed = time.Now()
	case !st.failed.IsZero():
		st.log.Info("health: published to the pool again", "in_service", h.InService)
		st.failed = time.Time{}
	}
}

// probe probes the web server until ctx ends: a Period apart while it is
// ready, FastPeriod while not (or not known yet). Each result waits for
// its judgement, which says which.
func (w *Watch) probe(ctx context.Context, results chan<- error, judged <-chan bool, period, fast time.Duration) {
	for {
		err := w.Ready.Probe(ctx)
		if ctx.Err() != nil {
			return // a probe cut short by the stop says nothing of the server
		}
		var ready bool
		select {
		case results <- err:
		case <-ctx.Done():
			return
		}
		select {
		case ready = <-judged:
		case <-ctx.Done():
			return
		}
		next := fast
		if ready {
			next = period
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func logChange(log *slog.Logger, h pool.Health) {
	if h.InService {
		log.Info("health: in service")
		return
	}
	log.Info("health: out of service: " + h.Why)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
