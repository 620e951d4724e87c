// Package clip owns evidence clips on the edge box: a per-camera ring of the
// compressed access units that reaches back to a keyframe at least a set
// time before the newest unit, and MP4 files cut from it around an event
// without re-encoding (H.264 as received, the index in front so that a
// browser can play the clip while it loads). It is pure Go: no cgo, nothing
// decoded.
package clip

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/edge/rtsp"
)

// ErrEmpty means the ring holds nothing at or before the clip's end.
var ErrEmpty = errors.New("clip: no video for that time")

// unit is one access unit in the ring.
type unit struct {
	data     []byte
	pts      time.Duration
	received time.Time
	session  uint64
	key      bool
}

// Ring keeps the recent compressed video of one camera. Add is called for
// every access unit from the camera goroutine; Clip and ClipLater may be
// called from any goroutine.
//
// The ring holds whole groups of pictures (a keyframe and the units up to the
// next one): it drops the oldest group once the next keyframe is at least
// keep older than the newest unit, and drops oldest groups at once whenever
// the payload would pass maxBytes, which is a hard bound (times are the
// units' Received). A non-keyframe that arrives when its keyframe is not in
// the ring (at the start, after a new session, after the bound dropped the
// current group) is skipped: it could not be decoded.
type Ring struct {
	keep     time.Duration
	maxBytes int
	// lateWait is how long ClipLater waits past its end time for a unit
	// received after it before it cuts the clip from what there is.
	lateWait time.Duration

	mu      sync.Mutex
	units   []unit // units[head:] are held, oldest first
	head    int
	keys    []int // indexes into units of the held keyframes; keys[0] == head
	bytes   int
	session uint64
	waitKey bool
	waiters []*waiter
	stats   Stats
}

// Stats describe a Ring's content and what it had to let go.
type Stats struct {
	Units, Keyframes int
	Bytes            int       // payload held (Annex-B bytes)
	Oldest, Newest   time.Time // Received of the oldest and newest unit held
	// Skipped counts non-keyframes that arrived without their keyframe.
	Skipped uint64
	// Squeezed counts groups of pictures dropped to stay under maxBytes
	// before keep had passed: when it grows, the ring holds less than keep.
	Squeezed uint64
}

// NewRing makes a ring that keeps at least keep of video before the newest
// unit, within maxBytes of payload.
func NewRing(keep time.Duration, maxBytes int) *Ring {
	return &Ring{keep: keep, maxBytes: maxBytes, lateWait: 2 * time.Second, waitKey: true}
}

// Add appends one access unit. The ring keeps au.AnnexB without copying it:
// the caller must not change it afterwards (edge/rtsp hands each unit its
// own buffer). Add does no parsing and, apart from the occasional growth of
// its slices, no allocation.
func (r *Ring) Add(au rtsp.AccessUnit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if au.Session != r.session {
		r.session, r.waitKey = au.Session, true
	}
	if !au.Keyframe && r.waitKey {
		r.stats.Skipped++
		r.notify(au.Received)
		return
	}
	r.waitKey = false
	if au.Keyframe {
		r.keys = append(r.keys, len(r.units))
	}
	r.units = append(r.units, unit{data: au.AnnexB, pts: au.PTS, received: au.Received, session: au.Session, key: au.Keyframe})
	r.bytes += len(au.AnnexB)

	cutoff := au.Received.Add(-r.keep)
	for _, w := range r.waiters {
		if w.from.Before(cutoff) {
			cutoff = w.from // a pending clip still needs it
		}
	}
	for len(r.keys) > 1 && !r.units[r.keys[1]].received.After(cutoff) {
		r.dropGOP()
	}
	for r.bytes > r.maxBytes && len(r.keys) > 0 {
		if r.dropGOP() {
			// The group being received went: its remaining units are useless.
			r.waitKey = true
		}
		r.stats.Squeezed++
	}
	r.compact()
	r.notify(au.Received)
}

// notify wakes the pending clips whose end a unit received at t has passed.
func (r *Ring) notify(t time.Time) {
	for _, w := range r.waiters {
		if !w.fired && t.After(w.to) {
			w.fired = true
			close(w.ready)
		}
	}
}

// dropGOP drops the oldest group of pictures and reports whether it was the
// last one.
func (r *Ring) dropGOP() (last bool) {
	end := len(r.units)
	if len(r.keys) > 1 {
		end = r.keys[1]
	}
	for i := r.head; i < end; i++ {
		r.bytes -= len(r.units[i].data)
		r.units[i] = unit{} // let the buffer go
	}
	r.head = end
	r.keys = r.keys[1:]
	return len(r.keys) == 0
}

