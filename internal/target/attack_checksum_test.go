//go:build linux

package target_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/digest"
	"thunder/internal/harness"
	"thunder/internal/stream"
	"thunder/internal/target"
)

// rewriteLegacyStream rewrites k's stream record in a closed Dir's state
// store in the format of the processor before the digest (the first
// version: committed(8) name), as an upgraded processor finds it.
func rewriteLegacyStream(t *testing.T, dir string, k stream.Key) {
	t.Helper()
	db, err := bolt.Open(statePath(dir), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sk := append(append([]byte(nil), k.ID[:]...), k.Collector...)
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("streams"))
		v := b.Get(sk)
		if len(v) < 22 || v[8] != 0 || v[9] != 2 {
			t.Fatalf("stream record %x is not v2", v)
		}
		old := binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(v[:8]))
		old = append(old, v[22:]...)
		return b.Put(sk, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAttackLegacyRecordDigest: after an upgrade, a stream whose record is
// of the first version (no digest) is read with digest 0 (state.go
// unmarshalStream), and the running digest continues from 0 at the
// committed offset C. So Opened.committed_digest says D(C) = 0 and every
// later Ack carries CRC-32C(bytes after C) instead of the §13 D(X) =
// CRC-32C(everything the target holds of the stream below X). The
// collector, which knows its D (it can compute it from the source file,
// and sends it in Open.acked_digest), sees a mismatch on every Ack of
// every stream that existed before the upgrade, forever; by §13 it then
// never deletes those source files after rotation (disk fills) and
// reports all of them on /healthz. The collector's own correct digest is
// offered in Open.acked_digest at exactly C and ignored.
//
// Fix: record "digest unknown" for a legacy record (a flag, not 0); when
// the collector opens it with acked = C, adopt acked_digest (the bytes
// below C are the collector's to vouch for, as for acked > offset); when
// acked < C, the processor cannot know D(C): say so on the wire (a
// "digest unknown" field the collector treats as no claim) rather than
// send a wrong one, until a later Open realigns it.
func TestAttackLegacyRecordDigest(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o)
	p1 := lines("before the upgrade", 0, 10)
	mustAppend(t, d, s, o, 0, p1)
	mustCommit(t, d)
	s.Detach(o)
	mustClose(t, d)
	rewriteLegacyStream(t, dir, k) // as the previous release wrote it

	d = mustOpen(t, dir)
	// The collector knows its digest at its acknowledged offset and sends it.
	acked := stream.Mark{Offset: uint64(len(p1)), Digest: digest.Checksum([]byte(p1))}
	s, at, done, err := d.Attach(k, mustName(t, "x.log"), acked, o)
	if err != nil {
		t.Fatal(err)
	}
	if done != acked || at != acked {
		t.Errorf("Opened after the upgrade: offset %+v, committed %+v; the target holds %d bytes of the stream whose D is %08x", at, done, len(p1), acked.Digest)
	}
	p2 := lines("after the upgrade", 0, 10)
	mustAppend(t, d, s, o, at.Offset, p2)
	acks := mustCommit(t, d)
	a, ok := ackFor(t, acks, s)
	want := digest.Checksum([]byte(p1 + p2))
	if got := readFile(t, dir+"/x.log"); got != p1+p2 {
		t.Fatalf("target holds %q", got)
	}
	if !ok || a.At.Digest != want {
		t.Errorf("Ack at %d carries digest %08x; CRC-32C of what the target holds of the stream is %08x", a.At.Offset, a.At.Digest, want)
	}
	mustClose(t, d)
}

// TestAttackDigestAcrossFailedFsync (held; a passing guard): a commit
// whose fsync fails rewinds the file and the stream, digest included;
// a stream renamed while that commit is pending continues under the new
// name from the committed mark; after the fault, the resend is acked with
// the CRC-32C of exactly what the target holds of the stream, also after a
// crash and restart.
func TestAttackDigestAcrossFailedFsync(t *testing.T) {
	dir, fillBacking, freeBacking := failingExt4Free(t)
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "one.log", 0, o)
	a := lines("committed", 0, 200)
	end := mustAppend(t, d, s, o, 0, a)
	mustCommit(t, d)
	fillBacking()
	b := lines(strings.Repeat("dirty", 20), 0, 40000)
	mustAppend(t, d, s, o, end, b)
	// Rename while b is pending: Attach waits for the commit that settles it.
	type res struct {
		s        *target.Stream
		at, done stream.Mark
		err      error
	}
	got := make(chan res, 1)
	o2 := &owner{"c2"}
	go func() {
		s, at, done, err := d.Attach(k, mustName(t, "two.log"), stream.Mark{}, o2)
		got <- res{s, at, done, err}
	}()
	var cerr error
	for i := 0; i < 50 && cerr == nil; i++ {
		_, cerr = d.Commit()
	}
	if cerr == nil {
		t.Skip("fsync did not fail on the full backing store")
	}
	var r res
	harness.WaitFor(t, 10*time.Second, func() error {
		select {
		case r = <-got:
			return nil
		default:
			_, _ = d.Commit()
			return errors.New("Attach under the new name still waits")
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.at != mark(a) || r.done != mark(a) {
		t.Fatalf("renamed after the failed fsync: at %+v done %+v, want both %+v", r.at, r.done, mark(a))
	}
	freeBacking()
	end2 := mustAppend(t, d, r.s, o2, end, b)
	var ack target.Ack
	harness.WaitFor(t, 10*time.Second, func() error {
		acks, err := d.Commit()
		if a, ok := ackFor(t, acks, r.s); ok {
			ack = a
			return nil
		}
		return fmt.Errorf("no ack yet (%v)", err)
	})
	if want := (stream.Mark{Offset: end2, Digest: digest.Checksum([]byte(a + b))}); ack.At != want {
		t.Errorf("ack %+v, want %+v", ack.At, want)
	}
	if one, two := readFile(t, filepath.Join(dir, "one.log")), readFile(t, filepath.Join(dir, "two.log")); one != a || two != b {
		t.Errorf("one.log %d bytes, two.log %d bytes; want %d, %d", len(one), len(two), len(a), len(b))
	}
	crash(t, d, dir)
	d = mustOpen(t, dir)
	if _, at, done, err := d.Attach(k, mustName(t, "two.log"), stream.Mark{}, &owner{"c3"}); err != nil || at != ack.At || done != ack.At {
		t.Errorf("after restart: at %+v done %+v %v, want %+v", at, done, err, ack.At)
	}
}
