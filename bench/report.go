//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// kv is one key=value field of a RESULT line.
type kv struct {
	k string
	v any
}

// row is one line of the printed table.
type row struct {
	section string // scenario
	what    string // measurement
	value   string // figure with its unit
	ratio   string // against the same-run ceiling (or peer), "" if none
	note    string
}

// report collects the table and writes RESULT lines to stdout and to the
// results file, as the shared kit does.
type report struct {
	out     io.Writer
	results string // appended to
	rows    []row
	targets []row
}

func newReport(out io.Writer, work string) *report {
	return &report{out: out, results: filepath.Join(work, "results.txt")}
}

// result prints "RESULT thunder=SCENARIO k=v ..." and appends it, with a
// UTC timestamp, to the results file.
func (r *report) result(scenario string, fields ...kv) {
	var b strings.Builder
	b.WriteString("RESULT thunder=" + scenario)
	for _, f := range fields {
		b.WriteString(" " + f.k + "=" + format(f.v))
	}
	line := b.String()
	fmt.Fprintln(r.out, line)
	f, err := os.OpenFile(r.results, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: results file:", err)
		return
	}
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: results file:", err)
	}
}

func format(v any) string {
	switch x := v.(type) {
	case float64:
		switch {
		case x == 0 || x >= 100 || x <= -100:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case x >= 1 || x <= -1:
			return strconv.FormatFloat(x, 'f', 2, 64)
		}
		return strconv.FormatFloat(x, 'g', 3, 64)
	case time.Duration:
		return strconv.FormatFloat(x.Seconds(), 'f', 3, 64)
	case string:
		if x == "" || strings.ContainsAny(x, " \t") {
			return strconv.Quote(x)
		}
		return x
	}
	return fmt.Sprint(v)
}

// add appends a table row.
func (r *report) add(section, what, value, ratio, note string) {
	r.rows = append(r.rows, row{section, what, value, ratio, note})
}

// target records an issue target as met or missed.
func (r *report) target(what, got string, met bool) {
	s := "missed"
	if met {
		s = "met"
	}
	r.targets = append(r.targets, row{what: what, value: got, ratio: s})
}

// print writes the table and the targets.
func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMEASUREMENT\tVALUE\tvs CEILING\tNOTE")
	last := ""
	for _, x := range r.rows {
		s := x.section
		if s == last {
			s = ""
		}
		last = x.section
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s, x.what, x.value, x.ratio, x.note)
	}
	tw.Flush()
	if len(r.targets) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET (issue 4)\tMEASURED\t")
	for _, x := range r.targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.what, x.value, x.ratio)
	}
	tw.Flush()
}

// ratio formats a/b as "0.71×", or "" when b is not positive.
func ratio(a, b float64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// quietNote says whether the box was quiet before a measurement.
func quietNote(quiet bool, pct float64) string {
	if quiet {
		return ""
	}
	return fmt.Sprintf("box busy before run (%.0f%% of all cores)", pct)
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

func mibps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / mib / d.Seconds()
}

func perGiB(v float64, bytes int64) float64 {
	if bytes <= 0 {
		return 0
	}
	return v * gib / float64(bytes)
}
