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
	"slices"
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
	Ring       float64 // correlation of the surroundings with their usual look (1: not judged)
	Above      float64 // share of the surroundings just above the lid that changed (something standing on it)
	Below      float64 // ... just below it
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
	candGap  int    // checks in a row since the candidate was last seen that said nothing (occluded, unknown)
	event    string // open event id, "" if none
	last     Observation
	ring     []float32 // the surroundings' last unobstructed look (nil: none yet)
	refRing  []float32 // the surroundings when the reference look was taken (nil: unknown)
	// ringKnown: the surroundings have matched their reference in a
	// frame other than the one it was taken from; ringOdd counts the
	// checks in a row the lid was seen but its surroundings did not match.
	ringKnown bool
	ringOdd   int
	ringPrev  []float32 // the surroundings' look at the last check
	ringCalm  int       // checks in a row the surroundings looked as at the check before
	// lidOpen is the classifier's highest reading while the lid was
	// plainly there since the reference was taken.
	lidOpen float64
	// fresh: the reference was taken from the frame being checked, so
	// the surroundings match it trivially and prove nothing.
	fresh bool
	// pending is a look that replaces an unconfirmed reference once it has
	// been seen often enough in a row (steady: with up to steadyGap checks
	// of something else between).
	pending   run
	confirmed bool // the lid has matched its reference since it was enrolled
	// refN is how many checks a steady reference (one enrolled without
	// the classifier calling it closed) has been seen; 0 for others.
	refN int
	// back is a look that may become the reference (see replaced);
	// afterHole: it was taken while a hazard's event was open (a new lid
	// put back), not as a refresh of a half-matching reference.
	afterHole bool
	back      run
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
		w.pending.drop()
		w.back.drop()
	}
}

// setRef replaces the reference look (taking ownership of crop).
func (w *watched) setRef(crop gocv.Mat, ok bool) {
	if w.enrolled {
		w.ref.Close()
	}
	w.ref, w.enrolled, w.refMean, w.lidOpen = crop, ok, 0, 0
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
		w.pending.drop()
		w.confirmed = true // the caller says every cover is in place
		w.ring = nil
		if w.ring, _, err = w.surroundings(frame); err != nil {
			return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
		}
		w.refRing = w.ring
		w.ringKnown, w.ringOdd, w.ringCalm = false, 0, 0
	}
	return nil
}

// enrolIfClosed enrols covers without a reference whose crop the classifier
// calls closed; a cover that looks open is left unenrolled (and reported).
// A reference taken from one picture may show a car passing over the lid,
// so until the lid has been seen to match its reference once, a look that
// the classifier calls closed and that stays the same for Confirm checks
// while differing from the reference replaces it.
func (m *Monitor) enrolIfClosed(frame gocv.Mat) error {
	for _, w := range m.covers {
		if w.enrolled && w.confirmed {
			continue
		}
		if m.classify != nil {
			p, err := m.classify(frame, w.Region)
			if err != nil {
				return fmt.Errorf("classify %s: %w", w.FacilityID, err)
			}
			if p >= closedBelow {
				if err := w.steady(frame, p); err != nil {
					return err
				}
				continue
			}
		}
		crop, err := normCrop(frame, w.Region)
		if err != nil {
			return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
		}
		if w.enrolled && w.refN > 0 && w.sameLook(frame, crop, w.ref) {
			w.refN++
		}
		if !w.enrolled {
			if err := w.enrol(crop, frame); err != nil {
				return err
			}
			continue
		}
		// The lid confirms its reference when it matches it well, or
		// halfway with the road around it as it was when the reference
		// was taken: a halfway match with the surroundings changed is a
		// picture that caught a car beside the lid and over part of it
		// (30-min seed 162: the first frame, a car passing; the lid
		// matched 0.62-0.68 once it had gone, the road never looked as
		// in that frame again, and every hole there read occluded).
		n := ncc(crop, w.ref)
		if n >= ringSame || (n >= presentNCC && w.ringAsEnrolled(frame)) {
			w.confirmed = true
			w.pending.drop()
			crop.Close()
			continue
		}
		if m.classify == nil {
			crop.Close() // nothing else says the lid is closed
			continue
		}
		// Against a halfway match only a look that matches itself well
		// makes a run: a lid that correlates no better with itself
		// (noise, rain) than with its reference would otherwise replace
		// it every few checks.
		// The first look of an agreeing run is the one enrolled.
		w.pending.see(crop, 0, func(look gocv.Mat) bool {
			return w.sameLook(frame, crop, look) && sameLight(crop, look) && (n < presentNCC || w.swayNCC(frame, crop, look) >= ringSame)
		})
		// A look that has been seen longer than the reference is not
		// replaced by a shorter one (a car parked on the lid for a while).
		if w.pending.n >= max(m.confirm, w.refN+1) {
			ref, _ := w.pending.take()
			if err := w.enrol(ref, frame); err != nil {
				return err
			}
		}
	}
	return nil
}

