package forward

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Watch reports changes of the nftables ruleset, iptables-nft's included
// (its rules live in nftables): a value on the returned channel means
// "the ruleset changed since you last looked". Changes this process made
// itself are not reported. The kernel tells (the nftables netlink group,
// as "nft monitor" reads it), so a flush is seen at once rather than at
// the next poll. If the subscription breaks (the socket's buffer
// overflowed: events were lost), a change is reported and the watch
// subscribes again. iptables-legacy changes are not reported: poll
// LegacyFingerprint for those.
//
// Call it on a thread in the network namespace to watch; it ends with ctx.
func Watch(ctx context.Context, log *slog.Logger) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default: // one pending notice covers every change before it is read
		}
	}
	sub := func() (*nftables.Monitor, chan *nftables.MonitorEvents, error) {
		// A connection of its own: the monitor's socket joins the
		// multicast group and must not be shared with requests.
		conn, err := nftables.New()
		if err != nil {
			return nil, nil, err
		}
		mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
		ch, err := conn.AddGenerationalMonitor(mon)
		if err != nil {
			return nil, nil, err
		}
		return mon, ch, nil
	}
	mon, ch, err := sub()
	if err != nil {
		return nil, fmt.Errorf("watch the nftables ruleset: %w", err)
	}
	self := uint32(os.Getpid())
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				mon.Close()
				return
			case ev, ok := <-ch:
				if ok {
					if g, isGen := ev.GeneratedBy.Data.(*nftables.GenMsg); isGen && g.ProcPID == self {
						continue
					}
					notify()
					continue
				}
				// The subscription broke: events may have been lost.
				log.Warn("nftables monitor ended; subscribing again")
				notify()
				for {
					select {
					case <-ctx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
					if mon, ch, err = sub(); err == nil {
						break
					}
					log.Error("nftables monitor", "err", err)
				}
			}
		}
	}()
	return out, nil
}

// LegacyFingerprint summarises the iptables-legacy ruleset of this
// network namespace without running a command: the legacy tables the
// kernel lists, and for nat and filter their entry count, size and chain
// offsets (IPT_SO_GET_INFO, one getsockopt each). Any change of their
// rules changes it; the agent polls it, and reads the rules only when it
// changed. Tables not listed are not asked for: asking would load them.
func LegacyFingerprint() string {
	var b strings.Builder
	for _, fam := range []struct {
		proc    string
		domain  int
		level   int
		getInfo int
	}{
		{"/proc/thread-self/net/ip_tables_names", unix.AF_INET, unix.SOL_IP, iptSoGetInfo},
		{"/proc/thread-self/net/ip6_tables_names", unix.AF_INET6, unix.SOL_IPV6, iptSoGetInfo},
	} {
		names, err := os.ReadFile(fam.proc)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s:", strings.Join(strings.Fields(string(names)), ","))
		for _, t := range strings.Fields(string(names)) {
			if t != "nat" && t != "filter" {
				continue
			}
			info, err := legacyInfo(fam.domain, fam.level, fam.getInfo, t)
			if err != nil {
				// Unreadable: make the fingerprint change every time, so
				// the caller reads the rules instead of trusting it.
				fmt.Fprintf(&b, "%s=err%d;", t, time.Now().UnixNano())
				continue
			}
			fmt.Fprintf(&b, "%s=%x;", t, info)
		}
	}
	return b.String()
}

// iptSoGetInfo is IPT_SO_GET_INFO and IP6T_SO_GET_INFO (IPT_BASE_CTL,
// linux/netfilter_ipv4/ip_tables.h), which x/sys/unix does not name.
const iptSoGetInfo = 64

// legacyInfo returns struct ipt_getinfo after its name: valid_hooks,
// hook_entry[5], underflow[5], num_entries, size (ip6t_getinfo has the
// same layout).
func legacyInfo(domain, level, opt int, table string) ([]byte, error) {
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var info [32 + 4*13]byte
	copy(info[:32], table)
	size := uint32(len(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return nil, errno
	}
	return info[32:], nil
}
