package processor

import (
	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/wire"
)

// metrics are the processor's Prometheus series. A nil *metrics records
// nothing, so tests and embedders need no registry.
type metrics struct {
	bytes, lines prometheus.Counter
	connections  prometheus.Counter
	connected    prometheus.Gauge
	refusals     *prometheus.CounterVec
	reopens      prometheus.Counter
	evictions    prometheus.Counter
	checksums    prometheus.Counter
	unchecked    prometheus.Counter
	pauses       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	const ns = "thunder_processor"
	m := &metrics{
		bytes:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_written_total", Help: "Bytes of lines appended to target files."}),
		lines:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "lines_written_total", Help: "Lines appended to target files."}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_total", Help: "Collector connections accepted."}),
		connected:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "collectors_connected", Help: "Collector connections open now."}),
		refusals:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refusals_total", Help: "Connections ended by a protocol error sent to the collector, by reason."}, []string{"reason"}),
		reopens:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reopens_total", Help: "Reopens of the target files (SIGHUP, SIGUSR1)."}),
		evictions:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "handshakes_evicted_total", Help: "Connections closed in their handshake to admit one from a peer holding fewer handshakes."}),
		checksums:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "checksum_errors_total", Help: "Frames whose checksum did not match their content (changed on the way): each was refused, its connection ended, and the collector sent the data again."}),
		unchecked:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "unchecksummed_connections_total", Help: "Collector connections without frame checksums (collectors older than the crc32c feature)."}),
		pauses:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "accept_pauses_total", Help: "Times accepting stopped because more connections would leave too few file descriptors (ulimit -n) for the target files; collectors wait in the accept backlog meanwhile."}),
	}
	reg.MustRegister(m.bytes, m.lines, m.connections, m.connected, m.refusals, m.reopens, m.evictions, m.checksums, m.unchecked, m.pauses)
	return m
}

func (m *metrics) wrote(bytes, lines int) {
	if m != nil {
		m.bytes.Add(float64(bytes))
		m.lines.Add(float64(lines))
	}
}

func (m *metrics) connect(delta int) {
	if m == nil {
		return
	}
	if delta > 0 {
		m.connections.Inc()
	}
	m.connected.Add(float64(delta))
}

func (m *metrics) refused(code wire.Code) {
	if m != nil {
		m.refusals.WithLabelValues(code.String()).Inc()
	}
}

func (m *metrics) reopened() {
	if m != nil {
		m.reopens.Inc()
	}
}

func (m *metrics) damagedFrame() {
	if m != nil {
		m.checksums.Inc()
	}
}

func (m *metrics) uncheckedConn() {
	if m != nil {
		m.unchecked.Inc()
	}
}

func (m *metrics) evictedHandshake() {
	if m != nil {
		m.evictions.Inc()
	}
}

func (m *metrics) acceptPaused() {
	if m != nil {
		m.pauses.Inc()
	}
}
