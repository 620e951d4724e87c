package ingest

import (
	"testing"
	"time"
)

// TestGapsGrace: with a shared subscription a hole is the other member's
// share until it has been open for the grace; due finds old holes even when
// nothing more arrives from the device.
func TestGapsGrace(t *testing.T) {
	t0 := time.Now()
	g := newGaps(10 * time.Second)
	g.grace = 2 * time.Second
	steps := []struct {
		seq        uint64
		after      time.Duration
		hw         uint64
		replayFrom uint64
	}{
		{1, 0, 1, 0},
		{3, 0, 1, 0},                      // 2 missing: not yet
		{4, time.Second, 1, 0},            // still within the grace
		{5, 2 * time.Second, 1, 2},        // the grace is over: ask
		{6, 3 * time.Second, 1, 0},        // asked: wait retryAfter
		{2, 3 * time.Second, 6, 0},        // closed
		{8, 4 * time.Second, 6, 0},        // a new hole at 7, new grace
		{9, 6*time.Second + 1, 6, 7},      // over
		{7, 6*time.Second + 2, 9, 0},      // closed
		{10, 6*time.Second + 3, 10, 0},    // in order
		{12, 7 * time.Second, 10, 0},      // a hole at 11 ...
		{13, 7*time.Second + 500, 10, 0},  // ... and then silence
		{14, 7*time.Second + 1000, 10, 0}, //
	}
	for i, s := range steps {
		hw, _, from := g.see("box-1", s.seq, t0.Add(s.after))
		if hw != s.hw || from != s.replayFrom {
			t.Fatalf("step %d (seq %d): hw %d replay %d; want %d, %d", i, s.seq, hw, from, s.hw, s.replayFrom)
		}
	}
	if d := g.due(t0.Add(8 * time.Second)); len(d) != 0 {
		t.Fatalf("due within the grace: %v", d)
	}
	if d := g.due(t0.Add(9 * time.Second)); len(d) != 1 || d[0] != "box-1" {
		t.Fatalf("due after the grace = %v, want box-1", d)
	}
	if d := g.due(t0.Add(10 * time.Second)); len(d) != 0 {
		t.Fatalf("due again before retryAfter: %v", d)
	}
	if from, upTo, ok := g.hole("box-1"); !ok || from != 11 || upTo != 14 {
		t.Fatalf("hole = %d..%d %v, want 11..14", from, upTo, ok)
	}
	if d := g.due(t0.Add(20 * time.Second)); len(d) != 1 {
		t.Fatalf("due after retryAfter = %v, want box-1 again", d)
	}
}
