package target

import (
	"bytes"
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

// fileRecord is what a commit knows of a target file: what it is, and its
// committed length. Serial tells one opening of a name from another, so a
// record is deleted only by the code that knows it is the one it wrote.
type fileRecord struct {
	ID     fileID
	Size   int64
	Serial uint64
	Legacy bool // written before identities were recorded: proves nothing
}

// fileRecordV2 is the version byte of records with a full identity; the
// first version was 16 bytes (inode, size) with no version byte.
const fileRecordV2 = 2

func (r fileRecord) marshal() []byte {
	b := make([]byte, 0, 42+len(r.ID.Handle))
	b = append(b, fileRecordV2)
	b = binary.BigEndian.AppendUint64(b, r.ID.Dev)
	b = binary.BigEndian.AppendUint64(b, r.ID.Ino)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ID.Btime))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, r.Serial)
	b = append(b, byte(len(r.ID.Handle)))
	return append(b, r.ID.Handle...)
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
	if len(b) == 16 {
		return fileRecord{ID: fileID{Ino: binary.BigEndian.Uint64(b[0:8])}, Size: int64(binary.BigEndian.Uint64(b[8:16])), Legacy: true}, nil
	}
	if len(b) < 42 || b[0] != fileRecordV2 || len(b) != 42+int(b[41]) {
		return fileRecord{}, errors.New("target: corrupt file record")
	}
	r := fileRecord{
		ID: fileID{
			Dev:   binary.BigEndian.Uint64(b[1:9]),
			Ino:   binary.BigEndian.Uint64(b[9:17]),
			Btime: int64(binary.BigEndian.Uint64(b[17:25])),
		},
		Size:   int64(binary.BigEndian.Uint64(b[25:33])),
		Serial: binary.BigEndian.Uint64(b[33:41]),
	}
	if n := int(b[41]); n > 0 {
		r.ID.Handle = bytes.Clone(b[42 : 42+n])
	}
	return r, nil
}

// streamRecord is what a commit knows of a stream: its committed offset,
// the stream's digest there (PROTOCOL §13) and how many lines this
// processor committed of it.
type streamRecord struct {
	Committed uint64
	Digest    uint32
	NoDigest  bool // the digest is unknown (the record was older than digests)
	Lines     uint64
	Name      string
}

// streamRecordV2 marks records with a digest: committed(8) 0x00 version(1)
// digest(4) lines(8) name; streamRecordV3 is the same without a known
// digest. The first version was committed(8) name, read as one without a
// known digest; a name never starts with a NUL.
const (
	streamRecordV2 = 2
	streamRecordV3 = 3
)

func (r streamRecord) marshal() []byte {
	b := make([]byte, 0, 22+len(r.Name))
	b = binary.BigEndian.AppendUint64(b, r.Committed)
	v := byte(streamRecordV2)
	if r.NoDigest {
		v = streamRecordV3
	}
	b = append(b, 0, v)
	b = binary.BigEndian.AppendUint32(b, r.Digest)
	b = binary.BigEndian.AppendUint64(b, r.Lines)
	return append(b, r.Name...)
}

func unmarshalStream(b []byte) (streamRecord, error) {
	switch {
	case len(b) < 8:
		return streamRecord{}, errors.New("target: corrupt stream record")
	case len(b) == 8 || b[8] != 0:
		return streamRecord{Committed: binary.BigEndian.Uint64(b[:8]), NoDigest: true, Name: string(b[8:])}, nil
	case len(b) < 22 || (b[9] != streamRecordV2 && b[9] != streamRecordV3):
		return streamRecord{}, errors.New("target: corrupt stream record")
	}
	return streamRecord{
		Committed: binary.BigEndian.Uint64(b[:8]),
		NoDigest:  b[9] == streamRecordV3,
		Digest:    binary.BigEndian.Uint32(b[10:14]),
		Lines:     binary.BigEndian.Uint64(b[14:22]),
		Name:      string(b[22:]),
	}, nil
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
		for _, name := range [][]byte{bucketFiles, bucketStreams, bucketLedger, bucketChecks, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
}

// parseStreamKey is the inverse of streamKey.
func parseStreamKey(k []byte) (stream.Key, error) {
	if len(k) < stream.IDBytes {
		return stream.Key{}, errors.New("target: corrupt stream key")
	}
	var key stream.Key
	copy(key.ID[:], k[:stream.IDBytes])
	key.Collector = string(k[stream.IDBytes:])
	return key, nil
}
