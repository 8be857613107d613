package processor

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/backoff"
	"thunder/internal/bufpool"
	"thunder/internal/identity"
	"thunder/internal/kafka"
	"thunder/internal/layout"
	"thunder/internal/lograte"
	"thunder/internal/relpath"
	"thunder/internal/target"
	"thunder/internal/wire"
)

// Config configures a Processor.
type Config struct {
	// Name identifies this processor in the handshake and logs.
	Name string
	// TargetDir is where streams are written (must exist); "" for none
	// when Kafka is set.
	TargetDir string
	// Kafka, when not nil, writes streams to Kafka as well (or only, with
	// no TargetDir). Its Processor, Logger and Registerer default to this
	// Config's Name, Logger and Registerer.
	Kafka *kafka.Config
	// CommitInterval bounds how long appended data waits for its group
	// commit (fsync + state record + ack).
	CommitInterval time.Duration
	// CommitBytes starts a commit early once this much is pending.
	CommitBytes int64
	// Token, when set, must be presented by every collector.
	Token string
	// BindNameToCert requires, on mutual TLS connections, that a
	// collector's name be its certificate's common name or one of its DNS
	// names, so one host cannot write as another.
	BindNameToCert bool
	// Identity is how collectors prove their names (PROTOCOL.md §12):
	// identity.ModeTOFU ("" too) pins a name's key at its first contact,
	// ModeKnown accepts only pinned names, ModeOff takes names as claimed.
	Identity identity.Mode
	// KnownCollectors is the pin file ("": <TargetDir>/.thunder/known_collectors,
	// or memory only without a TargetDir).
	KnownCollectors string
	// HandshakeTimeout bounds the time from getting a handshake slot (at
	// accept, unless it waited for one, as long again at most) to a valid
	// Hello (and, unless Identity is off, its Proof).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing (collectors ping).
	IdleTimeout time.Duration
	// FrameTimeout bounds, with MinFrameRate, the time a frame may take
	// from its first byte: FrameTimeout + size / MinFrameRate.
	FrameTimeout time.Duration
	// WriteTimeout bounds each write to a collector.
	WriteTimeout time.Duration
	// LingerTimeout bounds the wait, when a connection ends, for the
	// collector to close its side after reading the last frames.
	LingerTimeout time.Duration
	// MaxStreamsPerConn bounds the streams one connection may open.
	MaxStreamsPerConn int
	// RequireChecksums refuses collectors that do not checksum their
	// frames (older than the crc32c feature, PROTOCOL §13); by default they
	// are served, with a warning, so a fleet can be upgraded in any order.
	RequireChecksums bool
	// MaxConns bounds open connections; MaxHandshakes those still in their
	// handshake (slowloris); MaxConnsPerPeer those from one peer (0: no
	// limit). A peer is an IPv4 address or an IPv6 /64. Connections past
	// MaxConns or MaxConnsPerPeer are closed at once; past MaxHandshakes
	// they wait for a slot, up to HandshakeTimeout, unless their peer holds
	// the most slots and none past the token check (closed at once), and a
	// connection from a peer holding fewer takes the slot of a handshake
	// silent for a while of the peer holding the most (admit.go).
	MaxConns, MaxHandshakes, MaxConnsPerPeer int
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics (nil: none).
	Registerer prometheus.Registerer
	// Compression lists the codecs accepted from collectors (wire.CompressionZstd).
	Compression []string
	// MaxOpenFiles bounds open target files: past it, the files written
	// least recently are closed (and reopened when written again).
	MaxOpenFiles int
	// JournalMinFiles, when positive, has commits that write at least
	// that many target files copy them into a journal instead of syncing
	// each (target.Config.JournalMinFiles; experimental).
	JournalMinFiles int
	// ScrubInterval, when positive, runs Verify on the target dir this
	// often while serving, at ScrubRate bytes per second (0: unlimited),
	// and logs every file not as committed at ERROR.
	ScrubInterval time.Duration
	ScrubRate     int64
	// Layout maps a stream to its path in TargetDir (the zero Layout is
	// layout.Default: the name the collector sent). It applies to the
	// target dir only: Kafka topics follow Kafka.Topic.
	Layout layout.Layout
	// Clock is the time {date} of Layout is taken from (nil: time.Now).
	Clock func() time.Time
}

