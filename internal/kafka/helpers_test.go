package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/harness"
	"thunder/internal/kafka"
	"thunder/internal/stream"
)

const waitTimeout = 20 * time.Second

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
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
		r.err = o.Run(ctx, func(acks []kafka.Ack) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, a := range acks {
				if a.Offset <= r.acks[a.Stream] {
					t.Errorf("ack %d for %s after %d", a.Offset, a.Stream.Key, r.acks[a.Stream])
				}
				r.acks[a.Stream] = a.Offset
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

// consume reads topics from the start to their current end and returns
// the data records: read_committed when committed is set.
func consume(t *testing.T, c *kfake.Cluster, committed bool, topics ...string) []*kgo.Record {
	t.Helper()
	return consumeWith(t, c, nil, committed, topics...)
}

// consumeWith is consume with extra client options (TLS, SASL).
func consumeWith(t *testing.T, c *kfake.Cluster, extra []kgo.Opt, committed bool, topics ...string) []*kgo.Record {
	t.Helper()
	var ends kadm.ListedOffsets
	harness.WaitFor(t, waitTimeout, func() error { // the topics may not exist yet
		adm, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer adm.Close()
		if ends, err = kadm.NewClient(adm).ListEndOffsets(t.Context(), topics...); err != nil {
			return err
		}
		return ends.Error()
	})
	want := map[string]map[int32]int64{}
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Offset > 0 {
			if want[lo.Topic] == nil {
				want[lo.Topic] = map[int32]int64{}
			}
			want[lo.Topic][lo.Partition] = lo.Offset
		}
	})
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords(), kgo.FetchMaxWait(100 * time.Millisecond)}
	opts = append(opts, extra...)
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	left := 0
	for _, ps := range want {
		left += len(ps)
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %v: still %d partitions to read: %v", topics, left, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(want[r.Topic], r.Partition)
				left--
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// values returns the records' values in order.
func values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}
