package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"thunder/internal/target"
)

// Errors of Verify.
var (
	// ErrNoTargetDir means the processor writes only to Kafka: it has no
	// target dir to verify.
	ErrNoTargetDir = errors.New("processor: no target dir (it writes to Kafka only): nothing to verify")
	// ErrVerifyBusy means a verify (or a scrub) is running; one runs at a
	// time.
	ErrVerifyBusy = errors.New("processor: a verify or scrub is already running; try again when it is done")
)

// DefaultVerifyRate is the read rate of `thunder verify` and of the scrub,
// in bytes per second.
const DefaultVerifyRate = 64 << 20

// VerifyLine is one line of a verify's report, in this order: a start, a
// file per ledger entry, a stream per stream record, a summary. Type says
// which field is set.
type VerifyLine struct {
	Type    string               `json:"type"` // "start", "file", "stream" or "summary"
	Start   *VerifyStart         `json:"start,omitempty"`
	File    *target.FileResult   `json:"file,omitempty"`
	Stream  *target.StreamResult `json:"stream,omitempty"`
	Summary *VerifySummary       `json:"summary,omitempty"`
}

// VerifyStart opens a verify's report.
type VerifyStart struct {
	Processor string `json:"processor"`
	TargetDir string `json:"target_dir"`
	Rate      int64  `json:"rate"` // bytes per second; 0: unlimited
}

// VerifySummary closes a verify's report.
type VerifySummary struct {
	target.Summary
	Streams int     `json:"streams"`
	OK      bool    `json:"ok"` // every file ok
	Seconds float64 `json:"seconds"`
}

// Verify checks the target dir against what the processor committed
// (target.Dir.Verify), reading at most rate bytes per second (0:
// unlimited; negative: DefaultVerifyRate), and hands emit its report line by line; an error from emit
// (the client went away) stops it. It runs beside the processor's work,
// one at a time (ErrVerifyBusy while another runs), and stops when Serve
// returns; ErrNoTargetDir without a target dir.
func (p *Processor) Verify(ctx context.Context, rate int64, emit func(VerifyLine) error) (VerifySummary, error) {
	var vs VerifySummary
	if p.dir == nil {
		return vs, ErrNoTargetDir
	}
	if !p.verifying.TryLock() {
		return vs, ErrVerifyBusy
	}
	defer p.verifying.Unlock()
	if rate < 0 {
		rate = DefaultVerifyRate
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.life, cancel)() // Close stops it
	start := time.Now()
	var emitErr error
	send := func(l VerifyLine) {
		if emitErr == nil {
			if emitErr = emit(l); emitErr != nil {
				cancel()
			}
		}
	}
	send(VerifyLine{Type: "start", Start: &VerifyStart{Processor: p.cfg.Name, TargetDir: p.cfg.TargetDir, Rate: rate}})
	sum, err := p.dir.Verify(ctx, target.NewRate(rate), func(r target.FileResult) { send(VerifyLine{Type: "file", File: &r}) })
	if err == nil {
		err = p.dir.Streams(func(s target.StreamResult) {
			vs.Streams++
			send(VerifyLine{Type: "stream", Stream: &s})
		})
	}
	vs.Summary, vs.OK, vs.Seconds = sum, sum.OK(), time.Since(start).Seconds()
	if err = errors.Join(emitErr, err); err != nil {
		return vs, fmt.Errorf("verify: %w", err)
	}
	send(VerifyLine{Type: "summary", Summary: &vs})
	return vs, emitErr
}
