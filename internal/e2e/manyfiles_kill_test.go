//go:build unix

package e2e_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

// TestProcessorKill9ManyFiles kills the processor with SIGKILL at 10
// random moments while 4 collectors stream 1,000 files (250 each, one
// open/write/close per line). Its commits then touch many files at once
// (one syncfs(2) instead of an fsync each), the opens after every restart
// share their state transactions, and --max-open-files below the number
// of files makes appends wait for descriptors. Every line must arrive
// exactly once.
func TestProcessorKill9ManyFiles(t *testing.T) {
	kill9ManyFiles(t, "thunder_processor_syncfs_total")
}

// TestProcessorKill9ManyFilesJournal is the same with the journal on
// (--journal-min-files): commits of 64 files or more copy their bytes into
// .thunder/journal.* instead of syncing the files, records of journaled
// files wait for a checkpoint, and each restart in the same boot syncs the
// file system and removes the segments without replaying them.
func TestProcessorKill9ManyFilesJournal(t *testing.T) {
	kill9ManyFiles(t, "thunder_processor_journal_commits_total", "--journal-min-files=64")
}

// kill9ManyFiles runs the test above with the processor's flags, and logs
// the counter since the last restart.
func kill9ManyFiles(t *testing.T, counter string, flags ...string) {
	skipShort(t)
	const (
		collectors = 4
		perColl    = 250
		rounds     = 20
		kills      = 10
	)
	rnd := newRand(t)
	target := t.TempDir()
	p := startProcessor(t, target, append([]string{"--max-open-files=256", "--commit-interval=100ms", "--admin-address=127.0.0.1:0"}, flags...)...)
	type file struct {
		path, id, name string
		lines          uint64
	}
	var files []*file
	var daemons []*Daemon
	for c := range collectors {
		src := t.TempDir()
		host := fmt.Sprintf("host%d", c)
		for i := range perColl {
			name := fmt.Sprintf("%s/d%d/f%03d.log", host, i%10, i)
			files = append(files, &file{path: filepath.Join(src, fmt.Sprintf("%s/d%d/f%03d.log", host, i%10, i)), id: fmt.Sprintf("c%d-f%03d", c, i), name: name})
		}
		daemons = append(daemons, startCollector(t, host, src, offsetsDB(t), p.Addr, quickArgs...))
	}
	killed := 0
	for r := range rounds {
		for _, f := range files {
			appendLines(t, f.path, f.id, f.lines, 2)
			f.lines += 2
		}
		if r%2 == 1 && killed < kills {
			pause(t, between(rnd, 0, 400*time.Millisecond))
			p.Kill()
			p.Restart()
			killed++
		}
	}
	expect := make([]linecheck.Expect, len(files))
	for i, f := range files {
		expect[i] = linecheck.Expect{Writer: f.id, Name: f.name, Lines: f.lines}
	}
	r := waitDelivered(t, target, expect, linecheck.Options{}, append([]*Daemon{p}, daemons...)...)
	// Since the last restart: the collectors' resends touch many files.
	n, err := metric(adminAddr(t, p), counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("since the last restart: %s %v", counter, n)
	for _, c := range daemons {
		c.Stop()
	}
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: files=%d lines=%d processor kills=%d dup=%d", len(files), r.Lines, killed, r.Dup)
}
