package lbview

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The capture's parser reads whatever the network sends: it never panics,
// and what it accepts is what a check or an answer on the port is. The
// packet it reads back is a fixed point: the segment it describes
// (built anew) reads as the same packet.
func FuzzParse(f *testing.F) {
	for _, s := range [][]byte{
		segment(lb4, host4, 40000, 81, syn), segment(host4, lb4, 81, 40000, synack),
		segment(host6, lb6, 81, 40000, rst), segment(lb6, host6, 40000, 81, ack), {0x45}, {0x60, 0}, {},
	} {
		f.Add(s, false, uint16(81))
		f.Add(s, true, uint16(81))
	}
	f.Fuzz(func(t *testing.T, b []byte, outgoing bool, port uint16) {
		p, ok := parse(b, outgoing, port)
		if !ok {
			if p != (Packet{}) {
				t.Fatalf("refused, yet %+v", p)
			}
			return
		}
		if (p.Kind == Attempt) == outgoing {
			t.Fatalf("%v read %s: attempts arrive, answers leave", p.Kind, map[bool]string{true: "leaving", false: "arriving"}[outgoing])
		}
		if !p.Remote.Addr().IsValid() || !p.Local.IsValid() || p.Remote.Addr().Is4() != p.Local.Is4() {
			t.Fatalf("addresses %v %v", p.Remote, p.Local)
		}
		flags := map[Kind]byte{Attempt: syn, Accepted: synack, Refused: rst}[p.Kind]
		var again []byte
		if p.Kind == Attempt {
			again = segment(p.Remote.Addr(), p.Local, p.Remote.Port(), port, flags)
		} else {
			again = segment(p.Local, p.Remote.Addr(), port, p.Remote.Port(), flags)
		}
		if q, ok := parse(again, outgoing, port); !ok || q != p {
			t.Fatalf("%+v rebuilt reads as %+v (%v)", p, q, ok)
		}
	})
}

// The view's memory is a file in the state directory: whatever it holds,
// Load never panics, returns no more entries than the bytes can hold, and
// what it returns encodes and decodes to itself; the view it is
// remembered into stays within MaxSources.
func FuzzLoad(f *testing.F) {
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	good, _ := json.Marshal([]LB{{Addr: lb4, Port: 81, Checks: 50, Accepted: 50, Interval: 500 * time.Millisecond, First: now.Add(-time.Minute), Last: now}})
	for _, s := range []string{string(good), "", "null", "[]", "[null]", "{}", `[{"address":"fd00::2","port":81,"interval_ms":-1}]`, `[{"first":"9999-12-31T23:59:59-23:59"}]`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "loadbalancers.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		lbs, err := Load(path)
		if err != nil {
			return
		}
		if len(lbs) > len(b)/2 {
			t.Fatalf("%d entries from %d bytes", len(lbs), len(b))
		}
		if enc, err := json.Marshal(lbs); err == nil {
			var back []LB
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatalf("%s does not decode: %v", enc, err)
			}
			if again, err := json.Marshal(back); err != nil || !bytes.Equal(again, enc) {
				t.Fatalf("round trip:\n%s\n%s (%v)", enc, again, err)
			}
		}
		v := New(Settings{MaxSources: 4})
		v.Remember(lbs, now)
		if got := v.LoadBalancers(); len(got) > 4 {
			t.Fatalf("remembered %d sources, over MaxSources 4", len(got))
		}
	})
}
