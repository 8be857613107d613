package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"thunder/internal/linecheck"
	"thunder/internal/target"
)

// demoDeliverTimeout bounds the wait for the last lines once the writers
// stopped.
const demoDeliverTimeout = 60 * time.Second

// demoProgress is what the progress line compares with the last one.
type demoProgress struct {
	delivered uint64
	at        time.Time
}

// reset starts the progress lines now and returns now.
func (p *demoProgress) reset() time.Time {
	p.delivered, p.at = 0, time.Now()
	return p.at
}

// printProgress prints one progress line: bytes in the target dirs, their
// rate, the collector's lag and the rotations so far.
func (d *demo) printProgress(ctx context.Context) {
	now, delivered := time.Now(), d.delivered()
	rate := float64(delivered-d.progress.delivered) / now.Sub(d.progress.at).Seconds()
	d.progress = demoProgress{delivered, now}
	c := d.log.counts()
	fmt.Fprintf(d.out, "%s delivered %10s  %12s  %s  rotations %3d  deleted %3d\n", d.stamp(), fmtBytes(delivered), fmtRate(rate), d.colState(ctx), c.rotations, c.deletions)
}

// colState is the collector's part of the progress line.
func (d *demo) colState(ctx context.Context) string {
	st, ok := d.colStatus(ctx)
	if !ok {
		return fmt.Sprintf("%-22s", "collector down")
	}
	s := fmt.Sprintf("lag %10s", fmtBytes(uint64(max(st.LagBytes, 0))))
	if len(st.Processors) > 1 {
		var per []string
		for _, l := range st.Processors {
			if l.Connected {
				per = append(per, strconv.Itoa(l.Streams))
			} else {
				per = append(per, "down")
			}
		}
		s += "  files per processor " + strings.Join(per, "/")
	}
	return s
}

// delivered returns the bytes in the target dirs' files.
func (d *demo) delivered() uint64 {
	var n uint64
	for _, dir := range d.dsts {
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return nil // a file just created or renamed: counted next time
			case e.IsDir() && e.Name() == linecheck.StateDir && filepath.Dir(path) == dir:
				return filepath.SkipDir
			case e.Type().IsRegular():
				if fi, err := e.Info(); err == nil {
					n += uint64(fi.Size())
				}
			}
			return nil
		})
	}
	return n
}

// finish waits for the writers' lines to be delivered, runs thunder
// verify's check with the daemons running, stops them and checks that
// every line arrived exactly once.
func (d *demo) finish(ctx context.Context, expect []linecheck.Expect, total uint64) error {
	fmt.Fprintf(d.out, "%s writers stopped after %d lines; waiting for delivery\n", d.stamp(), total)
	if err := d.awaitDelivery(ctx, expect); err != nil {
		return err
	}
	failed, err := d.verify(ctx)
	if err != nil {
		return err
	}
	for _, dm := range append([]*demoDaemon{d.col}, d.procs...) {
		if err := dm.signal(syscall.SIGTERM); err != nil {
			return err
		}
	}
	return errors.Join(d.report(expect, total), failed, d.logProblems())
}

// awaitDelivery waits until the target dirs hold every line written (or
// a problem waiting cannot repair) and the collector's lag is 0, and
// prints the last progress line.
func (d *demo) awaitDelivery(ctx context.Context, expect []linecheck.Expect) error {
	deadline := time.Now().Add(demoDeliverTimeout)
	for {
		rep, err := linecheck.VerifyAll(d.dsts, expect, linecheck.Options{})
		if err != nil {
			return err
		}
		if rep.Failed() || rep.Complete() && d.lagZero(ctx) {
			break
		}
		if time.Now().After(deadline) {
			break // the report says what is missing
		}
		if err := d.pause(ctx); err != nil {
			return err
		}
	}
	d.printProgress(ctx)
	return nil
}

// lagZero reports whether the collector has every byte acknowledged; its
// lag is recomputed once a second.
func (d *demo) lagZero(ctx context.Context) bool {
	st, ok := d.colStatus(ctx)
	return ok && st.LagBytes == 0
}

// verify runs thunder verify's check on each processor, still running,
// through its admin endpoint, and prints the verdict; failed is the
// demo's failure once the line check is printed too.
func (d *demo) verify(ctx context.Context) (failed error, err error) {
	var files, bad int
	for _, p := range d.procs {
		_, addr := p.addrs()
		body, err := newAdminClient(addr, demoStatusWait).stream(ctx, "/verify?rate=0")
		if err != nil {
			return nil, err
		}
		sum, err := readVerify(body, func(l verifyLine, _ []byte) error {
			if f := l.File; f != nil && f.Verdict != target.VerdictOK {
				fmt.Fprintf(d.out, "  %s: %s %s: %s\n", p.name, f.Verdict, f.Name, where(f))
			}
			return nil
		})
		_ = body.Close() // read to its summary
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", p.name, err)
		}
		files, bad = files+sum.Files, bad+sum.Files-sum.Counts[target.VerdictOK]
	}
	who := "the processor"
	if len(d.procs) > 1 {
		who = "the processors"
	}
	if bad > 0 {
		fmt.Fprintf(d.out, "thunder verify: NOT OK: %d of %d target files differ from what %s committed\n", bad, files, who)
		return errors.New("demo: thunder verify found target files not as committed"), nil
	}
	fmt.Fprintf(d.out, "thunder verify: ok: all %d target files hold exactly what %s committed (checked while running)\n", files, who)
	return nil, nil
}

// logProblems prints the daemons' log lines that fail the demo, if any,
// and the count of ERROR lines.
func (d *demo) logProblems() error {
	c := d.log.counts()
	if c.errors > 0 {
		fmt.Fprintf(d.out, "daemons.log has %d ERROR lines\n", c.errors)
	}
	if len(c.bad) == 0 {
		return nil
	}
	fmt.Fprintf(d.out, "daemons.log reports a race, a panic or a digest mismatch (%d lines), e.g.:\n  %s\n", len(c.bad), c.bad[0])
	return errors.New("demo: a daemon reported a race, a panic or a digest mismatch")
}