// compact moves the held units to the front once the dropped ones dominate,
// so that the slices stay about twice the size of what is held.
func (r *Ring) compact() {
	if r.head < 64 || r.head < len(r.units)/2 {
		return
	}
	n := copy(r.units, r.units[r.head:])
	clear(r.units[n:])
	r.units = r.units[:n]
	for i := range r.keys {
		r.keys[i] -= r.head
	}
	r.keys = append(r.keys[:0:0], r.keys...) // drop the consumed front
	r.head = 0
}

// Stats returns a snapshot of the ring's content and counters.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Units, st.Keyframes, st.Bytes = len(r.units)-r.head, len(r.keys), r.bytes
	if st.Units > 0 {
		st.Oldest, st.Newest = r.units[r.head].received, r.units[len(r.units)-1].received
	}
	return st
}

// ClipResult is a finished clip.
type ClipResult struct {
	MP4 []byte
	// Start and End are the Received times of the first unit (a keyframe) and
	// the last unit in the clip; Duration is the clip's media time.
	Start, End time.Time
	Duration   time.Duration
	Frames     int
	// Truncated means the ring no longer reached back to a keyframe at or
	// before from (or the camera's session began after it): the clip starts
	// later than asked.
	Truncated bool
	Err       error
}

// Clip returns an MP4 of the camera's video from the last keyframe at or
// before from to the last unit at or before to (the newest unit if to is in
// the future). A clip holds one session: if the stream restarted in between,
// it starts at the first keyframe of the session that was live at to. If the
// ring no longer reaches back to from, the clip starts at its oldest
// keyframe of that session.
func (r *Ring) Clip(from, to time.Time) ([]byte, error) {
	res := r.clip(from, to)
	return res.MP4, res.Err
}

func (r *Ring) clip(from, to time.Time) ClipResult {
	r.mu.Lock()
	units, truncated, err := r.cut(from, to)
	r.mu.Unlock()
	return mux(units, truncated, err)
}

// mux makes the clip of units cut from the ring (outside the lock).
func mux(units []unit, truncated bool, err error) ClipResult {
	if err != nil {
		return ClipResult{Err: err}
	}
	mp4, dur, frames, err := muxMP4(units)
	if err != nil {
		return ClipResult{Err: err}
	}
	return ClipResult{
		MP4:       mp4,
		Start:     units[0].received,
		End:       units[len(units)-1].received,
		Duration:  dur,
		Frames:    frames,
		Truncated: truncated,
	}
}

// cut copies out the units of a clip; r.mu must be held. The copies share
// the units' (immutable) data, so muxing can go on without the lock.
func (r *Ring) cut(from, to time.Time) ([]unit, bool, error) {
	if to.Before(from) {
		return nil, false, errors.New("clip: end before start")
	}
	held := r.units[r.head:]
	end := r.head + sort.Search(len(held), func(i int) bool { return held[i].received.After(to) })
	if end == r.head {
		return nil, false, ErrEmpty
	}
	session := r.units[end-1].session
	start, found := -1, false
	for i := len(r.keys) - 1; i >= 0; i-- {
		k := r.keys[i]
		if k >= end {
			continue
		}
		if r.units[k].session != session {
			break
		}
		start = k
		if !r.units[k].received.After(from) {
			found = true
			break
		}
	}
	if start < 0 {
		return nil, false, ErrEmpty // cannot happen: every session starts with a keyframe
	}
	return append([]unit(nil), r.units[start:end]...), !found, nil
}

type waiter struct {
	from, to time.Time
	ready    chan struct{}
	fired    bool
}

// ClipLater returns a channel that delivers the clip from..to once to has
// passed: when the ring gets a unit received after to, or a couple of seconds
// after to by the wall clock if the camera went quiet (the clip then ends
// with the last unit there is). Until then the ring keeps what the clip
// needs even past its keep time (but never past maxBytes). If ctx ends
// first, the result carries ctx's error.
func (r *Ring) ClipLater(ctx context.Context, from, to time.Time) <-chan ClipResult {
	out := make(chan ClipResult, 1)
	w := &waiter{from: from, to: to, ready: make(chan struct{})}
	r.mu.Lock()
	if n := len(r.units); n > r.head && r.units[n-1].received.After(to) {
		w.fired = true
		close(w.ready)
	}
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()

	go func() {
		timer := time.NewTimer(time.Until(to) + r.lateWait)
		defer timer.Stop()
		select {
		case <-w.ready:
		case <-timer.C:
		case <-ctx.Done():
			r.unpin(w)
			out <- ClipResult{Err: ctx.Err()}
			return
		}
		r.mu.Lock()
		r.removeWaiter(w)
		units, truncated, err := r.cut(from, to)
		r.mu.Unlock()
		out <- mux(units, truncated, err)
	}()
	return out
}

func (r *Ring) unpin(w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeWaiter(w)
}

func (r *Ring) removeWaiter(w *waiter) {
	for i, x := range r.waiters {
		if x == w {
			r.waiters = append(r.waiters[:i], r.waiters[i+1:]...)
			return
		}
	}
}
