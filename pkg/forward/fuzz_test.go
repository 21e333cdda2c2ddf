package forward

import "testing"

// FuzzParseSave: no iptables-save output makes the parser panic, nor any
// reader of what it accepts (the backend's batch, for any forwards, and
// the rules' words, ports and markers that Probe and doctor read).
func FuzzParseSave(f *testing.F) {
	f.Add(newFakeXT().dump())
	f.Add("*nat\n:PREROUTING ACCEPT [0:0]\n[1:60] -A PREROUTING -m comment --comment \"" + jumpComment + "\" -j " + iptChainPre + "\nCOMMIT\n")
	f.Add("*filter\n-A\n[\nCOMMIT")
	f.Add("# Table `nat' contains incompatible base-chains, use 'nft' tool to list them.\n*nat\n-A X -p tcp -m multiport --dports 22,80:90 -m comment --comment \"a \\\"b\\\"\" -j DNAT\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, text string) {
		save, err := ParseSave(text)
		if err != nil {
			return
		}
		iptBatch(save.Tables, map[Forward]iptState{{81, 80}: {withdrawn: true}, {444, 443}: {held: true}})
		iptBatch(save.Tables, nil)
		jumpProblems("ipv4", save.Tables)
		for _, r := range save.All() {
			r.DestPorts()
			r.Drainctl()
			r.NATs()
			r.Packets()
		}
		countLegacy([]*SaveRules{save})
	})
}
