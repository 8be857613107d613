package target

import (
	"context"
	"fmt"
	"time"

	"thunder/internal/backoff"
)

// notify wakes Run after an append; full asks for a commit now.
func (d *Dir) notify(full bool) {
	if d.dueSince.Load() == 0 {
		d.dueSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	if full {
		select {
		case d.full <- struct{}{}:
		default:
		}
	}
}

// commitRetry spaces the retries of a failed commit.
var commitRetry = backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// Run is the group commit loop: after the first append following a commit
// it waits up to CommitInterval (less once CommitBytes are pending), then
// commits and hands the acknowledgements to the streams' owners. A failed
// commit is retried with backoff; nothing is acknowledged until one
// succeeds. Once a second it closes idle files past MaxOpenFiles. When ctx
// is done it makes a last commit (a few tries) and returns nil.
func (d *Dir) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	var failing int
	for {
		select {
		case <-d.kick:
		case <-d.full:
		case <-idle.C:
			if n := d.CloseIdle(d.cfg.MaxOpenFiles); n > 0 {
				d.log.Debug("closed idle target files", "files", n)
			}
			d.checkpointIdle()
			continue
		case <-ctx.Done():
			d.finalCommit()
			return nil
		}
		d.waitDue(ctx, timer)
		d.dueSince.Store(0) // appends from here on are in this commit or ask for the next
		if d.commit() {
			if failing > 0 {
				d.log.Info("commits succeed again", "failures", failing)
				failing = 0
			}
			continue
		}
		failing++
		if !commitRetry.Wait(ctx, failing) {
			continue // the next round sees ctx done and makes the last commit
		}
		d.notify(false)
	}
}

// waitDue waits until the first append asking for a commit is
// CommitInterval old, or CommitBytes are pending, or ctx is done.
func (d *Dir) waitDue(ctx context.Context, timer *time.Timer) {
	wait := d.cfg.CommitInterval
	if since := d.dueSince.Load(); since != 0 {
		wait -= time.Since(time.Unix(0, since))
	}
	if wait <= 0 {
		return
	}
	timer.Reset(wait)
	select {
	case <-timer.C:
	case <-d.full:
		timer.Stop()
	case <-ctx.Done():
		timer.Stop()
	}
}

// finalCommit commits what the stopped appenders left.
func (d *Dir) finalCommit() {
	for range 3 {
		if d.commit() {
			return
		}
	}
}

// commit runs one group commit, hands out its acknowledgements and reports
// whether it succeeded.
func (d *Dir) commit() bool {
	start := time.Now()
	d.commitMu.Lock()
	locked := time.Now()
	acks, err := d.commitLocked()
	t := d.timings
	t.wait = locked.Sub(start)
	d.health = health{last: start, err: err}
	d.commitMu.Unlock()
	deliver(acks)
	if len(acks) > 0 || err != nil {
		d.m.committed(time.Since(start), t, err)
	}
	if err != nil {
		d.log.Error("commit failed; not acknowledging", "err", err)
		return false
	}
	return true
}

// health is the outcome of the last commit Run made.
type health struct {
	last time.Time
	err  error
}

// Health returns when Run last committed and that commit's error.
func (d *Dir) Health() (time.Time, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	if d.health.err != nil {
		return d.health.last, fmt.Errorf("target dir: last commit failed: %w", d.health.err)
	}
	return d.health.last, nil
}

// timings is how long the parts of a commit took.
type timings struct {
	wait     time.Duration // for commitMu (Reopen, CloseIdle)
	snapshot time.Duration // looking at each touched file, writing what was buffered for closed ones
	sync     time.Duration // fsync of the touched files and directories
	record   time.Duration // the state transaction
}

// checkpointIdle starts a journal checkpoint that is due while no commits
// come to start it.
func (d *Dir) checkpointIdle() {
	if d.jnl == nil {
		return
	}
	d.commitMu.Lock()
	d.jnl.maybeCheckpoint(false)
	d.commitMu.Unlock()
}
