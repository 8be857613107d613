package target

// Counts returns the sizes of the in-memory maps, for leak checks by the
// attack tests.
func (d *Dir) Counts() (files, streams, opened int) {
	d.mu.Lock()
	files, streams = len(d.files), len(d.streams)
	d.mu.Unlock()
	d.idMu.Lock()
	opened = len(d.opened)
	d.idMu.Unlock()
	return
}
