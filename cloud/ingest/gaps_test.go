package ingest

import (
	"testing"
	"time"
)

func TestGaps(t *testing.T) {
	t0 := time.Now()
	g := newGaps(10 * time.Second)
	steps := []struct {
		seq        uint64
		after      time.Duration
		hw         uint64
		replayFrom uint64
	}{
		{1, 0, 1, 0},
		{2, 0, 2, 0},
		{2, 0, 2, 0},                // duplicate: nothing changes
		{5, 0, 2, 3},                // 3 and 4 lost: replay from 3
		{6, time.Second, 2, 0},      // still waiting: don't ask again yet
		{7, 11 * time.Second, 2, 3}, // still missing after retryAfter: ask again
		{3, 12 * time.Second, 3, 4}, // 3 arrived, 4 still missing: a new hole, ask for 4
		{4, 12 * time.Second, 7, 0}, // hole closed: hw jumps over 5, 6, 7
		{8, 13 * time.Second, 8, 0},
	}
	for i, s := range steps {
		hw, _, from := g.see("box-1", s.seq, t0.Add(s.after))
		if hw != s.hw || from != s.replayFrom {
			t.Fatalf("step %d (seq %d): hw %d replay %d; want %d, %d", i, s.seq, hw, from, s.hw, s.replayFrom)
		}
	}
}

func TestGapsAfterRestart(t *testing.T) {
	g := newGaps(time.Second)
	g.load("box-1", 40) // seq 1-40 arrived before the cloud restarted
	if hw, _, from := g.see("box-1", 43, time.Now()); hw != 40 || from != 41 {
		t.Fatalf("hw %d replay %d; want 40, 41", hw, from)
	}
}
