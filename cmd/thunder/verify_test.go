package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/admin"
	"thunder/internal/processor"
	"thunder/internal/target"
)

func TestReadVerify(t *testing.T) {
	const (
		start   = `{"type":"start","start":{"processor":"p","target_dir":"/t","rate":0}}` + "\n"
		bad     = `{"type":"file","file":{"name":"a.log","verdict":"modified","size":10,"offset":0,"end":10}}` + "\n"
		summary = `{"type":"summary","summary":{"files":1,"bytes":10,"counts":{"modified":1},"streams":0,"ok":false}}` + "\n"
	)
	for _, tc := range []struct {
		name, body, err string
	}{
		{"complete", start + bad + summary, ""},
		{"not a report", `{"name":"p","target_dir":"/t"}` + "\n", "not a verify report"},
		{"not json", "hello\n", "line 1"},
		{"cut short", start + bad, "ended before its summary"},
		{"stopped", start + `{"type":"error","error":"disk gone"}` + "\n", "disk gone"},
	} {
		var n int
		sum, err := readVerify(strings.NewReader(tc.body), func(verifyLine, []byte) error { n++; return nil })
		switch {
		case tc.err == "" && (err != nil || sum.OK || sum.Files != 1 || n != 3):
			t.Errorf("%s: readVerify = %+v, %v after %d lines; want a summary of 1 bad file after 3", tc.name, sum, err, n)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: readVerify error = %v, want one with %q", tc.name, err, tc.err)
		}
	}
}

// TestVerifyExitStatus runs the verify command against an admin endpoint
// whose check finds what the test says: exit status 1 (an error) when a
// file is not ok, a cannotCheck (2) when it cannot check.
func TestVerifyExitStatus(t *testing.T) {
	var result target.FileResult
	var fail error
	srv, err := admin.New(admin.Config{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Verify: func(_ context.Context, _ int64, emit func(any) error) error {
		if fail != nil {
			return fail
		}
		sum := processor.VerifySummary{Summary: target.Summary{Files: 1, Counts: map[target.Verdict]int{result.Verdict: 1}}, OK: result.Verdict == target.VerdictOK}
		for _, l := range []processor.VerifyLine{{Type: "start", Start: &processor.VerifyStart{}}, {Type: "file", File: &result}, {Type: "summary", Summary: &sum}} {
			if err := emit(l); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	run := func() (string, error) {
		var out bytes.Buffer
		err := runVerify(t.Context(), []string{"--admin-address=" + addr}, &out, &out)
		return out.String(), err
	}
	var cc cannotCheck
	result = target.FileResult{Name: "a.log", Verdict: target.VerdictOK, Size: 10}
	if out, err := run(); err != nil || !strings.Contains(out, "verify: ok") {
		t.Errorf("all ok: %v\n%s", err, out)
	}
	result = target.FileResult{Name: "a.log", Verdict: target.VerdictTruncated, Size: 10, Found: 4}
	if out, err := run(); err == nil || errors.As(err, &cc) || !strings.Contains(out, "the file is 4 bytes long, 10 were committed") {
		t.Errorf("truncated: %v, want a plain error (exit 1)\n%s", err, out)
	}
	fail = admin.ErrBusy
	if out, err := run(); !errors.As(err, &cc) {
		t.Errorf("busy: %v, want cannotCheck (exit 2)\n%s", err, out)
	}
}
