package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"thunder/internal/admin"
)

// TestVerifyStreamsLines: each result reaches the client before the next
// is made, as a JSON line, and the rate reaches the check.
func TestVerifyStreamsLines(t *testing.T) {
	read := make(chan struct{})
	var gotRate int64
	s := newServer(t, admin.Config{Verify: func(ctx context.Context, rate int64, emit func(any) error) error {
		gotRate = rate
		for i := range 3 {
			if err := emit(map[string]int{"n": i}); err != nil {
				return err
			}
			select {
			case <-read: // the client has this line: it was flushed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/verify?rate=1234")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/jsonl" {
		t.Fatalf("GET /verify: %s, %q", resp.Status, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := range 3 {
		if !sc.Scan() {
			t.Fatalf("line %d missing: %v", i, sc.Err())
		}
		var v map[string]int
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v["n"] != i {
			t.Fatalf("line %d = %q, %v", i, sc.Text(), err)
		}
		read <- struct{}{}
	}
	if sc.Scan() {
		t.Errorf("extra line %q", sc.Text())
	}
	if gotRate != 1234 {
		t.Errorf("rate = %d, want 1234", gotRate)
	}
}

func TestVerifyAnswers(t *testing.T) {
	var rate int64
	verr := error(nil)
	check := func(_ context.Context, r int64, emit func(any) error) error {
		rate = r
		if verr != nil && !strings.Contains(verr.Error(), "late") {
			return verr
		}
		if err := emit(map[string]string{"type": "start"}); err != nil {
			return err
		}
		return verr
	}
	h := newServer(t, admin.Config{Verify: check}).Handler()
	for _, tc := range []struct {
		name, path string
		err        error
		code       int
		body       string
		rate       int64
	}{
		{"ok, default rate", "/verify", nil, http.StatusOK, `{"type":"start"}`, -1},
		{"unlimited", "/verify?rate=0", nil, http.StatusOK, `{"type":"start"}`, 0},
		{"bad rate", "/verify?rate=fast", nil, http.StatusBadRequest, "rate", 0},
		{"negative rate", "/verify?rate=-1", nil, http.StatusBadRequest, "rate", 0},
		{"busy", "/verify", fmt.Errorf("%w: one at a time", admin.ErrBusy), http.StatusTooManyRequests, "one at a time", -1},
		{"nothing to check", "/verify", fmt.Errorf("%w: kafka only", admin.ErrUnavailable), http.StatusNotFound, "kafka only", -1},
		{"failed", "/verify", errors.New("state unreadable"), http.StatusInternalServerError, "state unreadable", -1},
		{"failed late", "/verify", errors.New("late: disk gone"), http.StatusOK, `{"error":"late: disk gone","type":"error"}`, -1},
	} {
		verr, rate = tc.err, 0
		code, body := get(t, h, http.MethodGet, tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) || rate != tc.rate {
			t.Errorf("%s: GET %s = %d %q (rate %d), want %d with %q (rate %d)", tc.name, tc.path, code, body, rate, tc.code, tc.body, tc.rate)
		}
	}
	// A daemon without a check (a collector) has no /verify.
	if code, body := get(t, newServer(t, admin.Config{}).Handler(), http.MethodGet, "/verify"); code != http.StatusNotFound || !strings.Contains(body, "processor") {
		t.Errorf("GET /verify without a check = %d %q, want 404 naming the processor", code, body)
	}
}
