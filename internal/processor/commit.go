package processor

import (
	"context"
	"time"

	"thunder/internal/backoff"
	"thunder/internal/kafka"
	"thunder/internal/target"
)

// commitLoop runs group commits: after the first append following a commit
// it waits up to CommitInterval (less when CommitBytes are pending), then
// commits and hands the acknowledgements to the sessions. A failed commit is
// retried with backoff; nothing is acknowledged until it succeeds.
func (p *Processor) commitLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	var failing int
	for {
		select {
		case <-p.kick:
		case <-p.full:
		case <-idle.C:
			if n := p.dir.CloseIdle(p.cfg.MaxOpenFiles); n > 0 {
				p.log.Debug("closed idle target files", "files", n)
			}
			continue
		case <-ctx.Done():
			return
		}
		timer.Reset(p.cfg.CommitInterval)
		select {
		case <-timer.C:
		case <-p.full:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return
		}
		if !p.commit() {
			failing++
			if !commitRetry.Wait(ctx, failing) {
				return
			}
			select {
			case p.kick <- struct{}{}:
			default:
			}
			continue
		}
		if failing > 0 {
			p.log.Info("commits succeed again", "failures", failing)
			failing = 0
		}
	}
}

// commitRetry spaces the retries of a failed commit.
var commitRetry = backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// commit runs one group commit and reports whether it succeeded.
func (p *Processor) commit() bool {
	start := time.Now()
	acks, err := p.dir.Commit()
	p.dispatch(acks)
	took := time.Since(start)
	if len(acks) > 0 || err != nil {
		p.m.committed(took, p.dir.LastTimings(), err)
	}
	p.commitMu.Lock()
	p.lastCommit, p.commitErr = start, ""
	if err != nil {
		p.commitErr = err.Error()
	}
	p.commitMu.Unlock()
	if err != nil {
		p.log.Error("commit failed; not acknowledging", "err", err)
		return false
	}
	if len(acks) > 0 {
		p.log.Debug("committed", "streams", len(acks), "took", time.Since(start))
	}
	return true
}

// finalCommit commits what the stopped sessions appended.
func (p *Processor) finalCommit() {
	for range 3 {
		if p.commit() {
			return
		}
	}
}

// dispatch hands acknowledgements to the sessions that own the streams.
func (p *Processor) dispatch(acks []target.Ack) {
	for _, a := range acks {
		if s, ok := a.Owner.(*session); ok {
			s.queueFileAck(a.Stream, a.Offset)
		}
	}
}

// dispatchKafka hands the Kafka output's acknowledgements to the sessions.
func (p *Processor) dispatchKafka(acks []kafka.Ack) {
	for _, a := range acks {
		if s, ok := a.Owner.(*session); ok {
			s.queueKafkaAck(a.Stream, a.Offset)
		}
	}
}
