package target

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Reopen makes every target file be opened afresh by name: after logrotate
// moved a file away, a new one appears at its name. Files with appends in
// progress are switched by the commit that Reopen runs, so data written
// before it lands in the old file and everything after in the new one. The
// old files' records are dropped by that commit, and so are the ledger
// entries of files no longer at their names (pruneLedger): the operator
// said it moved them.
func (d *Dir) Reopen() error {
	acks, err := d.reopen()
	deliver(acks)
	return err
}

func (d *Dir) reopen() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	for _, f := range d.allFiles() {
		f.mu.Lock()
		switch {
		case f.dirty && f.fd != nil:
			f.reopen = true
		case f.fd == nil && (len(f.behind) > 0 || f.unsynced):
			// Closed, its record kept: the commit writes and syncs it if
			// the name still holds it, else rewinds it (behind.go); the
			// next append opens the name afresh either way.
		default:
			d.closeLocked(f) // everything in it is committed
		}
		f.mu.Unlock()
	}
	acks, err := d.commitLocked()
	return acks, errors.Join(err, d.pruneLedger())
}

func (d *Dir) allFiles() []*file {
	d.mu.Lock()
	defer d.mu.Unlock()
	files := make([]*file, 0, len(d.files))
	for _, f := range d.files {
		files = append(files, f)
	}
	return files
}

// Close commits what it can, hands out its acknowledgements and releases
// the directory. Files whose content is all committed lose their records,
// so a restart after a clean stop cuts nothing.
func (d *Dir) Close() error {
	acks, err := d.close()
	deliver(acks)
	return err
}

func (d *Dir) close() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	acks, err := d.commitLocked()
	d.mu.Lock()
	d.closed = true
	d.settled.Broadcast()
	d.mu.Unlock()
	var dirty int
	for _, f := range d.allFiles() {
		f.mu.Lock()
		if f.dirty || f.broken != nil {
			if f.fd != nil {
				d.closeFD(f.fd) // cut back at the next open
				f.fd = nil
			}
			dirty++
		} else {
			d.closeLocked(f)
		}
		f.mu.Unlock()
	}
	d.pendMu.Lock()
	drops := d.drops
	d.drops = nil
	d.pendMu.Unlock()
	if d.jnl != nil {
		// A last checkpoint: then the records of the journaled files may
		// go (unless it failed: its segments are replayed at the next start).
		drops = append(d.jnl.hold(drops), d.jnl.finish()...)
	}
	if dirty > 0 {
		d.log.Warn("target files hold data that could not be committed; it is cut back at the next start and resent", "files", dirty)
	}
	derr := d.db.Update(func(tx *bolt.Tx) error { return record(tx, nil, pending{drops: drops}, nil) })
	if derr != nil {
		derr = fmt.Errorf("%w: drop file records: %v", ErrStorage, derr)
	}
	if d.jnl != nil {
		derr = errors.Join(derr, d.jnl.close())
	}
	d.reserve.release()
	return acks, errors.Join(err, derr, d.genFile.Close(), d.db.Close(), d.tree.close())
}
