package scenes

import (
	"image"
	"math"
	"slices"

	"github.com/gridwatch/gridwatch/edge/sim"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// How reports are matched with the truth.
const (
	// coverEarly and coverLate bound a matching missing-cover report around
	// a truth episode: a report cannot come before the hole is visible (a
	// second allows for rounding to keyframes), and may come a few checks
	// after it ends (confirmation lags).
	coverEarly = 1.0
	coverLate  = 6.0
	// occLate is how long after an occupation's end its report may still
	// overlap it (the detector's grace before it ends an episode).
	occLate = 8.0
	// occBoxShare is the share of a reported box that must lie on the
	// truth's box: the report points at the thing that stayed.
	occBoxShare = 0.3
)

// Score is one scene's (or a suite's, summed) result.
type Score struct {
	Seeds      []int64
	Conditions *sim.Conditions `json:",omitempty"`
	Hours      float64         // simulated camera time

	CoverEpisodes    int // truth missing-cover episodes on covers light enough to judge
	CoverFound       int // ... of them reported
	DarkEpisodes     int // missing episodes on dark covers (night, no street light): not counted in recall
	DarkFound        int
	CoverFalse       int // new missing reports matching no truth missing episode
	CoverDuplicate   int // further new reports within an episode already reported
	OccEpisodes      int // truth occupation episodes
	OccFound         int // ... matched by a report
	OccReports       int // reported occupation episodes
	OccCorrect       int // ... matched to a truth episode
	CoverLatencies   []float64
	OccLatencies     []float64
	RenderS, DetectS float64
}

// CoverRecall is found / truth missing episodes (1 when there are none).
func (s Score) CoverRecall() float64 { return ratio(s.CoverFound, s.CoverEpisodes) }

// FalsePerCameraDay extrapolates false cover reports to 24 h of one camera.
func (s Score) FalsePerCameraDay() float64 {
	if s.Hours == 0 {
		return 0
	}
	return float64(s.CoverFalse) / s.Hours * 24
}

// OccPrecision, OccRecall and OccF1 score the occupation episodes.
func (s Score) OccPrecision() float64 { return ratio(s.OccCorrect, s.OccReports) }
func (s Score) OccRecall() float64    { return ratio(s.OccFound, s.OccEpisodes) }
func (s Score) OccF1() float64 {
	p, r := s.OccPrecision(), s.OccRecall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

// Latencies are the cover and occupation latencies together.
func (s Score) Latencies() []float64 {
	return append(append([]float64(nil), s.CoverLatencies...), s.OccLatencies...)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// Quantile is the q-quantile of v (linear between ranks), NaN if empty.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Add sums b into s.
func (s *Score) Add(b Score) {
	s.Seeds = append(s.Seeds, b.Seeds...)
	s.Hours += b.Hours
	s.CoverEpisodes += b.CoverEpisodes
	s.CoverFound += b.CoverFound
	s.DarkEpisodes += b.DarkEpisodes
	s.DarkFound += b.DarkFound
	s.CoverFalse += b.CoverFalse
	s.CoverDuplicate += b.CoverDuplicate
	s.OccEpisodes += b.OccEpisodes
	s.OccFound += b.OccFound
	s.OccReports += b.OccReports
	s.OccCorrect += b.OccCorrect
	s.CoverLatencies = append(s.CoverLatencies, b.CoverLatencies...)
	s.OccLatencies = append(s.OccLatencies, b.OccLatencies...)
	s.RenderS += b.RenderS
	s.DetectS += b.DetectS
}

// missingEpisode is a stretch of a cover's timeline that is not present
// and contains a missing interval: a hole, perhaps with cars over it.
type missingEpisode struct {
	facility      string
	visible, end  float64 // first seen missing; end of the stretch
	dark, matched bool
}

func missingEpisodes(t sim.Truth) []*missingEpisode {
	var out []*missingEpisode
	for _, c := range t.Covers {
		dark := slices.Contains(t.DarkCovers, c.FacilityID)
		var cur *missingEpisode
		for _, iv := range t.Intervals(c.FacilityID) {
			switch {
			case iv.State == sim.StatePresent:
				cur = nil
			case cur == nil && iv.State == sim.StateMissing:
				cur = &missingEpisode{facility: c.FacilityID, visible: iv.From, end: iv.To, dark: dark}
				out = append(out, cur)
			case cur != nil:
				cur.end = iv.To
			}
		}
	}
	return out
}

// Evaluate scores one run against its truth. Cover: every new report of a
// cover is matched to a truth missing episode of that cover if it falls
// between coverEarly before the hole is visible and coverLate after the
// episode ends; unmatched ones are false reports. Occupation: reported and
// truth episodes are matched one to one, same zone, overlapping in time,
// not reported before the truth episode began, with at least occBoxShare
// of the reported box on the truth box.
func Evaluate(run Run) Score {
	t := run.Truth
	s := Score{Seeds: []int64{t.Seed}, Hours: t.Duration / 3600, RenderS: run.Render.Seconds(), DetectS: run.Detect.Seconds()}
	s.Conditions = t.Conditions

	eps := missingEpisodes(t)
	for _, e := range eps {
		if e.dark {
			s.DarkEpisodes++
		} else {
			s.CoverEpisodes++
		}
	}
	for _, r := range run.Covers {
		if r.Phase != wire.PhaseNew {
			continue
		}
		var hit *missingEpisode
		for _, e := range eps {
			if e.facility == r.FacilityID && r.At >= e.visible-coverEarly && r.At <= e.end+coverLate {
				hit = e
				break
			}
		}
		switch {
		case hit == nil:
			s.CoverFalse++
		case hit.matched:
			s.CoverDuplicate++
		default:
			hit.matched = true
			if hit.dark {
				s.DarkFound++
			} else {
				s.CoverFound++
				s.CoverLatencies = append(s.CoverLatencies, math.Max(0, r.At-hit.visible))
			}
		}
	}

	// Occupation: one reported episode per id, from its new report to its
	// end (or the end of the video).
	type reported struct {
		zone      string
		from, to  float64
		box       image.Rectangle
		truth     int
		hasReport bool
	}
	var reps []*reported
	byID := map[string]*reported{}
	for _, r := range run.Occupations {
		p := byID[r.ID]
		if p == nil {
			p = &reported{zone: r.Zone, from: r.At, to: t.Duration, box: r.Box, truth: -1}
			byID[r.ID] = p
			reps = append(reps, p)
		}
		if r.Phase == "end" {
			p.to = r.At
		} else {
			p.box = p.box.Union(r.Box)
		}
	}
	dwell := map[string]float64{}
	for _, z := range t.Zones {
		dwell[z.ID] = z.Dwell
	}
	s.OccEpisodes, s.OccReports = len(t.Episodes), len(reps)
	used := make([]bool, len(t.Episodes))
	for _, p := range reps {
		best, bestOverlap := -1, 0.0
		for i, e := range t.Episodes {
			if used[i] || e.Zone != p.zone {
				continue
			}
			if p.from < e.From {
				// Reported before the thing was there: the report is
				// about something else (in seeds 22, 28 and 30 the ghost
				// of something in the first frame, reported from 10 s and
				// never ended), and the thing, arriving later within its
				// extent, was never reported on its own.
				continue
			}
			ov := math.Min(p.to, e.To+occLate) - math.Max(p.from, e.From)
			tb := image.Rect(e.Box[0], e.Box[1], e.Box[2], e.Box[3])
			in := p.box.Intersect(tb)
			share := 0.0
			if a := p.box.Dx() * p.box.Dy(); a > 0 {
				share = float64(in.Dx()*in.Dy()) / float64(a)
			}
			if ov > 0 && share >= occBoxShare && ov > bestOverlap {
				best, bestOverlap = i, ov
			}
		}
		if best < 0 {
			continue
		}
		used[best] = true
		s.OccCorrect++
		s.OccFound++
		e := t.Episodes[best]
		s.OccLatencies = append(s.OccLatencies, math.Max(0, p.from-(e.From+dwell[e.Zone])))
	}
	return s
}
