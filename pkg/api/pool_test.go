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

// fakePoolEngine answers the pool's routes, and records pool set's and
// pool forget's.
type fakePoolEngine struct{ set, forgot []string }

func (f *fakePoolEngine) PoolStatus(context.Context) (maintenance.PoolStatus, error) {
	return maintenance.PoolStatus{ID: "web1", MaxUnavailable: "1", ConfiguredMaxUnavailable: "3", Allowed: 1}, nil
}
func (f *fakePoolEngine) PoolRelease(context.Context, string, bool, string) (string, error) {
	return "", nil
}
func (f *fakePoolEngine) PoolForget(_ context.Context, id, who string) (string, error) {
	f.forgot = append(f.forgot, id+" by "+who)
	if id == "web1" {
		return "", &maintenance.Error{Code: maintenance.CodeBusy, Msg: "pool web: web1 is a live member (its agent runs): live member"}
	}
	return "forgot " + id, nil
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

// POST /v1/pool/forget carries the id, and the caller as who, to the
// engine and its note back; a live member's refusal is busy (409), as
// release's; force is refused (400) before the engine is asked: no one
// forgets a live member.
func TestPoolForgetRoute(t *testing.T) {
	e := &fakePoolEngine{}
	c := servePool(t, e)
	ctx := context.Background()
	note, err := c.PoolForget(ctx, "web3")
	if err != nil || note != "forgot web3" || len(e.forgot) != 1 || !strings.HasPrefix(e.forgot[0], "web3 by ") || e.forgot[0] == "web3 by " {
		t.Fatalf("pool forget: %q %v; engine got %v", note, err, e.forgot)
	}
	var werr *apitype.Error
	if _, err := c.PoolForget(ctx, "web1"); !errors.As(err, &werr) || werr.Code != apitype.CodeBusy || !strings.Contains(werr.Msg, "live member") {
		t.Fatalf("pool forget of a live member: %v", err)
	}
	resp, err := c.http().Post("http://drainctl"+PathPoolForget, "application/json", strings.NewReader(`{"id":"web1","force":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(e.forgot) != 2 {
		t.Errorf("forget with force: %s (engine got %v)", resp.Status, e.forgot)
	}
}
