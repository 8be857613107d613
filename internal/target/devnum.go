package target

import (
	"encoding/binary"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Device numbers are not stable across boots: NVMe, device-mapper, md and
// loop devices get theirs when probed, btrfs's anonymous ones when mounted,
// while a file's inode, handle and birth time stay. A record holds its
// file's device number (fileID.Dev), so after a boot that renumbered the
// target's file system no record would find its file: the restart would
// cut nothing (the resend duplicating every tail), a journal would replay
// nothing, verify would call every file replaced. So the state keeps the
// number the target root had (keyRootDev), and a start that finds another
// renumbers every file record and ledger entry that had it, in one
// transaction, before recovery reads them. Journal segments are not
// rewritten: their entries are read through the numbers the root had
// before (keyRootDevs). Files on other file systems below the target dir
// keep their old numbers, and are not found if those changed too.
var (
	keyRootDev  = []byte("root-dev")  // uint64: the target root's fileID.Dev when the state was last opened
	keyRootDevs = []byte("root-devs") // uint64s: the numbers it had before, newest last
)

// maxRootDevs bounds the numbers kept in keyRootDevs.
const maxRootDevs = 8

// renumber brings the records to the target root's device number, if it
// changed since the last start, and sets d.devsBefore.
func (d *Dir) renumber() error {
	if d.fsDev == 0 {
		return nil // the root could not be looked at: nothing to go by
	}
	var old uint64
	err := d.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyRootDev); len(v) == 8 {
			old = binary.BigEndian.Uint64(v)
		}
		d.devsBefore = parseDevs(meta.Get(keyRootDevs))
		return nil
	})
	if err != nil || old == d.fsDev {
		return err
	}
	var files, ledger int
	err = d.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if old != 0 {
			var err error
			if files, err = renumberBucket(tx.Bucket(bucketFiles), old, d.fsDev, unmarshalFile, fileRecord.marshal,
				func(r *fileRecord) *fileID { return &r.ID }); err != nil {
				return err
			}
			if ledger, err = renumberBucket(tx.Bucket(bucketLedger), old, d.fsDev, unmarshalLedger, ledgerRecord.marshal,
				func(r *ledgerRecord) *fileID { return &r.ID }); err != nil {
				return err
			}
			d.devsBefore = append(slices.DeleteFunc(d.devsBefore, func(v uint64) bool { return v == old || v == d.fsDev }), old)
			d.devsBefore = d.devsBefore[max(0, len(d.devsBefore)-maxRootDevs):]
			var b []byte
			for _, v := range d.devsBefore {
				b = binary.BigEndian.AppendUint64(b, v)
			}
			if err := meta.Put(keyRootDevs, b); err != nil {
				return err
			}
		}
		return meta.Put(keyRootDev, binary.BigEndian.AppendUint64(nil, d.fsDev))
	})
	if err == nil && old != 0 {
		d.log.Warn("the target file system's device number changed since the last start (a boot numbered its device differently): its records are renumbered",
			"was", old, "now", d.fsDev, "file_records", files, "ledger_entries", ledger)
	}
	return err
}

// renumberBucket rewrites the records of bucket b whose identity has
// device number old to have now, and returns how many it rewrote. Records
// it cannot read are left as they are (what reads them reports them).
func renumberBucket[R any](b *bolt.Bucket, old, now uint64, unmarshal func([]byte) (R, error), marshal func(R) []byte, id func(*R) *fileID) (int, error) {
	type put struct{ k, v []byte }
	var puts []put
	err := b.ForEach(func(k, v []byte) error {
		r, err := unmarshal(v)
		if err != nil || id(&r).Dev != old {
			return nil
		}
		id(&r).Dev = now
		puts = append(puts, put{slices.Clone(k), marshal(r)})
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Not while iterating: a Put moves what a cursor walks.
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return 0, err
		}
	}
	return len(puts), nil
}

func parseDevs(b []byte) []uint64 {
	var devs []uint64
	for ; len(b) >= 8; b = b[8:] {
		devs = append(devs, binary.BigEndian.Uint64(b))
	}
	return devs
}

// currentDev gives an identity read from a journal segment the target
// root's number of now if it had one the root had before.
func (d *Dir) currentDev(id fileID) fileID {
	if slices.Contains(d.devsBefore, id.Dev) {
		id.Dev = d.fsDev
	}
	return id
}
