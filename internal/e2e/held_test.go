//go:build unix

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// heldMsg is the collector's warning about a rotated file still written.
const heldMsg = "rotated file still written by a program that does not reopen its log"

// TestRotatedHeldVisible: a writer that holds its file open without a
// lock and never reopens it (Python's logging.FileHandler) goes on writing
// into the file the collector rotated. The status names the rotated file
// and the writer's pid, the metrics count it (and the bytes written after
// the rotation, labelled with the pid), the warning is logged once however
// many scans see it, and once the writer closes, the file is delivered
// exactly, deleted, and no longer listed.
func TestRotatedHeldVisible(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, withQuick(append(adminArgs, "--rotate-size=64KiB")...)...)
	cadm := adminAddr(t, c)
	w := startWriters(t)
	w.addWriters(src, linecheck.Writer{
		ID: "py", Path: filepath.Join(src, "app.log"), Contract: linecheck.Unlocked,
		Lines: 6000, Rate: 500, ReopenAfter: time.Hour, // 12 s, one open
	})
	pid := os.Getpid() // the writer runs in this process
	var path string
	harness.WaitFor(t, deliverTimeout, func() error {
		st, err := collectorStatus(cadm)
		if err != nil {
			return err
		}
		if st.HeldFiles != 1 || len(st.Held) != 1 {
			return fmt.Errorf("held files %d, %v; want app.log's rotated file", st.HeldFiles, st.Held)
		}
		h := st.Held[0]
		if h.Name != "app.log" || !strings.HasPrefix(h.Path, "app.log.") || !slices.Equal(h.PIDs, []int{pid}) {
			return fmt.Errorf("held %+v, want app.log's rotated file held by pid %d", h, pid)
		}
		if h.BytesAfterRotation <= 0 {
			return fmt.Errorf("held %+v: nothing written after rotation yet", h)
		}
		path = h.Path
		return nil
	}, p, c)
	mfs, err := scrape(cadm)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := metric(cadm, "thunder_collector_rotated_held_files"); err != nil || v != 1 {
		t.Errorf("thunder_collector_rotated_held_files = %v, %v; want 1", v, err)
	}
	var labelled bool
	for _, m := range mfs["thunder_collector_rotated_held_bytes"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		labelled = labelled || labels["path"] == path && labels["pid"] == strconv.Itoa(pid) && m.GetGauge().GetValue() > 0
	}
	if !labelled {
		t.Errorf("no thunder_collector_rotated_held_bytes series for %s and pid %d: %v", path, pid, mfs["thunder_collector_rotated_held_bytes"])
	}

	expect := w.Wait() // the writer closes its file
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	waitMetric(t, deliverTimeout, cadm, "thunder_collector_rotated_held_files", "0", func(v float64) bool { return v == 0 }, p, c)
	waitLog(t, deliverTimeout, c, "rotated file deleted", 1, p, c)
	if n := logCount(c, heldMsg); n != 1 {
		t.Errorf("logged %q %d times, want once:\n%s", heldMsg, n, strings.Join(logMatches(c, heldMsg), "\n"))
	} else if l := logMatches(c, heldMsg)[0]; !strings.Contains(l, "level=WARN") || !strings.Contains(l, "SIGHUP") || !strings.Contains(l, path) {
		t.Errorf("warning %q lacks the level, the path or what to do", l)
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}