// steady handles a check of a cover without a confirmed reference that the
// classifier does not call closed (probability p ≥ closedBelow). A worn lid
// may read half open to the classifier for as long as it is watched; a look
// that stays the same for steadyChecks checks while the classifier is never
// sure it is open (it would report it) is enrolled as the reference, and
// remembers how long it was seen, so that only a look seen longer replaces
// it. A cover whose reference was taken from a single picture keeps waiting
// for a closed look. Up to steadyGap checks in a row that show something
// else (a car passing over the lid) do not break the run.
func (w *watched) steady(frame gocv.Mat, p float64) error {
	// A reference taken from one picture that has not matched the lid
	// since (we are here only then) is as good as none: it may show a car
	// that was passing, and a worn lid the classifier is never sure of
	// would otherwise be judged against that car for good. A steady look
	// replaces it as it would enrol a cover without one.
	oneLook := w.enrolled && w.refN == 0
	if w.enrolled && !oneLook && p >= openAbove {
		w.pending.drop()
		return nil
	}
	if p >= openAbove {
		w.pending.absent(steadyGap)
		return nil
	}
	crop, err := normCrop(frame, w.Region)
	if err != nil {
		return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
	}
	if w.enrolled && !oneLook {
		// A steady reference: count its looks.
		if w.sameLook(frame, crop, w.ref) {
			w.refN++
		}
		crop.Close()
		w.pending.drop()
		return nil
	}
	w.pending.see(crop, steadyGap, func(look gocv.Mat) bool {
		return w.sameLook(frame, crop, look) && sameLight(crop, look)
	})
	if w.pending.n < steadyChecks {
		return nil
	}
	ref, n := w.pending.take()
	if err := w.enrol(ref, frame); err != nil {
		return err
	}
	w.refN = n
	return nil
}

// ringAsEnrolled tells whether the surroundings in frame match their look
// when the reference was taken (true when that is unknown or there is
// nothing to compare).
func (w *watched) ringAsEnrolled(frame gocv.Mat) bool {
	if len(w.refRing) == 0 {
		return true
	}
	look, _, err := w.surroundings(frame)
	if err != nil {
		return false
	}
	return len(look) == 0 || ringCorrelation(w.refRing, look) >= ringSame
}

// enrol makes crop (owned from now on) the reference look and frame's
// surroundings of the cover their reference.
func (w *watched) enrol(crop, frame gocv.Mat) error {
	w.setRef(crop, true)
	w.confirmed, w.refN = false, 0
	w.ring = nil
	ring, _, err := w.surroundings(frame)
	if err != nil {
		return fmt.Errorf("enrol %s: %w", w.FacilityID, err)
	}
	w.ring, w.refRing = ring, ring
	w.ringKnown, w.ringOdd, w.ringCalm, w.fresh = false, 0, 0, true
	return nil
}

// run is a look seen n times in a row, give or take gaps: misses is how
// many checks in a row since it was last seen.
type run struct {
	look   gocv.Mat
	n      int
	misses int
}

// see takes a check's crop (owned from now on): it continues the run when
// same says it shows the run's look, is passed over while the run has
// missed fewer than gap checks in a row, and starts a new run otherwise.
func (r *run) see(crop gocv.Mat, gap int, same func(look gocv.Mat) bool) {
	switch {
	case r.n > 0 && same(r.look):
		r.n++
		r.misses = 0
		crop.Close()
	case r.n > 0 && r.misses < gap:
		r.misses++
		crop.Close()
	default:
		r.drop()
		r.look, r.n = crop, 1
	}
}

// absent notes a check that did not show the look; the run ends after more
// than gap of them in a row.
func (r *run) absent(gap int) {
	if r.n > 0 && r.misses < gap {
		r.misses++
		return
	}
	r.drop()
}

// take ends the run and hands over its look and length.
func (r *run) take() (gocv.Mat, int) {
	look, n := r.look, r.n
	*r = run{}
	return look, n
}

func (r *run) drop() {
	if r.n > 0 {
		r.look.Close()
	}
	*r = run{}
}

// flat tells whether a look has no pattern to correlate: OpenCV gives a
// flat template a correlation of 1 with anything (a reference taken while
// a plain car roof covered the lid would match every hole), and a flat
// picture one of 0.
func flat(m gocv.Mat) bool {
	mean, dev := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer dev.Close()
	gocv.MeanStdDev(m, &mean, &dev)
	return dev.GetDoubleAt(0, 0) < flatDev
}

