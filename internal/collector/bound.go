package collector

import "time"

// The rule for offsets a processor reports (PROTOCOL.md §4, §6): an
// Opened offset or committed offset, or an Ack offset, can only be true if
// this collector could have sent that far. One beyond is a protocol error of
// the processor: logged, counted, the link dropped (the collector reconnects
// with backoff), and the offset is never recorded as acknowledged nor taken
// for a truncation. Truncation is only ever what the collector itself sees:
// a file shorter than its own acknowledged offset, or other leading bytes.

// reportBound returns the highest offset a processor can truthfully report
// for s.
//
// Once s is open on a link (Opened received), it is s.sent: the processor's
// offset is the resume point it gave plus what was sent on that link since.
//
// While an Open awaits its answer it is the most this collector could ever
// have sent of the stream, to any processor: the high-water mark of this
// process (s.hwm, kept across links and failovers), and for a stream
// restored from the offsets DB, whatever an earlier process may have sent
// before the restart: at most the file's size when this process first opened
// it (s.prior, through its open descriptor), since files only grow (a
// shrunk or rewritten file is a new stream). The acknowledged offset is
// below both; it counts too for a restored file not opened yet.
func (s *source) reportBound() uint64 {
	if s.opened {
		return s.sent
	}
	return max(s.hwm, s.prior, s.rec.Acked)
}

// possible reports whether off, reported by l's processor for s as what,
// can be true. If not, it logs and counts a protocol error and drops l.
func (c *Collector) possible(l *link, s *source, what string, off uint64) bool {
	bound := s.reportBound()
	if off <= bound {
		return true
	}
	c.statsAdd(func(st *Stats) {
		st.ProtocolErrors++
		st.LastError = "processor " + l.addr + " reported an offset beyond what was sent"
	})
	if now := time.Now(); now.Sub(c.protoLogged) >= protoLogEvery {
		c.log.Error("processor reported an offset beyond what this collector sent; protocol error, reconnecting",
			"addr", l.addr, "what", what, "path", s.rec.Path, "name", s.rec.Name, "stream", s.rec.ID,
			"offset", off, "sent", bound, "suppressed", c.protoSuppressed)
		c.protoLogged, c.protoSuppressed = now, 0
	} else {
		c.protoSuppressed++
	}
	c.dropLink(l)
	return false
}

// protoLogEvery bounds the protocol error log lines: a processor that keeps
// misbehaving is reconnected to with backoff, and logged at most this often
// (with the count of those not logged).
const protoLogEvery = 10 * time.Second
