package linecheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

const (
	// DefaultLineBytes is the length of a line, newline included, when
	// [Writer.LineBytes] is zero.
	DefaultLineBytes = 100

	// SeqDigits is the number of decimal digits of a line's sequence number.
	SeqDigits = 12

	// MaxSeq is the largest sequence number a line can carry.
	MaxSeq = 999_999_999_999
)

// ErrLineTooShort is returned when the line length leaves no room for at
// least one payload byte after the writer id and the sequence number.
var ErrLineTooShort = errors.New("linecheck: line too short for id and seq")

// alphabet holds the 64 payload characters, all printable and none a space.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// ValidID reports whether id is a valid writer id: non-empty, made of
// [A-Za-z0-9_.-] only.
func ValidID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return false
		}
	}
	return true
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// AppendLine appends line seq of writer id, lineBytes long including its
// newline, to dst and returns the extended slice. It fails if id is not
// valid, seq exceeds [MaxSeq], or lineBytes leaves no room for a payload.
func AppendLine(dst []byte, id string, seq uint64, lineBytes int) ([]byte, error) {
	if !ValidID(id) {
		return dst, fmt.Errorf("linecheck: invalid writer id %q", id)
	}
	if seq > MaxSeq {
		return dst, fmt.Errorf("linecheck: seq %d exceeds %d", seq, uint64(MaxSeq))
	}
	n := payloadBytes(id, lineBytes)
	if n < 1 {
		return dst, fmt.Errorf("%w: id %q, %d bytes", ErrLineTooShort, id, lineBytes)
	}
	return appendLine(dst, id, idHash(id), seq, n), nil
}

// payloadBytes returns the payload length of a line of lineBytes bytes.
func payloadBytes(id string, lineBytes int) int {
	return lineBytes - len(id) - 1 - SeqDigits - 1 - 1
}

// appendLine appends a line whose inputs are known to be valid. It grows
// dst once and fills the line in place: a load generator makes millions of
// lines a second with it, and appending byte by byte cost a third of one.
func appendLine(dst []byte, id string, h, seq uint64, payload int) []byte {
	n := len(id) + 1 + SeqDigits + 1 + payload + 1
	dst = slices.Grow(dst, n)
	at := len(dst)
	dst = dst[:at+n]
	line := dst[at:]
	k := copy(line, id)
	line[k] = ' '
	digits := line[k+1 : k+1+SeqDigits]
	for i, v := SeqDigits-1, seq; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	p := line[k+1+SeqDigits:]
	p[0] = ' '
	p = p[1 : 1+payload]
	st := payloadSeed(h, seq)
	for len(p) >= 10 {
		// Ten characters from each value, two at a time.
		r := splitmix(&st)
		for i := 0; i < 10; i += 2 {
			binary.LittleEndian.PutUint16(p[i:], pairs[r&4095])
			r >>= 12
		}
		p = p[10:]
	}
	if len(p) > 0 {
		r := splitmix(&st)
		for i := range p {
			p[i] = alphabet[r&63]
			r >>= 6
		}
	}
	line[len(line)-1] = '\n'
	return dst
}

// pairs[v] is the two payload characters of the 12 bits v, the first in
// the low byte: alphabet[v&63], then alphabet[v>>6].
var pairs = func() (t [4096]uint16) {
	for v := range t {
		t[v] = uint16(alphabet[v&63]) | uint16(alphabet[v>>6])<<8
	}
	return t
}()

// payloadOK reports whether p is the payload of line seq of the writer whose
// id hashes to h. The payload of a line is a prefix of the payload of the
// same line made longer, so p's length is not checked here.
func payloadOK(p []byte, h, seq uint64) bool {
	st := payloadSeed(h, seq)
	var r uint64
	for i, c := range p {
		if i%10 == 0 {
			r = splitmix(&st)
		}
		if c != alphabet[r&63] {
			return false
		}
		r >>= 6
	}
	return true
}

// idHash is 64-bit FNV-1a.
func idHash[S string | []byte](id S) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

func payloadSeed(h, seq uint64) uint64 {
	return h ^ (seq * 0x9e3779b97f4a7c15)
}

// splitmix is the SplitMix64 generator: it advances *st and returns the
// next pseudo-random value.
func splitmix(st *uint64) uint64 {
	*st += 0x9e3779b97f4a7c15
	z := *st
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// parseLine splits line, without its newline, into id, seq and payload. It
// checks the syntax only, not the payload's content.
func parseLine(line []byte) (id []byte, seq uint64, payload []byte, ok bool) {
	i := 0
	for i < len(line) && idByte(line[i]) {
		i++
	}
	if i == 0 || i+1+SeqDigits+1 >= len(line) || line[i] != ' ' {
		return nil, 0, nil, false
	}
	id = line[:i]
	for _, c := range line[i+1 : i+1+SeqDigits] {
		if c < '0' || c > '9' {
			return nil, 0, nil, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	if line[i+1+SeqDigits] != ' ' {
		return nil, 0, nil, false
	}
	payload = line[i+1+SeqDigits+1:]
	for _, c := range payload {
		if c < 0x21 || c > 0x7e {
			return nil, 0, nil, false
		}
	}
	return id, seq, payload, true
}
