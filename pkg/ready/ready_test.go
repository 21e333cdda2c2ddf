package ready

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := Check{URL: srv.URL, Timeout: 5 * time.Second, Interval: 10 * time.Millisecond}
	if err := c.Wait(context.Background()); err != nil || n.Load() != 3 {
		t.Fatalf("%v after %d attempts", err, n.Load())
	}
	c.Accept = MustStatuses("204")
	c.Timeout = 200 * time.Millisecond
	if err := c.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "status 200, want 204") {
		t.Fatalf("wrong status: %v", err)
	}
	c = Check{URL: "http://127.0.0.1:1/", Timeout: 200 * time.Millisecond}
	if err := c.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused: %v", err)
	}
}

// A site that answers "/" with a 301 (to its login page, to https) is up
// by default; the redirect is not followed (its target here answers 500),
// and the Host header names the virtual host to ask for.
func TestRedirectingSiteIsReady(t *testing.T) {
	var followed atomic.Int32
	var hosts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		if r.URL.Path == "/login" {
			followed.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/login", http.StatusMovedPermanently)
	}))
	defer srv.Close()
	c := Check{URL: srv.URL + "/", Host: "shop.example", Timeout: time.Second}
	if err := c.Wait(context.Background()); err != nil {
		t.Fatalf("a site answering 301: %v", err)
	}
	if followed.Load() != 0 || len(hosts) != 1 || hosts[0] != "shop.example" {
		t.Fatalf("redirect followed %d times, Host headers %v", followed.Load(), hosts)
	}
	c.Accept = MustStatuses("200")
	c.Timeout = 200 * time.Millisecond
	if err := c.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "status 301, want 200") {
		t.Fatalf("with only 200 accepted: %v", err)
	}
}

func TestParseStatuses(t *testing.T) {
	for in, want := range map[string]string{"200-399": "200-399", "200": "200", " 200 , 301,302 ": "200,301,302", "200-299,401": "200-299,401"} {
		s, err := ParseStatuses(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseStatuses(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "ok", "99", "600", "399-200", "200-", "-200", "200,,301"} {
		if _, err := ParseStatuses(bad); err == nil {
			t.Errorf("ParseStatuses(%q) accepted", bad)
		}
	}
	s := MustStatuses("200-299,404")
	if !s.Has(204) || !s.Has(404) || s.Has(301) || s.Has(403) {
		t.Errorf("Has is wrong for %v", s)
	}
}

// Probe makes one attempt, and says what the server answered (or not)
// with the URL asked: the agent's health says it for people.
func TestProbe(t *testing.T) {
	var n atomic.Int32
	status := atomic.Int32{}
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	c := Check{URL: srv.URL + "/", Timeout: 5 * time.Second, Interval: time.Millisecond}
	err := c.Probe(context.Background())
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/: status 503, want 200-399") || n.Load() != 1 {
		t.Fatalf("a 503: %v after %d attempts, want one attempt and its status", err, n.Load())
	}
	status.Store(http.StatusOK)
	if err := c.Probe(context.Background()); err != nil || n.Load() != 2 {
		t.Fatalf("a 200: %v after %d attempts", err, n.Load())
	}
	c.URL = "http://127.0.0.1:1/"
	if err := c.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), `Get "http://127.0.0.1:1/"`) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("nothing listening: %v", err)
	}
}
