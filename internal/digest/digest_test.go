package digest

import (
	"math/rand/v2"
	"testing"
)

func TestCombineIsUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a := make([]byte, r.IntN(300))
		b := make([]byte, r.IntN(40000))
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want := Update(Checksum(a), b)
		if got := Extend(Checksum(a), Checksum(b), b); got != want {
			t.Fatalf("Extend(%d bytes, %d bytes) = %08x, want %08x", len(a), len(b), got, want)
		}
		if got := Combine(Checksum(a), Checksum(b), int64(len(b))); got != want {
			t.Fatalf("Combine(%d bytes, %d bytes) = %08x, want %08x", len(a), len(b), got, want)
		}
	}
}

func TestCombineLong(t *testing.T) {
	b := make([]byte, 5<<20)
	for i := range b {
		b[i] = byte(i * 7)
	}
	d := Checksum([]byte("head\n"))
	if got, want := Combine(d, Checksum(b), int64(len(b))), Update(d, b); got != want {
		t.Fatalf("Combine over 5 MiB = %08x, want %08x", got, want)
	}
	if got := Combine(d, Checksum(nil), 0); got != d {
		t.Fatalf("Combine with nothing = %08x, want %08x", got, d)
	}
}

// The check value of CRC-32C (RFC 3720 appendix B.4): PROTOCOL §13 names it.
func TestCheckValue(t *testing.T) {
	if got := Checksum([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("CRC-32C(123456789) = %08x, want e3069283", got)
	}
}

func BenchmarkCombine(b *testing.B) {
	for i := range b.N {
		Combine(uint32(i), 0x1234, 1<<20+int64(i&1023))
	}
}
