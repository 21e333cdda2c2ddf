package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// fakePoolEngine answers the pool's routes, and records pool set's.
type fakePoolEngine struct{ set []string }

func (f *fakePoolEngine) PoolStatus(context.Context) (maintenance.PoolStatus, error) {
	return maintenance.PoolStatus{ID: "web1", MaxUnavailable: "1", ConfiguredMaxUnavailable: "3", Allowed: 1}, nil
}
func (f *fakePoolEngine) PoolRelease(context.Context, string, bool, string) (string, error) {
	return "", nil
}
func (f *fakePoolEngine) PoolPause(context.Context, string, string) error { return nil }
func (f *fakePoolEngine) PoolResume(context.Context, string) error        { return nil }
func (f *fakePoolEngine) PoolSet(_ context.Context, limit, who string) (string, error) {
	if limit == "0" {
		return "", &maintenance.Error{Code: maintenance.CodeBadRequest, Msg: "pool set: at least 1"}
	}
	f.set = append(f.set, limit+" by "+who)
	return "max_unavailable " + limit, nil
}

// servePool serves the pool's routes for e on a socket of the test's own.
func servePool(t *testing.T, e PoolEngine) *Client {
	t.Helper()
	s := &Server{mux: http.NewServeMux()}
	s.routePool(e)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Client{Socket: sock}
}

// POST /v1/pool/set carries the new limit to the engine and its note
// back; the engine's refusal is the request's fault (400); a body with
// an unknown field is refused before the engine sees it. GET /v1/pool
// carries the pool's limit and this host's configured one.
func TestPoolSetRoute(t *testing.T) {
	e := &fakePoolEngine{}
	c := servePool(t, e)
	ctx := context.Background()
	note, err := c.PoolSet(ctx, "25%")
	if err != nil || note != "max_unavailable 25%" || len(e.set) != 1 || !strings.HasPrefix(e.set[0], "25% by ") {
		t.Fatalf("pool set: %q %v; engine got %v", note, err, e.set)
	}
	var werr *apitype.Error
	if _, err := c.PoolSet(ctx, "0"); !errors.As(err, &werr) || werr.Code != apitype.CodeBadRequest {
		t.Fatalf("pool set 0: %v", err)
	}
	var a apitype.PoolAnswer
	err = c.call(ctx, http.MethodPost, PathPoolSet, map[string]string{"max_unavailable": "2", "limit": "2"}, &a)
	if !errors.As(err, &werr) || werr.Code != apitype.CodeBadRequest || len(e.set) != 1 {
		t.Fatalf("an unknown field: %v (engine got %v)", err, e.set)
	}
	for _, body := range []string{`{"max_unavailable":"2"} {"max_unavailable":"9"}`, `{"max_unavailable":`, `[]`} {
		resp, err := c.http().Post("http://drainctl"+PathPoolSet, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || len(e.set) != 1 {
			t.Errorf("body %s: %s (engine got %v)", body, resp.Status, e.set)
		}
	}
	ps, err := c.PoolStatus(ctx)
	if err != nil || ps.MaxUnavailable != "1" || ps.ConfiguredMaxUnavailable != "3" || PoolLimitDiffers(ps) == "" {
		t.Fatalf("pool status: %+v %v", ps, err)
	}
}
