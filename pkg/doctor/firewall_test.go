package doctor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNamesPort(t *testing.T) {
	ports := []uint16{81}
	for rule, want := range map[string]bool{
		"tcp dport 81 counter accept":                            true,
		"tcp dport { 80, 81, 443 } accept":                       true,
		"tcp dport 80-90 drop":                                   true,
		"tcp dport 8081 accept":                                  false,
		"tcp sport 81 accept":                                    false,
		"-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT":         true,
		"-A INPUT -p tcp -m multiport --dports 22,80:90 -j DROP": true,
		"-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT":            false,
		"-A INPUT -p tcp --dport 810 -j ACCEPT":                  false,
	} {
		if _, got := namesPort(rule, ports); got != want {
			t.Errorf("%q: %v, want %v", rule, got, want)
		}
	}
}

func TestNftPortRulesSkipsDrainctl(t *testing.T) {
	text := `table inet drainctl {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 81 redirect to :80 comment "drainctl:81:80:redirect-in"
	}
}
table ip nat {
	chain DRAINCTL-PRE {
		tcp dport 81 counter packets 0 bytes 0 redirect to :80 comment "drainctl:81:80:redirect-in"
	}
	chain DOCKER {
		iifname != "docker0" meta l4proto tcp tcp dport 81 counter packets 0 bytes 0 dnat to 172.17.0.2:80
	}
}
table inet filter {
	chain input {
		tcp dport { 22, 80 } accept
	}
}
`
	got := nftPortRules(text, []uint16{81}, nil)
	if len(got) != 1 || got[0].Where != "nftables table ip nat, chain DOCKER" || got[0].Port != 81 {
		t.Fatalf("%+v", got)
	}
	// With iptables-nft's save command, its tables are read there.
	if got := nftPortRules(text, []uint16{81}, map[string]bool{"ip nat": true}); len(got) != 0 {
		t.Fatalf("iptables-nft's table read twice: %+v", got)
	}
}

func TestSaveTables(t *testing.T) {
	// iptables-nft-save 1.8.9 on a host with a native "table ip nat".
	out := "# Table `nat' contains incompatible base-chains, use 'nft' tool to list them.\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\nCOMMIT\n"
	if got := saveTables(out); !got["filter"] || got["nat"] || len(got) != 1 {
		t.Errorf("%v, want filter only", got)
	}
}

func TestSavePortRules(t *testing.T) {
	text := "*nat\n:PREROUTING ACCEPT [0:0]\n:DRAINCTL-PRE - [0:0]\n" +
		"-A PREROUTING -j DRAINCTL-PRE\n" +
		"-A DRAINCTL-PRE -p tcp -m tcp --dport 81 -m comment --comment drainctl:81:80:redirect-in -j REDIRECT --to-ports 80\n" +
		"-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.1.1.1:80\nCOMMIT\n"
	got := savePortRules(text, "iptables-legacy", []uint16{81})
	if len(got) != 1 || got[0].Where != "iptables-legacy table nat" {
		t.Fatalf("%+v", got)
	}
}

func TestSoftware(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "iptables"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "nftables.conf"), []byte("#!/usr/sbin/nft -f\n\nflush ruleset\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "iptables", "rules.v4"), []byte("*filter\nCOMMIT\n"), 0o644)
	nft := "table inet firewalld { # handle 1\n}\ntable ip filter {\n\tchain ufw-before-input {\n\t}\n}\n"
	saves := []string{"*nat\n:DOCKER - [0:0]\nCOMMIT\n"}
	var names []string
	removes := map[string]bool{}
	for _, s := range software(root, nft, saves, "nftables", "nft") {
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
		for _, s := range software(root, "", nil, tc.backend, tc.variant) {
			if s.Name == "netfilter-persistent" && s.Removes != tc.removes {
				t.Errorf("rules in %s, iptables-restore %s: removes %v, want %v", tc.backend, tc.variant, s.Removes, tc.removes)
			}
		}
	}
	for _, s := range software(root, "", nil, "iptables-legacy", "nft") {
		if s.Name == "nftables.service" && s.Removes {
			t.Error("flush ruleset does not touch iptables-legacy's tables")
		}
	}
	if got := software(t.TempDir(), "", nil, "nftables", "nft"); len(got) != 0 {
		t.Errorf("a bare host: %+v", got)
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
