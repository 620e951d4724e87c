// Package occupancy finds road occupation in a fixed camera's view: a stall,
// cart, pile of goods or parked vehicle that stays inside a zone where the
// zone's rule forbids it (keep clear, no vending, no parking). It owns the
// zones, the per-pixel notion of "static foreground" and the episodes
// (new → update → end) that it reports.
//
// It stands on two backgrounds at different speeds. The slow one is a
// reference of the empty scene that learns only where the frame agrees with
// it once the light of the moment is taken out (a gain per region, see
// lighting), so it follows dusk, clouds and street lamps but never learns an
// object that stays: for this detector an object that stays in a zone *is*
// the event, which a general-purpose background model (package background,
// built to absorb what stops) would learn away within seconds at two frames
// a second. The fast one is a short moving average of the frames (about a
// second) that tells moving pixels from still ones. A pixel that differs
// from the reference and is still in the fast one gains age; moving over it
// takes age away, and agreeing with the reference again resets it. Only
// pixels whose age reaches a zone's dwell time, in blobs big enough to
// matter, count for that zone, so passing traffic, people crossing and
// lighting changes do not open episodes; a zone is occupied when such
// pixels cover at least its minimum share. A still blob whose outline is in
// the reference rather than in the frame (the ghost of something that was in
// view at start-up and left) is learned into the reference at once; should
// the place later look again as the reference had it before, that was an
// object, and the reference goes back. Anything that stays longer than
// Forget becomes part of the scene. The first frame is not taken as the
// empty scene as it is: for a few seconds (warmUp) the reference learns
// whatever has settled where the first frame showed something else, and
// goes on so where the frame has not yet agreed with it (warmUpMax).
//
// Frames are downscaled packed BGR, a couple per second, with timestamps.
package occupancy

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"time"
)

// Zone rules.
const (
	KeepClear = "keep_clear"
	NoVending = "no_vending"
	NoParking = "no_parking"
)

// Episode phases.
const (
	PhaseNew    = "new"
	PhaseUpdate = "update"
	PhaseEnd    = "end"
)

// DefaultMinShare is used for a zone whose MinShare is zero. Zones are
// drawn around a whole stretch of sidewalk or kerb, and a cart or a pile of
// goods covers only a few per cent of such a stretch.
const DefaultMinShare = 0.03

// Zone is one watched area of the image.
type Zone struct {
	ID   string
	Rule string // KeepClear, NoVending or NoParking
	// Polygon is in pixel coordinates of the frames given to Step.
	Polygon []image.Point
	// Dwell is how long something must stay before it counts.
	Dwell time.Duration
	// MinShare is the share of the zone's area (0-1] that must be covered
	// by something that stayed; 0 means DefaultMinShare.
	MinShare float64
}

// Validate checks a zone against a frame size.
func (z Zone) Validate(w, h int) error {
	switch {
	case z.ID == "":
		return errors.New("zone: empty id")
	case z.Rule != KeepClear && z.Rule != NoVending && z.Rule != NoParking:
		return fmt.Errorf("zone %s: rule %q is not %s, %s or %s", z.ID, z.Rule, KeepClear, NoVending, NoParking)
	case len(z.Polygon) < 3:
		return fmt.Errorf("zone %s: polygon needs at least 3 points, has %d", z.ID, len(z.Polygon))
	case z.Dwell <= 0:
		return fmt.Errorf("zone %s: dwell must be positive", z.ID)
	case z.MinShare < 0 || z.MinShare > 1:
		return fmt.Errorf("zone %s: min share %g is outside 0-1", z.ID, z.MinShare)
	}
	if len(rasterize(z.Polygon, w, h)) == 0 {
		return fmt.Errorf("zone %s: polygon covers no pixel of the %dx%d frame", z.ID, w, h)
	}
	return nil
}

// Episode is one report about one occupation of one zone. Its ID is the
// same in all phases.
type Episode struct {
	ID, Zone, Rule string
	Phase          string          // PhaseNew, PhaseUpdate or PhaseEnd
	Box            image.Rectangle // extent of what stays, within the zone
	Share          float64         // share of the zone it covers
	Start          time.Time       // when it settled (about Dwell before new)
	At             time.Time       // time of the frame that produced this report
	// BestFrameAt and BestFrameIndex (0-based count of Step calls) name the
	// frame that shows the occupation best: most of it visible, least
	// covered by things moving in front. BestFrame is a copy of that frame
	// (packed BGR, shared between reports: do not modify).
	BestFrameAt    time.Time
	BestFrameIndex int
	BestFrame      []byte
}

