package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
	"github.com/drainctl/drainctl/pkg/jsonms"
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
// send, with what each must encode to, byte for byte. The API's are the
// engine's values through the server's converters (convert.go), as the
// server sends them.
var wireSamples = []struct {
	name string
	v    any
	want string
}{
	{"status", api.StatusOf(maintenance.Status{
		State: state.State{Version: 1, Phase: state.Held, Holder: holder, Backend: "nftables",
			History: []state.Transition{{Time: t0, Op: state.OpEnter, Phase: state.Withdrawing, Note: "x"}}},
		Forwards:     []forward.Status{{Forward: forward.Forward{From: 81, To: 80}, Applied: true, Rules: 2, Want: 2}},
		Backend:      "nftables",
		LastDrain:    &drainEvent,
		HealthChecks: &maintenance.HealthChecks{Ports: []uint16{81}, LoadBalancers: []lbview.LB{lb}},
		RunnerGone:   true,
	}),
		`{"state":{"version":1,"phase":"held","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"backend":"nftables","history":[{"time":"2026-11-24T12:32:16.852280678Z","op":"enter","phase":"withdrawing","note":"x"}]},"running":false,"forwards":[{"forward":{"from":81,"to":80},"applied":true,"withdrawn":false,"redirected_packets":0,"refused_packets":0,"rules":2,"want_rules":2}],"backend":"nftables","last_drain":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"health_checks":{"ports":[81],"load_balancers":[{"address":"198.18.0.2","port":81,"checks":6,"accepted":5,"refused":1,"interval_ms":202,"first":"2026-11-24T12:32:16.852280678Z","last":"2026-11-24T12:32:17.852280678Z","active":true}]},"runner_gone":true}`},
	{"status, empty", api.StatusOf(maintenance.Status{}),
		`{"state":{"version":0,"phase":""},"running":false,"forwards":null,"backend":""}`},
	{"event line", apitype.Line{Event: ptr(api.EventOf(maintenance.Event{Time: t0, Op: state.OpRestart, Phase: state.Draining, Message: "m", Drain: &drainEvent, Output: &out}))},
		`{"event":{"time":"2026-11-24T12:32:16.852280678Z","op":"restart","phase":"draining","message":"m","drain":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"output":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4}}}`},
	{"result line", apitype.Line{
		Result: ptr(api.ResultOf(maintenance.Result{Op: state.OpRestart, Phase: state.InService, Holder: holder, Note: "n",
			Drain:      &drain.Result{Outcome: drain.Drained, Elapsed: ms(509), Remaining: 0, Last: drainEvent},
			ConfigTest: &out, Restart: &out, Out: &confirm, Back: &confirm, Warnings: []string{"w"}, Elapsed: ms(930)})),
		Error: api.ErrorOf(&maintenance.Error{Code: maintenance.CodeBusy, Msg: "busy", Holder: holder, Phase: state.Held}),
	},
		`{"result":{"op":"restart","phase":"in-service","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"note":"n","drain":{"outcome":"drained","remaining":0,"last":{"time":"2026-11-24T12:32:16.852280678Z","active":1,"by_path":{"direct":1},"by_peer":[{"peer":"198.18.0.3","count":1}],"oldest":{"peer":"198.18.0.3:4000","path":"direct","age_ms":2000,"idle_ms":10},"idle":2,"new":3,"ignored":4,"outcome":"drained","elapsed_ms":509,"quiet_for_ms":0,"deadline_in_ms":59490},"elapsed_ms":509},"configtest":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4},"restart":{"command":"apachectl -t","output":"Syntax OK\n","exit_code":0,"duration_ms":4},"out_of_rotation":{"want":"out","load_balancers":[{"address":"198.18.0.2","port":81,"confirmed":true,"need":2,"answers":2,"after_ms":347},{"address":"198.18.0.2","port":82,"confirmed":false,"need":2,"answers":0}],"elapsed_ms":347},"back_in_rotation":{"want":"out","load_balancers":[{"address":"198.18.0.2","port":81,"confirmed":true,"need":2,"answers":2,"after_ms":347},{"address":"198.18.0.2","port":82,"confirmed":false,"need":2,"answers":0}],"elapsed_ms":347},"warnings":["w"],"elapsed_ms":930},"error":{"code":"busy","message":"busy","holder":{"who":"root (uid 0, pid 1508)","reason":"kernel update","since":"2026-11-24T12:32:16.852280678Z","until":"2026-11-24T14:32:16.852280678Z"},"phase":"held"}}`},
	{"result, empty", api.ResultOf(maintenance.Result{}),
		`{"op":"","phase":"","elapsed_ms":0}`},
	{"policy answer", api.PolicyAnswerOf(maintenance.PolicyAnswer{Defer: true, Note: "n",
		Owed: &state.Owed{Unit: "apache2.service", Action: "restart", Reason: "dpkg: apache2", Since: t0}}),
		`{"defer":true,"note":"n","owed":{"unit":"apache2.service","action":"restart","reason":"dpkg: apache2","since":"2026-11-24T12:32:16.852280678Z"}}`},
	{"policy answer, go on", api.PolicyAnswerOf(maintenance.PolicyAnswer{Note: "no pool"}),
		`{"defer":false,"note":"no pool"}`},
	{"drain event, empty", api.DrainEventOf(drain.Event{}),
		`{"time":"0001-01-01T00:00:00Z","active":0,"by_path":null,"by_peer":null,"idle":0,"new":0,"ignored":0,"elapsed_ms":0,"quiet_for_ms":0,"deadline_in_ms":0}`},
	{"request", maintenance.Request{Who: "cron", Reason: "r", TTL: ms(7200000), Deadline: ms(30000), OnDeadline: drain.Abort,
		Command: "c", Log: "l", CommandDone: &maintenance.CommandDone{Command: "c", ExitCode: -1, Signal: "SIGKILL", Output: "o", Hold: true},
		Force: true, PID: 42},
		`{"who":"cron","reason":"r","on_deadline":"abort","command":"c","log":"l","command_done":{"command":"c","exit_code":-1,"signal":"SIGKILL","output":"o","hold":true},"force":true,"ttl_ms":7200000,"deadline_ms":30000}`},
	{"request, empty", maintenance.Request{},
		`{"who":""}`},
	{"wire request", apitype.Request{Who: "cron", Reason: "r", TTL: ms(7200000), Deadline: ms(30000), OnDeadline: "abort",
		Command: "c", Log: "l", CommandDone: &apitype.CommandDone{Command: "c", ExitCode: -1, Signal: "SIGKILL", Output: "o", Hold: true},
		Force: true, IfRequired: true, Window: "Mon 02:00-05:00", OutsideWindow: "wait", PoolWait: ms(60000)},
		`{"who":"cron","reason":"r","on_deadline":"abort","command":"c","log":"l","command_done":{"command":"c","exit_code":-1,"signal":"SIGKILL","output":"o","hold":true},"force":true,"if_required":true,"window":"Mon 02:00-05:00","outside_window":"wait","ttl_ms":7200000,"deadline_ms":30000,"pool_wait_ms":60000}`},
	{"wire request, empty", apitype.Request{},
		`{"who":""}`},
	{"history", api.HistoryOf([]history.Entry{{Op: "restart", Who: "alice", Reason: "r", Start: t0, End: t0.Add(time.Second), DurationMS: 1000,
		Outcome: "ok", Phase: "in-service", Phases: []history.Phase{{Phase: "draining", Start: t0, DurationMS: 509}},
		ConfigTestExit: &exitCode, RestartExit: &exitCode, Command: "c", CommandExit: &exitCode, CommandOutput: "o",
		OutOfRotation: "1/1", BackInRotation: "1/1", Warnings: []string{"w"}}}),
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
	// The wire's request, as the server decodes it.
	wreq := apitype.Request{TTL: time.Hour}
	if err := json.Unmarshal([]byte(`{"who":"a","ttl_ms":null}`), &wreq); err != nil || wreq.TTL != time.Hour || wreq.Who != "a" {
		t.Errorf("wire request: %+v, %v", wreq, err)
	}
	for _, bad := range []string{`{"ttl":1}`, `{"command_done":{"command":"c","bogus":1}}`, `{"pid":1}`} {
		if err := json.Unmarshal([]byte(bad), &wreq); err == nil {
			t.Errorf("wire request %s: accepted", bad)
		}
	}
	// Null lists stay null and pointers absent, both ways: an empty
	// status sends "forwards":null, as it always has.
	var st apitype.Status
	if err := json.Unmarshal([]byte(`{"state":{"version":0,"phase":""},"running":false,"forwards":null,"backend":"","last_drain":null}`), &st); err != nil ||
		st.Forwards != nil || st.LastDrain != nil {
		t.Errorf("status with nulls: %+v, %v", st, err)
	}
	ev := apitype.DrainEvent{Elapsed: time.Second}
	if err := json.Unmarshal([]byte(`{"elapsed_ms":null,"by_path":null}`), &ev); err != nil || ev.Elapsed != time.Second || ev.ByPath != nil {
		t.Errorf("drain event with nulls: %+v, %v", ev, err)
	}
}

// wireRoots are the types that go on the wire: what the API's handlers
// (server.go) send and read, and what the CLI's --json prints. The
// durations test walks every type reachable from them. Add a root when a
// new type goes out. The agent's settings (agent --check) are not here:
// their JSON is made from pkg/settings' table, whose own test holds the
// _ms rule for every duration.
var wireRoots = []any{
	apitype.Status{},         // GET /v1/status, drainctl status --json
	apitype.Line{},           // operation lines and GET /v1/events: Event, Result, Error
	apitype.ErrorBody{},      // answers refused before anything started
	apitype.Request{},        // POST bodies
	[]apitype.HistoryEntry{}, // GET /v1/history, drainctl history --json
	apitype.PoolStatus{},     // GET /v1/pool, drainctl pool status --json
	apitype.PoolRequest{},    // the pool's POST bodies
	apitype.PoolAnswer{},
	// The engine's values the wire's are converted from: their JSON is
	// the same (convert_test.go), and the history's is its file's.
	maintenance.Status{},
	maintenance.Result{},
	maintenance.Event{},
	maintenance.Request{},
	[]history.Entry{},
	conntable.Listing{}, // drainctl connections --json
	drain.Policy{},      // agent --check, with the commands and the readiness check
	runner.Command{},
	ready.Check{},
	loadgen.Result{}, // the lab's and the demo's load reports
}

// notDurations are the wire's fields whose names say a time unit but
// that are not time.Durations: each says why, so that the list stays
// short.
var notDurations = map[string]string{
	// pkg/metrics, cmd/drainctl/history.go and the integration tests read
	// DurationMS; moving it to a time.Duration is theirs to follow.
	"history.Entry.DurationMS": "int64 milliseconds, computed by hand in maintenance's record.go",
	"history.Phase.DurationMS": "int64 milliseconds, computed by hand in maintenance's record.go",
	// The history's fields on the wire, as history.Entry has them.
	"apitype.HistoryEntry.DurationMS": "history.Entry.DurationMS on the wire",
	"apitype.HistoryPhase.DurationMS": "history.Phase.DurationMS on the wire",
	// Microseconds as tcp_info gives them: on a LAN mostly under one ms.
	"conntable.ListedConn.RTTus": "tcp_info's microseconds",
}

// Every duration on the wire is whole milliseconds in a field whose name
// ends in _ms, both ways; no time.Duration ships as nanoseconds.
func TestWireDurations(t *testing.T) {
	problems, visited := durationProblems(wireRoots, notDurations)
	for _, p := range problems {
		t.Error(p)
	}
	// The walk reaches the types deep down, the durations' among them.
	for _, want := range []any{drain.ConnSummary{}, drain.Result{}, runner.Output{}, lbview.LB{}, lbview.Confirmed{},
		state.Holder{}, forward.Status{}, history.Phase{}, conntable.ListedConn{}, maintenance.CommandDone{},
		apitype.ConnSummary{}, apitype.DrainResult{}, apitype.Output{}, apitype.LB{}, apitype.Confirmed{}, apitype.Holder{},
		apitype.ForwardStatus{}, apitype.HistoryPhase{}, apitype.CommandDone{}, apitype.Claim{}, apitype.Slot{}, apitype.Reboot{}} {
		if !slices.Contains(visited, reflect.TypeOf(want)) {
			t.Errorf("the walk did not reach %T", want)
		}
	}
}

// The durations test can fail: types that break the rule each way are
// caught.
func TestWireDurationsCatchesBadTypes(t *testing.T) {
	type nanos struct { // a time.Duration and no jsonms methods
		Wait time.Duration `json:"wait_ms"`
	}
	type inner struct {
		Nanos nanos `json:"nanos"`
	}
	type bad struct {
		Timeout time.Duration   `json:"timeout"` // no _ms
		Hand    int64           `json:"hand_ms"` // converted by hand
		Micro   uint32          `json:"rtt_us"`
		List    []time.Duration `json:"list_ms"`
		Inner   *inner          `json:"inner"`
		Skipped time.Duration   `json:"-"`
	}
	problems, _ := durationProblems([]any{bad{}}, nil)
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		`api_test.bad.Timeout: a duration in "timeout"`,
		`api_test.bad.Hand: "hand_ms" names a time unit`,
		`api_test.bad.Micro: "rtt_us" names a time unit`,
		`api_test.bad.List: "list_ms" holds durations`,
		`api_test.nanos.Wait: "wait_ms" encodes 1500 ms as 1500999000`,
		`api_test.nanos.Wait: "wait_ms": 1500 decodes as 1.5µs`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("not caught: %s", want)
		}
	}
	if strings.Contains(got, "Skipped") {
		t.Errorf("a field the wire skips was checked:\n%s", got)
	}
	if strings.Count(got, "\n")+1 != 6 {
		t.Errorf("problems:\n%s", got)
	}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	jsonmsType   = reflect.TypeFor[jsonms.Duration]()
)

