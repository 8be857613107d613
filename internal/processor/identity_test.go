package processor_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/harness"
	"thunder/internal/identity"
	"thunder/internal/kafka"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

const sharedToken = "one-token-for-the-fleet"

// accepted connects as name with its test key and waits until the
// processor took the proof (an Open is answered only after it).
func accepted(t *testing.T, addr, name string) *client {
	t.Helper()
	c := mustDial(t, addr)
	c.handshake(name)
	c.open(1, newID(t), name+".log", 0)
	return c
}

// pinFile is where a processor on dir keeps its pins by default.
func pinFile(dir string) string { return filepath.Join(dir, ".thunder", "known_collectors") }

func otherKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// victim is a collector streaming one file through a processor.
type victim struct {
	c      *client
	id     []byte
	offset uint64
	lines  []string
}

func startVictim(t *testing.T, addr string) *victim {
	t.Helper()
	v := &victim{c: mustDial(t, addr), id: newID(t)}
	v.c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "victim-host", Token: sharedToken})
	var w wirepb.Welcome
	v.c.mustNext(wire.TypeWelcome, &w)
	v.c.prove(&w, "victim-host")
	v.c.open(1, v.id, "app.log", 0)
	v.send(t, "victim line 1\n")
	return v
}

func (v *victim) send(t *testing.T, line string) {
	t.Helper()
	v.offset = v.c.data(1, v.offset, line)
	v.c.waitAck(1, v.offset)
	v.lines = append(v.lines, line)
}

// TestTokenHolderCannotActAsPinnedCollector: PROTOCOL.md §12. A client
// with the shared token that claims the name of a pinned collector is
// refused with auth at the handshake, so it can neither append to, move
// nor close the victim's stream; the victim keeps streaming.
func TestTokenHolderCannotActAsPinnedCollector(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.Token = sharedToken })
	v := startVictim(t, srv.addr)
	attacks := []struct {
		name  string
		frame func(id []byte) []byte
	}{
		{"append forged lines", func(id []byte) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 9, StreamId: id, Name: "app.log"})
			return append(b, dataFrame(wire.TypeData, 9, uint64(len("victim line 1\n")), 1000, []byte("FORGED\n"))...)
		}},
		{"move the offset", func(id []byte) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 9, StreamId: id, Name: "app.log", Acked: 1 << 40})
			return b
		}},
		{"close done", func(id []byte) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 9, StreamId: id, Name: "app.log"})
			c, _ := wire.AppendControl(nil, wire.TypeClose, &wirepb.Close{Handle: 9, Done: true})
			return append(b, c...)
		}},
	}
	for i, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			evil := mustDial(t, srv.addr)
			evil.key = otherKey(t)
			evil.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "victim-host", Token: sharedToken})
			var w wirepb.Welcome
			evil.mustNext(wire.TypeWelcome, &w)
			evil.prove(&w, "victim-host")
			evil.write(a.frame(v.id))
			e := evil.expectError(wire.CodeAuth)
			if !strings.Contains(e.Message, "pinned to another key") {
				t.Errorf("refusal = %q, want it to say the name is pinned to another key", e.Message)
			}
			v.send(t, fmt.Sprintf("victim line %d\n", i+2))
		})
	}
	// The stream is the victim's alone: its offset, its bytes, once.
	if got, want := readFile(t, srv.dir, "app.log"), strings.Join(v.lines, ""); got != want {
		t.Fatalf("app.log = %q, want %q", got, want)
	}
	v.c.conn.Close()
	again := mustDial(t, srv.addr)
	again.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "victim-host", Token: sharedToken})
	var w wirepb.Welcome
	again.mustNext(wire.TypeWelcome, &w)
	again.prove(&w, "victim-host")
	if o := again.open(1, v.id, "app.log", 0); o.Offset != v.offset || o.Committed != v.offset {
		t.Fatalf("Opened = offset %d committed %d, want %d (the victim's)", o.Offset, o.Committed, v.offset)
	}
}

