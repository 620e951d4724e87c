package occupancy

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests render a small street at 2 frames per second: a textured road
// with lane marks and a sidewalk, sensor noise on every frame, and objects
// (rectangles with their own texture) scripted in time.

const (
	sw, sh = 240, 160
	fps    = 2
)

type object struct {
	w, h   int
	bgr    [3]float64
	stripe bool // a textured object (windows, cargo) rather than a plain one
	// pos gives the object's top-left corner at time t (seconds) and
	// whether it is in view.
	pos func(t float64) (image.Point, bool)
}

type scene struct {
	objects []object
	gain    func(t float64) float64 // global brightness; nil means 1
	seconds float64
}

// street is the empty scene's texture: road, lane marks, curb, sidewalk
// slabs and a few million years of stains.
func street() []float64 {
	r := rand.New(rand.NewPCG(7, 7))
	img := make([]float64, sw*sh*3)
	// low-frequency stains on a coarse grid, bilinearly interpolated
	const g = 16
	stain := make([]float64, (sw/g+2)*(sh/g+2))
	for i := range stain {
		stain[i] = r.Float64()*30 - 15
	}
	for y := 0; y < sh; y++ {
		for x := 0; x < sw; x++ {
			fx, fy := float64(x)/g, float64(y)/g
			ix, iy := int(fx), int(fy)
			ax, ay := fx-float64(ix), fy-float64(iy)
			at := func(i, j int) float64 { return stain[j*(sw/g+2)+i] }
			s := (1-ay)*((1-ax)*at(ix, iy)+ax*at(ix+1, iy)) + ay*((1-ax)*at(ix, iy+1)+ax*at(ix+1, iy+1))
			base := [3]float64{95, 98, 100} // asphalt
			switch {
			case y < 40: // sidewalk slabs
				base = [3]float64{150, 155, 160}
				if x%24 == 0 || y%20 == 0 {
					base = [3]float64{110, 112, 115}
				}
			case y < 44: // curb
				base = [3]float64{185, 185, 185}
			case y >= 98 && y < 102 && (x/20)%2 == 0: // dashed lane mark
				base = [3]float64{210, 215, 215}
			}
			grain := r.Float64()*16 - 8
			for c := 0; c < 3; c++ {
				img[(y*sw+x)*3+c] = base[c] + s + grain
			}
		}
	}
	return img
}

// noise is sensor noise (σ = 2.5 grey levels); every frame reads it from a
// random offset.
var noise = func() []float64 {
	r := rand.New(rand.NewPCG(3, 3))
	n := make([]float64, 1<<16+7)
	for i := range n {
		n[i] = r.NormFloat64() * 2.5
	}
	return n
}()

// frames renders the scene at fps; noise is fresh for every frame.
// sceneStart is the time of a scene's first frame.
func sceneStart() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }

func (sc scene) frames() (frames [][]byte, times []time.Time) {
	bg := street()
	r := rand.New(rand.NewPCG(1, 9))
	t0 := sceneStart()
	for k := 0; float64(k)/fps < sc.seconds; k++ {
		t := float64(k) / fps
		img := append([]float64(nil), bg...)
		for _, o := range sc.objects {
			p, ok := o.pos(t)
			if !ok {
				continue
			}
			for y := max(p.Y, 0); y < min(p.Y+o.h, sh); y++ {
				for x := max(p.X, 0); x < min(p.X+o.w, sw); x++ {
					v := o.bgr
					if o.stripe && ((x-p.X)/4+(y-p.Y)/6)%3 == 0 {
						v = [3]float64{v[0] * 0.5, v[1] * 0.5, v[2] * 0.5}
					}
					copy(img[(y*sw+x)*3:], v[:])
				}
			}
		}
		gain := 1.0
		if sc.gain != nil {
			gain = sc.gain(t)
		}
		f := make([]byte, len(img))
		off := r.IntN(len(noise))
		for i, v := range img {
			f[i] = byte(min(max(math.Round(v*gain+noise[(off+i)%len(noise)]), 0), 255))
		}
		frames = append(frames, f)
		times = append(times, t0.Add(time.Duration(t*float64(time.Second))))
	}
	return frames, times
}

// moving goes from a to b between t0 and t1 and is out of view otherwise.
func moving(a, b image.Point, t0, t1 float64) func(float64) (image.Point, bool) {
	return func(t float64) (image.Point, bool) {
		if t < t0 || t > t1 {
			return image.Point{}, false
		}
		f := (t - t0) / (t1 - t0)
		return image.Pt(a.X+int(math.Round(f*float64(b.X-a.X))), a.Y+int(math.Round(f*float64(b.Y-a.Y)))), true
	}
}

