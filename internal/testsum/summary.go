package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SlowTest is how long a passing test runs before testsum prints a line
// for it.
const SlowTest = time.Second

// maxOutputBytes bounds the output kept per running test (its end is
// kept) and per package.
const maxOutputBytes = 1 << 20

// event is one line of go test -json (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Elapsed    float64
	Output     string
}

// key names a test of a package, or the package itself (test "").
type key struct{ pkg, test string }

// pkgCount counts a package's test results.
type pkgCount struct{ pass, fail, skip int }

// summary follows go test's events and prints as they come. Not safe for
// concurrent use.
type summary struct {
	w       io.Writer
	start   time.Time
	last    time.Time // when testsum last printed
	running map[key]time.Time
	output  map[key][]byte // of tests and packages not ended yet
	counts  map[string]*pkgCount
	skipped []string // "pkg Test: reason"
	fails   []string // "pkg Test"
	pkgFail []string // packages that failed
	build   map[string][]byte
	passed  int
}

// failed reports whether a test or a package failed.
func (s *summary) failed() bool { return len(s.fails)+len(s.pkgFail) > 0 }

func newSummary(w io.Writer, now time.Time) *summary {
	return &summary{w: w, start: now, last: now, running: map[key]time.Time{}, output: map[key][]byte{},
		counts: map[string]*pkgCount{}, build: map[string][]byte{}}
}

// printf prints a line stamped with the time since the start.
func (s *summary) printf(now time.Time, format string, args ...any) {
	s.last = now
	d := now.Sub(s.start).Round(time.Second)
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	fmt.Fprintf(s.w, "[%2d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, msg)
}

// line handles one line of go test's output; a line that is not an event
// is printed as is.
func (s *summary) line(b []byte) {
	var e event
	if err := json.Unmarshal(b, &e); err != nil || e.Action == "" {
		fmt.Fprintf(s.w, "%s\n", b)
		return
	}
	now := time.Now()
	if !e.Time.IsZero() {
		now = e.Time
	}
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		s.build[e.ImportPath] = appendTail(s.build[e.ImportPath], e.Output)
	case "build-fail":
		s.printf(now, "BUILD FAILED %s\n%s", e.ImportPath, s.build[e.ImportPath])
	case "run":
		s.running[k] = now
	case "output":
		s.output[k] = appendTail(s.output[k], e.Output)
	case "pass", "fail", "skip":
		s.end(now, k, e)
	}
}

// end handles the end of a test or, with no test, of a package.
func (s *summary) end(now time.Time, k key, e event) {
	out := s.output[k]
	delete(s.output, k)
	delete(s.running, k)
	if k.test == "" {
		s.endPackage(now, e, out)
		return
	}
	c := s.counts[k.pkg]
	if c == nil {
		c = &pkgCount{}
		s.counts[k.pkg] = c
	}
	took := time.Duration(e.Elapsed * float64(time.Second)).Round(10 * time.Millisecond)
	top := !strings.Contains(k.test, "/")
	switch e.Action {
	case "pass":
		c.pass++
		s.passed++
		if top && took >= SlowTest {
			s.printf(now, "  pass  %s %s (%v)", short(k.pkg), k.test, took)
		}
	case "skip":
		c.skip++
		s.skipped = append(s.skipped, fmt.Sprintf("%s %s: %s", k.pkg, k.test, skipReason(out)))
	case "fail":
		c.fail++
		s.fails = append(s.fails, k.pkg+" "+k.test)
		s.printf(now, "  FAIL  %s %s (%v)\n%s", short(k.pkg), k.test, took, out)
	}
}

// endPackage prints the line of a package that ended, with its output
// outside any test when it failed (a panic, a timeout, a leak check).
func (s *summary) endPackage(now time.Time, e event, out []byte) {
	c := s.counts[e.Package]
	if c == nil {
		c = &pkgCount{}
	}
	took := time.Duration(e.Elapsed * float64(time.Second)).Round(100 * time.Millisecond)
	switch {
	case e.Action == "fail":
		s.pkgFail = append(s.pkgFail, e.Package)
		s.printf(now, "FAIL  %s (%v; %d passed, %d failed, %d skipped)\n%s", e.Package, took, c.pass, c.fail, c.skip, out)
	case c.pass+c.fail+c.skip == 0:
		// no test files, or no tests: nothing to say
	default:
		s.printf(now, "ok    %s (%v; %d passed, %d skipped)", e.Package, took, c.pass, c.skip)
	}
}

// heartbeat names the top-level tests running when nothing was printed
// for Heartbeat.
func (s *summary) heartbeat(now time.Time) {
	if now.Sub(s.last) < Heartbeat || len(s.running) == 0 {
		return
	}
	var names []string
	for k, at := range s.running {
		if !strings.Contains(k.test, "/") && k.test != "" {
			names = append(names, fmt.Sprintf("%s %s (%v)", short(k.pkg), k.test, now.Sub(at).Round(time.Second)))
		}
	}
	slices.Sort(names)
	s.printf(now, "  running: %s", strings.Join(names, ", "))
}

// finish prints the skipped tests with their reasons, the failed ones and
// the counts.
func (s *summary) finish(now time.Time) {
	if len(s.skipped) > 0 {
		fmt.Fprintf(s.w, "\nskipped (%d):\n", len(s.skipped))
		for _, sk := range s.skipped {
			fmt.Fprintf(s.w, "  %s\n", sk)
		}
	}
	if s.failed() {
		fmt.Fprintf(s.w, "\nFAILED: %d tests in %d packages:\n", len(s.fails), len(s.pkgFail))
		for _, f := range append(s.fails, s.pkgFail...) {
			fmt.Fprintf(s.w, "  %s\n", f)
		}
	}
	fmt.Fprintf(s.w, "\n%d tests passed, %d failed, %d skipped in %v\n",
		s.passed, len(s.fails), len(s.skipped), now.Sub(s.start).Round(time.Second))
}

// skipReason returns the reason given to t.Skip: the last entry the
// skipped test logged (an entry starts with "file.go:N: "; a test may have
// logged others before it skipped), without go test's own lines.
func skipReason(out []byte) string {
	var why []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		if logEntry.MatchString(l) {
			why = why[:0]
		}
		why = append(why, l)
	}
	if len(why) == 0 {
		return "(no reason given)"
	}
	return strings.Join(why, " ")
}

// logEntry matches the first line of a t.Log entry.
var logEntry = regexp.MustCompile(`^[\w.-]+\.go:\d+: `)

// short drops the module's name from a package path.
func short(pkg string) string {
	if i := strings.IndexByte(pkg, '/'); i >= 0 {
		return pkg[i+1:]
	}
	return pkg
}

// appendTail appends s to b, keeping the last maxOutputBytes.
func appendTail(b []byte, s string) []byte {
	b = append(b, s...)
	if len(b) > maxOutputBytes {
		b = append(b[:0], b[len(b)-maxOutputBytes:]...)
	}
	return b
}
