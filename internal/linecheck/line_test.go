package linecheck

import (
	"bytes"
	"strconv"
	"testing"
)

// appendLineByByte is appendLine as it was first written, byte by byte:
// the format the verifier reads, which the faster appendLine must keep.
func appendLineByByte(dst []byte, id string, h, seq uint64, payload int) []byte {
	dst = append(dst, id...)
	dst = append(dst, ' ')
	var digits [SeqDigits]byte
	s := strconv.AppendUint(digits[:0], seq, 10)
	for range SeqDigits - len(s) {
		dst = append(dst, '0')
	}
	dst = append(dst, s...)
	dst = append(dst, ' ')
	st := payloadSeed(h, seq)
	var r uint64
	for i := range payload {
		if i%10 == 0 {
			r = splitmix(&st)
		}
		dst = append(dst, alphabet[r&63])
		r >>= 6
	}
	return append(dst, '\n')
}

func TestAppendLineKeepsTheFormat(t *testing.T) {
	for _, id := range []string{"w", "c00042-2", "a.b_c-d"} {
		for _, lineBytes := range []int{len(id) + SeqDigits + 4, 40, 99, 100, 101, 4096} {
			for _, seq := range []uint64{0, 1, 9, 10, 12345, MaxSeq} {
				prefix := []byte("kept|")
				got, err := AppendLine(bytes.Clone(prefix), id, seq, lineBytes)
				if err != nil {
					t.Fatal(err)
				}
				want := appendLineByByte(bytes.Clone(prefix), id, idHash(id), seq, payloadBytes(id, lineBytes))
				if !bytes.Equal(got, want) {
					t.Fatalf("id %q, %d bytes, seq %d:\n got %q\nwant %q", id, lineBytes, seq, got, want)
				}
				if len(got) != len(prefix)+lineBytes {
					t.Fatalf("id %q, seq %d: %d bytes, want %d", id, seq, len(got)-len(prefix), lineBytes)
				}
			}
		}
	}
}

func BenchmarkAppendLine(b *testing.B) {
	buf := make([]byte, 0, 1000)
	b.SetBytes(DefaultLineBytes)
	for i := range b.N {
		buf, _ = AppendLine(buf[:0], "c00042-2", uint64(i), DefaultLineBytes)
	}
}
