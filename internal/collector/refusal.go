package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"thunder/internal/backoff"
	"thunder/internal/wire"
)

// A permanent refusal (PROTOCOL.md §7: auth or version in the handshake)
// heals only when an operator changes a setting: the collector still
// retries, so that a fix on the processor's side is picked up without a
// restart, but from refusedBackoffMin growing (n²) to refusedBackoffMax,
// not every few seconds.
const (
	refusedBackoffMin = time.Second
	refusedBackoffMax = time.Minute
)

// RefusedError is a processor's permanent refusal of this collector,
// saying what to change.
type RefusedError struct {
	Addr, Collector string
	Remote          *wire.RemoteError
	Hint            string // what to change; "" when the processor's message says it
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("processor %s refused collector %s (%s): %s", e.Addr, e.Collector, e.Remote.Code, e.Remote.Message)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *RefusedError) Unwrap() error { return e.Remote }

// permanent returns err as a *RefusedError when it is a permanent refusal
// by the processor at addr, and nil otherwise.
func (c *Collector) permanent(addr string, err error) *RefusedError {
	var re *wire.RemoteError
	if !errors.As(err, &re) || (re.Code != wire.CodeAuth && re.Code != wire.CodeVersion) {
		return nil
	}
	return &RefusedError{Addr: addr, Collector: c.cfg.Name, Remote: re, Hint: refusalHint(re, c.cfg.Token != "")}
}

// refusalHint says what to change for a refusal whose message does not.
// The processor's messages about identity keys, pins and certificates name
// the fix themselves; its token refusal ("wrong or missing token") cannot
// know which side is wrong.
func refusalHint(re *wire.RemoteError, haveToken bool) string {
	switch {
	case re.Code == wire.CodeVersion && strings.HasPrefix(re.Message, "no common version"):
		return "upgrade the older of the collector and the processor"
	case re.Code != wire.CodeAuth || !strings.Contains(re.Message, "token"):
		return ""
	case haveToken:
		return "the token does not match: make --auth-token-file (auth-token-file in collector.toml) hold the processor's token"
	}
	return "the processor requires a token: set --auth-token-file (auth-token-file in collector.toml) to a file holding the processor's token"
}

// refusedSleep waits the backoff after n consecutive permanent refusals.
func (c *Collector) refusedSleep(ctx context.Context, n int) {
	backoff.Policy{Min: refusedBackoffMin, Max: max(refusedBackoffMax, c.cfg.BackoffMax), Jitter: true}.Wait(ctx, n)
}
