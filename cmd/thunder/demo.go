package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

const demoHelp = `Usage: thunder demo [--seconds=N] [--rate=LINES_PER_SECOND] [--processors=N] [--signal=kill|term] [--keep]

Shows what thunder promises, with the real daemons: it runs a processor and
a collector as child processes of this binary, in a temporary work dir, on
127.0.0.1, and six writers of the three write contracts (open/write/close
per line; flock held over many lines; held open without a lock and
reopened every second, as Python's WatchedFileHandler does). The collector rotates files past 1 MiB,
so rotations run all along. Meanwhile the demo kills the processor with
kill -9 twice and the collector twice, restarting each. At the end it
checks every line (none lost, none duplicated, none corrupted, each file's
lines in order) and runs thunder verify's check against the processor.
The exit status is 0 only if all of that holds.

With --processors=3 the collector shards its files over three processors
(the file names are picked so that each processor is the first choice of
some). Two of them are killed in turn: their files continue on the next
processor in their ranking and come back once it is restarted. Each
processor alone holds every line at most once, in order; lines on two
processors after a kill -9 are counted against the documented bound (one
--window-bytes per collector and failover). --signal=term stops the
daemons with SIGTERM instead: then no line may be on two processors.

The work dir is removed at the end unless --keep is given or something
failed; its daemons.log holds every daemon's log.
`

// The demo's settings of its daemons.
const (
	demoRotateSize  = 1 << 20   // the collector's --rotate-size: rotations all along
	demoWindowBytes = 1 << 20   // its --window-bytes: the bound on lines on two processors
	demoChunkBytes  = 256 << 10 // its --chunk-bytes: a window holds several
	demoStops       = 2         // kill -9s of each daemon
)

// demoOptions are the demo's flags.
type demoOptions struct {
	seconds, rate, processors int
	keep                      bool
	sig                       syscall.Signal
}

func runDemo(ctx context.Context, args []string, stdout, _ io.Writer) error {
	opt, err := parseDemo(args, stdout)
	if err != nil || opt == nil {
		return err // nil after --help
	}
	if err := refusal(runtime.GOOS, "demo"); err != nil {
		return err
	}
	d, err := newDemo(opt, stdout)
	if err != nil {
		return err
	}
	err = d.run(ctx)
	if errors.Is(err, context.Canceled) {
		err = errors.New("demo: interrupted")
	}
	return d.close(err)
}

