package api_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// The converters drop nothing and the wire's types encode as the engine's
// did: every field of an engine value filled (by reflection, so that a
// field added later is filled too), converted, gives the same bytes as
// the engine value itself. A field added to an engine type fails here
// until it is on the wire (apitype and convert.go) or tagged json:"-";
// a field added to apitype alone fails too.
func TestConvertKeepsEveryField(t *testing.T) {
	var (
		st   maintenance.Status
		ev   maintenance.Event
		res  maintenance.Result
		merr maintenance.Error
		ps   maintenance.PoolStatus
		hist []history.Entry
		de   drain.Event
		req  apitype.Request
		pa   maintenance.PolicyAnswer
	)
	for _, v := range []any{&st, &ev, &res, &merr, &ps, &hist, &de, &req, &pa} {
		fill(reflect.ValueOf(v).Elem(), new(int))
	}
	for _, c := range []struct {
		name       string
		engine, to any
	}{
		{"status", st, api.StatusOf(st)},
		{"event", ev, api.EventOf(ev)},
		{"result", res, api.ResultOf(res)},
		{"error", &merr, api.ErrorOf(fmt.Errorf("wrapped: %w", &merr))},
		{"pool status", ps, api.PoolStatusOf(ps)},
		{"history", hist, api.HistoryOf(hist)},
		{"drain event", de, api.DrainEventOf(de)},
		{"policy answer", pa, api.PolicyAnswerOf(pa)},
		{"request", api.EngineRequest(req), req}, // the other way
	} {
		eb, err := json.Marshal(c.engine)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wb, err := json.Marshal(c.to)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(eb) != string(wb) {
			t.Errorf("%s:\nengine %s\n  wire %s", c.name, eb, wb)
		}
	}
}

// The filled values leave nothing zero: the test above would miss a field
// the filler skipped.
func TestFillLeavesNoZero(t *testing.T) {
	var st maintenance.Status
	fill(reflect.ValueOf(&st).Elem(), new(int))
	b, _ := json.Marshal(api.StatusOf(st))
	var zero func(path string, v any)
	zero = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				zero(path+"."+k, e)
			}
		case []any:
			if len(v) == 0 {
				t.Errorf("%s: empty", path)
			}
			for _, e := range v {
				zero(path+"[]", e)
			}
		default:
			if v == nil || v == false || v == "" || v == float64(0) {
				t.Errorf("%s: %v", path, v)
			}
		}
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	zero("status", m)
}

// An internal failure that is not the engine's own error goes out as
// internal, with its message.
func TestErrorOfOtherErrors(t *testing.T) {
	e := api.ErrorOf(fmt.Errorf("state file: %w", errDisk))
	if e.Code != apitype.CodeInternal || e.Msg != "state file: disk full" || e.Holder != nil {
		t.Fatalf("%+v", e)
	}
}

var errDisk = fmt.Errorf("disk full")

// The wire's names for operations, phases and codes are the engine's: a
// constant renamed on either side fails here.
func TestWireNamesAreTheEngines(t *testing.T) {
	pairs := [][2]string{
		{string(apitype.OpNone), string(state.OpNone)}, {string(apitype.OpEnter), string(state.OpEnter)},
		{string(apitype.OpExit), string(state.OpExit)}, {string(apitype.OpRestart), string(state.OpRestart)},
		{string(apitype.OpReboot), string(state.OpReboot)},
		{string(apitype.PhaseInService), string(state.InService)}, {string(apitype.PhaseWithdrawing), string(state.Withdrawing)},
		{string(apitype.PhaseDraining), string(state.Draining)}, {string(apitype.PhaseHeld), string(state.Held)},
		{string(apitype.PhaseConfigTest), string(state.ConfigTest)}, {string(apitype.PhaseRestarting), string(state.Restarting)},
		{string(apitype.PhaseReadyCheck), string(state.ReadyCheck)}, {string(apitype.PhaseRestoring), string(state.Restoring)},
		{string(apitype.PhaseRebooting), string(state.Rebooting)},
		{string(apitype.CodeBusy), string(maintenance.CodeBusy)}, {string(apitype.CodeDeadline), string(maintenance.CodeDeadline)},
		{string(apitype.CodeConfigTest), string(maintenance.CodeConfigTest)}, {string(apitype.CodeRestart), string(maintenance.CodeRestart)},
		{string(apitype.CodeNotReady), string(maintenance.CodeNotReady)}, {string(apitype.CodeCommand), string(maintenance.CodeCommand)},
		{string(apitype.CodeBadRequest), string(maintenance.CodeBadRequest)}, {string(apitype.CodePoolBusy), string(maintenance.CodePoolBusy)},
		{string(apitype.CodePoolUnavailable), string(maintenance.CodePoolUnavailable)},
		{string(apitype.CodeOutsideWindow), string(maintenance.CodeOutsideWindow)},
		{string(apitype.CodeRebootFailed), string(maintenance.CodeRebootFailed)},
		{string(apitype.CodeStopping), string(maintenance.CodeStopping)}, {string(apitype.CodeInternal), string(maintenance.CodeInternal)},
		{apitype.OutsideSkip, maintenance.OutsideSkip}, {apitype.OutsideWait, maintenance.OutsideWait},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("wire %q, engine %q", p[0], p[1])
		}
	}
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	addrType     = reflect.TypeFor[netip.Addr]()
	addrPortType = reflect.TypeFor[netip.AddrPort]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// fill sets every exported field of v, recursively, to a value of its
