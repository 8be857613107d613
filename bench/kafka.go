//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/linecheck"
)

// Shape of the kafka scenario: kafkaCollectors fake collectors with
// kafkaStreams files each against one processor writing to Kafka only.
const (
	kafkaCollectors = 10
	kafkaStreams    = 2
	kafkaWindow     = 4 << 20  // bytes unacknowledged per file (the fleet's 64 KiB is also run)
	kafkaStreamMax  = 32 << 20 // bytes per file at most: ≤ 640 MiB per run, all kept in kfake's memory
	kafkaReadFor    = 3 * time.Minute
	kafkaCeilingFor = 3 * time.Minute
)

// kafkaPlan returns the fake collectors of one kafka run: collector
// PREFIXnn streams PREFIXnn/s0.log and PREFIXnn/s1.log (topics
// PREFIXnn.s0.log, …, one partition each), all on one connection, with
// window bytes unacknowledged per file.
func kafkaPlan(prefix string, window int64) func([]string) []fakeSpec {
	return func([]string) []fakeSpec {
		var plan []fakeSpec
		for i := range kafkaCollectors {
			id := fmt.Sprintf("%s%02d", prefix, i)
			s := fakeSpec{collector: id, window: window}
			for j := range kafkaStreams {
				s.streams = append(s.streams, fakeStreamSpec{name: fmt.Sprintf("%s/s%d.log", id, j), writer: fmt.Sprintf("%s-s%d", id, j)})
			}
			plan = append(plan, s)
		}
		return plan
	}
}

// kafkaTopics are the data topics of a plan (the default template {file}).
func kafkaTopics(plan []fakeSpec) []string {
	var topics []string
	for _, c := range plan {
		for _, s := range c.streams {
			topics = append(topics, strings.ReplaceAll(s.name, "/", "."))
		}
	}
	return topics
}

// kafkaCase is one processor configuration of the kafka scenario.
type kafkaCase struct {
	name, prefix string
	txn          bool
	window       int64
	run          fakeRun
	read         kafkaRead
}

