package target

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/relpath"
)

// recover cuts each recorded target file back to its committed length, then
// drops the records: the next open of a name records it afresh.
//
// Only a file proven to be the one recorded is cut (fileID.sameFile: same
// inode and the same file handle, which changes when an inode is reused),
// and it is reached without following links, so nothing else is ever cut,
// the state least of all:
//   - the file at the name is the recorded one: cut it if it is longer;
//   - the name holds another file or none: logrotate may have moved the
//     recorded file away; a file in the same directory that is the
//     recorded one is cut;
//   - otherwise (deleted, replaced by a file that reused its inode) nothing
//     is cut.
//
// A record that can prove nothing (written by a version before identities
// were recorded, or on a file system with neither file handles nor birth
// times) cuts nothing: at worst collectors resend lines that are already
// there, which duplicates them; acknowledged lines are never lost.
func (d *Dir) recover() error {
	rolledBack, stateGen, fileGen, err := d.openGeneration()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	entries, err := d.fileRecords()
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	// What the journal holds goes back into the files first, then they are
	// cut back; the segments go once that is durable (journal.go).
	segs, next, err := d.replayJournal(entries)
	if err != nil {
		return err
	}
	d.jnlNext = next
	if rolledBack {
		if len(entries) > 0 {
			d.log.Error("the state store is older than the last commit made (restored from an older copy?): no target file is cut back, so nothing acknowledged is lost; lines written after the last commit may be duplicated when collectors resend",
				"state_generation", stateGen, "last_generation", fileGen, "files", len(entries))
		}
		if err := d.caughtUp(fileGen); err != nil {
			return err
		}
		d.removeSegments(segs)
		return nil
	}
	// Two records may name one file whatever the segments: a checkpoint
	// removes them before the drops it held reach the state (journal.go).
	longest := longestRecords(entries)
	unproven, deferred, err := d.cutAll(entries, longest)
	if err != nil {
		return err
	}
	if unproven > 0 {
		d.log.Warn("some target files could not be proven to be the ones recorded and were not cut back; lines past their committed length may be duplicated when collectors resend", "files", unproven)
	}
	// The cuts are durable before the records go: a crash after that
	// would bring back tails that no record cuts any more. syncfs also
	// reports a write error of the file system that no one saw yet, maybe
	// not of ours: then each file is fsynced, which reports its own.
	if len(deferred) > 0 {
		if err := syncfs(int(d.tree.root.Fd())); err != nil {
			d.log.Warn("recover: syncfs of the target file system failed; fsyncing the recorded files one by one", "files", len(deferred), "err", err)
			if err := d.fsyncFound(deferred); err != nil {
				return err
			}
		}
	}
	// Records go before the segments: a crash between leaves segments no
	// record replays into, where the other way round it left records cut
	// one by one with the segments that made them agree gone.
	if len(entries) > 0 {
		if err := d.db.Update(dropRecords); err != nil {
			return err
		}
	}
	d.removeSegments(segs)
	return nil
}

// cutAll cuts every recorded file back to its committed length (cutBack),
// and returns how many could not be proven the ones recorded, and those
// left for the caller's syncfs.
func (d *Dir) cutAll(entries []recordEntry, longest func(fileID, int64) int64) (unproven int, deferred []recordEntry, err error) {
	missing := 0
	for _, e := range entries {
		if _, err := relpath.Clean(e.name); err != nil {
			d.log.Warn("state records a name no stream can have; not cut", "name", e.name)
			continue
		}
		if e.rec.Legacy || !e.rec.ID.provable() {
			unproven++
			continue
		}
		f, err := d.findRecorded(e.name, e.rec.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("recover %s: %w", e.name, err)
		}
		if f == nil {
			missing++
			continue
		}
		later, err := d.cutBack(f, longest(e.rec.ID, e.rec.Size))
		f.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("recover %s: %w", f.Name(), err)
		}
		if later {
			deferred = append(deferred, e)
		}
	}
	if missing > 0 {
		d.log.Info("some recorded target files were not found where recorded (deleted, moved to another directory, or on a file system below the target dir whose device number changed); not cut", "files", missing)
	}
	return unproven, deferred, nil
}

