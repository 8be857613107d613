package collector

// NewWithMaxOpenReplay is New with a smaller bound on the replay of a
// record without digest before its first Open, so a test can have a file
// too long for it without writing 64 MiB.
func NewWithMaxOpenReplay(cfg Config, n uint64) (*Collector, error) {
	c, err := New(cfg)
	if c != nil {
		c.openReplay = n
	}
	return c, err
}
