package api_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// ms plus a part of a millisecond: the wire truncates it away.
func ms(n int) time.Duration { return time.Duration(n)*time.Millisecond + 999*time.Microsecond }

var (
	t0 = time.Date(2026, 11, 24, 12, 32, 16, 852280678, time.UTC)
	lb = lbview.LB{Addr: netip.MustParseAddr("198.18.0.2"), Port: 81, Checks: 6, Accepted: 5, Refused: 1,
		Interval: ms(202), First: t0, Last: t0.Add(time.Second), Active: true}
	drainEvent = drain.Event{Time: t0, Elapsed: ms(509), Active: 1,
		ByPath: map[conntable.Path]int{conntable.PathDirect: 1},
		ByPeer: []drain.PeerCount{{Peer: netip.MustParseAddr("198.18.0.3"), Count: 1}},
		Oldest: &drain.ConnSummary{Peer: netip.MustParseAddrPort("198.18.0.3:4000"), Path: conntable.PathDirect, Age: ms(2000), Idle: ms(10)},
		Idle:   2, New: 3, Ignored: 4, QuietFor: ms(0), DeadlineIn: ms(59490), Outcome: drain.Drained}
	out      = runner.Output{Command: "apachectl -t", Output: "Syntax OK\n", ExitCode: 0, Duration: ms(4)}
	confirm  = lbview.Confirmation{Want: lbview.Out, Elapsed: ms(347), LoadBalancers: []lbview.Confirmed{{Addr: lb.Addr, Port: 81, Confirmed: true, Need: 2, Answers: 2, After: ms(347)}, {Addr: lb.Addr, Port: 82, Need: 2}}}
	holder   = &state.Holder{Who: "root (uid 0, pid 1508)", Reason: "kernel update", Since: t0, Until: t0.Add(2 * time.Hour)}
	exitCode = 0
)

