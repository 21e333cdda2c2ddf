package metrics

// The pool's metrics: read from etcd at each scrape (one request, bounded
// by a short timeout: a scrape must not hang on an etcd that is away).

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// PoolSource is what the pool's metrics read (the engine and the pool).
type PoolSource interface {
	PoolStatus(ctx context.Context) (maintenance.PoolStatus, error)
	// Errors counts etcd's failures by kind.
	Errors() map[string]uint64
}

var (
	descSlotsHeld = prometheus.NewDesc("drainctl_pool_slots_held",
		"Servers of the pool holding a slot (out of rotation, or on their way back).", []string{"pool"}, nil)
	descSlotsAllowed = prometheus.NewDesc("drainctl_pool_slots_allowed",
		"Slots the pool's max_unavailable (its own, on etcd) allows for the pool's size now: 0 while its settings cannot be read (nothing is granted).", []string{"pool"}, nil)
	descLimitMismatch = prometheus.NewDesc("drainctl_pool_limit_mismatch",
		"1 when this host's configured max_unavailable differs from the pool's (which decides; the file only seeds a new pool).", []string{"pool"}, nil)
	descUnavailable = prometheus.NewDesc("drainctl_pool_unavailable",
		"Members counted against the pool's budget now: those holding a slot, out of service by their agent's account (web server failing, load balancers refusing), or whose agent is gone; compare with drainctl_pool_slots_allowed.", []string{"pool"}, nil)
	descMembers = prometheus.NewDesc("drainctl_pool_members",
		"The pool's members by state: live (its agent's lease is current) or gone (counted against the budget until back, or forgotten with drainctl pool forget).", []string{"pool", "state"}, nil)
	descWaiting = prometheus.NewDesc("drainctl_pool_waiting",
		"Hosts waiting in line for a slot.", []string{"pool"}, nil)
	descPaused = prometheus.NewDesc("drainctl_pool_paused",
		"1 while the pool is paused (no slot is granted).", []string{"pool"}, nil)
	descMalformed = prometheus.NewDesc("drainctl_pool_malformed_keys",
		"Keys under the pool's prefix drainctl cannot read (pool status lists them; a held slot or a pause among them still counts).", []string{"pool"}, nil)
	descPoolUp = prometheus.NewDesc("drainctl_pool_etcd_up",
		"1 when etcd answered this scrape's read of the pool.", []string{"pool"}, nil)
	descEtcdErrors = prometheus.NewDesc("drainctl_pool_etcd_errors_total",
		"Failed requests to etcd by kind: timeout (down, unreachable, no quorum), auth, error.", []string{"kind"}, nil)
)

type poolScraper struct {
	src  PoolSource
	name string
}

func (p poolScraper) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSlotsHeld, descSlotsAllowed, descUnavailable, descLimitMismatch, descMembers, descWaiting, descPaused, descMalformed, descPoolUp, descEtcdErrors} {
		ch <- d
	}
}

func (p poolScraper) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := p.src.PoolStatus(ctx)
	up := 0.0
	if err == nil {
		up = 1
		live, gone := 0.0, 0.0
		for _, m := range st.Members {
			if m.Live {
				live++
			} else {
				gone++
			}
		}
		paused, mismatch := 0.0, 0.0
		if st.Paused != nil {
			paused = 1
		}
		if maintenance.LimitDiffers(st.MaxUnavailable, st.ConfiguredMaxUnavailable) != "" {
			mismatch = 1
		}
		for _, m := range []struct {
			d *prometheus.Desc
			v float64
		}{{descSlotsHeld, float64(len(st.Holders))}, {descSlotsAllowed, float64(st.Allowed)}, {descUnavailable, float64(len(st.Unavailable))}, {descLimitMismatch, mismatch}, {descWaiting, float64(len(st.Waiters))}, {descPaused, paused}, {descMalformed, float64(len(st.Malformed))}} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, m.v, p.name)
		}
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, live, p.name, "live")
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, gone, p.name, "gone")
	}
	ch <- prometheus.MustNewConstMetric(descPoolUp, prometheus.GaugeValue, up, p.name)
	for kind, n := range p.src.Errors() {
		ch <- prometheus.MustNewConstMetric(descEtcdErrors, prometheus.CounterValue, float64(n), kind)
	}
}

// WatchPool adds the pool's metrics, and the wait for a slot of each
// operation (drainctl_pool_wait_seconds, from its history entry).
func (m *Metrics) WatchPool(src PoolSource, name string) {
	m.poolWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "drainctl_pool_wait_seconds",
		Help:    "How long operations waited for a pool slot.",
		Buckets: []float64{0.01, 0.1, 1, 10, 30, 60, 300, 900, 1800, 3600, 7200},
	})
	m.reg.MustRegister(poolScraper{src, name}, m.poolWait)
}

// observePool feeds the wait of a finished operation, if it waited.
func (m *Metrics) observePool(e history.Entry) {
	if m.poolWait == nil {
		return
	}
	for _, p := range e.Phases {
		if p.Phase == string(maintenance.WaitingForSlot) {
			m.poolWait.Observe(float64(p.DurationMS) / 1000)
		}
	}
}