// durationProblems walks every struct type reachable from roots (through
// pointers, slices, arrays and maps) and reports each serialized field
// that breaks the rule: a duration whose name does not end in _ms, that
// does not encode as whole milliseconds or does not decode from them, a
// duration in a container (jsonms converts fields only), or a name with
// a time unit on a field that is not a duration (unless allowed names it,
// as "pkg.Type.Field"). It returns the struct types it visited too.
func durationProblems(roots []any, allowed map[string]string) (out []string, visited []reflect.Type) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		visited = append(visited, t)
		for i := range t.NumField() {
			f := t.Field(i)
			name, ok := jsonName(f)
			if !ok {
				continue
			}
			where := t.String() + "." + f.Name
			out = append(out, fieldProblems(t, i, name, where, allowed[where] != "")...)
			walk(f.Type)
		}
	}
	for _, r := range roots {
		walk(reflect.TypeOf(r))
	}
	return out, visited
}

// jsonName is the field's name on the wire; false if it is not sent.
func jsonName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	if !f.IsExported() || tag == "-" {
		return "", false
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name, true
	}
	return f.Name, true
}

// fieldProblems checks field i of struct type t, sent as name.
func fieldProblems(t reflect.Type, i int, name, where string, allowed bool) []string {
	ft := t.Field(i).Type
	isDur := func(t reflect.Type) bool { return t == durationType || t == jsonmsType }
	unit := false
	for _, s := range []string{"_ms", "_us", "_ns", "_s", "_sec", "_secs", "_seconds"} {
		unit = unit || strings.HasSuffix(name, s)
	}
	elem := ft
	for elem.Kind() == reflect.Pointer {
		elem = elem.Elem()
	}
	switch {
	case isDur(elem) && !strings.HasSuffix(name, "_ms"):
		return []string{fmt.Sprintf("%s: a duration in %q: the name must end in _ms", where, name)}
	case isDur(elem):
		return roundTrip(t, i, name, where)
	case elem.Kind() == reflect.Slice || elem.Kind() == reflect.Array || elem.Kind() == reflect.Map:
		for elem.Kind() == reflect.Slice || elem.Kind() == reflect.Array || elem.Kind() == reflect.Map || elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if isDur(elem) {
			return []string{fmt.Sprintf("%s: %q holds durations: jsonms converts a struct's own fields only", where, name)}
		}
	}
	if unit && !allowed {
		return []string{fmt.Sprintf("%s: %q names a time unit, but its type is %v: make it a time.Duration (jsonms)", where, name, ft)}
	}
	return nil
}