// wireSamples are values of every type the API and the CLI's --json
// send, with what each must encode to, byte for byte.
var wireSamples = []struct {
	name string
	v    any
	want string
}{
	{"status", maintenance.Status{
		State: state.State{Version: 1, Phase: state.Held, Holder: holder, Backend: "nftables",
			History: []state.Transition{{Time: t0, Op: state.OpEnter, Phase: state.Withdrawing, Note: "x"}}},
		Forwards:     []forward.Status{{Forward: forward.Forward{From: 81, To: 80}, Applied: true, Rules: 2, Want: 2}},
		Backend:      "nftables",
		LastDrain:    &drainEvent,
		HealthChecks: &maintenance.HealthChecks{Ports: []uint16{81}, LoadBalancers: []lbview.LB{lb}},
		RunnerGone:   true,
	},
		`{"state":{"version":1,"phase":"held","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"backend":"nftables","history":[{"time":"2026-11-24T12:32:16.852280678Z","op":"enter","phase":"withdrawing","note":"x"}]},"running":false,"forwards":[{"forward":{"from":81,"to":80},"applied":true,"withdrawn":false,"redirected_packets":0,"refused_packets":0,"rules":2,"want_rules":2}],"backend":"nftables","last_drain":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"health_checks":{"ports":[81],"load_balancers":[{"address":"198.18.0.2","port":81,"checks":6,"accepted":5,"refused":1,"interval_ms":202,"first":"2026-11-24T12:32:16.852280678Z","last":"2026-11-24T12:32:17.852280678Z","active":true}]},"runner_gone":true}`},
	{"status, empty", maintenance.Status{},
		`{"state":{"version":0,"phase":""},"running":false,"forwards":null,"backend":""}`},
	{"event line", api.Line{Event: &maintenance.Event{Time: t0, Op: state.OpRestart, Phase: state.Draining, Message: "m", Drain: &drainEvent, Output: &out}},
		`{"event":{"time":"2026-11-24T12:32:16.852280678Z","op":"restart","phase":"draining","message":"m","drain":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"output":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4}}}`},
	{"result line", api.Line{
		Result: &maintenance.Result{Op: state.OpRestart, Phase: state.InService, Holder: holder, Note: "n",
			Drain:      &drain.Result{Outcome: drain.Drained, Elapsed: ms(509), Remaining: 0, Last: drainEvent},
			ConfigTest: &out, Restart: &out, Out: &confirm, Back: &confirm, Warnings: []string{"w"}, Elapsed: ms(930)},
		Error: &maintenance.Error{Code: maintenance.CodeBusy, Msg: "busy", Holder: holder, Phase: state.Held},
	},
		`{"result":{"op":"restart","phase":"in-service","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"note":"n","drain":{"outcome":"drained","remaining":0,"last":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"elapsed_ms":509},"configtest":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4},"restart":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4},"out_of_rotation":{"want":"out","load_balancers":[{"address":"198.18.0.2","port":81,"confirmed":true,"need":2,"answers":2,"after_ms":347},{"address":"198.18.0.2","port":82,"confirmed":false,"need":2,"answers":0}],"elapsed_ms":347},"back_in_rotation":{"want":"out","load_balancers":[{"address":"198.18.0.2","port":81,"confirmed":true,"need":2,"answers":2,"after_ms":347},{"address":"198.18.0.2","port":82,"confirmed":false,"need":2,"answers":0}],"elapsed_ms":347},"warnings":["w"],"elapsed_ms":930},"error":{"code":"busy","message":"busy","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"phase":"held"}}`},
	{"result, empty", maintenance.Result{},
		`{"op":"","phase":"","elapsed_ms":0}`},
	{"drain event, empty", drain.Event{},
		`{"time":"0001-01-01T00:00:00Z","active":0,"by_path":null,"by_peer":null,"idle":0,"new":0,"ignored":0,"elapsed_ms":0,"quiet_for_ms":0,"deadline_in_ms":0}`},
	{"request", maintenance.Request{Who: "cron", Reason: "r", TTL: ms(7200000), Deadline: ms(30000), OnDeadline: drain.Abort,
		Command: "c", Log: "l", CommandDone: &maintenance.CommandDone{Command: "c", ExitCode: -1, Signal: "SIGKILL", Output: "o", Hold: true},
		Force: true, PID: 42},
		`{"who":"cron","reason":"r","on_deadline":"abort","command":"c","log":"l","command_done":{"command":"c","exit_code":-1,"signal":"SIGKILL","output":"o","hold":true},"force":true,"ttl_ms":7200000,"deadline_ms":30000}`},
	{"request, empty", maintenance.Request{},
		`{"who":""}`},
	{"history", []history.Entry{{Op: "restart", Who: "alice", Reason: "r", Start: t0, End: t0.Add(time.Second), DurationMS: 1000,
		Outcome: "ok", Phase: "in-service", Phases: []history.Phase{{Phase: "draining", Start: t0, DurationMS: 509}},
		ConfigTestExit: &exitCode, RestartExit: &exitCode, Command: "c", CommandExit: &exitCode, CommandOutput: "o",
		OutOfRotation: "1/1", BackInRotation: "1/1", Warnings: []string{"w"}}},
		`[{"op":"restart","who":"alice","reason":"r","start":"2026-11-24T12:32:16.852280678Z","end":"2026-11-24T12:32:17.852280678Z","duration_ms":1000,"outcome":"ok","phase":"in-service","phases":[{"phase":"draining","start":"2026-11-24T12:32:16.852280678Z","duration_ms":509}],"configtest_exit":0,"restart_exit":0,"command":"c","command_exit":0,"command_output":"o","out_of_rotation":"1/1","back_in_rotation":"1/1","warnings":["w"]}]`},
	{"policy", func() drain.Policy {
		p := drain.DefaultPolicy()
		p.Ignore = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		p.Grace = ms(500)
		return p
	}(),
		`{"on_deadline":"proceed","ignore":["10.0.0.0/8"],"poll_ms":250,"min_wait_ms":2000,"quiet_ms":2000,"idle_after_ms":5000,"deadline_ms":60000,"grace_ms":500}`},
	{"commands", []runner.Command{{Line: "apachectl -t", Timeout: ms(30000)}},
		`[{"command":"apachectl -t","timeout_ms":30000}]`},
	{"ready check", ready.Check{URL: "http://127.0.0.1/", Accept: ready.MustStatuses("200-399,401"), Host: "h", Timeout: ms(15000), Interval: ms(200)},
		`{"url":"http://127.0.0.1/","accept":"200-399,401","host":"h","timeout_ms":15000,"interval_ms":200}`},
	// Byte for byte what cmd/drainctl's connectionsJSON printed before the
	// type moved here.
	{"connections", conntable.NewListing([]uint16{80}, []conntable.Conn{{Socket: conntable.Socket{
		Local: netip.MustParseAddrPort("10.0.0.11:80"), Peer: netip.MustParseAddrPort("198.18.0.2:40000"), Cookie: 7,
		Info: unix.TCPInfo{Last_data_recv: 1500, Last_data_sent: 20, Bytes_received: 100, Bytes_acked: 2000, Rtt: 250}}, Path: conntable.PathForward}}),
		`{"ports":[80],"connections":[{"local":"10.0.0.11:80","peer":"198.18.0.2:40000","path":"forward","idle_ms":20,"since_recv_ms":1500,"since_sent_ms":20,"bytes_received":100,"bytes_sent":2000,"rtt_us":250}]}`},
	{"connections, none", conntable.NewListing([]uint16{80}, nil), `{"ports":[80],"connections":[]}`},
	{"load", loadgen.Result{Requests: 10, Failed: 1, Moved: 1, ByServer: map[string]int64{"web1": 10}, Elapsed: ms(5000)},
		`{"requests":10,"failed":1,"users_moved":1,"by_server":{"web1":10},"elapsed_ms":5000}`},
}