// sameLook tells whether the cover's region in frame (crop) shows what an
// earlier look of it showed: correlated in place or within a sway of the
// pole, or (a dark or flat lid has little pattern to correlate) hardly
// different. Compared in place only, a fine pattern on a swaying pole at
// dusk correlated 0.03-0.75 with itself a second later, so a look never
// lasted long enough to replace a reference taken from a first frame that
// showed a passer-by on the lid (2-min seed 102: a theft read "occluded"
// against that person for the whole scene).
func (w *watched) sameLook(frame, crop, look gocv.Mat) bool {
	if w.swayNCC(frame, crop, look) >= presentNCC {
		return true
	}
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(crop, look, &d)
	return d.Mean().Val1 <= sameMeanDiff
}

// sameLight tells whether two looks of a lid were seen in about the same
// light: mean grey levels within sameLightRel of the brighter (or
// sameMeanDiff). sameLook's correlation ignores brightness, and a run's
// first look is the one enrolled: a look taken while headlights lit the lid
// (three times as bright) was enrolled at night, and the lid read as a dark
// hole once they had passed (2-min seed 83: three false reports).
func sameLight(a, b gocv.Mat) bool {
	ma, mb := a.Mean().Val1, b.Mean().Val1
	return math.Abs(ma-mb) <= math.Max(sameMeanDiff, sameLightRel*math.Max(ma, mb))
}

// ncc is the normalised correlation of two crops of the same size (0 for a
// flat one).
func ncc(a, b gocv.Mat) float64 {
	if flat(b) {
		return 0
	}
	res := gocv.NewMat()
	defer res.Close()
	mask := gocv.NewMat()
	defer mask.Close()
	gocv.MatchTemplate(a, b, &res, gocv.TmCcoeffNormed, mask)
	v := float64(res.GetFloatAt(0, 0))
	if math.IsNaN(v) {
		return 0
	}
	return v
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
	for _, w := range m.covers {
		w.fresh = false
	}
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
		if err := w.replaced(frame, obs); err != nil {
			return changes, fmt.Errorf("check %s: %w", w.FacilityID, err)
		}
	}
	return changes, nil
}

// replaced watches for a new lid after a confirmed hazard. The owner may put
// back a lid that looks unlike the stolen one (another make, new paint): it
// never matches the reference, reads as something standing on the cover at
// best, and the next theft of it would be judged against the old lid, or
// not seen at all while the first event never ends. While the event is
// open, a look that lasts replaceChecks checks (passing traffic may hide
// it for up to maxCandGap checks in a row) and is a lid on every one of
// them is enrolled as the new reference, surroundings and all; checks the
// old reference calls present do not count (it still works for this lid,
// and will end the event). A lid on every check means: not read as
// a hole, not too dark to say, nothing near as dark as a shaft (darkness is
// what a hole shows however it is lit), the classifier not sure it is open,
// and the road around the cover as it was, nothing reaching past it above
// or below: a car parked on the hole, a person standing in it, changes the
// surroundings, so it is never taken for the new lid. A plate laid over the
// hole is taken, which is what it is: the shaft is closed.
//
// The same refreshes a confirmed reference that the lid in place matches
// only halfway (presentNCC to ringSame): a reference taken from one
// picture (the first frame, in other light; a passing car's headlights)
// keeps the surroundings from ever being relearned, since they are
// learned only while the lid is seen as it should be, and a lid judged
// against a half-matching look is a coin toss in the end (30-min seed 150,
// dusk: a road read changed, and a hole occluded, for half an hour). There
// the classifier must call the lid closed, the look must be hardly darker
// than the reference (refreshDark), match itself well (surePresent) on
// every check and last refreshChecks checks.
func (w *watched) replaced(frame gocv.Mat, o Observation) error {
	// Only while the event is open: a new lid that the old reference
	// calls present ends it, and is then better judged against the old
	// lid than enrolled (a dark new lid as the reference leaves a hole
	// only a little darker than it, and its frame correlating with it:
	// 30-min seed 166, a theft missed so).
	open := w.event != "" && w.stable != wire.CoverPresent
	if open != w.afterHole {
		w.afterHole = open
		w.back.drop()
	}
	if !w.enrolled || o.State == wire.CoverMissing {
		w.back.drop()
		return nil
	}
	lid := o.State != wire.CoverUnknown && o.Dark < sureDark && o.Open < openAbove &&
		o.Ring >= ringSame && math.Max(o.Above, o.Below) < standingChanged
	need, strict := replaceChecks, false
	if open {
		// A check that the old reference calls present says nothing
		// for the new lid or against it.
		lid = lid && o.State != wire.CoverPresent
	} else {
		// Refresh: only a lid seen in place, that the classifier calls
		// closed, matching its reference halfway, and as bright as the
		// lid enrolled (not a darker new lid).
		if !w.confirmed {
			w.back.drop()
			return nil
		}
		lid = lid && o.State == wire.CoverPresent && o.Open >= 0 && o.Open < closedBelow &&
			o.NCC < ringSame && o.Dark < refreshDark
		need, strict = refreshChecks, true
	}
	if !lid {
		w.back.absent(maxCandGap)
		return nil
	}
	crop, err := normCrop(frame, w.Region)
	if err != nil {
		return err
	}
	gap := maxCandGap
	if strict {
		gap = 0
	}
	w.back.see(crop, gap, func(look gocv.Mat) bool {
		if strict {
			return w.swayNCC(frame, crop, look) >= surePresent
		}
		return w.sameLook(frame, crop, look)
	})
	if w.back.n < need {
		return nil
	}
	ref, n := w.back.take()
	// A new lid is often darker than the old one (new paint). Darkness
	// is judged against the brighter of the two lids: a shaft is as dark
	// whichever lid it had, and against a dark lid's brightness only
	// part of it would count as dark, while its frame alone correlates
	// with the dark lid (30-min seed 169: a theft of such a lid read
	// present for three checks in the middle and was reported twice).
	was := w.refMean * lightGain(w.refRing, w.ringPrev)
	if err := w.enrol(ref, frame); err != nil {
		return err
	}
	// (Safe: the look was never dark against the old lid's brightness,
	// sureDark or refreshDark, so it is not dark against it now.)
	w.refMean = math.Max(w.refMean, was)
	w.refN = n
	w.confirmed = true // seen `need` times, with nothing on it
	w.pending.drop()
	return nil
}

