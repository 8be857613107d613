package main

import (
	"fmt"
	"path/filepath"
	"syscall"

	"thunder/internal/linecheck"
)

// report checks the target dirs with every daemon stopped and prints the
// verdict: errDemoFailed unless every line arrived exactly once (with
// several processors: once on each, and on two only within the bound).
func (d *demo) report(expect []linecheck.Expect, total uint64) error {
	rep, err := linecheck.VerifyAll(d.dsts, expect, linecheck.Options{})
	if err != nil {
		return err
	}
	c := d.log.counts()
	procStops := d.stopped["processor"]
	fmt.Fprintf(d.out, "%ss: processor %d, collector %d (while %d writers wrote and %d rotations ran; %d rotated files deleted once delivered)\n",
		d.sigText(), procStops, d.stopped["collector"], len(demoWriters), c.rotations, c.deletions)
	ok := d.reportLines(rep, total)
	if len(d.procs) > 1 {
		ok, err = d.reportShards(expect, rep, procStops, ok)
		if err != nil {
			return err
		}
	}
	if !ok {
		for _, p := range rep.Problems {
			fmt.Fprintln(d.out, "  ", p)
		}
		fmt.Fprintln(d.out, "verdict: FAILED")
		return errDemoFailed
	}
	if len(d.procs) == 1 {
		fmt.Fprintln(d.out, "verdict: exactly once: every line arrived once, whole, in order, under its file's name")
	} else {
		fmt.Fprintln(d.out, "verdict: every line arrived, whole and in order, exactly once on each processor; copies on two processors within the bound")
	}
	return nil
}

// reportLines prints the line check of the target dirs together and
// reports whether it passed: with one processor exactly once, with
// several nothing lost or bad (copies on two are judged apart).
func (d *demo) reportLines(rep linecheck.Report, total uint64) bool {
	where := "the target dir holds"
	if len(d.dsts) > 1 {
		where = fmt.Sprintf("the %d target dirs hold", len(d.dsts))
	}
	fmt.Fprintf(d.out, "lines: %d written; %s %d: %d lost, %d duplicated, %d corrupted (%d reordered, %d partial, %d misplaced, %d unexpected)\n",
		total, where, rep.Lines, rep.Lost, rep.Dup, rep.Corrupt, rep.Reordered, rep.Partial, rep.Misplaced, rep.Unexpected)
	if len(d.dsts) == 1 {
		return rep.OK()
	}
	return rep.Complete() && rep.Corrupt+rep.Partial+rep.Misplaced+rep.Unexpected+rep.Reordered == 0
}

// reportShards prints each processor's own check and the copies on two
// processors against the documented bound (PROTOCOL §11: one window per
// collector and failover after a kill -9, none after SIGTERM), and
// reports whether all passed and ok held.
func (d *demo) reportShards(expect []linecheck.Expect, union linecheck.Report, failovers int, ok bool) (bool, error) {
	for i, dir := range d.dsts {
		one, err := linecheck.Verify(dir, expect, linecheck.Options{})
		if err != nil {
			return false, err
		}
		verdict := "none twice, in order"
		if one.Failed() || one.Partial != 0 {
			verdict, ok = "NOT exactly once: "+one.String(), false
		}
		fmt.Fprintf(d.out, "  %s (%s): %d lines, %s\n", d.procs[i].name, filepath.Base(dir), one.Lines, verdict)
	}
	bound := uint64(failovers) * demoWindowBytes // one collector
	why := fmt.Sprintf("one --window-bytes (%s) per collector and failover, %d failovers", fmtBytes(demoWindowBytes), failovers)
	if d.sig == syscall.SIGTERM {
		bound, why = 0, "none: a processor stopped with SIGTERM acknowledges all it committed"
	}
	dup := uint64(union.Dup) * demoLineBytes
	within := "within it"
	if dup > bound {
		within, ok = "OVER IT", false
	}
	fmt.Fprintf(d.out, "on two processors: %d lines (%s); the documented bound is %s (%s): %s\n", union.Dup, fmtBytes(dup), fmtBytes(bound), why, within)
	return ok, nil
}