// fsyncFound fsyncs the recorded files cutAll found, when their syncfs
// failed. One not found again fails the start: its cut may not be on disk,
// and the records must stay for the next start to cut it again.
func (d *Dir) fsyncFound(found []recordEntry) error {
	for _, e := range found {
		f, err := d.findRecorded(e.name, e.rec.ID)
		if err == nil && f == nil {
			err = errors.New("found before syncfs failed, not found again to fsync it")
		}
		if err != nil {
			return fmt.Errorf("recover %s: %w", e.name, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("recover %s: fsync: %w", e.name, err)
		}
	}
	return nil
}

// longestRecords returns, for a recorded file, the longest length any
// record of it gives: two records may name one file (its name's, and a
// name it was renamed to, while the old record waits for a journal
// checkpoint), and all up to the longest is committed.
func longestRecords(entries []recordEntry) func(id fileID, size int64) int64 {
	byIno := make(map[[2]uint64][]fileRecord)
	for _, e := range entries {
		k := [2]uint64{e.rec.ID.Dev, e.rec.ID.Ino}
		byIno[k] = append(byIno[k], e.rec)
	}
	return func(id fileID, size int64) int64 {
		for _, r := range byIno[[2]uint64{id.Dev, id.Ino}] {
			if r.ID.sameFile(id) {
				size = max(size, r.Size)
			}
		}
		return size
	}
}

// dropRecords deletes every file record: the next open of a name records
// it afresh.
func dropRecords(tx *bolt.Tx) error {
	b := tx.Bucket(bucketFiles)
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

type recordEntry struct {
	key  []byte
	name string
	rec  fileRecord
}

func (d *Dir) fileRecords() ([]recordEntry, error) {
	var entries []recordEntry
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			name, err := parseFileKey(k)
			if err != nil {
				return err
			}
			rec, err := unmarshalFile(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			entries = append(entries, recordEntry{bytes.Clone(k), name, rec})
			return nil
		})
	})
	return entries, err
}

// cutBack truncates f to size if it is longer, and makes its length
// durable: it fsyncs f, unless f is on the target's file system where
// syncfs reports errors; then it reports that the caller syncs it with the
// others (one syncfs for a restart that cuts thousands, not an fsync each).
// A file found no longer is synced too: a start that cut it and then failed
// to sync left the cut in the page cache only.
func (d *Dir) cutBack(f *os.File, size int64) (later bool, err error) {
	info, err := statFD(int(f.Fd()))
	if err != nil {
		return false, err
	}
	if info.size > size {
		if err := f.Truncate(size); err != nil {
			return false, err
		}
		d.log.Info("target file cut back to committed length", "name", f.Name(), "size", size, "bytes", info.size-size)
	} // else not longer; or someone truncated it: leave it
	if d.syncfs && info.id.Dev == d.fsDev {
		return true, nil
	}
	return false, f.Sync()
}

// findRecorded opens, for writing, the file recorded as name with
// identity id: the file at name, or one beside it. It returns nil if
// neither is provably that file.
func (d *Dir) findRecorded(name string, id fileID) (*os.File, error) {
	f, _, err := d.tree.openFile(name, 0, false, 0)
	switch {
	case err == nil:
		if d.isRecorded(f, id) {
			return f, nil
		}
		f.Close()
	case errors.Is(err, ErrName), errors.Is(err, fs.ErrNotExist):
	default:
		// Not a file we can cut (read-only, immutable, busy): if it is the
		// recorded one, its uncommitted tail stays and may be resent; a
		// stranger's file must not keep the processor from starting.
		d.log.Warn("cannot open a recorded target file to check it; not cut", "name", name, "err", err)
	}
	dir, err := d.tree.openParent(name)
	if err != nil {
		if !errors.Is(err, ErrName) && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("cannot open the directory of a recorded target file; not cut", "name", name, "err", err)
		}
		return nil, nil
	}
	defer dir.Close()
	ents, err := dir.ReadDir(-1)
	if err != nil {
		d.log.Warn("cannot read the directory of a recorded target file; not cut", "name", name, "err", err)
		return nil, nil
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f := d.tree.openEntry(dir, path.Dir(name), e.Name(), id.Ino)
		if f == nil {
			continue
		}
		if d.isRecorded(f, id) {
			return f, nil
		}
		f.Close()
	}
	return nil, nil
}

// isRecorded reports whether f is provably the file with identity id, and
// not the state.
func (d *Dir) isRecorded(f *os.File, id fileID) bool {
	info, err := identify(f)
	return err == nil && info.regular() && info.id.sameFile(id) &&
		!info.id.sameInode(d.stateDB) && !info.id.sameInode(d.tree.state)
}
