package main

import (
	"strings"
	"testing"
)

// TestTargetLayoutErrors: a bad --target-layout, as a flag or a TOML key,
// stops the processor at start with an error naming the flag and the
// value; a layout without a target dir (Kafka only) is refused too.
func TestTargetLayoutErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--target-layout={hots}/{file}"}, []string{"target-layout", "{hots}/{file}", "unknown placeholder {hots}"}},
		{[]string{"--target-layout="}, []string{"target-layout", "empty layout"}},
		{[]string{"--target-layout=/srv/{file}"}, []string{"target-layout", "/srv/{file}", "absolute"}},
		{[]string{"--target-layout={host}/../{file}"}, []string{"target-layout", "{host}/../{file}", ".."}},
		{[]string{"--config=" + writeConfig(t, "target-layout = \"{date}.log\"\n")}, []string{`key "target-layout"`, "{date}.log", "neither {host} nor {file}"}},
	} {
		_, _, err := runCmd(t, append([]string{"logs-processor", "--target-dir=" + dir, "--listen-address=127.0.0.1:0"}, tc.args...)...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v, want one saying %q", tc.args, err, w)
			}
		}
	}
	_, _, err := runCmd(t, "logs-processor", "--kafka-brokers=127.0.0.1:1", "--target-layout={host}/{file}", "--check-config")
	if err == nil || !strings.Contains(err.Error(), `--target-layout "{host}/{file}" needs a target dir`) {
		t.Errorf("a layout with Kafka only: %v, want it refused", err)
	}
}
