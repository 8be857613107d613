//go:build unix

package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
	"thunder/internal/processor"
	"thunder/internal/target"
)

// verifyReport reads GET /verify at full speed from a processor's admin
// endpoint: the files by name, and the summary.
func verifyReport(addr string) (map[string][]target.FileResult, processor.VerifySummary, error) {
	var sum processor.VerifySummary
	code, body, err := httpGet(addr, "/verify?rate=0")
	if err != nil {
		return nil, sum, err
	}
	if code != http.StatusOK {
		return nil, sum, fmt.Errorf("GET /verify: %d: %s", code, body)
	}
	files, sum, err := parseVerify(body)
	return files, sum, err
}

// parseVerify parses verify's JSON lines, skipping other lines.
func parseVerify(body []byte) (map[string][]target.FileResult, processor.VerifySummary, error) {
	files := make(map[string][]target.FileResult)
	var sum processor.VerifySummary
	var summary bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue // thunder's own message on stderr
		}
		var l processor.VerifyLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, sum, fmt.Errorf("verify line %q: %w", sc.Text(), err)
		}
		switch {
		case l.File != nil:
			files[l.File.Name] = append(files[l.File.Name], *l.File)
		case l.Summary != nil:
			sum, summary = *l.Summary, true
		}
	}
	if !summary {
		return nil, sum, fmt.Errorf("verify answer without a summary:\n%s", body)
	}
	return files, sum, nil
}

// exitCode is the exit status in a runThunder error (0 for none).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("thunder did not run: %v", err)
	return -1
}

// runVerify runs `thunder verify` against the admin address and checks its
// exit status.
func runVerify(t *testing.T, addr string, want int, args ...string) string {
	t.Helper()
	out, err := runThunder(t, cmdTimeout, append([]string{"verify", "--admin-address=" + addr}, args...)...)
	if got := exitCode(t, err); got != want {
		t.Fatalf("thunder verify %s: exit status %d, want %d:\n%s", strings.Join(args, " "), got, want, out)
	}
	return out
}

// lineOf returns the line of out that mentions name.
func lineOf(out, name string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, " "+name+" ") {
			return l
		}
	}
	return ""
}

// waitCommitted waits until verify reports each file of names committed
// as long as its source file, and ok.
func waitCommitted(t *testing.T, padm, src string, names []string, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, deliverTimeout, func() error {
		files, _, err := verifyReport(padm)
		if err != nil {
			return err
		}
		for _, name := range names {
			fi, err := os.Stat(filepath.Join(src, name))
			if err != nil {
				return err
			}
			if r := files[name]; len(r) != 1 || r[0].Size != fi.Size() || r[0].Verdict != target.VerdictOK {
				return fmt.Errorf("%s: verify says %+v, want one entry of %d bytes, ok", name, r, fi.Size())
			}
		}
		return nil
	}, running...)
}

