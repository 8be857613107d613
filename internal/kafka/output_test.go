package kafka_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"thunder/internal/digest"
	"thunder/internal/harness"
	"thunder/internal/kafka"
	"thunder/internal/kafka/kafkatest"
	"thunder/internal/stream"
)

// TestLines checks records, keys and headers: one record per line, the
// offset header being the source offset of the line's first byte.
func TestLines(t *testing.T) {
	c := kafkatest.NewCluster(t)
	o := mustOpen(t, testConfig(t, c))
	r := run(t, o)
	s, off, committed, err := attachAt(o, key("web-1", 2), mustName(t, "sub/a.log"), 0, owner("conn"))
	if err != nil || off != 0 || committed != 0 {
		t.Fatalf("Attach = %d, %d, %v; want 0, 0, nil", off, committed, err)
	}
	if err := s.Append(owner("conn"), chunk(0, 8, []byte("one\ntwo\n"))); err != nil {
		t.Fatal(err)
	}
	// A flushed last line: the payload has one byte more than the range.
	if err := s.Append(owner("conn"), chunk(8, 13, []byte("three\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 13)
	if got := s.Committed().Offset; got != 13 {
		t.Errorf("Committed() = %d, want 13", got)
	}
	var recs []*kgo.Record
	for _, rec := range kafkatest.Consume(t, c, true, "sub.a.log") {
		if header(rec, "stream") == s.Key.ID.String() {
			recs = append(recs, rec)
		}
	}
	if got, want := kafkatest.Values(recs), []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Fatalf("values = %q, want %q", got, want)
	}
	for i, rec := range recs {
		if string(rec.Key) != "web-1/sub/a.log" {
			t.Errorf("record %d: key %q, want web-1/sub/a.log", i, rec.Key)
		}
		for h, want := range map[string]string{"host": "web-1", "file": "sub/a.log", "offset": []string{"0", "4", "8"}[i]} {
			if got := header(rec, h); got != want {
				t.Errorf("record %d: header %s = %q, want %q", i, h, got, want)
			}
		}
	}
}

func TestTopicTemplate(t *testing.T) {
	c := kafkatest.NewCluster(t)
	tests := []struct {
		template, host, file string
		want                 string // "" for ErrName
	}{
		{"{file}", "h", "a.log", "a.log"},
		{"{file}", "h", "sub/deep/b.log", "sub.deep.b.log"},
		{"logs.{host}.{file}", "web 1", "x:y.log", "logs.web_1.x_y.log"},
		{"{host}", "h", "a.log", "h"},
		{"{file}", "h", "é.log", "__.log"},
		{"{file}", "h", strings.Repeat("x", 250), ""},
	}
	for i, tt := range tests {
		t.Run(tt.template+"/"+tt.file, func(t *testing.T) {
			cfg := testConfig(t, c)
			cfg.Topic = tt.template
			cfg.Processor = fmt.Sprint("p", i)
			o := mustOpen(t, cfg)
			r := run(t, o)
			s, _, _, err := attachAt(o, key(tt.host, 1), mustName(t, tt.file), 0, owner("conn"))
			if tt.want == "" {
				if !errors.Is(err, kafka.ErrName) {
					t.Fatalf("Attach(%q) = %v, want ErrName", tt.file, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Append(owner("conn"), chunk(0, 2, []byte("x\n"))); err != nil {
				t.Fatal(err)
			}
			r.waitAck(t, s, 2)
			if got := kafkatest.Values(kafkatest.Consume(t, c, true, tt.want)); !slices.Equal(got, []string{"x"}) {
				t.Errorf("topic %s holds %q, want [x]", tt.want, got)
			}
		})
	}
}

// TestFence: a second instance with the same transactional ID takes over
// from the committed state; the first one's next commit is fenced and its
// Run fails.
func TestFence(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	o1 := mustOpen(t, cfg)
	r1 := run(t, o1)
	k := key("h", 1)
	s1, _, _, err := attachAt(o1, k, mustName(t, "a.log"), 0, owner("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Append(owner("c1"), chunk(0, 4, []byte("one\n"))); err != nil {
		t.Fatal(err)
	}
	r1.waitAck(t, s1, 4)

	o2 := mustOpen(t, cfg)
	r2 := run(t, o2)
	s2, off, committed, err := attachAt(o2, k, mustName(t, "a.log"), 0, owner("c2"))
	if err != nil || off != 4 || committed != 4 {
		t.Fatalf("second instance: Attach = %d, %d, %v; want 4, 4, nil", off, committed, err)
	}
	if err := s1.Append(owner("c1"), chunk(4, 8, []byte("old\n"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r1.done:
		if r1.err == nil {
			t.Fatal("first instance: Run returned nil after being fenced")
		}
		t.Logf("first instance: %v", r1.err)
	case <-time.After(waitTimeout):
		t.Fatal("first instance still running after being fenced")
	}
	if err := s2.Append(owner("c2"), chunk(4, 8, []byte("two\n"))); err != nil {
		t.Fatal(err)
	}
	r2.waitAck(t, s2, 8)
	if got := kafkatest.Values(kafkatest.Consume(t, c, true, "a.log")); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("read_committed: %q, want [one two]", got)
	}
}

// TestCommitFailure: a failed EndTxn acknowledges nothing; the stream is
// rewound to the committed state and its owner loses it; after a new
// Attach the lines are sent again and each is read once.
func TestCommitFailure(t *testing.T) {
	c := kafkatest.NewCluster(t)
	o := mustOpen(t, testConfig(t, c))
	r := run(t, o)
	s, _, _, err := attachAt(o, key("h", 1), mustName(t, "a.log"), 0, owner("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(owner("c1"), chunk(0, 4, []byte("one\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 4)

	fh := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError})
	if err := s.Append(owner("c1"), chunk(4, 8, []byte("two\n"))); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, waitTimeout, func() error {
		if fh.Hits() == 0 || func() bool { _, err := o.Health(); return err == nil }() {
			return errors.New("no failed commit yet")
		}
		return nil
	})
	fh.Remove()
	// Attach waits for the recovery: the stream resumes from the state.
	s1 := s
	s, off, committed, err := attachAt(o, key("h", 1), mustName(t, "a.log"), 4, owner("c2"))
	if err != nil || off != 4 || committed != 4 {
		t.Fatalf("Attach after recovery = %d, %d, %v; want 4, 4, nil", off, committed, err)
	}
	if err := s1.Append(owner("c1"), chunk(8, 14, []byte("three\n"))); !errors.Is(err, kafka.ErrNotOwner) {
		t.Errorf("old owner's Append = %v, want ErrNotOwner", err)
	}
	if got := r.acked(s1); got != 4 {
		t.Fatalf("acked %d after a failed commit, want 4", got)
	}
	if err := s.Append(owner("c2"), chunk(4, 14, []byte("two\nthree\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 14)
	if got := kafkatest.Values(kafkatest.Consume(t, c, true, "a.log")); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("read_committed: %q, want [one two three]", got)
	}
	if _, err := o.Health(); err != nil {
		t.Errorf("Health() = %v after a good commit", err)
	}
}

// TestForget: a forgotten stream's state is tombstoned: a new instance
// starts it from 0.
func TestForget(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	o := mustOpen(t, cfg)
	r := run(t, o)
	keep, gone := key("h", 1), key("h", 2)
	s1, _, _, _ := attachAt(o, keep, mustName(t, "a.log"), 0, owner("c"))
	s2, _, _, _ := attachAt(o, gone, mustName(t, "b.log"), 0, owner("c"))
	for _, s := range []*kafka.Stream{s1, s2} {
		if err := s.Append(owner("c"), chunk(0, 2, []byte("x\n"))); err != nil {
			t.Fatal(err)
		}
		r.waitAck(t, s, 2)
	}
	s2.Forget(owner("c"))
	s1.Detach(owner("c"))
	r.stop() // the final commit writes the tombstone
	o.Close()

	o2 := mustOpen(t, cfg)
	for _, tt := range []struct {
		k    stream.Key
		name string
		want uint64
	}{{keep, "a.log", 2}, {gone, "b.log", 0}} {
		_, off, _, err := attachAt(o2, tt.k, mustName(t, tt.name), 0, owner("c"))
		if err != nil || off != tt.want {
			t.Errorf("Attach(%s) = %d, %v; want %d", tt.name, off, err, tt.want)
		}
	}
}

// TestCrashMidTransaction: records a crashed instance produced in a
// transaction it never ended, data and state alike, are never seen by
// read_committed consumers, and the next instance resumes from the state
// committed before.
func TestCrashMidTransaction(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	o := mustOpen(t, cfg)
	r := run(t, o)
	k := key("h", 1)
	s, _, _, _ := attachAt(o, k, mustName(t, "a.log"), 0, owner("c"))
	if err := s.Append(owner("c"), chunk(0, 4, []byte("one\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 4)
	r.stop()
	o.Close()

	// The "crashed" instance: same transactional ID, a transaction with a
	// line and a state record claiming offset 8, never ended.
	crashed, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("thunder-p1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	state := append([]byte("p1\x00h\x00"), k.ID[:]...)
	for _, rec := range []*kgo.Record{
		{Topic: "a.log", Key: []byte("h/a.log"), Value: []byte("two")},
		{Topic: "thunder-state.p1", Key: state, Value: append([]byte{0, 0, 0, 0, 0, 0, 0, 8}, "a.log"...)},
	} {
		if err := crashed.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	crashed.Close() // no EndTransaction: kill -9

	o2 := mustOpen(t, cfg)
	r2 := run(t, o2)
	s2, off, _, err := attachAt(o2, k, mustName(t, "a.log"), 0, owner("c"))
	if err != nil || off != 4 {
		t.Fatalf("after the crash: Attach = %d, %v; want 4", off, err)
	}
	if err := s2.Append(owner("c"), chunk(4, 8, []byte("two\n"))); err != nil {
		t.Fatal(err)
	}
	r2.waitAck(t, s2, 8)
	if got := kafkatest.Values(kafkatest.Consume(t, c, true, "a.log")); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("read_committed: %q, want [one two]", got)
	}
	if got := kafkatest.Values(kafkatest.Consume(t, c, false, "a.log")); !slices.Equal(got, []string{"one", "two", "two"}) {
		t.Errorf("read_uncommitted: %q, want [one two two] (the aborted copy included)", got)
	}
}

// TestAtLeastOnce: without transactions lines land, readable without
// read_committed.
func TestAtLeastOnce(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	cfg.Transactions = false
	o := mustOpen(t, cfg)
	r := run(t, o)
	s, _, _, _ := attachAt(o, key("h", 1), mustName(t, "a.log"), 0, owner("c"))
	if err := s.Append(owner("c"), chunk(0, 8, []byte("one\ntwo\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 8)
	r.stop()
	o.Close()
	o2 := mustOpen(t, cfg)
	if _, off, _, err := attachAt(o2, key("h", 1), mustName(t, "a.log"), 0, owner("c")); err != nil || off != 8 {
		t.Errorf("restart: Attach = %d, %v; want 8", off, err)
	}
	if got := kafkatest.Values(kafkatest.Consume(t, c, false, "a.log")); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("records: %q, want [one two]", got)
	}
}

// TestBackpressure: Append blocks past MaxBufferedBytes until a commit
// frees room, and fails with ErrClosed if the output stops meanwhile.
func TestBackpressure(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	cfg.MaxBufferedBytes = 8
	o := mustOpen(t, cfg)
	s, _, _, _ := attachAt(o, key("h", 1), mustName(t, "a.log"), 0, owner("c"))
	if err := s.Append(owner("c"), chunk(0, 6, []byte("12345\n"))); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Append(owner("c"), chunk(6, 12, []byte("67890\n"))) }()
	select {
	case err := <-done:
		t.Fatalf("Append past the buffer returned %v, want it to block", err)
	case <-time.After(50 * time.Millisecond): // proving a negative: it is still blocked
	}
	r := run(t, o)
	if err := <-done; err != nil {
		t.Fatalf("blocked Append = %v after a commit", err)
	}
	r.waitAck(t, s, 12)
	r.stop()
	// Run stopped: a full buffer now fails instead of blocking forever.
	o2 := mustOpen(t, cfg)
	s2, _, _, _ := attachAt(o2, key("h", 2), mustName(t, "b.log"), 0, owner("c"))
	_ = s2.Append(owner("c"), chunk(0, 6, []byte("12345\n")))
	go func() { done <- s2.Append(owner("c"), chunk(6, 12, []byte("67890\n"))) }()
	o2.Close()
	if err := <-done; !errors.Is(err, kafka.ErrClosed) {
		t.Errorf("Append blocked at Close = %v, want ErrClosed", err)
	}
}

// TestOutage: produce fails, then the new producer cannot be initialised a
// few times (Kafka refuses): nothing is acknowledged until recovery
// succeeds, then the stream resumes from the state and each line is read
// once.
func TestOutage(t *testing.T) {
	c := kafkatest.NewCluster(t)
	o := mustOpen(t, testConfig(t, c))
	r := run(t, o)
	k := key("h", 1)
	s, _, _, _ := attachAt(o, k, mustName(t, "a.log"), 0, owner("c1"))
	if err := s.Append(owner("c1"), chunk(0, 4, []byte("one\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 4)
	produce := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "a.log", Err: kerr.UnknownServerError})
	initPID := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.TransactionalIDAuthorizationFailed, Count: 3})
	if err := s.Append(owner("c1"), chunk(4, 8, []byte("two\n"))); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, waitTimeout, func() error {
		if produce.Hits() == 0 || initPID.Hits() < 3 {
			return fmt.Errorf("faults hit: produce %d, init %d of 3", produce.Hits(), initPID.Hits())
		}
		return nil
	})
	s2, off, _, err := attachAt(o, k, mustName(t, "a.log"), 4, owner("c2")) // waits for the recovery
	if err != nil || off != 4 {
		t.Fatalf("Attach after the outage = %d, %v; want 4", off, err)
	}
	if got := r.acked(s); got != 4 {
		t.Errorf("acked %d during the outage, want 4", got)
	}
	if err := s2.Append(owner("c2"), chunk(4, 12, []byte("two\nthe\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s2, 12)
	if got := kafkatest.Values(kafkatest.Consume(t, c, true, "a.log")); !slices.Equal(got, []string{"one", "two", "the"}) {
		t.Errorf("read_committed: %q, want [one two the]", got)
	}
}

// TestDigestInState: the state topic keeps each stream's digest with its
// committed offset, so a restarted processor reports it in Opened.
func TestDigestInState(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	o := mustOpen(t, cfg)
	r := run(t, o)
	p := []byte("one\ntwo\n")
	s, _, _, _ := attachAt(o, key("h", 1), mustName(t, "a.log"), 0, owner("c"))
	if err := s.Append(owner("c"), chunk(0, 8, p)); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 8)
	r.stop()
	o.Close()
	o2 := mustOpen(t, cfg)
	defer o2.Close()
	want := stream.Mark{Offset: 8, Digest: digest.Checksum(p)}
	if _, at, done, err := o2.Attach(key("h", 1), mustName(t, "a.log"), stream.Mark{}, owner("c")); err != nil || at != want || done != want {
		t.Errorf("restart: Attach = %+v, %+v, %v; want %+v", at, done, err, want)
	}
}
