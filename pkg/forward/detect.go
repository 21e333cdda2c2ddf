package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
)

// Backend names accepted by New (and --backend).
const (
	BackendAuto           = "auto"
	BackendNftables       = "nftables"
	BackendIptables       = "iptables" // the host's iptables command, nft or legacy
	BackendIptablesNft    = "iptables-nft"
	BackendIptablesLegacy = "iptables-legacy"
)

// Backends lists the accepted backend names, for help and errors.
var Backends = []string{BackendAuto, BackendNftables, BackendIptables, BackendIptablesNft, BackendIptablesLegacy}

// HostRules is what a host already has, as counted by Probe. The choice of
// backend follows it.
type HostRules struct {
	IptablesCmd bool // an iptables command is installed
	Legacy      int  // rules in iptables-legacy tables (IPv4 + IPv6)
	IptablesNft int  // rules in nftables tables made by iptables-nft
	Native      int  // rules in other nftables tables (nft, firewalld)
	// Drainctl lists the backends that hold drainctl's rules already.
	Drainctl []string
	// Recorded is the backend drainctl's state file says holds its rules
	// (the agent's; "" for the CLI or a fresh agent).
	Recorded string
}

// Choice is the backend to use and why, for logs and `forward status`.
type Choice struct {
	Backend string `json:"backend"`
	Reason  string `json:"reason"`
}

// Choose picks a backend. An explicit name wins. With "auto", the backend
// that holds drainctl's rules stays (the one the state file records, else
// the only one with drainctl's rules): a host where Docker or a firewall
// script adds iptables-legacy rules later does not move a held server's
// rules. Otherwise drainctl follows the side of netfilter the host already
// uses, so an operator who lists the firewall with their usual tool sees
// drainctl's rules there too:
//   - no iptables command: nftables (nothing else can work);
//   - the most rules are iptables-legacy's: iptables-legacy;
//   - the most are iptables-nft's: iptables-nft;
//   - otherwise (native nftables, or no rules at all): nftables, which
//     changes rules atomically over one netlink socket.
func Choose(name string, h HostRules) (Choice, error) {
	switch name {
	case BackendNftables, BackendIptablesNft, BackendIptablesLegacy:
		return Choice{name, "chosen with --backend"}, nil
	case BackendIptables:
		return Choice{name, "chosen with --backend; the host's iptables command decides nft or legacy"}, nil
	case BackendAuto, "":
	default:
		return Choice{}, fmt.Errorf("backend %q: want one of %s", name, strings.Join(Backends, ", "))
	}
	if h.Recorded != "" && (h.IptablesCmd || h.Recorded == BackendNftables) {
		return Choice{h.Recorded, "drainctl's state records its rules there"}, nil
	}
	if len(h.Drainctl) == 1 && (h.IptablesCmd || h.Drainctl[0] == BackendNftables) {
		return Choice{h.Drainctl[0], "drainctl's rules are there already"}, nil
	}
	counts := fmt.Sprintf("(rules on this host: iptables-legacy %d, iptables-nft %d, native nftables %d)", h.Legacy, h.IptablesNft, h.Native)
	switch {
	case !h.IptablesCmd:
		return Choice{BackendNftables, "no iptables command installed " + counts}, nil
	case h.Legacy > 0 && h.Legacy >= h.IptablesNft && h.Legacy >= h.Native:
		return Choice{BackendIptablesLegacy, "the host's firewall uses iptables-legacy " + counts}, nil
	case h.IptablesNft > 0 && h.IptablesNft >= h.Native:
		return Choice{BackendIptablesNft, "the host's firewall uses iptables-nft " + counts}, nil
	case h.Native > 0:
		return Choice{BackendNftables, "the host's firewall uses nftables " + counts}, nil
	}
	return Choice{BackendNftables, "no firewall rules yet; nftables is the default " + counts}, nil
}

// iptablesNftTables are the names iptables-nft gives its tables.
var iptablesNftTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// Probe counts the rules the host already has on each side. conn reads
// nftables; drainctl's own table and chains are not counted.
func Probe(conn *nftables.Conn) (HostRules, error) {
	// One save per family serves both the count and the search for
	// drainctl's own chains (a failed save counts as no rules).
	saves, _ := legacySaves(context.Background(), anyTable, exec.LookPath)
	return ProbeSaves(conn, saves, exec.LookPath)
}

// LookPath finds a program by name, as exec.LookPath does: drainctl
// doctor passes one that also looks where the agent's PATH would.
type LookPath func(file string) (string, error)

