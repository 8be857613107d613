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
