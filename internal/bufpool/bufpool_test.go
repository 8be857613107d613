package bufpool_test

import (
	"testing"

	"thunder/internal/bufpool"
)

func TestGetClass(t *testing.T) {
	p := bufpool.New(4096, 5000_000)
	for _, tc := range []struct{ n, want int }{
		{0, 4096}, {1, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20},
		{1<<20 + 1, 2 << 20}, {4<<20 + 1, 5000_000}, {5000_000, 5000_000}, {5000_001, 5000_001},
	} {
		b := p.Get(tc.n)
		if len(*b) != 0 || cap(*b) != tc.want {
			t.Errorf("Get(%d) = len %d cap %d, want len 0 cap %d", tc.n, len(*b), cap(*b), tc.want)
		}
		p.Put(b)
	}
}

func TestPutForeign(t *testing.T) {
	p := bufpool.New(4096, 1<<20)
	odd := make([]byte, 0, 5000)
	p.Put(&odd) // not a class: dropped
	p.Put(nil)
	if b := p.Get(4097); cap(*b) != 8192 {
		t.Errorf("Get(4097) after Put of cap 5000 = cap %d, want 8192", cap(*b))
	}
}
