// Package stream holds the vocabulary shared by both daemons: the identity of a
// source file as it travels from a collector to a processor. It does no I/O.
//
// A stream is one source file on one collector host. Its identity survives
// renames (the collector's own rotation, an external logrotate): the target
// name is the name the file had when it was first seen.
//
// Invariant: a [Key] names one source file. Its [ID] is drawn at random
// (128 bits) when the collector first sees the file and is kept in the
// offsets DB, collector names are unique per processor, and an ID is parsed
// only from exactly [IDBytes] bytes.
package stream

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

// IDBytes is the length of an ID.
const IDBytes = 16

// ID names a stream within one collector. The collector draws it at random
// when it first sees a file and keeps it in its offsets DB, so that the same
// file maps to the same ID across restarts.
type ID [IDBytes]byte

// NewID returns a fresh random ID.
func NewID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // never returns an error (crypto/rand docs)
	return id
}

// ParseID converts the bytes of a wire message into an ID.
func ParseID(b []byte) (ID, error) {
	var id ID
	if len(b) != IDBytes {
		return id, errors.New("stream: id must be 16 bytes")
	}
	copy(id[:], b)
	return id, nil
}

// String returns the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Key identifies a stream on a processor: collector names are unique per
// processor, IDs are unique per collector.
type Key struct {
	Collector string
	ID        ID
}

// String returns "collector/hexid".
func (k Key) String() string { return k.Collector + "/" + k.ID.String() }