// The bytes of the wire: field order, omitempty, whole milliseconds.
// Decoding them and encoding again gives the same bytes.
func TestWireBytes(t *testing.T) {
	for _, s := range wireSamples {
		b, err := json.Marshal(s.v)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if string(b) != s.want {
			t.Errorf("%s:\n got %s\nwant %s", s.name, b, s.want)
			continue
		}
		back := reflect.New(reflect.TypeOf(s.v))
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatalf("%s: decoding: %v", s.name, err)
		}
		again, _ := json.Marshal(back.Elem().Interface())
		if !bytes.Equal(again, b) {
			t.Errorf("%s: decoded and encoded again:\n got %s\nwant %s", s.name, again, b)
		}
	}
}

// A null duration leaves the value as it was, and a request refuses
// unknown fields however it is decoded (a misspelt "ttl" must not become a
// hold without an end).
func TestWireNullAndUnknown(t *testing.T) {
	p := drain.DefaultPolicy()
	if err := json.Unmarshal([]byte(`{"poll_ms":null,"quiet_ms":100}`), &p); err != nil || p.Poll != 250*time.Millisecond || p.Quiet != 100*time.Millisecond {
		t.Errorf("policy: poll %v, quiet %v, %v", p.Poll, p.Quiet, err)
	}
	req := maintenance.Request{TTL: time.Hour}
	if err := json.Unmarshal([]byte(`{"who":"a","ttl_ms":null}`), &req); err != nil || req.TTL != time.Hour || req.Who != "a" {
		t.Errorf("request: %+v, %v", req, err)
	}
	for _, bad := range []string{`{"ttl":1}`, `{"command_done":{"command":"c","bogus":1}}`} {
		if err := json.Unmarshal([]byte(bad), &req); err == nil {
			t.Errorf("request %s: accepted", bad)
		}
	}
}
