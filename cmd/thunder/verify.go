package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"thunder/internal/processor"
	"thunder/internal/target"
)

const verifyHelp = `Usage: thunder verify [--admin-address=HOST:PORT] [--rate=BYTES_PER_SECOND] [--json]

Proves, with the processor running, that its target dir holds exactly what
it committed: for every file it wrote, the file at the name is the one it
wrote (not replaced, not deleted), is not shorter, and its bytes have the
digest recorded at each commit. Reads the files at --rate at most. Prints a
line per file, then the streams the processor committed, then a verdict.

Exit status: 0 when every file is as committed; 1 when one is not (modified,
truncated, replaced, missing, unreadable); 2 when it could not check (no
processor at the address, a processor without a target dir, a bad flag).

Examples:
  thunder verify
  thunder verify --admin-address=127.0.0.1:7358 --rate=0 --json
`

// cannotCheck is an error of verify that leaves the question open: exit
// status 2.
type cannotCheck struct{ error }

func runVerify(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("verify", verifyHelp, stdout)
	addr := adminAddressFlag(fs)
	rate := int64(processor.DefaultVerifyRate)
	fs.Var(sizeFlag{&rate}, "rate", "bytes per second to read target files at, at most, e.g. 64MiB (0: no limit)")
	asJSON := fs.Bool("json", false, "print the processor's results as JSON lines")
	timeout := fs.Duration("timeout", 10*time.Second, "give up when the processor does not answer within this long (the check itself may take longer)")
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if err := positive("timeout", *timeout); err != nil {
		return usageError{fmt.Errorf("verify: %w", err)}
	}
	c := newAdminClient(*addr, *timeout)
	body, err := c.stream(ctx, fmt.Sprintf("/verify?rate=%d", rate))
	if err != nil {
		return cannotCheck{err}
	}
	defer body.Close()
	pr := &verifyPrinter{w: stdout, json: *asJSON}
	sum, err := readVerify(body, pr.line)
	if err != nil {
		return cannotCheck{fmt.Errorf("verify at %s: %w", c.addr, err)}
	}
	pr.verdict(sum)
	if !sum.OK {
		return fmt.Errorf("verify: %d of %d target files are not as committed", sum.Files-sum.Counts[target.VerdictOK], sum.Files)
	}
	return nil
}

// stream returns the body of a 200 answer to GET path, read as it comes:
// only the answer's start is bounded by the timeout.
func (c *adminClient) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: c.http.Timeout}).DialContext,
		ResponseHeaderTimeout: c.http.Timeout,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin endpoint at %s (is the processor running with --admin-address=%s?): %w", c.addr, c.addr, unwrapURL(err))
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/jsonl") {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // for the message only
	msg := strings.TrimSpace(string(b))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNotFound:
		return nil, fmt.Errorf("%s is not the admin endpoint of a thunder processor with a target dir (GET %s: %s %s); give the processor's --admin-address", c.addr, path, resp.Status, msg)
	case http.StatusTooManyRequests:
		return nil, fmt.Errorf("%s: %s", c.addr, msg)
	}
	return nil, fmt.Errorf("GET http://%s%s: %s: %s", c.addr, path, resp.Status, msg)
}

// verifyLine is a line of /verify as the client reads it.
type verifyLine struct {
	processor.VerifyLine
	Error string `json:"error"`
}

// maxVerifyLine bounds one line of /verify.
const maxVerifyLine = 1 << 20

