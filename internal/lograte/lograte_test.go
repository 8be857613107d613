package lograte

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestBurstThenInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(10*time.Second, 2)
		for i := range 2 {
			if ok, held := l.Allow(); !ok || held != 0 {
				t.Fatalf("line %d of the burst: Allow = %v, %d", i, ok, held)
			}
		}
		for range 5 {
			if ok, _ := l.Allow(); ok {
				t.Fatal("a line past the burst was let through at once")
			}
		}
		time.Sleep(10 * time.Second)
		if ok, held := l.Allow(); !ok || held != 5 {
			t.Fatalf("after the interval: Allow = %v, %d; want true, 5 held", ok, held)
		}
		if ok, _ := l.Allow(); ok {
			t.Fatal("a second line within the interval was let through")
		}
	})
}

func TestKeyedOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(time.Minute, 2)
		if ok, _ := k.Allow("a"); !ok {
			t.Fatal("the first line of a key was held back")
		}
		for range 3 {
			if ok, _ := k.Allow("a"); ok {
				t.Fatal("a repeat within the interval was let through")
			}
		}
		if ok, _ := k.Allow("b"); !ok {
			t.Fatal("another key was held back by the first")
		}
		time.Sleep(time.Minute)
		if ok, held := k.Allow("a"); !ok || held != 3 {
			t.Fatalf("after the interval: Allow = %v, %d; want true, 3 held", ok, held)
		}
		// A third key fills the memory: all are forgotten, none is lost.
		k.Allow("c")
		if ok, _ := k.Allow("a"); !ok {
			t.Fatal("a forgotten key was held back")
		}
	})
}
