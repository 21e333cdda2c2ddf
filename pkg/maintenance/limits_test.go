package maintenance

import (
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

const year = 365 * 24 * time.Hour

// refusedUnchanged checks that err is a bad request naming field, and
// that nothing was written or withdrawn.
func refusedUnchanged(t *testing.T, r *rig, err error, field, msg string) {
	t.Helper()
	if CodeOf(err) != CodeBadRequest || FieldOf(err) != field || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("%v (code %s, field %q): want %s naming %s, saying %q and that nothing was changed", err, CodeOf(err), FieldOf(err), CodeBadRequest, field, msg)
	}
	if len(r.store.saves) != 0 || len(r.fw.Calls()) != 0 || r.store.st.Phase != state.InService && r.store.st.Phase != "" {
		t.Fatalf("a refused request changed something: saves %v, forwarder %v, state %+v", r.store.saves, r.fw.Calls(), r.store.st)
	}
}

// A request over the agent's limits is refused, root's too, and changes
// nothing: a TTL of 200 years, a deadline of 100 years, a pool wait of
// decades (the defaults), and what is over limits the operator set.
func TestRequestCeilings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		op     func(*Engine) func(Request, func(Event)) (Result, error)
		req    Request
		field  string
		msg    string
	}{
		{"ttl of 200 years", Limits{}, enter, Request{Who: "a", TTL: 200 * year}, "ttl_ms", "over the agent's limits.max_ttl, 168h0m0s"},
		{"deadline of 100 years", Limits{}, restart, Request{Who: "a", Deadline: 100 * year, Root: true}, "deadline_ms", "limits.max_deadline, 1h0m0s"},
		{"pool wait of decades", Limits{}, enter, Request{Who: "a", PoolWait: 30 * year}, "pool_wait_ms", "limits.max_pool_wait, 24h0m0s"},
		{"ttl over the operator's", Limits{MaxTTL: time.Hour}, enter, Request{Who: "a", TTL: 2 * time.Hour, Root: true}, "ttl_ms", "limits.max_ttl, 1h0m0s"},
		{"pool wait over the operator's", Limits{MaxPoolWait: time.Minute}, restart, Request{Who: "a", PoolWait: 2 * time.Minute}, "pool_wait_ms", "limits.max_pool_wait, 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigDeps(t, t.Context(), nil, func(d *Deps) { d.Limits = tc.limits })
			_, err := tc.op(r.e)(tc.req, nil)
			refusedUnchanged(t, r, err, tc.field, tc.msg)
		})
	}
	// At the limit: taken.
	r := newRig(t, nil)
	if _, err := r.e.Enter(Request{Who: "a", TTL: DefaultMaxTTL, PoolWait: DefaultMaxPoolWait}, nil); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}

func enter(e *Engine) func(Request, func(Event)) (Result, error)   { return e.Enter }
func restart(e *Engine) func(Request, func(Event)) (Result, error) { return e.Restart }

// A request may make the drain policy stricter (a shorter deadline,
// abort instead of proceed), never looser, unless its caller is root.
func TestDrainPolicyTightenOnly(t *testing.T) {
	abort := func(d *Deps) { d.Policy.OnDeadline = drain.Abort } // the rig's deadline: 10 s
	for _, tc := range []struct {
		name  string
		more  func(*Deps)
		req   Request
		field string // "": accepted
	}{
		{"shorter deadline", nil, Request{Who: "a", Deadline: 5 * time.Second}, ""},
		{"the same deadline", nil, Request{Who: "a", Deadline: 10 * time.Second}, ""},
		{"longer deadline", nil, Request{Who: "a", Deadline: 11 * time.Second}, "deadline_ms"},
		{"longer deadline by root", nil, Request{Who: "a", Deadline: 30 * time.Minute, Root: true}, ""},
		{"abort over proceed", nil, Request{Who: "a", OnDeadline: drain.Abort}, ""},
		{"proceed over abort", abort, Request{Who: "a", OnDeadline: drain.Proceed}, "on_deadline"},
		{"proceed over abort by root", abort, Request{Who: "a", OnDeadline: drain.Proceed, Root: true}, ""},
		{"abort over abort", abort, Request{Who: "a", OnDeadline: drain.Abort}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigDeps(t, t.Context(), nil, tc.more)
			_, err := r.e.Restart(tc.req, nil)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			refusedUnchanged(t, r, err, tc.field, "stricter, never looser (only root may)")
		})
	}
}