// stops drives in from a, stays at s from tStop to tGo, then leaves to b.
func stops(a, s, b image.Point, tIn, tStop, tGo, tOut float64) func(float64) (image.Point, bool) {
	in, out := moving(a, s, tIn, tStop), moving(s, b, tGo, tOut)
	return func(t float64) (image.Point, bool) {
		switch {
		case t < tStop:
			return in(t)
		case t <= tGo:
			return s, true
		default:
			return out(t)
		}
	}
}

// Zones: a no-parking stretch of the road and a no-vending stretch of the
// sidewalk.
var testZones = []Zone{
	{ID: "road-1", Rule: NoParking, Polygon: []image.Point{{60, 60}, {180, 60}, {180, 140}, {60, 140}}, Dwell: 10 * time.Second, MinShare: 0.1},
	{ID: "walk-1", Rule: NoVending, Polygon: []image.Point{{20, 4}, {220, 4}, {220, 38}, {20, 38}}, Dwell: 10 * time.Second, MinShare: 0.1},
}

func TestScenes(t *testing.T) {
	car := func(a, b image.Point, t0, t1 float64) object {
		return object{w: 44, h: 22, bgr: [3]float64{150, 60, 40}, stripe: true, pos: moving(a, b, t0, t1)}
	}
	person := func(a, b image.Point, t0, t1 float64) object {
		return object{w: 6, h: 14, bgr: [3]float64{40, 50, 160}, pos: moving(a, b, t0, t1)}
	}
	for _, tc := range []struct {
		name string
		sc   scene
		// want lists the expected reports as "zone phase" in order, with
		// the time window (seconds) in which each must come.
		want []want
	}{
		{
			name: "car passes through the zone in 3 s",
			sc: scene{seconds: 60, objects: []object{
				car(image.Pt(-50, 70), image.Pt(250, 70), 20, 23),
				car(image.Pt(250, 110), image.Pt(-50, 110), 35, 38),
			}},
		},
		{
			name: "car queues in the zone for less than the dwell",
			sc: scene{seconds: 60, objects: []object{
				{w: 44, h: 22, bgr: [3]float64{40, 140, 200}, stripe: true,
					pos: stops(image.Pt(-50, 70), image.Pt(100, 70), image.Pt(250, 70), 20, 22, 28, 31)},
			}},
		},
		{
			name: "people cross the road and walk the sidewalk",
			sc: scene{seconds: 70, objects: []object{
				person(image.Pt(100, 0), image.Pt(104, 160), 15, 35),
				person(image.Pt(0, 20), image.Pt(240, 22), 20, 70),
				person(image.Pt(230, 10), image.Pt(0, 26), 25, 65),
			}},
		},
		{
			name: "slow global brightness ramp",
			sc: scene{seconds: 150, gain: func(t float64) float64 {
				return 1 - 0.45*min(max(t-10, 0)/120, 1) // dusk: −45 % over two minutes
			}},
		},
		{
			name: "cloud: brightness drops by a third within 3 s and stays",
			sc: scene{seconds: 80, gain: func(t float64) float64 {
				return 1 - 0.33*min(max(t-20, 0)/3, 1)
			}},
		},
		{
			name: "box stops in the road zone longer than the dwell, then leaves",
			sc: scene{seconds: 90, objects: []object{
				{w: 48, h: 32, bgr: [3]float64{60, 110, 170}, stripe: true,
					pos: stops(image.Pt(-50, 80), image.Pt(90, 80), image.Pt(250, 80), 15, 17, 55, 58)},
			}},
			want: []want{
				{"road-1", PhaseNew, 27, 33, image.Rect(90, 80, 138, 112)},
				{"road-1", PhaseEnd, 56, 66, image.Rect(90, 80, 138, 112)},
			},
		},
		{
			name: "stall on the sidewalk with people passing in front, under a slow ramp",
			sc: scene{seconds: 110,
				gain: func(t float64) float64 { return 1 + 0.2*min(t/110, 1) },
				objects: []object{
					{w: 50, h: 26, bgr: [3]float64{30, 160, 200}, stripe: true,
						pos: stops(image.Pt(260, 8), image.Pt(100, 8), image.Pt(-60, 8), 10, 13, 80, 84)},
					person(image.Pt(0, 24), image.Pt(240, 24), 30, 45),
					person(image.Pt(240, 20), image.Pt(0, 24), 50, 62),
				}},
			want: []want{
				{"walk-1", PhaseNew, 23, 29, image.Rect(100, 8, 150, 34)},
				{"walk-1", PhaseEnd, 81, 92, image.Rectangle{}},
			},
		},
		{
			// The van is in the first frame, so the slow model learns it as
			// background; where it stood looks changed once it leaves.
			name: "van parked at start-up leaves (a ghost)",
			sc: scene{seconds: 60, objects: []object{
				{w: 60, h: 36, bgr: [3]float64{60, 110, 170}, stripe: true,
					pos: stops(image.Pt(90, 76), image.Pt(90, 76), image.Pt(250, 76), 0, 0, 15, 18)},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, log := runScene(t, tc.sc, testZones)
			start := sceneStart()
			// updates are allowed between new and end; check the rest in order
			var key []Episode
			for _, e := range got {
				if e.Phase != PhaseUpdate {
					key = append(key, e)
				}
			}
			if len(key) != len(tc.want) {
				t.Fatalf("got %d new/end reports, want %d:%s", len(key), len(tc.want), log)
			}
			for i, w := range tc.want {
				e := key[i]
				s := e.At.Sub(start).Seconds()
				if e.Zone != w.zone || e.Phase != w.phase || s < w.from || s > w.to {
					t.Errorf("report %d: got %s, want %s %s at %g-%g s%s", i, describe(e, start), w.zone, w.phase, w.from, w.to, log)
				}
				if !w.box.Empty() && iou(e.Box, w.box) < 0.7 {
					t.Errorf("report %d: box %v, the object is at %v", i, e.Box, w.box)
				}
			}
			t.Logf("reports:%s", log)
		})
	}
}

type want struct {
	zone, phase string
	from, to    float64         // seconds into the scene
	box         image.Rectangle // where the object is; empty: not checked
}

func describe(e Episode, t0 time.Time) string {
	return fmt.Sprintf("%s %s at %v (id %s, box %v, share %.2f, best frame at %v)",
		e.Zone, e.Phase, e.At.Sub(t0), e.ID, e.Box, e.Share, e.BestFrameAt.Sub(t0))
}

// checkEpisodes checks what every episode must satisfy, whatever the scene.
func checkEpisodes(t *testing.T, eps []Episode, heartbeat time.Duration) {
	t.Helper()
	open := map[string]Episode{}
	for _, e := range eps {
		prev, isOpen := open[e.ID]
		if isOpen && e.Phase != PhaseEnd && e.At.Sub(prev.At) > heartbeat+time.Second/fps {
			t.Errorf("episode %s: %v between reports, heartbeat is %v", e.ID, e.At.Sub(prev.At), heartbeat)
		}
		switch e.Phase {
		case PhaseNew:
			if isOpen {
				t.Errorf("episode %s new twice", e.ID)
			}
			open[e.ID] = e
		case PhaseUpdate, PhaseEnd:
			if !isOpen {
				t.Errorf("episode %s %s without new", e.ID, e.Phase)
				continue
			}
			if !e.Start.Equal(prev.Start) || e.Zone != prev.Zone || e.Rule != prev.Rule {
				t.Errorf("episode %s changed identity: %+v then %+v", e.ID, prev, e)
			}
			open[e.ID] = e
			if e.Phase == PhaseEnd {
				delete(open, e.ID)
			}
		}
		if e.Box.Empty() || e.Share <= 0 || e.Share > 1 || len(e.BestFrame) != sw*sh*3 || e.BestFrameAt.After(e.At) {
			t.Errorf("episode %s %s: bad box %v, share %g, best frame %d bytes at %v", e.ID, e.Phase, e.Box, e.Share, len(e.BestFrame), e.BestFrameAt)
		}
	}
}

// BenchmarkStep is the cost of one 2-fps step at 240×160 with a car passing
// and a box standing in a zone.
func BenchmarkStep(b *testing.B) {
	frames, times := scene{seconds: 60, objects: []object{
		{w: 44, h: 22, bgr: [3]float64{150, 60, 40}, stripe: true, pos: moving(image.Pt(-50, 70), image.Pt(250, 70), 20, 40)},
		{w: 48, h: 32, bgr: [3]float64{60, 110, 170}, stripe: true,
			pos: stops(image.Pt(-50, 80), image.Pt(90, 80), image.Pt(90, 80), 5, 7, 60, 60)},
	}}.frames()
	d, err := New(testZones, sw, sh)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		d.Step(frames[i], times[i])
	}
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		d.Step(frames[40+i%(len(frames)-40)], times[0].Add(time.Duration(40+i)*time.Second/fps))
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(b.N), "cpu-ms/frame")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestWrongGhostIsUndone: an object whose outline lies along edges of the
// reference (here a dark box that stops exactly on two sidewalk slabs,
// bordered by their dark joints; on 30-min seed 104 a cart behind a pole)
// looks like a ghost and is learned into the reference as it settles. When
// it leaves, the empty slabs differ from that reference, and their outline
// is now in the frame, so they are no ghost: they were held as an object,
// and the zone stayed occupied until Forget (2 h), swallowing every later
// occupation of it. The reference must go back to the look it had before.
func TestWrongGhostIsUndone(t *testing.T) {
	box := object{w: 47, h: 19, bgr: [3]float64{110, 112, 115},
		pos: stops(image.Pt(260, 1), image.Pt(97, 1), image.Pt(260, 1), 10, 12, 40, 42)}
	cart := object{w: 40, h: 26, bgr: [3]float64{30, 160, 200}, stripe: true,
		pos: stops(image.Pt(-60, 8), image.Pt(40, 8), image.Pt(-60, 8), 80, 82, 120, 122)}
	sc := scene{seconds: 160, objects: []object{box, cart}}
	got, log := runScene(t, sc, testZones)
	start := sceneStart()
	var key []string
	for _, e := range got {
		if e.Phase != PhaseUpdate {
			key = append(key, fmt.Sprintf("%s %s %.0f", e.Zone, e.Phase, e.At.Sub(start).Seconds()))
		}
	}
	// The box itself may be missed (it was taken for a ghost); what must
	// not happen is an episode where it stood after it left that never
	// ends, and the cart later must be reported, and end.
	n := 0
	for _, e := range got {
		if e.Phase == PhaseNew {
			n++
		}
	}
	var ends int
	for _, e := range got {
		if e.Phase == PhaseEnd {
			ends++
		}
	}
	if n != ends {
		t.Errorf("%d episodes started, %d ended: %v%s", n, ends, key, log)
	}
	found := false
	for _, e := range got {
		s := e.At.Sub(start).Seconds()
		if e.Phase == PhaseNew && s >= 90 && s <= 100 && iou(e.Box, image.Rect(40, 8, 80, 34)) >= 0.5 {
			found = true
		}
	}
	if !found {
		t.Errorf("the cart (82-120 s) was not reported as a new episode at 92-100 s: %v%s", key, log)
	}
	t.Logf("reports: %v%s", key, log)
}

