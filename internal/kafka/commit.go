package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/backoff"
	"thunder/internal/lograte"
	"thunder/internal/stream"
)

// maxValueBytes bounds a record's value, below the 1 MB default of Kafka's
// message.max.bytes and of the client's batch size, leaving room for key
// and headers. A longer line is split into several records, each with the
// offset header of its first byte, as the collector splits over-long lines.
const maxValueBytes = 900_000

const (
	// failureLogEvery is how often a run of failures is logged again.
	failureLogEvery = 30 * time.Second
)

// Ack says that a stream's lines up to At are committed. Owner is the
// stream's owner when the commit finished; nil if none.
type Ack struct {
	Stream *Stream
	Owner  stream.Owner
	At     stream.Mark
}

// deliver hands acks to their owners: Run's way out for acknowledgements.
func deliver(acks []Ack) {
	for _, a := range acks {
		if a.Owner != nil {
			a.Owner.Committed(a.At)
		}
	}
}

// batch is what one commit writes.
type batch struct {
	entries []entry
	bytes   int64
	ends    []streamAt // each touched stream's offset when the commit started
	forget  []stream.Key
}

type streamAt struct {
	s  *Stream
	at stream.Mark
}

// Run commits until ctx is done, then makes a last commit and returns nil.
// Commits run CommitInterval after the first append following the previous
// one, or at once when half of MaxBufferedBytes is pending; acks receives
// the new committed offsets of each successful commit. A failed commit
// acknowledges nothing: Run recovers (see the package comment), retrying
// with backoff while Kafka is unreachable. Run returns an error only when
// another producer with the same transactional ID fenced this one.
func (o *Output) Run(ctx context.Context) error { return o.run(ctx, deliver) }

// run is Run handing the acks to acks (tests watch them there).
func (o *Output) run(ctx context.Context, acks func([]Ack)) error {
	defer o.stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var f failures
	for {
		select {
		case <-o.kick:
		case <-o.full:
		case <-ctx.Done():
			o.final(acks)
			return nil
		}
		timer.Reset(o.cfg.CommitInterval)
		select {
		case <-timer.C:
		case <-o.full:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			o.final(acks)
			return nil
		}
		if ctx.Err() != nil || o.cl == nil {
			continue // stopping: the select above makes the last commit
		}
		if err := o.commitOrRecover(ctx, acks, &f); err != nil {
			return err
		}
	}
}

// failures counts a run of failures and rate-limits their logging: the
// first is logged, then one every failureLogEvery.
type failures struct {
	n   int
	lim *lograte.Limit
}

func (f *failures) log(o *Output, msg string, err error) {
	f.n++
	if f.lim == nil {
		f.lim = lograte.New(failureLogEvery, 1)
	}
	if ok, _ := f.lim.Allow(); ok {
		o.log.Warn(msg, "err", err, "failures", f.n)
	}
}

// commitOrRecover commits what is pending; on failure it recovers and
// returns nil, or returns the fatal error.
func (o *Output) commitOrRecover(ctx context.Context, acks func([]Ack), f *failures) error {
	b := o.swap()
	if b.empty() {
		return nil
	}
	start := time.Now()
	acked, err := o.commit(b)
	if err == nil {
		o.m.committed(time.Since(start))
		o.setErr(nil)
		o.mu.Lock()
		o.lastCommit = start
		o.mu.Unlock()
		if f.n > 0 {
			o.log.Info("kafka commits succeed again", "failures", f.n)
			*f = failures{}
		}
		if len(acked) > 0 {
			acks(acked)
		}
		o.log.Debug("kafka commit", "streams", len(b.ends), "bytes", b.bytes, "took", time.Since(start))
		return nil
	}
	o.m.failed()
	if o.fenced(err) {
		o.setErr(err)
		o.log.Error("kafka producer fenced: another processor runs with the same transactional id", "transactional_id", o.cfg.TransactionalID, "err", err)
		return fmt.Errorf("kafka: fenced by another producer with transactional id %q: %w", o.cfg.TransactionalID, err)
	}
	// Rewind at once, under the same lock that records the error, so no
	// Attach or Append sees the failed commit's offsets from now on.
	o.rewind(nil, b.forget, err)
	f.log(o, "kafka commit failed; rewinding streams to the committed state", err)
	return o.recover(ctx, f)
}

func (o *Output) fenced(err error) bool {
	return o.cfg.Transactions && (errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch))
}