// parseDemo parses the demo's flags; nil options after --help.
func parseDemo(args []string, stdout io.Writer) (*demoOptions, error) {
	fs := newFlagSet("demo", demoHelp, stdout)
	opt := &demoOptions{}
	fs.IntVar(&opt.seconds, "seconds", 12, "how long the writers write, at least (it runs longer while a daemon comes back)")
	fs.IntVar(&opt.rate, "rate", 5000, "lines per second of each writer")
	fs.IntVar(&opt.processors, "processors", 1, "processors to shard the files over (1 to 5)")
	fs.BoolVar(&opt.keep, "keep", false, "keep the work dir (it is kept anyway when something fails)")
	sig := fs.String("signal", "kill", "how the daemons are stopped in the middle: kill (SIGKILL, as kill -9: the crash path) or term (SIGTERM: a planned restart)")
	if err := parse(fs, args); err != nil {
		return nil, ignoreHelp(err)
	}
	var errs []error
	if opt.seconds < 1 {
		errs = append(errs, fmt.Errorf("demo: --seconds=%d: must be at least 1", opt.seconds))
	}
	if opt.rate < 1 {
		errs = append(errs, fmt.Errorf("demo: --rate=%d: must be at least 1", opt.rate))
	}
	if opt.processors < 1 || opt.processors > demoFiles {
		errs = append(errs, fmt.Errorf("demo: --processors=%d: must be between 1 and %d (each processor gets one of the %d files at least)", opt.processors, demoFiles, demoFiles))
	}
	switch *sig {
	case "kill":
		opt.sig = syscall.SIGKILL
	case "term":
		opt.sig = syscall.SIGTERM
	default:
		errs = append(errs, fmt.Errorf("demo: --signal=%q: want kill or term", *sig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	return opt, nil
}

// demo is one run of `thunder demo`: its work dir, daemons and progress.
// Its methods are called from one goroutine.
type demo struct {
	demoOptions
	out      io.Writer
	root     string
	src      string
	dsts     []string // a target dir per processor
	bin      string
	logFile  *os.File
	log      *demoLog
	names    []string // the writers' files, by demoWriter.file
	procs    []*demoDaemon
	addrs    []string // the processors', kept across restarts
	col      *demoDaemon
	down     map[*demoDaemon]bool // stopped on purpose, not back yet
	stopped  map[string]int       // stops so far, of "processor" and "collector"
	start    time.Time            // when the writers started
	tick     *time.Ticker         // the progress lines
	progress demoProgress
}

// newDemo creates the work dir: the source dir, a target dir per
// processor and daemons.log.
func newDemo(opt *demoOptions, out io.Writer) (*demo, error) {
	bin, err := demoExecutable()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "thunder-demo-")
	if err != nil {
		return nil, err
	}
	d := &demo{demoOptions: *opt, out: out, root: root, bin: bin, src: filepath.Join(root, "source"), down: map[*demoDaemon]bool{}, stopped: map[string]int{}}
	for i := range opt.processors {
		name := "target"
		if opt.processors > 1 {
			name = fmt.Sprintf("target-%d", i)
		}
		d.dsts = append(d.dsts, filepath.Join(root, name))
	}
	for _, dir := range append([]string{d.src}, d.dsts...) {
		if err = os.MkdirAll(dir, 0o755); err != nil {
			break
		}
	}
	if err == nil {
		d.logFile, err = os.Create(filepath.Join(root, "daemons.log"))
	}
	if err != nil {
		_ = os.RemoveAll(root) // nothing in it yet
		return nil, err
	}
	d.log = &demoLog{w: d.logFile}
	fmt.Fprintf(out, "thunder demo: work dir %s (daemon logs: daemons.log)\n", root)
	return d, nil
}

// run starts the daemons and the writers, stops and restarts the daemons
// as planned, stops the writers and checks delivery.
func (d *demo) run(ctx context.Context) error {
	if err := d.startDaemons(ctx); err != nil {
		return err
	}
	d.intro()
	w := d.startWriters(ctx)
	defer w.stop()
	d.tick = time.NewTicker(time.Second)
	defer d.tick.Stop()
	if err := d.stops(ctx); err != nil {
		return err
	}
	// The writers write for --seconds, and on for a second after the last
	// daemon came back, so that its recovery is shown under load.
	end := d.start.Add(time.Duration(d.seconds) * time.Second)
	if err := d.sleepUntil(ctx, later(end, time.Now().Add(time.Second))); err != nil {
		return err
	}
	w.stop()
	<-w.done
	expect, total, err := w.expect()
	if err != nil {
		return err
	}
	return d.finish(ctx, expect, total)
}

// close stops what still runs and removes the work dir, unless the demo
// failed or --keep was given; err is the demo's result.
func (d *demo) close(err error) error {
	for _, dm := range d.all() {
		dm.kill()
	}
	if cerr := d.logFile.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		fmt.Fprintf(d.out, "kept the work dir for a look: %s (daemon logs: %s)\n", d.root, filepath.Join(d.root, "daemons.log"))
	case d.keep:
		fmt.Fprintf(d.out, "kept the work dir %s\n", d.root)
	default:
		if rerr := os.RemoveAll(d.root); rerr != nil {
			return rerr
		}
		fmt.Fprintf(d.out, "removed the work dir (--keep keeps it)\n")
	}
	return err
}

// all returns every daemon started.
func (d *demo) all() []*demoDaemon {
	all := append([]*demoDaemon(nil), d.procs...)
	if d.col != nil {
		all = append(all, d.col)
	}
	return all
}

// startDaemons starts the processors, each on a loopback port it keeps
// across restarts, picks the file names and starts the collector.
func (d *demo) startDaemons(ctx context.Context) error {
	for i, dst := range d.dsts {
		p := &demoDaemon{name: fmt.Sprintf("processor-%d", i), bin: d.bin, log: d.log, processor: true,
			args: []string{"logs-processor", "--target-dir=" + dst, "--listen-address=127.0.0.1:0",
				"--admin-address=127.0.0.1:0", fmt.Sprintf("--name=demo-processor-%d", i)}}
		d.procs = append(d.procs, p)
		if err := p.start(ctx); err != nil {
			return err
		}
		addr, _ := p.addrs()
		p.args[2] = "--listen-address=" + addr
		d.addrs = append(d.addrs, addr)
	}
	names, err := demoNamesFor(d.addrs)
	if err != nil {
		return err
	}
	d.names = names
	d.col = &demoDaemon{name: "collector", bin: d.bin, log: d.log, args: []string{"logs-collector",
		"--source-dir=" + d.src, "--offsets-db=" + filepath.Join(d.root, "offsets.db"),
		"--target-address=" + strings.Join(d.addrs, ","), "--name=demo-host",
		"--rotate-size=" + formatSize(demoRotateSize), "--window-bytes=" + formatSize(demoWindowBytes),
		"--chunk-bytes=" + formatSize(demoChunkBytes), "--max-line-bytes=" + formatSize(demoChunkBytes), "--admin-address=127.0.0.1:0"}}
	return d.col.start(ctx)
}

// intro prints what runs and what the demo will do.
func (d *demo) intro() {
	for i, p := range d.procs {
		fmt.Fprintf(d.out, "%-11s  %-15s  pid %-7d  target dir %s\n", p.name, d.addrs[i], p.pid(), filepath.Base(d.dsts[i]))
	}
	fmt.Fprintf(d.out, "%-11s  %-15s  pid %-7d  rotates files past %s; window %s\n", d.col.name, "demo-host", d.col.pid(),
		fmtBytes(demoRotateSize), fmtBytes(demoWindowBytes))
	each := uint64(d.rate) * demoLineBytes
	fmt.Fprintf(d.out, "%d writers, %d lines/s each (%d-byte lines: %s each, %s in all), for %d s:\n",
		len(demoWriters), d.rate, demoLineBytes, fmtRate(float64(each)), fmtRate(float64(each)*float64(len(demoWriters))), d.seconds)
	for _, w := range demoWriters {
		name := d.names[w.file]
		where := ""
		if len(d.procs) > 1 {
			where = "→ " + d.procs[d.firstChoice(name)].name
		}
		fmt.Fprintf(d.out, "  %-8s  %-16s  %-14s  %s\n", w.id, name, where, contractText(w.contract))
	}
	var plan []string
	for _, s := range d.plan() {
		plan = append(plan, fmt.Sprintf("%s at %.1f s", d.all()[s.daemon].name, s.at.Seconds()))
	}
	fmt.Fprintf(d.out, "plan: %s %s, each restarted at once%s\n", d.sigText(), strings.Join(plan, ", "), d.planNote())
}

func (d *demo) planNote() string {
	if len(d.procs) > 1 {
		return " (a processor once its files are seen on another one)"
	}
	return ""
}

// sigText names how the demo stops a daemon.
func (d *demo) sigText() string {
	if d.sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "kill -9"
}

// stamp is the time since the writers started, leading an output line.
func (d *demo) stamp() string {
	return fmt.Sprintf("[%5.1fs]", time.Since(d.start).Seconds())
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
