package rtsp

import (
	"context"
	"sync"
)

// queue hands access units from the reading loop to the handler. push never
// blocks: rtspv2 drops the whole connection once its own packet queue passes
// 2000 packets, so a slow handler must cost frames, not the stream.
//
// When full it gives up non-keyframes first and keeps what it delivers
// decodable: after a non-keyframe is dropped the rest of that GOP is dropped
// too. A keyframe arriving while the handler is behind cuts the stale tail of
// the GOP before it out of the queue, so keyframes wait behind at most other
// keyframes; if the queue is still full the oldest GOP goes.
type queue struct {
	mu       sync.Mutex
	buf      []AccessUnit // ring
	head, n  int
	skipping bool // a non-keyframe was dropped; drop until the next keyframe
	ready    chan struct{}
}

func newQueue(size int) *queue {
	return &queue{buf: make([]AccessUnit, size), ready: make(chan struct{}, 1)}
}

func (q *queue) at(i int) *AccessUnit { return &q.buf[(q.head+i)%len(q.buf)] }

func (q *queue) popFront() {
	*q.at(0) = AccessUnit{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

func (q *queue) popBack() {
	*q.at(q.n - 1) = AccessUnit{}
	q.n--
}

// push enqueues au and returns how many units (au included) were dropped.
func (q *queue) push(au AccessUnit) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !au.Keyframe {
		if q.skipping || q.n == len(q.buf) {
			q.skipping = true
			return 1
		}
	} else {
		if q.skipping {
			for q.n > 0 && !q.at(q.n-1).Keyframe {
				q.popBack()
				dropped++
			}
			q.skipping = false
		}
		if q.n == len(q.buf) {
			if !q.at(q.n - 1).Keyframe {
				q.popBack()
				dropped++
			} else {
				q.popFront()
				dropped++
				for q.n > 0 && !q.at(0).Keyframe {
					q.popFront()
					dropped++
				}
			}
		}
	}
	*q.at(q.n) = au
	q.n++
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

// pop waits for the next unit; ok is false once ctx is done.
func (q *queue) pop(ctx context.Context) (au AccessUnit, ok bool) {
	for ctx.Err() == nil {
		q.mu.Lock()
		if q.n > 0 {
			au = *q.at(0)
			q.popFront()
			q.mu.Unlock()
			return au, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return AccessUnit{}, false
		}
	}
	return AccessUnit{}, false
}