// recover throws the producer away, rewinds every stream and makes its
// connection lose it, then makes a new producer and reads the state topic
// (the truth: an ambiguous commit may have committed) until it succeeds or
// ctx is done. Appends block meanwhile.
func (o *Output) recover(ctx context.Context, f *failures) error {
	// Closing fails what is buffered; the next producer's InitProducerID
	// aborts the open transaction broker-side, or its timeout does.
	o.cl.Close()
	o.cl = nil
	clear(o.known)
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, o.cfg.CommitTimeout)
		cl, state, err := o.connect(cctx, false)
		cancel()
		if err == nil {
			o.cl = cl
			o.rewind(state, nil, nil)
			o.log.Info("kafka output recovered: streams resume from the state topic", "streams", len(state), "attempts", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		o.setErr(err)
		f.log(o, "kafka output cannot reconnect; retrying", err)
		if !recoverRetry.Wait(ctx, attempt) {
			return nil
		}
	}
}

// rewind sends every stream back to its committed offset and takes it
// from its connection, whose next Append fails with ErrNotOwner, and drops
// everything pending. With state (a fresh read of the state topic) the
// committed offsets become the recorded ones and appends resume; without,
// Attach and Append block until the next rewind with state. forget is kept
// for the next commit; err is the commit's error, for Healthy.
func (o *Output) rewind(state map[stream.Key]stream.Mark, forget []stream.Key, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recovering = state == nil
	o.lastErr = err // nil once the state was read again: Kafka is reachable
	if state != nil {
		o.state = state
	}
	for _, s := range o.streams {
		if state != nil {
			s.done = state[s.Key]
		}
		s.at = s.done
		s.owner = nil
	}
	o.buf, o.bufBytes, o.inflight = nil, 0, 0
	clear(o.touched)
	clear(o.committing)
	clear(o.forgetting)
	for _, k := range forget {
		if o.streams[k] == nil { // not attached again since
			o.forget[k] = struct{}{}
		}
	}
	for _, s := range o.streams {
		o.evictLocked(s)
	}
	o.m.buffered(0)
	o.space.Broadcast()
}

// final makes the last commit when Run stops. A failure acknowledges
// nothing; collectors send those lines again to the next instance.
func (o *Output) final(acks func([]Ack)) {
	if o.cl == nil {
		return // recovery did not finish
	}
	b := o.swap()
	if b.empty() {
		return
	}
	start := time.Now()
	acked, err := o.commit(b)
	if err != nil {
		o.m.failed()
		o.setErr(err)
		o.log.Warn("last kafka commit failed; collectors will send its lines again", "err", err)
		return
	}
	o.m.committed(time.Since(start))
	if len(acked) > 0 {
		acks(acked)
	}
}

func (o *Output) setErr(err error) {
	o.mu.Lock()
	o.lastErr = err
	o.mu.Unlock()
}

// swap takes what is pending for a commit; appends from now on go to the
// next one.
func (o *Output) swap() *batch {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := &batch{entries: o.buf, bytes: o.bufBytes}
	for k := range o.forget {
		if o.streams[k] == nil {
			b.forget = append(b.forget, k)
			o.forgetting[k] = struct{}{}
			delete(o.forget, k)
		}
	}
	for s := range o.touched {
		b.ends = append(b.ends, streamAt{s, s.at})
		o.committing[s] = struct{}{}
	}
	clear(o.touched)
	o.buf = nil
	o.inflight, o.bufBytes = o.bufBytes, 0
	return b
}

func (b *batch) empty() bool { return len(b.ends) == 0 && len(b.forget) == 0 }

// commit writes b: with transactions, data and state records in one
// transaction; without, the data, then the state records.
func (o *Output) commit(b *batch) ([]Ack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.CommitTimeout)
	defer cancel()
	o.ensureTopics(ctx, b)
	if o.cfg.Transactions {
		if err := o.cl.BeginTransaction(); err != nil {
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
	}
	var pe produceErr
	data := o.records(b)
	for i := range data {
		o.cl.Produce(ctx, &data[i], pe.promise)
	}
	if !o.cfg.Transactions {
		// The state must never get ahead of the data.
		if err := o.flush(ctx, &pe); err != nil {
			return nil, err
		}
	}
	state := o.stateRecords(b)
	for i := range state {
		o.cl.Produce(ctx, &state[i], pe.promise)
	}
	if err := o.flush(ctx, &pe); err != nil {
		return nil, err
	}
	if o.cfg.Transactions {
		if err := o.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return nil, fmt.Errorf("commit transaction: %w", err)
		}
	}
	return o.committed(b, len(data)), nil
}

