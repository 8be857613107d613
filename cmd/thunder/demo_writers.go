package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"thunder/internal/linecheck"
	"thunder/internal/shard"
)

// demoWriter is one writer of the demo.
type demoWriter struct {
	id       string
	file     int // index of its file in the demo's names
	contract linecheck.Contract
}

// demoWriters write demoFiles files, two of each contract; the first file
// is the busiest, with two writers.
var demoWriters = []demoWriter{
	{"web-1", 0, linecheck.OpenWriteClose},
	{"web-2", 0, linecheck.LockedAppend},
	{"api-1", 1, linecheck.LockedAppend},
	{"worker-1", 2, linecheck.Unlocked},
	{"cron-1", 3, linecheck.OpenWriteClose},
	{"db-1", 4, linecheck.Unlocked},
}

// demoFiles is how many files the writers write.
const demoFiles = 5

// demoLineBytes is the length of every line written, newline included.
const demoLineBytes = linecheck.DefaultLineBytes

// demoNames are the candidate file names, in order of preference: one
// processor takes the first demoFiles; several take the first that give
// each processor at least one file as its first choice.
var demoNames = []string{"app/access.log", "api/requests.log", "worker/jobs.log", "cron.log", "db/slow.log",
	"nginx/access.log", "nginx/error.log", "auth.log", "mail/mail.log", "kern.log", "app/error.log", "syslog"}

// demoMaxCandidates bounds the search for names that spread over the
// processors: past demoNames, candidates are app/part-N.log.
const demoMaxCandidates = 10000

// demoNamesFor returns demoFiles names such that each of addrs ranks first
// for one of them at least (PROTOCOL §11: the ports are random, so the
// names are picked once the processors listen).
func demoNamesFor(addrs []string) ([]string, error) {
	covered, uncovered := make([]bool, len(addrs)), len(addrs)
	var names []string
	for i := 0; i < demoMaxCandidates && len(names) < demoFiles; i++ {
		name := fmt.Sprintf("app/part-%d.log", i)
		if i < len(demoNames) {
			name = demoNames[i]
		}
		first := shard.Rank(name, addrs)[0]
		if covered[first] && demoFiles-len(names) <= uncovered {
			continue // the slots left are for processors without a file
		}
		names = append(names, name)
		if !covered[first] {
			covered[first], uncovered = true, uncovered-1
		}
	}
	if len(names) < demoFiles {
		return nil, errors.New("demo: no file names found that spread over the processors")
	}
	return names, nil
}

// firstChoice returns the index of the processor that ranks first for
// name.
func (d *demo) firstChoice(name string) int { return shard.Rank(name, d.addrs)[0] }

// contractText says how a writer of contract c writes.
func contractText(c linecheck.Contract) string {
	switch c {
	case linecheck.OpenWriteClose:
		return "open/write/close per line"
	case linecheck.LockedAppend:
		return "flock held, reopens every 1000 lines"
	}
	return "held open without a lock, reopens every second"
}

// demoWriting is the writers of a demo at work.
type demoWriting struct {
	stop    context.CancelFunc
	done    chan struct{} // closed when every writer returned
	written []uint64      // lines, by writer
	names   []string      // file, by writer
	mu      sync.Mutex
	err     error
}

// startWriters starts the writers, until stop.
func (d *demo) startWriters(ctx context.Context) *demoWriting {
	wctx, stop := context.WithCancel(ctx)
	w := &demoWriting{stop: stop, done: make(chan struct{}), written: make([]uint64, len(demoWriters))}
	var wg sync.WaitGroup
	for i, dw := range demoWriters {
		name := d.names[dw.file]
		w.names = append(w.names, name)
		wr := &linecheck.Writer{ID: dw.id, Path: filepath.Join(d.src, filepath.FromSlash(name)), Contract: dw.contract, Rate: d.rate, LineBytes: demoLineBytes}
		wg.Go(func() {
			n, err := wr.Run(wctx)
			w.written[i] = n
			w.mu.Lock()
			w.err = errors.Join(w.err, err)
			w.mu.Unlock()
		})
	}
	go func() { wg.Wait(); close(w.done) }()
	d.start = d.progress.reset()
	return w
}

// expect returns what the writers wrote, once they are done.
func (w *demoWriting) expect() ([]linecheck.Expect, uint64, error) {
	if w.err != nil {
		return nil, 0, fmt.Errorf("demo writer: %w", w.err)
	}
	var total uint64
	expect := make([]linecheck.Expect, len(demoWriters))
	for i, dw := range demoWriters {
		expect[i] = linecheck.Expect{Writer: dw.id, Name: w.names[i], Lines: w.written[i]}
		total += w.written[i]
	}
	return expect, total, nil
}
