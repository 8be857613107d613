// Package kafkatest holds what tests of Kafka outputs share: an in-memory
// cluster (kfake) and a consumer that reads topics to their end.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"thunder/internal/harness"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Timeout bounds each wait of the package.
const Timeout = 20 * time.Second

// NewCluster starts a one-broker kfake cluster (3 partitions per topic,
// topics created on use), closed at the end of the test.
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Consume reads topics from the start to their current end and returns
// the data records: read_committed when committed is set.
func Consume(t testing.TB, c *kfake.Cluster, committed bool, topics ...string) []*kgo.Record {
	t.Helper()
	return ConsumeWith(t, c, nil, committed, topics...)
}

// ConsumeWith is Consume with extra client options (TLS, SASL).
func ConsumeWith(t testing.TB, c *kfake.Cluster, extra []kgo.Opt, committed bool, topics ...string) []*kgo.Record {
	t.Helper()
	var ends kadm.ListedOffsets
	harness.WaitFor(t, Timeout, func() error { // the topics may not exist yet
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
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
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

// Values returns the records' values in order.
func Values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}
