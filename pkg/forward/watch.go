package forward

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
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
// kernel lists and, for nat and filter, a hash of their rules as the
// kernel holds them (IPT_SO_GET_INFO and IPT_SO_GET_ENTRIES, IPv4 and
// IPv6), packet counters left out so that traffic does not change it.
// Any change of those tables' rules changes it; the agent polls it and
// reads the rules only when it changed. Tables not listed are not asked
// for: asking would load them.
func LegacyFingerprint() string {
	var b strings.Builder
	for _, fam := range legacyFamilies {
		names, err := os.ReadFile(fam.proc)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s:", strings.Join(strings.Fields(string(names)), ","))
		for _, t := range strings.Fields(string(names)) {
			if t != "nat" && t != "filter" {
				continue
			}
			sum, err := legacyHash(fam, t)
			if err != nil {
				// Unreadable: make the fingerprint change every time, so
				// the caller reads the rules instead of trusting it.
				fmt.Fprintf(&b, "%s=err%d;", t, time.Now().UnixNano())
				continue
			}
			fmt.Fprintf(&b, "%s=%x;", t, sum)
		}
	}
	return b.String()
}

// legacyFamily describes one family's legacy tables: where the kernel
// lists them, the socket to ask on, and the layout of its rule entries.
type legacyFamily struct {
	// proc lists the family's legacy tables in use, in the calling
	// thread's namespace (/proc/net is the main thread's, and a caller
	// may have moved only its own thread into another).
	proc   string
	save   string // the family's iptables-legacy-save
	domain int
	level  int
	// entryCounters is the offset of struct xt_counters in an ipt_entry
	// (96) or ip6t_entry (152); nextOffset that of next_offset (90, 142).
	entryCounters, nextOffset int
}

var legacyFamilies = []legacyFamily{
	{"/proc/thread-self/net/ip_tables_names", "iptables-legacy-save", unix.AF_INET, unix.SOL_IP, 96, 90},
	{"/proc/thread-self/net/ip6_tables_names", "ip6tables-legacy-save", unix.AF_INET6, unix.SOL_IPV6, 152, 142},
}

// IPT_SO_GET_INFO and IPT_SO_GET_ENTRIES (IPT_BASE_CTL, IPT_BASE_CTL+1 in
// linux/netfilter_ipv4/ip_tables.h; the same for IPv6), which x/sys/unix
// does not name.
const (
	iptSoGetInfo    = 64
	iptSoGetEntries = 65
)

// legacyHash hashes a legacy table's hook offsets and rule entries with
// their counters zeroed.
func legacyHash(fam legacyFamily, table string) ([32]byte, error) {
	fd, err := unix.Socket(fam.domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return [32]byte{}, err
	}
	defer unix.Close(fd)
	// struct ipt_getinfo: name[32], valid_hooks, hook_entry[5],
	// underflow[5], num_entries, size.
	var info [32 + 4*13]byte
	copy(info[:32], table)
	if err := getsockopt(fd, fam.level, iptSoGetInfo, info[:]); err != nil {
		return [32]byte{}, err
	}
	size := binary.NativeEndian.Uint32(info[32+4*12:])
	// struct ipt_get_entries: name[32], size, then the entries, 8-aligned.
	const head = 40
	buf := make([]byte, head+int(size))
	copy(buf[:32], table)
	binary.NativeEndian.PutUint32(buf[32:], size)
	if err := getsockopt(fd, fam.level, iptSoGetEntries, buf); err != nil {
		return [32]byte{}, err
	}
	entries := buf[head:]
	for off := 0; off+fam.entryCounters+16 <= len(entries); {
		clear(entries[off+fam.entryCounters : off+fam.entryCounters+16])
		next := int(binary.NativeEndian.Uint16(entries[off+fam.nextOffset:]))
		if next <= 0 {
			break
		}
		off += next
	}
	h := sha256.New()
	h.Write(info[32:])
	h.Write(entries)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

func getsockopt(fd, level, opt int, buf []byte) error {
	size := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
