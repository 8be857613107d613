package collector

import (
	"io/fs"
	"os"
	"sort"
	"time"

	"thunder/internal/offsets"
)

// source is one stream: a file being read. Owned by the Run loop. Its place
// in the file's life cycle is state (state.go); the fields below it hold
// what is known of the file whatever the state.
type source struct {
	rec     offsets.Record
	state   state
	durable bool     // rec is in the offsets DB: data may be sent
	f       *os.File // nil while restored or idle (or left while idle), and once forgotten
	pred    *source  // the file rotated away from this one's path, streamed first
	rank    []int    // Config.Targets indexes by preference (shard.Rank of the name)

	// The link s is open on (attach, detach); on is nil on none.
	on     *link
	handle uint32 // on it; 0: not open
	opened bool   // the processor answered Open
	moving bool   // a processor ranked higher is up: move once all is acked

	// Offsets into the file, in bytes. rec.Acked (acknowledged: durable at
	// the processor) ≤ sent (the next offset to send on the link) ≤ hwm;
	// setOffsets alone changes sent and rec.Acked. What a processor can
	// truthfully report (reportBound): hwm, the highest offset sent on any
	// link by this process; for a restored source, prior, its file's size
	// when this process first found it, the most an earlier process can
	// have sent.
	sent  uint64
	hwm   uint64
	prior uint64

	// seen is the file's length as each observer last saw it.
	seen lengths

	// dig is what is known of the stream's digest (digest.go); rec.Digest
	// is its value at rec.Acked.
	dig         digests
	sentAt      []sentAt // send times of the frames in flight (acktime.go)
	adoptLogged bool     // logged taking a processor's digest as ours
	// told: the processor s is attached to gave its digest in Opened, so
	// every Ack of this attachment must carry one (verify.go).
	told         bool
	replayLogged bool // logged that it is too large to replay before deletion

	queued      bool // in c.ready
	eof         bool // the last read found no complete line
	flush       bool // send an unterminated last line with a newline
	dirty       bool // rec.Acked changed since the last save
	changed     bool // woken since the last stats tick
	splitLogged bool
	rotatedAt   time.Time // when this process rotated it, or found it rotated
	rotatedSize int64     // its size when this process rotated it; 0: not known
	held        holders   // writers still holding it after its rotation (held.go)
	active      time.Time // last time data was sent
}

// lengths are a file's length as last seen by each of those who look at it.
type lengths struct {
	read      int64     // by the reader: at its last end of file, or the end of its last read
	grown     time.Time // when read last changed
	tick      int64     // by the stats tick, for the lag
	scanned   int64     // by the identity check of a scan (scanPath), with scanMtime
	scanMtime time.Time
	checked   time.Time // when that identity check last ran
}

// delivered reports whether s is fully delivered when its file is size
// bytes long: all of it acknowledged and nothing in flight.
func (s *source) delivered(size int64) bool {
	return s.sent == s.rec.Acked && uint64(size) == s.rec.Acked
}

// deliveredNow reports whether s's open file is fully delivered as it is
// now, with its file info; false when it cannot tell.
func (s *source) deliveredNow() (fs.FileInfo, bool) {
	if s.f == nil {
		return nil, false
	}
	fi, err := s.f.Stat()
	if err != nil {
		return nil, false
	}
	return fi, s.delivered(fi.Size())
}

// inFlight is what s sent and has not had acknowledged, in bytes.
func (s *source) inFlight() uint64 { return s.sent - min(s.sent, s.rec.Acked) }

// setOffsets sets what s sent and what of it is acknowledged. It is the one
// place that keeps the count of bytes in flight on s's link.
func (s *source) setOffsets(sent, acked uint64) {
	before := s.inFlight()
	if sent < s.sent {
		s.framesResent(sent)
	}
	s.sent, s.rec.Acked = sent, acked
	if s.on != nil {
		s.on.inflight += int64(s.inFlight()) - int64(before)
	}
}

// readable reports whether s may have something to read: a descriptor, or
// a path to reopen it by.
func (s *source) readable() bool { return s.f != nil || !s.state.offPath() }

func (c *Collector) closeFile(s *source) {
	if s.f != nil {
		_ = s.f.Close() // read-only
		s.f = nil
		c.openFiles--
	}
}

// load restores the sources of the offsets DB. A record whose file cannot be
// found where it was is kept until the first scan; then it is dropped.
func (c *Collector) load() error {
	recs, err := c.db.Load()
	if err != nil {
		return err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	for _, r := range recs {
		s := &source{rec: r, durable: true, sent: r.Acked}
		s.dig.ack(r.Acked, r.Digest, r.HasDigest)
		c.moveTo(s, stateRestored, "in the offsets db")
		c.byID[r.ID] = s
		c.byIno[devIno{r.Dev, r.Ino}] = s
		c.follow(s)
	}
	c.publishMismatches() // kept in the offsets DB: reported again after a restart
	return nil
}

// follow makes s, the newest source delivered as its name, wait for the
// one before it: all sources of one name are sent in the order they were
// first seen, so lines a writer wrote before a rotation or a rename reach the
// target before the lines it wrote after.
func (c *Collector) follow(s *source) {
	if p := c.lastByName[s.rec.Name]; p != nil && p.state != stateForgotten {
		s.pred = p
	}
	c.lastByName[s.rec.Name] = s
}

// end forgets s for the reason why: the processor is told the stream is
// over, the file is closed and the record deleted at the next save. It is
// the one way a source ends; the caller logs why for the operator.
func (c *Collector) end(s *source, why string) {
	if s.state == stateForgotten {
		return
	}
	c.moveTo(s, stateForgotten, why)
	c.endMismatch(s)
	if s.on != nil {
		c.sendClose(s, true)
	}
	c.closeFile(s)
	delete(c.byID, s.rec.ID)
	if c.byPath[s.rec.Path] == s {
		delete(c.byPath, s.rec.Path)
	}
	if k := (devIno{s.rec.Dev, s.rec.Ino}); c.byIno[k] == s {
		delete(c.byIno, k)
	}
	if s.durable {
		c.forget = append(c.forget, s.rec.ID)
	}
	s.durable = false
	s.queued = false // removed lazily from c.ready
}

// retire ends a stream whose file changed identity.
func (c *Collector) retire(s *source, why string) {
	c.log.Info("stream ended", "name", s.rec.Name, "stream", s.rec.ID, "why", why)
	c.end(s, why)
}

// wake queues s for reading.
func (c *Collector) wake(s *source) {
	s.eof, s.changed = false, true
	if !s.queued && !c.held(s) {
		s.queued = true
		c.ready = append(c.ready, s)
	}
}

// save persists new and changed records and deletions in one transaction.
func (c *Collector) save() {
	if len(c.unsaved) == 0 && len(c.forget) == 0 {
		return
	}
	recs := make([]offsets.Record, 0, len(c.unsaved))
	seen := make(map[*source]bool, len(c.unsaved))
	for _, s := range c.unsaved {
		if seen[s] || s.state == stateForgotten {
			continue
		}
		seen[s] = true
		recs = append(recs, s.rec)
	}
	if err := c.db.Put(recs, c.forget); err != nil {
		c.log.Error("cannot save offsets; retrying", "err", err)
		return
	}
	for s := range seen {
		if !s.durable {
			s.durable = true
			c.wake(s)
		}
	}
	c.unsaved = c.unsaved[:0]
	c.forget = c.forget[:0]
}
