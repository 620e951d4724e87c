// Package sim owns the deterministic street-camera simulator: it renders a
// fixed pole-camera view of a road with registered manhole covers, scripts
// what happens to them (a cover stolen and replaced, cars driving over
// them, light drifting, sensor noise), encodes the frames as H.264 MPEG-TS
// through ffmpeg, and writes the ground-truth timeline the edge detectors are
// scored against. The same seed always gives the same raw frames, so a
// detector regression can be replayed bit for bit.
package sim

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Cover shapes.
const (
	ShapeRound  = "round"
	ShapeSquare = "square"
)

// Cover states in the truth timeline; they are the protocol's words, so a
// detector's reports can be compared with the truth without translation.
const (
	StatePresent  = wire.CoverPresent
	StateMissing  = wire.CoverMissing
	StateOccluded = wire.CoverOccluded
)

// OcclusionThreshold is the share of a cover's region a car must hide for
// the truth to call the cover occluded.
const OcclusionThreshold = 0.30

// Cover looks: a worn cast-iron lid with high relief and rust, or a newer
// flush lid with low relief and little contrast.
const (
	LookWorn  = "worn"
	LookFlush = "flush"
)

// Cover is a registered manhole cover as the device config knows it, and
// how it looks.
type Cover struct {
	FacilityID string          // 16-digit part id
	Shape      string          // ShapeRound or ShapeSquare
	Region     image.Rectangle // bounding box in pixels, the region the edge checks
	Look       string          // LookWorn (also "") or LookFlush
}

// Interval is one stretch of a cover's state, in seconds from the start of
// the video, From inclusive and To exclusive.
type Interval struct {
	FacilityID string  `json:"facility_id"`
	State      string  `json:"state"`
	From       float64 `json:"from_s"`
	To         float64 `json:"to_s"`
}

// Truth is what really happened in a rendered scene.
type Truth struct {
	Seed       int64       `json:"seed"`
	Width      int         `json:"width"`
	Height     int         `json:"height"`
	FPS        int         `json:"fps"`
	Duration   float64     `json:"duration_s"`
	Conditions *Conditions `json:"conditions,omitempty"`
	Covers     []Cover     `json:"covers"`
	Timeline   []Interval  `json:"timeline"`
	// DarkCovers are covers whose light is below DarkGain for the whole
	// scene (night, away from the street lamps): a detector may call them
	// unknown, so their missing intervals are not counted against recall.
	DarkCovers []string  `json:"dark_covers,omitempty"`
	Zones      []Zone    `json:"zones,omitempty"`
	Episodes   []Episode `json:"episodes,omitempty"`
}

// Zone is a no-occupation zone of the scene, as a device config gives it.
type Zone struct {
	ID      string   `json:"id"`
	Rule    string   `json:"rule"`    // keep_clear, no_vending or no_parking
	Polygon [][2]int `json:"polygon"` // pixels
	Dwell   float64  `json:"dwell_s"` // how long something must stay to count
}

// Episode is one occupation of a zone: something (Kind) stood in it from
// From to To seconds, covering Box ([x0, y0, x1, y1] pixels) of the picture.
// Only things that stay at least the zone's dwell time are episodes.
type Episode struct {
	Zone string  `json:"zone"`
	Rule string  `json:"rule"`
	Kind string  `json:"kind"`
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	Box  [4]int  `json:"box"`
}

// Scene is a scripted street scene. Build one with Skeleton; Duration may
// be shortened to render less (the script keeps its times). A Scene
// literal renders the street and its covers with nothing happening.
type Scene struct {
	Seed          int64
	Width, Height int
	FPS           int
	GOP           int // frames between keyframes
	Duration      time.Duration
	Covers        []Cover
	Conditions    Conditions
	Zones         []Zone

	gaps     []gap // covers missing for a while
	cars     []car
	walkers  []walker
	props    []prop
	clouds   []cloudShadow
	episodes []Episode
	drift    drift
	cache    *assetCache // shared by copies of the scene; rebuilt if Seed/size/covers change
}

