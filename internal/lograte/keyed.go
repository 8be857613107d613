package lograte

import (
	"sync"
	"time"
)

// Keyed lets one line per key through each interval: the same failure
// repeating (a collector retrying with a wrong token) is logged when it
// starts and then once per interval with the count held back, without
// hiding other keys. It remembers at most a bounded number of keys; past
// that it forgets them all, so a flood of distinct keys costs a line each,
// never memory. It is safe for concurrent use.
type Keyed struct {
	every time.Duration
	max   int

	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	next time.Time // the next line of the key passes from then
	held int
}

// NewKeyed returns a Keyed letting a line per key through every interval,
// remembering at most maxKeys keys.
func NewKeyed(every time.Duration, maxKeys int) *Keyed {
	return &Keyed{every: every, max: maxKeys, keys: make(map[string]*keyState)}
}

// Allow reports whether a line of key may be logged now and, if so, how
// many lines of it were held back since the last one logged.
func (k *Keyed) Allow(key string) (ok bool, held int) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.keys[key]
	if st == nil {
		if len(k.keys) >= k.max {
			clear(k.keys)
		}
		k.keys[key] = &keyState{next: now.Add(k.every)}
		return true, 0
	}
	if now.Before(st.next) {
		st.held++
		return false, 0
	}
	held, st.held, st.next = st.held, 0, now.Add(k.every)
	return true, held
}
