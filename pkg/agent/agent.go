// Package agent runs drainctl on an app server: it owns the forwards,
// converges from the state file at start, repairs the rules when a
// firewall reload removes them, and serves the control API.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/drainctl/drainctl/pkg/pool"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/drainctl/drainctl/pkg/agentcheck"
	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/health"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
	"github.com/drainctl/drainctl/pkg/state"
)

type commands struct{ test, restart runner.Command }

// metricsSource is what the metrics read: the engine, set once it exists.
type metricsSource struct{ *maintenance.Engine }

// joinPool opens the pool, when one is configured, and gives it to the
// engine and the metrics; the agent is a live member while it runs. Its
// lease is kept in the state directory (settings.PoolLeaseFile): close
// ends the connection and leaves the lease to run out, so an agent that
// restarts takes it again and its host is never seen gone meanwhile.
// The pool is nil without one.
func joinPool(ctx context.Context, s settings.Settings, deps *maintenance.Deps, met *metrics.Metrics, src *metricsSource, log *slog.Logger) (p *pool.Pool, close func(), err error) {
	if !s.Pool.Enabled() {
		return nil, func() {}, nil
	}
	p, err = s.Pool.OpenAgent(s.StateDir)
	if err != nil {
		return nil, nil, err
	}
	deps.Slots, deps.Pool, deps.PoolWait = p, p, s.Pool.Wait
	go p.Register(ctx, 30*time.Second)
	met.WatchPool(poolMetrics{src, p}, s.Pool.Name)
	log.Info("pool", "name", s.Pool.Name, "id", s.Pool.ID, "configured_max_unavailable", s.Pool.MaxUnavailable.String(), "etcd", s.Pool.Etcd)
	return p, func() { p.Close() }, nil
}

// watchHealth keeps this host's health in the pool (pkg/health) until
// the returned stop: the engine's phase, the readiness check, and the
// load balancers' view when the agent watches their checks (without it
// the host is judged by its readiness alone). The pool counts a host
// that is out against its budget, whatever took it out. No pool: nothing.
func watchHealth(ctx context.Context, s settings.Settings, p *pool.Pool, eng *maintenance.Engine, views lbview.Views, log *slog.Logger) (stop func()) {
	if p == nil {
		return func() {}
	}
	// The phase alone is enough in service (the common case); out, the
	// state says which maintenance, read once per phase: the judge asks
	// every 100 ms, and a snapshot may read the forwards. Called from the
	// watch's one goroutine only.
	var (
		lastPhase state.Phase
		in        bool
		why       string
	)
	w := &health.Watch{
		Phase: func() (bool, string) {
			ph := eng.Phase()
			if ph == state.InService {
				lastPhase = ph
				return true, ""
			}
			if ph != lastPhase {
				in, why = health.PhaseOf(eng.Snapshot().State)
				lastPhase = ph
			}
			return in, why
		},
		Ready: s.Ready, Pool: p, Fall: s.Checks.Fall, Rise: s.Checks.Rise, Log: log,
	}
	if len(views) > 0 {
		w.LoadBalancers = views
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	return func() { cancel(); <-done }
}

// poolMetrics is what the pool's metrics read.
type poolMetrics struct {
	src  *metricsSource
	pool *pool.Pool
}

func (p poolMetrics) PoolStatus(ctx context.Context) (maintenance.PoolStatus, error) {
	return p.src.PoolStatus(ctx)
}
func (p poolMetrics) Errors() map[string]uint64 { return p.pool.Errors() }

// metricsOnly serves h at /metrics and nothing else: the TCP listener
// must not expose the control API.
func metricsOnly(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+api.PathMetrics, h)
	return mux
}

func (c commands) ConfigTest(ctx context.Context) (runner.Output, error) { return c.test.Run(ctx) }
func (c commands) Restart(ctx context.Context) (runner.Output, error)    { return c.restart.Run(ctx) }