// Detector watches the zones of one camera. It is not safe for concurrent
// use. The exported fields may be changed before the first Step.
type Detector struct {
	// Heartbeat is the longest gap between reports of a lasting episode.
	Heartbeat time.Duration
	// Grace is how long a zone must stay below half its minimum share
	// before its episode ends; it bridges brief occlusions.
	Grace time.Duration
	// Forget is how long something may stay before it is taken as a
	// permanent change of the scene and learned into the background.
	Forget time.Duration

	w, h  int
	zones []*zoneState

	diff, moving, hold, inZone []byte
	cand                       []byte    // in a zone and still for holdAfter
	minBlob                    int       // smallest blob that counts, in pixels
	ref                        []float32 // the empty scene, BGR, in the light the gains are relative to
	fast                       []float32 // fast background, BGR
	age                        []float32 // seconds of net still foreground
	miss                       []float32 // seconds since last foreground
	scratch, thing             []byte
	objStack, footY            []int32
	stack, fresh               []int32
	light                      *lighting

	// prior is what the reference showed before a blob was learned into it
	// as a ghost, kept for priorAge < Forget seconds (hasPrior marks those
	// pixels): if the frame comes back to that look, the "ghost" was an
	// object that has left, and the reference goes back to it.
	prior    []float32
	priorAge []float32
	hasPrior []byte

	seen []byte // the frame has agreed with the reference here since the warm-up

	steps   int
	elapsed float32 // seconds since the first frame, as the steps add up (dt): the warm-up's clock
	last    time.Time
}

type zoneState struct {
	Zone
	pix  []int32 // indices of the pixels inside the polygon
	seq  int
	open *openEpisode
}

type openEpisode struct {
	rep        Episode // the last report
	lastReport time.Time
	lastSeen   time.Time // last frame with at least half the minimum share
	bestShare  float64   // of the best frame: most seen, least covered
}

// Tuning that follows from the physics of the task rather than a data set.
const (
	fastTau   = time.Second             // the fast background's memory
	moveLevel = 24                      // per-channel change (grey levels) that means motion
	gapTol    = 1500 * time.Millisecond // a pixel may drop out of the foreground this long
	holdAfter = 2 * time.Second         // still this long: a candidate object
	// refTau is how fast the reference follows what agrees with it (slow
	// changes of the scene's look that are not light: wet ground, dirt);
	// outsideTau how fast it learns anything outside the zones, where
	// nothing is timed and the reference only serves the light estimate.
	refTau     = 30 * time.Second
	outsideTau = 20 * time.Second
	maxStep    = 10 * time.Second // a longer gap between frames counts as this
	// warmUp is how long after the first frame the reference learns every
	// still pixel, in the zones too, and nothing is timed. The first frame
	// is one instant: a car passing, someone walking, a car's headlights
	// on the road are in it, and taken as the empty scene they would leave
	// ghosts that the outline test must catch (and where the thing stood
	// before a pole or along the sidewalk's joints it does not: seeds 22,
	// 28 and 30 had such ghosts held as objects from 2-10 s to the end).
	// A few seconds let whatever moves move away; what still stands after
	// them is taken as part of the scene, as the first frame was before.
	// Only what differs from the reference and has looked the same for
	// about a second (the fast background) is learned so: blending every
	// still pixel would blur the edges of poles and kerbs in a shaking
	// picture, and the inside of someone walking slowly is not moving by
	// the motion test (seed 22: a walker's trail was learned and held as
	// an object from 5 s).
	warmUp = 5 * time.Second
	// warmUpMax is how long after the first frame a pixel that has not yet
	// agreed with the reference may still be learned as during the
	// warm-up (see updatePixels): long enough for a place left at the end
	// of the warm-up to look steady, short enough that an object that
	// stops there is seldom learned.
	warmUpMax = 3 * warmUp
	// ghostMargin is how many times stronger than in the frame the
	// outline of a still thing must be in the reference for the thing to
	// be taken as a ghost (see isGhost). With the warm-up taking the
	// first seconds' passers-by, a ghost is left only by something that
	// stood through them and then went: rarer than a stall or cart that
	// arrives over the sidewalk's joints and stripes, whose outline test
	// came out at 1.5-1.6 (1.5 was the margin; carts and stalls on seeds
	// 31 and 43 were learned as ghosts). A van that stood from start-up
	// and left comes out at 2.2 (TestScenes).
	ghostMargin = 2
	// minReportGap keeps a changing extent (an object settling, a stall
	// being set up) from producing an update with every frame.
	minReportGap = 5 * time.Second
)

