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
	"log/slog"
	"net"
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
// answer written (the load balancers' view counts them).
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
			c.SetWriteDeadline(time.Now().Add(time.Second))
			line := answer()
			if _, err := c.Write([]byte(line)); err != nil {
				log.Debug("agent-check answer", "peer", c.RemoteAddr(), "err", err)
			} else if told != nil {
				told(c.RemoteAddr(), line)
			}
		}()
	}
}