func (o *Output) flush(ctx context.Context, pe *produceErr) error {
	if err := o.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := pe.get(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// produceErr keeps the first error of a commit's records.
type produceErr struct {
	mu  sync.Mutex
	err error
}

func (p *produceErr) promise(_ *kgo.Record, err error) {
	if err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
	}
}

func (p *produceErr) get() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// committed applies a successful commit and returns the acks.
func (o *Output) committed(b *batch, records int) []Ack {
	o.mu.Lock()
	defer o.mu.Unlock()
	var acks []Ack
	for _, sa := range b.ends {
		s := sa.s
		if sa.at.Offset >= o.state[s.Key].Offset { // see latest
			o.state[s.Key] = sa.at
		}
		if sa.at.Offset > s.done.Offset && s.at.Offset >= sa.at.Offset {
			s.done = sa.at
			acks = append(acks, Ack{Stream: s, Owner: s.owner, At: sa.at})
		}
	}
	for _, k := range b.forget {
		delete(o.state, k) // its tombstone follows its last state record
	}
	o.inflight = 0
	clear(o.committing)
	clear(o.forgetting)
	for _, sa := range b.ends {
		o.evictLocked(sa.s)
	}
	o.m.wrote(records, b.bytes)
	o.m.buffered(o.bufBytes)
	o.space.Broadcast()
	return acks
}

// records turns the batch's lines into records: one per line, value
// without the newline, keyed by host and file so a file keeps one
// partition and its order.
func (o *Output) records(b *batch) []kgo.Record {
	n := 0
	for _, e := range b.entries {
		n += bytes.Count(e.data, newline)
	}
	recs := make([]kgo.Record, 0, n)
	for _, e := range b.entries {
		off, data := e.offset, e.data
		for len(data) > 0 {
			line, adv := data, len(data) // a last line without newline cannot happen (wire.CheckLines); keep it anyway
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, adv = data[:i], i+1
			}
			// Payload bytes are source bytes from e.offset on (PROTOCOL §5),
			// so off is each piece's source offset.
			for len(line) > maxValueBytes {
				recs = append(recs, record(e.s, off, line[:maxValueBytes]))
				off += maxValueBytes
				line = line[maxValueBytes:]
				adv -= maxValueBytes
			}
			recs = append(recs, record(e.s, off, line))
			off += uint64(adv)
			data = data[adv:]
		}
	}
	return recs
}

var newline = []byte{'\n'}

func record(s *Stream, offset uint64, value []byte) kgo.Record {
	return kgo.Record{
		Topic: s.topic, Key: s.key, Value: value,
		// A full slice: append copies, so every record has its own headers.
		Headers: append(s.hdrs[:len(s.hdrs):len(s.hdrs)], kgo.RecordHeader{Key: "offset", Value: strconv.AppendUint(nil, offset, 10)}),
	}
}

// latest is, per key, the end with the greatest offset: a stream renamed
// while its old name's lines were pending is in a batch twice, and its
// state must not go back to the old name's end.
func latest(ends []streamAt) map[stream.Key]streamAt {
	m := make(map[stream.Key]streamAt, len(ends))
	for _, sa := range ends {
		if cur, ok := m[sa.s.Key]; !ok || sa.at.Offset > cur.at.Offset {
			m[sa.s.Key] = sa
		}
	}
	return m
}

// stateRecords are the batch's state records, tombstones last so that a
// stream forgotten in this batch stays forgotten.
func (o *Output) stateRecords(b *batch) []kgo.Record {
	recs := make([]kgo.Record, 0, len(b.ends)+len(b.forget))
	for _, sa := range latest(b.ends) {
		recs = append(recs, kgo.Record{Topic: o.cfg.StateTopic, Key: o.stateKey(sa.s.Key), Value: stateValue(sa.at, sa.s.Name)})
	}
	for _, k := range b.forget {
		recs = append(recs, kgo.Record{Topic: o.cfg.StateTopic, Key: o.stateKey(k)})
	}
	return recs
}

// ensureTopics creates the data topics this process has not seen yet, with
// the brokers' default partitions and replication. A failure is logged and
// otherwise ignored: the topic may exist, or be created automatically.
func (o *Output) ensureTopics(ctx context.Context, b *batch) {
	var topics []string
	for _, e := range b.entries {
		if !o.known[e.s.topic] {
			o.known[e.s.topic] = true
			topics = append(topics, e.s.topic)
		}
	}
	if len(topics) == 0 {
		return
	}
	resp, err := kadm.NewClient(o.cl).CreateTopics(ctx, -1, -1, nil, topics...)
	if err != nil {
		for _, t := range topics {
			delete(o.known, t) // try again next commit
		}
		o.log.Warn("cannot create kafka topics", "topics", topics, "err", err)
		return
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			o.log.Info("kafka topic created", "topic", r.Topic, "partitions", r.NumPartitions)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			o.log.Warn("cannot create kafka topic", "topic", r.Topic, "err", r.Err)
		}
	}
}

// recoverRetry spaces the attempts to reconnect after a failed commit.
var recoverRetry = backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
