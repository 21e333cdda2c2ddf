// Package ready checks that the web server answers on its real port before
// the forward is restored: a server that does not answer must stay out.
package ready

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Check is an HTTP readiness check.
type Check struct {
	URL string `json:"url"`
	// Accept lists the statuses that mean ready (default 200-399).
	Accept Statuses `json:"accept"`
	// Host, when set, is sent as the Host header: the name of the site
	// (virtual host) to ask for, while URL names the address to ask.
	Host string `json:"host,omitempty"`
	// Timeout bounds the whole check; it retries until then.
	Timeout time.Duration `json:"timeout_ms"`
	// Interval between attempts.
	Interval time.Duration `json:"interval_ms"`
}

// Wait retries the check until it passes or the timeout passes, and returns
// the last failure.
func (c Check) Wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	client := newClient()
	interval := c.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	var last error
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, client)
		if err == nil {
			return nil
		}
		// An attempt cut short by the overall timeout says nothing about
		// the server: report the attempt before it, if there was one.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("readiness check %s: not ready after %v (%d attempts): %w", c.URL, c.Timeout, attempt, last)
		case <-time.After(interval):
		}
	}
}

// Probe makes one attempt of the check, bounded by AttemptTimeout: the
// agent's watch of its own server's health (pkg/health), which keeps its
// own count of failures rather than retrying here.
func (c Check) Probe(ctx context.Context) error {
	err := c.once(ctx, newClient())
	var ue *url.Error
	if err == nil || errors.As(err, &ue) {
		return err // a url.Error names the request already: Get "URL": ...
	}
	return fmt.Errorf("%s: %w", c.URL, err)
}

// AttemptTimeout bounds one attempt: a server slower than that to answer
// a plain GET is not ready to serve users.
const AttemptTimeout = 2 * time.Second

// newClient is a client for the check: no connection kept (each attempt
// asks the server as a new user would), no proxy from the environment
// (the check asks this host's own server).
func newClient() *http.Client {
	return &http.Client{
		// Redirects are answers, not followed: a 301 to the login page is
		// what this server says, and where it points may be elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
}

func (c Check) once(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "drainctl-readiness")
	if c.Host != "" {
		req.Host = c.Host
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	accept := c.Accept
	if len(accept) == 0 {
		accept = MustStatuses(DefaultStatuses)
	}
	if !accept.Has(resp.StatusCode) {
		return fmt.Errorf("status %d, want %s", resp.StatusCode, accept)
	}
	return nil
}
