package sim

import (
	"bytes"
	"image"
	"slices"
	"testing"
	"time"
)

var shortSuite = SuiteOptions{Width: 640, Duration: 90 * time.Second}

func TestSuiteDeterministic(t *testing.T) {
	for _, seed := range []int64{1, 3} {
		a, b := Suite(seed, shortSuite), Suite(seed, shortSuite)
		ta, tb := a.Truth(), b.Truth()
		if err := ta.Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !slices.Equal(ta.Timeline, tb.Timeline) || !slices.Equal(ta.Episodes, tb.Episodes) {
			t.Fatalf("seed %d: two builds give different truths", seed)
		}
		fa, fb := make([]byte, a.Width*a.Height*3), make([]byte, a.Width*a.Height*3)
		for _, i := range []int{0, 333, 501} {
			a.Frame(i, fa)
			b.Frame(i, fb)
			if !bytes.Equal(fa, fb) {
				t.Fatalf("seed %d frame %d differs between builds", seed, i)
			}
		}
	}
	if slices.Equal(Suite(1, shortSuite).Truth().Timeline, Suite(2, shortSuite).Truth().Timeline) {
		t.Error("seeds 1 and 2 give the same timeline")
	}
}

func TestSuiteConditionsCoverAll(t *testing.T) {
	seen := map[string]bool{}
	for seed := int64(1); seed <= 20; seed++ {
		c := SuiteConditions(seed)
		seen[c.Light] = true
		seen["shadows"] = seen["shadows"] || c.MovingShadows
		seen["rain"] = seen["rain"] || c.Rain
		seen["shake"] = seen["shake"] || c.Shake
		seen["crf"] = seen["crf"] || c.CRF >= 30
		seen["night+rain"] = seen["night+rain"] || c.Light == LightNight && c.Rain
	}
	for _, want := range []string{LightSun, LightClouds, LightDusk, LightNight, "shadows", "rain", "shake", "crf", "night+rain"} {
		if !seen[want] {
			t.Errorf("seeds 1-20 never have %s", want)
		}
	}
}

// TestSuiteTruthMatchesPixels: every truth occupation is visible as changed
// pixels in its box while it lasts, and a missing cover's region changes
// against the same moment with the cover present.
func TestSuiteTruthMatchesPixels(t *testing.T) {
	for _, seed := range []int64{4, 6} {
		s := Suite(seed, shortSuite)
		tr := s.Truth()
		if len(tr.Episodes) == 0 || len(s.gaps) == 0 {
			t.Fatalf("seed %d: %d episodes, %d gaps; the script should have both", seed, len(tr.Episodes), len(s.gaps))
		}
		empty := s
		empty.props, empty.cars, empty.walkers, empty.gaps = nil, nil, nil, nil
		buf, ref := make([]byte, s.Width*s.Height*3), make([]byte, s.Width*s.Height*3)
		for _, e := range tr.Episodes {
			i := int((e.From + e.To) / 2 * float64(s.FPS))
			s.Frame(i, buf)
			empty.Frame(i, ref)
			box := image.Rect(e.Box[0], e.Box[1], e.Box[2], e.Box[3])
			if d := regionDiff(buf, ref, s.Width, box); d < 4 {
				t.Errorf("seed %d: %s %s in %s at %.0f s: box %v differs by %.1f from the empty street, want a visible object", seed, e.Kind, e.Rule, e.Zone, float64(i)/10, box, d)
			}
		}
		for _, iv := range tr.Timeline {
			if iv.State != StateMissing || iv.To-iv.From < 1 {
				continue
			}
			i := int((iv.From + 0.5) * float64(s.FPS))
			s.Frame(i, buf)
			empty.Frame(i, ref)
			for _, c := range s.Covers {
				if c.FacilityID == iv.FacilityID {
					if d := regionDiff(buf, ref, s.Width, c.Region); d < 10 {
						t.Errorf("seed %d: cover %s missing at %.1f s but its region differs by only %.1f", seed, c.FacilityID, float64(i)/10, d)
					}
				}
			}
		}
	}
}
