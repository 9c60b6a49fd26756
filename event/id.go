package event

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is Crockford's base32 alphabet: no I, L, O or U, so ids read
// aloud or typed by hand are unambiguous.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a prefixed, time-sortable unique id such as
// "evt_01HZX3K7Q4V0M8N2D5R6T9W1YB": 48 bits of milliseconds followed by
// 80 random bits, the layout of a ULID.
func NewID(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	rand.Read(b[6:]) // never fails (crypto/rand since Go 1.24)

	out := make([]byte, len(prefix)+26)
	copy(out, prefix)
	dst := out[len(prefix):]
	// 128 bits in 26 base32 digits: the first digit carries 3 bits.
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	for i := 25; i >= 0; i-- {
		dst[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}
