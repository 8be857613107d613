//go:build unix

package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// refusedWait bounds the waits of TestRefusedNameRetried: a refusal and
// each retry take a reconnection.
const refusedWait = 60 * time.Second

// collectorStatus reads a collector's /status.
func collectorStatus(addr string) (collector.Status, error) {
	var st collector.Status
	code, body, err := httpGet(addr, "/status")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET /status: %d: %s", code, body)
	}
	return st, json.Unmarshal(body, &st)
}

// TestRefusedNameRetried: a directory in the processor's target dir at the
// path of a collector's file (x/app.log/y, as another collector's file
// x/app.log/y would make it) makes the processor refuse x/app.log. The
// collector must show it (status, `thunder status`, the
// thunder_collector_refused_files gauge, one error line however often it
// retries), keep streaming its other files exactly once, and once the
// directory is removed deliver x/app.log exactly once without a restart.
func TestRefusedNameRetried(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	inTheWay := filepath.Join(target, "x", "app.log")
	if err := os.MkdirAll(filepath.Join(inTheWay, "y"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, withQuick(adminArgs...)...)
	admin := adminAddr(t, c)
	const keepLines = 10_000 // 5 s at writerRate: streaming while x/app.log is refused
	w := startWriters(t,
		writerSpec{ID: "app", Dir: src, Name: "x/app.log", Contract: linecheck.OpenWriteClose, Lines: 2000},
		writerSpec{ID: "keep", Dir: src, Name: "keep.log", Contract: linecheck.LockedAppend, Lines: keepLines, Rate: writerRate},
		writerSpec{ID: "keep-x", Dir: src, Name: "x/other.log", Contract: linecheck.OpenWriteClose, Lines: keepLines, Rate: writerRate},
	)

	waitMetric(t, refusedWait, admin, "thunder_collector_refused_files", "1", func(v float64) bool { return v == 1 }, p, c)
	// Retried at least once, and still refused: listed with the reason.
	harness.WaitFor(t, refusedWait, func() error {
		st, err := collectorStatus(admin)
		if err != nil {
			return err
		}
		if len(st.Refused) != 1 || st.Refused[0].Name != "x/app.log" || st.Refused[0].Reason == "" || st.Refused[0].Addr != p.Addr {
			return fmt.Errorf("status refused = %+v, want x/app.log refused by %s with a reason", st.Refused, p.Addr)
		}
		if st.Refused[0].Tries < 2 {
			return fmt.Errorf("x/app.log refused %d times, want a retry refused too", st.Refused[0].Tries)
		}
		return nil
	}, p, c)
	out, err := runThunder(t, 30*time.Second, "status", "--admin-address="+admin)
	if err != nil {
		t.Fatalf("thunder status: %v\n%s", err, out)
	}
	t.Logf("thunder status:\n%s", out)
	if !strings.Contains(out, "refused") || !strings.Contains(out, "x/app.log") {
		t.Errorf("thunder status does not show x/app.log as refused:\n%s", out)
	}

	expect := w.Wait()
	others := slices.DeleteFunc(slices.Clone(expect), func(e linecheck.Expect) bool { return e.Name == "x/app.log" })
	waitDelivered(t, target, others, linecheck.Options{}, p, c)
	const refusedMsg = "processor refuses this file's name; holding the file and its rotations undelivered, retrying"
	if n := logCount(c, refusedMsg); n != 1 {
		t.Errorf("%d %q lines, want 1 (not one per retry)", n, refusedMsg)
	}
	if v, err := metric(admin, "thunder_collector_refused_files"); err != nil || v != 1 {
		t.Errorf("thunder_collector_refused_files = %v (%v) while x/app.log is in the way, want 1", v, err)
	}

	// The operator removes what is in the way: delivered, no restart.
	if err := os.RemoveAll(inTheWay); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	waitMetric(t, refusedWait, admin, "thunder_collector_refused_files", "0", func(v float64) bool { return v == 0 }, p, c)
	waitLog(t, refusedWait, c, "refused file name accepted again; delivering", 1, p, c)
	if c.Starts() != 1 {
		t.Errorf("collector started %d times, want 1", c.Starts())
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}
