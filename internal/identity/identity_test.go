package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"thunder/internal/identity"
)

func mustKey(t testing.TB) ([]byte, []byte) {
	t.Helper()
	seed, err := identity.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return seed, identity.Public(priv)
}

func TestSignVerify(t *testing.T) {
	seed, pub := mustKey(t)
	priv, _ := identity.FromSeed(seed)
	_, other := mustKey(t)
	ch, err := identity.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	ch2, _ := identity.NewChallenge()
	sig := identity.Sign(priv, ch, nil, "web-1")
	tests := []struct {
		name      string
		key, ch   []byte
		collector string
		sig       []byte
		want      bool
	}{
		{"good", pub, ch, "web-1", sig, true},
		{"other name", pub, ch, "web-2", sig, false},
		{"name prefix", pub, ch, "web-", sig, false},
		{"other challenge", pub, ch2, "web-1", sig, false},
		{"other key", other, ch, "web-1", sig, false},
		{"short key", pub[:31], ch, "web-1", sig, false},
		{"short challenge", pub, ch[:31], "web-1", sig, false},
		{"short signature", pub, ch, "web-1", sig[:63], false},
		{"no signature", pub, ch, "web-1", nil, false},
	}
	for _, tt := range tests {
		if got := identity.Verify(tt.key, tt.ch, nil, tt.collector, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestKeyText(t *testing.T) {
	_, pub := mustKey(t)
	s := identity.FormatKey(pub)
	got, err := identity.ParseKey(s)
	if err != nil || string(got) != string(pub) {
		t.Fatalf("ParseKey(%q) = %x, %v; want %x", s, got, err, pub)
	}
	for _, bad := range []string{"", "ed25519:", "rsa:" + s[8:], s[:len(s)-2], s + "AA==", strings.ToUpper(s)} {
		if _, err := identity.ParseKey(bad); !errors.Is(err, identity.ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	_, k1 := mustKey(t)
	_, k2 := mustKey(t)
	good := "# comment\n\n   \n  # indented comment\n" +
		identity.Line(k1, "web 1 with spaces") + "\r\n" + identity.Line(k2, "db-2")
	keys, _, err := identity.Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || string(keys["web 1 with spaces"]) != string(k1) || string(keys["db-2"]) != string(k2) {
		t.Fatalf("Parse = %v", keys)
	}
	for _, bad := range []string{
		identity.FormatKey(k1),       // no name
		identity.FormatKey(k1) + " ", // empty name
		"ed25519:AAAA web",           // short key
		identity.Line(k1, "bad\x01name"),
		identity.Line(k1, strings.Repeat("n", 256)),
	} {
		if _, _, err := identity.Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q) = nil error", bad)
		}
	}
	huge := strings.Repeat("#\n", identity.MaxFileBytes/2+1)
	if _, _, err := identity.Parse(strings.NewReader(huge)); err == nil {
		t.Errorf("Parse of %d bytes = nil error, want too large", len(huge))
	}
}

func TestPinsPersistAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_collectors")
	p, err := identity.OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v, %v; want mode 0600", st, err)
	}
	_, k1 := mustKey(t)
	_, k2 := mustKey(t)
	if _, err := p.Check("web-1", k1, false); !errors.Is(err, identity.ErrUnknown) {
		t.Fatalf("Check(unknown, no add) = %v, want ErrUnknown", err)
	}
	if added, err := p.Check("web-1", k1, true); !added || err != nil {
		t.Fatalf("Check(new) = %v, %v; want pinned", added, err)
	}
	if added, err := p.Check("web-1", k1, true); added || err != nil {
		t.Fatalf("Check(same key) = %v, %v; want accepted", added, err)
	}
	if _, err := p.Check("web-1", k2, true); !errors.Is(err, identity.ErrMismatch) {
		t.Fatalf("Check(other key) = %v, want ErrMismatch", err)
	}
	// A new process reads the same pins.
	p2, err := identity.OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Check("web-1", k2, true); !errors.Is(err, identity.ErrMismatch) {
		t.Fatalf("after reopen: Check(other key) = %v, want ErrMismatch", err)
	}
	// The operator deletes the line (leaving a last line without newline):
	// the reload forgets the pin and the new key is pinned.
	if err := os.WriteFile(path, []byte("# emptied"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p2.Reload(); err != nil {
		t.Fatal(err)
	}
	if added, err := p2.Check("web-1", k2, true); !added || err != nil {
		t.Fatalf("after reload: Check(new key) = %v, %v; want pinned", added, err)
	}
	b, _ := os.ReadFile(path)
	if want := "# emptied\n" + identity.Line(k2, "web-1") + "\n"; string(b) != want {
		t.Fatalf("pin file = %q, want %q", b, want)
	}
	// A broken file keeps the pins in force.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p2.Reload(); err == nil {
		t.Fatal("Reload of a broken file: nil error")
	}
	if _, err := p2.Check("web-1", k1, true); !errors.Is(err, identity.ErrMismatch) {
		t.Fatalf("after a failed reload: Check = %v, want ErrMismatch", err)
	}
}

func TestPinsRace(t *testing.T) {
	p, err := identity.OpenPins(filepath.Join(t.TempDir(), "pins"))
	if err != nil {
		t.Fatal(err)
	}
	keys := make([][]byte, 8)
	for i := range keys {
		_, keys[i] = mustKey(t)
	}
	var wg sync.WaitGroup
	results := make([]error, len(keys))
	for i := range keys {
		wg.Go(func() { _, results[i] = p.Check("new-host", keys[i], true) })
	}
	wg.Wait()
	var ok int
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, identity.ErrMismatch):
			t.Errorf("Check = %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d racing keys accepted, want 1", ok, len(keys))
	}
}

