package collector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/identity"
	"thunder/internal/inuse"
	"thunder/internal/offsets"
	"thunder/internal/stream"
	"thunder/internal/watch"
	"thunder/internal/wire"
)

// Config configures a Collector.
type Config struct {
	// Name identifies this collector to processors (default: host name).
	Name string
	// SourceDir is the directory whose files are streamed (recursively).
	SourceDir string
	// OffsetsDB is the path of the offsets database.
	OffsetsDB string
	// Targets are processor addresses, host:port. With several, each
	// target name is sent to the first reachable one in its rendezvous
	// ranking (package shard); every collector must list the same
	// addresses, in any order.
	Targets []string
	// Dial opens a connection (nil: a net.Dialer). TLS plugs in here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Token is presented to processors that require one.
	Token string
	// RotateSize rotates a file once it grows past this many bytes (0: never).
	RotateSize int64
	// RotateAge rotates a non-empty file this long after it was first seen,
	// for files that grow slowly (0: never).
	RotateAge time.Duration
	// RescanInterval is the period of the safety-net directory walk.
	RescanInterval time.Duration
	// MaxLineBytes: longer lines are split into pieces of this size, each
	// given a newline (counted in Stats.LinesSplit).
	MaxLineBytes int
	// ChunkBytes is the most file data read for one frame.
	ChunkBytes int
	// Buffers is the number of ChunkBytes buffers: the collector's data memory.
	Buffers int
	// WindowBytes bounds data sent but not yet acknowledged.
	WindowBytes int64
	// FlushIdle is how long the unterminated last line of a file that was
	// deleted or rotated away waits before it is sent with a newline added.
	FlushIdle time.Duration
	// PingInterval is the heartbeat period on an idle connection; a
	// connection silent for three intervals is considered dead.
	PingInterval time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay.
	BackoffMin, BackoffMax time.Duration
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics (nil: none).
	Registerer prometheus.Registerer
	// MaxOpenFiles bounds source files held open: past it, the files idle
	// longest whose content is all acknowledged are closed, and reopened
	// when they change.
	MaxOpenFiles int
	// Exclude lists glob patterns (path.Match) of files not to stream,
	// matched against the path relative to SourceDir and the base name,
	// e.g. "*.gz" or "archive/*".
	Exclude []string
	// Linger is how long the watcher stops taking inotify events after a
	// write event (watch.Config.Pace): the kernel merges a file's repeated
	// write events meanwhile, so a writer doing one write(2) per line is
	// read in batches. It adds at most Linger of latency; 0 turns it off.
	// While files grow slowly the pause is an eighth of it (pace.go).
	Linger time.Duration
	// AdaptProcs makes the collector set GOMAXPROCS: 1 while it sends
	// slowly, all it had while it sends fast (procs.go). For a process that
	// runs one collector and left GOMAXPROCS to the runtime.
	AdaptProcs bool
	// Compression is the codec to offer ("" or wire.CompressionZstd); data
	// is compressed only if the processor accepts it.
	Compression string
	// NoFrameChecksums turns off the crc32c feature (PROTOCOL.md §13):
	// frames without checksums and no digest checks, as a collector older
	// than them. For measuring what they cost, and nothing else.
	NoFrameChecksums bool
}

// MaxTargets bounds the processor addresses of one collector.
const MaxTargets = 64

// DefaultConfig returns the defaults of `thunder logs-collector`.
func DefaultConfig() Config {
	return Config{
		RescanInterval: 30 * time.Second,
		MaxLineBytes:   1 << 20,
		ChunkBytes:     1 << 20,
		Buffers:        8,
		WindowBytes:    32 << 20,
		FlushIdle:      5 * time.Second,
		PingInterval:   10 * time.Second,
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     10 * time.Second,
		MaxOpenFiles:   4096,
		Linger:         4 * time.Millisecond,
		RotateSize:     10 << 20,
	}
}

