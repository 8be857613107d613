// Package identity holds what proves a collector's name: its ed25519 key,
// the proof it signs in the handshake (PROTOCOL.md §3), and the
// processor's pins of collector names to keys (§12).
//
// Invariant: once a name is pinned, a processor accepts that name only
// from a peer that signed a fresh challenge with the pinned key.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Sizes on the wire (§3).
const (
	KeyBytes       = ed25519.PublicKeySize // Hello.identity_key
	SeedBytes      = ed25519.SeedSize      // what a collector stores
	SignatureBytes = ed25519.SignatureSize // Proof.signature
	ChallengeBytes = 32                    // Welcome.challenge
)

// proofContext starts every signed message, so that a signature made for
// thunder cannot be replayed as anything else, and a later version of the
// proof cannot be confused with this one.
const proofContext = "thunder-proof-v1\x00"

// keyPrefix names the algorithm in the text form of a key.
const keyPrefix = "ed25519:"

// ErrBadKey reports a key in text form that does not parse.
var ErrBadKey = errors.New("identity: bad key")

// NewSeed returns a new private key seed from crypto/rand.
func NewSeed() ([]byte, error) {
	seed := make([]byte, SeedBytes)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("identity: new key: %w", err)
	}
	return seed, nil
}

// FromSeed returns the private key for seed, or an error when seed does not
// have SeedBytes bytes.
func FromSeed(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != SeedBytes {
		return nil, fmt.Errorf("%w: seed of %d bytes, want %d", ErrBadKey, len(seed), SeedBytes)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// NewKey returns a new private key (NewSeed, FromSeed).
func NewKey() (ed25519.PrivateKey, error) {
	seed, err := NewSeed()
	if err != nil {
		return nil, err
	}
	return FromSeed(seed)
}

// Public returns the public half of priv.
func Public(priv ed25519.PrivateKey) []byte {
	return priv.Public().(ed25519.PublicKey)
}

// NewChallenge returns ChallengeBytes random bytes from crypto/rand.
func NewChallenge() ([]byte, error) {
	c := make([]byte, ChallengeBytes)
	if _, err := rand.Read(c); err != nil {
		return nil, fmt.Errorf("identity: new challenge: %w", err)
	}
	return c, nil
}

// proofMessage is what a Proof signs: proofContext || challenge ||
// len(binding) (one byte) || binding || name.
func proofMessage(challenge, binding []byte, name string) []byte {
	m := make([]byte, 0, len(proofContext)+len(challenge)+1+len(binding)+len(name))
	m = append(m, proofContext...)
	m = append(m, challenge...)
	m = append(m, byte(len(binding)))
	m = append(m, binding...)
	return append(m, name...)
}

// Sign returns the Proof signature of collector name for challenge on a
// connection with the given channel binding (Binding; nil without TLS).
func Sign(priv ed25519.PrivateKey, challenge, binding []byte, name string) []byte {
	return ed25519.Sign(priv, proofMessage(challenge, binding, name))
}

// Verify reports whether sig is the Proof signature of name for challenge
// and binding by the holder of key. Keys, challenges and signatures of the
// wrong size never verify.
func Verify(key, challenge, binding []byte, name string, sig []byte) bool {
	if len(key) != KeyBytes || len(challenge) != ChallengeBytes || len(sig) != SignatureBytes || len(binding) > 255 {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(key), proofMessage(challenge, binding, name), sig)
}

// BindingBytes is the length of a TLS channel binding.
const BindingBytes = 32

// bindingLabel is the TLS exporter label of the channel binding (RFC 5705,
// RFC 8446 §7.5).
const bindingLabel = "EXPORTER-thunder-proof-v1"

// Binding returns what ties a Proof to its connection: on TLS, keying
// material exported from the session, the same at both ends of one TLS
// connection and different on any other, so a Proof relayed by a host in
// the middle (which must run a TLS session of its own with each side)
// verifies nowhere; nil on a plain connection, where a relay cannot be told
// apart (PROTOCOL §12).
func Binding(conn net.Conn) ([]byte, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	cs := tc.ConnectionState()
	b, err := cs.ExportKeyingMaterial(bindingLabel, nil, BindingBytes)
	if err != nil {
		return nil, fmt.Errorf("identity: TLS channel binding: %w", err)
	}
	return b, nil
}

// FormatKey returns the text form of a public key: "ed25519:" and the key
// in standard base64.
func FormatKey(key []byte) string {
	return keyPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseKey parses the text form of a public key (FormatKey).
func ParseKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, keyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with %q", ErrBadKey, s, keyPrefix)
	}
	k, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(k) != KeyBytes {
		return nil, fmt.Errorf("%w: %q is not %d bytes of standard base64", ErrBadKey, s, KeyBytes)
	}
	return k, nil
}
