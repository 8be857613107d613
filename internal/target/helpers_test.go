package target_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/digest"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/target"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mustOpen opens a Dir on dir and closes it at the end of the test. A second
// Close after an explicit one is harmless and its error is ignored.
func mustOpen(t testing.TB, dir string) *target.Dir {
	t.Helper()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { _ = d.Close() }) // may already be closed by the test
	return d
}

func mustClose(t testing.TB, d *target.Dir) []target.Ack {
	t.Helper()
	acks, err := target.CloseAcks(d)
	if err != nil {
		t.Fatalf("Close() = %v", err)
	}
	return acks
}

func mustCommit(t testing.TB, d *target.Dir) []target.Ack {
	t.Helper()
	acks, err := d.Commit()
	if err != nil {
		t.Fatalf("Commit() = %v", err)
	}
	return acks
}

// key returns a deterministic stream key.
func key(collector string, n int) stream.Key {
	var id stream.ID
	copy(id[:], fmt.Sprintf("id-%013d", n))
	return stream.Key{Collector: collector, ID: id}
}

// owner is a connection token; each new(owner) is distinct. The tests
// look at acknowledgements in what Commit returns.
type owner struct{ name string }

func (*owner) Committed(stream.Mark) {}

// mustName is name as Clean makes it.
func mustName(t testing.TB, name string) relpath.Name {
	t.Helper()
	n, err := relpath.Clean(name)
	if err != nil {
		t.Fatalf("Clean(%q) = %v", name, err)
	}
	return n
}

// attachAt is Attach for a collector that knows no digests, in offsets.
func attachAt(d *target.Dir, k stream.Key, name relpath.Name, acked uint64, o stream.Owner) (*target.Stream, uint64, uint64, error) {
	s, at, done, err := d.Attach(k, name, stream.Mark{Offset: acked}, o)
	return s, at.Offset, done.Offset, err
}

// chunk is the data frame for [offset, end) with payload p.
func chunk(offset, end uint64, p []byte) stream.Chunk {
	return stream.Chunk{Offset: offset, End: end, Payload: p, Sum: digest.Checksum(p), Lines: bytes.Count(p, []byte{'\n'})}
}

func mustAttach(t testing.TB, d *target.Dir, k stream.Key, name string, acked uint64, o stream.Owner) (s *target.Stream, offset, committed uint64) {
	t.Helper()
	s, offset, committed, err := attachAt(d, k, mustName(t, name), acked, o)
	if err != nil {
		t.Fatalf("Attach(%s, %q, %d) = %v", k, name, acked, err)
	}
	return s, offset, committed
}

// mustAppend appends p at offset (source offsets equal byte counts) and
// returns the new end.
func mustAppend(t testing.TB, d *target.Dir, s *target.Stream, o stream.Owner, offset uint64, p string) uint64 {
	t.Helper()
	end := offset + uint64(len(p))
	if err := s.Append(o, chunk(offset, end, []byte(p))); err != nil {
		t.Fatalf("Append(%s, %d, %q) = %v", s.Key, offset, p, err)
	}
	return end
}

// lines returns n newline-terminated lines "prefix i".
func lines(prefix string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Size()
}

// ackFor returns the ack for s, failing if there are several.
func ackFor(t testing.TB, acks []target.Ack, s *target.Stream) (target.Ack, bool) {
	t.Helper()
	var found []target.Ack
	for _, a := range acks {
		if a.Stream == s {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return target.Ack{}, false
	case 1:
		return found[0], true
	default:
		t.Fatalf("%d acks for stream %s: %v", len(found), s.Key, found)
		return target.Ack{}, false
	}
}

func statePath(dir string) string { return filepath.Join(dir, relpath.StateDir, "state.db") }

func generationPath(dir string) string { return filepath.Join(dir, relpath.StateDir, "generation") }

// crash simulates kill -9 of the processor at this moment: the target files
// keep their inodes and everything appended, the state store keeps only what
// was recorded so far. It copies the state store, closes d (which commits),
// and puts the copy back. (Copying the whole tree with cp -a would give every
// file a new inode, which recovery rightly does not trust.) No Commit may run
// concurrently.
func crash(t testing.TB, d *target.Dir, dir string) {
	t.Helper()
	snap := snapshotState(t, dir)
	mustClose(t, d)
	restoreState(t, dir, snap)
}

// stateSnapshot is the state dir's files at one moment: the state store
// and the commit generation written beside it (generation.go).
type stateSnapshot struct{ db, gen []byte }

// snapshotState copies the state dir's files: restored, they are what a
// kill -9 at this moment leaves.
func snapshotState(t testing.TB, dir string) stateSnapshot {
	t.Helper()
	db, err := os.ReadFile(statePath(dir))
	if err != nil {
		t.Fatalf("snapshot state: %v", err)
	}
	gen, err := os.ReadFile(generationPath(dir))
	if err != nil {
		t.Fatalf("snapshot state: %v", err)
	}
	return stateSnapshot{db, gen}
}

func restoreState(t testing.TB, dir string, s stateSnapshot) {
	t.Helper()
	restoreStateDB(t, dir, s)
	if err := os.WriteFile(generationPath(dir), s.gen, 0o600); err != nil {
		t.Fatalf("restore state: %v", err)
	}
}

// restoreStateDB puts back the state store of s alone, as a restored backup
// of state.db would.
func restoreStateDB(t testing.TB, dir string, s stateSnapshot) {
	t.Helper()
	if err := os.WriteFile(statePath(dir), s.db, 0o600); err != nil {
		t.Fatalf("restore state: %v", err)
	}
}

// fileRecords reads the "files" bucket of a closed Dir's state store: name →
// inode (the highest, when a name has several). It depends on the store's layout; only recovery tests use it.
func fileRecords(t testing.TB, dir string) map[string]uint64 {
	t.Helper()
	db, err := bolt.Open(statePath(dir), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	defer db.Close()
	recs := make(map[string]uint64)
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("files"))
		if b == nil {
			return errors.New("no files bucket")
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) < 17 || v[0] != 2 {
				return fmt.Errorf("bad record %q", k)
			}
			var ino uint64
			for _, c := range v[9:17] { // version, dev, ino, ...
				ino = ino<<8 | uint64(c)
			}
			if len(k) < 10 || k[len(k)-9] != 0 {
				return fmt.Errorf("bad key %q", k)
			}
			recs[string(k[:len(k)-9])] = ino // key: name, NUL, inode
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	return recs
}