// New makes a detector for w×h frames. It fails on an invalid zone (see
// Zone.Validate) or a duplicate zone id.
func New(zones []Zone, w, h int) (*Detector, error) {
	if w < 16 || h < 16 {
		return nil, fmt.Errorf("occupancy: frame %dx%d too small", w, h)
	}
	n := w * h
	d := &Detector{
		Heartbeat: time.Minute,
		Grace:     5 * time.Second,
		Forget:    2 * time.Hour,
		w:         w, h: h,
		diff:     make([]byte, n),
		moving:   make([]byte, n),
		hold:     make([]byte, n),
		inZone:   make([]byte, n),
		ref:      make([]float32, n*3),
		prior:    make([]float32, n*3),
		priorAge: make([]float32, n),
		hasPrior: make([]byte, n),
		seen:     make([]byte, n),
		fast:     make([]float32, n*3),
		age:      make([]float32, n),
		miss:     make([]float32, n),
		scratch:  make([]byte, n),
		thing:    make([]byte, n),
		cand:     make([]byte, n),
		minBlob:  n,
		light:    newLighting(w, h),
	}
	seen := map[string]bool{}
	for _, z := range zones {
		if err := z.Validate(w, h); err != nil {
			return nil, fmt.Errorf("occupancy: %w", err)
		}
		if seen[z.ID] {
			return nil, fmt.Errorf("occupancy: duplicate zone id %q", z.ID)
		}
		seen[z.ID] = true
		if z.MinShare == 0 {
			z.MinShare = DefaultMinShare
		}
		z.Polygon = append([]image.Point(nil), z.Polygon...)
		zs := &zoneState{Zone: z, pix: rasterize(z.Polygon, w, h)}
		for _, p := range zs.pix {
			d.inZone[p] = 1
		}
		// A quarter of what makes a zone occupied: smaller still things
		// are noise (compression blocks, a leaf), not objects.
		d.minBlob = min(d.minBlob, max(int(z.MinShare*float64(len(zs.pix))/4), 4))
		d.zones = append(d.zones, zs)
	}
	return d, nil
}

// Step takes the next frame (packed BGR, w·h·3 bytes) taken at time at and
// returns the episodes that started, changed, beat or ended with it.
func (d *Detector) Step(frame []byte, at time.Time) []Episode {
	if len(frame) != d.w*d.h*3 {
		panic(fmt.Sprintf("occupancy: frame has %d bytes, want %d", len(frame), d.w*d.h*3))
	}
	dt := float32(0)
	if d.steps > 0 {
		dt = float32(min(max(at.Sub(d.last), 0), maxStep).Seconds())
	}
	if d.steps == 0 {
		for i, v := range frame {
			d.ref[i] = float32(v)
		}
	}
	d.elapsed += dt
	d.light.estimate(frame, d.ref, d.age)
	d.updatePixels(frame, dt, d.elapsed < float32(warmUp.Seconds()))
	var out []Episode
	for _, z := range d.zones {
		if ep, ok := d.updateZone(z, frame, at); ok {
			out = append(out, ep)
		}
	}
	d.steps++
	d.last = at
	return out
}

