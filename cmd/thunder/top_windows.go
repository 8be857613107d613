package main

import (
	"context"
	"os"
	"time"
)

// On Windows thunder top prints plain blocks on a console too, as to a
// pipe: the screen it redraws elsewhere needs a terminal in cbreak mode
// (termios, top_terminal.go), and top does not drive the console API.

// isTerminal reports false: no screen is drawn (runTerminal).
func isTerminal(int) bool { return false }

// runTerminal prints plain blocks (runPlain).
func (v *topView) runTerminal(ctx context.Context, f *os.File, interval time.Duration, count int) error {
	return v.runPlain(ctx, f, interval, count)
}
