package processor

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/target"
)

// scrubMetrics are the series of the background scrub. A nil
// *scrubMetrics records nothing.
type scrubMetrics struct {
	runs, bytes prometheus.Counter
	files       *prometheus.GaugeVec
	last        prometheus.Gauge
}

func newScrubMetrics(reg prometheus.Registerer) *scrubMetrics {
	if reg == nil {
		return nil
	}
	const ns = "thunder_processor"
	m := &scrubMetrics{
		runs:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "scrub_runs_total", Help: "Background scrubs of the target dir that ran to the end."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "scrub_bytes_total", Help: "Bytes of target files read and checked by scrubs."}),
		files: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "scrub_files", Help: "Target files by verdict in the last scrub: ok, modified, truncated, replaced, missing, error."}, []string{"result"}),
		last:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "scrub_last_run_timestamp_seconds", Help: "When the last scrub ended, seconds since the epoch."}),
	}
	reg.MustRegister(m.runs, m.bytes, m.files, m.last)
	return m
}

func (m *scrubMetrics) ran(s target.Summary, at time.Time) {
	if m == nil {
		return
	}
	m.runs.Inc()
	m.bytes.Add(float64(s.Bytes))
	for _, v := range target.Verdicts {
		m.files.WithLabelValues(string(v)).Set(float64(s.Counts[v]))
	}
	m.last.Set(float64(at.UnixNano()) / 1e9)
}

// scrub runs Verify every ScrubInterval until ctx is done, logging each
// file that is not ok at ERROR: an operator must look at it.
func (p *Processor) scrub(ctx context.Context) {
	t := time.NewTicker(p.cfg.ScrubInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		sum, err := p.Verify(ctx, p.cfg.ScrubRate, p.logFinding)
		switch {
		case errors.Is(err, ErrVerifyBusy):
			p.log.Info("scrub skipped: a verify is running")
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Error("scrub failed", "err", err)
		default:
			p.scrubM.ran(sum.Summary, time.Now())
			p.log.Info("scrub done", "files", sum.Files, "bad", sum.Files-sum.Counts[target.VerdictOK], "bytes", sum.Bytes, "took", time.Duration(sum.Seconds*float64(time.Second)).Round(time.Millisecond))
		}
	}
}

// logFinding logs a file that is not as committed.
func (p *Processor) logFinding(l VerifyLine) error {
	if r := l.File; r != nil && r.Verdict != target.VerdictOK {
		p.log.Error("scrub: target file differs from what was committed", "name", r.Name, "verdict", string(r.Verdict),
			"offset", r.Offset, "end", r.End, "size", r.Size, "found", r.Found, "reason", r.Reason)
	}
	return nil
}
