// Package metrics exposes the agent's state and history in Prometheus'
// format, for /metrics on the control socket and an optional TCP
// listener. Names follow Prometheus' conventions: a drainctl_ prefix,
// _total for counters, _seconds for durations.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/state"
)

// Source is what the metrics read at each scrape.
type Source interface {
	// Snapshot is the state and the forwards as last read (read again
	// only when drainctl changed them since: a scrape does not run
	// iptables commands each time).
	Snapshot() maintenance.Status
	// Connections lists the service port's established connections.
	Connections(ctx context.Context, fn func(*conntable.Conn)) error
}

// Build describes the binary, for drainctl_build_info.
type Build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Metrics is the registry and the counters fed by finished operations.
type Metrics struct {
	reg       *prometheus.Registry
	ops       *prometheus.CounterVec
	cycle     *prometheus.HistogramVec
	drain     prometheus.Histogram
	lastOpEnd prometheus.Gauge
	poolWait  prometheus.Histogram // WatchPool's; nil without a pool
	over      *prometheus.CounterVec
}

// phases lists every state, so that each has its series (1 for the
// current one, 0 for the others).
var phases = []state.Phase{state.InService, state.Withdrawing, state.Draining, state.Held,
	state.ConfigTest, state.Restarting, state.ReadyCheck, state.Restoring, state.Rebooting}

// New registers the metrics of src and b.
func New(src Source, b Build) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.ops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drainctl_operations_total",
		Help: "Maintenance operations that ran, by operation (enter, exit, restart, reboot; web-stop and web-start: the web server's unit stopped and started by someone else) and outcome (ok or the failure's code).",
	}, []string{"op", "outcome"})
	m.cycle = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "drainctl_operation_duration_seconds",
		Help:    "How long maintenance operations took, by operation.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
	}, []string{"op"})
	m.drain = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "drainctl_drain_duration_seconds",
		Help:    "How long drains took, from the withdraw to quiet (or the deadline).",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120},
	})
	m.over = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drainctl_over_budget_total",
		Help: "Operations that took the server out without a pool slot, by operation: a web server's stop by someone else that could not wait longer for one (web_unit.wait).",
	}, []string{"op"})
	m.lastOpEnd = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "drainctl_last_operation_end_timestamp_seconds",
		Help: "When the last maintenance operation ended (Unix time).",
	})
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "drainctl_build_info",
		Help:        "The drainctl binary: version, commit, Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	info.Set(1)
	m.reg.MustRegister(m.ops, m.cycle, m.drain, m.over, m.lastOpEnd, info, newScraper(src),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every label pair of the counter exists from the start at 0, so a
	// rate() sees the first one.
	for _, op := range []string{"enter", "exit", "restart", "web-stop", "web-start"} {
		m.ops.WithLabelValues(op, "ok")
	}
	m.over.WithLabelValues("web-stop")
	return m
}

