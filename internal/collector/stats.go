package collector

import (
	"sort"
	"strings"
	"time"
)

// Stats is a snapshot of a collector's counters.
type Stats struct {
	Name string `json:"name"`
	// IdentityKey is the public key that proves Name to processors
	// ("ed25519:<base64>", PROTOCOL.md §12).
	IdentityKey string `json:"identity_key"`
	Connected   bool   `json:"connected"` // a link to a processor is up
	Addr        string `json:"addr"`      // the addresses of the links up, comma-separated
	// Processors has one entry per target address, in the order given.
	Processors []ProcessorLink `json:"processors"`
	Streams    int             `json:"streams"` // files being followed
	// SentBytes and AckedBytes are source bytes since this process
	// started: sent to processors (again after a reconnect), and
	// acknowledged by them. Bytes an earlier process sent whose
	// acknowledgement this one received (Opened after a restart) count in
	// both, so AckedBytes ≤ SentBytes always. SentLines counts newlines.
	SentBytes  uint64 `json:"sent_bytes"`
	SentLines  uint64 `json:"sent_lines"`
	AckedBytes uint64 `json:"acked_bytes"`
	// WireBytes counts data frame bytes sent, after compression.
	WireBytes uint64 `json:"wire_bytes"`
	// LinesSplit counts pieces of lines longer than MaxLineBytes;
	// LinesFlushed counts unterminated last lines sent with a newline added.
	LinesSplit   uint64 `json:"lines_split"`
	LinesFlushed uint64 `json:"lines_flushed"`
	// LagBytes is what the files hold beyond the acknowledged offsets,
	// as of the last second.
	LagBytes int64 `json:"lag_bytes"`
	// Connects counts links established.
	Connects uint64 `json:"connects"`
	// Rotations and Deletions count rotated and deleted files.
	Rotations uint64 `json:"rotations"`
	Deletions uint64 `json:"deletions"`
	// ProtocolErrors counts offsets reported by processors beyond what this
	// collector sent (PROTOCOL.md §4, §6), each of which dropped the link.
	ProtocolErrors uint64 `json:"protocol_errors"`
	// ChecksumErrors counts frames from processors whose CRC-32C trailer
	// did not match (PROTOCOL.md §13), each of which dropped the link.
	ChecksumErrors uint64 `json:"checksum_errors"`
	// DigestMismatches counts processor digests that differed from the
	// collector's (§13); MismatchFiles is the files in mismatch now
	// (listed in Status.Mismatched), never deleted by the collector.
	DigestMismatches uint64 `json:"digest_mismatches"`
	MismatchFiles    int    `json:"mismatch_files"`
	// RefusedFiles counts files held undelivered because a processor
	// refused their target name (listed in Status.Refused).
	RefusedFiles int `json:"refused_files"`
	// OpenFiles counts source files held open.
	OpenFiles int `json:"open_files"`
	// HeldFiles counts rotated files that writers still hold open, and
	// write, without a lock (listed in Status.Held); HeldBytes is what
	// they wrote to them after the rotation.
	HeldFiles int   `json:"held_files"`
	HeldBytes int64 `json:"held_bytes"`
	// LastError is the last connection error, cleared on connect.
	LastError string `json:"last_error,omitempty"`
}

// ProcessorLink is the state of the link to one processor.
type ProcessorLink struct {
	Addr      string `json:"addr"`
	Connected bool   `json:"connected"`
	Streams   int    `json:"streams"` // streams open on it, as of the last second
}

// StreamStatus describes one followed file.
type StreamStatus struct {
	Name    string `json:"name"` // target name
	Path    string `json:"path"` // where the file is now
	ID      string `json:"id"`
	Size    int64  `json:"size"`
	Sent    uint64 `json:"sent"`
	Acked   uint64 `json:"acked"`
	Lag     int64  `json:"lag"`
	Rotated bool   `json:"rotated,omitempty"`
	Gone    bool   `json:"gone,omitempty"` // deleted or moved out; finishing through its descriptor
}

// RefusedFile is a file held undelivered because a processor refused its
// target name (PROTOCOL.md §7, code name), e.g. because a directory is at
// that path in the processor's target dir. It is retried with backoff;
// nothing of it is deleted until it is delivered.
type RefusedFile struct {
	Name      string    `json:"name"` // target name
	Path      string    `json:"path"` // where the file is now
	Addr      string    `json:"addr"` // the processor that refused it
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
	Tries     int       `json:"tries"`    // refusals in a row
	Retrying  bool      `json:"retrying"` // being sent again now
	NextRetry time.Time `json:"next_retry"`
}

// Status is Stats plus the streams with the most lag and the refused files.
type Status struct {
	Stats
	Updated time.Time      `json:"updated"`
	Top     []StreamStatus `json:"top"` // the MaxStatusStreams streams with the most lag
	// Refused lists up to MaxStatusStreams refused files.
	Refused []RefusedFile `json:"refused,omitempty"`
	// Mismatched lists up to MaxStatusStreams files in digest mismatch.
	Mismatched []MismatchedFile `json:"mismatched,omitempty"`
	// Held lists up to MaxStatusStreams rotated files still written by a
	// program that does not reopen its log.
	Held []HeldFile `json:"held,omitempty"`
}

