package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports Status as Prometheus series at scrape time, so the hot
// path counts nothing twice. Per-stream lag is limited to the
// MaxStatusStreams most lagging streams, labelled by target name.
type metrics struct{ c *Collector }

var (
	descSent      = prometheus.NewDesc("thunder_collector_bytes_sent_total", "Source bytes sent to processors.", nil, nil)
	descLines     = prometheus.NewDesc("thunder_collector_lines_sent_total", "Lines sent to processors (resent lines count again).", nil, nil)
	descAcked     = prometheus.NewDesc("thunder_collector_bytes_acked_total", "Source bytes acknowledged as durable by processors.", nil, nil)
	descLag       = prometheus.NewDesc("thunder_collector_lag_bytes", "Bytes in source files not yet acknowledged.", nil, nil)
	descStreamLag = prometheus.NewDesc("thunder_collector_stream_lag_bytes", "Bytes not yet acknowledged, for the most lagging streams only.", []string{"name", "path"}, nil)
	descStreams   = prometheus.NewDesc("thunder_collector_streams", "Source files followed.", nil, nil)
	descOpen      = prometheus.NewDesc("thunder_collector_open_files", "Source files held open.", nil, nil)
	descConnected = prometheus.NewDesc("thunder_collector_connected", "1 when a processor link is up.", nil, nil)
	descProcessor = prometheus.NewDesc("thunder_collector_processor_connected", "1 when the link to this processor address is up.", []string{"addr"}, nil)
	descProcStrms = prometheus.NewDesc("thunder_collector_processor_streams", "Streams open on the link to this processor address.", []string{"addr"}, nil)
	descConnects  = prometheus.NewDesc("thunder_collector_connects_total", "Processor links established.", nil, nil)
	descRotations = prometheus.NewDesc("thunder_collector_rotations_total", "Source files rotated.", nil, nil)
	descDeletions = prometheus.NewDesc("thunder_collector_deletions_total", "Rotated source files deleted after delivery.", nil, nil)
	descSplit     = prometheus.NewDesc("thunder_collector_lines_split_total", "Pieces of lines longer than the maximum, each sent with a newline.", nil, nil)
	descProtoErrs = prometheus.NewDesc("thunder_collector_protocol_errors_total", "Offsets reported by processors beyond what this collector sent; each dropped the link.", nil, nil)
	descRefused   = prometheus.NewDesc("thunder_collector_refused_files", "Files held undelivered because a processor refused their name (see the status for which and why); retried with backoff.", nil, nil)
	descChecksum  = prometheus.NewDesc("thunder_collector_checksum_errors_total", "Frames from processors whose CRC-32C trailer did not match their content; each dropped the link.", nil, nil)
	descMismatch  = prometheus.NewDesc("thunder_collector_digest_mismatches_total", "Processor digests of a stream that differed from the collector's: the processor holds other bytes than the file's.", nil, nil)
	descMisFiles  = prometheus.NewDesc("thunder_collector_digest_mismatch_files", "Files in digest mismatch (see the status for which); never deleted by the collector.", nil, nil)
	descHeld      = prometheus.NewDesc("thunder_collector_rotated_held_files", "Rotated files still held open and written by a program that does not reopen its log (see the status for which and by whom); kept until it closes them.", nil, nil)
	descHeldBytes = prometheus.NewDesc("thunder_collector_rotated_held_bytes", "Bytes written to a rotated file after its rotation by a program still holding it, per file and holding pid.", []string{"name", "path", "pid"}, nil)
	descFlushed   = prometheus.NewDesc("thunder_collector_lines_flushed_total", "Unterminated last lines of rotated or deleted files sent with a newline added.", nil, nil)
)

func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	m.c.ackSeconds.Describe(ch)
	for _, d := range []*prometheus.Desc{descSent, descLines, descAcked, descLag, descStreamLag, descStreams, descOpen, descConnected, descProcessor, descProcStrms, descConnects, descRotations, descDeletions, descSplit, descFlushed, descProtoErrs, descRefused, descChecksum, descMismatch, descMisFiles, descHeld, descHeldBytes} {
		ch <- d
	}
}

func (m metrics) Collect(ch chan<- prometheus.Metric) {
	m.c.ackSeconds.Collect(ch)
	st := m.c.Status()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descSent, st.SentBytes)
	counter(descLines, st.SentLines)
	counter(descAcked, st.AckedBytes)
	counter(descConnects, st.Connects)
	counter(descRotations, st.Rotations)
	counter(descDeletions, st.Deletions)
	counter(descSplit, st.LinesSplit)
	counter(descFlushed, st.LinesFlushed)
	counter(descProtoErrs, st.ProtocolErrors)
	counter(descChecksum, st.ChecksumErrors)
	counter(descMismatch, st.DigestMismatches)
	gauge(descMisFiles, float64(st.MismatchFiles))
	gauge(descLag, float64(st.LagBytes))
	gauge(descStreams, float64(st.Streams))
	gauge(descOpen, float64(st.OpenFiles))
	gauge(descRefused, float64(st.RefusedFiles))
	up := 0.0
	if st.Connected {
		up = 1
	}
	gauge(descConnected, up)
	for _, p := range st.Processors {
		v := 0.0
		if p.Connected {
			v = 1
		}
		gauge(descProcessor, v, p.Addr)
		gauge(descProcStrms, float64(p.Streams), p.Addr)
	}
	for _, s := range st.Top {
		gauge(descStreamLag, float64(s.Lag), s.Name, s.Path)
	}
	gauge(descHeld, float64(st.HeldFiles))
	for _, h := range st.Held {
		for _, pid := range h.PIDs {
			gauge(descHeldBytes, float64(h.BytesAfterRotation), h.Name, h.Path, strconv.Itoa(pid))
		}
	}
}
