package ingest

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// confirmer tells boxes how far the cloud has stored their messages, at most
// once per interval per box: a box keeps every message the broker
// acknowledged until it hears this, since a broker may drop a message after
// acknowledging it and only the box's copy can then be replayed.
type confirmer struct {
	every time.Duration
	mu    sync.Mutex
	marks map[string]uint64    // high-water marks not yet confirmed
	sent  map[string]time.Time // when each box was last confirmed
}

// due merges new high-water marks and returns those to confirm now.
func (c *confirmer) due(moved map[string]uint64, now time.Time) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, hw := range moved {
		c.marks[d] = max(c.marks[d], hw)
	}
	out := map[string]uint64{}
	for d, hw := range c.marks {
		if now.Sub(c.sent[d]) >= c.every {
			out[d] = hw
			c.sent[d] = now
			delete(c.marks, d)
		}
	}
	return out
}

// confirm sends the boxes whose marks moved how far their messages are
// stored. It is called after the marks are stored: every message at or below
// a device's high-water mark is in the database.
func (in *Ingest) confirm(moved map[string]uint64) {
	if in.ConfirmEvery < 0 || in.client == nil {
		return
	}
	now := time.Now()
	for device, hw := range in.confirms.due(moved, now) {
		cmd := wire.Command{V: wire.Version, ID: fmt.Sprintf("confirm-%s-%d-%d", device, hw, now.UnixMilli()),
			Cmd: wire.CmdConfirm, At: now.UTC(), UpTo: hw}
		b, _ := json.Marshal(cmd)
		in.confirmed.Add(1)
		// QoS 0: a lost confirmation only keeps copies a little longer; the next one covers it.
		in.client.Publish(wire.Topic(device, wire.KindCommand), 0, false, b)
	}
}
