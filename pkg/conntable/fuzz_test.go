package conntable

import "testing"

// FuzzNetlinkDecoders: no message from the kernel (or anything that
// reads as one) makes the sock_diag or conntrack decoders panic.
func FuzzNetlinkDecoders(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 72))
	f.Add(append(make([]byte, 72), 8, 0, 2, 0, 1, 2, 3, 4))
	f.Add([]byte{4, 0, 1, 0, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Socket
		parseDiagMsg(b, &s)
		replyTuple(b)
		eachAttr(b, func(uint16, []byte) {})
	})
}
