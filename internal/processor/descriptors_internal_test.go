package processor

import "testing"

// TestBudgetWithin: the budget's arithmetic, under a descriptor limit and
// without one (Windows: descriptorLimit reports none, and the target
// files keep the configured --max-open-files).
func TestBudgetWithin(t *testing.T) {
	tests := []struct {
		name                string
		limit               uint64
		ok                  bool
		maxOpenFiles        int
		wantFiles, wantConn int
	}{
		{"no limit (windows)", 0, false, 4096, 4096, 0},
		{"no limit, kafka only", 0, false, 0, 0, 0},
		{"unlimited", 1 << 62, true, 4096, 4096, 0},
		{"room for both", 1 << 20, true, 4096, 4096, 1<<20 - fdReserve - 4096},
		{"files get half", 4096, true, 4096, (4096 - fdReserve) / 2, (4096 - fdReserve) / 2},
		{"at least minOpenFiles", fdReserve + 8, true, 4096, minOpenFiles, 1},
		{"kafka only", 1024, true, 0, 0, 1024 - fdReserve},
	}
	for _, tt := range tests {
		files, conns := budgetWithin(tt.limit, tt.ok, tt.maxOpenFiles)
		if files != tt.wantFiles || conns != tt.wantConn {
			t.Errorf("%s: budgetWithin(%d, %v, %d) = %d, %d, want %d, %d", tt.name, tt.limit, tt.ok, tt.maxOpenFiles, files, conns, tt.wantFiles, tt.wantConn)
		}
	}
}
