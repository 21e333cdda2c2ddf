package conntable

import (
	"encoding/binary"
	"testing"
)

func bcOp(bc []byte, off int) (code byte, yes, no int) {
	return bc[off], int(bc[off+1]), int(binary.NativeEndian.Uint16(bc[off+2:]))
}

// auditBC mirrors the kernel's inet_diag_bc_audit for the ops portFilter
// emits: it walks the "yes" jumps only, and every "no" target short of the
// end must lie on that walk (valid_cc). The kernel answers EINVAL
// otherwise.
func auditBC(bc []byte) bool {
	validCC := func(cc int) bool { // is the op with cc bytes left on the yes-walk?
		for off := 0; off <= len(bc); {
			left := len(bc) - off
			if cc > left {
				return false
			}
			if cc == left {
				return true
			}
			_, yes, _ := bcOp(bc, off)
			if yes < 4 || yes%4 != 0 {
				return false
			}
			off += yes
		}
		return false
	}
	off := 0
	for off < len(bc) {
		left := len(bc) - off
		code, yes, no := bcOp(bc, off)
		minLen := 4
		switch code {
		case inetDiagBcSEq:
			minLen = 8 // the op and its port operand
		case inetDiagBcJmp:
		default:
			return false
		}
		if no < minLen || no > left+4 || no%4 != 0 {
			return false
		}
		if no < left && !validCC(left-no) {
			return false
		}
		if yes < minLen || yes > left+4 || yes%4 != 0 {
			return false
		}
		off += yes
	}
	return off == len(bc)
}

// runBC interprets the bytecode as the kernel's inet_diag_bc_run does.
func runBC(bc []byte, sport uint16) bool {
	off := 0
	for off < len(bc) {
		code, yes, no := bcOp(bc, off)
		match := false // JMP: always "no"
		if code == inetDiagBcSEq {
			match = sport == binary.NativeEndian.Uint16(bc[off+6:])
		}
		if match {
			off += yes
		} else {
			off += no
		}
	}
	return off == len(bc)
}

func TestPortFilterBytecode(t *testing.T) {
	for _, ports := range [][]uint16{{80}, {80, 443}, {80, 443, 8080}} {
		bc := portFilter(ports)
		if !auditBC(bc) {
			t.Fatalf("ports %v: bytecode fails the kernel's audit: % x", ports, bc)
		}
		for _, p := range []uint16{1, 80, 81, 443, 8080, 65535} {
			want := false
			for _, q := range ports {
				want = want || p == q
			}
			if got := runBC(bc, p); got != want {
				t.Errorf("ports %v, socket port %d: accepted=%v, want %v", ports, p, got, want)
			}
		}
	}
}

// TestAuditModelRejectsTheOldLayout keeps the model honest: the first
// layout (a match jumping straight to the end) ran correctly but the
// kernel refused it for two ports; the model must refuse it too.
func TestAuditModelRejectsTheOldLayout(t *testing.T) {
	var bc []byte
	for i, p := range []uint16{80, 443} {
		yes, no := 16-8*i, 8
		if i == 1 {
			yes, no = 8, 12
		}
		bc = append(bc, inetDiagBcSEq, byte(yes))
		bc = binary.NativeEndian.AppendUint16(bc, uint16(no))
		bc = append(bc, 0, 0)
		bc = binary.NativeEndian.AppendUint16(bc, p)
	}
	if auditBC(bc) {
		t.Fatal("the audit model accepts bytecode the kernel refuses (EINVAL)")
	}
}
