package processor

import (
	"context"
	"log/slog"
	"time"

	"thunder/internal/lograte"
)

// connLog rate-limits per-connection log lines, so that a flood of hostile
// or flapping connections cannot flood the log: a burst of 200 lines, then
// 20 a second; what is held back is counted and reported with the next line
// that passes.
func connLog() *lograte.Limit { return lograte.New(time.Second/20, 200) }

// logAt logs a per-connection event through the processor's limit.
func (s *session) logAt(level slog.Level, msg string, args ...any) {
	ok, dropped := s.p.logLimit.Allow()
	if !ok {
		return
	}
	if dropped > 0 {
		s.p.log.Warn("connection log lines suppressed", "lines", dropped)
	}
	s.log.Log(context.Background(), level, msg, args...)
}
