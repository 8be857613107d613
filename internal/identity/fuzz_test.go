package identity_test

import (
	"bytes"
	"strings"
	"testing"

	"thunder/internal/identity"
)

// FuzzParse feeds the pin file parser arbitrary files: it never panics, and
// what it accepts is written back by Line to a file that parses the same.
func FuzzParse(f *testing.F) {
	k := bytes.Repeat([]byte{7}, identity.KeyBytes)
	f.Add([]byte("# c\n\n" + identity.Line(k, "web 1") + "\r\n"))
	f.Add([]byte(identity.Line(k, "a") + "\n" + identity.Line(k, "a")))
	f.Add([]byte("ed25519:" + strings.Repeat("A", 43) + "= x\n"))
	f.Add([]byte("ed25519:\x00 \xff\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, _, err := identity.Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out strings.Builder
		for name, key := range keys {
			if len(key) != identity.KeyBytes {
				t.Fatalf("key of %d bytes for %q", len(key), name)
			}
			if err := identity.CheckName(name); err != nil {
				t.Fatalf("accepted name: %v", err)
			}
			out.WriteString(identity.Line(key, name) + "\n")
		}
		again, _, err := identity.Parse(strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("Parse(Line(...)) = %v for %q", err, out.String())
		}
		if len(again) != len(keys) {
			t.Fatalf("round trip: %d pins, want %d", len(again), len(keys))
		}
		for name, key := range keys {
			if !bytes.Equal(again[name], key) {
				t.Fatalf("round trip of %q: %x, want %x", name, again[name], key)
			}
		}
	})
}
