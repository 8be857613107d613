package collector_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/offsets"
)

// TestAttackBreaksKeyDBStreamedThroughSymlinkedSourceDir: the offsets DB
// holds the collector's private identity key (PROTOCOL.md §12: "the key
// never leaves the collector host"). The collector skips it only by
// comparing paths (source.go:169, path == c.dbAbs), so when the source dir
// is given through a symbolic link (a common /var/log layout) and the DB
// lives in it under its real path, or the reverse, the DB is streamed to
// the processor like a log file, with the key in it.
func TestAttackBreaksKeyDBStreamedThroughSymlinkedSourceDir(t *testing.T) {
	p := mustProcessor(t)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "logs")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(real, "offsets.db") // the DB beside the logs, by its real path
	want := map[string]string{}
	for i := range 100 { // records with random stream ids: newlines in the DB
		name := fmt.Sprintf("f%03d.log", i)
		appendFile(t, filepath.Join(real, name), "a1\n")
		want[name] = "a1\n"
	}
	c := mustCollector(t, baseConfig(t, link, db, p.addr))
	waitTargets(t, p.dir, want)
	time.Sleep(3 * time.Second) // offsets saved, a rescan or two
	c.stop()
	c = mustCollector(t, baseConfig(t, link, db, p.addr)) // a restart
	time.Sleep(3 * time.Second)
	c.stop()
	odb, err := offsets.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := odb.IdentitySeed(func() ([]byte, error) { t.Fatal("no seed"); return nil, nil })
	odb.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(p.dir, "offsets.db"))
	if err == nil {
		t.Errorf("the offsets DB (%d bytes) was streamed to the processor's target dir; contains the private key seed: %v",
			len(got), bytes.Contains(got, seed))
	}
}
