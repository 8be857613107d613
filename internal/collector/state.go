package collector

import "fmt"

// state is where a source is in its file's life cycle. The Run loop alone
// changes it, only through moveTo, which checks the transition against
// transitions and logs it at debug. The transitions, and what makes them:
//
//	new       → live (a new file), restored (a record of the offsets DB)
//	restored  → live, rotated, idle (found by a scan), forgotten (not found)
//	live      → rotated (renamed aside), idle (closed at MaxOpenFiles),
//	            left, outside, forgotten (truncated, or its inode reused)
//	idle      → live, rotated (reopened), left, forgotten
//	rotated   → left (deleted by another, or grown while deleted), outside,
//	            forgotten (deleted)
//	left      → live, rotated, idle (found at another path), outside,
//	            forgotten (finished)
//	outside   → live, rotated, idle (found after all), forgotten (finished)
//
// Every state but new has forgotten for a file whose inode turns out to
// hold another stream (retire); forgotten is the end.
type state uint8

const (
	// stateNew is a source just made, not yet placed.
	stateNew state = iota
	// stateRestored is a source loaded from the offsets DB and not yet
	// found by a scan; it has no descriptor.
	stateRestored
	// stateLive is a file at its path in the source dir, read as it grows.
	stateLive
	// stateIdle is a file at its path, fully delivered, whose descriptor
	// was closed to stay under MaxOpenFiles (or never opened since a
	// restart); an event or a scan that finds it changed reopens it.
	stateIdle
	// stateRotated is a file the collector renamed aside (rec.Rotated): read
	// until fully delivered, then deleted once no writer can append.
	stateRotated
	// stateLeft is a file no longer at its path (deleted, or moved out of or
	// within the source dir): read to its end through its descriptor. A
	// rename within the dir is found by inode at the next event or scan.
	stateLeft
	// stateOutside is a file that left its path and that a full scan did
	// not find in the source dir: forgotten once fully delivered.
	stateOutside
	// stateForgotten is a source that ended: its record is deleted at the
	// next save, and nothing refers to it any more.
	stateForgotten
)

var stateNames = [...]string{"new", "restored", "live", "idle", "rotated", "left", "outside", "forgotten"}

func (st state) String() string {
	if int(st) < len(stateNames) {
		return stateNames[st]
	}
	return fmt.Sprintf("state(%d)", uint8(st))
}

// transitions lists, for each state, the states it may move to.
var transitions = [...][]state{
	stateNew:       {stateLive, stateRestored},
	stateRestored:  {stateLive, stateIdle, stateRotated, stateForgotten},
	stateLive:      {stateIdle, stateRotated, stateLeft, stateOutside, stateForgotten},
	stateIdle:      {stateLive, stateRotated, stateLeft, stateForgotten},
	stateRotated:   {stateLeft, stateOutside, stateForgotten},
	stateLeft:      {stateLive, stateIdle, stateRotated, stateOutside, stateForgotten},
	stateOutside:   {stateLive, stateIdle, stateRotated, stateForgotten},
	stateForgotten: nil,
}

// canMove reports whether from → to is a transition of the life cycle.
func canMove(from, to state) bool {
	if int(from) >= len(transitions) {
		return false
	}
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// offPath reports whether no path in the source dir is known to lead to
// the file: it is finished through its descriptor.
func (st state) offPath() bool { return st == stateLeft || st == stateOutside }

// finishing reports whether writers no longer open the file by its name
// (rotated aside, deleted or moved): it is read to its end, an unterminated
// last line flushed after FlushIdle, and then it ends.
func (st state) finishing() bool { return st == stateRotated || st.offPath() }

// moveTo moves s to state to, for the reason why. Staying in a state is no
// transition; a transition the life cycle does not have is a broken
// invariant.
func (c *Collector) moveTo(s *source, to state, why string) {
	from := s.state
	if from == to {
		return
	}
	if !canMove(from, to) {
		panic(fmt.Sprintf("collector: stream %s (%s): no transition %s → %s (%s)", s.rec.ID, s.rec.Path, from, to, why))
	}
	s.state = to
	c.log.Debug("file state", "path", s.rec.Path, "name", s.rec.Name, "stream", s.rec.ID, "from", from.String(), "to", to.String(), "why", why)
}
