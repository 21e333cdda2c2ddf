package forward

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// xtables reads and writes one IP family's iptables rules as a whole:
// iptables-save to read, iptables-restore --noflush to change. A batch is
// one transaction: it applies entirely or not at all, and rules are named
// by what they are, never by their position.
type xtables interface {
	// Save returns the output of iptables-save --counters (every table).
	Save(ctx context.Context) (string, error)
	// Restore feeds batch to iptables-restore --noflush --counters.
	Restore(ctx context.Context, batch string) error
}

// execXtables runs the iptables-save and iptables-restore of one family
// and flavour (e.g. iptables-nft-save, ip6tables-legacy-restore).
type execXtables struct{ save, restore string }

// xtablesTimeout bounds one command, including the wait for the xtables
// lock that iptables-legacy takes (-w).
const xtablesTimeout = 10 * time.Second

func (x execXtables) Save(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, xtablesTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, x.save, "--counters")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", x.save, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (x execXtables) Restore(ctx context.Context, batch string) error {
	ctx, cancel := context.WithTimeout(ctx, xtablesTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.restore, "--noflush", "--counters", "--wait", "5")
	cmd.Stdin = strings.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", x.restore, err, strings.TrimSpace(string(out)))
	}
	return nil
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