// runKafka starts an in-process Kafka cluster (kfake, one broker, on
// 127.0.0.1) and drives a processor writing to it only — once with
// transactions (the default), once with --kafka-transactions=false — with
// the fake collectors of fleet and shard. Each run is read back (read_committed
// with transactions) and checked with linecheck. The ceiling is a plain
// franz-go producer in this process writing as many records of the same
// shape to the same cluster.
func (b *bench) runKafka() error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		return err
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	cases := []*kafkaCase{
		{name: "transactions", prefix: "kt", txn: true, window: kafkaWindow},
		{name: "at-least-once", prefix: "ka", window: kafkaWindow},
		{name: "transactions-64KiB", prefix: "kw", txn: true, window: fakeWindow},
	}
	for _, k := range cases {
		plan := kafkaPlan(k.prefix, k.window)
		out := &fakeOutput{
			args: func(int) []string {
				return []string{"--kafka-brokers=" + brokers, "--kafka-transactions=" + strconv.FormatBool(k.txn), "--name=bench-kafka-" + k.prefix}
			},
			verify: func(expect []linecheck.Expect) error {
				var err error
				k.read, err = b.readKafka(c, kafkaTopics(plan(nil)), k.txn, expect)
				return err
			},
		}
		b.logf("kafka: %s, %d collectors × %d files, window %d KiB per file", k.name, kafkaCollectors, kafkaStreams, k.window>>10)
		if k.run, err = b.runFakesWith("kafka-"+k.prefix, 1, kafkaStreamMax, plan, fakeOpts{out: out}); err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
	}
	records := cases[0].run.sent / lineBytes
	b.logf("kafka ceiling: franz-go producer, %d records", records)
	ceil, err := b.kafkaCeiling(c, kafkaCollectors*kafkaStreams, records)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}

	sec := "kafka output (kfake)"
	b.rep.result("kafka", kv{"case", "ceiling"}, kv{"records", ceil.records}, kv{"secs", ceil.took},
		kv{"records_per_s", ceil.perSec()}, kv{"MiBps", ceil.mibps()}, kv{"cpu_bench_cores", ceil.cores()},
		kv{"topics", kafkaCollectors * kafkaStreams}, kv{"quiet", ceil.quiet})
	b.rep.add(sec, fmt.Sprintf("ceiling: franz-go producer → kfake, %d records of %d B, %d topics (idempotent, async + Flush)",
		ceil.records, lineBytes, kafkaCollectors*kafkaStreams),
		fmt.Sprintf("%.1f MiB/s", ceil.mibps()), "1.00×",
		fmt.Sprintf("%.0f records/s; producer + kfake %.2f core (this process) %s", ceil.perSec(), ceil.cores(), quietNote(ceil.quiet, ceil.busy)))
	for _, k := range cases {
		r := k.run
		b.rep.result("kafka", kv{"case", k.name}, kv{"transactions", k.txn}, kv{"collectors", kafkaCollectors}, kv{"streams", kafkaCollectors * kafkaStreams},
			kv{"window_KiB", k.window >> 10}, kv{"frame_lines", fakeFrameLines}, kv{"bytes", r.sent}, kv{"secs", r.took},
			kv{"MiBps", r.mibps()}, kv{"lines_per_s", r.linesPerSec()}, kv{"vs_ceiling", r.linesPerSec() / ceil.perSec()},
			kv{"cpu_processor_cores", r.cores(0)}, kv{"cpu_bench_cores", r.selfCores()}, kv{"rss_processor_MiB", r.peakMiB(0)},
			kv{"records_read", k.read.records}, kv{"copies", k.read.copies}, kv{"read_committed", k.txn},
			kv{"verified", "linecheck"}, kv{"quiet", r.quiet})
		what := fmt.Sprintf("transactions (default), %d collectors × %d files, frames of %d lines, window %d KiB per file, %v or %d MiB per file",
			kafkaCollectors, kafkaStreams, fakeFrameLines, k.window>>10, b.liveFor, kafkaStreamMax>>20)
		check := fmt.Sprintf("read_committed: every line exactly once (linecheck), %d records", k.read.records)
		if k.window != kafkaWindow {
			what = fmt.Sprintf("transactions, window %d KiB per file (fleet's): acks wait for the commit interval", k.window>>10)
		}
		if !k.txn {
			what = "--kafka-transactions=false (at least once), same load"
			check = fmt.Sprintf("no line lost (linecheck after dropping copies by (stream, offset)): %d records, %d copies", k.read.records, k.read.copies)
		}
		b.rep.add(sec, what, fmt.Sprintf("%.1f MiB/s acked", r.mibps()), ratio(r.linesPerSec(), ceil.perSec()),
			fmt.Sprintf("%.0f lines/s; processor %.2f core, peak RSS %.0f MiB; load generator + kfake %.2f core; %s %s",
				r.linesPerSec(), r.cores(0), r.peakMiB(0), r.selfCores(), check, quietNote(r.quiet, r.busy)))
	}
	hwm, _ := statusKiB(os.Getpid(), "VmHWM") // informative only
	b.rep.result("kafka", kv{"case", "bench-process"}, kv{"rss_bench_MiB", hwm >> 10})
	b.rep.add(sec, "kfake is in-process, in memory, not a real broker", "", "",
		fmt.Sprintf("it shares the %d cores with the processor and the load generator, and holds every record (this process's peak RSS %d MiB): the ratios bound thunder's overhead, not production throughput",
			runtime.NumCPU(), hwm>>10))
	return nil
}

// kafkaRead is what readKafka read back.
type kafkaRead struct {
	records int // data records
	copies  int // records whose (stream, offset) was read before
}

