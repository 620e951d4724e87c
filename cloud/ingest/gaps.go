package ingest

import (
	"sync"
	"time"
)

// gaps tracks, per device, which sequence numbers have arrived: hw is the
// high-water mark (every seq <= hw arrived) and above holds the ones that
// arrived beyond a hole. A hole means the broker or the network lost
// messages; the box is asked to replay from hw+1.
type gaps struct {
	mu      sync.Mutex
	devices map[string]*seqState
	// retryAfter spaces replay requests for one device.
	retryAfter time.Duration
	// grace is how long a hole may stay open before a replay is asked for
	// (0: at once). With a shared subscription another cloud process has the
	// messages this one misses, and stores them a moment later.
	grace time.Duration
}

type seqState struct {
	hw          uint64
	above       map[uint64]bool
	lastReplay  time.Time
	replayedFor uint64
	holeAt      uint64 // the hole at hw+1 first seen at holeSince
	holeSince   time.Time
}

func newGaps(retryAfter time.Duration) *gaps {
	return &gaps{devices: map[string]*seqState{}, retryAfter: retryAfter}
}

// known reports whether the device has state; load seeds it from storage.
func (g *gaps) known(device string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.devices[device]
	return ok
}

func (g *gaps) load(device string, hw uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.devices[device]; !ok {
		g.devices[device] = &seqState{hw: hw, above: map[uint64]bool{}}
	}
}

// see records seq and returns the new high-water mark, whether it moved, and
// the sequence number to replay from (0 when no replay is due).
func (g *gaps) see(device string, seq uint64, now time.Time) (hw uint64, moved bool, replayFrom uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.devices[device]
	if st == nil {
		st = &seqState{above: map[uint64]bool{}}
		g.devices[device] = st
	}
	old := st.hw
	if seq > st.hw {
		st.above[seq] = true
		for st.above[st.hw+1] {
			delete(st.above, st.hw+1)
			st.hw++
		}
	}
	if len(st.above) > 0 {
		if st.holeAt != st.hw+1 {
			st.holeAt, st.holeSince = st.hw+1, now
		}
		// A hole at hw+1. Ask again if nothing has closed it for a while,
		// or at once (after the grace) if it is a new hole.
		if now.Sub(st.holeSince) >= g.grace && (st.replayedFor != st.hw+1 || now.Sub(st.lastReplay) >= g.retryAfter) {
			st.replayedFor, st.lastReplay = st.hw+1, now
			replayFrom = st.hw + 1
		}
	}
	return st.hw, st.hw != old, replayFrom
}

// hole returns the first missing sequence number and the highest one seen
// beyond it; ok is false when nothing is missing.
func (g *gaps) hole(device string) (from, upTo uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.devices[device]
	if st == nil || len(st.above) == 0 {
		return 0, 0, false
	}
	for s := range st.above {
		upTo = max(upTo, s)
	}
	return st.hw + 1, upTo, true
}

// due lists the devices whose hole has been open for the grace and for
// which a replay is due, and notes the replay as asked for (see does the
// same for the device of each message; due catches holes after which
// nothing more arrives).
func (g *gaps) due(now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for d, st := range g.devices {
		if len(st.above) == 0 || st.holeAt != st.hw+1 || now.Sub(st.holeSince) < g.grace {
			continue
		}
		if st.replayedFor != st.hw+1 || now.Sub(st.lastReplay) >= g.retryAfter {
			st.replayedFor, st.lastReplay = st.hw+1, now
			out = append(out, d)
		}
	}
	return out
}