// roundTrip sets the duration field i of a t to 1500.999 ms and checks it
// encodes as 1500 under name, and that 1500 decodes as 1500 ms.
func roundTrip(t reflect.Type, i int, name, where string) []string {
	const d = 1500*time.Millisecond + 999*time.Microsecond
	v := reflect.New(t)
	setDuration(v.Elem().Field(i), d)
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return []string{fmt.Sprintf("%s: encoding: %v", where, err)}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return []string{fmt.Sprintf("%s: encoding is not an object: %s", where, b)}
	}
	var out []string
	if got := string(m[name]); got != "1500" {
		out = append(out, fmt.Sprintf("%s: %q encodes 1500 ms as %s, want 1500 (give %v jsonms's MarshalJSON)", where, name, got, t))
	}
	back := reflect.New(t)
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{%q:1500}`, name)), back.Interface()); err != nil {
		return append(out, fmt.Sprintf("%s: decoding %q: %v", where, name, err))
	}
	if got := getDuration(back.Elem().Field(i)); got != 1500*time.Millisecond {
		out = append(out, fmt.Sprintf("%s: %q: 1500 decodes as %v, want 1.5s (give %v jsonms's UnmarshalJSON)", where, name, got, t))
	}
	return out
}

func setDuration(f reflect.Value, d time.Duration) {
	if f.Kind() == reflect.Pointer {
		f.Set(reflect.New(f.Type().Elem()))
		f = f.Elem()
	}
	f.SetInt(int64(d))
}

func getDuration(f reflect.Value) time.Duration {
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return 0
		}
		f = f.Elem()
	}
	return time.Duration(f.Int())
}

func ptr[T any](v T) *T { return &v }
