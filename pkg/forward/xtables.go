package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// xtables reads and writes one IP family's iptables rules as a whole:
// iptables-save to read, iptables-restore --noflush to change. A batch
// applies entirely or not at all (with iptables-nft, one transaction per
// table), and rules are named by what they are, never by their position.
//
// Both start a command and return a function that waits for it, so that
// the IPv4 and IPv6 saves can run at the same time. They are started on
// the calling thread: the command runs in the caller's network namespace.
type xtables interface {
	// StartSave starts iptables-save --counters (every table).
	StartSave(ctx context.Context) (wait func() (string, error), err error)
	// StartRestore starts iptables-restore --noflush --counters with batch.
	StartRestore(ctx context.Context, batch string) (wait func() error, err error)
}

// execXtables runs the iptables-save and iptables-restore of one family
// and flavour (e.g. iptables-nft-save, ip6tables-legacy-restore).
type execXtables struct{ save, restore string }

// xtablesTimeout bounds one command, including the wait for the xtables
// lock that iptables-legacy takes (-w).
const xtablesTimeout = 10 * time.Second

func (x execXtables) StartSave(ctx context.Context) (func() (string, error), error) {
	ctx, cancel := context.WithTimeout(ctx, xtablesTimeout)
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, x.save, "--counters")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", x.save, err)
	}
	return func() (string, error) {
		defer cancel()
		if err := cmd.Wait(); err != nil {
			return "", fmt.Errorf("%s: %w: %s", x.save, err, strings.TrimSpace(stderr.String()))
		}
		return out.String(), nil
	}, nil
}

func (x execXtables) StartRestore(ctx context.Context, batch string) (func() error, error) {
	ctx, cancel := context.WithTimeout(ctx, xtablesTimeout)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, x.restore, "--noflush", "--counters", "--wait", "5")
	cmd.Stdin = strings.NewReader(batch)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", x.restore, err)
	}
	return func() error {
		defer cancel()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w: %s", x.restore, err, strings.TrimSpace(out.String()))
		}
		return nil
	}, nil
}

// savedRule is one "-A CHAIN ..." line of iptables-save.
type savedRule struct {
	counters string // "[packets:bytes]", or "" when saved without counters
	spec     string // everything after "-A CHAIN "
}

func (r savedRule) packets() uint64 {
	p, _, _ := strings.Cut(strings.Trim(r.counters, "[]"), ":")
	n, _ := strconv.ParseUint(p, 10, 64)
	return n
}

// comment is the rule's --comment value, or "".
func (r savedRule) comment() string {
	m := reComment.FindStringSubmatch(r.spec)
	if m == nil {
		return ""
	}
	return m[1]
}

// savedTable is one table of an iptables-save dump.
type savedTable struct {
	chains map[string]bool        // every chain declared
	rules  map[string][]savedRule // rules by chain, in order
}

// parseSave reads iptables-save output. Lines it does not understand are
// an error: acting on a misread ruleset could undo a withdraw.
func parseSave(text string) (map[string]*savedTable, error) {
	tables := map[string]*savedTable{}
	var cur *savedTable
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			cur = &savedTable{chains: map[string]bool{}, rules: map[string][]savedRule{}}
			tables[line[1:]] = cur
		case cur == nil:
			return nil, fmt.Errorf("iptables-save line %d: %q outside a table", n+1, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.chains[name] = true
		default:
			var r savedRule
			if strings.HasPrefix(line, "[") {
				c, rest, ok := strings.Cut(line, " ")
				if !ok {
					return nil, fmt.Errorf("iptables-save line %d: %q", n+1, line)
				}
				r.counters, line = c, rest
			}
			rest, ok := strings.CutPrefix(line, "-A ")
			if !ok {
				return nil, fmt.Errorf("iptables-save line %d: unexpected %q", n+1, line)
			}
			chain, spec, _ := strings.Cut(rest, " ")
			r.spec = spec
			cur.rules[chain] = append(cur.rules[chain], r)
		}
	}
	return tables, nil
}

func (t *savedTable) clone() *savedTable {
	c := &savedTable{chains: map[string]bool{}, rules: map[string][]savedRule{}}
	for k, v := range t.chains {
		c.chains[k] = v
	}
	for k, v := range t.rules {
		c.rules[k] = append([]savedRule(nil), v...)
	}
	return c
}

func cloneTables(ts map[string]*savedTable) map[string]*savedTable {
	c := make(map[string]*savedTable, len(ts))
	for k, v := range ts {
		c[k] = v.clone()
	}
	return c
}

