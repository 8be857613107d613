package kafka

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConnErrorsKeepsTheSASLReason: a refused login is the reason Open
// reports even when later connections end only because the client closes
// or the context ends (CI saw "client closed" reported instead).
func TestConnErrorsKeepsTheSASLReason(t *testing.T) {
	var c connErrors
	b := kgo.BrokerMetadata{NodeID: 1, Host: "127.0.0.1", Port: 9092}
	c.OnBrokerRead(b, int16(kmsg.SASLAuthenticate), 0, 0, 0, io.EOF)
	c.OnBrokerConnect(b, 0, nil, io.EOF)
	c.OnBrokerConnect(b, 0, nil, kgo.ErrClientClosed)
	c.OnBrokerConnect(b, 0, nil, context.DeadlineExceeded)
	c.OnBrokerConnect(b, 0, nil, errors.New("connection reset"))
	got := c.explain(context.DeadlineExceeded).Error()
	if !strings.Contains(got, "SASL authentication failed") {
		t.Fatalf("explain = %q, want the SASL failure", got)
	}
	if !errors.Is(c.explain(context.DeadlineExceeded), context.DeadlineExceeded) {
		t.Fatal("explain lost the context error")
	}
}
