//go:build unix

package e2e_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/identity"
	"thunder/internal/linecheck"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// victimStreamID reads the id of the stream named name from the
// collector's /status, where anyone with access to it can see it.
func victimStreamID(t *testing.T, adm, name string, running ...*Daemon) []byte {
	t.Helper()
	var id []byte
	harness.WaitFor(t, 30*time.Second, func() error {
		code, body, err := httpGet(adm, "/status")
		if err != nil || code != 200 {
			return fmt.Errorf("GET /status = %d, %v", code, err)
		}
		var st collector.Status
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		for _, s := range st.Top {
			if s.Name == name {
				id, err = hex.DecodeString(s.ID)
				return err
			}
		}
		return fmt.Errorf("no stream %s in /status", name)
	}, running...)
	return id
}

// TestImpostorWithToken: a client holding the shared token that claims a
// real collector's name (with a key of its own) cannot append forged lines
// to that collector's stream, move its offset or close it (PROTOCOL.md §12):
// each attempt is refused with auth at the handshake, and the collector's
// lines arrive exactly once with no forged line among them.
func TestImpostorWithToken(t *testing.T) {
	skipShort(t)
	base := t.TempDir()
	target, src := filepath.Join(base, "target"), filepath.Join(base, "src")
	for _, d := range []string{target, src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(base, "token")
	if err := os.WriteFile(tokenFile, []byte(hostileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcessor(t, target, "--auth-token-file="+tokenFile)
	c := startCollector(t, "victim", src, offsetsDB(t), p.Addr, append(adminArgs, "--auth-token-file="+tokenFile)...)
	const lines = 20_000
	w := startWriters(t, writerSpec{ID: "victim-a", Dir: src, Name: "a.log", Contract: linecheck.OpenWriteClose, Lines: lines, Rate: writerRate})
	waitLines(t, 30*time.Second, target, 100, p, c)
	id := victimStreamID(t, adminAddr(t, c), "a.log", p, c)
	waitLogRE(t, 10*time.Second, c, regexp.MustCompile(`msg="collector identity".*key="?ed25519:`), p, c)

	var forged []byte
	for i := range uint64(10) {
		var err error
		if forged, err = linecheck.AppendLine(forged, "forged", i, linecheck.DefaultLineBytes); err != nil {
			t.Fatal(err)
		}
	}
	attacks := []struct {
		name  string
		acked uint64
		act   func(h *hostileConn, offset uint64)
	}{
		{"append forged lines", 0, func(h *hostileConn, off uint64) {
			h.data(1, off, off+uint64(len(forged)), string(forged))
		}},
		{"move the offset past the end", 1 << 40, func(*hostileConn, uint64) {}},
		{"close the stream as done", 0, func(h *hostileConn, _ uint64) {
			h.send(wire.TypeClose, &wirepb.Close{Handle: 1, Done: true})
		}},
	}
	var accepted []string // attacks the processor let through; reported last, so the check shows their damage
	for _, a := range attacks {
		h := dialHostile(t, p.Addr, "impostor: "+a.name)
		h.collector, h.key = "victim", peer.Key("impostor")
		h.welcome()
		h.send(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: id, Name: "a.log", Acked: a.acked})
		f, err := h.r.Next()
		if err == nil && f.Type == wire.TypeOpened {
			var o wirepb.Opened
			_ = wire.Decode(f, &o)
			a.act(h, o.Offset)
			t.Logf("%s: the processor let the impostor open the victim's stream (offset %d)", a.name, o.Offset)
			accepted = append(accepted, a.name)
			_ = h.conn.Close()
			continue
		}
		if err != nil || f.Type != wire.TypeError {
			t.Fatalf("%s: got %v, %v; want an auth error", a.name, f.Type, err)
		}
		var e wirepb.Error
		if err := wire.Decode(f, &e); err != nil || wire.Code(e.Code) != wire.CodeAuth {
			t.Fatalf("%s: error %s %q, want auth", a.name, wire.Code(e.Code), e.Message)
		}
		t.Logf("%s: refused: %s", a.name, e.Message)
		h.expect(0) // then closed
	}

	expect := w.Wait()
	if len(accepted) > 0 {
		t.Errorf("the impostor was let in: %v", accepted)
	}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	waitLogRE(t, 10*time.Second, p, regexp.MustCompile(`collector refused.*code=auth.*pinned to another key`), p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	b, err := os.ReadFile(filepath.Join(target, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("forged")) {
		t.Fatal("a forged line reached the victim's file")
	}
	pins, err := os.ReadFile(filepath.Join(target, linecheck.StateDir, "known_collectors"))
	if err != nil {
		t.Fatal(err)
	}
	if want := identity.Line(identity.Public(peer.Key("impostor")), "victim"); bytes.Contains(pins, []byte(want)) {
		t.Fatalf("the impostor's key was pinned: %q", pins)
	}
}

// TestRekeyAfterSIGHUP: a host that lost its offsets DB comes back with a
// new key and is refused (an ERROR on the collector) until the operator
// deletes its line from the pin file and sends SIGHUP; then its new key is
// pinned and its lines flow, and a processor restart keeps the new pin.
func TestRekeyAfterSIGHUP(t *testing.T) {
	skipShort(t)
	target, src1, src2 := t.TempDir(), t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	first := startCollector(t, "host", src1, offsetsDB(t), p.Addr)
	appendLines(t, filepath.Join(src1, "a.log"), "old", 0, 100)
	waitTargetEqual(t, 30*time.Second, filepath.Join(target, "a.log"), seqLines(t, "old", 0, 100), p, first)
	first.Stop()

	// Reinstalled: a new offsets DB, so a new key, under the same name.
	second := startCollector(t, "host", src2, offsetsDB(t), p.Addr)
	appendLines(t, filepath.Join(src2, "b.log"), "new", 0, 100)
	waitLogRE(t, 30*time.Second, second, regexp.MustCompile(`level=ERROR.*pinned to another key.*delete its line from`), p, second)
	if _, err := os.Stat(filepath.Join(target, "b.log")); err == nil {
		t.Fatal("the re-keyed host was let in before the operator acted")
	}

	pinPath := filepath.Join(target, linecheck.StateDir, "known_collectors")
	b, err := os.ReadFile(pinPath)
	if err != nil {
		t.Fatal(err)
	}
	var kept []byte
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, " host\n") {
			kept = append(kept, line...)
		}
	}
	if err := os.WriteFile(pinPath, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	waitTargetEqual(t, 30*time.Second, filepath.Join(target, "b.log"), seqLines(t, "new", 0, 100), p, second)
	waitLog(t, 10*time.Second, p, "collector pins reloaded", 1, p, second)

	// The new key is pinned, on disk: it survives a restart.
	second.Stop()
	p.Stop()
	p.Restart()
	second.Restart()
	appendLines(t, filepath.Join(src2, "b.log"), "new", 100, 100)
	waitTargetEqual(t, 30*time.Second, filepath.Join(target, "b.log"), seqLines(t, "new", 0, 200), p, second)
	if n := len(regexp.MustCompile(`(?m) host$`).FindAll(mustRead(t, pinPath), -1)); n != 1 {
		t.Fatalf("pin file has %d lines for host, want 1:\n%s", n, mustRead(t, pinPath))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIdentityWarnings: a processor that cannot keep pins on disk (Kafka
// only, no --known-collectors), or that checks no identities, says so at
// start.
func TestIdentityWarnings(t *testing.T) {
	skipShort(t)
	p := startKafkaProcessor(t, startKafka(t), "")
	waitLogRE(t, 10*time.Second, p, regexp.MustCompile(`level=WARN.*collector pins are kept in memory only`), p)
	off := startProcessor(t, t.TempDir(), "--collector-identity=off")
	waitLogRE(t, 10*time.Second, off, regexp.MustCompile(`level=WARN.*collector identities are off`), off)
	p.Stop()
	off.Stop()
}
