package scenes

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/edge/sim"
)

// TestShortSuiteScene runs the whole path (render, encode, decode, cover
// monitor with the shipped classifier, occupancy detector, scoring) on one
// short scene (seed 6: dusk with headlights) and checks that the stolen
// cover is found without a false report, and that the occupations are found
// without a false one. The full suite is `gridwatch-edge eval scenes`, not a
// test.
func TestShortSuiteScene(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (hack/install-deps.sh installs it)")
	}
	c, err := coverclass.Load("../../models/cover-state/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	const seed = 6 // dusk with headlights, steady camera
	o := Options{Scene: sim.SuiteOptions{Width: 640, Duration: 90 * time.Second}, Classifier: cover.FromCoverclass(c), Dir: t.TempDir()}
	run, err := RunSeed(context.Background(), seed, o)
	if err != nil {
		t.Fatal(err)
	}
	s := Evaluate(run)
	t.Logf("covers %d/%d false %d; occupation %d/%d, %d reports; latencies %v %v",
		s.CoverFound, s.CoverEpisodes, s.CoverFalse, s.OccFound, s.OccEpisodes, s.OccReports, s.CoverLatencies, s.OccLatencies)
	if s.CoverEpisodes == 0 || s.OccEpisodes == 0 {
		t.Fatalf("the scene scripts %d missing covers and %d occupations; want some of each", s.CoverEpisodes, s.OccEpisodes)
	}
	if s.CoverRecall() < 1 || s.CoverFalse > 0 {
		t.Errorf("cover recall %.2f with %d false reports, want 1 and 0", s.CoverRecall(), s.CoverFalse)
	}
	// At 90 s the script's last stay may end too close to the end to be
	// reported; every report must be right, and at most one stay missed.
	if s.OccCorrect < s.OccReports || s.OccFound < s.OccEpisodes-1 {
		t.Errorf("occupation: %d of %d reports right, %d of %d stays found; want all right and at most one missed",
			s.OccCorrect, s.OccReports, s.OccFound, s.OccEpisodes)
	}
}
