package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/relpath"
	"thunder/internal/stream"
)

// Errors returned by Attach and Append.
var (
	// ErrNotOwner means another connection attached the stream, or a
	// failed commit rewound it; the caller must re-attach.
	ErrNotOwner = fmt.Errorf("kafka: %w", stream.ErrNotOwner)
	// ErrOffset means data did not start where the stream ends.
	ErrOffset = fmt.Errorf("kafka: %w", stream.ErrOffset)
	// ErrName means the stream's topic is not a valid Kafka topic name.
	ErrName = fmt.Errorf("kafka: %w (not a valid topic)", stream.ErrName)
	// ErrClosed means the output stopped committing.
	ErrClosed = errors.New("kafka: output closed")
)

// Output writes streams to Kafka. It is safe for concurrent use; Run is
// the only goroutine that talks to the producer after Open.
type Output struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	kick chan struct{} // something is pending
	full chan struct{} // MaxBufferedBytes/2 pending: commit now

	// Run's own: the producer and the topics known to exist.
	cl    *kgo.Client
	known map[string]bool

	mu         sync.Mutex
	space      *sync.Cond // broadcast when buffered bytes drop, streams rewind, or the output closes
	streams    map[stream.Key]*Stream
	state      map[stream.Key]stream.Mark // committed marks as recorded in the state topic
	buf        []entry                    // appended since the last commit started
	bufBytes   int64
	touched    map[*Stream]struct{}    // streams whose offset moved since the last commit started
	forget     map[stream.Key]struct{} // state keys to tombstone once their streams left memory (Forget)
	forgetting map[stream.Key]struct{} // tombstoned by the commit in progress
	inflight   int64                   // bytes of the commit in progress
	committing map[*Stream]struct{}    // streams in the commit in progress
	recovering bool                    // after a failed commit, until the state is read again
	closed     bool
	lastErr    error     // of the last commit, for Health
	lastCommit time.Time // of the last commit that succeeded
}

// entry is one appended payload: complete lines for source offsets from
// offset on.
type entry struct {
	s      *Stream
	offset uint64
	data   []byte
}

// Stream is the output's view of one collector stream. Its mutable fields
// are guarded by the Output's mu.
type Stream struct {
	Key  stream.Key
	Name string

	o     *Output
	topic string
	key   []byte
	hdrs  []kgo.RecordHeader // host, file, stream: the same on every record

	at    stream.Mark // after the last appended byte
	done  stream.Mark // committed to Kafka
	owner stream.Owner
}

// Open connects to the brokers, creates the state topic if it is missing,
// fences any previous instance with the same transactional ID (aborting its
// open transaction) and reads the committed state.
func Open(ctx context.Context, cfg Config) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := &Output{
		cfg:        cfg,
		log:        cfg.Logger.With("output", "kafka"),
		m:          newMetrics(cfg.Registerer),
		kick:       make(chan struct{}, 1),
		full:       make(chan struct{}, 1),
		known:      make(map[string]bool),
		streams:    make(map[stream.Key]*Stream),
		touched:    make(map[*Stream]struct{}),
		committing: make(map[*Stream]struct{}),
		forget:     make(map[stream.Key]struct{}),
		forgetting: make(map[stream.Key]struct{}),
	}
	o.space = sync.NewCond(&o.mu)
	ctx, cancel := context.WithTimeout(ctx, cfg.CommitTimeout)
	defer cancel()
	cl, state, err := o.connect(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	o.cl, o.state = cl, state
	o.log.Info("kafka output ready", "brokers", cfg.Brokers, "streams", len(state), "transactions", cfg.Transactions)
	return o, nil
}