// Free text is bounded and refused with control or bidi characters, at
// the engine's boundary and in CheckRequest (the CLI's), naming the
// field; nothing is changed.
func TestFreeTextRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		req   Request
		field string
		msg   string
	}{
		{"who with a carriage return", Request{Who: "alice (uid 1000, pid 7)\rroot (uid 0, pid 1)"}, "who", "U+000D"},
		{"reason of 64 KiB", Request{Who: "a", Reason: strings.Repeat("x", 64<<10)}, "reason", "65536 bytes, at most 1024"},
		{"reason with a newline", Request{Who: "a", Reason: "patch\nop=restart who=root"}, "reason", "U+000A"},
		{"reason with a bidi override", Request{Who: "a", Reason: "fix \u202eroot"}, "reason", "U+202E"},
		{"reason with an isolate", Request{Who: "a", Reason: "fix \u2066x\u2069"}, "reason", "U+2066"},
		{"reason not UTF-8", Request{Who: "a", Reason: "\xff"}, "reason", "not valid UTF-8"},
		{"command with an escape", Request{Who: "a", Command: "apt-get upgrade \x1b[2J"}, "command", "U+001B"},
		{"command too long", Request{Who: "a", Command: strings.Repeat("x", MaxCommand+1)}, "command", "at most 4096"},
		{"log with a newline", Request{Who: "a", Command: "true", Log: "/tmp/x\n"}, "log", "U+000A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckRequest(state.OpEnter, tc.req); FieldOf(err) != tc.field {
				t.Errorf("CheckRequest: %v, field %q", err, FieldOf(err))
			}
			r := newRig(t, nil)
			_, err := r.e.Enter(tc.req, nil)
			refusedUnchanged(t, r, err, tc.field, tc.msg)
		})
	}
	done := Request{Who: "a", CommandDone: &CommandDone{Command: "true\u202e", ExitCode: 1}}
	if err := CheckRequest(state.OpExit, done); FieldOf(err) != "command_done" {
		t.Errorf("command_done's command with a bidi override: %v", err)
	}
}

// What a run's command printed reaches the state and the history
// cleaned (lines stay lines, other control and bidi characters are
// replaced) and bounded to its end.
func TestRunOutputCleaned(t *testing.T) {
	hist := &memHistory{}
	r := newRigDeps(t, t.Context(), nil, func(d *Deps) { d.History = hist })
	run := Request{Who: "cron", Command: "apt-get -y upgrade"}
	if _, err := r.e.Enter(run, nil); err != nil {
		t.Fatal(err)
	}
	out := strings.Repeat("filler line\n", 4000) + "E: \x1b[2Jbroken \u202eevil\rfaked line\n"
	_, err := r.e.Exit(Request{Who: "cron", CommandDone: &CommandDone{Command: run.Command, ExitCode: 100, Output: out, Hold: true}}, nil)
	wantCode(t, err, CodeCommand)
	last := r.store.st.LastError
	if strings.ContainsAny(last, "\x1b\r\n\u202e") || !strings.Contains(last, "faked line") {
		t.Errorf("last error %q: want the last line, cleaned", last)
	}
	if len(hist.entries) != 2 {
		t.Fatalf("history: %+v", hist.entries)
	}
	kept := hist.entries[1].CommandOutput
	if strings.ContainsAny(kept, "\x1b\r\u202e") || !strings.Contains(kept, "E: \ufffd[2Jbroken \ufffdevil\nfaked line") || len(kept) > 4<<10 {
		t.Errorf("history's output (%d bytes) ends %q", len(kept), kept[max(0, len(kept)-60):])
	}
}

// The pool's administration takes free text too (who, a pause's
// reason): bounded and clean as an operation's, refused otherwise and
// nothing recorded.
func TestPoolAdminFreeTextRefused(t *testing.T) {
	p := &fakePoolAdmin{settings: &pool.Settings{Version: 1, MaxUnavailable: pool.MustLimit("1")}}
	r, hist, _ := poolAdminRig(t, p)
	err := r.e.PoolPause(t.Context(), "alice (uid 1000, pid 7)", "patch night\nop=pool-resume who=root")
	if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), "U+000A") {
		t.Errorf("pause with a newline in its reason: %v", err)
	}
	if _, err := r.e.PoolSet(t.Context(), "2", "alice\r"+strings.Repeat("x", 10)); CodeOf(err) != CodeBadRequest {
		t.Errorf("set by a who with a carriage return: %v", err)
	}
	if _, err := r.e.PoolRelease(t.Context(), "web2", true, strings.Repeat("w", MaxWho+1)); CodeOf(err) != CodeBadRequest {
		t.Errorf("release by a who too long: %v", err)
	}
	if _, err := r.e.PoolForget(t.Context(), "web2\x1b[2J", "alice"); CodeOf(err) != CodeBadRequest || len(p.forgot) != 0 {
		t.Errorf("forget of an id with an escape: %v (forgot %v)", err, p.forgot)
	}
	if len(hist.entries) != 0 || len(p.sets) != 0 {
		t.Errorf("refused administrations recorded %+v, set %v", hist.entries, p.sets)
	}
	if err := r.e.PoolPause(t.Context(), "alice (uid 1000, pid 7)", "patch night"); err != nil {
		t.Errorf("a plain pause: %v", err)
	}
}

// policy-rc.d's request is checked too: its reason would become the
// owed restart's, in the state, the history and the journal.
func TestWebPolicyFreeTextRefused(t *testing.T) {
	r := newRig(t, nil)
	req := dpkgRestart
	req.Reason = "dpkg: apache2\u202e"
	if _, err := r.e.WebPolicy(req); CodeOf(err) != CodeBadRequest || FieldOf(err) != "reason" {
		t.Fatalf("%v: want a bad request about the reason", err)
	}
	if r.store.st.Owed != nil {
		t.Fatalf("owed %+v after a refused request", r.store.st.Owed)
	}
}
