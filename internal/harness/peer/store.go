package peer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// A Store is what a fake processor holds of each stream: the payloads it
// appended, where they end, the stream's digest there (PROTOCOL.md §13),
// and how far that is committed. It is shared by the connections of a fake
// (Serve) and outlives them, so a test can restart a collector against it.
// It records as Bad what an honest processor would refuse or call loss,
// duplication or corruption. Safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	streams map[string]*Held
	order   []string          // stream ids in the order they got data
	names   map[string]string // target name → the first stream id opened as it
	bad     []string

	sealed, unsealed int // frames received after the handshake, by kind
	checksumErrors   int // Error checksum frames sent (Conduct.ChecksumErrorAt)
	compressed       int // DataZstd frames received
}

// Held is one stream in a Store.
type Held struct {
	Bytes           []byte // the payloads appended, in order
	End             uint64 // the source offset after them
	Digest          uint32 // D(End)
	Committed       uint64 // acknowledged so far
	CommittedDigest uint32 // D(Committed)
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{streams: make(map[string]*Held), names: make(map[string]string)}
}

// Conduct is how one connection of a Store's fake processor behaves; the
// zero value is an honest processor that commits and acknowledges every
// Data frame at once.
type Conduct struct {
	// NoAck appends without committing or acknowledging anything: like a
	// processor whose commit has not run yet when the collector goes away.
	NoAck bool
	// LieFrom, when nonzero, makes every digest the connection reports at
	// an offset ≥ LieFrom wrong (one bit flipped), in Opened and in Acks.
	LieFrom uint64
	// LieName, when set, limits the lies to the streams opened under this
	// target name.
	LieName string
	// BadAckTrailer flips one bit of the trailer of the connection's
	// first Ack: damaged on the way.
	BadAckTrailer bool
	// CheckAckedDigest calls Bad an Open whose acked_digest differs from
	// the Store's digest at acked, where it knows it (its End or its
	// Committed).
	CheckAckedDigest bool
	// OmitAckDigests leaves the digest out of every Ack (Opened still
	// carries it): a processor that knew the stream's digest, and then
	// claims not to.
	OmitAckDigests bool
	// ChecksumErrorAt, when nonzero, answers the connection's n-th Data
	// frame (from 1) with Error code checksum instead of appending it, as
	// a processor that found it damaged, and ends the connection.
	ChecksumErrorAt int
}

func (st *Store) failf(format string, args ...any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.bad = append(st.bad, fmt.Sprintf(format, args...))
}

// Bad returns what the Store saw go wrong, nil if nothing.
func (st *Store) Bad() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.bad) == 0 {
		return nil
	}
	return errors.New("fake processor saw: " + strings.Join(st.bad, "; "))
}

// Frames returns how many frames after the handshake arrived sealed and
// unsealed, and how many Error checksum frames the Store sent.
func (st *Store) Frames() (sealed, unsealed, checksumErrors int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sealed, st.unsealed, st.checksumErrors
}

// Named returns the stream opened under target name that got data (the
// first one, if several did).
func (st *Store) Named(name string) (Held, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	id, ok := st.names[name]
	h := st.streams[id]
	if !ok || h == nil {
		return Held{}, false
	}
	c := *h
	c.Bytes = append([]byte(nil), h.Bytes...)
	return c, true
}

// Compressed returns how many DataZstd frames arrived.
func (st *Store) Compressed() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.compressed
}

// Only returns the one stream that got data; an error when there are
// none or several.
func (st *Store) Only() (Held, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.order) != 1 {
		return Held{}, fmt.Errorf("%d streams got data, want 1", len(st.order))
	}
	h := *st.streams[st.order[0]]
	h.Bytes = append([]byte(nil), h.Bytes...)
	return h, nil
}

// open attaches stream id as a processor does (§4): it resumes at the end
// of what it holds, or at acked (with acked's digest) when that is more.
func (st *Store) open(o *wirepb.Open) Held {
	st.mu.Lock()
	defer st.mu.Unlock()
	id := string(o.StreamId)
	h := st.streams[id]
	if h == nil {
		h = &Held{}
		st.streams[id] = h
	}
	if _, ok := st.names[o.Name]; !ok {
		st.names[o.Name] = id
	}
	if o.Acked > h.End {
		h.End, h.Digest = o.Acked, o.GetAckedDigest()
		h.Committed, h.CommittedDigest = o.Acked, o.GetAckedDigest()
	}
	return *h
}

// checkAcked calls Bad an Open whose acked_digest is not the Store's
// digest at acked, where it knows it.
func (st *Store) checkAcked(o *wirepb.Open) {
	st.mu.Lock()
	defer st.mu.Unlock()
	h := st.streams[string(o.StreamId)]
	switch {
	case h == nil:
	case o.AckedDigest == nil:
	case o.Acked == h.End && *o.AckedDigest != h.Digest, o.Acked == h.Committed && *o.AckedDigest != h.CommittedDigest:
		st.bad = append(st.bad, fmt.Sprintf("stream %x: Open.acked_digest %08x at %d, the stream's digest there is %08x", o.StreamId, *o.AckedDigest, o.Acked, h.Digest))
	}
}

