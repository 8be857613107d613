package kafka

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Kafka output's Prometheus series. A nil *metrics records
// nothing.
type metrics struct {
	records, bytes   prometheus.Counter
	commits, failure prometheus.Counter
	commitSeconds    prometheus.Histogram
	buffer           prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	const ns, sub = "thunder", "processor_kafka"
	m := &metrics{
		records:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_total", Help: "Data records (lines) committed to Kafka."}),
		bytes:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total", Help: "Bytes of lines committed to Kafka, newlines included."}),
		commits:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commits_total", Help: "Kafka commits (transactions) that succeeded."}),
		failure:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commit_failures_total", Help: "Kafka commits that failed; nothing of them was acknowledged."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_seconds", Help: "Duration of Kafka commits: produce, flush and end of transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		buffer:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "buffered_bytes", Help: "Bytes of lines held for Kafka: pending and being committed."}),
	}
	reg.MustRegister(m.records, m.bytes, m.commits, m.failure, m.commitSeconds, m.buffer)
	return m
}

func (m *metrics) committed(took time.Duration) {
	if m != nil {
		m.commits.Inc()
		m.commitSeconds.Observe(took.Seconds())
	}
}

func (m *metrics) wrote(records int, bytes int64) {
	if m != nil {
		m.records.Add(float64(records))
		m.bytes.Add(float64(bytes))
	}
}

func (m *metrics) failed() {
	if m != nil {
		m.failure.Inc()
	}
}

func (m *metrics) buffered(n int64) {
	if m != nil {
		m.buffer.Set(float64(n))
	}
}
