package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/harness"
)

// TestRefusedNameRetried: the processor refuses x/app.log while a directory
// is at that path in its target dir. The collector holds the file, shows it
// in its status, keeps delivering its other files, and delivers x/app.log
// without a restart once the directory is gone.
func TestRefusedNameRetried(t *testing.T) {
	p := mustProcessor(t)
	inTheWay := filepath.Join(p.dir, "x", "app.log")
	if err := os.MkdirAll(filepath.Join(inTheWay, "y"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	app, other := lines("app", 0, 100, 50), lines("other", 0, 100, 50)
	appendFile(t, filepath.Join(src, "x", "app.log"), app)
	appendFile(t, filepath.Join(src, "x", "other.log"), other)
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.RescanInterval = 200 * time.Millisecond // the first retries come soon
	c := mustCollector(t, cfg)

	waitTargets(t, p.dir, map[string]string{"x/other.log": other})
	harness.WaitFor(t, waitTimeout, func() error {
		st := c.c.Status()
		if st.RefusedFiles != 1 || len(st.Refused) != 1 {
			return fmt.Errorf("RefusedFiles = %d, Refused = %+v; want x/app.log", st.RefusedFiles, st.Refused)
		}
		if r := st.Refused[0]; r.Name != "x/app.log" || r.Path != "x/app.log" || r.Reason == "" || r.Addr != p.addr || r.Tries < 2 {
			return fmt.Errorf("Refused[0] = %+v, want x/app.log refused by %s twice, with a reason", r, p.addr)
		}
		return nil
	})
	more := lines("other", 100, 200, 50)
	appendFile(t, filepath.Join(src, "x", "other.log"), more)
	waitTargets(t, p.dir, map[string]string{"x/other.log": other + more})

	if err := os.RemoveAll(inTheWay); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, p.dir, map[string]string{"x/app.log": app, "x/other.log": other + more})
	harness.WaitFor(t, waitTimeout, func() error {
		if st := c.c.Status(); st.RefusedFiles != 0 || len(st.Refused) != 0 {
			return fmt.Errorf("RefusedFiles = %d, Refused = %+v after delivery; want none", st.RefusedFiles, st.Refused)
		}
		return nil
	})
}
