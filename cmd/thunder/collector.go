package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/collector"
)

const collectorHelp = `Usage: thunder logs-collector --source-dir=DIR --offsets-db=FILE --target-address=HOST:PORT [flags]

Streams every complete line of every file under --source-dir (subdirectories
included, files created later too) to a processor, in real time, and
remembers in --offsets-db how far each file was acknowledged. It never exits
on network errors: it reconnects with backoff. SIGTERM or SIGINT stops it.

With several processors (--target-address=a,b,c) each file name goes to the
first reachable one in its rendezvous-hash ranking: adding a processor moves
few files, and while one is unreachable its files continue on the next.

Writers append with one of three contracts:
  1. open(O_APPEND), write, close for every write, or
  2. open(O_APPEND), flock(LOCK_SH), many writes, close, or
  3. open(O_APPEND), many writes without a lock, reopened from time to time.
A writer of the third kind that never reopens its file
(Python's logging.FileHandler) keeps writing into the file rotated at
--rotate-size, which is streamed and kept until that program closes it:
thunder status lists it with the program's pid, a WARN names it once, and
thunder_collector_rotated_held_files counts it. Make that program reopen its
log (its SIGHUP or SIGUSR1), or rotate it a way it supports and set
--rotate-size=0.

Examples:
  # the original command line: a processor on the default port 7357 (the
  # original processor command line listens on 1065: use HOST:1065 for it)
  thunder logs-collector --offsets-db='/tmp/thunder-offsets.db' --target-address='logs.example.com:7357' --source-dir='/var/logs/thunder/source/'
  thunder logs-collector --source-dir=/var/log/app --offsets-db=/var/lib/thunder/offsets.db --target-address=logs --name=web-1
`