func TestMemoryPins(t *testing.T) {
	p, err := identity.OpenPins("")
	if err != nil {
		t.Fatal(err)
	}
	_, k1 := mustKey(t)
	_, k2 := mustKey(t)
	if added, err := p.Check("h", k1, true); !added || err != nil {
		t.Fatalf("Check = %v, %v", added, err)
	}
	if _, err := p.Check("h", k2, true); !errors.Is(err, identity.ErrMismatch) {
		t.Fatalf("Check(other key) = %v, want ErrMismatch", err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
}

// tlsPair returns both ends of a TLS connection over a pipe, handshaken.
func tlsPair(t *testing.T, cert tls.Certificate) (client, server *tls.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	client = tls.Client(a, &tls.Config{InsecureSkipVerify: true}) // the test is about the binding, not the cert
	server = tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	errs := make(chan error, 1)
	go func() { errs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return client, server
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "p"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"p"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestBindingStopsRelays: on TLS both ends of a connection compute the same
// binding and any other connection a different one, so a Proof a relay got
// signed on its connection with the collector does not verify on its
// connection with the processor.
func TestBindingStopsRelays(t *testing.T) {
	cert := selfSigned(t)
	collectorSide, relayServer := tlsPair(t, cert) // collector -> relay
	relayClient, processorSide := tlsPair(t, cert) // relay -> processor
	b := func(c net.Conn) []byte {
		t.Helper()
		x, err := identity.Binding(c)
		if err != nil || len(x) != identity.BindingBytes {
			t.Fatalf("Binding = %x, %v", x, err)
		}
		return x
	}
	if !bytes.Equal(b(collectorSide), b(relayServer)) || !bytes.Equal(b(relayClient), b(processorSide)) {
		t.Fatal("the two ends of one TLS connection disagree on the binding")
	}
	priv, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := identity.NewChallenge()
	sig := identity.Sign(priv, ch, b(collectorSide), "web-1") // the processor's challenge, relayed
	if identity.Verify(identity.Public(priv), ch, b(processorSide), "web-1", sig) {
		t.Error("a proof signed on the collector's connection to a relay verifies on the relay's connection to the processor")
	}
	if !identity.Verify(identity.Public(priv), ch, b(relayServer), "web-1", sig) {
		t.Error("a proof does not verify on its own connection")
	}
	if got, _ := identity.Binding(&net.TCPConn{}); got != nil {
		t.Errorf("Binding of a plain connection = %x, want nil", got)
	}
}

// A name pinned twice (the operator added its line while a first contact
// pinned it) keeps the first line and is reported, never refusing to load.
func TestParseDuplicates(t *testing.T) {
	_, k1 := mustKey(t)
	_, k2 := mustKey(t)
	in := identity.Line(k1, "a") + "\n" + identity.Line(k2, "a") + "\n" + identity.Line(k1, "b") + "\n" + identity.Line(k1, "b") + "\n"
	keys, dups, err := identity.Parse(strings.NewReader(in))
	if err != nil || !bytes.Equal(keys["a"], k1) || !bytes.Equal(keys["b"], k1) || len(dups) != 1 {
		t.Fatalf("Parse = %v, %v, %v; want a → first key, one duplicate reported", keys, dups, err)
	}
	if !strings.Contains(dups[0], `"a"`) || !strings.Contains(dups[0], "line 1 holds") {
		t.Errorf("duplicate = %q", dups[0])
	}
}

// C1 controls (terminal escapes) are no part of a collector name.
func TestCheckNameC1(t *testing.T) {
	for _, n := range []string{"web-1\u009b1A", "x\u0085", "\u007f"} {
		if identity.CheckName(n) == nil {
			t.Errorf("CheckName(%q) = nil", n)
		}
	}
	if err := identity.CheckName("café 1"); err != nil {
		t.Errorf("CheckName(café 1) = %v", err)
	}
}

// A pin file an operator deleted without a SIGHUP is written back whole at
// the next first contact, so a restart does not forget every pin.
func TestPinFileDeletedRecreatedWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins")
	p, err := identity.OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	_, k1 := mustKey(t)
	_, k2 := mustKey(t)
	if _, err := p.Check("a", k1, true); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Check("b", k2, true); err != nil {
		t.Fatal(err)
	}
	p2, err := identity.OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Len() != 2 {
		t.Errorf("after the file was deleted and a new name pinned, the file holds %d pins, want 2", p2.Len())
	}
}
