//go:build !unix

package collector

import "time"

// cpuTime is not known here: GOMAXPROCS is left alone.
func cpuTime() (time.Duration, bool) { return 0, false }
