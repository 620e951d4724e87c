package scenes

import (
	"image"
	"math"
	"testing"

	"github.com/gridwatch/gridwatch/edge/sim"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// truthFixture: one cover missing 20-50 s with a car over the hole at
// 30-32 s, one dark cover missing 60-80 s, one zone episode 40-100 s.
func truthFixture() sim.Truth {
	return sim.Truth{
		Seed: 7, Width: 960, Height: 540, FPS: 10, Duration: 120,
		Covers: []sim.Cover{{FacilityID: "A"}, {FacilityID: "B"}},
		Timeline: []sim.Interval{
			{FacilityID: "A", State: sim.StatePresent, From: 0, To: 20},
			{FacilityID: "A", State: sim.StateMissing, From: 20, To: 30},
			{FacilityID: "A", State: sim.StateOccluded, From: 30, To: 32},
			{FacilityID: "A", State: sim.StateMissing, From: 32, To: 50},
			{FacilityID: "A", State: sim.StatePresent, From: 50, To: 120},
			{FacilityID: "B", State: sim.StatePresent, From: 0, To: 60},
			{FacilityID: "B", State: sim.StateMissing, From: 60, To: 80},
			{FacilityID: "B", State: sim.StatePresent, From: 80, To: 120},
		},
		DarkCovers: []string{"B"},
		Zones:      []sim.Zone{{ID: "z", Rule: "no_vending", Polygon: [][2]int{{0, 0}, {100, 0}, {100, 100}}, Dwell: 10}},
		Episodes:   []sim.Episode{{Zone: "z", Rule: "no_vending", Kind: sim.KindStall, From: 40, To: 100, Box: [4]int{10, 10, 60, 60}}},
	}
}

func TestEvaluate(t *testing.T) {
	newCover := func(id string, at float64) CoverReport {
		return CoverReport{FacilityID: id, Phase: wire.PhaseNew, State: wire.CoverMissing, At: at}
	}
	occ := func(id, phase string, at float64, box image.Rectangle) OccupationReport {
		return OccupationReport{ID: id, Zone: "z", Phase: phase, At: at, Box: box}
	}
	onStall := image.Rect(20, 20, 50, 50)
	tests := []struct {
		name                          string
		covers                        []CoverReport
		occs                          []OccupationReport
		found, false_, dup, darkFound int
		occFound, occReports          int
		coverLat, occLat              float64
	}{
		{name: "nothing reported", occFound: 0},
		{name: "hole found 3 s after it shows, stall found at dwell+2 s",
			covers: []CoverReport{newCover("A", 23), {FacilityID: "A", Phase: wire.PhaseEnd, State: wire.CoverPresent, At: 53}},
			occs:   []OccupationReport{occ("e1", "new", 52, onStall), occ("e1", "end", 105, onStall)},
			found:  1, occFound: 1, occReports: 1, coverLat: 3, occLat: 2},
		{name: "report before the hole is visible is false", covers: []CoverReport{newCover("A", 15)}, false_: 1},
		{name: "report on the wrong cover is false", covers: []CoverReport{newCover("B", 25)}, false_: 1},
		{name: "report a few s after the episode still matches", covers: []CoverReport{newCover("A", 54)}, found: 1, coverLat: 34},
		{name: "second report in one episode is a duplicate", covers: []CoverReport{newCover("A", 23), newCover("A", 40)}, found: 1, dup: 1, coverLat: 3},
		{name: "dark cover found is counted apart", covers: []CoverReport{newCover("B", 63)}, darkFound: 1},
		{name: "occupation elsewhere in the picture does not match",
			occs: []OccupationReport{occ("e1", "new", 52, image.Rect(70, 70, 90, 90))}, occReports: 1},
		{name: "occupation before the stall arrived does not match",
			occs: []OccupationReport{occ("e1", "new", 5, onStall), occ("e1", "end", 30, onStall)}, occReports: 1},
		{name: "occupation reported before the stall arrived and lasting through it does not match",
			occs: []OccupationReport{occ("e1", "new", 20, onStall), occ("e1", "end", 105, onStall)}, occReports: 1},
		{name: "a split episode matches once",
			occs:     []OccupationReport{occ("e1", "new", 52, onStall), occ("e1", "end", 70, onStall), occ("e2", "new", 75, onStall)},
			occFound: 1, occReports: 2, occLat: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Evaluate(Run{Truth: truthFixture(), Covers: tc.covers, Occupations: tc.occs})
			if s.CoverEpisodes != 1 || s.DarkEpisodes != 1 || s.OccEpisodes != 1 {
				t.Fatalf("episodes: cover %d dark %d occupation %d, want 1 1 1", s.CoverEpisodes, s.DarkEpisodes, s.OccEpisodes)
			}
			if s.CoverFound != tc.found || s.CoverFalse != tc.false_ || s.CoverDuplicate != tc.dup || s.DarkFound != tc.darkFound {
				t.Errorf("covers found %d false %d dup %d dark %d, want %d %d %d %d",
					s.CoverFound, s.CoverFalse, s.CoverDuplicate, s.DarkFound, tc.found, tc.false_, tc.dup, tc.darkFound)
			}
			if s.OccFound != tc.occFound || s.OccReports != tc.occReports {
				t.Errorf("occupation found %d of %d reports, want %d of %d", s.OccFound, s.OccReports, tc.occFound, tc.occReports)
			}
			if tc.found > 0 && math.Abs(s.CoverLatencies[0]-tc.coverLat) > 1e-9 {
				t.Errorf("cover latency %v, want %v", s.CoverLatencies, tc.coverLat)
			}
			if tc.occFound > 0 && math.Abs(s.OccLatencies[0]-tc.occLat) > 1e-9 {
				t.Errorf("occupation latency %v, want %v", s.OccLatencies, tc.occLat)
			}
		})
	}
	// False reports extrapolate to a camera-day: 1 in 120 s is 720 a day.
	s := Evaluate(Run{Truth: truthFixture(), Covers: []CoverReport{newCover("A", 5)}})
	if got := s.FalsePerCameraDay(); math.Abs(got-720) > 1e-9 {
		t.Errorf("false per camera-day %v, want 720", got)
	}
}

func TestQuantile(t *testing.T) {
	v := []float64{4, 1, 3, 2}
	if got := Quantile(v, 0.5); got != 2.5 {
		t.Errorf("median %v, want 2.5", got)
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("median of nothing must be NaN")
	}
}