// updatePixels advances the fast background, the reference and the
// per-pixel age. While warm (see warmUp; a pixel the frame has not yet
// agreed with the reference at stays warm up to warmUpMax) the reference
// learns every still pixel that differs from it as fast as the fast
// background does, and nothing is timed.
func (d *Detector) updatePixels(frame []byte, dt float32, warmAll bool) {
	decay := func(tau time.Duration) float32 {
		return 1 - float32(math.Exp(-float64(dt)/tau.Seconds()))
	}
	alpha, aRef, aOut := float32(1), decay(refTau), decay(outsideTau)
	if d.steps > 0 {
		alpha = decay(fastTau)
		d.findMotion(frame)
	}
	forget := float32(d.Forget.Seconds())
	for p := range d.age {
		if d.hasPrior[p] != 0 {
			d.priorAge[p] += dt
			switch {
			case d.priorAge[p] >= forget:
				// Whichever look was the object, it has stayed long enough
				// to be part of the scene.
				d.hasPrior[p] = 0
			case d.moving[p] == 0 && d.light.agrees(frame, d.prior, p) && !d.light.agrees(frame, d.ref, p):
				// The place looks as it did before a ghost was learned
				// here: what was learned was an object, and it has left.
				// Kept, the stale reference would make the empty place an
				// object standing there until Forget, holding its zone's
				// episode open all that time (30-min seed 104).
				copy(d.ref[p*3:p*3+3], d.prior[p*3:p*3+3])
				d.hasPrior[p] = 0
			}
		}
		diff := d.light.differs(frame, d.ref, p)
		d.diff[p] = b2u(diff)
		// A pixel stays warm after the warm-up until the frame has agreed
		// with the reference there once (for at most warmUpMax): the
		// reference is the empty scene only where that has been seen.
		// Where something in the first frame left while the warm-up ended
		// (someone walking slowly away; rain keeps the place from looking
		// steady for long), the warm-up learned only part of the empty
		// place, and what it left is neither ghost enough for the outline
		// test nor ever agreeing with the frame again.
		warm := warmAll || (d.seen[p] == 0 && d.elapsed < float32(warmUpMax.Seconds()))
		if !warmAll && !diff {
			d.seen[p] = 1
		}
		mv := d.moving[p] != 0
		// The reference learns the scene in the light of the reference: a
		// pixel that agrees with it where it is (agreeing only with a
		// neighbour would let an object creep into the reference from its
		// edges, a pixel a step), or (outside the zones, where nothing is
		// timed) anything that holds still.
		inside := d.inZone[p] != 0
		settle := warm && diff && d.steady(frame, p)
		if a := aRef; !mv && (settle || (!diff && (!inside || d.light.agrees(frame, d.ref, p))) || (!inside && d.steps > 0)) {
			switch {
			case settle:
				a = alpha
			case diff:
				a = aOut
			}
			g := d.light.at(p%d.w, p/d.w)
			if g > 0.05 {
				for c := 0; c < 3; c++ {
					r := d.ref[p*3+c]
					d.ref[p*3+c] = r + a*(min(float32(frame[p*3+c])/g, 255)-r)
				}
			}
		}
		for c := 0; c < 3; c++ {
			f := d.fast[p*3+c]
			d.fast[p*3+c] = f + alpha*(float32(frame[p*3+c])-f)
		}
		switch {
		case !diff:
			d.miss[p] += dt
			if d.miss[p] > float32(gapTol.Seconds()) {
				d.age[p] = 0
			}
		case mv:
			d.miss[p] = 0
			d.age[p] = max(d.age[p]-dt, 0)
		default:
			d.miss[p] = 0
			d.age[p] += dt
		}
		if d.inZone[p] == 0 || warm {
			d.age[p] = 0 // outside the zones (and while warm) nothing is timed
		}
		if d.age[p] >= forget {
			// Stayed so long that it is part of the scene now.
			g := d.light.at(p%d.w, p/d.w)
			for c := 0; c < 3; c++ {
				d.ref[p*3+c] = min(float32(frame[p*3+c])/max(g, 0.05), 255)
			}
			d.age[p], d.hasPrior[p] = 0, 0
		}
		cand := d.age[p] >= float32(holdAfter.Seconds())
		d.cand[p] = b2u(cand)
		if !cand {
			d.hold[p] = 0
		} else if d.hold[p] == 0 {
			d.fresh = append(d.fresh, int32(p))
		}
	}
	if len(d.fresh) > 0 {
		d.holdBlobs(frame, d.fresh)
		d.fresh = d.fresh[:0]
	}
}

