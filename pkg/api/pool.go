package api

// The pool's routes: what `drainctl pool` asks the agent, which asks etcd
// with the agent's own settings and credentials (the CLI needs neither).

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// The pool's routes.
const (
	PathPool        = "/v1/pool"         // GET: the pool's status
	PathPoolRelease = "/v1/pool/release" // POST apitype.PoolRequest: free a gone host's slot
	PathPoolForget  = "/v1/pool/forget"  // POST apitype.PoolRequest: remove a gone host for good
	PathPoolPause   = "/v1/pool/pause"   // POST apitype.PoolRequest: no new slot pool-wide
	PathPoolResume  = "/v1/pool/resume"  // POST: grant slots again
	PathPoolSet     = "/v1/pool/set"     // POST apitype.PoolRequest: the pool's max_unavailable
)

// PoolEngine is what the pool's routes drive (maintenance.Engine).
type PoolEngine interface {
	PoolStatus(ctx context.Context) (maintenance.PoolStatus, error)
	PoolRelease(ctx context.Context, id string, force bool, who string) (string, error)
	PoolForget(ctx context.Context, id, who string) (string, error)
	PoolPause(ctx context.Context, who, reason string) error
	PoolResume(ctx context.Context, who string) error
	PoolSet(ctx context.Context, limit, who string) (string, error)
}

func (s *Server) routePool(e PoolEngine) {
	s.mux.HandleFunc("GET "+PathPool, func(w http.ResponseWriter, r *http.Request) {
		st, err := e.PoolStatus(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, PoolStatusOf(st))
	})
	post := func(f func(ctx context.Context, req apitype.PoolRequest) (string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			req, ok := readPoolRequest(w, r)
			if !ok {
				return
			}
			req.Who = caller(r, req.Who)
			note, err := f(r.Context(), req)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, apitype.PoolAnswer{Note: note})
		}
	}
	s.mux.HandleFunc("POST "+PathPoolRelease, post(func(ctx context.Context, req apitype.PoolRequest) (string, error) {
		return e.PoolRelease(ctx, req.ID, req.Force, req.Who)
	}))
	s.mux.HandleFunc("POST "+PathPoolForget, post(func(ctx context.Context, req apitype.PoolRequest) (string, error) {
		if req.Force {
			// Forget never removes a live member, whoever asks: its
			// agent would count it again at its next change. Refused
			// rather than ignored, so a caller does not believe it was
			// obeyed.
			return "", &maintenance.Error{Code: maintenance.CodeBadRequest, Field: "force", Msg: "pool forget takes no force: a live member cannot be forgotten (stop its agent first)"}
		}
		return e.PoolForget(ctx, req.ID, req.Who)
	}))
	s.mux.HandleFunc("POST "+PathPoolPause, post(func(ctx context.Context, req apitype.PoolRequest) (string, error) {
		return "pool paused: no slot is granted until pool resume", e.PoolPause(ctx, req.Who, req.Reason)
	}))
	s.mux.HandleFunc("POST "+PathPoolResume, post(func(ctx context.Context, req apitype.PoolRequest) (string, error) {
		return "pool resumed: slots are granted again", e.PoolResume(ctx, req.Who)
	}))
	s.mux.HandleFunc("POST "+PathPoolSet, post(func(ctx context.Context, req apitype.PoolRequest) (string, error) {
		return e.PoolSet(ctx, req.MaxUnavailable, req.Who)
	}))
}

// readPoolRequest reads a pool route's body as readRequest reads an
// operation's (readBody): within bodyTimeout, one JSON object of known
// fields and nothing after it; or it answers 400 and says so.
func readPoolRequest(w http.ResponseWriter, r *http.Request) (apitype.PoolRequest, bool) {
	var req apitype.PoolRequest
	ok := readBody(w, r, func(rd io.Reader) error {
		dec := json.NewDecoder(rd)
		dec.DisallowUnknownFields()
		err := dec.Decode(&req)
		if err == nil && dec.More() {
			err = errors.New("more than one JSON value")
		}
		return err
	})
	return req, ok
}

// writeError answers with err's code: the request's fault (400), busy
// (409), etcd away (503), else 500.
func writeError(w http.ResponseWriter, err error) {
	we := ErrorOf(err)
	code := http.StatusInternalServerError
	switch we.Code {
	case apitype.CodeBadRequest:
		code = http.StatusBadRequest
	case apitype.CodeBusy:
		code = http.StatusConflict
	case apitype.CodePoolUnavailable:
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, apitype.ErrorBody{Error: we})
}

// PoolStatus asks the agent for the pool's status.
func (c *Client) PoolStatus(ctx context.Context) (apitype.PoolStatus, error) {
	var st apitype.PoolStatus
	return st, c.get(ctx, PathPool, &st)
}

// PoolRelease frees the slot of host id (a live member's only with force).
func (c *Client) PoolRelease(ctx context.Context, id string, force bool) (string, error) {
	return c.poolPost(ctx, PathPoolRelease, apitype.PoolRequest{ID: id, Force: force})
}

// PoolForget removes host id, gone for good, from the pool: it no longer
// counts against the budget. A live member is refused (busy).
func (c *Client) PoolForget(ctx context.Context, id string) (string, error) {
	return c.poolPost(ctx, PathPoolForget, apitype.PoolRequest{ID: id})
}

// PoolPause stops the pool granting slots, for reason.
func (c *Client) PoolPause(ctx context.Context, reason string) (string, error) {
	return c.poolPost(ctx, PathPoolPause, apitype.PoolRequest{Reason: reason})
}

// PoolResume lets the pool grant slots again.
func (c *Client) PoolResume(ctx context.Context) (string, error) {
	return c.poolPost(ctx, PathPoolResume, apitype.PoolRequest{})
}

// PoolSet makes limit ("N" or "P%") the pool's max_unavailable.
func (c *Client) PoolSet(ctx context.Context, limit string) (string, error) {
	return c.poolPost(ctx, PathPoolSet, apitype.PoolRequest{MaxUnavailable: limit})
}

func (c *Client) poolPost(ctx context.Context, path string, body apitype.PoolRequest) (string, error) {
	var a apitype.PoolAnswer
	return a.Note, c.call(ctx, http.MethodPost, path, body, &a)
}