// now is the processor's clock.
func (c Config) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// DefaultConfig returns the defaults used by `thunder logs-processor`.
func DefaultConfig() Config {
	return Config{
		CommitInterval:    target.DefaultCommitInterval,
		CommitBytes:       target.DefaultCommitBytes,
		HandshakeTimeout:  10 * time.Second,
		IdleTimeout:       60 * time.Second,
		FrameTimeout:      10 * time.Second,
		WriteTimeout:      30 * time.Second,
		LingerTimeout:     time.Second,
		MaxStreamsPerConn: 100_000,
		MaxConns:          10_000,
		MaxHandshakes:     256,
		Compression:       []string{wire.CompressionZstd},
		MaxOpenFiles:      target.DefaultMaxOpenFiles,
		Identity:          identity.ModeTOFU,
		ScrubRate:         DefaultVerifyRate,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.TargetDir == "" && c.Kafka == nil {
		errs = append(errs, errors.New("--target-dir or --kafka-brokers is required"))
	}
	if c.Kafka != nil {
		errs = append(errs, c.kafkaConfig().Validate())
	}
	if c.CommitInterval <= 0 {
		errs = append(errs, fmt.Errorf("--commit-interval=%s: must be positive", c.CommitInterval))
	}
	if c.HandshakeTimeout <= 0 || c.IdleTimeout <= 0 || c.FrameTimeout <= 0 || c.WriteTimeout <= 0 || c.LingerTimeout < 0 {
		errs = append(errs, fmt.Errorf("--handshake-timeout=%s, --idle-timeout=%s, --frame-timeout=%s: all must be positive", c.HandshakeTimeout, c.IdleTimeout, c.FrameTimeout))
	}
	if _, err := identity.ParseMode(string(c.Identity)); err != nil {
		errs = append(errs, err)
	} else if c.Identity == identity.ModeKnown && c.pinFile() == "" {
		errs = append(errs, errors.New("collector identity mode known needs a pin file (--known-collectors or a target dir)"))
	}
	if c.MaxOpenFiles < minOpenFiles {
		errs = append(errs, fmt.Errorf("--max-open-files=%d: must be at least %d", c.MaxOpenFiles, minOpenFiles))
	}
	if c.ScrubInterval < 0 || c.ScrubRate < 0 {
		errs = append(errs, fmt.Errorf("--scrub-interval=%s, --scrub-rate=%d: must not be negative", c.ScrubInterval, c.ScrubRate))
	}
	if !c.Layout.IsDefault() && c.TargetDir == "" {
		errs = append(errs, fmt.Errorf("--target-layout %q needs a target dir: it lays out files, Kafka topics are named by --kafka-topic", c.Layout))
	}
	if c.ScrubInterval > 0 && c.TargetDir == "" {
		errs = append(errs, errors.New("--scrub-interval needs --target-dir"))
	}
	if c.MaxStreamsPerConn <= 0 || c.MaxConns <= 0 || c.MaxHandshakes <= 0 || c.MaxConnsPerPeer < 0 {
		errs = append(errs, fmt.Errorf("--max-streams-per-conn=%d, --max-conns=%d, --max-handshakes=%d must be positive and --max-conns-per-peer=%d not negative", c.MaxStreamsPerConn, c.MaxConns, c.MaxHandshakes, c.MaxConnsPerPeer))
	}
	return errors.Join(errs...)
}

// pinFile is the path of the pin file, "" for pins in memory only.
func (c Config) pinFile() string {
	if c.KnownCollectors != "" || c.TargetDir == "" {
		return c.KnownCollectors
	}
	return filepath.Join(c.TargetDir, relpath.StateDir, "known_collectors")
}

// kafkaConfig is the Kafka output's config with the defaults taken from c.
func (c Config) kafkaConfig() kafka.Config {
	kc := *c.Kafka
	if kc.Processor == "" {
		kc.Processor = c.Name
	}
	if kc.Logger == nil {
		kc.Logger = c.Logger
	}
	if kc.Registerer == nil {
		kc.Registerer = c.Registerer
	}
	return kc
}

// Processor serves collectors.
type Processor struct {
	cfg  Config
	log  *slog.Logger
	outs []output       // the target dir, then Kafka; at least one
	dir  *target.Dir    // the target dir's output; nil with Kafka only
	pins *identity.Pins // nil with identity.ModeOff
	mode identity.Mode  // never ""

	mu          sync.Mutex
	sessions    map[*session]struct{}
	peers       map[string]int // open connections by peerKey
	hs          handshakes     // in their handshake, holding a slot
	waiting     handshakes     // accepted, waiting for a slot (awaitSlot)
	fdBudget    int            // connections the descriptor limit leaves room for (0: none); descriptors.go
	left        chan struct{}  // a session ended (coalesced): admitWithin looks again
	limitLogged time.Time
	evictLogged time.Time
	evictions   int // since evictLogged

	m        *metrics
	logLimit *lograte.Limit // per-connection lines (connLog)
	refusals *lograte.Keyed // the same refusal of the same peer (logRefusal)
	total    struct{ bytes, lines atomic.Uint64 }

	zstd  *wire.Decoder // nil unless zstd is accepted
	zbufs *bufpool.Pool // decompressed payloads, by size class

	verifying sync.Mutex      // held by the one Verify running (verify.go)
	life      context.Context // done once Serve returns or Close starts: a running Verify stops
	endLife   context.CancelFunc
	scrubM    *scrubMetrics
}

// New validates cfg and opens the outputs (recovering the target dir).
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Processor{
		cfg:      cfg,
		log:      cfg.Logger,
		zbufs:    bufpool.New(wire.ReadBufferBytes, wire.MaxPayloadBytes),
		sessions: make(map[*session]struct{}),
		peers:    make(map[string]int),
		m:        newMetrics(cfg.Registerer),
		logLimit: connLog(),
		refusals: lograte.NewKeyed(refusalLogEvery, maxRefusalKeys),
		scrubM:   newScrubMetrics(cfg.Registerer),
		left:     make(chan struct{}, 1),
	}
	p.budgetDescriptors()
	p.life, p.endLife = context.WithCancel(context.Background())
	if err := p.open(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// open opens what New needs beyond memory: the outputs, the pins and the
// decoder. Close releases whatever of it was opened.
func (p *Processor) open() error {
	cfg := p.cfg
	if cfg.TargetDir != "" {
		dir, err := target.Open(target.Config{
			Dir: cfg.TargetDir, Logger: cfg.Logger, Registerer: cfg.Registerer,
			CommitInterval: cfg.CommitInterval, CommitBytes: cfg.CommitBytes, MaxOpenFiles: cfg.MaxOpenFiles, JournalMinFiles: cfg.JournalMinFiles,
		})
		if err != nil {
			return err
		}
		p.outs = append(p.outs, files{Dir: dir, layout: cfg.Layout, now: cfg.now})
		p.dir = dir
	}
	p.mode, _ = identity.ParseMode(string(cfg.Identity)) // validated
	var err error
	if p.pins, err = openPins(cfg, p.mode); err != nil {
		return err
	}
	if cfg.Kafka != nil {
		// Open bounds itself with the commit timeout.
		kout, err := kafka.Open(context.Background(), cfg.kafkaConfig())
		if err != nil {
			return err
		}
		p.outs = append(p.outs, kafkaOutput{kout})
	}
	if slices.Contains(cfg.Compression, wire.CompressionZstd) {
		if p.zstd, err = wire.NewDecoder(); err != nil {
			return err
		}
	}
	return nil
}

// acceptRetry spaces the retries of a failing Accept (out of descriptors).
var acceptRetry = backoff.Policy{Min: 5 * time.Millisecond, Max: time.Second}

// Serve accepts collectors on ln until ctx is done, then stops reading,
// commits, sends the last acknowledgements and returns nil. It closes ln.
// An output's fatal error (Kafka fenced) stops it too.
func (p *Processor) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer p.endLife() // a Verify still running (the admin endpoint's) stops with the processor
	// The outputs commit until the sessions have stopped, so that their
	// last commit holds what the sessions appended.
	outCtx, stopOutputs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOutputs()
	outErrs := p.runOutputs(outCtx, cancel)
	go func() {
		<-ctx.Done()
		_ = ln.Close() // stops Accept
	}()
	var wg sync.WaitGroup
	wg.Go(func() { p.rebalance(ctx) })
	if p.cfg.ScrubInterval > 0 {
		wg.Go(func() { p.scrub(ctx) })
	}
	err := p.accept(ctx, ln, &wg)
	cancel()
	// Readers have stopped appending once their sessions see ctx done; the
	// outputs make a last commit and hand out its acks before they end.
	p.stopReading()
	p.waitReaders(readersTimeout)
	stopOutputs()
	outErr := <-outErrs
	p.mu.Lock()
	for s := range p.sessions {
		s.finish()
	}
	p.mu.Unlock()
	wg.Wait()
	return errors.Join(err, outErr)
}

// runOutputs runs every output's commit loop until ctx is done; a fatal
// error calls fail. The channel gets their errors, joined, once all ended.
func (p *Processor) runOutputs(ctx context.Context, fail func()) <-chan error {
	errs := make([]error, len(p.outs))
	var wg sync.WaitGroup
	for i, out := range p.outs {
		wg.Go(func() {
			if errs[i] = out.Run(ctx); errs[i] != nil {
				fail()
			}
		})
	}
	done := make(chan error, 1)
	go func() {
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	return done
}

// accept serves connections from ln until ctx is done (nil) or Accept
// fails for good.
func (p *Processor) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	var failures int
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || outOfDescriptors(err) {
				// Out of descriptors or similar: back off like net/http does.
				failures++
				p.log.Warn("accept failed; retrying", "err", err, "failures", failures)
				acceptRetry.Wait(ctx, failures)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		failures = 0
		s, ok := p.admitWithin(ctx, conn)
		if !ok {
			continue
		}
		wg.Go(func() {
			s.serve(ctx)
			p.mu.Lock()
			delete(p.sessions, s)
			if p.peers[s.ip]--; p.peers[s.ip] <= 0 {
				delete(p.peers, s.ip)
			}
			p.mu.Unlock()
			p.sessionLeft()
		})
	}
}

// readersTimeout bounds the wait for the readers to stop on shutdown: one
// may be blocked in an output (Kafka down, its buffer full).
const readersTimeout = 5 * time.Second

// waitReaders waits until no session's reader can append any more, so
// that the final commit holds, and acknowledges, all that was appended: a
// reader still in the middle of a Data frame when reading stopped would
// append after it, and that data would be committed by Close but never
// acknowledged. With one processor that costs nothing (the collector is
// told the appended offset when it reconnects); when the collector fails
// over to another processor, it would be written there again.
func (p *Processor) waitReaders(timeout time.Duration) {
	p.mu.Lock()
	sessions := make([]*session, 0, len(p.sessions))
	for s := range p.sessions {
		sessions = append(sessions, s)
	}
	p.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, s := range sessions {
		select {
		case <-s.readDone:
		case <-t.C:
			p.log.Warn("readers still busy at shutdown; what they append now is not acknowledged", "after", timeout)
			return
		}
	}
}

// stopReading makes every session's blocked read return.
func (p *Processor) stopReading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.sessions {
		_ = s.conn.SetReadDeadline(time.Now()) // wakes the reader
	}
}

// Reopen reloads the pin file, then commits and reopens every target file
// (SIGHUP, SIGUSR1).
func (p *Processor) Reopen() error {
	perr := p.reloadPins()
	if err := p.reopenFiles(); err != nil {
		return errors.Join(perr, err)
	}
	return perr
}

func (p *Processor) reopenFiles() error {
	var errs []error
	for _, out := range p.outs {
		errs = append(errs, out.Reopen())
	}
	p.m.reopened()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if p.cfg.TargetDir != "" {
		p.log.Info("target files reopened")
	}
	return nil
}

// Close releases the outputs. Call it after Serve returned.
func (p *Processor) Close() error {
	p.endLife()
	p.verifying.Lock() // a Verify still running (the admin endpoint's) ends first
	defer p.verifying.Unlock()
	var errs []error
	for _, out := range p.outs {
		errs = append(errs, out.Close())
	}
	if p.zstd != nil {
		p.zstd.Close()
	}
	return errors.Join(errs...)
}

func (p *Processor) checkToken(got string) bool {
	if p.cfg.Token == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(p.cfg.Token)) == 1
}