// gap is a cover missing from From to To (seconds); after To a new lid is in place.
type gap struct {
	facilityID string
	from, to   float64
}

// drift is the slow global brightness change (clouds, sun angle, auto
// exposure hunting): gain = 1 + a1*sin(2πt/p1+ph1) + a2*sin(2πt/p2+ph2).
type drift struct {
	a1, p1, ph1 float64
	a2, p2, ph2 float64
	base, ramp  float64 // overall level (0 means 1) and its change per second (dusk falling)
}

func (d drift) gain(t float64) float64 {
	g := 1.0
	if d.base != 0 {
		g = d.base + d.ramp*t
	}
	if d.p1 > 0 {
		g += d.a1 * math.Sin(2*math.Pi*t/d.p1+d.ph1)
	}
	if d.p2 > 0 {
		g += d.a2 * math.Sin(2*math.Pi*t/d.p2+d.ph2)
	}
	return g
}

// The skeleton scene's registered covers. The device config references
// these regions, so they are constants, not seeded.
const (
	PowerCover   = "1101050105000123"
	SewageCover  = "1101050102000456"
	TelecomCover = "1101050107000789"
)

// SkeletonCovers returns the skeleton scene's three registered covers.
func SkeletonCovers() []Cover {
	return []Cover{
		{FacilityID: PowerCover, Shape: ShapeRound, Region: image.Rect(560, 430, 680, 490)},
		{FacilityID: SewageCover, Shape: ShapeRound, Region: image.Rect(300, 520, 400, 575)},
		{FacilityID: TelecomCover, Shape: ShapeSquare, Region: image.Rect(900, 380, 980, 430)},
	}
}

// Skeleton returns the walking-skeleton scene: 1280x720 at 25 fps, a
// keyframe every second, 60 s. The power cover goes missing at about 12 s
// and is replaced at about 40 s; one car drives over the telecom cover at
// about 8 s and another over the sewage cover at about 25 s. The seed
// jitters those times by up to ±1 s (to whole frames) and varies the car
// colours and speeds, the lighting drift, the textures and the sensor noise;
// the cover layout never changes.
func Skeleton(seed int64) Scene {
	s := Scene{
		Seed: seed, Width: 1280, Height: 720, FPS: 25, GOP: 25,
		Duration: 60 * time.Second,
		Covers:   SkeletonCovers(),
		cache:    &assetCache{},
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_0f_5ce7e))
	// jitter returns t ± 1 s on the frame grid, so truth boundaries are frame times.
	jitter := func(t float64) float64 {
		return math.Round((t+2*rng.Float64()-1)*float64(s.FPS)) / float64(s.FPS)
	}
	s.gaps = []gap{{facilityID: PowerCover, from: jitter(12), to: jitter(40)}}

	cam := newCamera(s.Width, s.Height)
	palette := []rgb{
		{205, 205, 200}, // white
		{150, 152, 158}, // silver
		{30, 32, 36},    // black
		{150, 28, 30},   // red
		{28, 52, 120},   // blue
		{60, 62, 66},    // graphite
	}
	pick := rng.Perm(len(palette))
	for i, spec := range []struct {
		over string  // cover the car drives over
		x    float64 // lane offset from the cover centre, metres
		at   float64 // nominal time its centre passes the cover
	}{
		{TelecomCover, 0.05, 8},
		{SewageCover, -0.35, 25},
	} {
		X, D := coverWorld(cam, s.Covers, spec.over)
		s.cars = append(s.cars, car{
			x:     X + spec.x,
			dc:    D,
			tc:    jitter(spec.at),
			v:     5 + 2*rng.Float64(), // 18-25 km/h: slow city traffic
			width: 1.78 + 0.1*rng.Float64(),
			len:   4.4 + 0.4*rng.Float64(),
			col:   palette[pick[i]],
		})
	}
	s.drift = drift{
		a1: 0.05 + 0.02*rng.Float64(), p1: 40 + 30*rng.Float64(), ph1: 2 * math.Pi * rng.Float64(),
		a2: 0.02, p2: 7 + 5*rng.Float64(), ph2: 2 * math.Pi * rng.Float64(),
	}
	return s
}

