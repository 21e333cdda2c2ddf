// Package bootinfo reads what the host says about its boot, for the
// reboot flow: an ID that changes with every boot, when this boot's init
// started, and whether a reboot is required (reboot.go).
package bootinfo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Host reads boot facts from the files under Root; the zero Host reads
// the real ones under "/". Tests point Root at a directory of their own.
type Host struct{ Root string }

// BootID returns the kernel's random ID for this boot, which changes on
// every boot: the reboot flow compares it before and after to know the
// host did reboot.
func BootID() (string, error) { return Host{}.BootID() }

// InitStart returns when PID 1 of this PID namespace started: on a host,
// about when this boot started; in a container, when the container did.
func InitStart() (time.Time, error) { return Host{}.InitStart() }

// Boot names this boot: the kernel's boot ID and when PID 1 started,
// "BOOTID@TICKS". Either changes with a reboot. The second is needed in
// containers: their manager (systemd-nspawn, LXC) gives each container
// boot an ID of its own by mounting a file over boot_id, and a service
// that systemd sandboxes there gets a /proc of its own without that
// mount: it reads the host kernel's ID, the same across the container's
// reboots (seen under drainctl.service in an nspawn container). PID 1's
// start, read from the same /proc, is new at every boot of a host or a
// container.
func Boot() (string, error) { return Host{}.Boot() }

// Boot is the package's Boot under h's root.
func (h Host) Boot() (string, error) {
	id, err := h.BootID()
	if err != nil {
		return "", err
	}
	ticks, err := h.initTicks()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s@%d", id, ticks), nil
}

// path is name (an absolute path) under h's root.
func (h Host) path(name string) string {
	if h.Root == "" {
		return name
	}
	return filepath.Join(h.Root, name)
}

// BootID reads /proc/sys/kernel/random/boot_id under h's root.
func (h Host) BootID() (string, error) {
	p := h.path("/proc/sys/kernel/random/boot_id")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot ID: %s is empty", p)
	}
	return id, nil
}

// userHZ is the unit of the times in /proc/PID/stat: clock ticks of
// USER_HZ, which Linux fixes at 100 on every architecture for what it
// shows user space (sysconf(_SC_CLK_TCK); getconf CLK_TCK prints 100),
// whatever the kernel's own HZ is.
const userHZ = 100

// InitStart is PID 1's start time (field 22 of /proc/1/stat, in clock
// ticks since the kernel booted) as a wall-clock time. With /proc/uptime
// (seconds since the kernel booted, to 10 ms) it is now - (uptime -
// start): good to about 10 ms. Without it, btime of /proc/stat (the
// kernel's boot, whole seconds) + start: good to about a second, which is
// not enough to split a container's 1-second reboot into shutdown and
// boot.
func (h Host) InitStart() (time.Time, error) {
	ticks, err := h.initTicks()
	if err != nil {
		return time.Time{}, err
	}
	since := time.Duration(ticks) * (time.Second / userHZ)
	if b, err := os.ReadFile(h.path("/proc/uptime")); err == nil {
		now := time.Now()
		if f := strings.Fields(string(b)); len(f) > 0 {
			if up, err := strconv.ParseFloat(f[0], 64); err == nil {
				return now.Add(-time.Duration(up * float64(time.Second))).Add(since), nil
			}
		}
	}
	procStat := h.path("/proc/stat")
	b, err := os.ReadFile(procStat)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	btime, err := parseBtime(b)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time from %s: %w", procStat, err)
	}
	return time.Unix(btime, 0).Add(since), nil
}

// initTicks is PID 1's start (field 22 of /proc/1/stat), in clock ticks
// since the kernel booted.
func (h Host) initTicks() (uint64, error) {
	statPath := h.path("/proc/1/stat")
	stat, err := os.ReadFile(statPath)
	if err != nil {
		return 0, fmt.Errorf("read init's start time: %w", err)
	}
	ticks, err := parseStartTime(stat)
	if err != nil {
		return 0, fmt.Errorf("read init's start time from %s: %w", statPath, err)
	}
	return ticks, nil
}

// parseStartTime returns field 22 (starttime) of a /proc/PID/stat line.
// Field 2 is the command name in parentheses, which may itself hold
// spaces and parentheses ("(a) b)"), so the fields are counted from after
// the last ')'.
func parseStartTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' closing the command name")
	}
	// After the name come fields 3 (state) onwards.
	fields := strings.Fields(string(stat[i+1:]))
	const starttime = 22 - 3
	if len(fields) <= starttime {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d (starttime is field 22)", len(fields), starttime+1)
	}
	ticks, err := strconv.ParseUint(fields[starttime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("starttime (field 22) %q is not a number of clock ticks", fields[starttime])
	}
	return ticks, nil
}

// parseBtime returns the btime line's value from /proc/stat.
func parseBtime(stat []byte) (int64, error) {
	for line := range strings.Lines(string(stat)) {
		value, ok := strings.CutPrefix(line, "btime ")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		btime, err := strconv.ParseInt(value, 10, 64)
		if err != nil || btime <= 0 {
			return 0, fmt.Errorf("btime %q is not seconds since the epoch", value)
		}
		return btime, nil
	}
	return 0, errors.New("no btime line")
}
