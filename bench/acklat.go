//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"thunder/internal/harness"
)

// adminRE finds the collector's admin address in its log.
var adminRE = regexp.MustCompile(`\bmsg="?admin listening"?\s(?:.*\s)?addr="?([^\s"]+)|"msg":"admin listening".*?"addr":"([^"]+)"`)

// adminAddr waits for d's admin listening line and returns its address.
func (d *daemon) adminAddr() (string, error) {
	m, err := d.WaitLog(daemonTimeout, adminRE)
	if err != nil {
		return "", err
	}
	return m[1] + m[2], nil
}

// ackHist is a snapshot of the collector's thunder_collector_ack_seconds:
// cumulative counts at each upper bound, as /metrics has them.
type ackHist struct {
	le    []float64
	count []uint64
}

// scrapeMetrics reads the admin endpoint's /metrics at addr.
func scrapeMetrics(addr string) (map[string]*dto.MetricFamily, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics of %s: %w", addr, err)
	}
	return mfs, nil
}

// single is the one series of family name in mfs.
func single(mfs map[string]*dto.MetricFamily, name string) (*dto.Metric, error) {
	mf := mfs[name]
	if mf == nil || len(mf.GetMetric()) != 1 {
		return nil, fmt.Errorf("no single series of %s in /metrics", name)
	}
	return mf.GetMetric()[0], nil
}

// scrapeAcks reads the ack histogram and the acknowledged bytes from the
// collector's admin endpoint at addr.
func scrapeAcks(addr string) (h ackHist, acked uint64, err error) {
	mfs, err := scrapeMetrics(addr)
	if err != nil {
		return h, 0, err
	}
	hist, err1 := single(mfs, "thunder_collector_ack_seconds")
	bytesAcked, err2 := single(mfs, "thunder_collector_bytes_acked_total")
	if err := errors.Join(err1, err2); err != nil {
		return h, 0, fmt.Errorf("%s: %w", addr, err)
	}
	for _, b := range hist.GetHistogram().GetBucket() {
		h.le = append(h.le, b.GetUpperBound())
		h.count = append(h.count, b.GetCumulativeCount())
	}
	h.le = append(h.le, math.Inf(1))
	h.count = append(h.count, hist.GetHistogram().GetSampleCount())
	return h, uint64(bytesAcked.GetCounter().GetValue()), nil
}

// commitStats is what a processor's group commits took, from its metrics.
type commitStats struct {
	commits            uint64
	total, sync, state time.Duration // summed over the commits
	snapshot, wait     time.Duration
	opens              map[string]float64 // target files opened for appending, by kind
}

// scrapeCommits reads the commit histograms of the processor at addr.
func scrapeCommits(addr string) (commitStats, error) {
	var cs commitStats
	mfs, err := scrapeMetrics(addr)
	if err != nil {
		return cs, err
	}
	var errs []error
	sum := func(name string) time.Duration {
		m, err := single(mfs, name)
		errs = append(errs, err)
		return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
	}
	cs.total, cs.sync, cs.state = sum("thunder_processor_commit_seconds"), sum("thunder_processor_fsync_seconds"), sum("thunder_processor_state_commit_seconds")
	cs.snapshot, cs.wait = sum("thunder_processor_commit_snapshot_seconds"), sum("thunder_processor_commit_wait_seconds")
	cs.opens = map[string]float64{}
	if mf := mfs["thunder_processor_target_opens_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					cs.opens[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if m, err := single(mfs, "thunder_processor_commit_seconds"); err == nil {
		cs.commits = m.GetHistogram().GetSampleCount()
	}
	return cs, errors.Join(errs...)
}

// String is the mean commit and its parts.
func (cs commitStats) String() string {
	if cs.commits == 0 {
		return "no commits"
	}
	n := time.Duration(cs.commits)
	return fmt.Sprintf("%d commits of %.1f ms (wait %.1f, snapshot %.1f, fsync %.1f, state %.1f); target files opened %.0f times to record, %.0f to reopen",
		cs.commits, ms(cs.total/n), ms(cs.wait/n), ms(cs.snapshot/n), ms(cs.sync/n), ms(cs.state/n), cs.opens["record"], cs.opens["reopen"])
}

// quantile is the q-quantile of the frames acknowledged between before and
// h, interpolated within its bucket as PromQL's histogram_quantile does;
// 0 if none were.
func (h ackHist) quantile(before ackHist, q float64) time.Duration {
	n := len(h.count)
	if n == 0 || len(before.count) != n {
		return 0
	}
	total := h.count[n-1] - before.count[n-1]
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lo, prev := 0.0, uint64(0)
	for i := range n {
		c := h.count[i] - before.count[i]
		if float64(c) >= rank {
			if math.IsInf(h.le[i], 1) {
				return time.Duration(lo * float64(time.Second))
			}
			frac := (rank - float64(prev)) / float64(max(c-prev, 1))
			return time.Duration((lo + (h.le[i]-lo)*frac) * float64(time.Second))
		}
		lo, prev = h.le[i], c
	}
	return time.Duration(lo * float64(time.Second))
}

// frames is how many acknowledged frames h has more than before.
func (h ackHist) frames(before ackHist) uint64 {
	if len(h.count) == 0 || len(before.count) != len(h.count) {
		return 0
	}
	return h.count[len(h.count)-1] - before.count[len(before.count)-1]
}

// waitAcked polls the collector at addr until want bytes are acknowledged
// and returns its ack histogram then.
func waitAcked(ctx context.Context, addr string, want uint64) (ackHist, error) {
	var h ackHist
	err := harness.Poll(ctx, time.Minute, func() error {
		var acked uint64
		var err error
		if h, acked, err = scrapeAcks(addr); err != nil {
			return err
		}
		if acked < want {
			return fmt.Errorf("collector acknowledged %d of %d bytes", acked, want)
		}
		return nil
	})
	return h, err
}
