//go:build unix

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// TestChaos runs every fault at once: the collector rotates its files every
// 128 KiB while writers of all three kinds write, and at random moments the
// collector or the processor is killed with SIGKILL and restarted, the
// connection is cut, or the processor's target files are rotated logrotate
// style (rename, then SIGHUP). Every line must arrive exactly once, in order
// per writer and file, and the source dir must end with no rotated file left.
func TestChaos(t *testing.T) {
	skipShort(t)
	const rounds = 16
	rnd := newRand(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	proxy := newProxy(t, p.Addr)
	c := startCollector(t, "host", src, offsetsDB(t), proxy.Addr, withQuick("--rotate-size=128KiB")...)
	w := startWriters(t)
	var lws []linecheck.Writer
	for i, name := range []string{"app.log", "app.log", "app.log", "sub/jobs.log", "sub/jobs.log"} {
		lws = append(lws, linecheck.Writer{
			ID: fmt.Sprintf("w%d", i), Path: filepath.Join(src, filepath.FromSlash(name)),
			Contract: []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend, linecheck.Unlocked}[i%3],
			Lines:    12_000, Rate: 2_000, ReopenAfter: 300 * time.Millisecond,
		})
	}
	w.addWriters(src, lws...)

	var kills, pkills, cuts, reopens int
	for i := range rounds {
		pause(t, between(rnd, 150*time.Millisecond, 700*time.Millisecond))
		switch rnd.IntN(4) {
		case 0:
			c.Kill()
			c.Restart()
			kills++
		case 1:
			p.Kill()
			p.Restart()
			pkills++
		case 2:
			cuts += proxy.CutAll()
		case 3:
			for _, name := range []string{"app.log", "sub/jobs.log"} {
				from := filepath.Join(target, filepath.FromSlash(name))
				if err := os.Rename(from, fmt.Sprintf("%s.%d", from, i)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			p.Signal(syscall.SIGHUP)
			reopens++
		}
	}
	expect := w.Wait()
	opt := linecheck.Options{Alias: func(rel string) string {
		if i := strings.LastIndexByte(rel, '.'); i > 0 && strings.Trim(rel[i+1:], "0123456789") == "" {
			return rel[:i]
		}
		return rel
	}}
	r := waitDelivered(t, target, expect, opt, p, c)
	harness.WaitFor(t, 60*time.Second, func() error {
		if n := countRotated(src); n > 0 {
			return fmt.Errorf("%d rotated files left in the source dir", n)
		}
		return nil
	}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, opt)
	t.Logf("figures: lines=%d collector kills=%d processor kills=%d cuts=%d target rotations=%d source rotations=%d dup=%d",
		r.Lines, kills, pkills, cuts, reopens, logCount(c, "file rotated"), r.Dup)
}