// TestPinSurvivesRestart: a pin is on disk before the connection it was
// made on is accepted, so a restarted processor still refuses another key.
func TestPinSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := mustServe(t, dir, nil)
	c := mustDial(t, srv.addr)
	c.handshake("web-1")
	c.open(1, newID(t), "a.log", 0)
	srv.stop()
	if st, err := os.Stat(pinFile(dir)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v, %v; want mode 0600", st, err)
	}
	b, _ := os.ReadFile(pinFile(dir))
	if want := identity.Line(identity.Public(testKey("web-1")), "web-1") + "\n"; !strings.HasSuffix(string(b), want) {
		t.Fatalf("pin file = %q, want it to end with %q", b, want)
	}

	srv = mustServe(t, dir, nil)
	evil := mustDial(t, srv.addr)
	evil.key = otherKey(t)
	evil.handshake("web-1")
	evil.expectError(wire.CodeAuth)
	c = mustDial(t, srv.addr)
	c.handshake("web-1")
	c.open(1, newID(t), "a.log", 0)
}

// TestMismatchMessage: the refusal tells the operator which file pins the
// name and what to do.
func TestMismatchMessage(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { c.Registerer = reg })
	accepted(t, srv.addr, "db-7")
	evil := mustDial(t, srv.addr)
	evil.key = otherKey(t)
	evil.handshake("db-7")
	e := evil.expectError(wire.CodeAuth)
	file := pinFile(srv.dir)
	for _, want := range []string{`"db-7"`, "pinned to another key in " + file,
		"if this host was reinstalled or re-keyed, delete its line from " + file + " and send SIGHUP to the processor"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("refusal = %q, want it to contain %q", e.Message, want)
		}
	}
	harness.WaitFor(t, waitTimeout, func() error {
		if got := metricValue(t, reg, "thunder_processor_refusals_total", "reason", "auth"); got != 1 {
			return fmt.Errorf("refusals_total{reason=auth} = %v, want 1", got)
		}
		return nil
	})
}

