package doctor

// The sources the load balancers' view learned, and a flood of new ones:
// anyone can send SYNs to the forward port from any address, so doctor
// says which sources count (steady ones rank above newcomers, pkg/lbview)
// and when many new ones arrive at once.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/settings"
)

// floodAt is how many sources checking the forward ports that are not
// steady load balancers make a flood: more than a pool has load
// balancers, and more than start together.
const floodAt = 8

// captureMaxSources bounds the sources doctor's own capture keeps: more
// than the agent's 64, so that a flood shows whole in the few seconds it
// listens (its Newcomers count what it could not keep).
const captureMaxSources = 1024

// learned lists the sources checking the forward ports: the agent's (it
// knows whether they are steady), then those only doctor's capture saw.
func (f Facts) learned() []lbview.LB {
	out := sourcesOn(f.Checks.Agent, f.forwardPorts())
	for _, l := range sourcesOn(f.Checks.Seen, f.forwardPorts()) {
		if !slices.ContainsFunc(out, func(a lbview.LB) bool { return a.Key() == l.Key() }) {
			out = append(out, l)
		}
	}
	return out
}

// flooded says whether the forward ports see a flood of new sources.
func (f Facts) flooded() bool { return f.newSources() >= floodAt }

// newSources is how many new sources (not steady load balancers) check
// the forward ports: the learned ones, or, when a flood churns the views
// (its sources evict each other before they are listed), the sources
// doctor's capture met beyond those it lists.
func (f Facts) newSources() int {
	_, fresh, _ := splitLearned(f)
	return max(len(fresh), f.Checks.Newcomers-len(sourcesOn(f.Checks.Seen, f.forwardPorts())))
}

// splitLearned sorts the learned sources: steady load balancers, new
// sources (not steady yet), and sources outside
// health_checks.load_balancers (which the agent does not learn).
func splitLearned(f Facts) (steady, fresh, outside []lbview.LB) {
	allow := f.Settings.LoadBalancers
	for _, l := range f.learned() {
		switch {
		case len(allow) > 0 && !slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(l.Addr) }):
			outside = append(outside, l)
		case l.Steady():
			steady = append(steady, l)
		default:
			fresh = append(fresh, l)
		}
	}
	return steady, fresh, outside
}

// names says some sources' addresses, at most 5 and how many more.
func names(lbs []lbview.LB) string {
	var ns []string
	for i, l := range lbs {
		if i == 5 {
			ns = append(ns, fmt.Sprintf("and %d more", len(lbs)-5))
			break
		}
		ns = append(ns, l.Key().String())
	}
	return strings.Join(ns, ", ")
}

func judgeLearned(f Facts) []Finding {
	steady, fresh, outside := splitLearned(f)
	if len(steady)+len(fresh)+len(outside) == 0 {
		return nil
	}
	var out []Finding
	found := "learned sources of checks:"
	if len(steady) > 0 {
		found += " steady load balancers " + names(steady) + ";"
	}
	if len(fresh) > 0 {
		found += fmt.Sprintf(" %d new (not steady for %s yet) %s;", len(fresh), lbview.Seconds(lbview.SteadyAfter), names(fresh))
	}
	out = append(out, ok(AreaChecks, "checks.learned", strings.TrimSuffix(found, ";")))
	if n := f.newSources(); n >= floodAt {
		impact := "none of them counts while a steady load balancer does: they evict none, and no confirmation waits for them"
		if len(steady) == 0 {
			impact = "no load balancer is steady yet (the agent just started, or watches no checks): until one is, those answered count, and a withdraw waits for their confirmations"
		}
		out = append(out, warn(AreaChecks, "checks.flood",
			fmt.Sprintf("a flood: %d sources check %s without being steady load balancers (%s): SYNs from spoofed addresses, or a scan", n, lbview.PortsText(f.forwardPorts()), cmp.Or(names(fresh), "too many to be kept")),
			impact,
			fmt.Sprintf("set %s to the load balancers' addresses or networks: then only their checks are learned; find where the SYNs come from (tcpdump -ni any 'tcp[tcpflags] == tcp-syn and dst port %d')", settings.KeyLoadBalancers, f.forwardPorts()[0])))
	}
	if len(outside) > 0 {
		out = append(out, warn(AreaChecks, "checks.outside",
			fmt.Sprintf("%s check %s but are outside %s", names(outside), lbview.PortsText(f.forwardPorts()), settings.KeyLoadBalancers),
			"the agent does not learn them: no confirmation waits for them; if one is a load balancer, a withdraw does not wait for it to take the server out",
			fmt.Sprintf("if they are load balancers, add their addresses to %s", settings.KeyLoadBalancers)))
	}
	return out
}
