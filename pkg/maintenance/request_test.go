package maintenance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
)

// CheckRequest per operation: which fields each accepts, their bounds,
// and the field a refusal names.
func TestCheckRequest(t *testing.T) {
	ops := []state.Op{state.OpEnter, state.OpExit, state.OpRestart, state.OpReboot}
	notReboot := ops[:3]
	for _, tc := range []struct {
		name  string
		req   Request
		ops   []state.Op // refused for these; accepted for the others
		field string
		msg   string
		// on are the operations tried (nil: all): a reboot refuses what
		// does not apply to it first, with a message of its own.
		on []state.Op
	}{
		{"who", Request{}, ops, "who", "who is required", nil},
		{"negative ttl", Request{Who: "a", TTL: -1}, ops, "ttl_ms", "ttl must not be negative", notReboot},
		{"negative pool wait", Request{Who: "a", PoolWait: -time.Second}, ops, "pool_wait_ms", "pool wait must not be negative", nil},
		{"negative deadline", Request{Who: "a", Deadline: -time.Second}, ops, "deadline_ms", "deadline must not be negative", nil},
		{"on deadline", Request{Who: "a", OnDeadline: "later"}, ops, "on_deadline", "later", nil},
		{"a run with a ttl", Request{Who: "a", Command: "true", TTL: time.Hour}, ops, "ttl_ms", "ttl does not apply to a maintenance run's hold", notReboot},
		{"command done without its command", Request{Who: "a", CommandDone: &CommandDone{}}, ops, "command_done", "command_done: command is required", notReboot},
		{"outside window", Request{Who: "a", Window: "02:00-05:00", OutsideWindow: "later"}, ops, "outside_window", `outside_window "later": want skip or wait`, nil},
		{"outside window alone", Request{Who: "a", OutsideWindow: OutsideWait}, ops, "outside_window", "outside_window without a window", nil},
		{"bad window", Request{Who: "a", Window: "Tue 02:00-03:00 Mars/Olympus"}, ops, "window", "Mars/Olympus", nil},
		{"ttl", Request{Who: "a", TTL: time.Hour}, []state.Op{state.OpReboot}, "ttl_ms", "ttl, command, log, command_done, force, unit and job do not apply to a reboot", nil},
		{"command", Request{Who: "a", Command: "apt-get upgrade"}, []state.Op{state.OpReboot}, "command", "do not apply to a reboot", nil},
		{"log", Request{Who: "a", Log: "/var/log/x"}, []state.Op{state.OpReboot}, "log", "do not apply to a reboot", nil},
		{"force", Request{Who: "a", Force: true}, []state.Op{state.OpReboot}, "force", "do not apply to a reboot", nil},
		{"command done", Request{Who: "a", CommandDone: &CommandDone{Command: "x"}}, []state.Op{state.OpReboot}, "command_done", "do not apply to a reboot", nil},
		{"good", Request{Who: "a", Reason: "r", Deadline: time.Minute, OnDeadline: "abort", PoolWait: time.Minute, Window: "02:00-05:00 UTC", OutsideWindow: OutsideWait, IfRequired: true}, nil, "", "", nil},
	} {
		on := tc.on
		if on == nil {
			on = ops
		}
		for _, op := range on {
			t.Run(fmt.Sprintf("%s/%s", tc.name, op), func(t *testing.T) {
				err := CheckRequest(op, tc.req)
				refused := false
				for _, o := range tc.ops {
					refused = refused || o == op
				}
				if !refused {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if CodeOf(err) != CodeBadRequest || FieldOf(err) != tc.field || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("%v (code %s, field %q); want %s naming %q, saying %q", err, CodeOf(err), FieldOf(err), CodeBadRequest, tc.field, tc.msg)
				}
			})
		}
	}
}

// The engine refuses at its boundary with the same error, the field
// named; a deadline below the agent's min-wait names the deadline.
func TestEngineNamesTheField(t *testing.T) {
	r := newRig(t, nil)
	_, err := r.e.Restart(Request{Who: "a", PoolWait: -1}, nil)
	if FieldOf(fmt.Errorf("wrapped: %w", err)) != "pool_wait_ms" {
		t.Errorf("restart: %v, field %q", err, FieldOf(err))
	}
	_, err = r.e.Enter(Request{Who: "a", Deadline: time.Second}, nil) // the rig's min-wait is 2 s
	if CodeOf(err) != CodeBadRequest || FieldOf(err) != "deadline_ms" || !strings.Contains(err.Error(), "min-wait") {
		t.Errorf("enter: %v, field %q", err, FieldOf(err))
	}
	if FieldOf(errBoom) != "" {
		t.Error("a field for an error of no request")
	}
}
