//go:build unix

package e2e_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

// flatRE matches the paths of {host}/{file} (mixedWriters' names).
var flatRE = regexp.MustCompile(`^h[0-9]+/([^/]+\.log|sub/.*)$`)

// datedRE matches the {date} component of {host}/{date}/{file}.
var datedRE = regexp.MustCompile(`^(h[0-9]+)/[0-9]{4}-[0-9]{2}-[0-9]{2}/`)

// TestTargetLayout: five collectors whose files have the same names write
// under --target-layout={host}/{file}, the processor reopens its files
// (SIGHUP), is killed with -9 and restarts with {host}/{date}/{file}, a
// collector is killed with -9 and restarts: every
// host's lines are exactly once, in its own tree only (a line in another
// host's tree is misplaced), the bytes after the restart in the dated
// paths, and thunder verify finds every file as committed.
func TestTargetLayout(t *testing.T) {
	skipShort(t)
	const hosts = 5
	target := t.TempDir()
	p := startProcessor(t, target, append(adminArgs, "--target-layout={host}/{file}")...)
	var specs []writerSpec
	var cs []*Daemon
	for i := range hosts {
		host, src := fmt.Sprintf("h%d", i), t.TempDir()
		for _, s := range mixedWriters(host+"-w", src, 2) {
			s.Lines, s.Rate = linesPerWriter/2, writerRate/2
			specs = append(specs, s)
		}
		cs = append(cs, startCollector(t, host, src, offsetsDB(t), p.Addr))
	}
	w := startWriters(t, specs...)
	running := append([]*Daemon{p}, cs...)
	waitLines(t, 30*time.Second, target, 1000, running...)

	p.Signal(syscall.SIGHUP)
	waitLog(t, 10*time.Second, p, "target files reopened", 1, running...)
	waitLines(t, 30*time.Second, target, 3000, running...)
	p.Kill()
	i := slices.Index(p.Args, "--target-layout={host}/{file}")
	p.Args[i] = "--target-layout={host}/{date}/{file}"
	p.Restart()
	waitLines(t, 30*time.Second, target, 5000, running...)
	cs[0].Kill() // its streams resume where they are, at their dated paths
	cs[0].Restart()

	expect := w.Wait()
	for i, e := range expect {
		host, _, _ := strings.Cut(e.Writer, "-")
		expect[i].Name = host + "/" + e.Name
	}
	opt := linecheck.Options{Alias: func(rel string) string { return datedRE.ReplaceAllString(rel, "$1/") }}
	waitDelivered(t, target, expect, opt, running...)
	runVerify(t, adminAddr(t, p), 0)
	for _, c := range cs {
		c.Stop()
	}
	p.Stop()
	finalCheck(t, target, expect, opt)
	var flat, dated int
	for _, f := range targetFiles(t, target) {
		switch {
		case datedRE.MatchString(f):
			dated++
		case flatRE.MatchString(f):
			flat++
		default:
			t.Errorf("target file %s follows neither layout", f)
		}
	}
	if flat < hosts || dated < hosts {
		t.Errorf("%d files under {host}/{file} and %d under {host}/{date}/{file}, want at least %d each", flat, dated, hosts)
	}
}
