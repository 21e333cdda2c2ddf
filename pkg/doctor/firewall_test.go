package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/forward"
)

// nftJSON parses nft -j list ruleset's output made of objs ({"table":
// ...}, {"chain": ...}, {"rule": ...}).
func nftJSON(t *testing.T, objs ...string) *forward.NftRuleset {
	t.Helper()
	r, err := forward.ParseNftJSON([]byte(`{"nftables": [{"metainfo": {"json_schema_version": 1}}, ` + strings.Join(objs, ", ") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// nftRule is a rule object of nft's JSON; exprs its expressions.
func nftRule(family, table, chain, comment string, exprs ...string) string {
	return fmt.Sprintf(`{"rule": {"family": %q, "table": %q, "chain": %q, "handle": 2, "comment": %q, "expr": [%s]}}`,
		family, table, chain, comment, strings.Join(exprs, ", "))
}

// dport is a match of a transport header's destination port on right.
func dport(proto, field, op, right string) string {
	return fmt.Sprintf(`{"match": {"op": %q, "left": {"payload": {"protocol": %q, "field": %q}}, "right": %s}}`, op, proto, field, right)
}

func parseSave(t *testing.T, text string) *forward.SaveRules {
	t.Helper()
	s, err := forward.ParseSave(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNamesPort(t *testing.T) {
	ports := []uint16{81}
	for _, c := range []struct {
		text, match string
		want        bool
	}{
		{"tcp dport 81 counter accept", dport("tcp", "dport", "==", "81"), true},
		{"tcp dport { 80, 81, 443 } accept", dport("tcp", "dport", "==", `{"set": [80, 81, 443]}`), true},
		{"tcp dport 80-90 drop", dport("tcp", "dport", "==", `{"range": [80, 90]}`), true},
		{"tcp dport 8081 accept", dport("tcp", "dport", "==", "8081"), false},
		{"tcp sport 81 accept", dport("tcp", "sport", "==", "81"), false},
	} {
		r := nftJSON(t, nftRule("inet", "filter", "input", "", c.match, `{"accept": null}`)).Rules[0]
		if _, got := namesPort(r.DestPorts(), ports); got != c.want {
			t.Errorf("%q: %v, want %v", c.text, got, c.want)
		}
	}
	for line, want := range map[string]bool{
		"-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT":         true,
		"-A INPUT -p tcp -m multiport --dports 22,80:90 -j DROP": true,
		"-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT":            false,
		"-A INPUT -p tcp --dport 810 -j ACCEPT":                  false,
	} {
		r := parseSave(t, "*filter\n"+line+"\nCOMMIT\n").All()[0]
		if _, got := namesPort(r.DestPorts(), ports); got != want {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
}

func TestNftPortRulesSkipsDrainctl(t *testing.T) {
	redirect := `{"redirect": {"port": 80}}`
	r := nftJSON(t,
		nftRule("inet", forward.NftTable, "prerouting", forward.CommentPrefix+"81:80:redirect-in", dport("tcp", "dport", "==", "81"), redirect),
		nftRule("ip", "nat", forward.ChainPrefix+"PRE", forward.CommentPrefix+"81:80:redirect-in", dport("tcp", "dport", "==", "81"), `{"counter": {"packets": 0, "bytes": 0}}`, redirect),
		nftRule("ip", "nat", "DOCKER", "", `{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}`,
			`{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}`, dport("tcp", "dport", "==", "81"),
			`{"counter": {"packets": 0, "bytes": 0}}`, `{"dnat": {"addr": "172.17.0.2", "port": 80}}`),
		nftRule("inet", "filter", "input", "", dport("tcp", "dport", "==", `{"set": [22, 80]}`), `{"accept": null}`),
	)
	got := nftPortRules(r, []uint16{81}, nil)
	if len(got) != 1 || got[0].Where != "nftables table ip nat, chain DOCKER" || got[0].Port != 81 || !got[0].NATs || got[0].Table != "nat" ||
		got[0].Rule != `iifname != "docker0" meta l4proto tcp tcp dport 81 counter packets 0 bytes 0 dnat to 172.17.0.2:80` {
		t.Fatalf("%+v", got)
	}
	// With iptables-nft's save command, its tables are read there.
	if got := nftPortRules(r, []uint16{81}, map[forward.NftTableName]bool{{Family: "ip", Name: "nat"}: true}); len(got) != 0 {
		t.Fatalf("iptables-nft's table read twice: %+v", got)
	}
}

// iptables-nft-save 1.8.9 on a host with a native "table ip nat": nft
// lists that table, iptables-nft-save the others.
func TestIncompatibleTablesReadFromNft(t *testing.T) {
	r := rulesets{
		iptNft: []*forward.SaveRules{parseSave(t, "# Table `nat' contains incompatible base-chains, use 'nft' tool to list them.\n"+
			"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 81 -j ACCEPT\nCOMMIT\n"), nil},
		nft: nftJSON(t,
			nftRule("ip", "nat", "pre", "", dport("tcp", "dport", "==", "81"), `{"redirect": {"port": 8080}}`),
			nftRule("ip", "filter", "INPUT", "", dport("tcp", "dport", "==", "81"), `{"accept": null}`)),
	}
	var where []string
	for _, pr := range r.portRules([]uint16{81}) {
		where = append(where, pr.Where+": "+pr.Rule)
	}
	if want := []string{"iptables-nft table filter: -A INPUT -p tcp --dport 81 -j ACCEPT", "nftables table ip nat, chain pre: tcp dport 81 redirect to :8080"}; !slices.Equal(where, want) {
		t.Errorf("%q, want %q", where, want)
	}
}

func TestSavePortRules(t *testing.T) {
	s := parseSave(t, "*nat\n:PREROUTING ACCEPT [0:0]\n:"+forward.ChainPrefix+"PRE - [0:0]\n"+
		"-A PREROUTING -j "+forward.ChainPrefix+"PRE\n"+
		"-A "+forward.ChainPrefix+"PRE -p tcp -m tcp --dport 81 -m comment --comment "+forward.CommentPrefix+"81:80:redirect-in -j REDIRECT --to-ports 80\n"+
		"-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.1.1.1:80\nCOMMIT\n")
	got := savePortRules(s, "iptables-legacy", []uint16{81})
	if len(got) != 1 || got[0].Where != "iptables-legacy table nat" || got[0].Rule != "-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.1.1.1:80" ||
		!got[0].NATs || !takesPort(got[0]) {
		t.Fatalf("%+v", got)
	}
}

func TestSoftware(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "iptables"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "nftables.conf"), []byte("#!/usr/sbin/nft -f\n\nflush ruleset\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "iptables", "rules.v4"), []byte("*filter\nCOMMIT\n"), 0o644)
	r := rulesets{
		nft: nftJSON(t, `{"table": {"family": "inet", "name": "firewalld", "handle": 1}}`, `{"table": {"family": "ip", "name": "filter", "handle": 2}}`,
			`{"chain": {"family": "ip", "table": "filter", "name": "ufw-before-input", "handle": 1}}`),
		legacy: []*forward.SaveRules{parseSave(t, "*nat\n:DOCKER - [0:0]\nCOMMIT\n")},
	}
	var names []string
	removes := map[string]bool{}
	for _, s := range software(root, r, "nftables", "nft") {
		names = append(names, s.Name)
		removes[s.Name] = s.Removes
	}
	if want := []string{"ufw", "firewalld", "docker", "nftables.service", "netfilter-persistent"}; !slices.Equal(names, want) {
		t.Errorf("%v, want %v", names, want)
	}
	if !removes["nftables.service"] || removes["netfilter-persistent"] {
		t.Errorf("with the nftables backend only flush ruleset removes drainctl's rules: %v", removes)
	}
	for _, tc := range []struct {
		backend, variant string
		removes          bool
	}{{"iptables-legacy", "legacy", true}, {"iptables-legacy", "nft", false}, {"iptables-nft", "nft", true}, {"iptables", "", true}} {
		for _, s := range software(root, rulesets{}, tc.backend, tc.variant) {
			if s.Name == "netfilter-persistent" && s.Removes != tc.removes {
				t.Errorf("rules in %s, iptables-restore %s: removes %v, want %v", tc.backend, tc.variant, s.Removes, tc.removes)
			}
		}
	}
	for _, s := range software(root, rulesets{}, "iptables-legacy", "nft") {
		if s.Name == "nftables.service" && s.Removes {
			t.Error("flush ruleset does not touch iptables-legacy's tables")
		}
	}
	if got := software(t.TempDir(), rulesets{}, "nftables", "nft"); len(got) != 0 {
		t.Errorf("a bare host: %+v", got)
	}
	for script, want := range map[string]bool{"flush ruleset\n": true, "  flush   ruleset;\n": true, "# flush ruleset\n": false, "flush table inet filter\n": false} {
		if flushesRuleset(script) != want {
			t.Errorf("%q: flushes %v, want %v", script, !want, want)
		}
	}
}

func TestParseUnit(t *testing.T) {
	u := parseUnit(UnitName, "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"+
		"RestrictAddressFamilies=AF_UNIX AF_NETLINK\nCapabilityBoundingSet=cap_net_admin cap_net_raw\n"+
		"DropInPaths=/etc/systemd/system/drainctl.service.d/x.conf\n")
	if u.LoadState != "loaded" || u.ActiveState != "active" || u.UnitFileState != "enabled" || u.Families != "AF_UNIX AF_NETLINK" ||
		!hasCap(u.Caps, "cap_net_raw") || len(u.DropIns) != 1 {
		t.Errorf("%+v", u)
	}
	if allows(u.Families, "AF_PACKET") || !allows("", "AF_PACKET") || allows("~AF_PACKET AF_INET", "AF_PACKET") || !allows("~AF_INET", "AF_PACKET") {
		t.Error("allows")
	}
}

func TestProgram(t *testing.T) {
	for line, want := range map[string]string{
		"apache2ctl -t":                    "apache2ctl",
		"LANG=C /usr/sbin/nginx -t":        "/usr/sbin/nginx",
		"systemctl reload apache2.service": "systemctl",
		"cd /srv && make reload":           "",
		"$(which nginx) -s reload":         "",
	} {
		if got := program(line); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}