// Validate reports every problem of c, each named by the flag of thunder
// logs-collector (and key of its config file) that sets the field.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("--name is required"))
	}
	if c.SourceDir == "" {
		errs = append(errs, errors.New("--source-dir is required"))
	}
	if c.OffsetsDB == "" {
		errs = append(errs, errors.New("--offsets-db is required"))
	}
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("--target-address is required"))
	}
	if len(c.Targets) > MaxTargets {
		errs = append(errs, fmt.Errorf("--target-address: %d addresses, at most %d", len(c.Targets), MaxTargets))
	}
	seen := make(map[string]bool, len(c.Targets))
	for _, t := range c.Targets {
		if seen[t] {
			errs = append(errs, fmt.Errorf("--target-address: %s listed twice", t))
		}
		seen[t] = true
	}
	if c.ChunkBytes < 4096 || c.ChunkBytes > wire.MaxPayloadBytes-1 {
		errs = append(errs, fmt.Errorf("--chunk-bytes=%d: must be between 4096 and %d", c.ChunkBytes, wire.MaxPayloadBytes-1))
	}
	if c.MaxLineBytes < 1 || c.MaxLineBytes > c.ChunkBytes {
		errs = append(errs, fmt.Errorf("--max-line-bytes=%d: must be between 1 and --chunk-bytes (%d)", c.MaxLineBytes, c.ChunkBytes))
	}
	for _, p := range c.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("--exclude: bad pattern %q: %w", p, err))
		}
	}
	if c.MaxOpenFiles < 16 {
		errs = append(errs, fmt.Errorf("--max-open-files=%d: must be at least 16", c.MaxOpenFiles))
	}
	if c.Buffers < 2 {
		errs = append(errs, errors.New("buffers must be at least 2"))
	}
	if c.WindowBytes < int64(c.ChunkBytes) {
		errs = append(errs, fmt.Errorf("--window-bytes=%d must hold at least one chunk of --chunk-bytes=%d: raise --window-bytes or lower --chunk-bytes", c.WindowBytes, c.ChunkBytes))
	}
	if c.Compression != "" && c.Compression != wire.CompressionZstd {
		errs = append(errs, fmt.Errorf("--compress=%s: unknown (zstd or none)", c.Compression))
	}
	if c.RescanInterval <= 0 {
		errs = append(errs, fmt.Errorf("--rescan-interval=%s: must be positive", c.RescanInterval))
	}
	if c.FlushIdle <= 0 {
		errs = append(errs, fmt.Errorf("--flush-idle=%s: must be positive", c.FlushIdle))
	}
	if c.Linger < 0 || c.RotateAge < 0 || c.RotateSize < 0 {
		errs = append(errs, fmt.Errorf("--linger=%s, --rotate-age=%s, --rotate-size=%d: none may be negative", c.Linger, c.RotateAge, c.RotateSize))
	}
	if c.PingInterval <= 0 || c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, errors.New("ping interval and backoff must be positive"))
	}
	return errors.Join(errs...)
}

// Collector streams a source directory.
type Collector struct {
	cfg   Config
	log   *slog.Logger
	dir   string // absolute source dir
	dbAbs string // absolute offsets DB path, never streamed
	dbIno devIno // the offsets DB's inode: never streamed under any path (it holds the key)
	db    *offsets.DB
	key   ed25519.PrivateKey // proves cfg.Name to processors (PROTOCOL.md §12)
	watch *watch.Watcher

	inbox   chan linkMsg
	pool    chan *[]byte
	stopped chan struct{} // closed when the Run loop has returned

	// Owned by the loop in Run.
	byID         map[stream.ID]*source
	byPath       map[string]*source // current rel path → live source
	byIno        map[devIno]*source
	lastByName   map[string]*source // target name → its newest source
	noProcLogged bool
	openBy       func(path string, self bool) ([]int, error) // inuse.OpenBy; forced to fail in a test
	openFiles    int
	ticks        int
	ackDirty     []*source       // acked offset changed since the last save
	skipped      map[string]bool // non-regular files already logged
	fdLogged     bool
	ready        []*source
	unsaved      []*source // new or changed records to persist
	forget       []stream.ID
	links        []*link // by index in cfg.Targets; nil while down
	tried        []bool  // by index in cfg.Targets: connected or failed once
	spare        *[]byte
	wantBuf      bool
	zscratch     []byte
	replayBuf    []byte               // for replayTo, made at its first use
	openReplay   uint64               // openReplayBytes; smaller in tests
	roundBytes   uint64               // sent since paceFrom (pace.go)
	paceFrom     time.Time            // when adaptPace last decided
	pace         time.Duration        // the watcher's pause, as adaptPace last set it
	procs        procs                // GOMAXPROCS, as adaptPace last set it (procs.go)
	ackSeconds   prometheus.Histogram // thunder_collector_ack_seconds (acktime.go)
	fpBuf        [offsets.FingerprintBytes]byte
	// protoLogged: when a protocol error was last logged;
	// protoSuppressed: those not logged since.
	protoLogged     time.Time
	protoSuppressed int
	refused         map[string]*refusal // target name → its refusal
	refusedShown    bool                // Stats show refused files

	statsMu sync.Mutex
	stats   Stats
	top     []StreamStatus
	updated time.Time

	refusedList []RefusedFile
	mismatched  []MismatchedFile // published by publishMismatches
	heldList    []HeldFile       // published by updateStats

	goneMismatches []MismatchedFile // ended streams that mismatched; Run loop only
}

