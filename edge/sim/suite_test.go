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

// TestSuiteLongSceneRepeatsEvents: a scene longer than one script block has
// the events of a suite scene in every block (a missing cover, occupations
// of the zones, a car standing on a cover), not just at its start, and its
// first block is not the whole 2-minute scene squeezed.
func TestSuiteLongSceneRepeatsEvents(t *testing.T) {
	o := SuiteOptions{Width: 640, FPS: 2, Duration: 15 * time.Minute}
	s := Suite(7, o)
	tr := s.Truth()
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	blocks := int(o.Duration.Seconds() / suiteBlock)
	gaps := make([]int, blocks)
	for _, g := range s.gaps {
		gaps[min(int(g.from/suiteBlock), blocks-1)]++
	}
	eps := make([]int, blocks)
	for _, e := range tr.Episodes {
		eps[min(int(e.From/suiteBlock), blocks-1)]++
	}
	stops := make([]int, blocks)
	for _, k := range s.cars {
		if k.hold > 0 {
			stops[min(int(k.tc/suiteBlock), blocks-1)]++
		}
	}
	for b := range blocks {
		if gaps[b] == 0 || eps[b] < 3 || stops[b] == 0 {
			t.Errorf("block %d (%.0f-%.0f s): %d missing covers, %d occupations, %d stopping cars; want each block scripted",
				b, float64(b)*suiteBlock, float64(b+1)*suiteBlock, gaps[b], eps[b], stops[b])
		}
	}
	if last := tr.Episodes[len(tr.Episodes)-1]; last.To > tr.Duration {
		t.Errorf("last episode ends at %.0f s, after the video (%.0f s)", last.To, tr.Duration)
	}
}

// TestShift: moving the picture (camera shake) repeats the edge pixel where
// the picture moved away from the border.
func TestShift(t *testing.T) {
	const w, h = 7, 5
	src := make([]byte, w*h*3)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, d := range [][2]int{{0, 0}, {2, 1}, {-3, -2}, {6, 0}, {-6, 4}, {9, -9}} {
		got := slices.Clone(src)
		shift(got, w, h, d[0], d[1])
		for y := range h {
			for x := range w {
				sx, sy := min(max(x-d[0], 0), w-1), min(max(y-d[1], 0), h-1)
				for c := range 3 {
					if g, want := got[(y*w+x)*3+c], src[(sy*w+sx)*3+c]; g != want {
						t.Fatalf("shift %v: pixel (%d,%d) channel %d = %d, want %d", d, x, y, c, g, want)
					}
				}
			}
		}
	}
}
