package target

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the target dir's commit series (under the processor's
// namespace: they predate the Kafka output). A nil *metrics records
// nothing.
type metrics struct {
	commits, commitErr prometheus.Counter
	commitSeconds      prometheus.Histogram
	syncSeconds        prometheus.Histogram
	recordSeconds      prometheus.Histogram
	snapshotSeconds    prometheus.Histogram
	waitSeconds        prometheus.Histogram
	syncfs             prometheus.Counter
	opens              *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	const ns = "thunder_processor"
	m := &metrics{
		commits:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "commits_total", Help: "Group commits (fsync + state record) that succeeded."}),
		commitErr:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "commit_errors_total", Help: "Group commits that failed; nothing was acknowledged."}),
		commitSeconds:   prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_seconds", Help: "Duration of group commits: fsync of touched files and the state transaction.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		syncSeconds:     prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "fsync_seconds", Help: "Duration of the fsync part of group commits (target files and directories).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		recordSeconds:   prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "state_commit_seconds", Help: "Duration of the state transaction of group commits.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		snapshotSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_snapshot_seconds", Help: "Duration of the first part of group commits: looking at each touched file and writing what was buffered for files without a descriptor.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		waitSeconds:     prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_wait_seconds", Help: "Time group commits waited for the commit lock (held by reopens and idle-file sweeps).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		syncfs:          prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "syncfs_total", Help: "Group commits that made their files durable with one syncfs(2) of the target file system instead of an fsync per file."}),
	}
	m.opens = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "target_opens_total", Help: "Target files opened for appending: kind=\"record\" recorded afresh (first write since start, or the name holds another file), kind=\"reopen\" opened again after its descriptor was closed to keep within --max-open-files; many reopens per commit mean more busy files than descriptors."}, []string{"kind"})
	reg.MustRegister(m.opens)
	reg.MustRegister(m.commits, m.commitErr, m.commitSeconds, m.syncSeconds, m.recordSeconds, m.snapshotSeconds, m.waitSeconds, m.syncfs)
	return m
}

func (m *metrics) committed(took time.Duration, t timings, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.commitErr.Inc()
		return
	}
	m.commits.Inc()
	m.commitSeconds.Observe(took.Seconds())
	m.syncSeconds.Observe(t.sync.Seconds())
	m.recordSeconds.Observe(t.record.Seconds())
	m.snapshotSeconds.Observe(t.snapshot.Seconds())
	m.waitSeconds.Observe(t.wait.Seconds())
}

// opened counts an open of a target file for appending (openLocked).
func (m *metrics) opened(kind string) {
	if m != nil {
		m.opens.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) syncedFS() {
	if m != nil {
		m.syncfs.Inc()
	}
}
