package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"thunder/internal/collector"
	"thunder/internal/processor"
	"thunder/internal/wire"
)

const statusHelp = `Usage: thunder status [--admin-address=HOST:PORT] [--json]

Prints the status of a running processor or collector, read from its admin
endpoint (see --admin-address of both daemons), and exits non-zero when the
daemon cannot be reached or reports itself unhealthy, so that it serves as
a health check.

Examples:
  thunder status
  thunder status --admin-address=127.0.0.1:7359 --json | jq .lag_bytes
`

// maxStatusBytes bounds the /status and /healthz bodies read.
const maxStatusBytes = 16 << 20

func runStatus(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("status", statusHelp, stdout)
	addr := adminAddressFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON, as the daemon serves it")
	streams := fs.Int("streams", 10, "collector: list this many of the most lagging streams")
	timeout := fs.Duration("timeout", 5*time.Second, "give up on the daemon after this long")
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if err := usageErrors("status", []error{positive("timeout", *timeout), notNegative("streams", *streams)}); err != nil {
		return err
	}
	c := newAdminClient(*addr, *timeout)
	raw, err := c.get(ctx, "/status")
	if err != nil {
		return err
	}
	health := c.healthz(ctx)
	if *asJSON {
		if _, err := stdout.Write(raw); err != nil {
			return err
		}
	} else {
		snap, err := decodeStatus(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", c.addr, err)
		}
		var b bytes.Buffer
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		snap.print(w, health, *streams)
		_ = w.Flush() // to a bytes.Buffer: cannot fail
		if _, err := io.WriteString(stdout, trimLines(b.String())); err != nil {
			return err
		}
	}
	switch {
	case health != nil && *asJSON:
		return fmt.Errorf("%s: unhealthy: %w", c.addr, health)
	case health != nil:
		// The reason is in the status printed: once is enough.
		return fmt.Errorf("%s: unhealthy (the reason is printed above)", c.addr)
	}
	return nil
}

// adminClient reads a daemon's admin endpoint.
type adminClient struct {
	addr string
	http *http.Client
}

func newAdminClient(addr string, timeout time.Duration) *adminClient {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), DefaultAdminPort)
	}
	return &adminClient{addr: addr, http: &http.Client{Timeout: timeout}}
}

// get returns the body of a 200 answer to GET path.
func (c *adminClient) get(ctx context.Context, path string) ([]byte, error) {
	code, body, err := c.do(ctx, path)
	if err != nil {
		return nil, err
	}
	switch {
	case code == http.StatusNotFound:
		// Some other web server: its 404 page says nothing useful.
		return nil, fmt.Errorf("%s is not a thunder admin endpoint (GET %s: 404 Not Found); give --admin-address the address of the daemon's --admin-address", c.addr, path)
	case code != http.StatusOK:
		return nil, fmt.Errorf("GET http://%s%s: %s: %s", c.addr, path, http.StatusText(code), firstLine(body))
	}
	return body, nil
}

// firstLine is the first line of body, at most 1,000 bytes: enough for a
// daemon's own error with what to do about it (a refusal's fix comes
// last), not a page dump.
func firstLine(body []byte) []byte {
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	if len(line) > maxLine {
		line = append(line[:maxLine:maxLine], "..."...)
	}
	return line
}

const maxLine = 1000

// healthz returns nil when the daemon says it is healthy.
func (c *adminClient) healthz(ctx context.Context) error {
	code, body, err := c.do(ctx, "/healthz")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return errors.New(string(firstLine(body)))
	}
	return nil
}

func (c *adminClient) do(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if dataPort(ctx, c.addr) {
			return 0, nil, fmt.Errorf("%s is the data port of a thunder processor (its --listen-address), not an admin endpoint: start the daemon with --admin-address=127.0.0.1:%s and give thunder status that address", c.addr, DefaultAdminPort)
		}
		return 0, nil, fmt.Errorf("cannot reach the admin endpoint at %s (is the daemon running with --admin-address=%s?): %w", c.addr, c.addr, unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	if err != nil {
		return 0, nil, fmt.Errorf("read http://%s%s: %w", c.addr, path, err)
	}
	return resp.StatusCode, body, nil
}

// dataPort reports whether addr answers like a processor's data port: an
// HTTP request there gets a wire Error frame (PROTOCOL.md §2, §7), not
// an HTTP response.
func dataPort(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline) // a failed read below says no
	if _, err := io.WriteString(conn, "GET /status HTTP/1.0\r\n\r\n"); err != nil {
		return false
	}
	r := wire.NewReader(conn)
	defer r.Close()
	f, err := r.Next()
	return err == nil && f.Type == wire.TypeError
}

// unwrapURL drops the "Get "http://...": " prefix the address already says.
func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// snapshot is one /status answer: exactly one of p and c is set.
type snapshot struct {
	at time.Time
	p  *processor.Status
	c  *collector.Status
}

