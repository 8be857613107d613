package shard

import (
	"fmt"
	"slices"
	"testing"
)

func TestRankIsAPermutationAndStable(t *testing.T) {
	addrs := []string{"a:7357", "b:7357", "c:7357"}
	for i := range 100 {
		key := fmt.Sprintf("app/%d.log", i)
		r := Rank(key, addrs)
		got := slices.Clone(r)
		slices.Sort(got)
		if !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("Rank(%q) = %v, not a permutation", key, r)
		}
		if !slices.Equal(r, Rank(key, addrs)) {
			t.Fatalf("Rank(%q) differs between calls", key)
		}
		// The listing order does not matter.
		rev := []string{addrs[2], addrs[1], addrs[0]}
		rr := Rank(key, rev)
		for j := range r {
			if addrs[r[j]] != rev[rr[j]] {
				t.Fatalf("Rank(%q) depends on the order of the addresses: %v vs %v", key, r, rr)
			}
		}
	}
}

// TestSpreadAndMinimalMovement checks the two properties sharding relies on:
// keys spread about evenly, and adding a fourth processor moves only the
// keys that now rank it first (about a quarter), all of them to it.
func TestSpreadAndMinimalMovement(t *testing.T) {
	three := []string{"10.0.0.1:7357", "10.0.0.2:7357", "10.0.0.3:7357"}
	four := append(slices.Clone(three), "10.0.0.4:7357")
	const n = 30000
	count := make([]int, 4)
	moved := 0
	for i := range n {
		key := fmt.Sprintf("host%d/var/log/app%d.log", i%97, i)
		before := three[Rank(key, three)[0]]
		after := four[Rank(key, four)[0]]
		count[Rank(key, four)[0]]++
		if before != after {
			moved++
			if after != four[3] {
				t.Fatalf("%q moved from %s to %s, not to the new processor", key, before, after)
			}
		}
	}
	t.Logf("figures: %d keys over 4 processors: %v; adding the 4th moved %d (%.1f%%)", n, count, moved, 100*float64(moved)/n)
	for i, c := range count {
		if c < n/4*85/100 || c > n/4*115/100 {
			t.Errorf("processor %d got %d of %d keys; want within 15%% of %d", i, c, n, n/4)
		}
	}
	if moved < n/4*85/100 || moved > n/4*115/100 {
		t.Errorf("adding a processor moved %d of %d keys; want about %d", moved, n, n/4)
	}
}

func TestScoreSeparatesKeyFromAddr(t *testing.T) {
	if Score("ab", "c") == Score("a", "bc") {
		t.Fatal("Score does not separate key and address")
	}
}