// Run runs the agent until ctx ends. ready, if not nil, is called once the
// socket is served (systemd is notified as well). s must be Resolved.
func Run(ctx context.Context, s settings.Settings, log *slog.Logger, onReady func()) error {
	if err := s.Validate(); err != nil {
		return err
	}
	gid, access := socketAccess(s, log)
	store, err := state.Open(s.StateDir)
	if err != nil {
		return err
	}
	defer store.Close()
	fw, err := openForwarder(ctx, s, store, log)
	if err != nil {
		return err
	}
	defer fw.Close()
	table, err := conntable.Open(conntable.Options{Forwards: s.Forwards})
	if err != nil {
		return err
	}
	defer table.Close()
	hist, err := history.Open(s.StateDir, history.Max)
	if err != nil {
		return err
	}
	var src metricsSource
	met := metrics.New(&src, s.Build)
	deps := maintenance.Deps{
		Forwarder: fw, Forwards: s.Forwards, Table: table, Policy: s.Policy,
		Runner: commands{s.ConfigTest, s.Restart}, Ready: s.Ready, Store: store, History: hist,
		Observer: met, Log: log, WebWait: s.WebUnitWait, WebUnit: runner.Presets[s.WebServer].Unit, Limits: s.Limits,
	}
	withReboots(&deps, s)
	views, agentView, closeViews := startViews(s, &deps, log)
	defer closeViews()
	pl, closePool, err := joinPool(ctx, s, &deps, met, &src, log)
	if err != nil {
		return err
	}
	defer closePool()
	// The engine's context ends with the agent's: on SIGTERM an operation
	// stops where it is, records nothing more, and resumes at the next
	// start, as after a kill -9.
	eng := maintenance.New(ctx, deps)
	src.Engine = eng
	go eng.FollowPoolSettings(ctx)
	note, err := eng.Resume()
	if err != nil {
		return fmt.Errorf("resume from %s: %w", store.Path(), err)
	}
	log.Info("resumed", "state", note)
	// After the resume (the phase is then the one the agent keeps);
	// stopped before the pool closes (deferred later, run earlier).
	defer watchHealth(ctx, s, pl, eng, views, log)()

	ln, err := api.Listen(s.Socket, gid)
	if err != nil {
		return err
	}
	srv := api.NewServer(eng, log)
	srv.SetAccess(access)
	srv.HandleMetrics(met.Handler())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	if err := serveMetrics(ctx, s.MetricsListen, met.Handler(), log); err != nil {
		return err
	}
	if err := serveAgentCheck(ctx, s.AgentCheckListen, eng, agentView, log); err != nil {
		return err
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Debug("sd_notify", "err", err)
	}
	log.Info("agent ready", "socket", s.Socket, "forwards", s.Forwards, "state_dir", s.StateDir,
		"restart_cmd", s.Restart.Line, "restart_cmd_reason", s.RestartReason)
	if onReady != nil {
		onReady()
	}

	return watchAndRepair(ctx, s, eng, log, errc)
}

// socketAccess is the socket's group and who may do what on it (its
// groups resolved once, here), and the warnings of the start: no
// operator group, credentials in clear.
func socketAccess(s settings.Settings, log *slog.Logger) (int, api.Access) {
	gid, _ := s.SocketGID()
	access, _ := s.SocketAccess() // Validate resolved the same groups
	if access.Operators == nil {
		log.Warn("group drainctl does not exist: only root can operate on the socket", "socket", s.Socket)
	}
	if w := s.Pool.InsecureWarning(); w != "" {
		log.Warn(w)
	}
	log.Info("socket roles", "operate", groupName(access.Operators), "read", groupName(access.Readers), "read_all", access.ReadAll)
	return gid, access
}

func groupName(g *api.Group) string {
	if g == nil {
		return "none"
	}
	return g.Name
}

// openForwarder opens the backend that holds drainctl's rules. The state
// names the one used last, and auto keeps it, so that rules of other
// software appearing later (Docker adds iptables-legacy rules) do not
// move a held server's rules.
func openForwarder(ctx context.Context, s settings.Settings, store *state.Store, log *slog.Logger) (forward.Forwarder, error) {
	recorded, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	fw, choice, err := forward.New(ctx, forward.Options{Backend: s.Backend, Recorded: recorded.Backend, Log: log})
	if err != nil {
		return nil, fmt.Errorf("forward backend: %w", err)
	}
	log.Info("forward backend", "backend", fw.Backend(), "reason", choice.Reason)
	return fw, nil
}

// startViews starts the load balancers' view: the checks of the forward
// ports, and HAProxy's agent-check queries when the agent answers them
// (agentView, which serveAgentCheck feeds), and gives it to the engine
// (deps.Rotation, left nil without a view). Without the capture (no
// CAP_NET_RAW) the agent still runs: withdraws then wait min-wait.
func startViews(s settings.Settings, deps *maintenance.Deps, log *slog.Logger) (views lbview.Views, agentView *lbview.View, closeAll func()) {
	closeAll = func() {}
	if !s.Checks.Watch {
		return nil, nil, closeAll
	}
	var ports []uint16
	for _, f := range s.Forwards {
		ports = append(ports, f.From)
	}
	w, err := lbview.Start(ports, lbview.Settings{Fall: s.Checks.Fall, Rise: s.Checks.Rise, Allow: s.LoadBalancers}, log)
	if err != nil {
		log.Warn("cannot watch the load balancers' health checks: withdraws wait min-wait and nothing confirms them", "err", err)
	} else {
		stopMemory := remember(w.View, s.StateDir, log)
		closeAll = func() { stopMemory(); w.Close() }
		views = append(views, w.View)
		log.Info("watching health checks", "ports", ports, "fall", s.Checks.Fall, "rise", s.Checks.Rise)
	}
	if s.AgentCheckListen != "" {
		// HAProxy applies an agent's answer when it reads it: one "drain"
		// takes the server out, one "ready" puts it back.
		_, port, _ := net.SplitHostPort(s.AgentCheckListen)
		p, _ := strconv.ParseUint(port, 10, 16)
		agentView = lbview.New(lbview.Settings{Fall: 1, Rise: 1, Ports: []uint16{uint16(p)}, Allow: s.LoadBalancers})
		views = append(views, agentView)
	}
	if len(views) > 0 {
		deps.Rotation = views
	}
	return views, agentView, closeAll
}

