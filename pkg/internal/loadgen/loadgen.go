// Package loadgen drives an HTTP service the way docs/design.md's measurements
// did: sticky users, each with its own cookie and keep-alive connection,
// sending a request every few tens of milliseconds, plus a stream of
// anonymous requests. It records every failed request and every user
// served by another server than at first (a lost session).
//
// The server's name is read from the response body (its first word), as
// the lab's Apache serves it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Config bounds a run in time and in requests.
type Config struct {
	URL          string
	Users        int           // sticky users
	UserInterval time.Duration // between one user's requests
	Anon         int           // anonymous workers (no cookie)
	AnonInterval time.Duration // between one worker's requests
	Duration     time.Duration // the run stops after this...
	MaxRequests  int64         // ...or after this many requests
	Timeout      time.Duration // per request
	// Dial opens connections (e.g. inside a network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Failure is one failed request.
type Failure struct {
	Time time.Time `json:"time"`
	User int       `json:"user"` // -1: anonymous
	Kind string    `json:"kind"` // "status 503", "reset", "eof", "timeout", ...
	Err  string    `json:"error,omitempty"`
}

// Move is a sticky user served by another server than at first.
type Move struct {
	Time     time.Time `json:"time"`
	User     int       `json:"user"`
	From, To string
}

// Result is a run's outcome.
type Result struct {
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	Failures []Failure        `json:"failures,omitempty"` // the first 100
	Moved    int              `json:"users_moved"`
	Moves    []Move           `json:"moves,omitempty"`
	ByServer map[string]int64 `json:"by_server"`
	Elapsed  time.Duration    `json:"elapsed_ms"`
}

// Run is a load run in progress.
type Run struct {
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time

	requests, failed atomic.Int64
	mu               sync.Mutex
	failures         []Failure
	moves            []Move
	home             map[int]string
	byServer         map[string]int64
}

// Start starts a run; Stop ends it and returns the result.
func Start(ctx context.Context, cfg Config) *Run {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Minute
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = 10_000_000
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	r := &Run{cfg: cfg, cancel: cancel, start: time.Now(), home: map[int]string{}, byServer: map[string]int64{}}
	for u := 0; u < cfg.Users; u++ {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: cfg.Timeout, Transport: r.transport(1)}
		r.wg.Add(1)
		go r.loop(ctx, u, c, cfg.UserInterval)
	}
	anon := &http.Client{Timeout: cfg.Timeout, Transport: r.transport(cfg.Anon)}
	for a := 0; a < cfg.Anon; a++ {
		r.wg.Add(1)
		go r.loop(ctx, -1, anon, cfg.AnonInterval)
	}
	return r
}

func (r *Run) transport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         r.cfg.Dial,
		MaxConnsPerHost:     max(conns, 1),
		MaxIdleConnsPerHost: max(conns, 1),
		IdleConnTimeout:     time.Minute,
		Proxy:               nil,
	}
}

func (r *Run) loop(ctx context.Context, user int, c *http.Client, interval time.Duration) {
	defer r.wg.Done()
	for ctx.Err() == nil && r.requests.Load() < r.cfg.MaxRequests {
		r.one(ctx, user, c)
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

func (r *Run) one(ctx context.Context, user int, c *http.Client) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if user >= 0 {
		// Lets a balancer's log tell the users apart.
		req.Header.Set("X-Drainctl-User", strconv.Itoa(user))
	}
	resp, err := c.Do(req)
	if ctx.Err() != nil {
		return // the run ended during the request: not a failure
	}
	r.requests.Add(1)
	if err != nil {
		r.fail(user, classify(err), err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		r.fail(user, classify(err), err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		r.fail(user, fmt.Sprintf("status %d", resp.StatusCode), nil)
		return
	}
	server := strings.Fields(string(body) + " ?")[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byServer[server]++
	if user < 0 {
		return
	}
	home, ok := r.home[user]
	switch {
	case !ok:
		r.home[user] = server
	case home != server && !r.movedLocked(user):
		r.moves = append(r.moves, Move{Time: time.Now(), User: user, From: home, To: server})
	}
}

func (r *Run) movedLocked(user int) bool {
	for _, m := range r.moves {
		if m.User == user {
			return true
		}
	}
	return false
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	}
	return "error"
}

func (r *Run) fail(user int, kind string, err error) {
	r.failed.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 100 {
		f := Failure{Time: time.Now(), User: user, Kind: kind}
		if err != nil {
			f.Err = err.Error()
		}
		r.failures = append(r.failures, f)
	}
}

// Snapshot reports the run so far.
func (r *Run) Snapshot() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Requests: r.requests.Load(), Failed: r.failed.Load(), Moved: len(r.moves),
		Failures: append([]Failure(nil), r.failures...), Moves: append([]Move(nil), r.moves...),
		ByServer: map[string]int64{}, Elapsed: time.Since(r.start)}
	for k, v := range r.byServer {
		res.ByServer[k] = v
	}
	return res
}

// Stop ends the run and returns its result.
func (r *Run) Stop() Result {
	r.cancel()
	r.wg.Wait()
	return r.Snapshot()
}

// MarshalJSON gives Elapsed as whole milliseconds (elapsed_ms), as
// drainctl's JSON gives every duration (package jsonms).
func (r Result) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON reads Elapsed as whole milliseconds.
func (r *Result) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, r) }
