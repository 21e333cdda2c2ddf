package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/state"
)

// Engine is what the server drives (maintenance.Engine). It speaks the
// engine's types; the server converts them to the wire's (convert.go).
type Engine interface {
	Status(ctx context.Context) (maintenance.Status, error)
	Enter(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	Exit(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	Restart(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	Reboot(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	WebStop(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	WebPolicy(maintenance.Request) (maintenance.PolicyAnswer, error)
	WebStart(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)
	Subscribe() (<-chan maintenance.Event, func())
	History(n int) ([]history.Entry, error)
	PoolEngine
}

// Server serves the API for one engine.
type Server struct {
	e      Engine
	log    *slog.Logger
	mux    *http.ServeMux
	access Access
	lim    limits
	subs   atomic.Int32 // /v1/events subscribers now
}

// limits bound what clients hold of the agent (tests shorten them).
type limits struct {
	conns, connsPerUser int
	subscribers         int32
	idle                time.Duration
}

// Server's limits: idle keep-alive connections are closed after a
// minute; past 32 event subscribers a new one is refused (503), for
// each holds a goroutine and a buffer of the engine's.
var defaultLimits = limits{conns: maxConns, connsPerUser: maxConnsPerUser, subscribers: 32, idle: time.Minute}

// SetAccess says who may do what (roles.go). Until it is called only
// root may do anything.
func (s *Server) SetAccess(a Access) { s.access = a }

// PathMetrics serves the metrics (Prometheus' text format), when the
// server is given them.
const PathMetrics = "/metrics"

// HandleMetrics serves h at /metrics.
func (s *Server) HandleMetrics(h http.Handler) { s.mux.Handle("GET "+PathMetrics, h) }

// NewServer routes the API.
func NewServer(e Engine, log *slog.Logger) *Server {
	s := &Server{e: e, log: log, mux: http.NewServeMux(), lim: defaultLimits}
	s.mux.HandleFunc("GET "+PathStatus, s.status)
	s.mux.HandleFunc("POST "+PathEnter, s.op(state.OpEnter, e.Enter))
	s.mux.HandleFunc("POST "+PathExit, s.op(state.OpExit, e.Exit))
	s.mux.HandleFunc("POST "+PathRestart, s.op(state.OpRestart, e.Restart))
	s.mux.HandleFunc("POST "+PathReboot, s.op(state.OpReboot, e.Reboot))
	s.mux.HandleFunc("POST "+PathWebStop, s.op(state.OpWebStop, e.WebStop))
	s.mux.HandleFunc("POST "+PathWebStart, s.op(state.OpWebStart, e.WebStart))
	s.mux.HandleFunc("POST "+PathWebPolicy, s.webPolicy)
	s.mux.HandleFunc("GET "+PathEvents, s.events)
	s.mux.HandleFunc("GET "+PathHistory, s.history)
	s.routePool(e)
	return s
}

type peerKey struct{}

// Serve serves on ln until ctx ends. Every connection carries its peer's
// credentials (SO_PEERCRED), from which requests are attributed and
// each route's role is checked (roles.go).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: bodyTimeout,
		MaxHeaderBytes:    maxBody,
		// No ReadTimeout or WriteTimeout: answers stream for as long as
		// an operation runs. Each handler bounds the body it reads; an
		// idle keep-alive connection is closed.
		IdleTimeout: s.lim.idle,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok && pc.peer != nil {
				return context.WithValue(ctx, peerKey{}, pc.peer)
			}
			return ctx
		},
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(newPeerListener(ln, s.lim.conns, s.lim.connsPerUser)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveHTTP checks the caller's role before the route reads anything.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.allowed(w, r) {
		s.mux.ServeHTTP(w, r)
	}
}

// peerInfo is the connection's peer, nil if unknown.
func peerInfo(r *http.Request) *Peer {
	p, _ := r.Context().Value(peerKey{}).(*Peer)
	return p
}

// peer is the credentials of the connection's process, nil if unknown.
func peer(r *http.Request) *syscall.Ucred {
	if p := peerInfo(r); p != nil {
		return p.Cred
	}
	return nil
}

// caller names the peer: "alice (uid 1000)", plus what the client says
// (e.g. "via cron") — the uid comes from the kernel, the label does not.
func caller(r *http.Request, label string) string {
	cred := peer(r)
	who := "unknown"
	if cred != nil {
		name := strconv.Itoa(int(cred.Uid))
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		}
		who = fmt.Sprintf("%s (uid %d, pid %d)", name, cred.Uid, cred.Pid)
	}
	if label != "" {
		who += " " + label
	}
	return who
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// webPolicy answers drainctl's policy-rc.d at once: the package manager
// waits for it.
func (s *Server) webPolicy(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	req.Who = caller(r, req.Who)
	a, err := s.e.WebPolicy(EngineRequest(req))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PolicyAnswerOf(a))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.e.Status(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, internalError(err))
		return
	}
	writeJSON(w, http.StatusOK, StatusOf(st))
}

// Limits on what a client sends.
const maxBody = 64 << 10

// bodyTimeout bounds the wait for a request's header and body (a
// variable for the tests to shorten).
var bodyTimeout = 5 * time.Second

// readRequest reads an operation's request body, or answers 400 and
// says so (readBody).
func readRequest(w http.ResponseWriter, r *http.Request) (apitype.Request, bool) {
	var req apitype.Request
	ok := readBody(w, r, func(rd io.Reader) (err error) { req, err = DecodeRequest(rd); return err })
	return req, ok
}

// readBody decodes a request's body with decode, or answers 400 and
// says so. The body must arrive within bodyTimeout: a client that sends
// it slowly, or never finishes, is cut off instead of holding a
// connection (and, with many, the agent's descriptors). The deadline is
// lifted once it is read: an operation's answer streams for as long as
// it runs. Operations and the pool's routes share this one reader, so
// that a route added later cannot forget the deadline.
func readBody(w http.ResponseWriter, r *http.Request, decode func(io.Reader) error) bool {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(bodyTimeout))
	if err := decode(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
		writeJSON(w, http.StatusBadRequest, badBody(err))
		return false
	}
	rc.SetReadDeadline(time.Time{})
	return true
}