// decodeStatus tells a processor's status from a collector's by its
// shape: a collector's has "connected" and "streams", a processor's
// "collectors" and "target_dir".
func decodeStatus(raw []byte) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return s, fmt.Errorf("not a thunder admin endpoint: /status is not JSON (%w)", err)
	}
	has := func(k ...string) bool {
		for _, k := range k {
			if _, ok := keys[k]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("connected", "streams"):
		s.c = new(collector.Status)
		if err := json.Unmarshal(raw, s.c); err != nil {
			return s, fmt.Errorf("collector status: %w", err)
		}
	case has("target_dir"):
		s.p = new(processor.Status)
		if err := json.Unmarshal(raw, s.p); err != nil {
			return s, fmt.Errorf("processor status: %w", err)
		}
	default:
		return s, errors.New("not a thunder admin endpoint: /status is neither a processor's nor a collector's")
	}
	return s, nil
}

// print writes the status for a human to a tabwriter.
func (s snapshot) print(w io.Writer, health error, maxStreams int) {
	state := "healthy"
	if health != nil {
		state = "UNHEALTHY"
	}
	if s.p != nil {
		printProcessor(w, s.at, s.p, state)
	} else {
		printCollector(w, s.at, s.c, state, health)
		printStreams(w, s.c.Top, maxStreams)
	}
	if health != nil {
		fmt.Fprintf(w, "\nunhealthy: %v\n", health)
	}
}

// printProcessor writes a processor's status as of at.
func printProcessor(w io.Writer, at time.Time, p *processor.Status, state string) {
	out := "target dir " + p.TargetDir
	switch {
	case p.TargetDir == "":
		out = "kafka " + p.Kafka
	case p.Kafka != "":
		out += " and kafka " + p.Kafka
	}
	fmt.Fprintf(w, "processor %q, %s: %s\n", p.Name, out, state)
	last := "none yet"
	if !p.LastCommit.IsZero() {
		last = fmt.Sprintf("%s (%s ago)", p.LastCommit.Local().Format(time.DateTime), age(at, p.LastCommit))
	}
	fmt.Fprintf(w, "last commit:\t%s\n", last)
	if p.CommitErr != "" {
		fmt.Fprintf(w, "commit error:\t%s\n", p.CommitErr)
	}
	fmt.Fprintf(w, "written:\t%s, %d lines since start\n", fmtBytes(p.Totals.Bytes), p.Totals.Lines)
	fmt.Fprintf(w, "collectors:\t%d connected\n", len(p.Collectors))
	if len(p.Collectors) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "COLLECTOR\tPEER\tSINCE\tSTREAMS\tBYTES\tLINES")
	for _, c := range p.Collectors {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\n", c.Name, c.Peer, age(at, c.Since), c.Streams, fmtBytes(c.Bytes), c.Lines)
	}
}

// printCollector writes a collector's status as of at, without its streams.
func printCollector(w io.Writer, at time.Time, c *collector.Status, state string, health error) {
	link := "not connected"
	if c.Connected {
		link = "connected to " + c.Addr
	}
	fmt.Fprintf(w, "collector %q, %s: %s\n", c.Name, link, state)
	if c.IdentityKey != "" {
		fmt.Fprintf(w, "identity:\t%s\n", c.IdentityKey)
	}
	if c.LastError != "" && (health == nil || !strings.Contains(health.Error(), c.LastError)) {
		fmt.Fprintf(w, "last error:\t%s\n", c.LastError)
	}
	if len(c.Processors) > 1 {
		for _, p := range c.Processors {
			st := "down"
			if p.Connected {
				st = fmt.Sprintf("up, %d streams", p.Streams)
			}
			fmt.Fprintf(w, "processor %s:\t%s\n", p.Addr, st)
		}
	}
	fmt.Fprintf(w, "files:\t%s\n", fileCount(c))
	fmt.Fprintf(w, "sent:\t%s, %d lines (%s on the wire)\n", fmtBytes(c.SentBytes), c.SentLines, fmtBytes(c.WireBytes))
	fmt.Fprintf(w, "acknowledged:\t%s\n", fmtBytes(c.AckedBytes))
	fmt.Fprintf(w, "lag:\t%s\n", fmtBytes(uint64(max(0, c.LagBytes))))
	fmt.Fprintf(w, "connects:\t%d\n", c.Connects)
	fmt.Fprintf(w, "rotations:\t%d, %d deleted\n", c.Rotations, c.Deletions)
	if c.LinesSplit > 0 || c.LinesFlushed > 0 {
		fmt.Fprintf(w, "lines split:\t%d, %d unterminated lines flushed\n", c.LinesSplit, c.LinesFlushed)
	}
	if c.RefusedFiles > 0 {
		fmt.Fprintf(w, "refused files:\t%d, held undelivered: the processor refuses their names (retried; remove what is in the way in its target dir)\n", c.RefusedFiles)
	}
	if c.ChecksumErrors > 0 {
		fmt.Fprintf(w, "checksum errors:\t%d frames from processors damaged on the way (reconnected)\n", c.ChecksumErrors)
	}
	if c.MismatchFiles > 0 {
		fmt.Fprintf(w, "DIGEST MISMATCH:\t%d files: a processor holds other bytes than the file (kept, never deleted; compare the target with the file)\n", c.MismatchFiles)
	}
	if c.HeldFiles > 0 {
		fmt.Fprintf(w, "held rotated files:\t%d, still written by programs that do not reopen their logs (%s since rotation; kept until they close them): make them reopen (their SIGHUP or SIGUSR1) or rotate them a way they support\n", c.HeldFiles, fmtBytes(uint64(c.HeldBytes)))
	}
	if !c.Updated.IsZero() {
		fmt.Fprintf(w, "updated:\t%s ago\n", age(at, c.Updated))
	}
	printRefused(w, at, c.Refused)
	printMismatched(w, at, c.Mismatched)
	printHeld(w, at, c.Held)
}