// Observe counts a finished operation (the engine's observer).
func (m *Metrics) Observe(e history.Entry) {
	m.ops.WithLabelValues(e.Op, e.Outcome).Inc()
	m.cycle.WithLabelValues(e.Op).Observe(float64(e.DurationMS) / 1000)
	for _, p := range e.Phases {
		if p.Phase == string(state.Draining) {
			m.drain.Observe(float64(p.DurationMS) / 1000)
		}
	}
	if e.OverBudget {
		m.over.WithLabelValues(e.Op).Inc()
	}
	m.lastOpEnd.Set(float64(e.End.UnixMilli()) / 1000)
	m.observePool(e)
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// scraper reads the state, the forwards and the connections at each
// scrape.
type scraper struct {
	src Source

	mu sync.Mutex
	// The forwards' packet counters, kept monotonic (see monotonic).
	counters map[counterKey]*monotonic
}

func newScraper(src Source) *scraper {
	return &scraper{src: src, counters: map[counterKey]*monotonic{}}
}

// counterKey names one packet counter of one forward.
type counterKey struct {
	desc    *prometheus.Desc
	forward string
}

// monotonic makes a counter that only goes up of a kernel counter that
// starts again at 0 whenever its rule is recreated: a restore deletes the
// withdraw rules and the next withdraw adds new ones; a firewall reload
// or a change of backend recreates the REDIRECT. A reading lower than the
// last means the rule is a new one: what the old one counted goes to the
// base. Packets the old rule counted after the last reading are lost with
// it, and a new rule that has counted past the last reading by the first
// reading of it goes unnoticed; neither makes the counter go down.
type monotonic struct{ base, last uint64 }

func (m *monotonic) read(v uint64) uint64 {
	if v < m.last {
		m.base += m.last
	}
	m.last = v
	return m.base + v
}

// counter is the monotonic value of d for forward, given the kernel's v.
func (s *scraper) counter(d *prometheus.Desc, forward string, v uint64) float64 {
	k := counterKey{d, forward}
	m := s.counters[k]
	if m == nil {
		m = &monotonic{}
		s.counters[k] = m
	}
	return float64(m.read(v))
}

var (
	descState = prometheus.NewDesc("drainctl_state",
		"The server's maintenance state: 1 for the current one.", []string{"state"}, nil)
	descHeld = prometheus.NewDesc("drainctl_operation_running",
		"1 while an operation runs.", nil, nil)
	descTransition = prometheus.NewDesc("drainctl_last_transition_timestamp_seconds",
		"When the state last changed (Unix time).", nil, nil)
	descForward = prometheus.NewDesc("drainctl_forward_state",
		"Each forward's state as last read: 1 for the current one (in-service, withdrawn, partial, absent).",
		[]string{"forward", "backend", "state"}, nil)
	descRedirected = prometheus.NewDesc("drainctl_forward_redirected_packets_total",
		"Packets that matched the forward's REDIRECT rules (one per connection through it), as last read, since the agent started (kept across the rules being recreated).",
		[]string{"forward"}, nil)
	descRefused = prometheus.NewDesc("drainctl_forward_refused_packets_total",
		"New connections refused while withdrawn, as last read, since the agent started (kept across restores, which delete the withdraw rules and their counts).",
		[]string{"forward"}, nil)
	descConns = prometheus.NewDesc("drainctl_connections",
		"Established connections to the service port, by how they arrived: forward (through the forward port), direct, unknown (not classified).",
		[]string{"path"}, nil)
	descScrapeErr = prometheus.NewDesc("drainctl_connections_scrape_error",
		"1 when the connection table could not be read at this scrape.", nil, nil)
	lbLabels    = []string{"load_balancer", "port"}
	descChecked = prometheus.NewDesc("drainctl_load_balancers_checking",
		"Load balancers health-checking the forward ports now (absent: not watched). 0 means withdrawing takes the server out of no rotation drainctl can see.", nil, nil)
	descChecks = prometheus.NewDesc("drainctl_health_checks_seen_total",
		"Health checks (connections to a forward port) seen from each load balancer since the agent started.", lbLabels, nil)
	descChecksAccepted = prometheus.NewDesc("drainctl_health_checks_accepted_total",
		"Health checks from each load balancer that the forward let through.", lbLabels, nil)
	descChecksRefused = prometheus.NewDesc("drainctl_health_checks_refused_total",
		"Health checks from each load balancer refused while the forward was withdrawn.", lbLabels, nil)
	descCheckInterval = prometheus.NewDesc("drainctl_health_check_interval_seconds",
		"Each load balancer's check interval, as seen (the median gap between its checks).", lbLabels, nil)
	descCheckLast = prometheus.NewDesc("drainctl_health_check_last_timestamp_seconds",
		"When each load balancer's last check arrived (Unix time).", lbLabels, nil)
)

func (s *scraper) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descHeld, descTransition, descForward, descRedirected, descRefused, descConns, descScrapeErr,
		descChecked, descChecks, descChecksAccepted, descChecksRefused, descCheckInterval, descCheckLast} {
		ch <- d
	}
}

func (s *scraper) Collect(ch chan<- prometheus.Metric) {
	// Scrapes may run at once: the counters must see their snapshots in
	// the order they were taken (an older one would look like a reset).
	s.mu.Lock()
	st := s.src.Snapshot()
	for _, p := range phases {
		v := 0.0
		if st.State.Phase == p {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, string(p))
	}
	running := 0.0
	if st.Running {
		running = 1
	}
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, running)
	if n := len(st.State.History); n > 0 {
		ch <- prometheus.MustNewConstMetric(descTransition, prometheus.GaugeValue, float64(st.State.History[n-1].Time.UnixMilli())/1000)
	}
	for _, f := range st.Forwards {
		for _, name := range []string{"in-service", "withdrawn", "partial", "absent"} {
			v := 0.0
			if f.State() == name {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descForward, prometheus.GaugeValue, v, f.Forward.String(), st.Backend, name)
		}
		fw := f.Forward.String()
		ch <- prometheus.MustNewConstMetric(descRedirected, prometheus.CounterValue, s.counter(descRedirected, fw, f.Redirected), fw)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, s.counter(descRefused, fw, f.Refused), fw)
	}
	s.mu.Unlock()
	if hc := st.HealthChecks; hc != nil {
		active := 0.0
		for _, l := range hc.LoadBalancers {
			if l.Active {
				active++
			}
			lv := []string{l.Addr.String(), strconv.Itoa(int(l.Port))}
			ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(l.Checks), lv...)
			ch <- prometheus.MustNewConstMetric(descChecksAccepted, prometheus.CounterValue, float64(l.Accepted), lv...)
			ch <- prometheus.MustNewConstMetric(descChecksRefused, prometheus.CounterValue, float64(l.Refused), lv...)
			ch <- prometheus.MustNewConstMetric(descCheckInterval, prometheus.GaugeValue, time.Duration(l.Interval).Seconds(), lv...)
			ch <- prometheus.MustNewConstMetric(descCheckLast, prometheus.GaugeValue, float64(l.Last.UnixMilli())/1000, lv...)
		}
		ch <- prometheus.MustNewConstMetric(descChecked, prometheus.GaugeValue, active)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[string]float64{string(conntable.PathForward): 0, string(conntable.PathDirect): 0, string(conntable.PathUnknown): 0}
	err := s.src.Connections(ctx, func(c *conntable.Conn) { counts[string(c.Path)]++ })
	failed := 0.0
	if err != nil {
		failed = 1
	} else {
		for path, n := range counts {
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, n, path)
		}
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, failed)
}