// MaxStatusStreams bounds the per-stream entries in Status (and so the
// per-stream metric series).
const MaxStatusStreams = 100

// Stats returns a snapshot of the counters. It is safe for concurrent use.
func (c *Collector) Stats() Stats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	return c.stats
}

// Status returns the counters and the most lagging streams as of the last
// second. It is safe for concurrent use.
func (c *Collector) Status() Status {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	return Status{Stats: c.stats, Updated: c.updated, Top: c.top, Refused: c.refusedList, Mismatched: c.mismatched, Held: c.heldList}
}

// Healthy reports an error when a file is in digest mismatch (naming
// them), or when no processor link is up.
func (c *Collector) Healthy() error {
	st := c.Status()
	if len(st.Mismatched) > 0 {
		return errMismatch{st.Mismatched}
	}
	if !st.Connected {
		return errNotConnected{st.LastError}
	}
	return nil
}

type errNotConnected struct{ last string }

func (e errNotConnected) Error() string {
	if e.last == "" {
		return "not connected to a processor"
	}
	return "not connected to a processor: " + e.last
}

func (c *Collector) statsAdd(f func(*Stats)) {
	c.statsMu.Lock()
	f(&c.stats)
	c.statsMu.Unlock()
}

// setConnected records which links are up, after one came up (up) or went
// down. Run loop only.
func (c *Collector) setConnected(up bool) {
	procs := c.processorLinks()
	var addrs []string
	for _, p := range procs {
		if p.Connected {
			addrs = append(addrs, p.Addr)
		}
	}
	c.statsAdd(func(st *Stats) {
		if up {
			st.Connects++
			st.LastError = ""
		}
		st.Connected, st.Addr, st.Processors = len(addrs) > 0, strings.Join(addrs, ","), procs
	})
}

// processorLinks describes the links. Run loop only.
func (c *Collector) processorLinks() []ProcessorLink {
	procs := make([]ProcessorLink, len(c.links))
	for i, l := range c.links {
		procs[i] = ProcessorLink{Addr: c.cfg.Targets[i], Connected: l != nil}
		if l != nil {
			procs[i].Streams = len(l.handles)
		}
	}
	return procs
}

// updateStats recomputes the per-second figures. Run loop only. Sizes are
// re-read only for files that changed since (and all of them every
// fullStatTicks), so an idle collector with many files stays idle.
func (c *Collector) updateStats() {
	c.ticks++
	full := c.ticks%fullStatTicks == 0
	var lag int64
	var lagging, idle []*source
	for _, s := range c.byID {
		if s.f == nil {
			continue
		}
		if s.changed || full {
			s.changed = false
			if fi, err := s.f.Stat(); err == nil {
				s.seen.tick = fi.Size()
			}
		}
		if l := s.seen.tick - int64(s.rec.Acked); l > 0 {
			lag += l
			lagging = append(lagging, s)
		} else if len(idle) < MaxStatusStreams {
			idle = append(idle, s)
		}
	}
	lagOf := func(s *source) int64 { return max(0, s.seen.tick-int64(s.rec.Acked)) }
	sort.Slice(lagging, func(i, j int) bool {
		if a, b := lagOf(lagging[i]), lagOf(lagging[j]); a != b {
			return a > b
		}
		return lagging[i].rec.Path < lagging[j].rec.Path
	})
	sort.Slice(idle, func(i, j int) bool { return idle[i].rec.Path < idle[j].rec.Path })
	top := make([]StreamStatus, 0, MaxStatusStreams)
	for _, s := range append(lagging, idle...) {
		if len(top) == MaxStatusStreams {
			break
		}
		top = append(top, StreamStatus{
			Name: s.rec.Name, Path: s.rec.Path, ID: s.rec.ID.String(), Size: s.seen.tick,
			Sent: s.sent, Acked: s.rec.Acked, Lag: lagOf(s), Rotated: s.rec.Rotated, Gone: s.state.offPath(),
		})
	}
	if c.Stats().MismatchFiles > 0 {
		c.publishMismatches() // their paths may have changed (a rotation)
	}
	n := len(c.byID)
	procs := c.processorLinks()
	held := c.heldFiles()
	var heldBytes int64
	for _, h := range held {
		heldBytes += h.BytesAfterRotation
	}
	c.statsMu.Lock()
	c.heldList, c.stats.HeldFiles, c.stats.HeldBytes = held, len(held), heldBytes
	c.stats.Processors = procs
	c.stats.LagBytes, c.stats.Streams, c.stats.OpenFiles = lag, n, c.openFiles
	c.stats.Name = c.cfg.Name
	c.top, c.updated = top, time.Now()
	c.statsMu.Unlock()
}

// fullStatTicks is how often (in ticks of a second) every open file's size
// is re-read, not only those with events.
const fullStatTicks = 10