var reInsert = regexp.MustCompile(`^-I (\S+) (\d+) (.*)$`)

// applyBatch returns tables as iptables-restore --noflush --counters
// leaves them after batch, or an error where it would refuse the batch
// (which then changes nothing). It knows the lines drainctl writes:
// "*table", ":CHAIN" (creates or empties), "-A", "-I CHAIN 1", "-D" by
// spec, "-X", "COMMIT". The backend uses it to know the rules after its
// own change without reading them again, and the unit tests' fake
// iptables is built on it.
func applyBatch(tables map[string]*savedTable, batch string) (map[string]*savedTable, error) {
	next := cloneTables(tables)
	var t *savedTable
	for n, line := range strings.Split(strings.TrimSpace(batch), "\n") {
		bad := func(why string) error { return fmt.Errorf("iptables-restore line %d %q: %s", n+1, line, why) }
		if t == nil && !strings.HasPrefix(line, "*") {
			return nil, bad("outside a table")
		}
		r := savedRule{counters: "[0:0]"}
		if strings.HasPrefix(line, "[") {
			r.counters, line, _ = strings.Cut(line, " ")
		}
		switch {
		case strings.HasPrefix(line, "*"):
			if next[line[1:]] == nil {
				next[line[1:]] = &savedTable{chains: map[string]bool{}, rules: map[string][]savedRule{}}
			}
			t = next[line[1:]]
		case line == "COMMIT":
			t = nil
		default:
			if why := t.apply(line, r); why != "" {
				return nil, bad(why)
			}
		}
	}
	if t != nil {
		return nil, errors.New("iptables-restore: no COMMIT at the end")
	}
	return next, nil
}

// apply makes one line of a batch's table in t: a chain declared, a rule
// (r, with its counters) appended, inserted or deleted, a chain removed.
// It returns why iptables-restore would refuse the line, or "".
func (t *savedTable) apply(line string, r savedRule) (refused string) {
	switch {
	case strings.HasPrefix(line, ":"):
		c, _, _ := strings.Cut(line[1:], " ")
		t.chains[c] = true
		t.rules[c] = nil // --noflush still empties a declared chain
	case strings.HasPrefix(line, "-A "):
		c, spec, _ := strings.Cut(line[3:], " ")
		if !t.chains[c] {
			return "no such chain"
		}
		r.spec = spec
		t.rules[c] = append(t.rules[c], r)
	case strings.HasPrefix(line, "-I "):
		m := reInsert.FindStringSubmatch(line)
		if m == nil || !t.chains[m[1]] || m[2] != "1" {
			return "not an insert at 1 into an existing chain"
		}
		r.spec = m[3]
		t.rules[m[1]] = append([]savedRule{r}, t.rules[m[1]]...)
	case strings.HasPrefix(line, "-D "):
		c, spec, _ := strings.Cut(line[3:], " ")
		i := slices.IndexFunc(t.rules[c], func(r savedRule) bool { return sameSpec(r.spec, spec) })
		if i < 0 {
			return "no such rule"
		}
		t.rules[c] = slices.Delete(t.rules[c], i, i+1)
	case strings.HasPrefix(line, "-X "):
		return t.deleteChain(line[3:])
	default:
		return "not understood"
	}
	return ""
}

// deleteChain removes chain c as -X does, or says why it would refuse:
// the chain must exist, be empty, and no rule may jump to it.
func (t *savedTable) deleteChain(c string) (refused string) {
	if !t.chains[c] || len(t.rules[c]) > 0 {
		return "not an empty chain"
	}
	for _, rs := range t.rules {
		for _, r := range rs {
			if strings.HasSuffix(r.spec, "-j "+c) {
				return "chain in use"
			}
		}
	}
	delete(t.chains, c)
	delete(t.rules, c)
	return ""
}

// sameSpec compares a rule as written and as iptables-save prints it,
// which quotes comments.
func sameSpec(a, b string) bool {
	return strings.ReplaceAll(a, `"`, "") == strings.ReplaceAll(b, `"`, "")
}

// nftGeneration asks the kernel for the nftables ruleset's generation
// (NFT_MSG_GETGEN) in the calling thread's network namespace. It changes
// with every commit, by any process, iptables-nft's included: while it
// has not changed, rules read before are still the rules.
func nftGeneration() (uint32, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("nftables generation: no id in the answer")
}
