//go:build darwin || freebsd

package target

import "golang.org/x/sys/unix"

// birthTime returns st's birth time in ns since the epoch; 0 where the file
// system keeps none (FreeBSD reports -1 seconds there).
func birthTime(st *unix.Stat_t) int64 { return max(st.Btim.Nano(), 0) }
