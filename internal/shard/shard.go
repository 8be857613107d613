// Package shard spreads streams over processors by rendezvous (highest
// random weight) hashing: each (key, processor) pair gets a score and a key
// ranks the processors by it. Adding or removing a processor moves only the
// keys for which it ranks first, and a key's fallback order does not depend
// on the order in which the processors were listed.
//
// Invariant: a key's ranking depends only on the key and the set of
// addresses, not on their order, the process or the release ([Score] is a
// fixed hash), so every collector that lists the same processors sends a
// target name to the same one.
package shard

import "slices"

// Score is the weight of processor addr for key; the highest score ranks
// first. It must be the same on every collector and across releases, so it
// is FNV-1a with a fixed finaliser rather than hash/maphash (seeded per
// process).
func Score(key, addr string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	h *= prime // a zero byte between them: ("ab","c") and ("a","bc") differ
	for i := 0; i < len(addr); i++ {
		h = (h ^ uint64(addr[i])) * prime
	}
	return mix(h)
}

// mix is the splitmix64 finaliser: FNV alone leaves similar inputs with
// similar high bits, which would skew the ranking.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Rank returns the indexes of addrs in key's order of preference.
func Rank(key string, addrs []string) []int {
	order := make([]int, len(addrs))
	scores := make([]uint64, len(addrs))
	for i, a := range addrs {
		order[i], scores[i] = i, Score(key, a)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return a - b
	})
	return order
}