// New validates cfg, opens the offsets DB and starts watching the source dir.
func New(cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := sourceDir(cfg.SourceDir)
	if err != nil {
		return nil, err
	}
	dbAbs, err := filepath.Abs(cfg.OffsetsDB)
	if err != nil {
		return nil, fmt.Errorf("offsets db: %w", err)
	}
	db, key, dbIno, err := openDB(dbAbs)
	if err != nil {
		return nil, err
	}
	w, err := watch.New(watch.Config{Dir: dir, RescanInterval: cfg.RescanInterval, Logger: cfg.Logger, Pace: cfg.Linger})
	if err != nil {
		db.Close()
		return nil, err
	}
	c := &Collector{
		cfg:        cfg,
		log:        cfg.Logger,
		dir:        dir,
		dbAbs:      dbAbs,
		dbIno:      dbIno,
		db:         db,
		key:        key,
		watch:      w,
		inbox:      make(chan linkMsg, 256),
		stopped:    make(chan struct{}),
		pool:       make(chan *[]byte, cfg.Buffers),
		byID:       make(map[stream.ID]*source),
		byPath:     make(map[string]*source),
		byIno:      make(map[devIno]*source),
		links:      make([]*link, len(cfg.Targets)),
		tried:      make([]bool, len(cfg.Targets)),
		lastByName: make(map[string]*source),
		skipped:    make(map[string]bool),
		refused:    make(map[string]*refusal),
		openReplay: openReplayBytes,
		openBy:     inuse.OpenBy,
		ackSeconds: newAckSeconds(),
	}
	c.stats.Name = cfg.Name
	c.stats.IdentityKey = identity.FormatKey(identity.Public(key))
	c.log.Info("collector identity", "collector", cfg.Name, "key", c.stats.IdentityKey, "offsets_db", dbAbs)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(metrics{c}); err != nil {
			w.Close()
			db.Close()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	c.fillPool()
	return c, nil
}

// fillPool makes the data buffers: each holds the frame's headers,
// ChunkBytes of file data, one more byte so that a line of exactly
// MaxLineBytes is seen whole, one for a newline tail.Read adds, and the
// frame's trailer (§13).
func (c *Collector) fillPool() {
	for range c.cfg.Buffers {
		b := make([]byte, wire.DataPrefixBytes+c.cfg.ChunkBytes+2+wire.ChecksumBytes)
		c.pool <- &b
	}
}

// sourceDir returns the absolute path of the source dir, once it is known
// to be a directory.
func sourceDir(name string) (string, error) {
	dir, err := filepath.Abs(name)
	if err != nil {
		return "", fmt.Errorf("source dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("source dir: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("source dir %s: not a directory", dir)
	}
	return dir, nil
}

// openDB opens the offsets DB at path with the identity key it holds, and
// returns its inode, which is never streamed.
func openDB(path string) (*offsets.DB, ed25519.PrivateKey, devIno, error) {
	db, err := offsets.Open(path)
	if err != nil {
		return nil, nil, devIno{}, err
	}
	key, err := loadKey(db)
	if err != nil {
		db.Close()
		return nil, nil, devIno{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		db.Close()
		return nil, nil, devIno{}, fmt.Errorf("offsets db: %w", err)
	}
	return db, key, statIno(fi), nil
}

// loadKey returns the collector's identity key, made on first start and
// kept in the offsets DB.
func loadKey(db *offsets.DB) (ed25519.PrivateKey, error) {
	seed, err := db.IdentitySeed(identity.NewSeed)
	if err != nil {
		return nil, err
	}
	return identity.FromSeed(seed)
}

// Run streams until ctx is done, then waits briefly for outstanding
// acknowledgements, saves offsets and returns nil.
func (c *Collector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	watchErr := make(chan error, 1)
	wg.Go(func() { watchErr <- c.watch.Run(ctx) })
	for i := range c.cfg.Targets {
		wg.Go(func() { c.dialLoop(ctx, i) })
	}
	err := c.loop(ctx)
	cancel()
	for _, l := range c.links {
		if l != nil {
			c.dropLink(l)
		}
	}
	close(c.stopped)
	wg.Wait()
	if werr := <-watchErr; err == nil {
		err = werr
	}
	return err
}

// Close releases the offsets DB and the watcher. Call it after Run returned.
func (c *Collector) Close() error {
	for _, s := range c.byID {
		c.closeFile(s)
	}
	return errors.Join(c.watch.Close(), c.db.Close())
}
