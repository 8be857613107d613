package collector

import (
	"sort"
	"time"

	"thunder/internal/backoff"
)

// A refusal is a target name a processor refused (Error `name` with a
// handle, PROTOCOL.md §4, §7): typically something else is in the way in its
// target dir, such as a directory at the file's path. The files delivered as
// that name (the file and its rotations) are held: nothing of them is sent,
// none is rotated, none is deleted (they are not delivered), and other files
// go on. The name is retried with backoff, from RescanInterval up to
// refusedRetryMax, so that delivery resumes without a restart once the
// operator removed what is in the way. The refusal ends with the first Ack
// for one of its files. Owned by the Run loop.
type refusal struct {
	addr     string // the processor that refused it
	why      string // its message
	since    time.Time
	next     time.Time // next retry
	tries    int       // refusals in a row
	retrying bool      // its files are being sent again
}

// refusedRetryMax caps the backoff between retries of a refused name
// (unless RescanInterval is longer).
const refusedRetryMax = 5 * time.Minute

// held reports whether s must not be sent: its name is refused and not
// being retried.
func (c *Collector) held(s *source) bool {
	r := c.refused[s.rec.Name]
	return r != nil && !r.retrying
}

// refuse holds the files of s's name after l's processor refused it. It
// logs an error the first time only, not at every retry.
func (c *Collector) refuse(l *link, s *source, why string) {
	now := time.Now()
	r := c.refused[s.rec.Name]
	if r == nil {
		r = &refusal{since: now}
		c.refused[s.rec.Name] = r
	}
	r.addr, r.why, r.retrying = l.addr, why, false
	r.tries++
	wait := backoff.Policy{Min: c.cfg.RescanInterval, Max: max(refusedRetryMax, c.cfg.RescanInterval)}.Delay(r.tries)
	r.next = now.Add(wait)
	if r.tries == 1 {
		c.log.Error("processor refuses this file's name; holding the file and its rotations undelivered, retrying",
			"addr", l.addr, "path", s.rec.Path, "name", s.rec.Name, "err", why, "retry", wait)
	} else {
		c.log.Debug("file name still refused", "addr", l.addr, "name", s.rec.Name, "tries", r.tries, "retry", wait)
	}
}

// accepted ends the refusal of s's name, if any, once its processor
// acknowledged data of s.
func (c *Collector) accepted(l *link, s *source) {
	r := c.refused[s.rec.Name]
	if r == nil || !r.retrying {
		return
	}
	delete(c.refused, s.rec.Name)
	c.log.Info("refused file name accepted again; delivering", "addr", l.addr, "path", s.rec.Path, "name", s.rec.Name,
		"tries", r.tries, "refused_for", time.Since(r.since).Round(time.Second))
}

// refusedTick retries the refused names that are due, forgets those no file
// has any more and publishes the refused files. Run loop only.
func (c *Collector) refusedTick(now time.Time) {
	if len(c.refused) == 0 && !c.refusedShown {
		return
	}
	due := make(map[string]bool)
	for name, r := range c.refused {
		if !r.retrying && !now.Before(r.next) {
			r.retrying, due[name] = true, true
		}
	}
	files := make(map[string]int, len(c.refused))
	var list []RefusedFile
	for _, s := range c.byID {
		r := c.refused[s.rec.Name]
		if r == nil {
			continue
		}
		files[s.rec.Name]++
		if due[s.rec.Name] {
			c.wake(s)
		}
		if len(list) < MaxStatusStreams {
			list = append(list, RefusedFile{Name: s.rec.Name, Path: s.rec.Path, Addr: r.addr, Reason: r.why,
				Since: r.since, Tries: r.tries, Retrying: r.retrying, NextRetry: r.next})
		}
	}
	n := 0
	for name := range c.refused {
		if files[name] == 0 {
			delete(c.refused, name) // its files are gone
		}
		n += files[name]
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	c.refusedShown = n > 0
	c.statsMu.Lock()
	c.stats.RefusedFiles = n
	c.refusedList = list
	c.statsMu.Unlock()
}