// own (n counts them): strings, numbers, times, addresses, one element
// in each list and map, every pointer set. Channels and functions are not
// data and stay nil.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Type() {
	case timeType:
		v.Set(reflect.ValueOf(t0.Add(time.Duration(*n) * time.Second)))
		return
	case addrType:
		v.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{198, 18, 0, byte(*n)})))
		return
	case addrPortType:
		v.Set(reflect.ValueOf(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(*n)}), uint16(*n))))
		return
	case prefixType:
		v.Set(reflect.ValueOf(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(*n), 0, 0}), 16)))
		return
	case durationType:
		v.SetInt(int64(*n) * int64(time.Millisecond))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	}
}

// The clients' summaries of the wire's facts are the engine's rules: a
// forward's one word, the pool's size, a command's outcome.
func TestClientRulesAreTheEngines(t *testing.T) {
	for _, f := range []forward.Status{{}, {Rules: 2, Want: 2, Applied: true}, {Rules: 4, Want: 4, Applied: true, Withdrawn: true},
		{Rules: 1, Want: 2}, {Rules: 2, Want: 2, Applied: true, Problems: []string{"p"}}} {
		st := api.StatusOf(maintenance.Status{Forwards: []forward.Status{f}})
		if got := api.ForwardState(st.Forwards[0]); got != f.State() {
			t.Errorf("%+v: %s, want %s", f, got, f.State())
		}
	}
	ps := maintenance.PoolStatus{State: pool.State{Members: []pool.Member{{ID: "a", Live: true}, {ID: "b"}, {ID: "c"}},
		Holders: []pool.Claim{{ID: "c"}}}}
	if got := api.PoolSize(api.PoolStatusOf(ps)); got != ps.Size() || got != 3 {
		t.Errorf("pool size %d, want %d", got, ps.Size())
	}
	// What uses the budget: the engine's list as it is (c's slot, b gone),
	// and from an older agent that sends none, its holders in the pool's
	// words.
	ps.Unavailable = ps.State.Unavailable()
	wire := api.PoolStatusOf(ps)
	if got := api.PoolUnavailable(wire); len(got) != 2 || got[0].ID != "c" || !got[0].Slot || got[1].ID != "b" || got[1].Why != "agent gone" {
		t.Errorf("unavailable %+v", got)
	}
	wire.Unavailable = nil
	if got := api.PoolUnavailable(wire); len(got) != 1 || got[0] != apitype.Unavailable(ps.Unavailable[0]) {
		t.Errorf("an older agent's: %+v, want its holder %+v", got, ps.Unavailable[0])
	}
	for _, d := range []maintenance.CommandDone{{}, {ExitCode: 3}, {ExitCode: -1, Signal: "SIGKILL"}} {
		wd := apitype.CommandDone(d)
		if got := api.CommandOutcome(&wd); got != d.Outcome() {
			t.Errorf("%+v: %s, want %s", d, got, d.Outcome())
		}
	}
}
