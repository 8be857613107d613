package target

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The ledger is the durable account of what the processor committed to
// each target file it ever wrote, for `thunder verify` (verify.go): unlike
// a file record, which lives as long as the processor tracks the file, an
// entry lives until a Reopen finds its file gone from its name.
//
// Invariant: an entry's size and digest are those of the commit that last
// recorded the file's length, written in the same bbolt transaction
// (record), so recovery, which cuts a file back to that length, leaves the
// file and its entry agreeing. An entry covers the bytes [base, size): the
// file's bytes before the processor first opened it are not ours.
var (
	bucketLedger = []byte("ledger") // ledgerKey(name, serial) → ledgerRecord
	bucketChecks = []byte("checks") // checkKey(serial, offset) → digest of [base, offset)
)

// checkEvery is the spacing of checkpoints: each time a file's content
// passes another multiple of it, the digest at that append's end is
// recorded, so verify can say where a file first differs.
const checkEvery = 64 << 10

// ledgerRecord is a ledger entry.
type ledgerRecord struct {
	ID     fileID
	Base   int64  // the file's size when the processor first opened it
	Size   int64  // committed length
	Digest uint32 // digest.Update over the bytes [Base, Size)
	Lines  uint64 // newlines in [Base, Size) that the processor wrote
	Since  int64  // when the entry started, ns since the epoch: the newest of a name wins
}

// ledgerRecordV1 is the version byte of ledger records.
const ledgerRecordV1 = 1

func (r ledgerRecord) marshal() []byte {
	b := make([]byte, 0, 62+len(r.ID.Handle))
	b = append(b, ledgerRecordV1)
	b = binary.BigEndian.AppendUint64(b, r.ID.Dev)
	b = binary.BigEndian.AppendUint64(b, r.ID.Ino)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ID.Btime))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Base))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint32(b, r.Digest)
	b = binary.BigEndian.AppendUint64(b, r.Lines)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Since))
	b = append(b, byte(len(r.ID.Handle)))
	return append(b, r.ID.Handle...)
}

func unmarshalLedger(b []byte) (ledgerRecord, error) {
	if len(b) < 62 || b[0] != ledgerRecordV1 || len(b) != 62+int(b[61]) {
		return ledgerRecord{}, errors.New("target: corrupt ledger record")
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[i : i+8]) }
	r := ledgerRecord{
		ID:     fileID{Dev: u(1), Ino: u(9), Btime: int64(u(17))},
		Base:   int64(u(25)),
		Size:   int64(u(33)),
		Digest: binary.BigEndian.Uint32(b[41:45]),
		Lines:  u(45),
		Since:  int64(u(53)),
	}
	if n := int(b[61]); n > 0 {
		r.ID.Handle = bytes.Clone(b[62:])
	}
	return r, nil
}

// ledgerKey keys an entry by name and serial: a name has one entry per
// file the processor wrote under it.
func ledgerKey(name string, serial uint64) []byte {
	b := make([]byte, 0, len(name)+9)
	b = append(b, name...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, serial)
}

// parseLedgerKey returns the name and serial in a ledgerKey.
func parseLedgerKey(k []byte) (string, uint64, error) {
	if len(k) < 10 || k[len(k)-9] != 0 {
		return "", 0, errors.New("target: corrupt ledger key")
	}
	return string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

func checkKey(serial uint64, offset int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), serial)
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

// checkpoint is the digest of an entry's bytes [base, offset).
type checkpoint struct {
	offset int64
	sum    uint32
}

// ledgerState is a file's ledger entry as its appends advance it. It is
// part of file and guarded by file.mu.
type ledgerState struct {
	entry  uint64 // serial of the entry; 0: none yet
	base   int64
	since  int64
	sum    uint32       // digest of [base, size) as written through fd
	lines  uint64       // newlines written through fd since base
	next   int64        // the next checkpoint is due at an append end at or past it
	checks []checkpoint // passed since the last commit, recorded by the next
}

// nextCheck is the first multiple of checkEvery past size.
func nextCheck(size int64) int64 { return (size/checkEvery + 1) * checkEvery }

// advance accounts for an append of p, with newlines lines, that ended at
// size: the running digest is already updated.
func (l *ledgerState) advance(size int64, lines int) {
	l.lines += uint64(lines)
	if size >= l.next {
		l.checks = append(l.checks, checkpoint{size, l.sum})
		l.next = nextCheck(size)
	}
}

// startLedger gives f, whose name just opened the file described by info,
// its ledger entry: the one f wrote through its last descriptor, if this
// is that file; else the newest entry of the name that describes this file,
// not shorter than recorded, continues; otherwise a new entry starts at
// the file's size, and the entries of other files stay as evidence until
// a Reopen (pruneLedger). f.mu is held.
func (d *Dir) startLedger(f *file, info fileInfo) error {
	if f.entry != 0 && f.id.sameFile(info.id) && info.size >= f.size {
		// Reopened while a commit may still be recording what the old
		// descriptor wrote: memory is ahead of the store.
		f.next = nextCheck(info.size)
		return nil
	}
	var found *ledgerRecord
	var serial uint64
	err := d.db.View(func(tx *bolt.Tx) error {
		return forEachLedger(tx.Bucket(bucketLedger).Cursor(), f.name, func(s uint64, rec ledgerRecord) {
			if rec.ID.sameFile(info.id) && info.size >= rec.Size && (found == nil || rec.Since > found.Since) {
				found, serial = &rec, s
			}
		})
	})
	if err != nil {
		return fmt.Errorf("%w: read ledger of %s: %v", ErrStorage, f.name, err)
	}
	if found != nil {
		// Bytes past found.Size are not ours (another writer, or ours from
		// before a crash that recovery could not cut): not in the digest,
		// so verify reports them.
		f.ledgerState = ledgerState{entry: serial, base: found.Base, since: found.Since,
			sum: found.Digest, lines: found.Lines, next: nextCheck(info.size)}
		return nil
	}
	f.ledgerState = ledgerState{entry: rand.Uint64() | 1, base: info.size,
		since: time.Now().UnixNano(), next: nextCheck(info.size)}
	return nil
}