// connect makes a new producer and reads the state through it.
func (o *Output) connect(ctx context.Context, createState bool) (*kgo.Client, map[stream.Key]stream.Mark, error) {
	connErrs := new(connErrors)
	opts := append(o.clientOpts(),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // Kafka's murmur2 on the key: a file keeps one partition
		kgo.RecordDeliveryTimeout(o.cfg.CommitTimeout),
		kgo.WithHooks(connErrs),
	)
	if o.cfg.Transactions {
		opts = append(opts, kgo.TransactionalID(o.cfg.TransactionalID), kgo.TransactionTimeout(2*o.cfg.CommitTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, err
	}
	if createState {
		_, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, o.cfg.StateTopic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			o.log.Warn("cannot create the state topic; assuming it exists", "topic", o.cfg.StateTopic, "err", err)
		}
	}
	// InitProducerID: bumps the epoch, which fences an older instance and
	// aborts its open transaction before we read the state.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("init producer: %w", connErrs.explain(err))
	}
	state, err := o.load(ctx, cl)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, state, nil
}

// clientOpts are the options of every client: brokers and security.
func (o *Output) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.cfg.Brokers...),
		kgo.WithLogger(kgoLogger{o.log}),
		kgo.DisableClientMetrics(), // no telemetry to the brokers, and Close need not wait to push it
	}
	if o.cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.cfg.TLS.Clone()))
	}
	if o.cfg.SASL != nil {
		opts = append(opts, kgo.SASL(o.cfg.SASL))
	}
	return opts
}

// Attach binds the stream to owner (one token per connection) and returns
// where the collector must resume: the end of what was appended, committed
// or not, or acked if the collector knows of more. A previous owner loses
// the stream: its appends fail with ErrNotOwner. While a failed commit is
// being recovered, Attach waits for the state topic to be read again.
func (o *Output) Attach(key stream.Key, n relpath.Name, acked stream.Mark, owner stream.Owner) (s *Stream, at, done stream.Mark, err error) {
	name := n.String()
	if n.IsZero() || owner == nil {
		return nil, at, done, fmt.Errorf("%w: attach without a name or an owner", ErrName)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.recovering && !o.closed {
		o.space.Wait() // the truth is being read from the state topic
	}
	if o.closed {
		return nil, at, done, ErrClosed
	}
	s = o.streams[key]
	if s == nil || s.Name != name {
		topic := topicFor(o.cfg.Topic, key.Collector, name)
		if !validTopic(topic) {
			return nil, at, done, fmt.Errorf("%w: %q for %s", ErrName, topic, name)
		}
		start := o.state[key]
		if s != nil {
			// The collector renamed what the stream is delivered as:
			// follow it, without sending again what the old name got.
			s.owner = nil
			if s.at.Offset > start.Offset {
				start = s.at
			}
		}
		s = &Stream{
			Key: key, Name: name, o: o, topic: topic,
			key: []byte(key.Collector + "/" + name),
			hdrs: []kgo.RecordHeader{
				{Key: "host", Value: []byte(key.Collector)},
				{Key: "file", Value: []byte(name)},
				{Key: "stream", Value: []byte(key.ID.String())},
			},
			at: start, done: start,
		}
		o.streams[key] = s
	}
	delete(o.forget, key) // attached again: its state stays
	if _, ok := o.forgetting[key]; ok {
		// The commit in progress tombstones it: record it again after.
		o.touched[s] = struct{}{}
		o.notify(false)
	}
	if acked.Offset > s.at.Offset {
		// Bytes below acked were delivered before: start the stream there,
		// with the collector's digest of them, and record it at the next
		// commit.
		s.at, s.done = acked, acked
		o.touched[s] = struct{}{}
		o.notify(false)
	}
	s.owner = owner
	o.space.Broadcast() // a previous owner blocked in Append must see it lost the stream
	return s, s.at, s.done, nil
}

// Offset returns the next source offset the stream expects.
func (s *Stream) Offset() uint64 {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	return s.at.Offset
}

// Committed returns the stream's committed source offset, and its digest
// there.
func (s *Stream) Committed() stream.Mark {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	return s.done
}

// recordOverhead is what a line costs in memory beyond its bytes once it is
// a kgo.Record with its headers (the record, four headers, the offset
// text and the client's bookkeeping): about 400 bytes. Counting it keeps
// MaxBufferedBytes a bound on memory, not only on line bytes (without it
// the kafka bench peaked near 500 MiB with a 64 MiB buffer of 100-byte
// lines).
const recordOverhead = 400

// Append queues c's payload, complete lines for source offsets [c.Offset,
// c.End), for the next commit. It copies the payload. It blocks while more
// than MaxBufferedBytes are held (backpressure) or a failed commit is being
// recovered.
func (s *Stream) Append(owner stream.Owner, c stream.Chunk) error {
	o := s.o
	n := int64(len(c.Payload)) + int64(c.Lines)*recordOverhead
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		switch {
		case o.closed:
			return ErrClosed
		case s.owner != owner || owner == nil:
			return ErrNotOwner
		case c.Offset != s.at.Offset:
			return fmt.Errorf("%w: got %d, stream is at %d", ErrOffset, c.Offset, s.at.Offset)
		}
		held := o.bufBytes + o.inflight
		if !o.recovering && (held == 0 || held+n <= o.cfg.MaxBufferedBytes) {
			break
		}
		o.space.Wait()
	}
	o.buf = append(o.buf, entry{s: s, offset: c.Offset, data: append([]byte(nil), c.Payload...)})
	o.bufBytes += n
	o.m.buffered(o.bufBytes + o.inflight)
	s.at = s.at.After(c)
	o.touched[s] = struct{}{}
	o.notify(o.bufBytes >= o.cfg.MaxBufferedBytes/2)
	return nil
}

