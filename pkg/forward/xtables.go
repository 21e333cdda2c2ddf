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

// cloneTables copies a save's tables, for a change that may be refused.
func cloneTables(ts map[string]*SaveTable) map[string]*SaveTable {
	c := make(map[string]*SaveTable, len(ts))
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
func applyBatch(tables map[string]*SaveTable, batch string) (map[string]*SaveTable, error) {
	next := cloneTables(tables)
	var t *SaveTable
	for n, line := range strings.Split(strings.TrimSpace(batch), "\n") {
		bad := func(why string) error { return fmt.Errorf("iptables-restore line %d %q: %s", n+1, line, why) }
		if t == nil && !strings.HasPrefix(line, "*") {
			return nil, bad("outside a table")
		}
		r := SaveRule{Counters: "[0:0]"}
		if strings.HasPrefix(line, "[") {
			r.Counters, line, _ = strings.Cut(line, " ")
		}
		switch {
		case strings.HasPrefix(line, "*"):
			if next[line[1:]] == nil {
				next[line[1:]] = newSaveTable(line[1:])
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
func (t *SaveTable) apply(line string, r SaveRule) (refused string) {
	switch {
	case strings.HasPrefix(line, ":"):
		c, _, _ := strings.Cut(line[1:], " ")
		t.declare(c)
		t.Rules[c] = nil // --noflush still empties a declared chain
	case strings.HasPrefix(line, "-A "):
		r.Chain, r.Spec, _ = strings.Cut(line[3:], " ")
		if !t.HasChain(r.Chain) {
			return "no such chain"
		}
		t.Rules[r.Chain] = append(t.Rules[r.Chain], r)
	case strings.HasPrefix(line, "-I "):
		m := reInsert.FindStringSubmatch(line)
		if m == nil || !t.HasChain(m[1]) || m[2] != "1" {
			return "not an insert at 1 into an existing chain"
		}
		r.Chain, r.Spec = m[1], m[3]
		t.Rules[r.Chain] = append([]SaveRule{r}, t.Rules[r.Chain]...)
	case strings.HasPrefix(line, "-D "):
		c, spec, _ := strings.Cut(line[3:], " ")
		i := slices.IndexFunc(t.Rules[c], func(r SaveRule) bool { return sameSpec(r.Spec, spec) })
		if i < 0 {
			return "no such rule"
		}
		t.Rules[c] = slices.Delete(t.Rules[c], i, i+1)
	case strings.HasPrefix(line, "-X "):
		return t.deleteChain(line[3:])
	default:
		return "not understood"
	}
	return ""
}

// deleteChain removes chain c as -X does, or says why it would refuse:
// the chain must exist, be empty, and no rule may jump to it.
func (t *SaveTable) deleteChain(c string) (refused string) {
	if !t.HasChain(c) || len(t.Rules[c]) > 0 {
		return "not an empty chain"
	}
	for _, rs := range t.Rules {
		for _, r := range rs {
			if strings.HasSuffix(r.Spec, "-j "+c) {
				return "chain in use"
			}
		}
	}
	t.Chains = slices.DeleteFunc(t.Chains, func(x string) bool { return x == c })
	delete(t.Rules, c)
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
