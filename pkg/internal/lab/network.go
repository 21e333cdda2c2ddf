package lab

// The lab's links: a veth pair from each web server to the load
// balancer's namespace, and with Options.Passive a second one to the
// passive HAProxy's, all in 198.18.0.0/15.

import (
	"fmt"

	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// linkWeb joins web i (w) to the load balancer's namespace by a veth
// pair: 198.18.i.1/24 on the load balancer's side, w.Addr on eth0.
// 198.18.0.0/15 is the benchmarking range, never routed; no route out.
func (l *Lab) linkWeb(w *Web, i int) error {
	veth := fmt.Sprintf("veth%d", i)
	if _, err := l.lb.Exec("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", w.ns.Name); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"lb", "ip", "addr", "add", fmt.Sprintf("198.18.%d.1/24", i), "dev", veth},
		{"lb", "ip", "link", "set", veth, "up"},
		{"web", "ip", "addr", "add", w.Addr + "/24", "dev", "eth0"},
		{"web", "ip", "link", "set", "eth0", "up"},
	} {
		n := l.lb
		if c[0] == "web" {
			n = w.ns
		}
		if _, err := n.Exec(c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// PassiveLB4 is the passive HAProxy's address on web i's link (i from 1).
func PassiveLB4(i int) string { return fmt.Sprintf("198.18.%d.1", 100+i) }

// passiveAddr is web i's address on its link to the passive HAProxy.
func passiveAddr(i int) string { return fmt.Sprintf("198.18.%d.2", 100+i) }

// ActiveLB4 is the (active) HAProxy's address on web i's link.
func ActiveLB4(i int) string { return fmt.Sprintf("198.18.%d.1", i) }

// linkPassive joins web i (w) to the passive HAProxy's namespace, made at
// the first call: 198.18.(100+i).0/24, eth1 on the web side.
func (l *Lab) linkPassive(w *Web, i int) (err error) {
	if l.passive == nil {
		if l.passive, err = namespace.New("dl-" + l.o.ID + "-lb2"); err != nil {
			return err
		}
	}
	veth := fmt.Sprintf("pveth%d", i)
	if _, err := l.passive.Exec("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth1", "netns", w.ns.Name); err != nil {
		return err
	}
	for _, c := range []struct {
		ns   *namespace.NS
		args []string
	}{
		{l.passive, []string{"ip", "addr", "add", PassiveLB4(i) + "/24", "dev", veth}},
		{l.passive, []string{"ip", "link", "set", veth, "up"}},
		{w.ns, []string{"ip", "addr", "add", passiveAddr(i) + "/24", "dev", "eth1"}},
		{w.ns, []string{"ip", "link", "set", "eth1", "up"}},
	} {
		if _, err := c.ns.Exec(c.args...); err != nil {
			return err
		}
	}
	return nil
}
