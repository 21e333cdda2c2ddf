// Package agentcheck answers HAProxy's agent-check: HAProxy connects to
// the agent port, reads one line, and applies it to the server. drainctl
// answers "ready up" while the server is in service and "drain" while it
// is out (withdrawn, draining, held, restarting): in HAProxy's DRAIN state
// users whose cookie names the server keep reaching it and nobody new is
// sent, which is what the backup entry does in the two-entry pattern.
package agentcheck

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// Answers: "ready" lifts a drain or maintenance the agent set, "up" marks
// the server up (HAProxy's health check still decides too).
const (
	Ready = "ready up\n"
	Drain = "drain\n"
)

// Serve answers every connection on ln with answer()'s line, then closes
// it, until ctx ends. A client that does not read within a second is
// dropped: the answer is a dozen bytes. told, when not nil, hears of each
// answer given to a client that behaved like HAProxy's agent check
// (LikeAgentCheck): the load balancers' view counts those, and only
// those, so that any TCP client of the port is not a load balancer.
func Serve(ctx context.Context, ln net.Listener, answer func() string, told func(peer net.Addr, line string), log *slog.Logger) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			line := answer()
			if _, err := c.Write([]byte(line)); err != nil {
				log.Debug("agent-check answer", "peer", c.RemoteAddr(), "err", err)
				return
			}
			if told == nil {
				return
			}
			// The answer ends with our FIN at once, as HAProxy expects;
			// then what the client does tells whether it was one.
			if hc, ok := c.(interface{ CloseWrite() error }); ok {
				hc.CloseWrite()
			}
			if LikeAgentCheck(c) {
				told(c.RemoteAddr(), line)
			} else {
				log.Debug("agent-check: a client that is no agent check, not counted", "peer", c.RemoteAddr())
			}
		}()
	}
}

// MaxSend is the longest agent-send string (HAProxy's agent-send) a
// client may send and still count as an agent check.
const MaxSend = 256

// LikeAgentCheck reads what the client does after its answer, until it
// closes or r's deadline passes, and says whether it behaved like
// HAProxy's agent check: it sent nothing, or one line of printable text
// (its agent-send) of MaxSend bytes at most, and closed the connection
// (EOF, or the reset HAProxy closes its checks with). A client that sends
// a request (an HTTP client, a second line), or keeps the connection
// open, is not one.
func LikeAgentCheck(r io.Reader) bool {
	buf := make([]byte, MaxSend+1)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if n > MaxSend {
			return false
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return agentSend(buf[:n])
		default:
			return false // the deadline: it kept the connection open
		}
	}
}

// agentSend says whether b is nothing or one printable line: what HAProxy's
// agent-send sends.
func agentSend(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '\n' && i == len(b)-1, c == '\r' && i >= len(b)-2, c == '\t':
		case c < 0x20 || c > 0x7e:
			return false
		}
	}
	return true
}
