package collector

import (
	"log/slog"
	"testing"
)

// TestTransitions checks the life cycle's table: every state is named, every
// state but new can end, and nothing leaves forgotten.
func TestTransitions(t *testing.T) {
	if len(transitions) != len(stateNames) {
		t.Fatalf("%d states in transitions, %d names", len(transitions), len(stateNames))
	}
	for from := range transitions {
		st := state(from)
		if canMove(st, stateNew) {
			t.Errorf("canMove(%s, new) = true, want false: new is only a start", st)
		}
		if ends := canMove(st, stateForgotten); ends != (st != stateNew && st != stateForgotten) {
			t.Errorf("canMove(%s, forgotten) = %v", st, ends)
		}
	}
	if len(transitions[stateForgotten]) != 0 {
		t.Errorf("transitions from forgotten: %v, want none", transitions[stateForgotten])
	}
}

// TestMoveToRefusesIllegal checks that a transition the life cycle does not
// have panics (a broken invariant), and that staying put is no transition.
func TestMoveToRefusesIllegal(t *testing.T) {
	c := &Collector{log: slog.New(slog.DiscardHandler)}
	s := &source{state: stateRotated}
	c.moveTo(s, stateRotated, "stays")
	defer func() {
		if recover() == nil {
			t.Errorf("moveTo(rotated → live) did not panic")
		}
		if s.state != stateRotated {
			t.Errorf("state after a refused transition = %s, want rotated", s.state)
		}
	}()
	c.moveTo(s, stateLive, "illegal")
}
