package collector

import (
	"fmt"

	"thunder/internal/inuse"
)

// NewWithoutProc is New on a system where no process's open files can be
// seen (macOS, FreeBSD): the collector falls back to its quiet period.
func NewWithoutProc(cfg Config) (*Collector, error) {
	c, err := New(cfg)
	if c != nil {
		c.openBy = func(string, bool) ([]int, error) {
			return nil, fmt.Errorf("%w: forced by the test", inuse.ErrNoProcAccess)
		}
	}
	return c, err
}

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
