package target_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/target"
)

// hookLimiter runs fn at its first WaitN: something that happens while
// Verify reads.
type hookLimiter struct {
	fn   func()
	done bool
}

func (l *hookLimiter) WaitN(context.Context, int) error {
	if !l.done {
		l.done = true
		l.fn()
	}
	return nil
}

// Attack 12 (false alarm): logrotate moves b.log away and SIGHUPs the
// processor while a verify (or the scrub) is reading a.log. The Reopen
// drops b.log's entry, as the operator asked; the verify, working from its
// snapshot of the ledger, then found nothing at b.log and reported it
// missing (the scrub logs that at ERROR, verify exits 1), for a file that
// was moved away exactly as the README says to. An entry dropped before
// its file is looked at is not reported.
func TestAttack12VerifyDuringRotationNoFalseMissing(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	writeCommitted(t, d, key("c", 2), "b.log", 10<<10)
	lim := &hookLimiter{fn: func() {
		if err := os.Rename(filepath.Join(dir, "b.log"), filepath.Join(dir, "b.log.1")); err != nil {
			t.Error(err)
		}
		if _, err := target.ReopenAcks(d); err != nil {
			t.Error(err)
		}
	}}
	got := map[string]target.FileResult{}
	sum, err := d.Verify(t.Context(), lim, func(r target.FileResult) { got[r.Name] = r })
	if err != nil {
		t.Fatal(err)
	}
	if !lim.done {
		t.Fatal("the limiter was never asked")
	}
	if r, ok := got["b.log"]; ok || !sum.OK() {
		t.Errorf("b.log moved away and Reopen run during the verify: reported %+v (summary %+v), want not reported", r, sum)
	}
	if got["a.log"].Verdict != target.VerdictOK {
		t.Errorf("a.log: %+v", got["a.log"])
	}
}
