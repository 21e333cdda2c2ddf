package maintenance

// The operator's policy is a ceiling. A request may ask for a TTL, a
// drain deadline and a pool wait, each up to the agent's Limits; it may
// make the drain policy stricter (a shorter deadline, abort instead of
// proceed) but only root may make it looser: the policy is the operator's
// promise to the users of the server, and a member of the socket's group
// is not the operator. Its free text (who, reason, a run's command, the
// log's path) is bounded and refused when it holds control or bidi
// characters (freetext.Check); the output a run's command printed is
// cleaned instead (freetext.Clean), since refusing it would lose the
// outcome. docs/design.md says why.

import (
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/freetext"
)

// Limits are the most a request may ask. A zero field is its default.
type Limits struct {
	// MaxTTL bounds a hold's TTL (enter --ttl). A hold without a TTL is
	// not bounded: it lasts until maintenance exit, as asked.
	MaxTTL time.Duration
	// MaxDeadline bounds the drain deadline a request may ask, root's
	// included (only root may ask for more than the policy's).
	MaxDeadline time.Duration
	// MaxPoolWait bounds how long a request may wait for a pool slot.
	MaxPoolWait time.Duration
}

// The defaults of Limits (and of the settings limits.*): a week of
// hold, an hour of drain, a day in the pool's line. Each is well past
// what an operation needs, and far short of the years a typo or a
// hostile client asks for.
const (
	DefaultMaxTTL      = 7 * 24 * time.Hour
	DefaultMaxDeadline = time.Hour
	DefaultMaxPoolWait = 24 * time.Hour
)

// The bounds of a request's free text, in bytes. Who is the caller's
// label with the name, uid and pid the API server puts before it.
const (
	MaxWho     = 512
	MaxReason  = 1 << 10
	MaxCommand = 4 << 10
	MaxLog     = 4 << 10
	MaxSignal  = 32
	// MaxID bounds a host's id in the pool's administration (a host
	// name is at most 253 bytes).
	MaxID = 253
	// MaxOutput is how much of a run's output its exit may carry: the
	// end of it (the whole is in the run's log).
	MaxOutput = 16 << 10
)

// orDefaults is l with its zero fields at their defaults.
func (l Limits) orDefaults() Limits {
	if l.MaxTTL <= 0 {
		l.MaxTTL = DefaultMaxTTL
	}
	if l.MaxDeadline <= 0 {
		l.MaxDeadline = DefaultMaxDeadline
	}
	if l.MaxPoolWait <= 0 {
		l.MaxPoolWait = DefaultMaxPoolWait
	}
	return l
}

// checkText refuses a request whose free text is too long or holds a
// control or bidi character, naming the field.
func checkText(req Request) error {
	for _, f := range []struct {
		field, what, v string
		max            int
	}{
		{"who", "who", req.Who, MaxWho},
		{"reason", "reason", req.Reason, MaxReason},
		{"command", "command", req.Command, MaxCommand},
		{"log", "log", req.Log, MaxLog},
	} {
		if err := freetext.Check(f.what, f.v, f.max); err != nil {
			return badField(f.field, "%v; nothing was changed", err)
		}
	}
	if d := req.CommandDone; d != nil {
		if err := freetext.Check("command_done: command", d.Command, MaxCommand); err != nil {
			return badField("command_done", "%v; nothing was changed", err)
		}
		if err := freetext.Check("command_done: signal", d.Signal, MaxSignal); err != nil {
			return badField("command_done", "%v; nothing was changed", err)
		}
	}
	return nil
}

// cleaned is req with the output its run's command printed made safe
// to keep and show: its end, without control or bidi characters.
func cleaned(req Request) Request {
	if d := req.CommandDone; d != nil {
		c := *d
		c.Output = freetext.Clean(freetext.Tail(c.Output, MaxOutput))
		req.CommandDone = &c
	}
	return req
}

// checkCeilings refuses a request that asks for more than the agent's
// limits, or (unless its caller is root) for a drain policy looser than
// the agent's p.
func checkCeilings(req Request, p drain.Policy, l Limits) error {
	l = l.orDefaults()
	for _, c := range []struct {
		field, what, key string
		v, max           time.Duration
	}{
		{"ttl_ms", "ttl", "limits.max_ttl", req.TTL, l.MaxTTL},
		{"deadline_ms", "deadline", "limits.max_deadline", req.Deadline, l.MaxDeadline},
		{"pool_wait_ms", "pool wait", "limits.max_pool_wait", req.PoolWait, l.MaxPoolWait},
	} {
		if c.v > c.max {
			return badField(c.field, "%s %v: over the agent's %s, %v; nothing was changed", c.what, c.v, c.key, c.max)
		}
	}
	if req.Root {
		return nil
	}
	if req.Deadline > p.Deadline {
		return badField("deadline_ms", "deadline %v: longer than the agent's drain deadline %v, and a request may make the drain policy stricter, never looser (only root may); nothing was changed",
			req.Deadline, p.Deadline)
	}
	if req.OnDeadline == drain.Proceed && p.OnDeadline == drain.Abort {
		return badField("on_deadline", "on_deadline proceed: the agent's drain policy says abort, and a request may make the drain policy stricter, never looser (only root may); nothing was changed")
	}
	return nil
}