// forEachLedger calls fn for every entry of name.
func forEachLedger(c *bolt.Cursor, name string, fn func(serial uint64, rec ledgerRecord)) error {
	prefix := append([]byte(name), 0)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			continue // a longer name that starts with name and a NUL: none can
		}
		rec, err := unmarshalLedger(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fn(binary.BigEndian.Uint64(k[len(prefix):]), rec)
	}
	return nil
}

// ledgerAt is what a commit records of a file's entry: taken with the
// file's length under its lock, so the two agree.
type ledgerAt struct {
	serial uint64
	rec    ledgerRecord
	checks []checkpoint
}

// takeLedger takes f's entry for a commit of size bytes. f.mu is held.
func (f *file) takeLedger(size int64) ledgerAt {
	l := &f.ledgerState
	at := ledgerAt{serial: l.entry, checks: l.checks, rec: ledgerRecord{
		ID: f.id, Base: l.base, Size: size, Digest: l.sum, Lines: l.lines, Since: l.since,
	}}
	l.checks = nil
	return at
}

// giveBackLedger returns the checkpoints of a commit that was not
// recorded, if f still writes the same entry. f.mu is held.
func (f *file) giveBackLedger(at ledgerAt) {
	if at.serial != 0 && f.entry == at.serial {
		f.ledgerState.checks = append(at.checks, f.ledgerState.checks...)
	}
}

// putLedger records an entry and its new checkpoints in a commit's
// transaction.
func putLedger(tx *bolt.Tx, name string, at ledgerAt) error {
	if at.serial == 0 {
		return nil
	}
	if err := tx.Bucket(bucketLedger).Put(ledgerKey(name, at.serial), at.rec.marshal()); err != nil {
		return err
	}
	cb := tx.Bucket(bucketChecks)
	for _, c := range at.checks {
		if err := cb.Put(checkKey(at.serial, c.offset), binary.BigEndian.AppendUint32(nil, c.sum)); err != nil {
			return err
		}
	}
	return nil
}

// deleteLedger deletes an entry and its checkpoints.
func deleteLedger(tx *bolt.Tx, name string, serial uint64) error {
	if err := tx.Bucket(bucketLedger).Delete(ledgerKey(name, serial)); err != nil {
		return err
	}
	c := tx.Bucket(bucketChecks).Cursor()
	prefix := binary.BigEndian.AppendUint64(nil, serial)
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// ledgerEntry is an entry read from the store.
type ledgerEntry struct {
	name   string
	serial uint64
	rec    ledgerRecord
}

// ledgerEntries reads every entry in one transaction: a consistent
// snapshot of what was committed.
func (d *Dir) ledgerEntries() ([]ledgerEntry, error) {
	var entries []ledgerEntry
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			name, serial, err := parseLedgerKey(k)
			if err != nil {
				return err
			}
			rec, err := unmarshalLedger(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			entries = append(entries, ledgerEntry{name, serial, rec})
			return nil
		})
	})
	return entries, err
}

// checkpoints returns the recorded checkpoints of an entry up to size, in
// order.
func (d *Dir) checkpoints(serial uint64, size int64) ([]checkpoint, error) {
	var cps []checkpoint
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketChecks).Cursor()
		prefix := binary.BigEndian.AppendUint64(nil, serial)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != 16 || len(v) != 4 {
				return errors.New("target: corrupt checkpoint")
			}
			off := int64(binary.BigEndian.Uint64(k[8:]))
			if off > size {
				break
			}
			cps = append(cps, checkpoint{off, binary.BigEndian.Uint32(v)})
		}
		return nil
	})
	return cps, err
}

// pruneLedger drops the entries whose file is no longer at its name (the
// operator moved it and said so with a Reopen), and of those whose file is
// there, all but the newest (an older one was cut short by someone, and
// the file written again from there). commitMu is held, so no commit
// records an entry meanwhile.
func (d *Dir) pruneLedger() error {
	entries, err := d.ledgerEntries()
	if err != nil {
		return fmt.Errorf("%w: read ledger: %v", ErrStorage, err)
	}
	newest := make(map[string]ledgerEntry) // of each name, the newest entry of the file at it
	var drop []ledgerEntry
	now := make(map[string]*fileID) // the file at each name; nil if none
	for _, e := range entries {
		id, seen := now[e.name]
		if !seen {
			id = d.fileAt(e.name)
			now[e.name] = id
		}
		if id == nil || !e.rec.ID.sameFile(*id) {
			drop = append(drop, e)
			continue
		}
		if old, ok := newest[e.name]; ok {
			if old.rec.Since > e.rec.Since {
				old, e = e, old
			}
			drop = append(drop, old)
		}
		newest[e.name] = e
	}
	if len(drop) == 0 {
		return nil
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		for _, e := range drop {
			if err := deleteLedger(tx, e.name, e.serial); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: prune ledger: %v", ErrStorage, err)
	}
	d.log.Info("ledger entries of files moved away dropped", "files", len(drop))
	return nil
}

// fileAt returns the identity of the regular file at name, nil if there is
// none (or it cannot be looked at).
func (d *Dir) fileAt(name string) *fileID {
	f, err := d.tree.openRead(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	info, err := identify(f)
	if err != nil || !info.regular() {
		return nil
	}
	return &info.id
}
