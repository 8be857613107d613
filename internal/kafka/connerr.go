package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// connErrors remembers why the last connection to a broker failed. The
// client retries failed connections until the context ends, and then
// reports only the context's error: a broker that drops the connection
// during SASL authentication (wrong user or password: kfake, some proxies)
// or a TLS handshake that stalls would leave "context deadline exceeded"
// as the whole story.
type connErrors struct {
	mu   sync.Mutex
	sasl map[int32]error // by node: the SASL exchange failed on the connection being set up
	last error
	// lastSASL outlives later failures: a connection cut as the context
	// ends says nothing, and a refused login is the reason to report.
	lastSASL error
}

var (
	_ kgo.HookBrokerConnect = (*connErrors)(nil)
	_ kgo.HookBrokerRead    = (*connErrors)(nil)
)

func (c *connErrors) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil || (key != int16(kmsg.SASLHandshake) && key != int16(kmsg.SASLAuthenticate)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sasl == nil {
		c.sasl = make(map[int32]error)
	}
	c.sasl[meta.NodeID] = err
}

func (c *connErrors) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	serr := c.sasl[meta.NodeID]
	delete(c.sasl, meta.NodeID)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	if serr != nil {
		c.lastSASL = fmt.Errorf("broker %s: SASL authentication failed (wrong mechanism, user or password?): %w", addr, err)
		return
	}
	c.last = fmt.Errorf("broker %s: %w", addr, err)
}

// explain adds the last connection error to err if err is only a context
// error.
func (c *connErrors) explain(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.lastSASL
	if last == nil {
		last = c.last
	}
	if last == nil {
		return err
	}
	return fmt.Errorf("%w; last connection error: %w", err, last)
}
