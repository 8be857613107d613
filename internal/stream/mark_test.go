package stream

import (
	"testing"

	"thunder/internal/digest"
)

func TestMarkAfterAndResume(t *testing.T) {
	p := []byte("a line\n")
	c := Chunk{Offset: 10, End: 17, Payload: p, Sum: digest.Checksum(p)}
	known := Mark{Offset: 10, Digest: 0x1234}
	if got, want := known.After(c), (Mark{Offset: 17, Digest: digest.Update(0x1234, p)}); got != want {
		t.Errorf("After = %+v, want %+v", got, want)
	}
	unknown := Mark{Offset: 10, Unknown: true}
	if got := unknown.After(c); got != (Mark{Offset: 17, Unknown: true}) {
		t.Errorf("After an unknown digest = %+v, want it still unknown at 17", got)
	}
	tests := []struct {
		name      string
		m, acked  Mark
		want      Mark
		wantMoved bool
	}{
		{"collector knows less", known, Mark{Offset: 5, Digest: 9}, known, false},
		{"collector knows the same", known, Mark{Offset: 10, Digest: 9}, known, false},
		{"collector knows more", known, Mark{Offset: 20, Digest: 9}, Mark{Offset: 20, Digest: 9}, true},
		{"more, without a digest", known, Mark{Offset: 20, Unknown: true}, Mark{Offset: 20, Unknown: true}, true},
		{"ours unknown, theirs known here", unknown, Mark{Offset: 10, Digest: 9}, Mark{Offset: 10, Digest: 9}, true},
		{"ours unknown, theirs known below", unknown, Mark{Offset: 5, Digest: 9}, unknown, false},
		{"both unknown", unknown, Mark{Offset: 10, Unknown: true}, unknown, false},
	}
	for _, tt := range tests {
		if got, moved := tt.m.Resume(tt.acked); got != tt.want || moved != tt.wantMoved {
			t.Errorf("%s: Resume = %+v, %v; want %+v, %v", tt.name, got, moved, tt.want, tt.wantMoved)
		}
	}
	if unknown.DigestPtr() != nil || *known.DigestPtr() != 0x1234 {
		t.Error("DigestPtr: want nil for an unknown digest, the digest otherwise")
	}
}
