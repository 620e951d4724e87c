// Package cover watches registered manhole covers in a fixed camera's
// keyframes. Each cover is checked on every keyframe handed to it (on a
// timer, not only when something moves, because a missing cover does not
// move) against two witnesses: its enrolled reference look, and a
// single-crop classifier that knows what an open shaft looks like, so a
// cover first seen already open is caught and never enrolled as "normal".
// A change of state is reported only after Confirm consecutive checks agree.
package cover

import (
	"fmt"
	"image"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Spec is one cover to watch.
type Spec struct {
	FacilityID string
	Region     image.Rectangle
}

// Observation is one check of one cover.
type Observation struct {
	State      string  // a wire.Cover* state
	Confidence float64 // 0-1
	NCC        float64 // correlation with the reference look
	Dark       float64 // share of the region much darker than the reference
	Open       float64 // the classifier's probability of an open shaft (-1: no classifier)
}

// Change is a confirmed change of a cover's state, the start or end of an
// event: new when a hazard (missing) is confirmed, end when the cover is
// confirmed present again.
type Change struct {
	FacilityID string
	EventID    string
	Phase      wire.Phase
	State      string
	Confidence float64
	At         time.Time
}

// Classifier gives the probability that the cover in box of a BGR frame is
// open or missing (edge/coverclass behind an adapter).
type Classifier func(frame gocv.Mat, box image.Rectangle) (float64, error)

// Monitor checks the covers of one camera.
type Monitor struct {
	camera   string
	confirm  int
	covers   []*watched
	classify Classifier
}

// WithClassifier adds the single-crop classifier as a second witness.
func (m *Monitor) WithClassifier(c Classifier) *Monitor {
	m.classify = c
	return m
}

type watched struct {
	Spec
	ref      gocv.Mat // enrolled look: grey, normalised size; valid when enrolled
	refMean  float64
	enrolled bool
	stable   string // confirmed state
	cand     string // candidate state and how many checks agreed
	candN    int
	candConf float64
	event    string // open event id, "" if none
	last     Observation
}

// size all crops are normalised to before comparing.
var size = image.Pt(64, 32)

// New makes a monitor; covers are enrolled from the first frame checked
// unless Enrol is called first.
func New(camera string, confirm int, specs []Spec) *Monitor {
	m := &Monitor{camera: camera, confirm: max(confirm, 1)}
	for _, s := range specs {
		m.covers = append(m.covers, &watched{Spec: s, stable: wire.CoverPresent})
	}
	return m
}

// Close frees the reference images.
func (m *Monitor) Close() {
	for _, w := range m.covers {
		w.setRef(gocv.Mat{}, false)
	}
}

// setRef replaces the reference look (taking ownership of crop).
func (w *watched) setRef(crop gocv.Mat, ok bool) {
	if w.enrolled {
		w.ref.Close()
	}
	w.ref, w.enrolled, w.refMean = crop, ok, 0
	if ok {
		w.refMean = crop.Mean().Val1
	}
}

// Enrol takes each cover's reference look from frame (BGR), assuming every
// cover is in place in it.
func (m *Monitor) Enrol(frame gocv.Mat) error {
	for _, w := range m.covers {
		crop, err := normCrop(frame, w.Region)
		if err != nil {
			return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
		}
		w.setRef(crop, true)
	}
	return nil
}

// enrolIfClosed enrols covers without a reference whose crop the classifier
// calls closed; a cover that looks open is left unenrolled (and reported).
func (m *Monitor) enrolIfClosed(frame gocv.Mat) error {
	for _, w := range m.covers {
		if w.enrolled {
			continue
		}
		if m.classify != nil {
			p, err := m.classify(frame, w.Region)
			if err != nil {
				return fmt.Errorf("classify %s: %w", w.FacilityID, err)
			}
			if p >= closedBelow {
				continue
			}
		}
		crop, err := normCrop(frame, w.Region)
		if err != nil {
			return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
		}
		w.setRef(crop, true)
	}
	return nil
}

// Last returns the most recent observation of every cover, by facility id.
func (m *Monitor) Last() map[string]Observation {
	out := make(map[string]Observation, len(m.covers))
	for _, w := range m.covers {
		out[w.FacilityID] = w.last
	}
	return out
}

// States returns every cover's confirmed state, by facility id.
func (m *Monitor) States() map[string]string {
	out := make(map[string]string, len(m.covers))
	for _, w := range m.covers {
		out[w.FacilityID] = w.stable
	}
	return out
}

// Check observes every cover in a BGR keyframe taken at `at` and returns the
// confirmed changes.
func (m *Monitor) Check(frame gocv.Mat, at time.Time) ([]Change, error) {
	if err := m.enrolIfClosed(frame); err != nil {
		return nil, err
	}
	var changes []Change
	for _, w := range m.covers {
		obs, err := m.observe(frame, w)
		if err != nil {
			return changes, fmt.Errorf("check %s: %w", w.FacilityID, err)
		}
		w.last = obs
		if c, ok := m.step(w, obs, at); ok {
			changes = append(changes, c)
		}
	}
	return changes, nil
}

// step debounces observations into confirmed changes. Occluded and unknown
// neither open nor close an event: a car standing on a missing cover does not
// fix it, and darkness proves nothing.
func (m *Monitor) step(w *watched, obs Observation, at time.Time) (Change, bool) {
	if obs.State == wire.CoverOccluded || obs.State == wire.CoverUnknown {
		return Change{}, false
	}
	if obs.State == w.cand {
		w.candN++
		w.candConf = math.Min(w.candConf, obs.Confidence)
	} else {
		w.cand, w.candN, w.candConf = obs.State, 1, obs.Confidence
	}
	if w.candN < m.confirm || w.cand == w.stable {
		return Change{}, false
	}
	w.stable = w.cand
	c := Change{FacilityID: w.FacilityID, State: w.stable, Confidence: w.candConf, At: at}
	switch {
	case w.stable == wire.CoverPresent && w.event != "":
		c.Phase, c.EventID = wire.PhaseEnd, w.event
		w.event = ""
	case w.stable != wire.CoverPresent && w.event == "":
		w.event = fmt.Sprintf("%s-%s-%d", m.camera, w.FacilityID, at.Unix())
		c.Phase, c.EventID = wire.PhaseNew, w.event
	case w.stable != wire.CoverPresent:
		c.Phase, c.EventID = wire.PhaseUpdate, w.event
	default:
		return Change{}, false
	}
	return c, true
}

// Thresholds of the single-check decision.
const (
	presentNCC  = 0.45 // correlation with the reference above which the cover is there
	missingDark = 0.45 // share of dark pixels above which the shaft is open
	darkRatio   = 0.45 // "dark": below this share of the reference's mean brightness
	tooDark     = 18.0 // mean grey below which nothing can be said
	openAbove   = 0.8  // classifier probability that alone says "open"
	closedBelow = 0.45 // classifier probability below which a lid is taken as closed
)

func (m *Monitor) observe(frame gocv.Mat, w *watched) (Observation, error) {
	p := -1.0
	if m.classify != nil {
		var err error
		if p, err = m.classify(frame, w.Region); err != nil {
			return Observation{}, err
		}
	}
	if !w.enrolled {
		// First seen open: only the classifier can speak until the cover
		// is seen closed (then it is enrolled).
		switch {
		case p >= 0.5:
			return Observation{State: wire.CoverMissing, Confidence: p, Open: p}, nil
		case p >= 0 && p < closedBelow:
			return Observation{State: wire.CoverPresent, Confidence: 1 - p, Open: p}, nil
		}
		return Observation{State: wire.CoverUnknown, Confidence: 0.5, Open: p}, nil
	}
	crop, err := normCrop(frame, w.Region)
	if err != nil {
		return Observation{}, err
	}
	defer crop.Close()
	res := gocv.NewMat()
	defer res.Close()
	mask := gocv.NewMat()
	defer mask.Close()
	gocv.MatchTemplate(crop, w.ref, &res, gocv.TmCcoeffNormed, mask)
	ncc := float64(res.GetFloatAt(0, 0))
	if math.IsNaN(ncc) {
		ncc = 0 // a flat crop has no correlation
	}
	dark := gocv.NewMat()
	defer dark.Close()
	gocv.Threshold(crop, &dark, float32(w.refMean*darkRatio), 255, gocv.ThresholdBinaryInv)
	darkShare := float64(gocv.CountNonZero(dark)) / float64(size.X*size.Y)
	mean := crop.Mean().Val1
	o := Observation{NCC: ncc, Dark: darkShare, Open: p}
	switch {
	case ncc >= presentNCC:
		o.State, o.Confidence = wire.CoverPresent, clamp01(0.5+ncc/2)
	case darkShare >= missingDark && (p < 0 || p >= closedBelow):
		// Dark where the lid was, and the classifier (if any) does not
		// see a closed lid: an open shaft.
		o.State, o.Confidence = wire.CoverMissing, clamp01(0.5+darkShare/2)
		if p >= 0 {
			o.Confidence = (o.Confidence + p) / 2
		}
	case p >= openAbove:
		o.State, o.Confidence = wire.CoverMissing, p
	case mean < tooDark && w.refMean >= tooDark:
		o.State, o.Confidence = wire.CoverUnknown, 0.5
	default:
		o.State, o.Confidence = wire.CoverOccluded, clamp01(1-ncc)
	}
	return o, nil
}

func normCrop(frame gocv.Mat, r image.Rectangle) (gocv.Mat, error) {
	r = r.Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	if r.Dx() < 4 || r.Dy() < 4 {
		return gocv.Mat{}, fmt.Errorf("region %v lies outside the %dx%d frame", r, frame.Cols(), frame.Rows())
	}
	roi := frame.Region(r)
	defer roi.Close()
	grey := gocv.NewMat()
	defer grey.Close()
	if roi.Channels() == 3 {
		gocv.CvtColor(roi, &grey, gocv.ColorBGRToGray)
	} else {
		roi.CopyTo(&grey)
	}
	out := gocv.NewMat()
	gocv.Resize(grey, &out, size, 0, 0, gocv.InterpolationArea)
	return out, nil
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

// SetReference enrols one cover's look from img: either a picture of the
// cover alone, or a whole frame of this camera (then the region is cut out).
func (m *Monitor) SetReference(facilityID string, img gocv.Mat) error {
	for _, w := range m.covers {
		if w.FacilityID != facilityID {
			continue
		}
		r := image.Rect(0, 0, img.Cols(), img.Rows())
		if w.Region.In(r) && (img.Cols() > w.Region.Dx()*2 || img.Rows() > w.Region.Dy()*2) {
			r = w.Region
		}
		crop, err := normCrop(img, r)
		if err != nil {
			return fmt.Errorf("reference of %s: %w", facilityID, err)
		}
		w.setRef(crop, true)
		return nil
	}
	return fmt.Errorf("reference of %s: no such cover on camera %s", facilityID, m.camera)
}