// runScene runs a detector with the test zones (or zones) over sc and
// returns its reports and a log of them.
func runScene(t *testing.T, sc scene, zones []Zone) ([]Episode, string) {
	t.Helper()
	d, err := New(zones, sw, sh)
	if err != nil {
		t.Fatal(err)
	}
	d.Heartbeat = 15 * time.Second
	frames, times := sc.frames()
	var got []Episode
	for i, f := range frames {
		got = append(got, d.Step(f, times[i])...)
	}
	var log strings.Builder
	for _, e := range got {
		log.WriteString("\n  " + describe(e, times[0]))
	}
	checkEpisodes(t, got, d.Heartbeat)
	return got, log.String()
}

// TestFirstFrameIsNotTheEmptyScene: the first frame is one instant, and
// whatever passes then (a car, someone walking, headlights on the road) is
// in it. Taken as the empty scene, the place it left looks like an object
// from then on unless the outline test calls it a ghost, and it does not
// where the thing's outline ran along edges the empty scene has too (here
// a box the colour of the sidewalk's joints, on two slabs, that moves off
// in the first two seconds; seeds 22, 28 and 30: a walker before a pole, a
// car, a car's headlights, each held as an occupation from the first
// seconds to the end of the video). The warm-up learns what is still in
// its first seconds; nothing may be reported.
func TestFirstFrameIsNotTheEmptyScene(t *testing.T) {
	box := object{w: 47, h: 19, bgr: [3]float64{110, 112, 115},
		pos: stops(image.Pt(97, 1), image.Pt(97, 1), image.Pt(260, 1), 0, 0, 0.5, 2)}
	got, log := runScene(t, scene{seconds: 60, objects: []object{box}}, testZones)
	if len(got) > 0 {
		t.Errorf("reports where a box stood in the first frame only:%s", log)
	}
}

