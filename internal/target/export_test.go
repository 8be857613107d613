package target

import (
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// SetParallelSyncs sets how many fsyncs a commit runs at once and returns
// the previous value.
func SetParallelSyncs(n int) int {
	old := maxParallelSyncs
	maxParallelSyncs = n
	return old
}

// CloseAcks is Close returning its acknowledgements instead of handing
// them to the owners; ReopenAcks the same for Reopen.
func CloseAcks(d *Dir) ([]Ack, error)  { return d.close() }
func ReopenAcks(d *Dir) ([]Ack, error) { return d.reopen() }

// SetSyncfsMin sets how many files a commit syncs before it uses syncfs(2)
// and returns the previous value.
func SetSyncfsMin(n int) int {
	old := syncfsMin
	syncfsMin = n
	return old
}

// LastCommitTimings returns how long the last commit's sync and state
// transaction took.
func (d *Dir) LastCommitTimings() (sync, record time.Duration) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	return d.timings.sync, d.timings.record
}

// KernelVersion is kernelVersion.
var KernelVersion = kernelVersion

// SetSyncfs replaces syncfs(2) until the end of the test.
func SetSyncfs(t testing.TB, f func(fd int) error) {
	old := syncfs
	syncfs = f
	t.Cleanup(func() { syncfs = old })
}

// SpendReserve gives up d's reserve of descriptors, as a shortage that
// outlasts it does.
func SpendReserve(d *Dir) { d.reserve.release() }

// DirsToSync returns the directories the next commit fsyncs.
func DirsToSync(d *Dir) []string {
	d.pendMu.Lock()
	defer d.pendMu.Unlock()
	var dirs []string
	for dir := range d.dirSync {
		dirs = append(dirs, dir)
	}
	return dirs
}

// BreakState closes d's state store under it, as a store that fails every
// transaction (its disk full) would make them fail.
func BreakState(d *Dir) { _ = d.db.Close() }

// BehindBytes returns the bytes appended to files without a descriptor,
// not yet written (behind.go); WritesBehind whether d buffers them at all.
func BehindBytes(d *Dir) int64 { return d.behindBytes.Load() }
func WritesBehind(d *Dir) bool { return d.syncfs }

// SetJournal has commits of at least min files use the journal, and the
// machine's boot be boot, until the end of the test.
func SetJournal(t testing.TB, min int, boot string) {
	oldMin, oldBoot := journalMin, bootID
	journalMin, bootID = min, func() string { return boot }
	t.Cleanup(func() { journalMin, bootID = oldMin, oldBoot })
}

// Journaling reports whether d has a journal.
func Journaling(d *Dir) bool { return d.jnl != nil }

// Checkpoint starts a journal checkpoint now, without waiting for it;
// WaitCheckpoint waits until none runs.
func Checkpoint(d *Dir) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	d.jnl.maybeCheckpoint(true)
}
func WaitCheckpoint(d *Dir) { d.jnl.ckDone.Wait() }

// SetSegmentDirSync replaces the fsync of the state directory after a
// journal segment is made, until the end of the test.
func SetSegmentDirSync(t testing.TB, f func() error) {
	old := syncSegmentDir
	syncSegmentDir = func(*tree) error { return f() }
	t.Cleanup(func() { syncSegmentDir = old })
}

// CountSettles counts the fsyncs of files recorded afresh while the journal
// holds entries of them, until the end of the test.
func CountSettles(t testing.TB) *atomic.Int64 {
	var n atomic.Int64
	old := settleSync
	settleSync = func(f *os.File) error { n.Add(1); return old(f) }
	t.Cleanup(func() { settleSync = old })
	return &n
}

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
