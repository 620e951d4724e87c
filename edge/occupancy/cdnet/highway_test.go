package cdnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/occupancy/background"
	"github.com/gridwatch/gridwatch/edge/occupancy/cdnet"
)

// TestHighway runs the background model over the real CDnet 2014
// baseline/highway sequence and guards its F-measure against regressions.
// To stay fast it stops after frame 1000 and scores 470-1000; `gridwatch-edge
// eval cdnet` scores the whole temporal ROI (470-1700).
func TestHighway(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 1000 real frames")
	}
	dir, err := cdnet.FindShared("cdnet-highway")
	if err != nil {
		t.Fatalf("the CDnet highway sequence is needed beside the repository: %v", err)
	}
	seq, err := cdnet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := cdnet.Run(context.Background(), seq, background.New(seq.W, seq.H, background.Options{}), cdnet.RunOptions{To: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("frames %d-%d: precision %.4f recall %.4f F %.4f (%.1f ms/frame, %v in all)",
		seq.First, 1000, res.Precision(), res.Recall(), res.F(), res.MsPerFrame(), time.Since(start).Round(time.Millisecond))
	const measured = 0.9606 // F on frames 470-1000 when this guard was set
	if f := res.F(); f < measured-0.01 {
		t.Errorf("F-measure %.4f fell below the guard %.4f (measured %.4f − 0.01)", f, measured-0.01, measured)
	}
}
