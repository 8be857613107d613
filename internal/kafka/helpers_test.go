package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/digest"
	"thunder/internal/harness"
	"thunder/internal/kafka"
	"thunder/internal/relpath"
	"thunder/internal/stream"
)

const waitTimeout = 20 * time.Second

// owner is a connection token; the tests look at acknowledgements through
// RunAcks.
type owner string

func (owner) Committed(stream.Mark) {}

// attachAt is Attach for a collector that knows no digests, in offsets.
func attachAt(o *kafka.Output, k stream.Key, name relpath.Name, acked uint64, ow stream.Owner) (*kafka.Stream, uint64, uint64, error) {
	s, at, done, err := o.Attach(k, name, stream.Mark{Offset: acked}, ow)
	return s, at.Offset, done.Offset, err
}

// chunk is the data frame for [offset, end) with payload p.
func chunk(offset, end uint64, p []byte) stream.Chunk {
	return stream.Chunk{Offset: offset, End: end, Payload: p, Sum: digest.Checksum(p), Lines: bytes.Count(p, []byte{10})}
}

// mustName is name as relpath.Clean makes it.
func mustName(t *testing.T, name string) relpath.Name {
	t.Helper()
	n, err := relpath.Clean(name)
	if err != nil {
		t.Fatalf("Clean(%q) = %v", name, err)
	}
	return n
}

func testConfig(t *testing.T, c *kfake.Cluster) kafka.Config {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Processor = "p1"
	cfg.CommitInterval = 5 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func mustOpen(t *testing.T, cfg kafka.Config) *kafka.Output {
	t.Helper()
	o, err := kafka.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// runner runs an Output's commit loop and collects its acks.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	mu   sync.Mutex
	acks map[*kafka.Stream]uint64
}

func run(t *testing.T, o *kafka.Output) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &runner{cancel: cancel, done: make(chan struct{}), acks: make(map[*kafka.Stream]uint64)}
	go func() {
		defer close(r.done)
		r.err = kafka.RunAcks(ctx, o, func(acks []kafka.Ack) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, a := range acks {
				if a.At.Offset <= r.acks[a.Stream] {
					t.Errorf("ack %d for %s after %d", a.At.Offset, a.Stream.Key, r.acks[a.Stream])
				}
				r.acks[a.Stream] = a.At.Offset
			}
		})
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends Run and waits for it.
func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) acked(s *kafka.Stream) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[s]
}

// waitAck waits until s is acknowledged up to offset.
func (r *runner) waitAck(t *testing.T, s *kafka.Stream, offset uint64) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error {
		if got := r.acked(s); got != offset {
			return fmt.Errorf("%s acked %d, want %d", s.Key, got, offset)
		}
		return nil
	})
}

func key(collector string, n byte) stream.Key {
	k := stream.Key{Collector: collector}
	k.ID[0] = n
	return k
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