// findMotion marks the pixels that differ from the fast background by more
// than moveLevel in some channel at every position within one pixel: a pole
// swaying in the wind moves the whole picture by a pixel or so, which must
// not make the edges of a standing object look like motion (and so keep it
// from ever ageing), while anything really moving differs everywhere near.
func (d *Detector) findMotion(frame []byte) {
	w, h := d.w, d.h
	for y := range h {
		for x := range w {
			p := y*w + x
			still := false
			for dy := -1; dy <= 1 && !still; dy++ {
				yy := y + dy
				if yy < 0 || yy >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					xx := x + dx
					if xx < 0 || xx >= w {
						continue
					}
					q := (yy*w + xx) * 3
					if absDiff(frame[p*3], d.fast[q]) <= moveLevel && absDiff(frame[p*3+1], d.fast[q+1]) <= moveLevel &&
						absDiff(frame[p*3+2], d.fast[q+2]) <= moveLevel {
						still = true
						break
					}
				}
			}
			d.moving[p] = b2u(!still)
		}
	}
}

// steady tells whether pixel p of the frame is what the fast background
// (about the last second) shows there, within the light model's tolerance.
func (d *Detector) steady(frame []byte, p int) bool {
	return near(float32(frame[p*3]), d.fast[p*3]) && near(float32(frame[p*3+1]), d.fast[p*3+1]) &&
		near(float32(frame[p*3+2]), d.fast[p*3+2])
}

func absDiff(v byte, f float32) float32 {
	if d := float32(v) - f; d >= 0 {
		return d
	}
	return f - float32(v)
}

// updateZone runs one zone's episode state machine.
func (d *Detector) updateZone(z *zoneState, frame []byte, at time.Time) (Episode, bool) {
	// What stays counts where it is seen now: pixels under something moving
	// (someone walking past, or the object itself driving off) do not, so
	// a departure ends the episode with the extent it had while it stood.
	dwell := float32(z.Dwell.Seconds())
	box := image.Rectangle{}
	count := 0
	for _, p := range z.pix {
		if d.age[p] < dwell || d.moving[p] != 0 || d.hold[p] == 0 {
			continue
		}
		count++
		x, y := int(p)%d.w, int(p)/d.w
		box = box.Union(image.Rect(x, y, x+1, y+1))
	}
	share := float64(count) / float64(len(z.pix))
	ep := z.open
	if ep == nil {
		if share < z.MinShare {
			return Episode{}, false
		}
		z.seq++
		start := at.Add(-z.Dwell)
		ep = &openEpisode{lastSeen: at, lastReport: at, bestShare: share}
		ep.rep = Episode{
			ID:   fmt.Sprintf("%s-%s-%d", z.ID, start.UTC().Format("20060102T150405Z"), z.seq),
			Zone: z.ID, Rule: z.Rule, Phase: PhaseNew,
			Box: box, Share: share, Start: start, At: at,
			BestFrameAt: at, BestFrameIndex: d.steps, BestFrame: append([]byte(nil), frame...),
		}
		z.open = ep
		return ep.rep, true
	}
	if share >= z.MinShare/2 {
		ep.lastSeen = at
		if share > ep.bestShare {
			ep.bestShare = share
			ep.rep.BestFrameAt, ep.rep.BestFrameIndex = at, d.steps
			ep.rep.BestFrame = append([]byte(nil), frame...)
		}
	} else if at.Sub(ep.lastSeen) >= d.Grace {
		z.open = nil
		ep.rep.Phase, ep.rep.At = PhaseEnd, at
		return ep.rep, true
	}
	if share < z.MinShare/2 {
		return Episode{}, false // keep the last extent while it may come back
	}
	changed := iou(box, ep.rep.Box) < 0.7 || math.Abs(share-ep.rep.Share) > 0.25*ep.rep.Share
	since := at.Sub(ep.lastReport)
	if since < d.Heartbeat && (!changed || since < minReportGap) {
		return Episode{}, false
	}
	ep.lastReport = at
	ep.rep.Phase, ep.rep.At, ep.rep.Box, ep.rep.Share = PhaseUpdate, at, box, share
	return ep.rep, true
}

