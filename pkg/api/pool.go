package api

// The pool's routes: what `drainctl pool` asks the agent, which asks etcd
// with the agent's own settings and credentials (the CLI needs neither).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/drainctl/drainctl/pkg/maintenance"
)

// The pool's routes.
const (
	PathPool        = "/v1/pool"         // GET: the pool's status
	PathPoolRelease = "/v1/pool/release" // POST PoolRequest: free a gone host's slot
	PathPoolPause   = "/v1/pool/pause"   // POST PoolRequest: no new slot pool-wide
	PathPoolResume  = "/v1/pool/resume"  // POST: grant slots again
)

// PoolRequest is the body of the pool's POST routes.
type PoolRequest struct {
	ID     string `json:"id,omitempty"` // release: whose slot
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"` // pause: why
	Who    string `json:"who,omitempty"`    // a label; the server adds the caller
}

// PoolAnswer is the answer of the pool's POST routes.
type PoolAnswer struct {
	Note string `json:"note"`
}

// PoolEngine is what the pool's routes drive (maintenance.Engine).
type PoolEngine interface {
	PoolStatus(ctx context.Context) (maintenance.PoolStatus, error)
	PoolRelease(ctx context.Context, id string, force bool, who string) (string, error)
	PoolPause(ctx context.Context, who, reason string) error
	PoolResume(ctx context.Context, who string) error
}

func (s *Server) routePool(e PoolEngine) {
	s.mux.HandleFunc("GET "+PathPool, func(w http.ResponseWriter, r *http.Request) {
		st, err := e.PoolStatus(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	post := func(f func(ctx context.Context, req PoolRequest) (string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req PoolRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeJSON(w, http.StatusBadRequest, ErrorBody{&maintenance.Error{Code: maintenance.CodeBadRequest, Msg: "bad request body: " + err.Error()}})
				return
			}
			req.Who = caller(r, req.Who)
			note, err := f(r.Context(), req)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, PoolAnswer{Note: note})
		}
	}
	s.mux.HandleFunc("POST "+PathPoolRelease, post(func(ctx context.Context, req PoolRequest) (string, error) {
		return e.PoolRelease(ctx, req.ID, req.Force, req.Who)
	}))
	s.mux.HandleFunc("POST "+PathPoolPause, post(func(ctx context.Context, req PoolRequest) (string, error) {
		return "pool paused: no slot is granted until pool resume", e.PoolPause(ctx, req.Who, req.Reason)
	}))
	s.mux.HandleFunc("POST "+PathPoolResume, post(func(ctx context.Context, req PoolRequest) (string, error) {
		return "pool resumed: slots are granted again", e.PoolResume(ctx, req.Who)
	}))
}

// writeError answers with err's code: the request's fault (400), busy
// (409), etcd away (503), else 500.
func writeError(w http.ResponseWriter, err error) {
	var me *maintenance.Error
	if !errors.As(err, &me) {
		me = &maintenance.Error{Code: maintenance.CodeInternal, Msg: err.Error()}
	}
	code := http.StatusInternalServerError
	switch me.Code {
	case maintenance.CodeBadRequest:
		code = http.StatusBadRequest
	case maintenance.CodeBusy:
		code = http.StatusConflict
	case maintenance.CodePoolUnavailable:
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, ErrorBody{me})
}

// PoolStatus asks the agent for the pool's status.
func (c *Client) PoolStatus(ctx context.Context) (maintenance.PoolStatus, error) {
	var st maintenance.PoolStatus
	return st, c.get(ctx, PathPool, &st)
}

// PoolRelease frees the slot of host id (a live member's only with force).
func (c *Client) PoolRelease(ctx context.Context, id string, force bool) (string, error) {
	return c.poolPost(ctx, PathPoolRelease, PoolRequest{ID: id, Force: force})
}

// PoolPause stops the pool granting slots, for reason.
func (c *Client) PoolPause(ctx context.Context, reason string) (string, error) {
	return c.poolPost(ctx, PathPoolPause, PoolRequest{Reason: reason})
}

// PoolResume lets the pool grant slots again.
func (c *Client) PoolResume(ctx context.Context) (string, error) {
	return c.poolPost(ctx, PathPoolResume, PoolRequest{})
}

func (c *Client) poolPost(ctx context.Context, path string, body PoolRequest) (string, error) {
	var a PoolAnswer
	return a.Note, c.call(ctx, http.MethodPost, path, body, &a)
}
