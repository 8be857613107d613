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
	journalBytes       prometheus.Counter
	journalCommits     prometheus.Counter
	checkpoints        *prometheus.CounterVec
	checkpointSeconds  prometheus.Histogram
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
	m.journalBytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "journal_bytes_total", Help: "Bytes of target files copied into the journal by group commits that touched many files (instead of syncing each file)."})
	m.journalCommits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "journal_commits_total", Help: "Group commits that made their files durable through the journal."})
	m.checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "journal_checkpoints_total", Help: "Journal checkpoints (a syncfs of the target file system, then the old segments deleted), by result=\"ok\"|\"error\"; an error keeps the segments for replay at the next start."}, []string{"result"})
	m.checkpointSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "journal_checkpoint_seconds", Help: "Duration of journal checkpoints (they run beside commits).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	reg.MustRegister(m.opens, m.journalBytes, m.journalCommits, m.checkpoints, m.checkpointSeconds)
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

// journaled counts bytes copied into the journal.
func (m *metrics) journaled(n int) {
	if m != nil {
		m.journalBytes.Add(float64(n))
	}
}

// journalCommit counts a commit made durable through the journal.
func (m *metrics) journalCommit() {
	if m != nil {
		m.journalCommits.Inc()
	}
}

// checkpointed counts a journal checkpoint.
func (m *metrics) checkpointed(took time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.checkpoints.WithLabelValues(result).Inc()
	m.checkpointSeconds.Observe(took.Seconds())
}