// readVerify reads the lines of /verify, hands each to fn with its raw
// bytes, and returns the summary; an error when the answer is not a
// complete report.
func readVerify(r io.Reader, fn func(verifyLine, []byte) error) (processor.VerifySummary, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxVerifyLine)
	for n := 0; sc.Scan(); n++ {
		var l verifyLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return processor.VerifySummary{}, fmt.Errorf("line %d: %w", n+1, err)
		}
		switch {
		case n == 0 && l.Type != "start":
			return processor.VerifySummary{}, fmt.Errorf("not a verify report (first line %q)", sc.Text())
		case l.Type == "error":
			return processor.VerifySummary{}, fmt.Errorf("the processor stopped checking: %s", l.Error)
		}
		if err := fn(l, sc.Bytes()); err != nil {
			return processor.VerifySummary{}, err
		}
		if l.Type == "summary" && l.Summary != nil {
			return *l.Summary, nil
		}
	}
	if err := sc.Err(); err != nil {
		return processor.VerifySummary{}, err
	}
	return processor.VerifySummary{}, errors.New("the answer ended before its summary (did the processor stop?)")
}

// verifyPrinter prints a verify report as it arrives.
type verifyPrinter struct {
	w       io.Writer
	json    bool
	files   bool // the file header is printed
	streams bool // the stream header is printed
}

func (p *verifyPrinter) line(l verifyLine, raw []byte) error {
	if p.json {
		_, err := fmt.Fprintf(p.w, "%s\n", raw)
		return err
	}
	var err error
	switch {
	case l.Start != nil:
		_, err = fmt.Fprintf(p.w, "verifying processor %q, target dir %s, at %s\n\n", l.Start.Processor, l.Start.TargetDir, rateText(l.Start.Rate))
	case l.File != nil:
		if !p.files {
			p.files = true
			fmt.Fprintf(p.w, "%-9s  %-32s  %10s  %s\n", "VERDICT", "FILE", "BYTES", "WHERE")
		}
		f := l.File
		_, err = fmt.Fprintf(p.w, "%-9s  %-32s  %10s  %s\n", f.Verdict, f.Name, fmtBytes(uint64(f.Size-f.Base)), where(f))
	case l.Stream != nil:
		if !p.streams {
			p.streams = true
			fmt.Fprintf(p.w, "\n%-16s  %-32s  %10s  %10s  %s\n", "COLLECTOR", "STREAM", "BYTES", "LINES", "DIGEST")
		}
		s := l.Stream
		sum := fmt.Sprintf("%08x", s.Digest)
		if s.NoDigest {
			sum = "unknown"
		}
		_, err = fmt.Fprintf(p.w, "%-16s  %-32s  %10s  %10d  %s\n", s.Collector, s.Name, fmtBytes(s.Bytes), s.Lines, sum)
	}
	return err
}

// where says, for a file that is not ok, where and why.
func where(f *target.FileResult) string {
	switch f.Verdict {
	case target.VerdictModified:
		return fmt.Sprintf("offset %d: bytes [%d, %d) differ from what was committed", f.Offset, f.Offset, f.End)
	case target.VerdictTruncated:
		return fmt.Sprintf("offset %d: the file is %d bytes long, %d were committed", f.Found, f.Found, f.Size)
	case target.VerdictReplaced:
		if f.Reason != "" {
			return "another file is at the name: " + f.Reason
		}
		return "another file is at the name"
	case target.VerdictMissing:
		return "nothing at the name"
	case target.VerdictError:
		return f.Reason
	}
	return ""
}

// verdict prints the last line.
func (p *verifyPrinter) verdict(s processor.VerifySummary) {
	if p.json {
		return
	}
	took := time.Duration(s.Seconds * float64(time.Second)).Round(time.Millisecond)
	if s.OK {
		fmt.Fprintf(p.w, "\nverify: ok: all %d target files hold exactly what was committed (%s read in %s; %d streams)\n", s.Files, fmtBytes(uint64(s.Bytes)), took, s.Streams)
		return
	}
	var bad []string
	for _, v := range target.Verdicts[1:] {
		if n := s.Counts[v]; n > 0 {
			bad = append(bad, fmt.Sprintf("%d %s", n, v))
		}
	}
	fmt.Fprintf(p.w, "\nverify: NOT OK: %d of %d target files differ from what was committed (%s)\n", s.Files-s.Counts[target.VerdictOK], s.Files, strings.Join(bad, ", "))
}

func rateText(r int64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmtBytes(uint64(r)) + "/s"
}
