// Package pool keeps a pool of app servers from going out of rotation all
// at once: a semaphore of max_unavailable slots on etcd, which every
// operation that takes a server out must hold.
//
// The keys of a pool live under /drainctl/pools/NAME/:
//
//	holders/ID   the slot of host ID: who took it, for what, since when.
//	             No lease: the slot is the host's, not the process's, so
//	             it survives an agent restart, kill -9 and a reboot.
//	waiters/ID   a host waiting for a slot, on the agent's lease: a waiter
//	             that gives up or dies holds nothing. Served in the order
//	             the keys were made (their create revision).
//	members/ID   a live agent, on its lease. The lease outlives a clean
//	             stop of the agent (its id is kept in the state
//	             directory), so a restarted agent is never seen gone.
//	seen/ID      when that member joined, and once it is gone, when it
//	             left (no lease): written at those events only, so an
//	             idle pool writes nothing (members.go).
//	health/ID    while the member is out of service, its own account of
//	             why, since when (no lease; health.go): there is none
//	             for a member in service, so what a grant reads is what
//	             is out (budget.go). Or the record of its departure,
//	             written by the member before it in the order of ids.
//	paused       present while the pool is paused: no slot is granted.
//	settings     the pool's own settings (Settings: its max_unavailable,
//	             a layout version), seeded by the first agent from its
//	             configuration. Unreadable, or of a layout this drainctl
//	             does not know: no slot is granted.
//
// The budget counts every member that is out (State.Unavailable): a
// holder, a member whose agent is gone, one whose agent says it is out
// of service. A slot is granted by one transaction that holds only if
// no holder key, no member's health, no pause and not the pool's
// settings changed since the state it decided on was read, so two hosts
// can never both take the last unit of budget, and a limit lowered
// meanwhile is never exceeded. Each pool has its own keys:
// pools sharing one etcd never block each other.
package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/atomicfile"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config says which pool this host is in and how to reach its etcd.
type Config struct {
	Endpoints []string // etcd client URLs
	Name      string   // the pool; several share one etcd
	ID        string   // this host in the pool (its host name by default)
	Limit     Limit    // max_unavailable
	TLS       *tls.Config
	Username  string
	Password  string
	// RequestTimeout bounds each request to etcd: past it, etcd counts as
	// unreachable (no answer, or no quorum) and nothing is taken out.
	RequestTimeout time.Duration
	// TTL is the lease of the member and waiter keys: how long a dead
	// agent still looks alive, or keeps its place in the queue.
	TTL time.Duration
	// LeaseFile, if set, keeps the lease's id across the agent's
	// restarts: Close leaves the lease to run out its TTL instead of
	// ending it, and the next Open takes it again while it lives, so a
	// restarted agent is never counted as a host gone.
	LeaseFile string
}

