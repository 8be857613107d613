package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// FuzzProof feeds what a processor reads after its Welcome (§3): a frame
// that should be a Proof. Decoding never panics, and the only signature
// that verifies is the collector's own.
func FuzzProof(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, identity.SeedBytes))
	challenge := bytes.Repeat([]byte{2}, identity.ChallengeBytes)
	const name = "web-1"
	good := identity.Sign(priv, challenge, nil, name)
	for _, sig := range [][]byte{good, good[:63], nil, make([]byte, 64), append(bytes.Clone(good), 0)} {
		b, err := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: sig})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(rawFrame(wire.TypeProof, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}))
	f.Add(rawHeader(1<<31, wire.TypeProof))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := wire.NewReader(bytes.NewReader(in))
		defer r.Close()
		fr, err := r.Next()
		if err != nil || fr.Type != wire.TypeProof {
			return
		}
		var p wirepb.Proof
		if err := wire.Decode(fr, &p); err != nil {
			return
		}
		ok := identity.Verify(identity.Public(priv), challenge, nil, name, p.Signature)
		if ok != bytes.Equal(p.Signature, good) {
			t.Fatalf("Verify(%x) = %v", p.Signature, ok)
		}
	})
}