// printHeld lists the rotated files that programs still hold open and
// write without a lock, with their pids.
func printHeld(w io.Writer, now time.Time, files []collector.HeldFile) {
	printTable(w, "HELD NAME\tPATH\tPIDS\tSINCE\tWRITTEN SINCE ROTATION", files, func(f collector.HeldFile) string {
		pids := make([]string, len(f.PIDs))
		for i, p := range f.PIDs {
			pids[i] = strconv.Itoa(p)
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", f.Name, f.Path, strings.Join(pids, ","), age(now, f.Since), fmtBytes(uint64(f.BytesAfterRotation)))
	})
}

// printMismatched lists the files whose digest a processor reported
// different from the collector's (PROTOCOL.md §13).
func printMismatched(w io.Writer, now time.Time, files []collector.MismatchedFile) {
	printTable(w, "MISMATCHED NAME\tPATH\tBY\tSINCE\tOFFSET\tDIGEST\tPROCESSOR'S\t", files, func(f collector.MismatchedFile) string {
		gone := ""
		if f.Gone {
			gone = "gone"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s", f.Name, f.Path, f.Addr, age(now, f.Since), f.Offset, f.Digest, f.ProcessorDigest, gone)
	})
}

// printTable prints, after a blank line, header and a line of row for each
// of rows; nothing when there are none.
func printTable[T any](w io.Writer, header string, rows []T, row func(T) string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, row(r))
	}
}

// printStreams lists the first maxStreams of top, the most lagging streams.
func printStreams(w io.Writer, top []collector.StreamStatus, maxStreams int) {
	if len(top) == 0 || maxStreams <= 0 {
		return
	}
	fmt.Fprintln(w)
	if len(top) > maxStreams {
		fmt.Fprintf(w, "the %d most lagging streams:\n", maxStreams)
		top = top[:maxStreams]
	}
	fmt.Fprintln(w, "NAME\tPATH\tSIZE\tACKED\tLAG\t")
	for _, st := range top {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.Path, fmtBytes(uint64(st.Size)), fmtBytes(st.Acked), fmtBytes(uint64(st.Lag)), streamFlags(st))
	}
}

// printRefused lists the files a processor refuses, with its reason.
func printRefused(w io.Writer, now time.Time, refused []collector.RefusedFile) {
	printTable(w, "REFUSED NAME\tPATH\tBY\tSINCE\tTRIES\tNEXT TRY\tREASON", refused, func(r collector.RefusedFile) string {
		next := "now"
		if !r.Retrying {
			next = "in " + age(r.NextRetry, now)
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s", r.Name, r.Path, r.Addr, age(now, r.Since), r.Tries, next, r.Reason)
	})
}

// trimLines removes the spaces tabwriter leaves at the ends of lines.
func trimLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "\n") {
			lines[i] = strings.TrimRight(l[:len(l)-1], " ") + "\n"
		} else {
			lines[i] = strings.TrimRight(l, " ")
		}
	}
	return strings.Join(lines, "")
}

// fileCount says how many files a collector follows and holds open. The
// number followed is missing from the JSON of collector.Status, where the
// stream list shadows it; then only open files are counted.
func fileCount(c *collector.Status) string {
	if c.Streams > 0 {
		return fmt.Sprintf("%d followed, %d open", c.Streams, c.OpenFiles)
	}
	return fmt.Sprintf("%d open", c.OpenFiles)
}

func streamFlags(st collector.StreamStatus) string {
	var f []string
	if st.Rotated {
		f = append(f, "rotated")
	}
	if st.Gone {
		f = append(f, "gone")
	}
	return strings.Join(f, ",")
}

// age is now-t rounded for humans.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// fmtBytes formats n bytes with a binary unit: 512 B, 1.5 KiB, 12.0 MiB.
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
