package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/relpath"
)

// Rollback. Recovery cuts each target file back to its recorded length: the
// bytes past it were never acknowledged. That holds only for the state the
// last commit left. A state store rolled back to an older copy (a backup of
// state.db restored, a snapshot of it alone) records shorter lengths than
// acknowledged, and cutting to them would destroy acknowledged lines that
// the collectors may have deleted at their source since.
//
// So every commit counts itself in the state store (a generation) and,
// once that is durable, writes the count to generationFile beside it. The
// file is written after the state, and never synced: it is never ahead of
// the state that was durable, save after a rollback. A state behind it is
// one: recovery then cuts nothing (lines past a commit may be duplicated
// when collectors resend, none is lost) and says so.

// generationFile is the last generation written, in relpath.StateDir.
const generationFile = "generation"

var (
	bucketMeta    = []byte("meta")       // keyGeneration → uint64, big-endian
	keyGeneration = []byte("generation") // the commits the state store holds
)

// openGeneration opens generationFile and reports whether the state store
// is older than it says (rolled back).
func (d *Dir) openGeneration() (rolledBack bool, stateGen, fileGen uint64, err error) {
	// Not through a link: each commit writes it.
	name := path.Join(relpath.StateDir, generationFile)
	f, err := d.tree.openStateFile(name)
	if err != nil {
		return false, 0, 0, fmt.Errorf("open %s: %w", name, err)
	}
	var b [8]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return false, 0, 0, fmt.Errorf("read %s: %w", name, err)
	}
	if n == len(b) {
		fileGen = binary.BigEndian.Uint64(b[:])
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		stateGen = readGeneration(tx)
		return nil
	})
	if err != nil {
		f.Close()
		return false, 0, 0, err
	}
	d.genFile = f
	return fileGen > stateGen, stateGen, fileGen, nil
}

// caughtUp ends the recovery of a rolled-back state: it drops every file
// record (none can be trusted) and raises the state's generation to gen,
// the file's, in one transaction. From then on the records are written
// afresh and a crash cuts them as usual; a state behind gen, such as the
// same old copy restored again, is still seen.
func (d *Dir) caughtUp(gen uint64) error {
	err := d.db.Update(func(tx *bolt.Tx) error {
		if err := dropRecords(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyGeneration, binary.BigEndian.AppendUint64(nil, gen))
	})
	return err
}

func readGeneration(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyGeneration); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// countCommit adds the commit of tx to the state store's generation and
// returns it.
func countCommit(tx *bolt.Tx) (uint64, error) {
	gen := readGeneration(tx) + 1
	return gen, tx.Bucket(bucketMeta).Put(keyGeneration, binary.BigEndian.AppendUint64(nil, gen))
}

// wroteGeneration writes gen, durable in the state store, to
// generationFile. A failure only leaves it behind: a rollback past it goes
// unseen, none is seen that did not happen. commitMu is held.
func (d *Dir) wroteGeneration(gen uint64) {
	if _, err := d.genFile.WriteAt(binary.BigEndian.AppendUint64(nil, gen), 0); err != nil && !d.genFailed {
		d.genFailed = true
		d.log.Warn("cannot write the commit generation; a state store rolled back to an older copy may go unseen", "err", err)
	}
}