// step debounces observations into confirmed changes. Occluded and unknown
// neither open nor close an event: a car standing on a missing cover does not
// fix it, and darkness proves nothing.
func (m *Monitor) step(w *watched, obs Observation, at time.Time) (Change, bool) {
	if obs.State == wire.CoverOccluded || obs.State == wire.CoverUnknown {
		// They do not break a run of agreeing checks either (traffic over
		// a hole), but a run towards a hazard is a run: after more than
		// maxCandGap of them in a row it starts again, or stray checks
		// minutes apart (a dark lid, rain, passing cars) would add up to
		// a reported theft. A run towards "present" keeps adding up: a
		// replacement lid that mostly reads occluded (night, rain, shake)
		// still ends its event, so the next theft is reported as new.
		if w.candGap++; w.candGap > maxCandGap && w.cand != wire.CoverPresent {
			w.cand, w.candN = "", 0
		}
		return Change{}, false
	}
	w.candGap = 0
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
	presentNCC      = 0.45 // correlation with the reference above which the cover is there
	surePresent     = 0.8  // ... whatever else is seen
	missingDark     = 0.45 // share of dark pixels above which the shaft is open
	sureDark        = 0.3  // ... when the classifier is sure it is
	darkRatio       = 0.45 // "dark": below this share of the reference's mean brightness
	tooDark         = 18.0 // mean grey below which nothing can be said
	openAbove       = 0.8  // classifier probability that alone says "open"
	closedBelow     = 0.45 // classifier probability below which a lid is taken as closed
	ringChanged     = 0.5  // surroundings' correlation below which something stands over the cover
	ringSame        = 0.7  // the lid's own correlation above which nothing stands on it
	sameMeanDiff    = 6.0  // mean grey-level difference of two looks of the same flat lid
	flatDev         = 1.0  // grey-level spread below which a look has no pattern to correlate
	sameLightRel    = 0.35 // share of the brighter look's mean by which two looks in the same light may differ
	steadyChecks    = 10   // checks an unchanging look the classifier is unsure of must last to be enrolled
	steadyGap       = 2    // checks in a row of something else (passing traffic) that do not break that run
	ringFlat        = 4.0  // grey-level spread below which the surroundings have no pattern to compare
	ringAbs         = 12.0 // grey levels a cell of the surroundings may differ by in the same light
	ringRel         = 0.2  // ... or this share of its predicted value
	ringCover       = 0.3  // share of changed cells that means something stands there
	ringRelearn     = 10   // checks with the lid seen and its surroundings changed before the change is learned
	standingChanged = 0.25 // share of changed cells just above or below the lid that means something stands there
	standingSolid   = 0.8  // ... that means a body stands there, not the edge of a shadow
	maxCandGap      = 10   // checks in a row that say nothing (occluded, unknown) after which a run of agreeing checks starts again
	replaceChecks   = 10   // checks a lid seen after a hazard must last to be enrolled as the new reference
	refreshChecks   = 20   // checks a lid matching its reference only halfway must look the same to become the reference
	refreshDark     = 0.1  // ... with at most this dark share
)

