package main

import (
	"strings"
	"testing"
)

// TestTopPlain runs top with stdout not a terminal: one block per sample,
// rates from the second on.
func TestTopPlain(t *testing.T) {
	tests := []struct {
		name   string
		status func(i uint64) any
		want   []string // in the second block
	}{
		{"processor", func(i uint64) any { return processorStatus(i<<20, i*1000) }, []string{`processor "central"`, "COLLECTOR", "web-1", "web-2", "B/s"}},
		{"collector", func(i uint64) any { return collectorStatus(i << 20) }, []string{`collector "web-1"`, "LAG", "app/slow.log", "B/s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The daemon moves on with every request (fakeDaemon
			// serializes them).
			var n uint64
			f := startFakeFunc(t, func() any { n++; return tt.status(n) })
			stdout, _, err := runCmd(t, "top", "--count=3", "--interval=20ms", "--admin-address="+f.addr)
			if err != nil {
				t.Fatalf("top: %v", err)
			}
			blocks := strings.Split(strings.TrimSpace(stdout), "\n\nthunder top")
			if len(blocks) != 3 {
				t.Fatalf("top --count=3 printed %d blocks, want 3:\n%s", len(blocks), stdout)
			}
			if strings.Contains(blocks[0], "B/s") {
				t.Errorf("first block has rates without a previous sample:\n%s", blocks[0])
			}
			for _, w := range tt.want {
				if !strings.Contains(blocks[2], w) {
					t.Errorf("third block lacks %q:\n%s", w, blocks[2])
				}
			}
			if strings.Contains(stdout, "\x1b[") {
				t.Errorf("escape sequences in plain output:\n%q", stdout)
			}
		})
	}
}