// coverWorld returns the road position (metres) of a cover's centre.
func coverWorld(cam camera, covers []Cover, id string) (X, D float64) {
	for _, c := range covers {
		if c.FacilityID == id {
			r := c.Region
			return cam.ground(float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2, 0)
		}
	}
	panic("sim: script references unknown cover " + id)
}

// Frames is the number of frames in the scene.
func (s Scene) Frames() int {
	return int(math.Round(s.Duration.Seconds() * float64(s.FPS)))
}

var facilityRE = regexp.MustCompile(`^[0-9]{16}$`)

// Validate checks the scene can be rendered and encoded.
func (s Scene) Validate() error {
	switch {
	case s.Width <= 0 || s.Height <= 0 || s.Width%2 != 0 || s.Height%2 != 0:
		// yuv420p needs even dimensions.
		return fmt.Errorf("size: %dx%d must be positive and even", s.Width, s.Height)
	case s.FPS <= 0:
		return fmt.Errorf("fps: %d must be positive", s.FPS)
	case s.GOP <= 0:
		return fmt.Errorf("gop: %d must be positive", s.GOP)
	case s.Frames() <= 0:
		return fmt.Errorf("duration: %v is shorter than one frame", s.Duration)
	}
	frame := image.Rect(0, 0, s.Width, s.Height)
	seen := map[string]bool{}
	for i, c := range s.Covers {
		switch {
		case !facilityRE.MatchString(c.FacilityID):
			return fmt.Errorf("covers[%d].facility_id: %q is not a 16-digit part id", i, c.FacilityID)
		case seen[c.FacilityID]:
			return fmt.Errorf("covers[%d].facility_id: %s appears twice", i, c.FacilityID)
		case c.Shape != ShapeRound && c.Shape != ShapeSquare:
			return fmt.Errorf("covers[%d].shape: %q is not round or square", i, c.Shape)
		case c.Region.Empty() || !c.Region.In(frame):
			return fmt.Errorf("covers[%d].region: %v is empty or outside the %dx%d frame", i, c.Region, s.Width, s.Height)
		case c.Look != "" && c.Look != LookWorn && c.Look != LookFlush:
			return fmt.Errorf("covers[%d].look: %q is not worn or flush", i, c.Look)
		}
		seen[c.FacilityID] = true
	}
	return nil
}

// lidState is what sits in a cover's hole at time t.
type lidState int

const (
	lidOriginal lidState = iota
	lidMissing
	lidReplaced // a new lid after the theft: cleaner, darker paint
)

func (s Scene) lidAt(id string, t float64) lidState {
	st := lidOriginal
	for _, g := range s.gaps {
		if g.facilityID != id {
			continue
		}
		switch {
		case t >= g.from && t < g.to:
			return lidMissing
		case t >= g.to:
			st = lidReplaced
		}
	}
	return st
}