// notify wakes Run; full asks for a commit now. o.mu is held.
func (o *Output) notify(full bool) {
	select {
	case o.kick <- struct{}{}:
	default:
	}
	if full {
		select {
		case o.full <- struct{}{}:
		default:
		}
	}
}

// Detach releases the stream if owner still holds it.
func (s *Stream) Detach(owner stream.Owner) { s.release(owner, false) }

// Forget releases the stream, if owner still holds it, and tombstones its
// state record at the next commit: the collector finished and deleted its
// file.
func (s *Stream) Forget(owner stream.Owner) { s.release(owner, true) }

// release is Detach, and Forget with forget, under one lock.
func (s *Stream) release(owner stream.Owner, forget bool) {
	o := s.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.owner != owner || owner == nil {
		return // another connection took the stream over; it decides
	}
	s.owner = nil
	if forget {
		o.forget[s.Key] = struct{}{}
		o.notify(false)
	}
	o.evictLocked(s)
}

// evictLocked drops s from memory once no connection holds it and nothing
// of it is pending, so memory follows attached streams. o.mu is held.
func (o *Output) evictLocked(s *Stream) {
	if s.owner != nil || s.at != s.done || o.streams[s.Key] != s {
		return
	}
	if _, ok := o.touched[s]; ok {
		return
	}
	if _, ok := o.committing[s]; ok {
		return
	}
	delete(o.streams, s.Key)
	if _, ok := o.forget[s.Key]; ok {
		o.notify(false) // its tombstone can go now
	}
}

// Health returns when the last commit succeeded and the error of the last
// commit, nil if it succeeded.
func (o *Output) Health() (time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lastErr != nil {
		return o.lastCommit, fmt.Errorf("kafka: last commit failed: %w", o.lastErr)
	}
	return o.lastCommit, nil
}

// Reopen does nothing: Kafka has no files to reopen (SIGHUP).
func (o *Output) Reopen() error { return nil }

// Close releases the producer. Call it after Run returned; lines not
// committed by then are sent again by the collectors.
func (o *Output) Close() error {
	o.stop()
	if o.cl != nil {
		o.cl.Close()
		o.cl = nil
	}
	return nil
}

// stop makes every Attach and Append fail with ErrClosed from now on.
func (o *Output) stop() {
	o.mu.Lock()
	o.closed = true
	o.space.Broadcast()
	o.mu.Unlock()
}

// kgoLogger passes the Kafka client's warnings and errors to slog at debug
// level: they repeat on every retry while a broker is down, and the output
// logs the failures that matter itself, rate-limited. (The client's info
// level logs every transaction.)
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	l.log.Debug("kafka client: "+msg, keyvals...)
}
