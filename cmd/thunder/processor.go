package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/admin"
	"thunder/internal/identity"
	"thunder/internal/layout"
	"thunder/internal/processor"
)

const processorHelp = `Usage: thunder logs-processor --target-dir=DIR [--kafka-brokers=HOST:PORT,...] [--listen-address=HOST:PORT] [flags]

Accepts collectors and appends what they send to files in --target-dir, under
the names the files had on the source hosts, and/or to Kafka topics
(--kafka-brokers), one record per line. Every line is written exactly once
(to Kafka: for consumers with isolation.level=read_committed, unless
--kafka-transactions=false). Send SIGHUP or SIGUSR1 after moving files away
(logrotate) to make it reopen them (and reread --known-collectors); SIGTERM
or SIGINT stops it cleanly.

--target-layout lays the files out per host or per day: '{host}/{file}'
keeps each host's files apart, '{host}/{date}/{file}' starts a new file each
UTC day. Exactly once holds with any layout.

Examples:
  # the original command line (port 1065: its collectors need --target-address=HOST:1065)
  thunder logs-processor --target-dir=/var/logs/thunder/target/ --listen-address='0.0.0.0:1065'
  # on the default port 7357, the one collectors use without a port
  thunder logs-processor --target-dir=/var/log/thunder/target/ --listen-address=0.0.0.0:7357
  # each host apart, a file per day
  thunder logs-processor --target-dir=/var/log/thunder --target-layout='{host}/{date}/{file}'
  thunder logs-processor --target-dir=/srv/logs --auth-token-file=/etc/thunder/token
  thunder logs-processor --kafka-brokers=kafka-1:9092,kafka-2:9092 --kafka-topic='logs.{file}'
`

func runProcessor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := processor.DefaultConfig()
	cmd, pf := processorCommand(&cfg, stdout)
	if err := cmd.parse(args); err != nil {
		return ignoreHelp(err)
	}
	log, token := cmd.logger(stderr)
	cfg.Token = token
	tlsCfg, err := cmd.tls.server()
	cmd.daemon.problem(err)
	if cfg.BindNameToCert && (tlsCfg == nil || tlsCfg.ClientCAs == nil) {
		cmd.daemon.problem(errors.New("--tls-bind-name needs mutual TLS (--tls-cert, --tls-key, --tls-ca)"))
	}
	cfg.Kafka, err = pf.kafka.config()
	cmd.daemon.problem(err)
	cfg.Logger = log
	var dirErr error
	if cfg.TargetDir != "" {
		dirErr = isDir("target-dir", cfg.TargetDir)
	}
	addr := withDefaultPort(pf.listen)
	if done, err := cmd.daemon.checked(cmd.fs, stdout, cfg.Validate(), dirErr, checkAddress("listen-address", addr, true)); done {
		return err
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	p, err := processor.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.Close()
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	cmd.verify = verifyFunc(p)
	return cmd.serve(ctx, log, reg, p, func() any { return p.Status() }, func() func(context.Context) error {
		return startProcessor(log, p, cfg, ln, tlsCfg)
	}, ln)
}

// processorFlags hold the processor's flags that are not a
// processor.Config field.
type processorFlags struct {
	listen string
	kafka  kafkaFlags
}