// ProbeSaves is Probe with iptables-legacy's saves already read
// (LegacySaves), for a caller that reads them too (drainctl doctor);
// look finds the iptables command.
func ProbeSaves(conn *nftables.Conn, saves []*SaveRules, look LookPath) (HostRules, error) {
	var h HostRules
	_, err := look("iptables")
	h.IptablesCmd = err == nil
	h.Legacy = countLegacy(saves)
	for _, p := range []struct {
		name    string
		present func() (bool, error)
	}{
		{BackendNftables, func() (bool, error) { return nftTablePresent(conn) }},
		{BackendIptablesNft, func() (bool, error) { return iptNftChainsPresent(conn) }},
		{BackendIptablesLegacy, func() (bool, error) { return hasDrainctlChains(saves), nil }},
	} {
		if ok, err := p.present(); err != nil {
			return h, fmt.Errorf("probe: %w", err)
		} else if ok {
			h.Drainctl = append(h.Drainctl, p.name)
		}
	}
	tables, err := conn.ListTables()
	if err != nil {
		return h, fmt.Errorf("probe nftables: %w", err)
	}
	chains, err := conn.ListChains()
	if err != nil {
		return h, fmt.Errorf("probe nftables chains: %w", err)
	}
	for _, t := range tables {
		if t.Name == NftTable && t.Family == nftables.TableFamilyINet {
			continue
		}
		iptNft := (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) && iptablesNftTables[t.Name]
		for _, c := range chains {
			if c.Table.Name != t.Name || c.Table.Family != t.Family || ownChain(c.Name) {
				continue
			}
			n := 1 // a rule google/nftables cannot decode still counts
			if rs, err := conn.GetRules(t, c); err == nil {
				n = 0
				for _, r := range rs {
					if !drainctlRule(r) {
						n++
					}
				}
			}
			if iptNft {
				h.IptablesNft += n
			} else {
				h.Native += n
			}
		}
	}
	return h, nil
}

// drainctlRule says whether an nftables rule is one of drainctl's (its
// jumps in iptables-nft's chains): commented CommentPrefix, in nft's
// comment or iptables-nft's xt comment match.
func drainctlRule(r *nftables.Rule) bool {
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && strings.HasPrefix(c, CommentPrefix) {
		return true
	}
	for _, e := range r.Exprs {
		if m, ok := e.(*expr.Match); ok && m.Name == "comment" {
			if c, ok := m.Info.(*xt.Comment); ok && strings.HasPrefix(string(*c), CommentPrefix) {
				return true
			}
		}
	}
	return false
}

// legacySaves reads iptables-legacy-save's output for each family whose
// legacy tables, as the kernel lists them, satisfy want. Only then is
// the command (found by look) run: running it otherwise would load
// modules. An unreadable list is a family without tables.
func legacySaves(ctx context.Context, want func(tables []string) bool, look LookPath) ([]*SaveRules, error) {
	var out []*SaveRules
	var errs []error
	for _, fam := range legacyFamilies {
		names, err := os.ReadFile(fam.proc)
		if err != nil || !want(strings.Fields(string(names))) {
			continue
		}
		cmd, err := look(fam.save)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := ReadSave(ctx, cmd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// LegacySaves reads iptables-legacy-save's output for each family that
// has legacy tables (run only then: running it loads kernel modules),
// the commands found by look. drainctl doctor reads other software's
// rules in them.
func LegacySaves(ctx context.Context, look LookPath) ([]*SaveRules, error) {
	return legacySaves(ctx, anyTable, look)
}

// anyTable and natOrFilter are legacySaves' usual wants.
func anyTable(ts []string) bool { return len(ts) > 0 }
func natOrFilter(ts []string) bool {
	return slices.ContainsFunc(ts, func(s string) bool { return s == "nat" || s == "filter" })
}

// countLegacy counts the rules of other software in iptables-legacy's
// saves.
func countLegacy(saves []*SaveRules) int {
	n := 0
	for _, s := range saves {
		for _, r := range s.All() {
			if !r.Drainctl() {
				n++
			}
		}
	}
	return n
}

// hasDrainctlChains says whether saves declare a chain of drainctl's.
func hasDrainctlChains(saves []*SaveRules) bool {
	return slices.ContainsFunc(saves, func(s *SaveRules) bool { return s.HasChain(ownChain) })
}

// ownChain says whether an iptables chain is drainctl's (ChainPrefix).
func ownChain(name string) bool { return strings.HasPrefix(name, ChainPrefix) }

// Options say which backend New opens.
type Options struct {
	// Backend is a name of Backends; "" or "auto" to detect.
	Backend string
	// Recorded is the backend drainctl's state says holds its rules; auto
	// keeps it.
	Recorded string
	Log      *slog.Logger
}

// New opens the backend o asks for ("auto" to detect), wrapped in a Host
// that also finds and moves drainctl's rules in the other backends, and
// says which it chose and why. It never returns a nil Host without an
// error. Call it on a thread in the network namespace to work in.
func New(ctx context.Context, o Options) (*Host, Choice, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if _, err := Choose(o.Backend, HostRules{}); err != nil {
		return nil, Choice{}, err
	}
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, Choice{}, fmt.Errorf("open netlink for nftables: %w", err)
	}
	host := HostRules{Recorded: o.Recorded}
	if o.Backend == BackendAuto || o.Backend == "" {
		if host, err = Probe(conn); err != nil {
			conn.CloseLasting()
			return nil, Choice{}, err
		}
		host.Recorded = o.Recorded
	}
	choice, _ := Choose(o.Backend, host)
	log.Debug("forward backend chosen", "backend", choice.Backend, "reason", choice.Reason)
	var primary Forwarder
	if choice.Backend == BackendNftables {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			conn.CloseLasting()
			return nil, choice, fmt.Errorf("open netlink for nftables: %w", err)
		}
		primary = NewNftables(c, log)
	} else {
		variant := strings.TrimPrefix(strings.TrimPrefix(choice.Backend, BackendIptables), "-")
		if primary, err = NewIptables(variant, log); err != nil {
			conn.CloseLasting()
			return nil, choice, err
		}
	}
	return newHost(primary, conn, log), choice, nil
}
