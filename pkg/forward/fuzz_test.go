package forward

import "testing"

// FuzzParseSave: no iptables-save output makes the parser panic, and the
// batch written from what it accepts is well formed for any forwards.
func FuzzParseSave(f *testing.F) {
	f.Add(newFakeXT().dump())
	f.Add("*nat\n:PREROUTING ACCEPT [0:0]\n[1:60] -A PREROUTING -m comment --comment \"drainctl:jump\" -j DRAINCTL-PREROUTING\nCOMMIT\n")
	f.Add("*filter\n-A\n[\nCOMMIT")
	f.Fuzz(func(t *testing.T, text string) {
		tables, err := parseSave(text)
		if err != nil {
			return
		}
		iptBatch(tables, map[Forward]bool{{81, 80}: true, {444, 443}: false})
		iptBatch(tables, nil)
		jumpProblems("ipv4", tables)
	})
}
