package target

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/stream"
)

// Buckets of the state store.
var (
	bucketFiles   = []byte("files")   // fileKey(name, ino) → fileRecord
	bucketStreams = []byte("streams") // streamKey → streamRecord
)

// fileRecord is what a commit knows of a target file.
type fileRecord struct {
	Ino  uint64
	Size int64
}

func (r fileRecord) marshal() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:8], r.Ino)
	binary.BigEndian.PutUint64(b[8:16], uint64(r.Size))
	return b
}

// fileKey keys a file record by name and inode: after a reopen the old and
// the new file at a name each have a record until the old one is committed.
func fileKey(name string, ino uint64) []byte {
	b := make([]byte, 0, len(name)+9)
	b = append(b, name...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, ino)
}

// parseFileKey returns the name in a fileKey.
func parseFileKey(k []byte) (string, error) {
	if len(k) < 10 || k[len(k)-9] != 0 {
		return "", errors.New("target: corrupt file key")
	}
	return string(k[:len(k)-9]), nil
}

func unmarshalFile(b []byte) (fileRecord, error) {
	if len(b) != 16 {
		return fileRecord{}, errors.New("target: corrupt file record")
	}
	return fileRecord{Ino: binary.BigEndian.Uint64(b[0:8]), Size: int64(binary.BigEndian.Uint64(b[8:16]))}, nil
}

// streamRecord is what a commit knows of a stream.
type streamRecord struct {
	Committed uint64
	Name      string
}

func (r streamRecord) marshal() []byte {
	b := make([]byte, 8, 8+len(r.Name))
	binary.BigEndian.PutUint64(b, r.Committed)
	return append(b, r.Name...)
}

func unmarshalStream(b []byte) (streamRecord, error) {
	if len(b) < 8 {
		return streamRecord{}, errors.New("target: corrupt stream record")
	}
	return streamRecord{Committed: binary.BigEndian.Uint64(b[:8]), Name: string(b[8:])}, nil
}

// streamKey encodes a stream.Key: the ID, then the collector name, so that
// keys of one collector do not share a prefix with another's by accident.
func streamKey(k stream.Key) []byte {
	b := make([]byte, 0, stream.IDBytes+len(k.Collector))
	b = append(b, k.ID[:]...)
	return append(b, k.Collector...)
}

func initBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketFiles, bucketStreams} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
}