// TestKnownModeRefusesUnknownName: with --collector-identity=known only
// pinned names are accepted, and the processor logs the line to add.
func TestKnownModeRefusesUnknownName(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(t.TempDir(), "pins")
	line := identity.Line(identity.Public(testKey("web-1")), "web-1")
	if err := os.WriteFile(pins, []byte("# fleet\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs harness.LockedBuffer
	srv := mustServe(t, dir, func(c *processor.Config) {
		c.Identity = identity.ModeKnown
		c.KnownCollectors = pins
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	c := mustDial(t, srv.addr)
	c.handshake("web-1")
	c.open(1, newID(t), "a.log", 0)

	newcomer := mustDial(t, srv.addr)
	newcomer.handshake("web-2")
	e := newcomer.expectError(wire.CodeAuth)
	if !strings.Contains(e.Message, `"web-2" is not in`) {
		t.Errorf("refusal = %q", e.Message)
	}
	want := identity.Line(identity.Public(testKey("web-2")), "web-2")
	harness.WaitFor(t, waitTimeout, func() error {
		if !strings.Contains(logs.String(), want) {
			return fmt.Errorf("log does not show the line to add, %q:\n%s", want, logs.String())
		}
		return nil
	})
	if b, _ := os.ReadFile(pins); strings.Contains(string(b), "web-2") {
		t.Fatalf("known mode pinned a new name: %q", b)
	}
	if _, err := os.Stat(pinFile(dir)); err == nil {
		t.Fatal("--known-collectors given, yet the default pin file was created")
	}
	// The operator adds the line and sends SIGHUP: web-2 is accepted.
	f, err := os.OpenFile(pins, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(want + "\n")
	f.Close()
	if err := srv.p.Reopen(); err != nil {
		t.Fatal(err)
	}
	newcomer = mustDial(t, srv.addr)
	newcomer.handshake("web-2")
	newcomer.open(1, newID(t), "b.log", 0)
}

// TestReloadRekeys: deleting a host's line and reloading (SIGHUP) lets the
// host come back with a new key, which is then the only one accepted.
func TestReloadRekeys(t *testing.T) {
	srv := mustServe(t, "", nil)
	accepted(t, srv.addr, "web-1")
	newKey := otherKey(t)
	reinstalled := mustDial(t, srv.addr)
	reinstalled.key = newKey
	reinstalled.handshake("web-1")
	reinstalled.expectError(wire.CodeAuth)

	b, err := os.ReadFile(pinFile(srv.dir))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasSuffix(l, " web-1") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(pinFile(srv.dir), []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.p.Reopen(); err != nil {
		t.Fatal(err)
	}
	reinstalled = mustDial(t, srv.addr)
	reinstalled.key = newKey
	reinstalled.handshake("web-1")
	reinstalled.open(1, newID(t), "a.log", 0)
	old := mustDial(t, srv.addr)
	old.handshake("web-1")
	old.expectError(wire.CodeAuth)
}

// TestProofRequired: the frame after Welcome must be a Proof that verifies
// for the claimed name and the challenge just sent.
func TestProofRequired(t *testing.T) {
	srv := mustServe(t, "", nil)
	tests := []struct {
		name  string
		proof func(c *client, w *wirepb.Welcome) []byte
		want  wire.Code
	}{
		{"open instead", func(c *client, w *wirepb.Welcome) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: make([]byte, 16), Name: "a"})
			return b
		}, wire.CodeProtocol},
		{"undecodable", func(c *client, w *wirepb.Welcome) []byte { return rawControl(wire.TypeProof, []byte{0x0a, 0x40}) }, wire.CodeProtocol},
		{"empty signature", func(c *client, w *wirepb.Welcome) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{})
			return b
		}, wire.CodeAuth},
		{"signed for another name", func(c *client, w *wirepb.Welcome) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(testKey("host-p"), w.Challenge, nil, "host-q")})
			return b
		}, wire.CodeAuth},
		{"signed for another challenge", func(c *client, w *wirepb.Welcome) []byte {
			ch := bytes.Clone(w.Challenge)
			ch[0] ^= 1
			b, _ := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(testKey("host-p"), ch, nil, "host-p")})
			return b
		}, wire.CodeAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-p"})
			var w wirepb.Welcome
			c.mustNext(wire.TypeWelcome, &w)
			if len(w.Challenge) != identity.ChallengeBytes {
				t.Fatalf("Welcome.challenge = %x, want %d bytes", w.Challenge, identity.ChallengeBytes)
			}
			c.write(tt.proof(c, &w))
			c.expectError(tt.want)
		})
	}
	if b, _ := os.ReadFile(pinFile(srv.dir)); strings.Contains(string(b), "host-p") {
		t.Fatalf("a failed proof pinned the name: %q", b)
	}
}

func rawControl(ty wire.Type, body []byte) []byte {
	b := make([]byte, wire.HeaderBytes, wire.HeaderBytes+len(body))
	wire.PutHeader(b, ty, len(body))
	return append(b, body...)
}

// TestIdentityKeyRequired: a Hello without a key is refused unless the
// processor runs with identities off, which sends no challenge.
func TestIdentityKeyRequired(t *testing.T) {
	for _, mode := range []identity.Mode{identity.ModeTOFU, identity.ModeKnown} {
		t.Run(string(mode), func(t *testing.T) {
			srv := mustServe(t, "", func(c *processor.Config) { c.Identity = mode })
			c := mustDial(t, srv.addr)
			c.noKey = true
			c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "old-host"})
			e := c.expectError(wire.CodeAuth)
			if want := "collector sent no identity key: upgrade it, or run the processor with --collector-identity=off"; e.Message != want {
				t.Errorf("refusal = %q, want %q", e.Message, want)
			}
			c = mustDial(t, srv.addr)
			c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "old-host", IdentityKey: make([]byte, 31)})
			c.expectError(wire.CodeProtocol)
		})
	}
	t.Run("off", func(t *testing.T) {
		srv := mustServe(t, "", func(c *processor.Config) { c.Identity = identity.ModeOff })
		c := mustDial(t, srv.addr)
		c.noKey = true
		if w := c.handshake("old-host"); len(w.Challenge) != 0 {
			t.Fatalf("Welcome.challenge = %x with identities off", w.Challenge)
		}
		c.open(1, newID(t), "a.log", 0)
		if _, err := os.Stat(pinFile(srv.dir)); err == nil {
			t.Fatal("identities off, yet a pin file was created")
		}
	})
}