// holdBlobs decides about every blob that gained candidates (pixels in a
// zone that have been still foreground for holdAfter) in this step. The blob
// is everything in the zone that differs from the reference and is
// connected to them, so that its outline is the outline of the whole thing
// and not of the part of it that happens to be old enough. A ghost, not an
// object that arrived but a place where one left that the reference has
// never seen empty (an object in view at start-up), is learned into the
// reference at once. In other blobs the candidates are held, which makes
// them count for their zone, once there are enough of them to matter.
func (d *Detector) holdBlobs(frame []byte, fresh []int32) {
	blob := d.scratch
	clear(blob)
	for _, seed := range fresh {
		if blob[seed] != 0 || d.cand[seed] == 0 {
			continue
		}
		pix := d.flood(seed, blob)
		settled := false
		for _, p := range pix {
			settled = settled || (d.hold[p] != 0 && d.age[p] >= float32(2*holdAfter.Seconds()))
		}
		obj := d.thingOf(pix)
		// A blob held for a while was seen arriving and standing; whatever
		// joins it later (someone walking past) does not make it a ghost.
		ghost := !settled && d.isGhost(frame, obj)
		stands := d.standsInZone(obj)
		for _, p := range obj {
			d.thing[p] = 0
		}
		if ghost {
			d.learnGhost(frame, pix)
			continue
		}
		n := 0
		for _, p := range pix {
			n += int(d.cand[p])
		}
		if n >= d.minBlob && stands {
			for _, p := range pix {
				d.hold[p] = d.cand[p]
			}
		}
	}
}

// learnGhost learns a blob judged a ghost into the reference at once. The
// judgement can be wrong: an object that stops where its outline runs along
// edges the reference already has (30-min seed 104: a cart that stopped
// behind a pole was learned 1 s after it stopped). So the reference's
// earlier look is kept (the oldest, if a pixel is learned more than once)
// to go back to when the frame shows it again.
func (d *Detector) learnGhost(frame []byte, pix []int32) {
	for _, p := range pix {
		d.age[p], d.hold[p], d.cand[p] = 0, 0, 0
		if d.moving[p] != 0 {
			continue // not what the place looks like
		}
		i := int(p) * 3
		if d.hasPrior[p] == 0 {
			copy(d.prior[i:i+3], d.ref[i:i+3])
			d.hasPrior[p], d.priorAge[p] = 1, 0
		}
		g := max(d.light.at(int(p)%d.w, int(p)/d.w), 0.05)
		for c := 0; c < 3; c++ {
			d.ref[i+c] = min(float32(frame[i+c])/g, 255)
		}
	}
}

// thingOf follows the still thing a blob belongs to beyond the zone, over
// still pixels that differ from the reference, and marks it in d.thing
// (the caller clears the marks).
func (d *Detector) thingOf(blob []int32) []int32 {
	w, n := d.w, int32(d.w*d.h)
	seen := d.thing
	obj := append(d.objStack[:0], blob...)
	for _, p := range obj {
		seen[p] = 1
	}
	for i := 0; i < len(obj) && len(obj) < int(n)/4; i++ {
		p := obj[i]
		x := int(p) % w
		for _, q := range [4]int32{p - 1, p + 1, p - int32(w), p + int32(w)} {
			if q < 0 || q >= n || (q == p-1 && x == 0) || (q == p+1 && x == w-1) {
				continue
			}
			if seen[q] == 0 && d.diff[q] != 0 && d.moving[q] == 0 {
				seen[q] = 1
				obj = append(obj, q)
			}
		}
	}
	d.objStack = obj
	return obj
}

// standsInZone tells whether a still thing (thingOf) touches the ground
// inside a zone. Zones are drawn on the ground, but a tall thing standing
// beside one (a car waiting in the next lane) covers part of it in the
// picture; what stands in a zone has its foot, the lowest still pixels of
// each of its columns, there.
func (d *Detector) standsInZone(obj []int32) bool {
	w := d.w
	foot := d.footY[:0]
	for range w {
		foot = append(foot, -1)
	}
	for _, p := range obj {
		x, y := int(p)%w, int(p)/w
		foot[x] = max(foot[x], int32(y))
	}
	in, all := 0, 0
	for x, y := range foot {
		if y < 0 {
			continue
		}
		all++
		in += int(d.inZone[int(y)*w+x])
	}
	d.footY = foot
	return 2*in >= all
}

