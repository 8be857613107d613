//go:build unix

package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// kafkaCommitInterval is short so that kills hit open transactions often.
const kafkaCommitInterval = "20ms"

// startKafka starts an in-process Kafka cluster on 127.0.0.1, with extra
// options (TLS, SASL).
func startKafka(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startKafkaProcessor starts a processor writing to Kafka, and to
// targetDir as well unless it is empty.
func startKafkaProcessor(t *testing.T, c *kfake.Cluster, targetDir string, extraArgs ...string) *Daemon {
	t.Helper()
	args := []string{"logs-processor", "--name=kp", "--kafka-brokers=" + strings.Join(c.ListenAddrs(), ","),
		"--kafka-commit-interval=" + kafkaCommitInterval}
	if targetDir != "" {
		args = append(args, "--target-dir="+targetDir)
	}
	args = append(append(args, processorArgs...), extraArgs...)
	d := harness.NewDaemon(t, "processor", args)
	if err := d.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("start processor: %v", err)
	}
	return d
}

// topicOf is the topic of a file with the default template "{file}".
func topicOf(name string) string { return strings.ReplaceAll(name, "/", ".") }

// kafkaReader consumes the data topics into files under Dir, one per file
// header, so that linecheck verifies them like a target dir.
type kafkaReader struct {
	t      *testing.T
	c      *kfake.Cluster
	cl     *kgo.Client
	opts   []kgo.Opt // the cluster's security options, for every client
	topics []string
	next   map[string]map[int32]int64 // offset after the last record read, control records included
	Dir    string
	dedup  bool                     // drop records whose (stream, offset) was seen
	seen   map[string][]byte        // stream/offset -> value
	files  map[string]*os.File      // by file header
	sample []string                 // a few dropped duplicates, for the log
	Dups   int                      // records dropped (dedup) or found twice (no dedup) by (stream, offset)
	Recs   int                      // data records read
	counts map[string]map[int32]int // records per topic and partition, for the log
}

func newKafkaReader(t *testing.T, c *kfake.Cluster, committed, dedup bool, names ...string) *kafkaReader {
	t.Helper()
	return newKafkaReaderWith(t, c, nil, committed, dedup, names...)
}

// newKafkaReaderWith is newKafkaReader for a cluster that needs the client
// options security (TLS, SASL).
func newKafkaReaderWith(t *testing.T, c *kfake.Cluster, security []kgo.Opt, committed, dedup bool, names ...string) *kafkaReader {
	t.Helper()
	var topics []string
	for _, n := range names {
		topics = append(topics, topicOf(n))
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond), kgo.KeepControlRecords(),
		kgo.MetadataMinAge(100 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}
	opts = append(opts, security...)
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := &kafkaReader{t: t, c: c, cl: cl, opts: security, topics: topics, next: map[string]map[int32]int64{}, Dir: t.TempDir(), dedup: dedup, seen: map[string][]byte{},
		files: map[string]*os.File{}, counts: map[string]map[int32]int{}}
	t.Cleanup(func() {
		cl.Close()
		for _, f := range r.files {
			f.Close()
		}
	})
	return r
}

// poll reads what the topics hold now, for at most a second.
func (r *kafkaReader) poll() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), time.Second)
	defer cancel()
	fs := r.cl.PollFetches(ctx)
	fs.EachError(func(topic string, p int32, err error) {
		if ctx.Err() == nil {
			r.t.Logf("consume %s/%d: %v", topic, p, err)
		}
	})
	fs.EachRecord(func(rec *kgo.Record) {
		if r.next[rec.Topic] == nil {
			r.next[rec.Topic] = map[int32]int64{}
			r.counts[rec.Topic] = map[int32]int{}
		}
		r.next[rec.Topic][rec.Partition] = rec.Offset + 1
		if rec.Attrs.IsControl() {
			return
		}
		r.Recs++
		r.counts[rec.Topic][rec.Partition]++
		var file, id, off string
		for _, h := range rec.Headers {
			switch h.Key {
			case "file":
				file = string(h.Value)
			case "stream":
				id = string(h.Value)
			case "offset":
				off = string(h.Value)
			}
		}
		if file == "" || id == "" || off == "" {
			r.t.Fatalf("record %s/%d@%d without file, stream or offset header: %v", rec.Topic, rec.Partition, rec.Offset, rec.Headers)
		}
		if string(rec.Key) != "host/"+file || topicOf(file) != rec.Topic {
			r.t.Fatalf("record %s/%d@%d: key %q, file %q", rec.Topic, rec.Partition, rec.Offset, rec.Key, file)
		}
		k := id + "/" + off
		if first, ok := r.seen[k]; ok {
			r.Dups++
			if !bytes.Equal(first, rec.Value) {
				r.t.Fatalf("stream %s offset %s: %q, and before %q", id, off, rec.Value, first)
			}
			if len(r.sample) < 5 {
				r.sample = append(r.sample, fmt.Sprintf("%s@%s %.40s", file, off, rec.Value))
			}
			if r.dedup {
				return
			}
		}
		r.seen[k] = bytes.Clone(rec.Value)
		f := r.files[file]
		if f == nil {
			path := filepath.Join(r.Dir, filepath.FromSlash(file))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				r.t.Fatal(err)
			}
			var err error
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
				r.t.Fatal(err)
			}
			r.files[file] = f
		}
		if _, err := f.Write(append(rec.Value, '\n')); err != nil {
			r.t.Fatal(err)
		}
	})
}

