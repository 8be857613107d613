package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// sameSetting reports whether a default written in a document (doc) is the
// daemon's default def (as --check-config prints it), comparing sizes and
// durations by value: "1m" is "1m0s", "8MiB" is 8388608.
func sameSetting(doc string, def any) bool {
	d := fmt.Sprint(def)
	if doc == d {
		return true
	}
	if a, err := time.ParseDuration(doc); err == nil {
		b, err := time.ParseDuration(d)
		return err == nil && a == b
	}
	if a, err := parseSize(doc); err == nil {
		b, err := parseSize(d)
		return err == nil && a == b
	}
	return false
}

var (
	readmeRowRE  = regexp.MustCompile("(?m)^\\| (`--[^|]*)\\|([^|]*)\\|")
	backquotedRE = regexp.MustCompile("`([^`]*)`")
)

// readmeDefaults returns the defaults the README's flag table of daemon
// states, by flag name: a row names its flags and their defaults in
// backquotes, in the same order. A default with a placeholder (<name>) is
// left out.
func readmeDefaults(t *testing.T, daemon string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### "+daemon+"\n")
	if !ok {
		t.Fatalf("README.md has no section ### %s", daemon)
	}
	section, _, _ = strings.Cut(section, "\n#")
	docs := map[string]string{}
	for _, row := range readmeRowRE.FindAllStringSubmatch(section, -1) {
		var flags, values []string
		for _, m := range backquotedRE.FindAllStringSubmatch(row[1], -1) {
			flags = append(flags, strings.TrimPrefix(m[1], "--"))
		}
		for _, m := range backquotedRE.FindAllStringSubmatch(row[2], -1) {
			if !strings.HasPrefix(m[1], "--") { // (required unless `--kafka-brokers`)
				values = append(values, m[1])
			}
		}
		for _, f := range flags {
			docs[f] = ""
		}
		if len(values) == 0 {
			continue // required, off, or no default
		}
		if len(values) != len(flags) {
			t.Errorf("README.md, %s: the row of %v gives %d defaults for %d flags", daemon, flags, len(values), len(flags))
			continue
		}
		for i, f := range flags {
			if !strings.Contains(values[i], "<") {
				docs[f] = values[i]
			}
		}
	}
	if len(docs) == 0 {
		t.Fatalf("README.md: no flag table under ### %s", daemon)
	}
	return docs
}

// exampleDefaultRE matches a commented-out setting of packaging/*.toml.
var exampleDefaultRE = regexp.MustCompile(`(?m)^# ([a-z][a-z0-9-]*) = (.*)$`)

// TestDocumentedDefaults checks the defaults written in the README's flag
// tables and in the commented-out settings of packaging/*.toml ("show the
// default") against those the daemons have, which come from the
// DefaultConfig of their packages: a default changed in code must be
// changed in the documents too. Commented-out settings of a flag whose
// default is empty are examples, not defaults.
func TestDocumentedDefaults(t *testing.T) {
	for daemon, file := range map[string]string{
		"logs-processor": "../../packaging/processor.toml",
		"logs-collector": "../../packaging/collector.toml",
	} {
		t.Run(daemon, func(t *testing.T) {
			defaults := settings(t, daemon)
			for name, doc := range readmeDefaults(t, daemon) {
				def, ok := defaults[name]
				switch {
				case !ok && !inFile(name):
					// --config and --check-config: not settings
				case !ok:
					t.Errorf("README.md lists --%s, which %s does not have", name, daemon)
				case doc != "" && !sameSetting(doc, def):
					t.Errorf("README.md: --%s defaults to %q, but %s's default is %v", name, doc, daemon, def)
				}
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range exampleDefaultRE.FindAllStringSubmatch(string(b), -1) {
				name := m[1]
				def, ok := defaults[name]
				if !ok || fmt.Sprint(def) == "" || strings.Contains(m[2], "<") {
					continue // TestExampleConfigs checks the names
				}
				var v map[string]any
				if _, err := toml.Decode("v = "+m[2], &v); err != nil {
					t.Errorf("%s: %s = %s: %v", file, name, m[2], err)
					continue
				}
				if doc := fmt.Sprint(v["v"]); !sameSetting(doc, def) {
					t.Errorf("%s: # %s = %s, but %s's default is %v", file, name, m[2], daemon, def)
				}
			}
		})
	}
}

// proseDefaultRE matches a default stated in running text:
// "`--window-bytes`, default 32 MiB", "`--commit-interval` (default 5 ms)",
// "`--max-open-files` (4096)".
var proseDefaultRE = regexp.MustCompile("`--([a-z][a-z0-9-]*)`(?:,| \\()\\s*(?:default\\s+)?([0-9][0-9,]*(?: ?(?:[KMG]iB|ms|s|m))?)[),;: ]")

// TestProseDefaults checks the defaults of daemon flags that the docs state
// in running text against the daemons' defaults.
func TestProseDefaults(t *testing.T) {
	defaults := map[string][]any{}
	for _, daemon := range daemons {
		for name, def := range settings(t, daemon) {
			defaults[name] = append(defaults[name], def)
		}
	}
	checked := 0
	for _, file := range []string{"../../README.md", "../../docs/PROTOCOL.md", "../../docs/design.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range proseDefaultRE.FindAllStringSubmatch(string(b), -1) {
			defs, ok := defaults[m[1]]
			if !ok {
				continue // a flag of status, top or demo
			}
			doc := strings.NewReplacer(" ", "", ",", "").Replace(m[2])
			same := false
			for _, def := range defs {
				same = same || sameSetting(doc, def)
			}
			if !same {
				t.Errorf("%s: --%s defaults to %s, but the daemons' default is %v", file, m[1], m[2], defs)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no defaults found in the docs' text: has the pattern gone stale?")
	}
}
