package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"thunder/internal/collector"
	"thunder/internal/processor"
)

const topHelp = `Usage: thunder top [--admin-address=HOST:PORT] [--interval=1s]

Shows a live view of a running processor or collector, read from its admin
endpoint: throughput (bytes and lines per second) and lag, per collector for
a processor and per stream for a collector, the most lagging first.

On a terminal it redraws the screen every --interval; press q (or Ctrl-C)
to quit. Otherwise it prints one block per interval until interrupted or
--count blocks are printed.

Examples:
  thunder top
  thunder top --admin-address=127.0.0.1:7359 --interval=5s
  thunder top --count=3 > top.txt
`

func runTop(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("top", topHelp, stdout)
	addr := adminAddressFlag(fs)
	interval := fs.Duration("interval", time.Second, "refresh period")
	count := fs.Int("count", 0, "stop after this many refreshes (0: until q or Ctrl-C)")
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	var errs []error
	if *interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--interval=%v: too short (at least 10ms)", *interval))
	}
	if err := usageErrors("top", append(errs, notNegative("count", *count))); err != nil {
		return err
	}
	v := &topView{client: newAdminClient(*addr, min(max(*interval, time.Second), 5*time.Second))}
	if f, ok := stdout.(*os.File); ok && isTerminal(int(f.Fd())) {
		return v.runTerminal(ctx, f, *interval, *count)
	}
	return v.runPlain(ctx, stdout, *interval, *count)
}

// runPlain prints one block per interval to w: the output for a pipe or a
// file, and on Windows for a console too (top_windows.go).
func (v *topView) runPlain(ctx context.Context, w io.Writer, interval time.Duration, count int) error {
	return v.run(ctx, interval, count, nil, func(s sample) error {
		var b bytes.Buffer
		v.render(&b, s, 0)
		b.WriteByte('\n')
		_, err := w.Write(b.Bytes())
		return err
	})
}

// sample is one look at the daemon.
type sample struct {
	snap   snapshot
	health error
	err    error // the daemon could not be read
}

// topView samples a daemon and renders rates from successive samples.
type topView struct {
	client *adminClient
	prev   *snapshot // the last good sample

	// A collector refreshes its per-stream figures once a second (the
	// Updated time of its status), whatever the refresh of top: stream
	// rates are computed between two such refreshes and kept until the
	// next one.
	streamsAt   time.Time
	streamsPrev map[string]collector.StreamStatus // by stream ID, as of streamsAt
	streamRates map[string][2]string              // by stream ID: written/s, acked/s
}

// updateStreamRates recomputes the per-stream rates when c holds fresh
// per-stream figures.
func (v *topView) updateStreamRates(c *collector.Status) {
	if !c.Updated.After(v.streamsAt) {
		return
	}
	dt := c.Updated.Sub(v.streamsAt).Seconds()
	rates := make(map[string][2]string, len(c.Top))
	cur := make(map[string]collector.StreamStatus, len(c.Top))
	for _, st := range c.Top {
		cur[st.ID] = st
		p, ok := v.streamsPrev[st.ID]
		if !ok || v.streamsAt.IsZero() {
			continue
		}
		r := func(cur, prev int64) string {
			if cur < prev {
				return "-"
			}
			return fmtRate(float64(cur-prev) / dt)
		}
		rates[st.ID] = [2]string{r(st.Size, p.Size), r(int64(st.Acked), int64(p.Acked))}
	}
	v.streamsAt, v.streamsPrev, v.streamRates = c.Updated, cur, rates
}

// run samples every interval and calls show, until ctx is done, quit is
// closed, or count samples were shown. The first sample must succeed: a
// daemon that cannot be reached at all is an error, one that goes away
// later is shown as such.
func (v *topView) run(ctx context.Context, interval time.Duration, count int, quit <-chan struct{}, show func(sample) error) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for n := 1; ; n++ {
		s := v.sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if s.err != nil && n == 1 {
			return s.err
		}
		if err := show(s); err != nil {
			return err
		}
		if s.err == nil {
			v.prev = &s.snap
		}
		if count > 0 && n >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-quit:
			return nil
		case <-ticker.C:
		}
	}
}

func (v *topView) sample(ctx context.Context) sample {
	raw, err := v.client.get(ctx, "/status")
	if err != nil {
		return sample{err: err}
	}
	snap, err := decodeStatus(raw)
	if err != nil {
		return sample{err: fmt.Errorf("%s: %w", v.client.addr, err)}
	}
	return sample{snap: snap, health: v.client.healthz(ctx)}
}

// render writes one screen for s, of at most rows lines (0: no limit).
func (v *topView) render(b *bytes.Buffer, s sample, rows int) {
	now := time.Now()
	if s.err != nil {
		fmt.Fprintf(b, "thunder top  %s  %s\n\n%v\n(retrying every refresh)\n", v.client.addr, now.Format(time.TimeOnly), s.err)
		return
	}
	state := "healthy"
	if s.health != nil {
		state = "UNHEALTHY"
	}
	where := v.client.addr + "  " + now.Format(time.TimeOnly)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	if s.snap.p != nil {
		v.renderProcessor(b, tw, s.snap, where, state)
	} else {
		v.renderCollector(b, tw, s.snap, where, state)
	}
	if s.health != nil {
		fmt.Fprintf(b, "unhealthy: %v\n", s.health)
	}
	b.WriteByte('\n')
	_ = tw.Flush() // to a bytes.Buffer: cannot fail
	lines := strings.SplitAfter(trimLines(table.String()), "\n")
	if header := strings.Count(b.String(), "\n"); rows > 0 && header+len(lines) > rows {
		lines = lines[:max(1, rows-header)]
	}
	for _, l := range lines {
		b.WriteString(l)
	}
}