// TestVerifyCommand runs `thunder verify` against a running processor
// while a writer keeps writing: ok, then a changed byte, a truncated file
// and a replaced file are each reported, with the processor serving
// throughout.
func TestVerifyCommand(t *testing.T) {
	skipShort(t)
	dst, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, dst, adminArgs...)
	c := startCollector(t, "web-1", src, offsetsDB(t), p.Addr, adminArgs...)
	padm, cadm := adminAddr(t, p), adminAddr(t, c)
	startWriters(t, writerSpec{ID: "a", Dir: src, Name: "app/a.log", Contract: linecheck.LockedAppend, Lines: 1_000_000, Rate: writerRate})
	done := startWriters(t,
		writerSpec{ID: "b", Dir: src, Name: "b.log", Contract: linecheck.OpenWriteClose, Lines: 3000, Rate: 3 * writerRate},
		writerSpec{ID: "c", Dir: src, Name: "c.log", Contract: linecheck.LockedAppend, Lines: 3000, Rate: 3 * writerRate},
	)
	done.Wait()
	waitCommitted(t, padm, src, []string{"b.log", "c.log"}, p, c)
	harness.WaitFor(t, deliverTimeout, func() error {
		files, _, err := verifyReport(padm)
		if err != nil {
			return err
		}
		if r := files["app/a.log"]; len(r) != 1 || r[0].Size < 200<<10 {
			return fmt.Errorf("app/a.log: %+v, want 200 KiB committed", r)
		}
		return nil
	}, p, c)

	out := runVerify(t, padm, 0)
	for _, want := range []string{"verify: ok", "app/a.log", "b.log", "c.log", "web-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify of an untouched dir lacks %q:\n%s", want, out)
		}
	}
	t.Logf("thunder verify:\n%s", out)

	// One committed byte changed, while the file keeps growing.
	const at = 150_000
	f, err := os.OpenFile(filepath.Join(dst, "app", "a.log"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'#'}, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out = runVerify(t, padm, 1)
	if l := lineOf(out, "app/a.log"); !strings.Contains(l, "modified") || !strings.Contains(l, "offset ") {
		t.Errorf("verify after a changed byte: line of app/a.log = %q:\n%s", l, out)
	}
	out = runVerify(t, padm, 1, "--json", "--rate=16MiB")
	files, sum, err := parseVerify([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r := files["app/a.log"]; len(r) != 1 || r[0].Verdict != target.VerdictModified || r[0].Offset > at || r[0].End <= at {
		t.Errorf("verify --json: app/a.log = %+v, want modified in a range containing %d", r, at)
	}
	if sum.OK || sum.Counts[target.VerdictModified] != 1 || sum.Counts[target.VerdictOK] != 2 {
		t.Errorf("verify --json summary = %+v", sum)
	}

	// A truncated file, and a file replaced by another with the same bytes.
	if err := os.Truncate(filepath.Join(dst, "b.log"), 1000); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "c.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "c.log.new"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dst, "c.log.new"), filepath.Join(dst, "c.log")); err != nil {
		t.Fatal(err)
	}
	out = runVerify(t, padm, 1)
	if l := lineOf(out, "b.log"); !strings.Contains(l, "truncated") || !strings.Contains(l, "1000") {
		t.Errorf("line of b.log = %q, want truncated at 1000:\n%s", l, out)
	}
	if l := lineOf(out, "c.log"); !strings.Contains(l, "replaced") {
		t.Errorf("line of c.log = %q, want replaced:\n%s", l, out)
	}
	if !strings.Contains(out, "NOT OK: 3 of 3") {
		t.Errorf("verdict line missing:\n%s", out)
	}
	t.Logf("thunder verify after the damage:\n%s", out)

	// It cannot check: nobody at the address, a collector, a bad flag.
	if out := runVerify(t, deadAddr(t), 2); !strings.Contains(out, "cannot reach") {
		t.Errorf("verify of a dead address: %s", out)
	}
	if out := runVerify(t, cadm, 2); !strings.Contains(out, "not the admin endpoint of a thunder processor") {
		t.Errorf("verify of a collector: %s", out)
	}
	runVerify(t, padm, 2, "--rate=fast")
	if err := harness.Exited(p, c); err != nil {
		t.Fatal(err)
	}
}

// scrubFiles returns thunder_processor_scrub_files by result.
func scrubFiles(addr string) (map[string]float64, error) {
	mfs, err := scrape(addr)
	if err != nil {
		return nil, err
	}
	mf, ok := mfs["thunder_processor_scrub_files"]
	if !ok {
		return nil, errors.New("no thunder_processor_scrub_files yet")
	}
	got := make(map[string]float64)
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" {
				got[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	return got, nil
}

// TestScrubFindsModified: a processor scrubbing every 100 ms finds a
// changed committed byte, counts it in its metrics and logs it at ERROR.
func TestScrubFindsModified(t *testing.T) {
	skipShort(t)
	dst, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, dst, append(adminArgs, "--scrub-interval=100ms", "--scrub-rate=0")...)
	c := startCollector(t, "web-1", src, offsetsDB(t), p.Addr)
	padm := adminAddr(t, p)
	startWriters(t, writerSpec{ID: "x", Dir: src, Name: "x.log", Contract: linecheck.LockedAppend, Lines: 2000, Rate: writerRate}).Wait()
	waitCommitted(t, padm, src, []string{"x.log"}, p, c) // a verify beside the scrubs: retried while they run (429)
	waitScrub := func(want map[string]float64) {
		t.Helper()
		harness.WaitFor(t, deliverTimeout, func() error {
			got, err := scrubFiles(padm)
			if err != nil {
				return err
			}
			for k, v := range want {
				if got[k] != v {
					return fmt.Errorf("scrub files = %v, want %v", got, want)
				}
			}
			return nil
		}, p, c)
	}
	waitScrub(map[string]float64{"ok": 1, "modified": 0})
	f, err := os.OpenFile(filepath.Join(dst, "x.log"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'#'}, 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitScrub(map[string]float64{"ok": 0, "modified": 1})
	if runs, err := metric(padm, "thunder_processor_scrub_runs_total"); err != nil || runs < 2 {
		t.Errorf("scrub runs = %v, %v; want at least 2", runs, err)
	}
	if log := p.LogText(); !strings.Contains(log, "scrub: target file differs") || !strings.Contains(log, "level=ERROR") {
		t.Errorf("no ERROR for the modified file in the processor's log")
	}
	// A verify while scrubs run: one at a time, never both.
	harness.WaitFor(t, 30*time.Second, func() error {
		_, _, err := verifyReport(padm)
		return err
	}, p, c)
}

// TestVerifyAcrossKill9AndRotation: after kill -9 of the processor at
// random moments (recovery cuts files back to their committed length) and
// a logrotate of a target file told with SIGHUP, thunder verify finds
// every file as committed: the ledger always agrees with what recovery
// left. Before the SIGHUP the rotated-away file is reported missing.
func TestVerifyAcrossKill9AndRotation(t *testing.T) {
	skipShort(t)
	rnd := newRand(t)
	dst, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, dst, adminArgs...)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	w := startWriters(t, mixedWriters("w", src, 4)...)
	for range 3 {
		pause(t, between(rnd, 200*time.Millisecond, 1200*time.Millisecond))
		p.Kill()
		p.Restart()
	}
	expect := w.Wait()
	waitDelivered(t, dst, expect, linecheck.Options{}, p, c)
	padm := adminAddr(t, p)
	out := runVerify(t, padm, 0)
	t.Logf("after %d kills:\n%s", 3, out)

	if err := os.Rename(filepath.Join(dst, "a.log"), filepath.Join(dst, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	if l := lineOf(runVerify(t, padm, 1), "a.log"); !strings.Contains(l, "missing") {
		t.Errorf("a.log rotated away, no SIGHUP yet: %q, want missing", l)
	}
	p.Signal(syscall.SIGHUP)
	harness.WaitFor(t, 10*time.Second, func() error {
		files, sum, err := verifyReport(padm)
		if err != nil {
			return err
		}
		if !sum.OK || len(files["a.log"]) != 0 {
			return fmt.Errorf("after the SIGHUP: %+v, %+v", sum, files["a.log"])
		}
		return nil
	}, p, c)
	runVerify(t, padm, 0)
}
