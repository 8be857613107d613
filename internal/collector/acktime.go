package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ackSeconds is how long frames wait, from being queued for the processor
// to the acknowledgement that covers them: the delivery latency an
// operator (and the benchmark) can see, durable at the processor included.
var ackBuckets = prometheus.ExponentialBucketsRange(0.00025, 16, 33) // 0.25 ms … 16 s in steps of √2

func newAckSeconds() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "thunder_collector_ack_seconds",
		Help:    "Time from a frame being sent to the processor's acknowledgement covering it (durable there).",
		Buckets: ackBuckets,
	})
}

// sentAt is when a frame ending at source offset end was sent.
type sentAt struct {
	end uint64
	at  time.Time
}

// maxSentAt bounds the send times a stream keeps (the frames in flight);
// past it the oldest is dropped and goes unmeasured.
const maxSentAt = 1024

// frameSent records the send time of s's frame ending at end.
func (s *source) frameSent(end uint64, at time.Time) {
	if len(s.sentAt) == maxSentAt {
		s.sentAt = append(s.sentAt[:0], s.sentAt[1:]...)
	}
	s.sentAt = append(s.sentAt, sentAt{end, at})
}

// framesAcked observes the wait of every frame of s that an acknowledgement
// up to off covers.
func (c *Collector) framesAcked(s *source, off uint64, now time.Time) {
	i := 0
	for ; i < len(s.sentAt) && s.sentAt[i].end <= off; i++ {
		c.ackSeconds.Observe(now.Sub(s.sentAt[i].at).Seconds())
	}
	s.sentAt = append(s.sentAt[:0], s.sentAt[i:]...)
}

// framesResent forgets the send times above sent: those bytes are sent
// again (a new link resumes there) and timed from then.
func (s *source) framesResent(sent uint64) {
	i := len(s.sentAt)
	for i > 0 && s.sentAt[i-1].end > sent {
		i--
	}
	s.sentAt = s.sentAt[:i]
}
