package collector_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestRunJoinsGoroutines checks that every goroutine a collector starts
// (the watcher, a dialler per target, each link's reader and writer) has
// exited when Run returns, not merely soon after: TestMain's leak check
// would not see one that lingers for a moment.
func TestRunJoinsGoroutines(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.Targets = append(cfg.Targets, "127.0.0.1:1") // a dialler that never connects
	c := mustCollector(t, cfg)
	appendFile(t, filepath.Join(src, "a.log"), "a1\n")
	waitTargets(t, p.dir, map[string]string{"a.log": "a1\n"})
	c.stop()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "thunder/internal/collector.(*Collector)") {
			t.Errorf("goroutine of the collector still running after Run returned:\n%s", g)
		}
	}
}