// append appends d to stream id if it starts where the stream ends, and
// commits it unless noAck. It returns the stream after it.
func (st *Store) append(id string, d wire.Data, noAck bool) (Held, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	h := st.streams[id]
	if h == nil {
		st.bad = append(st.bad, fmt.Sprintf("data for handle %d, which is not open", d.Handle))
		return Held{}, false
	}
	if d.Offset != h.End {
		st.bad = append(st.bad, fmt.Sprintf("stream %x: data at %d, the stream ends at %d", id, d.Offset, h.End))
		return Held{}, false
	}
	if !slices.Contains(st.order, id) {
		st.order = append(st.order, id)
	}
	h.Bytes = append(h.Bytes, d.Payload...)
	h.End, h.Digest = d.End, digest.Update(h.Digest, d.Payload)
	if !noAck {
		h.Committed, h.CommittedDigest = h.End, h.Digest
	}
	return *h, true
}

// count counts a frame received, sealed or not.
func (st *Store) count(f wire.Frame) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if f.Checksummed {
		st.sealed++
	} else {
		st.unsealed++
	}
	if f.Type == wire.TypeDataZstd {
		st.compressed++
	}
}

// Serve speaks for the Store on c, as cd says, until the connection ends.
// An old processor's connection (not sealed) reports no digests.
func (st *Store) Serve(c *Conn, cd Conduct) {
	sc := &storeConn{st: st, c: c, cd: cd, handles: make(map[uint32]string), names: make(map[uint32]string)}
	for {
		fr, err := c.ServerNext()
		if err != nil {
			if errors.Is(err, wire.ErrChecksum) {
				st.failf("control frame from the collector failed its checksum: %v", err)
			}
			return
		}
		st.count(fr)
		if !sc.frame(fr) {
			return
		}
	}
}

// storeConn is one connection of Serve.
type storeConn struct {
	st           *Store
	c            *Conn
	cd           Conduct
	handles      map[uint32]string // handle → stream id
	names        map[uint32]string // handle → target name
	acks, frames int               // Acks sent, Data frames received
}

// lie returns the digest the connection reports for handle at off, whose
// true digest is d.
func (sc *storeConn) lie(handle uint32, off uint64, d uint32) uint32 {
	switch {
	case !sc.c.Sealed:
		return 0 // an old processor has no digests
	case sc.cd.LieFrom != 0 && off >= sc.cd.LieFrom && (sc.cd.LieName == "" || sc.cd.LieName == sc.names[handle]):
		return d ^ 1
	}
	return d
}

// frame handles one frame; false ends the connection.
func (sc *storeConn) frame(fr wire.Frame) bool {
	c := sc.c
	switch fr.Type {
	case wire.TypeOpen:
		var o wirepb.Open
		if wire.Decode(fr, &o) != nil {
			sc.st.failf("bad Open")
			return false
		}
		sc.handles[o.Handle], sc.names[o.Handle] = string(o.StreamId), o.Name
		if sc.cd.CheckAckedDigest {
			sc.st.checkAcked(&o)
		}
		h := sc.st.open(&o)
		return c.Send(wire.TypeOpened, &wirepb.Opened{Handle: o.Handle, Offset: h.End, Committed: h.Committed,
			Digest: proto.Uint32(sc.lie(o.Handle, h.End, h.Digest)), CommittedDigest: proto.Uint32(sc.lie(o.Handle, h.Committed, h.CommittedDigest))}) == nil
	case wire.TypeData, wire.TypeDataZstd:
		return sc.data(fr)
	case wire.TypePing:
		return c.Send(wire.TypePong, nil) == nil
	case wire.TypeClose:
		return true
	}
	sc.st.failf("unexpected %s frame", fr.Type)
	return false
}

// data appends a Data frame and acknowledges it, as sc.cd says.
func (sc *storeConn) data(fr wire.Frame) bool {
	st, c := sc.st, sc.c
	d, err := ParseData(fr)
	if err != nil {
		st.failf("bad data frame: %v", err)
		_ = c.Send(wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeChecksum), Message: err.Error(), Handle: d.Handle})
		return false
	}
	sc.frames++
	if sc.frames == sc.cd.ChecksumErrorAt {
		st.mu.Lock()
		st.checksumErrors++
		st.mu.Unlock()
		_ = c.Send(wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeChecksum), Message: "data frame damaged (fake)", Handle: d.Handle})
		return false
	}
	h, ok := st.append(sc.handles[d.Handle], d, sc.cd.NoAck)
	if !ok {
		return false
	}
	if sc.cd.NoAck {
		return true
	}
	sc.acks++
	dig := proto.Uint32(sc.lie(d.Handle, h.End, h.Digest))
	if sc.cd.OmitAckDigests {
		dig = nil
	}
	return st.ack(c, d.Handle, h.End, dig, sc.cd.BadAckTrailer && sc.acks == 1) == nil
}

// ack sends an Ack of handle at off with digest d (nil: none); damaged
// flips a bit of its trailer.
func (st *Store) ack(c *Conn, handle uint32, off uint64, d *uint32, damaged bool) error {
	b, err := c.Frame(wire.TypeAck, &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: handle, Offset: off, Digest: d}}})
	if err != nil {
		return err
	}
	if damaged {
		b[len(b)-1] ^= 0x10
	}
	_, err = c.Write(b)
	return err
}
