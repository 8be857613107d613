package processor

import (
	"context"
	"log/slog"
	"net"
	"time"

	"thunder/internal/lograte"
	"thunder/internal/wire"
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

// A collector refused for good (a wrong token, a name pinned to another
// key) retries until its operator fixes it: the same refusal of the same
// peer host is logged when it starts and then once per refusalLogEvery,
// with the count of those not logged, not at every retry.
const (
	refusalLogEvery = time.Minute
	maxRefusalKeys  = 4096
)

// logRefusal logs that the session refused its collector with re.
func (s *session) logRefusal(re *wire.RemoteError) {
	host, _, err := net.SplitHostPort(s.conn.RemoteAddr().String())
	if err != nil {
		host = s.conn.RemoteAddr().String()
	}
	ok, held := s.p.refusals.Allow(host + "\x00" + re.Code.String() + "\x00" + re.Message)
	if !ok {
		return
	}
	args := []any{"code", re.Code, "err", re.Message, "handle", re.Handle}
	if held > 0 {
		args = append(args, "repeated", held, "over", refusalLogEvery)
	}
	s.logAt(slog.LevelWarn, "collector refused", args...)
}