// readKafka reads topics from the start to their current end (a stopped
// processor: nothing more comes) into files under a scratch dir, one per
// "file" header, and checks them against expect with linecheck. With
// committed it reads read_committed and keeps every record, so that a copy
// fails the check; without it drops records whose offset header is not
// past the highest read for their stream (the consumer rule of README
// "Kafka output") and counts them.
func (b *bench) readKafka(c *kfake.Cluster, topics []string, committed bool, expect []linecheck.Expect) (kafkaRead, error) {
	dir, err := b.scratch("kafka-read")
	if err != nil {
		return kafkaRead{}, err
	}
	defer b.drop(dir)
	ctx, cancel := context.WithTimeout(b.ctx, kafkaReadFor)
	defer cancel()
	ends, err := kafkaEnds(ctx, c, topics)
	if err != nil {
		return kafkaRead{}, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond), kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64 << 20), kgo.FetchMaxPartitionBytes(8 << 20)}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return kafkaRead{}, err
	}
	defer cl.Close()
	sink := &kafkaSink{dir: dir, committed: committed, past: map[string]uint64{}, files: map[string]*bufio.Writer{}}
	defer sink.close()
	if err := b.consumeKafka(ctx, cl, ends, sink); err != nil {
		return sink.res, err
	}
	if err := sink.flush(); err != nil {
		return sink.res, err
	}
	res := sink.res
	rep, err := linecheck.Verify(dir, expect, linecheck.Options{})
	if err != nil {
		return res, err
	}
	if !rep.OK() {
		return res, fmt.Errorf("kafka check: %v %v (records %d, copies by (stream, offset) %d)", rep, rep.Problems, res.records, res.copies)
	}
	if committed && res.copies > 0 {
		return res, fmt.Errorf("read_committed: %d records with a (stream, offset) read before", res.copies)
	}
	return res, nil
}

// kafkaEnds lists the end offsets of topics.
func kafkaEnds(ctx context.Context, c *kfake.Cluster, topics []string) (kadm.ListedOffsets, error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	return ends, nil
}