// rates formats the growth of counters per second between two samples dt
// seconds apart; with no earlier sample (dt 0) or a counter that went
// back, a rate is "-".
type rates struct{ dt float64 }

func (r rates) bytes(cur, prev uint64) string {
	if r.dt <= 0 || cur < prev {
		return "-"
	}
	return fmtRate(float64(cur-prev) / r.dt)
}

func (r rates) lines(cur, prev uint64) string {
	if r.dt <= 0 || cur < prev {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", float64(cur-prev)/r.dt)
}

// renderProcessor writes a processor's header lines to b and its
// collectors, busiest first, to tw.
func (v *topView) renderProcessor(b *bytes.Buffer, tw io.Writer, snap snapshot, where, state string) {
	p, prevP, r := snap.p, snap.p, rates{}
	if v.prev != nil && v.prev.p != nil {
		prevP, r.dt = v.prev.p, snap.at.Sub(v.prev.at).Seconds()
	}
	fmt.Fprintf(b, "thunder top  processor %q  %s  %s\n", p.Name, where, state)
	fmt.Fprintf(b, "written %s, %s   total %s, %d lines   %d collectors   last commit %s ago\n",
		r.bytes(p.Totals.Bytes, prevP.Totals.Bytes), r.lines(p.Totals.Lines, prevP.Totals.Lines),
		fmtBytes(p.Totals.Bytes), p.Totals.Lines, len(p.Collectors), age(snap.at, p.LastCommit))
	rows := collectorRows(p, prevP, r, snap.at)
	fmt.Fprintln(tw, "COLLECTOR\tPEER\tSINCE\tSTREAMS\tBYTES/S\tLINES/S\tBYTES\tLINES")
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n", row.name, row.peer, row.since, row.streams, row.bytesRate, row.linesRate, fmtBytes(row.bytes), row.lines)
	}
}

// collectorRow is one line of a processor's collector table.
type collectorRow struct {
	name, peer, since    string
	streams              int
	bps                  float64
	bytesRate, linesRate string
	bytes, lines         uint64
}

// collectorRows returns a processor's collectors with their rates since
// prev, busiest first: a processor does not know its collectors' lag.
func collectorRows(p, prev *processor.Status, r rates, at time.Time) []collectorRow {
	rows := make([]collectorRow, 0, len(p.Collectors))
	for _, c := range p.Collectors {
		var pb, pl uint64
		seen := false
		for _, pc := range prev.Collectors {
			if pc.Name == c.Name && pc.Peer == c.Peer && pc.Since.Equal(c.Since) {
				pb, pl, seen = pc.Bytes, pc.Lines, true
			}
		}
		row := collectorRow{name: c.Name, peer: c.Peer, since: age(at, c.Since), streams: c.Streams, bytes: c.Bytes, lines: c.Lines, bytesRate: "-", linesRate: "-"}
		if seen {
			row.bytesRate, row.linesRate = r.bytes(c.Bytes, pb), r.lines(c.Lines, pl)
			if r.dt > 0 && c.Bytes >= pb {
				row.bps = float64(c.Bytes-pb) / r.dt
			}
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b collectorRow) int {
		return cmp.Or(cmp.Compare(b.bps, a.bps), strings.Compare(a.name, b.name))
	})
	return rows
}

// renderCollector writes a collector's header lines to b and its streams,
// the most lagging first, to tw.
func (v *topView) renderCollector(b *bytes.Buffer, tw io.Writer, snap snapshot, where, state string) {
	c, prevC, r := snap.c, snap.c, rates{}
	if v.prev != nil && v.prev.c != nil {
		prevC, r.dt = v.prev.c, snap.at.Sub(v.prev.at).Seconds()
	}
	link := "not connected"
	if c.Connected {
		link = "connected to " + c.Addr
	}
	fmt.Fprintf(b, "thunder top  collector %q  %s  %s  %s\n", c.Name, where, link, state)
	fmt.Fprintf(b, "sent %s, %s   acked %s   lag %s   files %s   rotations %d\n",
		r.bytes(c.SentBytes, prevC.SentBytes), r.lines(c.SentLines, prevC.SentLines), r.bytes(c.AckedBytes, prevC.AckedBytes),
		fmtBytes(uint64(max(0, c.LagBytes))), fileCount(c), c.Rotations)
	v.updateStreamRates(c)
	top := slices.Clone(c.Top)
	slices.SortStableFunc(top, func(a, b collector.StreamStatus) int {
		return cmp.Or(cmp.Compare(b.Lag, a.Lag), strings.Compare(a.Path, b.Path))
	})
	fmt.Fprintln(tw, "NAME\tPATH\tSIZE\tLAG\tWRITTEN/S\tACKED/S\t")
	for _, st := range top {
		written, acked := "-", "-"
		if r, ok := v.streamRates[st.ID]; ok {
			written, acked = r[0], r[1]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.Path, fmtBytes(uint64(st.Size)), fmtBytes(uint64(st.Lag)), written, acked, streamFlags(st))
	}
}

// fmtRate formats bytes per second.
func fmtRate(bps float64) string {
	if bps < 0 {
		return "-"
	}
	return fmtBytes(uint64(bps+0.5)) + "/s"
}
