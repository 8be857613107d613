package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"

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

Writers must append with one of the two contracts:
  1. open(O_APPEND), write, close for every write, or
  2. open(O_APPEND), flock(LOCK_SH), many writes, close.

Examples:
  thunder logs-collector --offsets-db='/tmp/thunder-offsets.db' --target-address='logs.example.com:7357' --source-dir='/var/logs/thunder/source/'
  thunder logs-collector --source-dir=/var/log/app --offsets-db=/var/lib/thunder/offsets.db --target-address=logs --name=web-1
`

func runCollector(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := collector.DefaultConfig()
	fs := newFlagSet("logs-collector", collectorHelp, stdout)
	var lf logFlags
	lf.register(fs)
	var df daemonFlags
	df.register(fs)
	var tf tlsFlags
	tf.register(fs, true)
	fs.StringVar(&cfg.SourceDir, "source-dir", "", "directory whose files are streamed (required)")
	fs.StringVar(&cfg.OffsetsDB, "offsets-db", "", "file keeping how far each file was acknowledged (required)")
	targets := fs.String("target-address", "", "processor address HOST:PORT (port "+DefaultPort+" if omitted), or several separated by commas to shard files over them with failover (required)")
	fs.StringVar(&cfg.Name, "name", hostname(), "name of this collector; must be unique per processor")
	tokenFile := fs.String("auth-token-file", "", "file holding the shared token the processor expects")
	fs.DurationVar(&cfg.RescanInterval, "rescan-interval", cfg.RescanInterval, "period of the safety-net directory scan")
	var maxLine, chunk int64 = int64(cfg.MaxLineBytes), int64(cfg.ChunkBytes)
	fs.Var(sizeFlag{&maxLine}, "max-line-bytes", "lines longer than this are split into pieces of this size, each ending with a newline")
	fs.Var(sizeFlag{&chunk}, "chunk-bytes", "most file data sent in one frame")
	fs.Var(sizeFlag{&cfg.WindowBytes}, "window-bytes", "most data in flight without acknowledgement")
	fs.DurationVar(&cfg.FlushIdle, "flush-idle", cfg.FlushIdle, "an unterminated last line of a deleted or rotated file is sent with a newline after this idle time")
	fs.StringVar(&cfg.Compression, "compress", "", "compress data with zstd when the processor accepts it: zstd or none (default none; worth it on slow links, not on loopback)")
	fs.IntVar(&cfg.MaxOpenFiles, "max-open-files", cfg.MaxOpenFiles, "most source files held open; past it, idle delivered files are closed and reopened when they change")
	exclude := fs.String("exclude", "", "comma-separated glob patterns of files not to stream, matched against the relative path and the base name (e.g. '*.gz,*.1')")
	fs.DurationVar(&cfg.Linger, "linger", cfg.Linger, "after a write event, take no inotify event for this long, so a file's many small writes are read at once; adds at most this much latency (0: off)")
	rotate := int64(10 << 20)
	fs.Var(sizeFlag{&rotate}, "rotate-size", "rotate source files larger than this (0: never)")
	fs.DurationVar(&cfg.RotateAge, "rotate-age", 0, "also rotate a non-empty source file this long after it was first seen, for files that grow slowly (0: never)")
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if err := df.load(fs, stdout); err != nil {
		return err
	}
	if err := required(fs, "source-dir", "offsets-db", "target-address"); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	if cfg.Token, err = readToken(*tokenFile); err != nil {
		return err
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, withDefaultPort(t))
		}
	}
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
	for _, p := range strings.Split(*exclude, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Exclude = append(cfg.Exclude, p)
		}
	}
	cfg.MaxLineBytes, cfg.ChunkBytes = int(maxLine), int(chunk)
	cfg.RotateSize = rotate
	cfg.Logger = log
	if done, err := df.checked(stdout, cfg.Validate(), isDir("source-dir", cfg.SourceDir), isDir("offsets-db", filepath.Dir(cfg.OffsetsDB))); done {
		return err
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := collector.New(cfg)
	if err != nil {
		return err
	}
	adm, err := df.listenAdmin(log, reg, func() any { return c.Status() }, c.Healthy)
	if err != nil {
		c.Close()
		return err
	}
	log.Info("collector started", "source_dir", cfg.SourceDir, "targets", cfg.Targets, "name", cfg.Name)
	err = adm.serve(ctx, c.Run)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
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