// TestCartOverStripeIsNoGhost: a cart whose body is about the colour of
// the sidewalk stops over a painted stripe at the far edge of a zone, its
// load above the zone's edge. Inside the zone it differs from the empty
// scene only where it hides the stripe, so the part of it the zone sees
// has the stripe's outline, which is in the reference: taken alone, it
// looks like the place where a stripe-shaped thing left (a ghost), and the
// cart was learned as background at once (seeds 29, 31, 43: stalls and
// carts on the far sidewalks, missed). The outline test must look at the
// whole still thing, the load beyond the zone too, whose outline is in the
// frame.
func TestCartOverStripeIsNoGhost(t *testing.T) {
	zone := Zone{ID: "walk-far", Rule: NoVending, Polygon: []image.Point{{20, 14}, {220, 14}, {220, 38}, {20, 38}}, Dwell: 10 * time.Second}
	still := func(x, y int) func(float64) (image.Point, bool) {
		return func(float64) (image.Point, bool) { return image.Pt(x, y), true }
	}
	path := func(dy int) func(float64) (image.Point, bool) {
		return stops(image.Pt(260, 4+dy), image.Pt(100, 4+dy), image.Pt(260, 4+dy), 10, 12, 60, 62)
	}
	sc := scene{seconds: 80, objects: []object{
		{w: 200, h: 6, bgr: [3]float64{40, 170, 210}, pos: still(20, 14)},        // the stripe
		{w: 40, h: 30, bgr: [3]float64{158, 163, 168}, pos: path(0)},             // the cart's body
		{w: 40, h: 11, bgr: [3]float64{40, 40, 150}, stripe: true, pos: path(0)}, // its load
	}}
	got, log := runScene(t, sc, []Zone{zone})
	found := false
	for _, e := range got {
		s := e.At.Sub(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)).Seconds()
		if e.Phase == PhaseNew && s >= 21 && s <= 28 && e.Box.Overlaps(image.Rect(100, 14, 140, 34)) {
			found = true
		}
	}
	if !found {
		t.Errorf("the cart (12-60 s) was not reported at 22-28 s:%s", log)
	}
	t.Logf("reports:%s", log)
}