// ringGrid is the grid the surroundings are compared on: the region grown
// by its own size on every side.
var ringGrid = image.Pt(32, 16)

// surroundings returns the look of the road around the cover (grey, on
// ringGrid, the cover itself left out as NaN) and its correlation with the
// last unobstructed look; 1 when there is nothing to compare (no look yet,
// or a road too flat or too dark to have a pattern).
func (w *watched) surroundings(frame gocv.Mat) ([]float32, float64, error) {
	r := w.Region
	big := image.Rect(r.Min.X-r.Dx(), r.Min.Y-r.Dy(), r.Max.X+r.Dx(), r.Max.Y+r.Dy()).
		Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	if big.Dx() < ringGrid.X/2 || big.Dy() < ringGrid.Y/2 {
		return nil, 1, nil
	}
	crop, err := normCropTo(frame, big, ringGrid)
	if err != nil {
		return nil, 1, err
	}
	defer crop.Close()
	b, err := crop.DataPtrUint8()
	if err != nil {
		return nil, 1, err
	}
	look := make([]float32, len(b))
	sx := float64(big.Dx()) / float64(ringGrid.X)
	sy := float64(big.Dy()) / float64(ringGrid.Y)
	for y := 0; y < ringGrid.Y; y++ {
		for x := 0; x < ringGrid.X; x++ {
			px := float64(big.Min.X) + (float64(x)+0.5)*sx
			py := float64(big.Min.Y) + (float64(y)+0.5)*sy
			if image.Pt(int(px), int(py)).In(r) {
				look[y*ringGrid.X+x] = float32(math.NaN())
				continue
			}
			look[y*ringGrid.X+x] = float32(b[y*ringGrid.X+x])
		}
	}
	if w.ring == nil {
		return look, 1, nil
	}
	return look, ringCorrelation(w.ring, look), nil
}

// standing is the share of the surroundings' cells directly above (side 0)
// or below (side 1) the lid in the picture (the region's width, one region
// height up or down) that differ from their reference in the frame's
// light: whatever stands on or just before the lid (a person, a car)
// reaches past it, while a hole leaves the road beyond and before it as it
// was. 0 when there is nothing to compare.
func (w *watched) standing(frame gocv.Mat, look []float32, side int) float64 {
	if len(look) == 0 || len(w.ring) != len(look) {
		return 0
	}
	g, ok := medianGain(w.ring, look)
	if !ok {
		return 0
	}
	r := w.Region
	big := image.Rect(r.Min.X-r.Dx(), r.Min.Y-r.Dy(), r.Max.X+r.Dx(), r.Max.Y+r.Dy()).
		Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	sx := float64(big.Dx()) / float64(ringGrid.X)
	sy := float64(big.Dy()) / float64(ringGrid.Y)
	var n, changed int
	for y := 0; y < ringGrid.Y; y++ {
		py := float64(big.Min.Y) + (float64(y)+0.5)*sy
		if py >= float64(r.Min.Y) == (side == 0) {
			continue
		}
		if side == 1 && py < float64(r.Max.Y) {
			continue
		}
		for x := 0; x < ringGrid.X; x++ {
			px := float64(big.Min.X) + (float64(x)+0.5)*sx
			if px < float64(r.Min.X) || px >= float64(r.Max.X) {
				continue
			}
			i := y*ringGrid.X + x
			ref, cur := w.ring[i], look[i]
			if ref != ref || cur != cur || ref < 8 {
				continue
			}
			n++
			if !cellAgrees(ref, cur, g) {
				changed++
			}
		}
	}
	if n < 4 {
		return 0
	}
	return float64(changed) / float64(n)
}

