package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
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

// parse parses args, applies the --config file (printing the effective
// settings under --check-config) and checks that the flags named in
// required are set. --help yields errHelp.
func (d *daemonCommand) parse(args []string, stdout io.Writer, required ...string) error {
	if err := parse(d.fs, args); err != nil {
		return err
	}
	if err := d.daemon.load(d.fs, stdout); err != nil {
		return err
	}
	return requireFlags(d.fs, required...)
}

// logger returns the logger of the log flags, writing to w, and the token
// of --auth-token-file ("" without it).
func (d *daemonCommand) logger(w io.Writer) (*slog.Logger, string, error) {
	log, err := d.log.logger(w)
	if err != nil {
		return nil, "", err
	}
	token, err := readToken(d.tokenFile)
	return log, token, err
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
	adm, err := d.daemon.listenAdmin(log, reg, status, dm.Healthy)
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