// DecodeRequest reads an operation's request body: one JSON object with
// known fields only, nothing after it.
func DecodeRequest(r io.Reader) (apitype.Request, error) {
	var req apitype.Request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, err
	}
	if dec.More() {
		return req, errors.New("more than one JSON value")
	}
	return req, nil
}

// op runs an operation and streams its progress as JSON lines. The
// operation runs in its own goroutine: if the client goes away it goes on.
func (s *Server) op(op state.Op, run func(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		wreq, ok := readRequest(w, r)
		if !ok {
			return
		}
		req := EngineRequest(wreq)
		req.Who = caller(r, req.Who)
		if cred := peer(r); cred != nil {
			req.PID, req.Root = int(cred.Pid), cred.Uid == 0
		}
		// A caller that hangs up while its operation waits for a pool
		// slot leaves the line.
		req.Done = r.Context().Done()
		events := make(chan maintenance.Event, 256)
		done := make(chan apitype.Line, 1)
		go func() {
			res, err := run(req, func(ev maintenance.Event) {
				select {
				case events <- ev:
				default: // a slow client misses progress, never the result
				}
			})
			wres := ResultOf(res)
			l := apitype.Line{Result: &wres}
			if err != nil {
				l.Error = ErrorOf(err)
				// A refused operation (busy) did nothing: the result
				// still names it and where the server is.
				if wres.Phase == "" {
					wres.Phase = l.Error.Phase
				}
			}
			if wres.Op == "" {
				wres.Op = apitype.Op(op)
			}
			done <- l
			if err != nil {
				s.log.Info("operation ended", "who", req.Who, "phase", wres.Phase, "err", err)
			} else {
				s.log.Info("operation ended", "who", req.Who, "phase", wres.Phase)
			}
		}()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		flush := func() {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		flush()
		for {
			select {
			case ev := <-events:
				enc.Encode(eventLine(ev))
				flush()
			case l := <-done:
				for len(events) > 0 {
					enc.Encode(eventLine(<-events))
				}
				enc.Encode(l)
				flush()
				return
			case <-r.Context().Done():
				return // the client left; the operation goes on
			}
		}
	}
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	n := 0
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, apitype.ErrorBody{Error: &apitype.Error{Code: apitype.CodeBadRequest, Msg: "n: want a number of entries, 0 for all"}})
			return
		}
	}
	// Bounded: the last history.Max at most, read from the file's end.
	n = min(cmp.Or(n, history.Max), history.Max)
	entries, err := s.e.History(n)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, internalError(err))
		return
	}
	if entries == nil {
		entries = []history.Entry{} // [], not null: a list, even empty
	}
	writeJSON(w, http.StatusOK, HistoryOf(entries))
}

// events streams every engine event until the client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.subs.Add(1) > s.lim.subscribers {
		s.subs.Add(-1)
		msg := fmt.Sprintf("too many event subscribers (%d): try again once one has left", s.lim.subscribers)
		writeJSON(w, http.StatusServiceUnavailable, apitype.ErrorBody{Error: &apitype.Error{Code: apitype.CodeOverloaded, Msg: msg}})
		return
	}
	defer s.subs.Add(-1)
	ch, cancel := s.e.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			enc.Encode(eventLine(ev))
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		case <-r.Context().Done():
			return
		}
	}
}

// eventLine is an engine event as the wire's line.
func eventLine(ev maintenance.Event) apitype.Line {
	wev := EventOf(ev)
	return apitype.Line{Event: &wev}
}

// badBody is the answer to a request body that does not decode.
func badBody(err error) apitype.ErrorBody {
	return apitype.ErrorBody{Error: &apitype.Error{Code: apitype.CodeBadRequest, Msg: "bad request body: " + err.Error()}}
}

// internalError is the answer to a failure of the agent itself (the
// status or the history could not be read): internal, whatever err says.
func internalError(err error) apitype.ErrorBody {
	return apitype.ErrorBody{Error: &apitype.Error{Code: apitype.CodeInternal, Msg: err.Error()}}
}