// TestWarmUpFollowsTheSteps: the warm-up lasts as long as the steps add
// up, not until the clock passes the first frame's time plus warmUp: a
// camera's clock set back an hour after start-up (agents time frames by
// the wall clock) must not leave the detector warming up, timing nothing,
// for that hour.
func TestWarmUpFollowsTheSteps(t *testing.T) {
	box := object{w: 48, h: 32, bgr: [3]float64{60, 110, 170}, stripe: true,
		pos: stops(image.Pt(-50, 80), image.Pt(90, 80), image.Pt(250, 80), 15, 17, 55, 58)}
	frames, times := scene{seconds: 60, objects: []object{box}}.frames()
	d, err := New(testZones, sw, sh)
	if err != nil {
		t.Fatal(err)
	}
	news := 0
	for i, f := range frames {
		at := times[i]
		if i >= 2*fps { // from 2 s on, the clock reads an hour earlier
			at = at.Add(-time.Hour)
		}
		for _, e := range d.Step(f, at) {
			if e.Phase == PhaseNew {
				news++
			}
		}
	}
	if news != 1 {
		t.Errorf("%d new reports of the box that stood 17-55 s, want 1", news)
	}
}

// TestLeftAsTheWarmUpEnds: something in view at start-up that leaves only
// as the warm-up ends (someone walking slowly away; seed 52, in the rain)
// is still in the reference where it stood, and when its outline runs
// along edges the empty scene has too the outline test does not call the
// place a ghost. The warm-up must go on where the frame has not yet agreed
// with the reference; nothing may be reported.
func TestLeftAsTheWarmUpEnds(t *testing.T) {
	for _, leave := range []float64{3, 4.5} {
		box := object{w: 47, h: 19, bgr: [3]float64{110, 112, 115},
			pos: stops(image.Pt(97, 1), image.Pt(97, 1), image.Pt(260, 1), 0, 0, leave, leave+1.5)}
		got, log := runScene(t, scene{seconds: 60, objects: []object{box}}, testZones)
		if len(got) > 0 {
			t.Errorf("reports where a box stood until %g s:%s", leave, log)
		}
	}
}
