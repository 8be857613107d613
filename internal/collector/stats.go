package collector

// Stats is a snapshot of a collector's counters.
type Stats struct {
	Connected bool   // a link to a processor is up
	Addr      string // its address
	Streams   int    // files being followed
	// SentBytes and AckedBytes are source bytes; SentLines counts newlines.
	SentBytes, SentLines, AckedBytes uint64
	// LinesSplit counts pieces of lines longer than MaxLineBytes;
	// LinesFlushed counts unterminated last lines sent with a newline added.
	LinesSplit, LinesFlushed uint64
	// LagBytes is what the files hold beyond the acknowledged offsets,
	// as of the last second.
	LagBytes int64
	// Connects counts links established.
	Connects uint64
	// Rotations and Deletions count rotated and deleted files.
	Rotations, Deletions uint64
}

// Stats returns a snapshot. It is safe to call from any goroutine.
func (c *Collector) Stats() Stats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	return c.stats
}

func (c *Collector) statsAdd(f func(*Stats)) {
	c.statsMu.Lock()
	f(&c.stats)
	c.statsMu.Unlock()
}

func (c *Collector) setConnected(addr string, up bool) {
	c.statsAdd(func(st *Stats) {
		st.Connected, st.Addr = up, addr
		if up {
			st.Connects++
		}
	})
}

// updateStats recomputes the per-second figures. Run loop only.
func (c *Collector) updateStats() {
	var lag int64
	for _, s := range c.byID {
		if s.f == nil {
			continue
		}
		if fi, err := s.f.Stat(); err == nil {
			lag += max(0, fi.Size()-int64(s.rec.Acked))
		}
	}
	n := len(c.byID)
	c.statsAdd(func(st *Stats) { st.LagBytes, st.Streams = lag, n })
}