// flood collects the 4-connected zone pixels around seed that are
// candidates or still and differ from the reference, marking them in seen.
func (d *Detector) flood(seed int32, seen []byte) []int32 {
	w, n := d.w, int32(d.w*d.h)
	pix := d.stack[:0]
	seen[seed] = 1
	pix = append(pix, seed)
	for i := 0; i < len(pix); i++ {
		p := pix[i]
		x := int(p) % w
		for _, q := range [4]int32{p - 1, p + 1, p - int32(w), p + int32(w)} {
			if q < 0 || q >= n || (q == p-1 && x == 0) || (q == p+1 && x == w-1) {
				continue
			}
			if seen[q] == 0 && d.inZone[q] != 0 && (d.cand[q] != 0 || (d.diff[q] != 0 && d.moving[q] == 0)) {
				seen[q] = 1
				pix = append(pix, q)
			}
		}
	}
	d.stack = pix
	return pix
}

// isGhost compares the gradient along the outline of a still thing (a blob
// followed beyond its zone by thingOf) in the frame and in the reference.
// The whole thing, because the part of it inside a zone can be all outline
// of the reference: a cart about the colour of the sidewalk differs from
// the empty scene in the zone only where it hides a painted stripe, while
// its load above the zone's far edge has its outline in the frame.
func (d *Detector) isGhost(frame []byte, obj []int32) bool {
	w, h := d.w, d.h
	var frameEdge, bgEdge float64
	for _, p := range obj {
		x, y := int(p)%w, int(p)/w
		if x == 0 || y == 0 || x == w-1 || y == h-1 {
			continue
		}
		// The outline is where the thing meets still pixels that agree
		// with the reference (where it meets something moving it is
		// hidden, not ended, and says nothing).
		edge := false
		for _, q := range [4]int{int(p) - 1, int(p) + 1, int(p) - w, int(p) + w} {
			if d.thing[q] == 0 && d.moving[q] == 0 {
				edge = true
			}
		}
		if !edge {
			continue
		}
		frameEdge += sobel(func(x, y int) float64 {
			i := (y*w + x) * 3
			return lumaF(frame[i], frame[i+1], frame[i+2])
		}, x, y)
		bgEdge += sobel(func(x, y int) float64 {
			i := (y*w + x) * 3
			return d.refLuma(i)
		}, x, y)
	}
	// Where something arrived its outline is in the frame; where it left,
	// in the reference. A clear margin: a new object's outline runs over
	// the reference's own texture too.
	return bgEdge > ghostMargin*frameEdge
}

// refLuma is the reference's brightness at byte offset i, in the light of
// the frame.
func (d *Detector) refLuma(i int) float64 {
	g := float64(d.light.at(i/3%d.w, i/3/d.w))
	return g * (0.114*float64(d.ref[i]) + 0.587*float64(d.ref[i+1]) + 0.299*float64(d.ref[i+2]))
}

func lumaF(b, g, r uint8) float64 { return 0.114*float64(b) + 0.587*float64(g) + 0.299*float64(r) }

// sobel is the gradient magnitude of l at an inner pixel.
func sobel(l func(x, y int) float64, x, y int) float64 {
	gx := l(x+1, y-1) + 2*l(x+1, y) + l(x+1, y+1) - l(x-1, y-1) - 2*l(x-1, y) - l(x-1, y+1)
	gy := l(x-1, y+1) + 2*l(x, y+1) + l(x+1, y+1) - l(x-1, y-1) - 2*l(x, y-1) - l(x+1, y-1)
	return math.Hypot(gx, gy)
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

// rasterize returns the indices of the pixels whose centres lie inside the
// polygon (even-odd rule), clipped to the frame.
func rasterize(poly []image.Point, w, h int) []int32 {
	var out []int32
	if len(poly) < 3 {
		return nil
	}
	var xs []float64
	for y := 0; y < h; y++ {
		cy := float64(y) + 0.5
		xs = xs[:0]
		for i := range poly {
			a, b := poly[i], poly[(i+1)%len(poly)]
			ay, by := float64(a.Y), float64(b.Y)
			if (ay <= cy) == (by <= cy) {
				continue
			}
			xs = append(xs, float64(a.X)+(cy-ay)/(by-ay)*float64(b.X-a.X))
		}
		slices.Sort(xs)
		for i := 0; i+1 < len(xs); i += 2 {
			x0 := max(int(math.Ceil(xs[i]-0.5)), 0)
			x1 := min(int(math.Ceil(xs[i+1]-0.5)), w)
			for x := x0; x < x1; x++ {
				out = append(out, int32(y*w+x))
			}
		}
	}
	return out
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