// Truth computes the ground-truth timeline without rendering: one state
// per frame and cover, merged into intervals that tile [0, duration].
func (s Scene) Truth() Truth {
	n := s.Frames()
	fps := float64(s.FPS)
	cam := newCamera(s.Width, s.Height)
	tr := Truth{
		Seed: s.Seed, Width: s.Width, Height: s.Height, FPS: s.FPS,
		Duration: float64(n) / fps,
		Covers:   append([]Cover(nil), s.Covers...),
		Zones:    append([]Zone(nil), s.Zones...),
	}
	if s.Conditions != (Conditions{}) {
		c := s.Conditions
		tr.Conditions = &c
	}
	states := make([][]string, len(s.Covers))
	for i := range n {
		t := float64(i) / fps
		occ := s.occluders(cam, t)
		for j, c := range s.Covers {
			st := StatePresent
			if s.lidAt(c.FacilityID, t) == lidMissing {
				st = StateMissing
			}
			if hiddenShare(occ, c.Region) > OcclusionThreshold {
				st = StateOccluded
			}
			states[j] = append(states[j], st)
		}
	}
	for j, c := range s.Covers {
		var cur *Interval
		for i, st := range states[j] {
			if cur == nil || cur.State != st {
				tr.Timeline = append(tr.Timeline, Interval{FacilityID: c.FacilityID, State: st, From: float64(i) / fps})
				cur = &tr.Timeline[len(tr.Timeline)-1]
			}
			cur.To = float64(i+1) / fps
		}
		r := c.Region
		X, D := cam.ground(float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2, 0)
		if s.Conditions.staticLight(X, D)*s.drift.gain(0) < DarkGain {
			tr.DarkCovers = append(tr.DarkCovers, c.FacilityID)
		}
	}
	for _, e := range s.episodes {
		if e.From >= tr.Duration {
			continue
		}
		e.To = math.Min(e.To, tr.Duration)
		tr.Episodes = append(tr.Episodes, e)
	}
	return tr
}

// assetCache holds what is expensive to build and the same for every frame.
type assetCache struct {
	mu  sync.Mutex
	key string
	a   *assets
}

func (s Scene) cacheKey() string {
	return fmt.Sprint(s.Seed, s.Width, s.Height, s.Covers, s.Conditions, s.clouds)
}

// sharedCache serves scenes that were not made by Skeleton.
var sharedCache assetCache

// loadAssets returns the scene's static assets, building them on first use.
func (s Scene) loadAssets() *assets {
	c := s.cache
	if c == nil {
		c = &sharedCache
	}
	key := s.cacheKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a == nil || c.key != key {
		c.a, c.key = buildAssets(s), key
	}
	return c.a
}

// Frame renders frame i as packed BGR24 (Width*Height*3 bytes) into dst.
// It depends only on the scene and i, so frames can be rendered in any order
// or in parallel.
func (s Scene) Frame(i int, dst []byte) {
	n := s.Width * s.Height * 3
	if len(dst) < n {
		panic(fmt.Sprintf("sim: Frame dst has %d bytes, need %d", len(dst), n))
	}
	dst = dst[:n]
	a := s.loadAssets()
	t := float64(i) / float64(s.FPS)
	copy(dst, a.bg)
	cv := canvas{pix: dst, w: s.Width, h: s.Height}
	for _, c := range a.covers {
		switch s.lidAt(c.FacilityID, t) {
		case lidMissing:
			c.paste(cv, c.missing)
		case lidReplaced:
			c.paste(cv, c.replaced)
		}
	}
	shadowK := s.Conditions.shadowK()
	for _, k := range s.things(t) {
		k.draw(cv, a.cam, t, shadowK)
	}
	if a.light != nil {
		a.light.apply(s, a.cam, dst, t)
	}
	a.expose(dst, i, s.drift.gain(t))
	if s.Conditions.Rain {
		s.rain(cv, i, a.salt)
	}
	if s.Conditions.Shake {
		dx, dy := s.shakeAt(i, a.salt)
		shift(dst, s.Width, s.Height, dx, dy)
	}
}

// FrameImage renders frame i as an image, for previews and evidence tests.
func (s Scene) FrameImage(i int) *image.RGBA {
	buf := make([]byte, s.Width*s.Height*3)
	s.Frame(i, buf)
	img := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	for p, q := 0, 0; p < len(buf); p, q = p+3, q+4 {
		img.Pix[q], img.Pix[q+1], img.Pix[q+2], img.Pix[q+3] = buf[p+2], buf[p+1], buf[p], 255
	}
	return img
}
