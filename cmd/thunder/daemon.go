package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"thunder/internal/admin"
)

// daemonCommand is what the two daemon subcommands share: a flag set with
// the logging, config file, admin endpoint, TLS and token flags, and the
// life of a daemon once it is built (admin endpoint, run, close).
type daemonCommand struct {
	fs        *flag.FlagSet
	log       logFlags
	daemon    daemonFlags
	tls       tlsFlags
	tokenFile string
	// verify is served on the admin endpoint's /verify (processor only).
	verify func(ctx context.Context, rate int64, emit func(any) error) error
}

// newDaemonCommand returns the flag set of a daemon with the shared flags
// registered; tokenHelp describes --auth-token-file from its side.
func newDaemonCommand(name, help, tokenHelp string, collector bool, stdout io.Writer) *daemonCommand {
	d := &daemonCommand{fs: newFlagSet(name, help, stdout)}
	d.log.register(d.fs)
	d.daemon.register(d.fs)
	d.tls.register(d.fs, collector)
	d.fs.StringVar(&d.tokenFile, "auth-token-file", "", tokenHelp)
	return d
}

// parse parses args and applies the --config file. --help yields errHelp;
// every other problem is kept for checked, which reports them with those
// of the settings (a missing required flag among them), all at once.
func (d *daemonCommand) parse(args []string) error {
	err := parse(d.fs, args)
	if err == errHelp {
		return err
	}
	d.daemon.problem(err, d.daemon.load(d.fs))
	return nil
}

// logger returns the logger of the log flags, writing to w (a text one
// when they are wrong), and the token of --auth-token-file ("" without
// it). What is wrong with either is kept for checked.
func (d *daemonCommand) logger(w io.Writer) (*slog.Logger, string) {
	log, err := d.log.logger(w)
	if err != nil {
		d.daemon.problem(err)
		log = slog.New(slog.NewTextHandler(w, nil))
	}
	token, err := readToken(d.tokenFile)
	d.daemon.problem(err)
	return log, token
}

// built is a daemon once New returned it.
type built interface {
	Healthy() error
	Close() error
}

// serve opens the admin endpoint, if any, for the daemon dm, calls start
// (which logs that the daemon started and returns what serves it), runs
// that until ctx is done or it fails, and closes dm; "stopped" is logged
// after a clean stop. When the admin endpoint cannot start, dm and held
// (a listener not served yet) are closed and start is not called.
func (d *daemonCommand) serve(ctx context.Context, log *slog.Logger, reg *prometheus.Registry, dm built, status func() any,
	start func() func(context.Context) error, held ...io.Closer) error {
	adm, err := d.daemon.listenAdmin(log, reg, status, dm.Healthy, d.verify)
	if err != nil {
		for _, c := range held {
			_ = c.Close() // never served: nothing to report
		}
		_ = dm.Close() // the admin error says what went wrong
		return err
	}
	err = adm.serve(ctx, start())
	if cerr := dm.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// logFlags are the logging flags every daemon has.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageError{fmt.Errorf("invalid --log-level %q", l.level)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("invalid --log-format %q (text or json)", l.format)}
}

// readToken reads a shared token from a file; "" when path is empty.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--auth-token-file=%s: %w", path, errors.Unwrap(err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--auth-token-file=%s: the file is empty", path)
	}
	return tok, nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// adminServer is an admin endpoint with its listener.
type adminServer struct {
	srv *admin.Server
	ln  net.Listener
}

// listenAdmin opens the admin endpoint when --admin-address is set and
// returns nil, nil otherwise.
func (d *daemonFlags) listenAdmin(log *slog.Logger, reg *prometheus.Registry, status func() any, healthy func() error,
	verify func(context.Context, int64, func(any) error) error) (*adminServer, error) {
	if d.adminAddr == "" {
		if d.pprof {
			return nil, usageError{errors.New("--pprof needs --admin-address")}
		}
		return nil, nil
	}
	srv, err := admin.New(admin.Config{
		Addr: d.adminAddr, Registry: reg, Status: status, Healthy: healthy, Verify: verify, Pprof: d.pprof, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", d.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", d.adminAddr, err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		log.Warn("admin endpoint on a non-loopback address: anyone who can reach it can read status and metrics; bind it to 127.0.0.1", "addr", ln.Addr().String())
	}
	return &adminServer{srv: srv, ln: ln}, nil
}

// serve runs the daemon (run) and the admin endpoint, if any, until ctx is
// done or one fails; the failure of either stops both.
func (a *adminServer) serve(ctx context.Context, run func(ctx context.Context) error) error {
	if a == nil {
		return run(ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	actx, stopAdmin := context.WithCancel(gctx)
	defer stopAdmin()
	g.Go(func() error {
		defer stopAdmin() // the daemon is done: so is its endpoint
		return run(gctx)
	})
	g.Go(func() error { return a.srv.Serve(actx, a.ln) })
	return g.Wait()
}
