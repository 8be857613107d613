package collector_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// goroutine a Collector starts is joined before Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