// TestProofCountsAsHandshake: a connection that got its Welcome but has not
// proved its name still holds a handshake slot, and is no collector yet:
// another one waits for the slot until the proof is in.
func TestProofCountsAsHandshake(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.MaxHandshakes = 1 })
	first := mustDial(t, srv.addr)
	first.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "slow"})
	var w wirepb.Welcome
	first.mustNext(wire.TypeWelcome, &w)
	if st := srv.p.Status(); len(st.Collectors) != 0 {
		t.Fatalf("Status lists %+v before it proved its name", st.Collectors)
	}
	second := mustDial(t, srv.addr)
	second.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "next"})
	harness.WaitFor(t, waitTimeout, func() error {
		if n, hs := processor.Waiting(srv.p), processor.Handshaking(srv.p); n != 1 || hs != 1 {
			return fmt.Errorf("%d waiting, %d handshaking; want 1 and 1", n, hs)
		}
		return nil
	})
	first.prove(&w, "slow")
	first.open(1, newID(t), "a.log", 0)
	if st := srv.p.Status(); len(st.Collectors) != 1 || st.Collectors[0].Name != "slow" {
		t.Fatalf("Status lists %+v, want the collector once it proved its name", st.Collectors)
	}
	second.mustNext(wire.TypeWelcome, nil) // the slot is free: its turn
}

// TestRacingClaimsOfANewName: of connections claiming a new name at once
// with different keys, exactly one is accepted.
func TestRacingClaimsOfANewName(t *testing.T) {
	srv := mustServe(t, "", nil)
	const n = 6
	clients := make([]*client, n)
	welcomes := make([]wirepb.Welcome, n)
	for i := range clients {
		clients[i] = mustDial(t, srv.addr)
		clients[i].key = otherKey(t)
		clients[i].hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "new-host"})
		clients[i].mustNext(wire.TypeWelcome, &welcomes[i])
	}
	var b []byte
	for i, c := range clients { // the proofs race on the processor
		b, _ = wire.AppendControl(b[:0], wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(c.key, welcomes[i].Challenge, nil, "new-host")})
		c.write(b)
	}
	var accepted int
	for i, c := range clients {
		c.control(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: fmt.Sprintf("r%d.log", i)})
		f, err := c.next()
		switch {
		case err != nil:
			t.Fatalf("client %d: %v", i, err)
		case f.Type == wire.TypeOpened:
			accepted++
		case f.Type == wire.TypeError:
			var e wirepb.Error
			_ = wire.Decode(f, &e)
			if wire.Code(e.Code) != wire.CodeAuth {
				t.Fatalf("client %d: refused with %s: %s", i, wire.Code(e.Code), e.Message)
			}
		default:
			t.Fatalf("client %d: got %s", i, f.Type)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of %d claims accepted, want 1", accepted, n)
	}
}

// TestKnownModeNeedsAFile: without a target dir or --known-collectors the
// pins would be in memory only, and known mode could accept no one.
func TestKnownModeNeedsAFile(t *testing.T) {
	cfg := processor.DefaultConfig()
	cfg.Kafka = &kafka.Config{Brokers: []string{"127.0.0.1:9"}}
	cfg.Identity = identity.ModeKnown
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "known needs a pin file") {
		t.Fatalf("Validate(known, Kafka only) = %v, want a pin file required", err)
	}
	cfg.KnownCollectors = filepath.Join(t.TempDir(), "pins")
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "pin file") {
		t.Fatalf("Validate(known, --known-collectors) = %v", err)
	}
}