// consumeKafka polls cl until every partition of ends was read to its
// end, control records included, handing each data record to sink.
func (b *bench) consumeKafka(ctx context.Context, cl *kgo.Client, ends kadm.ListedOffsets, sink *kafkaSink) error {
	next := map[string]map[int32]int64{} // offset after the last record read, control records included
	behind := func() int {
		n := 0
		ends.Each(func(lo kadm.ListedOffset) {
			if next[lo.Topic][lo.Partition] < lo.Offset {
				n++
			}
		})
		return n
	}
	var bad error
	for polls := 0; behind() > 0; polls++ {
		if ctx.Err() != nil || polls > 100_000 {
			return fmt.Errorf("%d partitions not read to the end within %v", behind(), kafkaReadFor)
		}
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				b.logf("kafka: consume %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(rec *kgo.Record) {
			if next[rec.Topic] == nil {
				next[rec.Topic] = map[int32]int64{}
			}
			next[rec.Topic][rec.Partition] = rec.Offset + 1
			if !rec.Attrs.IsControl() && bad == nil {
				bad = sink.add(rec)
			}
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// kafkaSink writes the records read back into one file per "file" header
// under dir, dropping copies by (stream, offset) unless committed.
type kafkaSink struct {
	dir       string
	committed bool
	res       kafkaRead
	past      map[string]uint64 // by stream: source offset after the last line kept
	files     map[string]*bufio.Writer
	fds       []*os.File
}

// add checks a data record's key and headers and appends its line.
func (s *kafkaSink) add(rec *kgo.Record) error {
	s.res.records++
	var host, file, id, off string
	for _, h := range rec.Headers {
		switch h.Key {
		case "host":
			host = string(h.Value)
		case "file":
			file = string(h.Value)
		case "stream":
			id = string(h.Value)
		case "offset":
			off = string(h.Value)
		}
	}
	o, err := strconv.ParseUint(off, 10, 64)
	if err != nil || file == "" || id == "" || string(rec.Key) != host+"/"+file || strings.ReplaceAll(file, "/", ".") != rec.Topic {
		return fmt.Errorf("record %s/%d@%d: key %q, headers %v", rec.Topic, rec.Partition, rec.Offset, rec.Key, rec.Headers)
	}
	if p, ok := s.past[id]; ok && o < p {
		s.res.copies++
		if !s.committed {
			return nil
		}
	}
	s.past[id] = o + uint64(len(rec.Value)) + 1
	w, err := s.file(file)
	if err != nil {
		return err
	}
	w.Write(rec.Value)
	return w.WriteByte('\n')
}

// file returns the writer of the file named name, creating it.
func (s *kafkaSink) file(name string) (*bufio.Writer, error) {
	if w := s.files[name]; w != nil {
		return w, nil
	}
	path := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	s.fds = append(s.fds, f)
	w := bufio.NewWriterSize(f, 256<<10)
	s.files[name] = w
	return w, nil
}

func (s *kafkaSink) flush() error {
	for _, w := range s.files {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (s *kafkaSink) close() {
	for _, f := range s.fds {
		f.Close() // read by linecheck after the flush
	}
}

// kafkaCeil is the same-run ceiling of the kafka scenario.
type kafkaCeil struct {
	records int64
	took    time.Duration
	cpu     float64 // this process: producer and kfake
	quiet   bool
	busy    float64
}

func (c kafkaCeil) perSec() float64 { return float64(c.records) / c.took.Seconds() }
func (c kafkaCeil) mibps() float64  { return mibps(c.records*lineBytes, c.took) }
func (c kafkaCeil) cores() float64  { return c.cpu / c.took.Seconds() }

// kafkaCeiling produces records records to ntopics new topics of one
// partition on c with a plain franz-go client (idempotent, the default
// batching, asynchronous Produce then Flush), round robin over the topics.
// Each record has the shape of thunder's: key host/file, a 99-byte
// linecheck line as value, headers host, file, stream and offset.
func (b *bench) kafkaCeiling(c *kfake.Cluster, ntopics int, records int64) (kafkaCeil, error) {
	res := kafkaCeil{records: records}
	if records <= 0 {
		return res, errors.New("no records to write")
	}
	ctx, cancel := context.WithTimeout(b.ctx, kafkaCeilingFor)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	type topic struct {
		name string
		key  []byte
		hdrs []kgo.RecordHeader
	}
	tops := make([]topic, ntopics)
	names := make([]string, ntopics)
	for i := range tops {
		host, file := fmt.Sprintf("ceil%02d", i), "s.log"
		names[i] = fmt.Sprintf("ceiling.%s.%s", host, file)
		tops[i] = topic{name: names[i], key: []byte(host + "/" + file), hdrs: []kgo.RecordHeader{
			{Key: "host", Value: []byte(host)}, {Key: "file", Value: []byte(file)},
			{Key: "stream", Value: []byte(fmt.Sprintf("%032x", i+1))}}}
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 1, -1, nil, names...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return res, fmt.Errorf("create topics: %w", err)
	}
	// A pool of values, as a collector's lines would be: generating each
	// line is the load generator's work, not the producer's.
	values := make([][]byte, 4096)
	for i := range values {
		l, err := linecheck.AppendLine(nil, "ceiling", uint64(i), lineBytes)
		if err != nil {
			return res, err
		}
		values[i] = l[:len(l)-1]
	}
	res.quiet, res.busy = b.quiet()
	var failed atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	cpu0, err := cpuSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	start := time.Now()
	for i := range records {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%d of %d records produced within %v", i, records, kafkaCeilingFor)
		}
		t := &tops[i%int64(ntopics)]
		off := uint64(i/int64(ntopics)) * lineBytes
		hdrs := append(t.hdrs[:len(t.hdrs):len(t.hdrs)], kgo.RecordHeader{Key: "offset", Value: strconv.AppendUint(nil, off, 10)})
		cl.Produce(ctx, &kgo.Record{Topic: t.name, Key: t.key, Value: values[i%int64(len(values))], Headers: hdrs}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return res, err
	}
	res.took = time.Since(start)
	cpu1, err := cpuSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	if p := failed.Load(); p != nil {
		return res, *p
	}
	return res, nil
}
