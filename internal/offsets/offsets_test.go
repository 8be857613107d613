package offsets_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"thunder/internal/offsets"
	"thunder/internal/stream"
)

func TestPutLoadDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offsets.db")
	db, err := offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a := offsets.Record{ID: stream.NewID(), Name: "a.log", Path: "a.log", Dev: 1, Ino: 2, Fingerprint: []byte("x\n"), Acked: 42, Created: time.Unix(1, 0).UTC()}
	b := offsets.Record{ID: stream.NewID(), Name: "sub/b.log", Path: "sub/b.log.1", Rotated: true}
	if err := db.Put([]offsets.Record{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := offsets.Open(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open = %v, want in use", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Load()
	if err != nil || len(recs) != 2 {
		t.Fatalf("Load = %v, %v; want 2 records", recs, err)
	}
	for _, r := range recs {
		want := a
		if r.ID == b.ID {
			want = b
		}
		if r.ID != want.ID || r.Name != want.Name || r.Path != want.Path || r.Acked != want.Acked || r.Rotated != want.Rotated || string(r.Fingerprint) != string(want.Fingerprint) {
			t.Errorf("Load: got %+v, want %+v", r, want)
		}
	}
	if err := db.Put(nil, []stream.ID{a.ID}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := db.Load(); len(recs) != 1 || recs[0].ID != b.ID {
		t.Errorf("after delete Load = %+v, want only b", recs)
	}
}

func TestOpenUnwritable(t *testing.T) {
	_, err := offsets.Open(filepath.Join(t.TempDir(), "missing", "offsets.db"))
	if err == nil || !strings.Contains(err.Error(), "open offsets db") {
		t.Errorf("Open in missing dir = %v, want a clear error", err)
	}
}

func TestIdentitySeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offsets.db")
	// An old database, readable by all, becomes 0600 once it holds a key.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("offsets db: %v, %v; want mode 0600", st, err)
	}
	calls := 0
	gen := func() ([]byte, error) { calls++; return []byte("0123456789abcdef0123456789abcdef"), nil }
	seed, err := db.IdentitySeed(gen)
	if err != nil || string(seed) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("IdentitySeed = %q, %v", seed, err)
	}
	db.Close()
	db, err = offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := db.IdentitySeed(func() ([]byte, error) { return nil, errors.New("generated twice") })
	if err != nil || string(again) != string(seed) || calls != 1 {
		t.Fatalf("after reopen: IdentitySeed = %q, %v (%d calls); want the stored seed", again, err, calls)
	}
}

// TestDigestAndMismatchKept: a record's digest and mismatch survive a
// reopen; a record stored without them (as older collectors wrote) loads
// with no digest and no mismatch.
func TestDigestAndMismatchKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offsets.db")
	db, err := offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(5, 0).UTC()
	a := offsets.Record{ID: stream.NewID(), Name: "a.log", Path: "a.log", Acked: 42, Digest: 0xdeadbeef, HasDigest: true,
		Mismatch: &offsets.Mismatch{Offset: 40, Ours: 1, Theirs: 2, Addr: "p:1", At: at}}
	old := offsets.Record{ID: stream.NewID(), Name: "old.log", Path: "old.log", Acked: 7}
	if err := db.Put([]offsets.Record{a, old}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Load()
	if err != nil || len(recs) != 2 {
		t.Fatalf("Load = %v, %v; want 2 records", recs, err)
	}
	for _, r := range recs {
		switch r.ID {
		case a.ID:
			if !r.HasDigest || r.Digest != a.Digest || r.Mismatch == nil || *r.Mismatch != *a.Mismatch {
				t.Errorf("Load: got digest %08x (%v), mismatch %+v; want %08x, %+v", r.Digest, r.HasDigest, r.Mismatch, a.Digest, a.Mismatch)
			}
		case old.ID:
			if r.HasDigest || r.Mismatch != nil {
				t.Errorf("Load of a record without digest: HasDigest %v, Mismatch %+v; want neither", r.HasDigest, r.Mismatch)
			}
		}
	}
}
