package target

// BehindCap is the capacity of all write-behind buffers: the memory they
// hold, which maxBehind is meant to bound.
func BehindCap(d *Dir) (n int64) {
	for _, f := range d.allFiles() {
		f.mu.Lock()
		n += int64(cap(f.behind))
		f.mu.Unlock()
	}
	return n
}

// BehindHeld is what d counts as held by its write-behind buffers.
func BehindHeld(d *Dir) int64 { return d.behindHeld.Load() }