// serveMetrics serves /metrics on a TCP listener of its own, when asked:
// for a Prometheus that cannot reach the socket.
func serveMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	ms := &http.Server{Handler: metricsOnly(h), ReadHeaderTimeout: 5 * time.Second}
	go ms.Serve(mln)
	go func() { <-ctx.Done(); ms.Close() }()
	log.Info("metrics", "listen", mln.Addr().String())
	return nil
}

// serveAgentCheck answers HAProxy's agent-check, when asked: ready while
// in service, drain otherwise. Each answer read is also recorded in
// agentView (when watching), as a check accepted or refused, so that the
// operations' "out of rotation" counts the agent-check's load balancers.
func serveAgentCheck(ctx context.Context, addr string, eng *maintenance.Engine, agentView *lbview.View, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	aln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent-check listener: %w", err)
	}
	answer := func() string {
		if eng.Phase() == state.InService {
			return agentcheck.Ready
		}
		return agentcheck.Drain
	}
	var told func(net.Addr, string)
	if agentView != nil {
		port := uint16(aln.Addr().(*net.TCPAddr).Port)
		told = func(peer net.Addr, line string) {
			ap := peer.(*net.TCPAddr).AddrPort()
			now := time.Now()
			agentView.Record(port, lbview.Packet{Time: now, Remote: ap, Kind: lbview.Attempt})
			kind := lbview.Accepted
			if line == agentcheck.Drain {
				kind = lbview.Refused
			}
			agentView.Record(port, lbview.Packet{Time: now, Remote: ap, Kind: kind})
		}
	}
	go func() {
		if err := agentcheck.Serve(ctx, aln, answer, told, log); err != nil {
			log.Error("agent-check listener", "err", err)
		}
	}()
	log.Info("agent-check", "listen", aln.Addr().String())
	return nil
}

// fullCheckEvery is how often the agent reads its rules even when nothing
// told it of a change. The nftables monitor reports every commit (and a
// lost event breaks the subscription, which triggers a check), and the
// iptables-legacy fingerprint hashes the rules themselves, so this is a
// last resort, kept rare: reading the rules runs two commands with the
// iptables backends.
const fullCheckEvery = 10 * time.Minute

// watchAndRepair keeps the rules as the state says until ctx ends. The
// kernel tells of nftables changes (iptables-nft's too): the rules are
// checked, and repaired, as soon as one arrives. iptables-legacy tells
// nothing, so its fingerprint is polled every s.Reconcile (two getsockopt
// per table, no command run), and the rules read only when it changed. An
// idle agent thus runs no command at all between full checks.
func watchAndRepair(ctx context.Context, s settings.Settings, eng *maintenance.Engine, log *slog.Logger, errc <-chan error) error {
	changes, err := forward.Watch(ctx, log)
	if err != nil {
		log.Warn("cannot watch the ruleset: checking the rules every reconcile interval instead", "err", err)
	}
	reconcile := func(why string) {
		if repaired, err := eng.Reconcile(ctx); err != nil {
			log.Error("reconcile", "err", err, "trigger", why)
		} else if repaired {
			log.Warn("forward repaired: something had changed drainctl's rules", "trigger", why)
		}
	}
	tick := time.NewTicker(time.Duration(s.Reconcile))
	defer tick.Stop()
	fingerprint := forward.LegacyFingerprint()
	lastFull := time.Now()
	for {
		select {
		case <-ctx.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			err := <-errc
			// Exit only once the operation in progress has stopped, so no
			// change of the rules is cut in half by the exit.
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if werr := eng.WaitIdle(wctx); werr != nil {
				log.Error("stopping", "err", werr)
			}
			return err
		case err := <-errc:
			return err
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			reconcile("ruleset changed")
			fingerprint = forward.LegacyFingerprint()
			lastFull = time.Now()
		case <-tick.C:
			eng.ExpireTTL()
			fp := forward.LegacyFingerprint()
			switch {
			case changes == nil:
				reconcile("poll")
			case fp != fingerprint:
				reconcile("iptables-legacy changed")
			case time.Since(lastFull) >= fullCheckEvery:
				reconcile("periodic check")
			default:
				continue
			}
			// Taken after the reconcile, whose repair changes the rules: a
			// fingerprint from before it would match the next identical
			// flush and hide it.
			fingerprint = forward.LegacyFingerprint()
			lastFull = time.Now()
		}
	}
}
