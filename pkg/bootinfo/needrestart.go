package bootinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// needrestart -b -k (batch mode, kernel only) prints, as seen from
// needrestart 3.6 (Debian 12, 3.6-4+deb12u4) and read in its source
// (/usr/sbin/needrestart, NeedRestart/Kernel.pm and Kernel/Linux.pm):
//
//	NEEDRESTART-VER: 3.6
//	NEEDRESTART-KCUR: 6.18.44-fc-v857
//	NEEDRESTART-KEXP: 6.19.2-fc-v900
//	NEEDRESTART-KSTA: 3
//
// and exits 0 whatever it found (only its nagios mode, -p, exits with a
// status). KCUR is the running kernel's release (uname -r); KEXP, printed
// only when it found kernel images in /boot, is the newest of them; KSTA
// is its verdict (NRK_* in Kernel.pm):
//
//	0 unknown: no kernel image found in /boot to compare with (no KEXP)
//	1 no upgrade: the running kernel is the newest installed
//	2 ABI upgrade: same release, but the image's build (uname -v) differs
//	  from the running one's, as when a kernel package is rebuilt without
//	  a new release number (detected on x86 only)
//	3 version upgrade: a newer release than the running one is installed
//
// 2 and 3 need a reboot to take effect; 0 tells nothing either way.
const (
	kernelUnknown        = 0
	kernelCurrent        = 1
	kernelABIUpgrade     = 2
	kernelVersionUpgrade = 3
)

// needrestartKernel is what needrestart -b -k said.
type needrestartKernel struct {
	status        int
	running, want string // KCUR and KEXP
}

// parseNeedrestart reads needrestart's batch output; lines other than
// the kernel's (VER, and those of other checks) are passed over.
func parseNeedrestart(out []byte) (needrestartKernel, error) {
	var k needrestartKernel
	sawStatus := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch key {
		case "NEEDRESTART-KCUR":
			k.running = value
		case "NEEDRESTART-KEXP":
			k.want = value
		case "NEEDRESTART-KSTA":
			status, err := strconv.Atoi(value)
			if err != nil || status < kernelUnknown || status > kernelVersionUpgrade {
				return needrestartKernel{}, fmt.Errorf("NEEDRESTART-KSTA %q is not a kernel status (known: 0 unknown, 1 current, 2 ABI upgrade, 3 version upgrade)", value)
			}
			k.status, sawStatus = status, true
		}
	}
	if !sawStatus {
		return needrestartKernel{}, errors.New("no NEEDRESTART-KSTA line (want needrestart's batch output, as -b -k prints it)")
	}
	return k, nil
}

// reason says what k means for the operator, and whether needrestart
// could tell at all.
func (k needrestartKernel) reason() (string, bool) {
	switch k.status {
	case kernelCurrent:
		return fmt.Sprintf("kernel %s running is the newest installed", k.running), true
	case kernelABIUpgrade:
		return fmt.Sprintf("kernel %s running, a rebuild of it installed (an ABI-compatible upgrade)", k.running), true
	case kernelVersionUpgrade:
		return fmt.Sprintf("kernel %s running, %s installed", k.running, k.want), true
	default:
		return fmt.Sprintf("needrestart could not tell (found no kernel image in /boot to compare with the running %s)", k.running), false
	}
}
