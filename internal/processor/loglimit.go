package processor

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimit rate-limits per-connection log lines, so that a flood of hostile
// or flapping connections cannot flood the log: a burst of logBurst lines,
// then logRate a second; what is dropped is counted and reported with the
// next line that passes.
type logLimit struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

const (
	logRate  = 20
	logBurst = 200
)

// allow reports whether a line may be logged now, and how many were
// dropped before it.
func (l *logLimit) allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// logAt logs a per-connection event through the processor's limit.
func (s *session) logAt(level slog.Level, msg string, args ...any) {
	ok, dropped := s.p.logLimit.allow()
	if !ok {
		return
	}
	if dropped > 0 {
		s.p.log.Warn("connection log lines suppressed", "lines", dropped)
	}
	s.log.Log(context.Background(), level, msg, args...)
}
