package conntable

import "encoding/binary"

// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from a type.
const nlaTypeMask = 0x3fff

// eachAttr walks netlink attributes (4-byte header: length and type, then
// the payload, padded to 4 bytes) without allocating: on the hot path of a
// dump, a decoder per message would cost more than the kernel's work.
func eachAttr(b []byte, fn func(typ uint16, payload []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:4])&nlaTypeMask, b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}
