package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A fake balancer: two servers behind a cookie; after a while one of them
// starts failing some requests and, for one user, answers as the other.
func TestRecordsFailuresAndMoves(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		c, err := r.Cookie("SRV")
		name := "web1"
		if err == nil {
			name = c.Value
		} else if i%2 == 0 {
			name = "web2"
		}
		if i == 40 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if i > 60 && name == "web1" {
			name = "web2" // a user of web1 lands on web2: moved
		}
		http.SetCookie(w, &http.Cookie{Name: "SRV", Value: name})
		w.Write([]byte(name + "\n"))
	}))
	defer srv.Close()
	var d net.Dialer
	run := Start(context.Background(), Config{URL: srv.URL, Users: 4, UserInterval: 5 * time.Millisecond,
		Anon: 2, AnonInterval: 5 * time.Millisecond, Duration: 5 * time.Second, MaxRequests: 200, Dial: d.DialContext})
	for run.Snapshot().Requests < 200 {
		time.Sleep(10 * time.Millisecond)
	}
	res := run.Stop()
	if res.Failed != 1 || res.Failures[0].Kind != "status 503" {
		t.Errorf("failures: %d %+v", res.Failed, res.Failures)
	}
	if res.Moved == 0 || res.Moves[0].From != "web1" || res.Moves[0].To != "web2" {
		t.Errorf("moves: %d %+v", res.Moved, res.Moves)
	}
	if res.Requests < 200 || res.Requests > 210 {
		t.Errorf("requests %d: the run is not bounded by MaxRequests", res.Requests)
	}
}

func TestConnectionErrorsAreFailures(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	go func() { // accept and reset
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	defer ln.Close()
	var d net.Dialer
	run := Start(context.Background(), Config{URL: "http://" + addr + "/", Users: 1, UserInterval: 10 * time.Millisecond,
		Duration: 300 * time.Millisecond, Dial: d.DialContext})
	time.Sleep(100 * time.Millisecond)
	res := run.Stop()
	if res.Failed == 0 || res.Failed != res.Requests {
		t.Fatalf("%+v", res)
	}
	if k := res.Failures[0].Kind; k != "reset" && k != "eof" {
		t.Fatalf("kind %q (%s)", k, res.Failures[0].Err)
	}
}