// waitDelivered consumes until every expected line was read, failing at
// once on a problem that waiting cannot repair, or if a daemon exits.
func (r *kafkaReader) waitDelivered(expect []linecheck.Expect, running ...*Daemon) linecheck.Report {
	t := r.t
	t.Helper()
	start := time.Now()
	nextLog := start.Add(progressEvery)
	for {
		r.poll()
		rep, err := linecheck.Verify(r.Dir, expect, linecheck.Options{})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if rep.Failed() {
			t.Fatalf("kafka: verify after %v: %v\n%s", time.Since(start).Round(time.Millisecond), rep, problems(rep))
		}
		if rep.Complete() {
			t.Logf("kafka: delivered after %v: %v; records=%d dups by (stream, offset)=%d %q partitions=%v",
				time.Since(start).Round(time.Millisecond), rep, r.Recs, r.Dups, r.sample, r.counts)
			return rep
		}
		if err := harness.Exited(running...); err != nil {
			t.Fatalf("%v\nkafka: not delivered: %v\n%s", err, rep, problems(rep))
		}
		if time.Since(start) > deliverTimeout {
			t.Fatalf("kafka: not delivered after %v: %v\n%s", deliverTimeout, rep, problems(rep))
		}
		if time.Now().After(nextLog) {
			t.Logf("kafka: waiting for delivery: %v", rep)
			nextLog = time.Now().Add(progressEvery)
		}
	}
}

// finalCheck reads the topics to their end, once the processor stopped,
// and checks that every line was read exactly once.
func (r *kafkaReader) finalCheck(expect []linecheck.Expect) linecheck.Report {
	t := r.t
	t.Helper()
	adm, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.c.ListenAddrs()...)}, r.opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(t.Context(), r.topics...)
	adm.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	harness.WaitFor(t, 30*time.Second, func() error {
		var behind []string
		ends.Each(func(lo kadm.ListedOffset) {
			if got := r.next[lo.Topic][lo.Partition]; got < lo.Offset {
				behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", lo.Topic, lo.Partition, got, lo.Offset))
			}
		})
		if len(behind) > 0 {
			r.poll()
			return fmt.Errorf("reading to the end: %v", behind)
		}
		return nil
	})
	rep, err := linecheck.Verify(r.Dir, expect, linecheck.Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("kafka: final check: %v\n%s", rep, problems(rep))
	}
	t.Logf("kafka: final check: %v", rep)
	return rep
}

func writerNames(specs []writerSpec) []string {
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return names
}

// kafkaKills runs the processor-kill schedule common to the Kafka tests:
// kill -9 at random moments while writers append, restart at once.
func kafkaKills(t *testing.T, p *Daemon) int {
	t.Helper()
	rnd := newRand(t)
	for range faults {
		pause(t, between(rnd, 200*time.Millisecond, 1500*time.Millisecond))
		p.Kill()
		p.Restart()
	}
	return faults
}

// TestKafkaProcessorKill9 ships to Kafka only and kills the processor with
// SIGKILL at random moments: a read_committed consumer must read every line
// exactly once.
func TestKafkaProcessorKill9(t *testing.T) {
	skipShort(t)
	c := startKafka(t)
	src := t.TempDir()
	p := startKafkaProcessor(t, c, "")
	col := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	specs := mixedWriters("w", src, 5)
	w := startWriters(t, specs...)
	r := newKafkaReader(t, c, true, false, writerNames(specs)...)

	kills := kafkaKills(t, p)
	expect := w.Wait()
	rep := r.waitDelivered(expect, p, col)
	col.Stop()
	p.Stop()
	rep = r.finalCheck(expect)
	if r.Dups != 0 {
		t.Errorf("read_committed: %d records with a (stream, offset) read before: %q", r.Dups, r.sample)
	}
	t.Logf("figures: lines=%d records=%d processor kills=%d starts=%d", rep.Lines, r.Recs, kills, logCount(p, "kafka output ready"))
}

// TestKafkaSideBySide writes to files and Kafka at once and kills the
// processor: both must hold every line exactly once.
func TestKafkaSideBySide(t *testing.T) {
	skipShort(t)
	c := startKafka(t)
	target, src := t.TempDir(), t.TempDir()
	p := startKafkaProcessor(t, c, target)
	col := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	specs := mixedWriters("w", src, 5)
	w := startWriters(t, specs...)
	r := newKafkaReader(t, c, true, false, writerNames(specs)...)

	kills := kafkaKills(t, p)
	expect := w.Wait()
	frep := waitDelivered(t, target, expect, linecheck.Options{}, p, col)
	krep := r.waitDelivered(expect, p, col)
	col.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	r.finalCheck(expect)
	if r.Dups != 0 {
		t.Errorf("read_committed: %d records with a (stream, offset) read before: %q", r.Dups, r.sample)
	}
	t.Logf("figures: lines=%d (files) %d (kafka) processor kills=%d", frep.Lines, krep.Lines, kills)
}

// TestKafkaAtLeastOnce runs without transactions and kills the processor:
// no line may be lost, and every duplicate must be a copy of a record with
// the same (stream, offset) headers, so that dropping those leaves each
// line exactly once.
func TestKafkaAtLeastOnce(t *testing.T) {
	skipShort(t)
	c := startKafka(t)
	src := t.TempDir()
	p := startKafkaProcessor(t, c, "", "--kafka-transactions=false")
	col := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	specs := mixedWriters("w", src, 5)
	w := startWriters(t, specs...)
	r := newKafkaReader(t, c, false, true, writerNames(specs)...)

	kills := kafkaKills(t, p)
	expect := w.Wait()
	r.waitDelivered(expect, p, col)
	col.Stop()
	p.Stop()
	rep := r.finalCheck(expect)
	t.Logf("figures: lines=%d records=%d duplicates dropped by (stream, offset)=%d processor kills=%d", rep.Lines, r.Recs, r.Dups, kills)
}
