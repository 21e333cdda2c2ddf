package health

import (
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

// Period is how often the agent judges its server: a change is in the
// pool within Fall (or Rise) periods and a request, a few seconds.
const Period = time.Second

// Watch judges this host's server every Period and keeps the pool's
// record of it current.
type Watch struct {
	Phase Phase
	Ready Prober
	// LoadBalancers, nil when the agent does not watch the checks: then
	// the host is judged by its phase and readiness alone.
	LoadBalancers LoadBalancers
	Pool          Publisher
	// Fall and Rise of the readiness check (default 2 and 2).
	Fall, Rise int
	// Period between judgements (default Period).
	Period time.Duration
	Log    *slog.Logger
}

// Run judges and publishes until ctx ends. It publishes nothing before
// its first judgement is complete (Judge), and then only changes reach
// etcd (the Publisher's rule). An etcd that does not answer is told once
// at warn, and the next period tries again. When ctx ends it just stops:
// a stopping agent says nothing of its server (its record stays as it
// was, as its lease does, for the next start).
func (w *Watch) Run(ctx context.Context) {
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	period := w.Period
	if period <= 0 {
		period = Period
	}
	r := Readiness{Fall: cmpOr(w.Fall, 2), Rise: cmpOr(w.Rise, 2)}
	var judged *pool.Health // the last judgement, for the log
	failing := false        // etcd failed last time: told already
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		err := w.Ready.Probe(ctx)
		if ctx.Err() != nil {
			return // a probe cut short by the stop says nothing of the server
		}
		r.Add(err)
		if h, ok := w.judge(&r); ok {
			if judged == nil || judged.InService != h.InService || judged.Why != h.Why {
				logChange(log, h)
				judged = &h
			}
			if err := w.Pool.PublishHealth(ctx, h); err != nil && ctx.Err() == nil {
				if !failing {
					log.Warn("health: cannot publish to the pool; trying again every period", "period", period, "err", err)
				} else {
					log.Debug("health: cannot publish to the pool", "err", err)
				}
				failing = true
			} else if err == nil && failing {
				log.Info("health: published to the pool again", "in_service", h.InService)
				failing = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// judge gathers the inputs now and judges.
func (w *Watch) judge(r *Readiness) (pool.Health, bool) {
	in := Inputs{}
	in.InService, in.PhaseWhy = w.Phase()
	in.ReadyKnown, in.Ready, in.ReadyWhy = r.Verdict()
	if w.LoadBalancers != nil {
		in.Down = w.LoadBalancers.Down(time.Now())
	}
	return Judge(in)
}

func logChange(log *slog.Logger, h pool.Health) {
	if h.InService {
		log.Info("health: in service")
		return
	}
	log.Info("health: out of service: " + h.Why)
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}
