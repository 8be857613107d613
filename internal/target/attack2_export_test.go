package target

// CommitWanted is what an append that waits for room asks Run on: a
// test's own committer answers it.
func CommitWanted(d *Dir) <-chan struct{} { return d.full }

// HoldCommits keeps commits from running until the returned func is
// called: a test looks at the files between two.
func HoldCommits(d *Dir) (release func()) {
	d.commitMu.Lock()
	return d.commitMu.Unlock
}

// AppendsAtOnce reports whether an append to s would not wait for a
// descriptor: its file has one, or its bytes would be buffered.
func AppendsAtOnce(s *Stream) bool {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fd != nil || len(f.behind) > 0 || s.d.canBuffer(f)
}

// OpenFDs is how many target file descriptors d counts as open.
func OpenFDs(d *Dir) int64 { return d.openFDs.Load() }