// ringCorrelation compares the surroundings with their reference: 0 when
// a share ringCover or more of the cells differ from the reference in the
// frame's light (a median gain), otherwise the normalised correlation over
// the cells both have; 1 when the reference has no pattern to compare.
// Both are needed: a strong lane mark keeps the correlation up under a flat
// car roof, and a flat road has no correlation to speak of.
func ringCorrelation(ref, cur []float32) float64 {
	var ratios []float64
	for i := range ref {
		if ref[i] == ref[i] && cur[i] == cur[i] && ref[i] >= 8 {
			ratios = append(ratios, float64(cur[i])/float64(ref[i]))
		}
	}
	if len(ratios) >= 16 {
		slices.Sort(ratios)
		g := ratios[len(ratios)/2]
		changed := 0
		for i := range ref {
			if ref[i] == ref[i] && cur[i] == cur[i] && ref[i] >= 8 {
				want := g * float64(ref[i])
				if math.Abs(float64(cur[i])-want) > math.Max(ringAbs, ringRel*want) {
					changed++
				}
			}
		}
		if float64(changed) >= ringCover*float64(len(ratios)) {
			return 0
		}
	}
	var n, sa, sb float64
	for i := range ref {
		if ref[i] != ref[i] || cur[i] != cur[i] {
			continue
		}
		n++
		sa += float64(ref[i])
		sb += float64(cur[i])
	}
	if n < 16 {
		return 1
	}
	ma, mb := sa/n, sb/n
	var va, vb, cov float64
	for i := range ref {
		if ref[i] != ref[i] || cur[i] != cur[i] {
			continue
		}
		a, b := float64(ref[i])-ma, float64(cur[i])-mb
		va += a * a
		vb += b * b
		cov += a * b
	}
	if math.Sqrt(va/n) < ringFlat {
		return 1
	}
	if vb == 0 {
		return 0
	}
	return cov / math.Sqrt(va*vb)
}

