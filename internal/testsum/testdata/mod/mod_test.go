package mod

import (
	"os"
	"testing"
)

func TestPasses(t *testing.T) {}

func TestSkips(t *testing.T) { t.Skip("needs a unicorn") }

func TestFails(t *testing.T) {
	if os.Getenv("TESTSUM_FAIL") != "" {
		t.Log("the output of a failed test")
		t.Fatal("it fails")
	}
}

func TestTable(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Skipf("subtest skipped: %d", 42) })
}

func TestLogsThenSkips(t *testing.T) {
	t.Log("set up, then found\nno ext4")
	t.Skip("needs a file system\nthat reuses inodes")
}
