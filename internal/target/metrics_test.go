package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/target"
)

// TestOpensCounted: thunder_processor_target_opens_total tells a first
// open (recorded) from an open again after the descriptor was closed, and
// counts a file found replaced at its name as recorded afresh.
func TestOpensCounted(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: 16, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, d)
	o := &owner{"c"}
	const files = 4
	streams := make([]*target.Stream, files)
	ends := make([]uint64, files)
	for i := range streams {
		streams[i], _, _ = mustAttach(t, d, key("c", i), fmt.Sprintf("f%d.log", i), 0, o)
	}
	round := func(r int) {
		for i, s := range streams {
			ends[i] = mustAppend(t, d, s, o, ends[i], lines(fmt.Sprintf("r%d-f%d", r, i), 0, 1))
		}
		mustCommit(t, d)
		d.CloseIdle(0) // everything committed: all closed
	}
	round(0)
	round(1)
	// f0.log replaced while closed: its next open records the new file.
	if err := os.Rename(filepath.Join(dir, "f0.log"), filepath.Join(dir, "f0.log.1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f0.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	round(2)
	got := opens(t, reg)
	if want := map[string]float64{"record": files + 1, "reopen": 2*files - 1}; got["record"] != want["record"] || got["reopen"] != want["reopen"] {
		t.Fatalf("opens %v, want %v", got, want)
	}
}

// opens reads thunder_processor_target_opens_total by kind from reg.
func opens(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "thunder_processor_target_opens_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}
