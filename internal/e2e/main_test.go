//go:build unix

package e2e_test

import (
	"testing"

	"go.uber.org/goleak"

	"thunder/internal/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(harness.Main(m))
}
