package lbview

// The view's memory: who checked this host, kept in the agent's state
// directory, so that after a restart of the agent, a package upgrade or a
// reboot the confirmations wait for the load balancers known before,
// instead of finding none and saying "back in rotation" on 0/0.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/atomicfile"
)

// ForgetAfter is how long a load balancer the view remembers may stay
// silent before it is forgotten. Remembering one that is gone costs each
// confirmation its timeout (at most a minute) and a "silent" in the
// answer; forgetting one that still checks would let a confirmation pass
// without it. So it is long: a day.
const ForgetAfter = 24 * time.Hour

// Remember puts load balancers known before (Save's) in the view as if
// they had just been counted: a confirmation expects each until it is
// silent for ForgetAfter. Ones the view knows already are left as they
// are. Ones outside Settings.Allow are skipped, and so are ones not
// worth remembering (a file of an older drainctl may list a burst of
// spoofed SYNs).
func (v *View) Remember(lbs []LB, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range lbs {
		if now.Sub(l.Last) > ForgetAfter || !l.Addr.IsValid() || !worthRemembering(l) || !v.allowed(l.Addr) {
			continue
		}
		k := l.Key()
		if v.srcs[k] != nil || len(v.srcs) >= v.s.MaxSources {
			continue
		}
		l.Checks = max(l.Checks, uint64(v.s.MinChecks))
		l.Active = false
		v.srcs[k] = &source{LB: l, remembered: true}
	}
}

// worthRemembering says whether l is kept across the agent's restarts:
// steady, or counted when listed (Active: checking, and no steady source
// outranked it) and answered. What is remembered is expected by every
// confirmation for a day, and a source that merely sent a few SYNs
// (anyone can, from any address) must not be; but a host rebooted a few
// seconds after its agent started (before any load balancer could be
// steady) must still wait, after the boot, for the one it counted, or
// its restore is confirmed by nobody.
func worthRemembering(l LB) bool {
	return l.Steady() || (l.Active && l.Accepted+l.Refused > 0 && l.Checks >= SteadyChecks)
}

// Save writes the ones of lbs worth remembering to path atomically and
// durably (a new file renamed over the old, file and directory
// fsynced), so a crash leaves the old list or the new one.
func Save(path string, lbs []LB) error {
	keep := []LB{}
	for _, l := range lbs {
		if worthRemembering(l) {
			keep = append(keep, l)
		}
	}
	b, err := json.MarshalIndent(keep, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the load balancers: %w", err)
	}
	return nil
}

// maxMemory bounds the file Load reads: Save writes at most MaxSources
// entries of a few hundred bytes each.
const maxMemory = 1 << 20

// Load reads what Save wrote; a missing file is an empty list. A file
// over maxMemory is refused unread, with the rest of the agent going on
// without it.
func Load(path string) ([]LB, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load the load balancers: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMemory+1))
	if err != nil {
		return nil, fmt.Errorf("load the load balancers: %w", err)
	}
	if len(b) > maxMemory {
		return nil, fmt.Errorf("load the load balancers from %s: over %d bytes, not a list drainctl wrote", path, maxMemory)
	}
	var lbs []LB
	if err := json.Unmarshal(b, &lbs); err != nil {
		return nil, fmt.Errorf("load the load balancers from %s: %w", path, err)
	}
	return lbs, nil
}