// processorCommand registers the flags of logs-processor, with the
// defaults of cfg, and sets cfg from them as they are parsed.
func processorCommand(cfg *processor.Config, stdout io.Writer) (*daemonCommand, *processorFlags) {
	cmd := newDaemonCommand("logs-processor", processorHelp, "file holding a shared token collectors must present", false, stdout)
	fs := cmd.fs
	pf := &processorFlags{}
	fs.BoolVar(&cfg.BindNameToCert, "tls-bind-name", cfg.BindNameToCert, "with mutual TLS, a collector's --name must match its certificate's common name or a DNS name in it")
	fs.StringVar(&pf.listen, "listen-address", "127.0.0.1:"+DefaultPort, "address to accept collectors on, HOST:PORT (port "+DefaultPort+" if omitted)")
	fs.Var(modeFlag{&cfg.Identity}, "collector-identity", "how collectors prove their names: tofu (pin each name's key at first contact), known (only names in --known-collectors), off (names are merely claimed)")
	fs.StringVar(&cfg.KnownCollectors, "known-collectors", cfg.KnownCollectors, "file of collector keys, one line \"ed25519:<key> <name>\" each; SIGHUP reloads it (default: <target-dir>/.thunder/known_collectors)")
	fs.StringVar(&cfg.TargetDir, "target-dir", cfg.TargetDir, "directory to write received files into (required unless --kafka-brokers)")
	fs.Var(layoutFlag{&cfg.Layout}, "target-layout", "path of each file in --target-dir: {file} (the name on the source host; all hosts' files of one name append to one file), {host} (the collector's authenticated --name), {date} (YYYY-MM-DD, UTC, of receipt: a new file each day), e.g. {host}/{file} or {host}/{date}/{file}; a changed layout applies from the next byte after a restart")
	pf.kafka.register(fs)
	fs.StringVar(&cfg.Name, "name", hostname(), "name of this processor, sent to collectors")
	fs.DurationVar(&cfg.CommitInterval, "commit-interval", cfg.CommitInterval, "longest wait before received lines are fsynced and acknowledged")
	fs.Var(sizeFlag{&cfg.CommitBytes}, "commit-bytes", "commit early once this much data is pending")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "time a new connection has to complete its handshake")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close connections silent for this long")
	fs.DurationVar(&cfg.FrameTimeout, "frame-timeout", cfg.FrameTimeout, "a frame must arrive within this long from its first byte, plus 1 s per "+formatSize(processor.MinFrameRate))
	fs.IntVar(&cfg.MaxStreamsPerConn, "max-streams-per-conn", cfg.MaxStreamsPerConn, "most files one collector connection may stream")
	fs.BoolVar(&cfg.RequireChecksums, "require-checksums", cfg.RequireChecksums, "refuse collectors that do not checksum their frames (older than the crc32c feature); by default they are served with a warning")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most collector connections at once")
	fs.IntVar(&cfg.MaxHandshakes, "max-handshakes", cfg.MaxHandshakes, "most connections still in their handshake at once (slowloris guard)")
	fs.IntVar(&cfg.JournalMinFiles, "journal-min-files", 0, "experimental, 0 (off) by default: a commit that writes at least this many target files copies their new bytes into a journal in .thunder/ (one sequential write and fsync) instead of syncing each file; a checkpoint syncs the file system every 1 GiB or 30 s; Linux only (README \"Journal\")")
	fs.IntVar(&cfg.MaxOpenFiles, "max-open-files", cfg.MaxOpenFiles, "most target files held open: past it, those written least recently are closed, and appends to a closed file are kept in memory (128 MiB in all) until the next commit writes them, or wait for a descriptor where syncfs is not used (any number of target files; keep it plus --max-conns under ulimit -n)")
	fs.IntVar(&cfg.MaxConnsPerPeer, "max-conns-per-peer", cfg.MaxConnsPerPeer, "most connections from one peer: an IPv4 address or an IPv6 /64 (0: no limit)")
	fs.DurationVar(&cfg.ScrubInterval, "scrub-interval", cfg.ScrubInterval, "check the target dir against what was committed this often, as thunder verify does, logging each file that differs (0: off)")
	fs.Var(sizeFlag{&cfg.ScrubRate}, "scrub-rate", "bytes per second the scrub reads at most (0: no limit)")
	return cmd, pf
}

// startProcessor logs that p listens on ln and returns what serves it:
// TLS on ln when tlsCfg is set, and a reopen of the target files on every
// SIGHUP or SIGUSR1 for as long as it serves.
func startProcessor(log *slog.Logger, p *processor.Processor, cfg processor.Config, ln net.Listener, tlsCfg *tls.Config) func(context.Context) error {
	mutual := tlsCfg != nil && tlsCfg.ClientCAs != nil
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() && cfg.Token == "" && !mutual {
		log.Warn("listening on a non-loopback address without authentication: anyone who can reach it can write files into the target dir; set --auth-token-file or mutual TLS", "addr", ln.Addr().String())
	}
	// Signals are caught before "listening" is logged: whoever waits for
	// that line may send SIGHUP at once.
	reopen := make(chan os.Signal, 1)
	notifyReopen(reopen)
	log.Info("listening", "addr", ln.Addr().String(), "target_dir", cfg.TargetDir, "target_layout", cfg.Layout.String(), "kafka", cfg.Kafka != nil, "tls", tlsCfg != nil, "mutual_tls", mutual, "token", cfg.Token != "")
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return func(ctx context.Context) error {
		defer signal.Stop(reopen)
		var wg sync.WaitGroup
		done := make(chan struct{})
		defer wg.Wait()
		defer close(done)
		wg.Go(func() {
			for {
				select {
				case <-reopen:
					if err := p.Reopen(); err != nil {
						log.Error("reopen failed", "err", err)
					}
				case <-done:
					return
				}
			}
		})
		return p.Serve(ctx, ln)
	}
}

// verifyFunc is the admin endpoint's /verify of p.
func verifyFunc(p *processor.Processor) func(context.Context, int64, func(any) error) error {
	return func(ctx context.Context, rate int64, emit func(any) error) error {
		_, err := p.Verify(ctx, rate, func(l processor.VerifyLine) error { return emit(l) })
		switch {
		case errors.Is(err, processor.ErrVerifyBusy):
			return fmt.Errorf("%w: %w", admin.ErrBusy, err)
		case errors.Is(err, processor.ErrNoTargetDir):
			return fmt.Errorf("%w: %w", admin.ErrUnavailable, err)
		}
		return err
	}
}

// ignoreHelp turns the --help "error" into a clean exit.
func ignoreHelp(err error) error {
	if err == errHelp {
		return nil
	}
	return err
}

// modeFlag is --collector-identity.
type modeFlag struct{ m *identity.Mode }

func (f modeFlag) String() string {
	if f.m == nil {
		return ""
	}
	return string(*f.m)
}

func (f modeFlag) Set(v string) error {
	m, err := identity.ParseMode(v)
	if err != nil {
		return err
	}
	*f.m = m
	return nil
}

// layoutFlag is --target-layout.
type layoutFlag struct{ l *layout.Layout }

func (f layoutFlag) String() string {
	if f.l == nil {
		return "" // the flag package's zero value, so that --help shows the default
	}
	return f.l.String()
}

func (f layoutFlag) Set(v string) error {
	l, err := layout.Parse(v)
	if err != nil {
		return err
	}
	*f.l = l
	return nil
}
