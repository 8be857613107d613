// Package offsets holds the collector's state: for each stream, the file it
// reads (path, device, inode, fingerprint), the name it is delivered as, the
// offset the processor acknowledged with the stream's digest there, and a
// digest mismatch once one was seen.
//
// Invariant: Acked only ever holds an offset the processor acknowledged, and
// a stream's record is durable before any of its data is sent, so a file
// maps to the same stream across restarts.
package offsets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"thunder/internal/stream"
)

var (
	bucketStreams  = []byte("streams")
	bucketIdentity = []byte("identity") // the collector's key (package identity)
	keySeed        = []byte("ed25519-seed")
)

// MaxFlushes bounds Record.Flushes.
const MaxFlushes = 64

// FingerprintBytes is how many leading bytes of a file identify it together
// with its inode: a reused inode with other content is a new stream.
const FingerprintBytes = 64

// Record is one stream's state.
type Record struct {
	ID stream.ID `json:"-"`
	// Name is the target name: the path relative to the source dir when the
	// file was first seen, slash-separated.
	Name string `json:"name"`
	// Path is where the file is now, relative to the source dir; it differs
	// from Name after a rotation or rename.
	Path        string `json:"path"`
	Dev         uint64 `json:"dev"`
	Ino         uint64 `json:"ino"`
	Fingerprint []byte `json:"fp,omitempty"`
	// Acked is the source offset the processor acknowledged.
	Acked uint64 `json:"acked"`
	// Digest is the stream's digest at Acked (PROTOCOL.md §13) when
	// HasDigest; records written before digests existed have none.
	Digest    uint32 `json:"digest,omitempty"`
	HasDigest bool   `json:"has_digest,omitempty"`
	// Adopted: Digest is a processor's, taken where the collector did not
	// know its own (an older record, a range it could not replay); the
	// collector proves it from the file before it deletes the file.
	Adopted bool `json:"adopted,omitempty"`
	// Flushes are the offsets where an unterminated last line was sent
	// with a newline added (at most MaxFlushes): the digest depends on
	// them, and a replay of the file must add them again.
	Flushes []uint64 `json:"flushes,omitempty"`
	// MaxLine is the --max-line-bytes the stream was last read with (0:
	// not recorded, an older record): where long lines were split, and so
	// the digest, depends on it, and a replay after a restart with another
	// value must split as the frames it checks were split.
	MaxLine int `json:"max_line,omitempty"`
	// FlushesLost: a flush past MaxFlushes was not recorded, so the file
	// can no longer be replayed to the digest that was sent.
	FlushesLost bool `json:"flushes_lost,omitempty"`
	// Mismatch, once set, is the first place where a processor's digest
	// of the stream differed from the collector's. It is never cleared: a
	// file that mismatched is never deleted by the collector.
	Mismatch *Mismatch `json:"mismatch,omitempty"`
	// Rotated is set once the collector renamed the file aside.
	Rotated bool      `json:"rotated,omitempty"`
	Created time.Time `json:"created"`
}

// Mismatch records a processor's digest that differed from the
// collector's own at Offset: bytes that reached the processor are not the
// bytes this collector read.
type Mismatch struct {
	Offset uint64    `json:"offset"`
	Ours   uint32    `json:"ours"`
	Theirs uint32    `json:"theirs"`
	Addr   string    `json:"addr"` // the processor that reported Theirs
	At     time.Time `json:"at"`
	// Withheld: the processor's Ack had no digest after its Opened had
	// one (Theirs is 0 then).
	Withheld bool `json:"withheld,omitempty"`
}

// DB is the offsets database. It is safe for concurrent use.
type DB struct {
	db *bolt.DB
}

// Open opens or creates the database at path, mode 0600 (it holds the
// collector's private key). A second collector on the same file gets an
// error instead of waiting.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open offsets db %s: in use by another collector", path)
		}
		return nil, fmt.Errorf("open offsets db %s: %w", path, err)
	}
	// A database made before it held a key may be readable by others.
	err = os.Chmod(path, 0o600)
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(bucketIdentity); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists(bucketStreams)
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open offsets db %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Load returns every record.
func (d *DB) Load() ([]Record, error) {
	var recs []Record
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			id, err := stream.ParseID(k)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			r.ID = id
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load offsets: %w", err)
	}
	return recs, nil
}

// Put stores records and deletes the streams in del, in one durable
// transaction.
func (d *DB) Put(recs []Record, del []stream.ID) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStreams)
		for _, r := range recs {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put(r.ID[:], v); err != nil {
				return fmt.Errorf("store offsets: %w", err)
			}
		}
		for _, id := range del {
			if err := b.Delete(id[:]); err != nil {
				return fmt.Errorf("store offsets: %w", err)
			}
		}
		return nil
	})
}

// IdentitySeed returns the collector's private key seed, storing the one
// generate returns when there is none yet, durably, before it is used.
func (d *DB) IdentitySeed(generate func() ([]byte, error)) ([]byte, error) {
	var seed []byte
	err := d.db.View(func(tx *bolt.Tx) error {
		seed = bytes.Clone(tx.Bucket(bucketIdentity).Get(keySeed))
		return nil
	})
	if err != nil || seed != nil {
		return seed, err
	}
	if seed, err = generate(); err != nil {
		return nil, err
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentity).Put(keySeed, seed)
	})
	if err != nil {
		return nil, fmt.Errorf("store identity key: %w", err)
	}
	return seed, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }
