package collector_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/identity"
)

// TestIdentityKeyKept: the collector makes its key on first start, keeps it
// in its offsets DB, shows it in Stats and proves it to the processor,
// which pins it (PROTOCOL.md §12).
func TestIdentityKeyKept(t *testing.T) {
	p := mustProcessor(t)
	src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
	c := mustCollector(t, baseConfig(t, src, db, p.addr))
	key := c.c.Stats().IdentityKey
	pub, err := identity.ParseKey(key)
	if err != nil {
		t.Fatalf("Stats.IdentityKey = %q: %v", key, err)
	}
	appendFile(t, filepath.Join(src, "a.log"), "one\n")
	waitTargets(t, p.dir, map[string]string{"a.log": "one\n"})
	pins, err := os.ReadFile(filepath.Join(p.dir, ".thunder", "known_collectors"))
	if err != nil || !strings.Contains(string(pins), identity.Line(pub, "host-a")+"\n") {
		t.Fatalf("pin file = %q, %v; want the line of %s", pins, err, key)
	}
	c.stop()
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("offsets db: %v, %v; want mode 0600", st, err)
	}

	// Restarted on the same DB, it is the same collector to the processor.
	c = mustCollector(t, baseConfig(t, src, db, p.addr))
	if got := c.c.Stats().IdentityKey; got != key {
		t.Fatalf("after restart: IdentityKey = %q, want %q", got, key)
	}
	appendFile(t, filepath.Join(src, "a.log"), "two\n")
	waitTargets(t, p.dir, map[string]string{"a.log": "one\ntwo\n"})
}

// TestIdentityRefusalIsAnError: a collector whose name is pinned to another
// key (a second host using the same name, or a lost offsets DB) logs the
// processor's refusal at ERROR, and sends nothing.
func TestIdentityRefusalIsAnError(t *testing.T) {
	p := mustProcessor(t)
	first := mustCollector(t, baseConfig(t, t.TempDir(), filepath.Join(t.TempDir(), "offsets.db"), p.addr))
	waitStats(t, first, func(st collector.Stats) error {
		if !st.Connected {
			return fmt.Errorf("first collector not connected")
		}
		return nil
	})
	first.stop()

	src := t.TempDir()
	appendFile(t, filepath.Join(src, "b.log"), "from an impostor\n")
	var logs harness.LockedBuffer
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	second := mustCollector(t, cfg)
	harness.WaitFor(t, waitTimeout, func() error {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "level=ERROR") && strings.Contains(l, "pinned to another key") &&
				strings.Contains(l, "delete its line from") {
				return nil
			}
		}
		return fmt.Errorf("no ERROR line with the refusal in:\n%s", logs.String())
	})
	if st := second.c.Stats(); !strings.Contains(st.LastError, "pinned to another key") {
		t.Errorf("Stats.LastError = %q, want the refusal", st.LastError)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "b.log")); err == nil {
		t.Fatal("the refused collector's file reached the target")
	}
}