func runCollector(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := collector.DefaultConfig()
	cmd, cf := collectorCommand(&cfg, stdout)
	if err := cmd.parse(args); err != nil {
		return ignoreHelp(err)
	}
	if err := refusal(runtime.GOOS, "logs-collector"); err != nil {
		return err
	}
	log, token := cmd.logger(stderr)
	cmd.daemon.problem(cf.apply(&cfg, &cmd.tls))
	cfg.Token, cfg.Logger = token, log
	// A GOMAXPROCS set by the operator is theirs to keep (procs.go).
	cfg.AdaptProcs = os.Getenv("GOMAXPROCS") == ""
	var dirErrs []error // a missing flag is reported as such
	if cfg.SourceDir != "" {
		dirErrs = append(dirErrs, readableDir("source-dir", cfg.SourceDir))
	}
	if cfg.OffsetsDB != "" {
		dirErrs = append(dirErrs, offsetsDir(cfg.OffsetsDB))
	}
	if done, err := cmd.daemon.checked(cmd.fs, stdout, append(dirErrs, cfg.Validate(), checkAddresses("target-address", cfg.Targets))...); done {
		return err
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := collector.New(cfg)
	if err != nil {
		return err
	}
	return cmd.serve(ctx, log, reg, c, func() any { return c.Status() }, func() func(context.Context) error {
		log.Info("collector started", "source_dir", cfg.SourceDir, "targets", cfg.Targets, "name", cfg.Name)
		return c.Run
	})
}

// offsetsDir reports an error unless the directory of --offsets-db exists.
func offsetsDir(db string) error {
	if err := isDir("offsets-db", filepath.Dir(db)); err != nil {
		return fmt.Errorf("--offsets-db=%s: its directory: %w", db, errors.Unwrap(err))
	}
	return nil
}

// collectorFlags hold the collector's flags that need converting before
// they are a collector.Config field.
type collectorFlags struct {
	targets, exclude       string
	maxLine, chunk, rotate int64
	checksums              bool
}

// collectorCommand registers the flags of logs-collector, with the
// defaults of cfg, and sets cfg from them as they are parsed.
func collectorCommand(cfg *collector.Config, stdout io.Writer) (*daemonCommand, *collectorFlags) {
	cmd := newDaemonCommand("logs-collector", collectorHelp, "file holding the shared token the processor expects", true, stdout)
	fs := cmd.fs
	cf := &collectorFlags{maxLine: int64(cfg.MaxLineBytes), chunk: int64(cfg.ChunkBytes), rotate: cfg.RotateSize, checksums: !cfg.NoFrameChecksums}
	fs.StringVar(&cfg.SourceDir, "source-dir", cfg.SourceDir, "directory whose files are streamed (required)")
	fs.StringVar(&cfg.OffsetsDB, "offsets-db", cfg.OffsetsDB, "file keeping how far each file was acknowledged (required)")
	fs.StringVar(&cf.targets, "target-address", "", "processor address HOST:PORT (port "+DefaultPort+" if omitted), or several separated by commas to shard files over them with failover (required)")
	fs.StringVar(&cfg.Name, "name", hostname(), "name of this collector; must be unique per processor")
	fs.DurationVar(&cfg.RescanInterval, "rescan-interval", cfg.RescanInterval, "period of the safety-net directory scan")
	fs.Var(sizeFlag{&cf.maxLine}, "max-line-bytes", "lines longer than this are split into pieces of this size, each ending with a newline")
	fs.Var(sizeFlag{&cf.chunk}, "chunk-bytes", "most file data sent in one frame")
	fs.Var(sizeFlag{&cfg.WindowBytes}, "window-bytes", "most data in flight without acknowledgement")
	fs.DurationVar(&cfg.FlushIdle, "flush-idle", cfg.FlushIdle, "an unterminated last line of a deleted or rotated file is sent with a newline after this idle time")
	fs.StringVar(&cfg.Compression, "compress", cfg.Compression, "compress data with zstd when the processor accepts it: zstd or none (default none; worth it on slow links, not on loopback)")
	fs.IntVar(&cfg.MaxOpenFiles, "max-open-files", cfg.MaxOpenFiles, "most source files held open; past it, idle delivered files are closed and reopened when they change")
	fs.StringVar(&cf.exclude, "exclude", "", "comma-separated glob patterns of files not to stream, matched against the relative path and the base name (e.g. '*.gz,*.1')")
	fs.DurationVar(&cfg.Linger, "linger", cfg.Linger, "after a write event, take no inotify event for this long (an eighth of it while files grow under 2 MiB/s), so a file's many small writes are read at once; adds at most this much latency (0: off)")
	fs.Var(sizeFlag{&cf.rotate}, "rotate-size", "rotate source files larger than this (0: never)")
	fs.DurationVar(&cfg.RotateAge, "rotate-age", cfg.RotateAge, "also rotate a non-empty source file this long after it was first seen, for files that grow slowly (0: never)")
	fs.BoolVar(&cf.checksums, "frame-checksums", cf.checksums, "checksum every frame and check the processor's digests (PROTOCOL §13); false only to measure what they cost")
	return cmd, cf
}

// apply sets the fields of cfg that come from cf and from the TLS flags.
func (cf *collectorFlags) apply(cfg *collector.Config, tf *tlsFlags) error {
	for _, t := range splitList(cf.targets) {
		cfg.Targets = append(cfg.Targets, withDefaultPort(t))
	}
	cfg.Exclude = append(cfg.Exclude, splitList(cf.exclude)...)
	tlsCfg, err := tf.client()
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		cfg.Dial = tlsDialer(tlsCfg)
	}
	if cfg.Compression == "none" {
		cfg.Compression = ""
	}
	cfg.MaxLineBytes, cfg.ChunkBytes = int(cf.maxLine), int(cf.chunk)
	cfg.RotateSize = cf.rotate
	cfg.NoFrameChecksums = !cf.checksums
	return nil
}

// tlsDialer dials TLS, verifying the processor under the host name of the
// address unless the config names one.
func tlsDialer(cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c := cfg.Clone()
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c.ServerName = host
		}
		d := tls.Dialer{Config: c}
		return d.DialContext(ctx, network, addr)
	}
}