// roadLevel is the median grey level of the surroundings' cells (255,
// bright enough, when there are none).
func roadLevel(look []float32) float64 {
	var v []float64
	for _, c := range look {
		if c == c {
			v = append(v, float64(c))
		}
	}
	if len(v) == 0 {
		return 255
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// medianGain is the median ratio cur/ref over the cells both have (ref at
// least 8 grey levels), and whether there were enough cells to say.
func medianGain(ref, cur []float32) (float64, bool) {
	if len(ref) == 0 || len(ref) != len(cur) {
		return 1, false
	}
	var ratios []float64
	for i := range ref {
		if ref[i] == ref[i] && cur[i] == cur[i] && ref[i] >= 8 {
			ratios = append(ratios, float64(cur[i])/float64(ref[i]))
		}
	}
	if len(ratios) < 16 {
		return 1, false
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2], true
}

// cellAgrees tells whether a cell of the surroundings that read ref reads
// cur in light g times as bright.
func cellAgrees(ref, cur float32, g float64) bool {
	want := g * float64(ref)
	return math.Abs(float64(cur)-want) <= math.Max(ringAbs, ringRel*want)
}

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
		case p >= openAbove:
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
	// The lid's correlation with its reference where it should be, and
	// the best one within a sway of the pole: the second says "the lid is
	// there" when it is high, but a hole's rim matches a shifted lid
	// halfway, so the middle band is judged without the search.
	ncc0 := ncc(crop, w.ref)
	// The search resamples a wider crop, in other phase than the region's
	// own: a fine lid pattern may lose half its correlation in it (30-min
	// seed 150: 0.47 for a lid that matched 0.74 in place, so the
	// surroundings were never relearned). The search can only add.
	ncc := math.Max(ncc0, w.shiftedNCC(frame, w.ref))
	ring, ringNCC, err := w.surroundings(frame)
	if err != nil {
		return Observation{}, err
	}
	above, below := w.standing(frame, ring, 0), w.standing(frame, ring, 1)
	// "Dark" is judged in the frame's light: the lid's enrolled brightness
	// scaled by how much the road around it has darkened or brightened
	// since (dusk falls; a fixed threshold would call a lid in the evening
	// a hole).
	want := w.refMean * lightGain(w.refRing, ring)
	dark := gocv.NewMat()
	defer dark.Close()
	gocv.Threshold(crop, &dark, float32(want*darkRatio), 255, gocv.ThresholdBinaryInv)
	darkShare := float64(gocv.CountNonZero(dark)) / float64(size.X*size.Y)
	mean := crop.Mean().Val1
	// Blind: the lid and the road around it are both too dark (night,
	// away from the lamps). A car standing over such a lid is a few grey
	// levels from the road, within what the surroundings may differ by
	// in the same light, so nothing can say it stands there, while its
	// dark windscreen over the lid reads as a hole to the darkness and to
	// the classifier alike (30-min seed 159: the classifier 0.71-0.83 and
	// a dark share of 0.54 for the 12 s a car stood on the lid, as for the
	// real hole there). Too dark to say, unless the lid matches.
	blind := mean < tooDark && roadLevel(ring) < tooDark
	o := Observation{NCC: ncc, Dark: darkShare, Open: p, Ring: ringNCC, Above: above, Below: below}
	if ncc >= ringSame && ringNCC >= ringSame && math.Max(above, below) < standingChanged && darkShare < sureDark {
		// The lid plainly there, nothing on or around it.
		w.lidOpen = math.Max(w.lidOpen, p)
	}
	if ncc >= ringSame {
		// The lid is seen as it should be, so nothing stands on it: the
		// surroundings' look follows the light and the weather. Never
		// from the surroundings alone, which a slowly arriving car would
		// otherwise walk into the reference. Nor, once the surroundings
		// have matched their reference, from a look that does not match
		// it now: a car passing beside the lid would be learned, and the
		// road read changed (a hole occluded) after it left, for as long
		// as the lid is gone. A change that lasts while the lid is seen
		// (something set down beside it, the street lamps coming on) is
		// taken after ringRelearn checks.
		// Neither is taken at once while nearly all the road just above or
		// below the lid differs from the reference, nor while part of it
		// does and the lid is not fully seen: a car that stopped right
		// before the lid stands as still between two checks as the light
		// does, and learned, it leaves the road reading changed once it
		// drives off (30-min seed 113: for the rest of the scene, so the
		// next hole there read occluded and was missed); someone standing
		// at the lid's edge hides part of it (2-min seed 1). The edge of
		// a cloud's shadow changes part of that road while the lid is seen
		// whole (30-min seed 169), and is learned. What stays is learned
		// after ringRelearn checks like any lasting change.
		st := math.Max(above, below)
		standing := st >= standingSolid || (st >= standingChanged && ncc < surePresent)
		calm := w.still(ring) && !standing
		switch {
		case ringNCC >= ringSame && !standing:
			w.ring, w.ringKnown, w.ringOdd = ring, !w.fresh, 0
		case calm:
			// Nothing has come or gone since the last check: the
			// surroundings changed slowly (light, a sway of the pole).
			w.ring, w.ringOdd = ring, 0
		case !w.ringKnown || w.ringOdd+1 >= ringRelearn:
			w.ring, w.ringOdd = ring, 0
		default:
			w.ringOdd++
		}
		w.ringCalm = 0
	} else if !w.ringKnown {
		// The surroundings have not been seen as they were since the
		// picture their reference was taken from, which may have caught
		// a car over the lid: they read changed, and a hole occluded,
		// for as long as the lid is gone (2-min seed 85: the first frame
		// a car over the lid, the lid gone from under it, and a second
		// car passing matched that picture and "confirmed" it; the hole
		// the classifier was sure of read "something standing on it" for
		// 26 s). Road that stays the same for ringRelearn checks in a row
		// is the road.
		if w.still(ring) {
			w.ringCalm++
		} else {
			w.ringCalm = 0
		}
		if w.ringCalm >= ringRelearn {
			w.ring, w.ringCalm = ring, 0
		}
	}
	w.ringPrev = ring
	// A shaft in a frame that outlives its lid keeps the frame's pattern:
	// against a dark lid (a new one, darker paint) the square frame alone
	// correlates above surePresent (30-min seed 150: 0.82 for a hole that
	// was half dark and that the classifier was sure of). Darker than the
	// lid over missingDark of the region and the classifier sure: the
	// correlation is the frame's, not the lid's. A smaller dark share
	// (sureDark) will do when the classifier reads more than it ever did
	// for this lid in plain view (30-min seed 330: a round hole's rim
	// correlated 0.82 with a lid put back, dark 0.43 and the classifier
	// at 0.95-0.97 against the lid's 0.42-0.51; three thefts missed).
	framedHole := p >= openAbove && (darkShare >= missingDark || (darkShare >= sureDark && p > w.lidOpen))
	switch {
	case ncc >= surePresent && !framedHole:
		o.State, o.Confidence = wire.CoverPresent, clamp01(0.5+ncc/2)
	case ringNCC < ringChanged:
		// The road around the cover does not look as it did either: a car
		// or a person stands on it. A missing lid leaves the road around
		// it as it was; a dark car body or a pair of legs over the lid
		// only looks like a hole.
		o.State, o.Confidence = wire.CoverOccluded, clamp01(1-ringNCC)
	case darkShare >= sureDark && p >= openAbove && !blind:
		// A dark hole the classifier is sure of, though the rim still
		// correlates with the lid (a square frame outlives its lid, and a
		// round one with a strong frame correlates up to 0.76); with the
		// classifier sure, a smaller dark share than missingDark will do.
		o.State, o.Confidence = wire.CoverMissing, clamp01((0.5+darkShare/2+p)/2)
	case ncc0 >= presentNCC:
		o.State, o.Confidence = wire.CoverPresent, clamp01(0.5+ncc0/2)
	case blind:
		o.State, o.Confidence = wire.CoverUnknown, 0.5
	case darkShare >= missingDark && (p < 0 || p >= closedBelow):
		// Dark where the lid was, and the classifier (if any) does not
		// see a closed lid: an open shaft.
		o.State, o.Confidence = wire.CoverMissing, clamp01(0.5+darkShare/2)
		if p >= 0 {
			o.Confidence = (o.Confidence + p) / 2
		}
	case p >= openAbove && p > w.lidOpen:
		// The classifier alone, unless it has read this lid as open as
		// that while the lid was plainly there: a worn lid at night in
		// the rain read 0.71-0.90 for minutes, and someone standing on
		// it (not dark, the road around it as usual) was reported
		// stolen (30-min seed 319).
		o.State, o.Confidence = wire.CoverMissing, p
	case mean < tooDark && w.refMean >= tooDark:
		o.State, o.Confidence = wire.CoverUnknown, 0.5
	default:
		o.State, o.Confidence = wire.CoverOccluded, clamp01(1-ncc0)
	}
	if st := math.Max(above, below); o.State == wire.CoverMissing && st >= standingChanged {
		// Something upright stands on or in front of the lid and reaches
		// past it (a person: legs and a coat over a lid look like a
		// hole), not a hole, which leaves the road beyond and before it
		// as it was.
		o.State, o.Confidence = wire.CoverOccluded, st
	}
	return o, nil
}

// swayNCC is the best correlation of an earlier look of the cover with its
// region in frame, in place (crop) or moved by up to a few pixels: a
// swaying pole moves the picture by that much, and a fine lid pattern
// shifted by a cell no longer correlates.
func (w *watched) swayNCC(frame, crop, look gocv.Mat) float64 {
	return math.Max(ncc(crop, look), w.shiftedNCC(frame, look))
}

// shiftedNCC is the best correlation of look with the cover's region moved
// by up to shakeMargin pixels (the search alone; -1 where it cannot be
// made: a flat look, a region at the frame's edge).
func (w *watched) shiftedNCC(frame, look gocv.Mat) float64 {
	best := -1.0
	if flat(look) {
		return best
	}
	r := w.Region
	m := shakeMargin(frame.Cols())
	big := image.Rect(r.Min.X-m, r.Min.Y-m, r.Max.X+m, r.Max.Y+m)
	if !big.In(image.Rect(0, 0, frame.Cols(), frame.Rows())) {
		return best // at the frame's edge
	}
	sz := image.Pt(int(math.Round(float64(big.Dx())*float64(size.X)/float64(r.Dx()))),
		int(math.Round(float64(big.Dy())*float64(size.Y)/float64(r.Dy()))))
	if sz.X < size.X || sz.Y < size.Y {
		return best
	}
	wide, err := normCropTo(frame, big, sz)
	if err != nil {
		return best // cannot happen: big lies inside the frame
	}
	defer wide.Close()
	res := gocv.NewMat()
	defer res.Close()
	mask := gocv.NewMat()
	defer mask.Close()
	gocv.MatchTemplate(wide, look, &res, gocv.TmCcoeffNormed, mask)
	vals, err := res.DataPtrFloat32()
	if err != nil {
		return best
	}
	for _, v := range vals {
		if f := float64(v); !math.IsNaN(f) && f > best {
			best = f
		}
	}
	return best
}

// still tells whether the surroundings look as at the check before:
// nothing has come or gone since.
func (w *watched) still(ring []float32) bool {
	return len(w.ringPrev) == len(ring) && ringCorrelation(w.ringPrev, ring) >= ringSame
}

// shakeMargin is how far (pixels) the picture of a frame this wide may
// move on a swaying pole: 4 px at 960 wide, at least 3.
func shakeMargin(width int) int { return max(3, (width+239)/240) }

// lightGain is the median ratio of the surroundings' look now to their look
// when the reference was taken, clamped to [0.3, 2]; 1 when either is
// unknown or too dark to say.
func lightGain(ref, cur []float32) float64 {
	if len(ref) == 0 || len(ref) != len(cur) {
		return 1
	}
	var ratios []float64
	for i := range ref {
		if ref[i] == ref[i] && cur[i] == cur[i] && ref[i] >= 8 {
			ratios = append(ratios, float64(cur[i])/float64(ref[i]))
		}
	}
	if len(ratios) < 16 {
		return 1
	}
	slices.Sort(ratios)
	return math.Max(0.3, math.Min(2, ratios[len(ratios)/2]))
}

func normCrop(frame gocv.Mat, r image.Rectangle) (gocv.Mat, error) {
	return normCropTo(frame, r, size)
}

// normCropTo cuts r out of frame as grey, resized to sz.
func normCropTo(frame gocv.Mat, r image.Rectangle, sz image.Point) (gocv.Mat, error) {
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
	gocv.Resize(grey, &out, sz, 0, 0, gocv.InterpolationArea)
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
		w.refRing = nil    // taken in unknown light
		w.confirmed = true // an operator's reference is not second-guessed
		w.pending.drop()
		return nil
	}
	return fmt.Errorf("reference of %s: no such cover on camera %s", facilityID, m.camera)
}
