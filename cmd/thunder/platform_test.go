package main

import (
	"errors"
	"strings"
	"testing"
)

// TestRefusal: on Windows the collector and the demo refuse to start with
// exit status 2 and a message that names the README section; the other
// commands, and every command elsewhere, run.
func TestRefusal(t *testing.T) {
	tests := []struct {
		goos, cmd string
		refused   bool
	}{
		{"windows", "logs-collector", true},
		{"windows", "collector", true},
		{"windows", "demo", true},
		{"windows", "logs-processor", false},
		{"windows", "status", false},
		{"windows", "top", false},
		{"windows", "verify", false},
		{"linux", "logs-collector", false},
		{"darwin", "logs-collector", false},
		{"freebsd", "demo", false},
	}
	for _, tt := range tests {
		err := refusal(tt.goos, tt.cmd)
		if (err != nil) != tt.refused {
			t.Errorf("refusal(%q, %q) = %v, want refused %v", tt.goos, tt.cmd, err, tt.refused)
			continue
		}
		if err == nil {
			continue
		}
		if got := exitStatus(err); got != 2 {
			t.Errorf("exitStatus(refusal(%q, %q)) = %d, want 2", tt.goos, tt.cmd, got)
		}
		if msg := err.Error(); !strings.Contains(msg, "does not run on Windows") || !strings.Contains(msg, "README, Platforms") {
			t.Errorf("refusal(%q, %q) = %q, want it to say it does not run on Windows and name README, Platforms", tt.goos, tt.cmd, msg)
		}
	}
}

// TestExitStatus: the statuses main exits with.
func TestExitStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"usage", usageError{errors.New("x")}, 2},
		{"cannot check", cannotCheck{errors.New("x")}, 2},
		{"unsupported", unsupported{errors.New("x")}, 2},
		{"wrapped unsupported", errors.Join(errors.New("y"), unsupported{errors.New("x")}), 2},
		{"other", errors.New("x"), 1},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("%s: exitStatus(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}
