package target

import (
	"strconv"
	"strings"
	"sync"
)

// maxParallelSyncs bounds the fsyncs a commit runs at once (a variable for
// the benchmark that compares it with one at a time).
var maxParallelSyncs = 32

// syncfsMin is how many files of the target's file system a commit must
// sync before it syncs the whole file system with one syncfs(2) instead of
// one fsync per file. Below it, fsyncs are cheaper: syncfs also writes back
// what other programs left dirty on that file system. Above it, one call
// that makes one journal commit beats thousands of fsyncs, each of which
// waits for the journal on its own (BenchmarkCommitManyFiles; docs/
// BENCHMARKS.md). A variable for that benchmark.
var syncfsMin = 32

// syncAll makes the snapshots' files durable and returns each one's error.
// Files on the target's file system are synced with one syncfs(2) when
// there are many of them; if it fails, each is fsynced, so the failure is
// pinned on the files it concerns (each descriptor reports its own file's
// writeback errors; the file system's are reported once to the syncfs
// descriptor) and only their streams resend.
func (d *Dir) syncAll(snaps []snapshot) []error {
	errs := make([]error, len(snaps))
	var same, other []int
	closed := false // a file without a descriptor: only syncfs needs none
	for i, sn := range snaps {
		switch {
		case !sn.wrote(), sn.journaled:
		case sn.id.Dev == d.fsDev && !sn.fsync:
			same = append(same, i)
			closed = closed || sn.fd == nil
		default:
			other = append(other, i)
		}
	}
	if d.syncfs && (len(same) >= syncfsMin || closed) {
		if err := syncfs(int(d.tree.root.Fd())); err == nil {
			d.m.syncedFS()
			same = nil
		} else {
			d.log.Warn("syncfs of the target file system failed; syncing each file to find the failed ones", "files", len(same), "err", err)
			d.syncfsFailed()
		}
	}
	fsyncEach(append(same, other...), errs, func(i int) error {
		if sn := snaps[i]; sn.fd != nil {
			return sn.fd.Sync()
		}
		return d.syncClosed(snaps[i])
	})
	return errs
}

// syncfsFailed has the next commit of every open target file fsync it. The
// error syncfs just reported, once for the file system, may be that of a
// file this commit does not hold (written since its snapshot, its pages
// written back by this syncfs or the kernel's flusher): the next syncfs
// reports nothing, and only that file's own descriptor still has the error.
// A file written since is open now, or closed with its bytes uncommitted
// (behind.go): a descriptor opened again reports the error no one has seen
// yet. commitMu is held.
func (d *Dir) syncfsFailed() {
	for _, f := range d.allFiles() {
		f.mu.Lock()
		f.fsync = f.fd != nil || f.unsynced
		f.mu.Unlock()
	}
}

// fsyncEach fsyncs the snapshots at idx, several at once: the file system
// can then make one journal commit for many of them, where one fsync after
// another waits for a journal commit each.
func fsyncEach(idx []int, errs []error, syncOne func(i int) error) {
	if len(idx) == 1 || maxParallelSyncs == 1 {
		for _, i := range idx {
			errs[i] = syncOne(i)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelSyncs)
	for _, i := range idx {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = syncOne(i)
		})
	}
	wg.Wait()
}

// kernelVersion parses the "6.18" of a release such as "6.18.44-fc".
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i]
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(minorDigits)
	return major, minor, err1 == nil && err2 == nil
}
