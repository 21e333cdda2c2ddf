package nstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ServeHTTP starts an HTTP server on addr (e.g. ":80") in the namespace,
// answering "ok" to everything, until the test ends. Keep-alive
// connections stay open as long as their clients keep them.
func (n *NS) ServeHTTP(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, n.Name, err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
}

// Client is one keep-alive HTTP/1.1 connection, driven by hand so every
// request goes over the same TCP connection.
type Client struct {
	Conn net.Conn
	br   *bufio.Reader
}

// Dial connects from the namespace to addr; the connection is closed when
// the test ends.
func (n *NS) Dial(t testing.TB, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := n.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{Conn: c, br: bufio.NewReader(c)}
}

// Get sends one request and reads the whole answer.
func (c *Client) Get() error {
	_ = c.Conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c.Conn, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok") {
		return fmt.Errorf("unexpected answer %d %q", resp.StatusCode, body)
	}
	return nil
}

// MustGet is Get that fails the test on error.
func (c *Client) MustGet(t testing.TB) {
	t.Helper()
	if err := c.Get(); err != nil {
		t.Fatalf("request from %s: %v", c.Conn.LocalAddr(), err)
	}
}

// Peer is the client's address and port, as the server sees it (without
// NAT of the source).
func (c *Client) Peer() netip.AddrPort {
	return netip.MustParseAddrPort(c.Conn.LocalAddr().String())
}

// WrapClient makes a Client of a connection opened elsewhere.
func (n *NS) WrapClient(c net.Conn) *Client { return &Client{Conn: c, br: bufio.NewReader(c)} }