// Claim is a held slot: the host, the operation and who asked, and when.
type Claim struct {
	ID     string    `json:"id"`
	Op     string    `json:"op"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	Since  time.Time `json:"since"`
}

// Pause is the record of a paused pool.
type Pause struct {
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// ErrUnavailable wraps every failure to reach etcd or to get an answer
// from a quorum. Nothing was taken out when an Acquire returns it.
var ErrUnavailable = errors.New("etcd unavailable")

// ErrPaused is returned by operations refused because the pool is paused.
var ErrPaused = errors.New("pool paused")

// ErrLiveMember refuses to free the slot of a host whose agent is alive:
// it releases its own once it is back in rotation.
var ErrLiveMember = errors.New("live member")

// Pool is this host's handle on its pool. Safe for concurrent use.
type Pool struct {
	cfg    Config
	prefix string
	// ccfg makes the etcd client. With credentials, making it logs in,
	// so it waits for etcd: one made while etcd does not answer is made
	// again later (client).
	ccfg clientv3.Config
	cmu  sync.Mutex // guards cli, dialing, dialErr and closed
	// cli is the etcd client, nil until made (client): use client(),
	// never cli, outside Open and tests.
	cli *clientv3.Client
	// dialing is closed when the attempt in flight to make cli ends
	// (nil: none in flight); dialErr is why the last attempt failed.
	dialing chan struct{}
	dialErr error
	closed  bool
	mu      sync.Mutex // guards session, onSeed, last and lastErr
	// errs counts etcd failures by kind, for the metrics. Its own lock:
	// failures are counted while mu is held (making the lease).
	emu  sync.Mutex
	errs map[string]uint64
	// session is the lease of this agent's member and waiter keys, made
	// on first use and made again if it expired (etcd was away too long).
	session *concurrency.Session
	// onSeed is told when this host seeds the pool's settings.
	onSeed func(Settings)
	// last is the pool's settings as last read (lastErr: why unreadable).
	last    *Settings
	lastErr string
	// health is this member's health as the pool has it (nil: not read).
	health *Health
	// reads counts this host's reads of the pool (read, readBudget): the
	// tests see that a waiter counts what it is told instead.
	reads atomic.Int64
}

// Open connects to etcd. Only its configuration can make it fail (no
// endpoints, no name or id, a name or id with a /, credentials etcd
// refuses), never etcd being away: a pool whose etcd is down still
// opens, and each operation then fails closed (ErrUnavailable) until
// etcd answers. Without credentials it does not wait for etcd. With a
// Username, etcd's client logs in as it is made, so Open waits for
// that, at most about the request timeout: credentials refused while
// etcd answers fail Open with ErrDenied (a wrong password is mended in
// the configuration, like a bad name); no answer in time, the Pool
// opens without its client, and each request first makes it (logs in),
// within the request's own timeout, until one does. Refused then, the
// request fails with ErrDenied as any other would. So an agent that
// starts while etcd is away runs, and joins its pool once etcd is back.
func Open(cfg Config) (*Pool, error) {
	if len(cfg.Endpoints) == 0 || cfg.Name == "" || cfg.ID == "" {
		return nil, errors.New("pool: endpoints, name and id are required")
	}
	if strings.Contains(cfg.Name, "/") || strings.Contains(cfg.ID, "/") {
		return nil, fmt.Errorf("pool: name %q and id %q must not contain /", cfg.Name, cfg.ID)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	p := &Pool{cfg: cfg, prefix: "/drainctl/pools/" + cfg.Name + "/", ccfg: clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.RequestTimeout,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
		// The client's own zap logs retries at warn on every reconnect;
		// drainctl reports etcd's state through its own errors instead.
		Logger: zap.NewNop(),
		// Keepalives find a dead endpoint so the client fails over.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: cfg.RequestTimeout,
		// gRPC's default reconnect backoff grows to 120 s: after an etcd
		// outage of a few seconds the client would wait longer than a
		// request's timeout before it tried again, and the first requests
		// once etcd is back fail as "unavailable". Capped at a second, the
		// pool answers within about a second of etcd's return.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: cfg.RequestTimeout,
		})},
	}}
	// The attempt is bounded by DialTimeout; the margin lets it end on
	// its own rather than be abandoned a moment before it answers.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout+time.Second)
	defer cancel()
	_, err := p.client(ctx)
	switch {
	case err == nil, unanswered(err):
	case refused(err):
		return nil, p.unavailable("log in", err)
	default:
		return nil, fmt.Errorf("pool %s: etcd client for %s: %w", cfg.Name, strings.Join(cfg.Endpoints, ","), err)
	}
	return p, nil
}

// client is the etcd client, made now if it is not yet: at most one
// attempt at a time, which the callers share, each waiting for it no
// longer than its ctx. An attempt ends within the request timeout
// (DialTimeout: only logging in waits for etcd) and is not tied to any
// caller's ctx: a client made after its callers gave up is kept for the
// next. A failed attempt is not retried here, but by the next request.
func (p *Pool) client(ctx context.Context) (*clientv3.Client, error) {
	p.cmu.Lock()
	if p.cli != nil || p.closed {
		defer p.cmu.Unlock()
		if p.cli == nil {
			return nil, errClosed
		}
		return p.cli, nil
	}
	if p.dialing == nil {
		p.dialing = make(chan struct{})
		go p.dial(p.dialing)
	}
	done := p.dialing
	p.cmu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.cli != nil {
		return p.cli, nil
	}
	if p.closed {
		return nil, errClosed
	}
	if unanswered(p.dialErr) {
		// Worded and counted as any request etcd did not answer.
		return nil, context.DeadlineExceeded
	}
	return nil, p.dialErr
}

// errClosed: the Pool was closed before its client was made.
var errClosed = errors.New("pool closed")

// dial makes the client, once, and says so by closing done.
func (p *Pool) dial(done chan struct{}) {
	cli, err := clientv3.New(p.ccfg)
	p.cmu.Lock()
	defer p.cmu.Unlock()
	switch {
	case err != nil:
		p.dialErr = err
	case p.closed:
		cli.Close()
	default:
		p.cli, p.dialErr = cli, nil
	}
	p.dialing = nil
	close(done)
}

// unanswered says err is etcd not answering (down, unreachable, no
// quorum), not refusing: what the client's login at its making fails
// with while etcd is away.
func unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Unavailable:
		return true
	}
	return false
}

// refused says err is etcd's access control refusing a request.
func refused(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrAuthFailed) ||
		errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrUserEmpty)
}

// Close ends the connection. Without a LeaseFile it ends the agent's
// lease too (its member and waiter keys go at once); with one, the lease
// runs out its TTL, for the next start to take again. Held slots stay:
// they are the host's. A client still being made is closed once made.
func (p *Pool) Close() error {
	p.mu.Lock()
	s := p.session
	p.mu.Unlock()
	if s != nil {
		if p.cfg.LeaseFile != "" {
			s.Orphan()
		} else {
			s.Close()
		}
	}
	p.cmu.Lock()
	cli := p.cli
	p.closed = true
	p.cmu.Unlock()
	if cli == nil {
		return nil
	}
	return cli.Close()
}

// ErrorKinds are the kinds Errors counts: no answer in time (down,
// unreachable, no quorum), refused credentials, anything else.
var ErrorKinds = []string{"timeout", "auth", "error"}

// Errors counts etcd's failures so far by kind (ErrorKinds).
func (p *Pool) Errors() map[string]uint64 {
	p.emu.Lock()
	defer p.emu.Unlock()
	out := map[string]uint64{}
	for _, k := range ErrorKinds {
		out[k] = p.errs[k]
	}
	return out
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.cfg.Name }

// ID is this host's id in the pool.
func (p *Pool) ID() string { return p.cfg.ID }

// Limit is the max_unavailable this host is configured with: it only
// seeds a pool without settings; the pool's own (Settings) decides.
func (p *Pool) Limit() Limit { return p.cfg.Limit }

func (p *Pool) key(kind, id string) string { return p.prefix + kind + "/" + id }

// unavailable wraps an etcd failure with the endpoints and the cause, the
// two things an operator needs to mend it.
func (p *Pool) unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	cause, kind := err.Error(), "error"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		cause, kind = fmt.Sprintf("no answer within %v (etcd down, unreachable, or without quorum)", p.cfg.RequestTimeout), "timeout"
	case refused(err):
		cause, kind = p.deniedCause(err), "auth"
	}
	p.emu.Lock()
	if p.errs == nil {
		p.errs = map[string]uint64{}
	}
	p.errs[kind]++
	p.emu.Unlock()
	if kind == "auth" {
		// Refused, not unreachable: ErrDenied is ErrUnavailable too
		// (nothing was done), but says so.
		return fmt.Errorf("pool %s: %s: %w at %s: %s", p.cfg.Name, what, &deniedError{err}, strings.Join(p.cfg.Endpoints, ","), cause)
	}
	return fmt.Errorf("pool %s: %s: etcd at %s: %s: %w", p.cfg.Name, what, strings.Join(p.cfg.Endpoints, ","), cause, ErrUnavailable)
}

// call runs one request to etcd, bounded by the request timeout and ctx,
// on the etcd client (made first if it is not yet: Open).
func call[T any](ctx context.Context, p *Pool, what string, f func(context.Context, *clientv3.Client) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	var v T
	cli, err := p.client(ctx)
	if err == nil {
		v, err = f(ctx, cli)
	}
	if err != nil {
		var zero T
		return zero, p.unavailable(what, err)
	}
	return v, nil
}

// lease is the agent's session, made again once it expired.
func (p *Pool) lease(ctx context.Context) (clientv3.LeaseID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.session != nil {
		select {
		case <-p.session.Done():
			p.session = nil
		default:
			return p.session.Lease(), nil
		}
	}
	id, err := p.leaseID(ctx)
	if err != nil {
		return 0, err
	}
	// The session's keepalive runs for the life of the Pool, not of
	// this call.
	cli, err := p.client(ctx)
	if err != nil {
		return 0, p.unavailable("lease", err)
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(id), concurrency.WithContext(context.Background()))
	if err != nil {
		return 0, p.unavailable("lease", err)
	}
	p.session = s
	return s.Lease(), nil
}

// leaseID is the lease the last agent left (LeaseFile), while it lives,
// else a new one, kept in LeaseFile for the next.
func (p *Pool) leaseID(ctx context.Context) (clientv3.LeaseID, error) {
	if p.cfg.LeaseFile != "" {
		if b, err := os.ReadFile(p.cfg.LeaseFile); err == nil {
			if id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 16, 64); err == nil {
				ttl, err := call(ctx, p, "lease", func(ctx context.Context, cli *clientv3.Client) (*clientv3.LeaseTimeToLiveResponse, error) {
					return cli.TimeToLive(ctx, clientv3.LeaseID(id))
				})
				if err != nil {
					return 0, err
				}
				if ttl.TTL > 0 {
					return clientv3.LeaseID(id), nil
				}
			}
		}
	}
	// The grant is bounded like every request.
	g, err := call(ctx, p, "lease", func(ctx context.Context, cli *clientv3.Client) (*clientv3.LeaseGrantResponse, error) {
		return cli.Grant(ctx, int64(p.cfg.TTL/time.Second))
	})
	if err != nil {
		return 0, err
	}
	if p.cfg.LeaseFile != "" {
		// Not kept: the next start makes a new lease, and this host is
		// seen gone for the old one's TTL. Worth a word, not a failure.
		if err := atomicfile.Write(p.cfg.LeaseFile, []byte(strconv.FormatInt(int64(g.ID), 16)+"\n"), 0o600); err != nil {
			slog.Warn("pool: cannot keep the lease for the next start", "file", p.cfg.LeaseFile, "err", err)
		}
	}
	return g.ID, nil
}
