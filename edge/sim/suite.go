package sim

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"time"
)

// SuiteOptions size the scenes of the evaluation suite.
type SuiteOptions struct {
	Width    int           // picture width, 16:9 (default 960)
	FPS      int           // frames per second, a keyframe every second (default 10)
	Duration time.Duration // default 3 min; the script is laid out to fit
	Dwell    time.Duration // the zones' dwell time (default 10 s)
}

func (o SuiteOptions) withDefaults() SuiteOptions {
	if o.Width <= 0 {
		o.Width = 960
	}
	if o.FPS <= 0 {
		o.FPS = 10
	}
	if o.Duration <= 0 {
		o.Duration = 3 * time.Minute
	}
	if o.Dwell <= 0 {
		o.Dwell = 10 * time.Second
	}
	return o
}

// suiteBlock is the longest stretch of a suite scene scripted as one: a
// longer scene is laid out as several blocks of at most this length.
const suiteBlock = 180.0

// Suite zone ids and rules.
const (
	ZoneWalkEast = "walk-east" // the right sidewalk: no vending
	ZoneKerbWest = "kerb-west" // the left kerb lane: no parking
	ZoneWalkWest = "walk-west" // the left sidewalk, a fire access: keep clear
)

// suiteZones are the zones as rectangles on the street (metres).
var suiteZones = []struct {
	id, rule       string
	x0, x1, d0, d1 float64
}{
	{ZoneWalkEast, "no_vending", 5.7, 9.0, 28.5, 35.5},
	{ZoneKerbWest, "no_parking", -5.1, -1.9, 19, 27},
	{ZoneWalkWest, "keep_clear", -9.0, -5.7, 29, 36},
}

// SuiteConditions are the conditions of suite seed `seed`. They cycle with
// periods 2 to 5, so any 20 consecutive seeds cover every light (sun,
// clouds, dusk, night), moving shadows, rain, camera shake and heavy
// compression, and most combinations of them.
func SuiteConditions(seed int64) Conditions {
	m := func(k int64) int64 { return ((seed % k) + k) % k }
	c := Conditions{
		Light: []string{LightSun, LightClouds, LightDusk, LightNight}[m(4)],
		Rain:  m(3) == 1,
		Shake: m(5) == 2 || m(5) == 3,
		CRF:   23,
	}
	if m(2) == 1 {
		c.CRF = 33 // visible blocking and smearing
	}
	c.MovingShadows = (c.Light == LightSun || c.Light == LightClouds) && m(3) != 0
	return c
}

// Suite returns suite scene `seed`: a street with 4-5 registered covers of
// several designs, sizes and looks, one or two of which go missing for a
// while (on some seeds one is already missing when the video starts);
// traffic on three lanes, some of it driving over covers and one car
// standing on a cover for a while; pedestrians on the crossing, on the
// sidewalks and walking over covers; and three no-occupation zones where
// stalls, carts, piles of goods and parked vehicles stop for 30-55 s (and
// others only for a few seconds, less than the dwell time). The conditions
// come from SuiteConditions.
func Suite(seed int64, o SuiteOptions) Scene {
	o = o.withDefaults()
	w := o.Width &^ 1
	h := (w*9/16 + 1) &^ 1
	s := Scene{
		Seed: seed, Width: w, Height: h, FPS: o.FPS, GOP: o.FPS,
		Duration:   o.Duration,
		Conditions: SuiteConditions(seed),
		cache:      &assetCache{},
	}
	T := o.Duration.Seconds()
	fps := float64(o.FPS)
	grid := func(t float64) float64 { return math.Round(t*fps) / fps }
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5017e5))
	uni := func(a, b float64) float64 { return a + (b-a)*rng.Float64() }
	cam := newCamera(w, h)
	frame := image.Rect(0, 0, w, h)

	// Covers.
	type spot struct{ x, d, r float64 }
	var where []spot
	codes := []string{"0105", "0102", "0107", "0103", "0104"}
	n := 4 + rng.IntN(2)
	for tries := 0; len(s.Covers) < n && tries < 500; tries++ {
		sp := spot{x: uni(-1.3, 4.8), d: uni(17.5, 26), r: uni(0.36, 0.6)}
		ok := true
		for _, q := range where {
			if math.Hypot(sp.x-q.x, sp.d-q.d) < 2.6 {
				ok = false
			}
		}
		code := codes[rng.IntN(len(codes))]
		shape := ShapeRound
		if code == "0107" || rng.Float64() < 0.25 {
			shape = ShapeSquare
		}
		r := footprint(cam, sp.x, sp.d, sp.r, shape)
		if !ok || !r.In(frame) || r.Dx() < 16 || r.Dy() < 8 {
			continue
		}
		look := LookWorn
		if rng.Float64() < 0.4 {
			look = LookFlush
		}
		id := fmt.Sprintf("110105%s%06d", code, (uint64(seed)%10000)*100+uint64(len(s.Covers)))
		s.Covers = append(s.Covers, Cover{FacilityID: id, Shape: shape, Region: r, Look: look})
		where = append(where, sp)
	}

	// The script is laid out in blocks of at most suiteBlock seconds, each
	// with the events of a suite scene: a long scene repeats them, so an
	// hour of video has as much happening per minute as the 2-3 minute
	// scenes. A scene of up to suiteBlock is one block, as it always was.
	nb := 1
	if T > suiteBlock {
		nb = int(math.Ceil(T / suiteBlock))
	}
	B := T / float64(nb)
	busy := make([][][2]float64, len(s.Covers)) // per cover: when something else is scripted on it
	blocked := make([][][2]float64, 3)          // per lane: when traffic must keep out
	palette := []rgb{{205, 205, 200}, {150, 152, 158}, {30, 32, 36}, {150, 28, 30}, {28, 52, 120}, {60, 62, 66}, {180, 150, 60}, {40, 90, 60}}
	newCar := func(x, dc, tc, v, hold float64) car {
		return car{x: x, dc: dc, tc: tc, v: v, hold: hold, width: uni(1.7, 1.9), len: uni(4.2, 4.9), col: palette[rng.IntN(len(palette))]}
	}
	laneOf := func(x float64) int { return int(math.Round(x/3.5)) + 1 } // 0 left, 1 middle, 2 right
	for _, z := range suiteZones {
		var poly [][2]int
		for _, c := range [][2]float64{{z.x0, z.d0}, {z.x1, z.d0}, {z.x1, z.d1}, {z.x0, z.d1}} {
			p := cam.project(vec3{X: c[0], D: c[1]})
			poly = append(poly, [2]int{min(max(int(math.Round(p.x)), 0), w), min(max(int(math.Round(p.y)), 0), h)})
		}
		s.Zones = append(s.Zones, Zone{ID: z.id, Rule: z.rule, Polygon: poly, Dwell: o.Dwell.Seconds()})
	}
	coats := []rgb{{40, 40, 60}, {150, 40, 40}, {200, 200, 190}, {60, 100, 150}, {90, 70, 50}, {30, 30, 30}, {200, 150, 40}}
	walk := func(x0, d0, x1, d1, t0, pauseAt, pause float64) {
		s.walkers = append(s.walkers, walker{x0: x0, d0: d0, x1: x1, d1: d1, t0: t0, v: uni(1.1, 1.6),
			pauseAt: pauseAt, pause: pause, coat: coats[rng.IntN(len(coats))], legs: coats[rng.IntN(len(coats))].mul(0.6), height: uni(1.55, 1.85)})
	}
	for blk := range nb {
		// Block blk covers [t0, t0+B); its times are t0 + the times of a
		// scene of length B.
		t0 := grid(float64(blk) * B)
		end := t0 + B // traffic of the last block runs on past the end of the video
		if blk == nb-1 {
			end += 4
		}

		// Missing covers: one or two stolen during the block, and on every
		// fifth seed one that is already open when the video starts.
		perm := rng.Perm(len(s.Covers))
		nGaps := 1
		if B >= 120 && rng.IntN(2) == 1 {
			nGaps = 2
		}
		for k := 0; k < nGaps && k < len(perm); k++ {
			c := perm[k]
			from := grid(t0 + uni(15, math.Max(15, B-65)))
			to := grid(math.Min(from+uni(25, 50), t0+B-5))
			if overlaps(busy[c], from, to) {
				continue // (a later block only) the cover is still busy from the block before
			}
			s.gaps = append(s.gaps, gap{facilityID: s.Covers[c].FacilityID, from: from, to: to})
			busy[c] = append(busy[c], [2]float64{from - 10, to + 10})
		}
		if blk == 0 && ((seed%5)+5)%5 == 0 && nGaps < len(perm) {
			c := perm[nGaps]
			to := grid(math.Min(uni(25, 40), B-5))
			s.gaps = append(s.gaps, gap{facilityID: s.Covers[c].FacilityID, from: 0, to: to})
			busy[c] = append(busy[c], [2]float64{-10, to + 10})
		}

		// Zones and what occupies them.
		for _, z := range suiteZones {
			kerb := z.id == ZoneKerbWest
			var taken [][2]float64
			t := t0 + uni(20, 35)
			for k := 0; k < 2; k++ {
				stay := grid(uni(30, 55))
				from := grid(t)
				if from+stay > t0+B-12 {
					break
				}
				x, d := (z.x0+z.x1)/2+uni(-0.3, 0.3), uni(z.d0+1.6, z.d1-1.6)
				ep := Episode{Zone: z.id, Rule: z.rule, From: from, To: from + stay}
				switch {
				case kerb && rng.Float64() < 0.75:
					k := newCar(-3.5+uni(-0.2, 0.2), (z.d0+z.d1)/2, from, uni(5, 8), stay)
					s.cars = append(s.cars, k)
					ep.Kind = KindParked
					ep.Box = boxOf(screenBox(cam, k.body(from+0.01), w, h))
					blocked[0] = append(blocked[0], [2]float64{from - 12, from + stay + 10})
				default:
					kind := []string{KindStall, KindCart, KindPile}[rng.IntN(3)]
					if kerb {
						kind = KindPile
						x = -3.6 + uni(-0.3, 0.3)
						blocked[0] = append(blocked[0], [2]float64{from - 8, from + stay + 8})
					}
					p := prop{kind: kind, x: x, d: d, from: from, to: from + stay, col: palette[rng.IntN(len(palette))].plus(20), salt: rng.Uint64()}
					if kind == KindPile {
						p.col = rgb{168, 128, 86}
					}
					s.props = append(s.props, p)
					ep.Kind = kind
					ep.Box = boxOf(screenBox(cam, p.solids(), w, h))
				}
				s.episodes = append(s.episodes, ep)
				taken = append(taken, [2]float64{from, from + stay})
				t = from + stay + uni(15, 30)
			}
			// A short stop, shorter than half the dwell: a delivery, a cart
			// resting, a car letting someone out. Not an episode.
			if rng.Float64() < 0.8 {
				for tries := 0; tries < 20; tries++ {
					from := grid(t0 + uni(15, B-15))
					stay := grid(uni(0.25, 0.45) * o.Dwell.Seconds())
					free := true
					for _, e := range taken {
						if from < e[1]+12 && from+stay > e[0]-12 {
							free = false
						}
					}
					if !free {
						continue
					}
					if kerb {
						s.cars = append(s.cars, newCar(-3.5, (z.d0+z.d1)/2, from, uni(5, 8), stay))
						blocked[0] = append(blocked[0], [2]float64{from - 10, from + stay + 8})
					} else {
						s.props = append(s.props, prop{kind: KindCart, x: (z.x0 + z.x1) / 2, d: uni(z.d0+1, z.d1-1), from: from, to: from + stay,
							col: palette[rng.IntN(len(palette))], salt: rng.Uint64()})
					}
					break
				}
			}
		}

		// A car standing on a cover for a while (waiting to turn, a breakdown).
		if len(s.Covers) > 0 {
			for tries := 0; tries < 20; tries++ {
				c := rng.IntN(len(s.Covers))
				from := grid(t0 + uni(10, B-30))
				hold := grid(uni(8, 20))
				if overlaps(busy[c], from-5, from+hold+5) {
					continue
				}
				sp := where[c]
				lane := laneOf(sp.x)
				if lane == 0 || overlaps(blocked[lane], from-8, from+hold+8) {
					continue
				}
				s.cars = append(s.cars, newCar(sp.x+uni(-0.15, 0.15), sp.d+uni(-0.8, 0.8), from, uni(5, 8), hold))
				blocked[lane] = append(blocked[lane], [2]float64{from - 8, from + hold + 8})
				busy[c] = append(busy[c], [2]float64{from, from + hold})
				break
			}
		}
		// Traffic on the three lanes; some of it over the covers.
		for lane, lx := range []float64{-3.5, 0, 3.5} {
			for t := t0 + uni(-8, 4); t < end; t += uni(5, 15) {
				if overlaps(blocked[lane], t-3, t+3) || (lane == 0 && rng.Float64() < 0.5) {
					continue
				}
				x := lx + uni(-0.3, 0.3)
				for _, sp := range where {
					if laneOf(sp.x) == lane && rng.Float64() < 0.3 {
						x = sp.x + uni(-0.2, 0.2) // straight over this cover
					}
				}
				s.cars = append(s.cars, newCar(x, 20, t, uni(6, 12), 0))
			}
		}

		// Pedestrians: on the crossing, along the sidewalks (through the
		// zones), and across the road over a cover, stopping on it.
		for range 3 + rng.IntN(3) {
			d := uni(34, 37)
			if rng.IntN(2) == 0 {
				walk(-9.5, d, 9.5, d, t0+uni(0, B-10), 1, 0)
			} else {
				walk(9.5, d, -9.5, d, t0+uni(0, B-10), 1, 0)
			}
		}
		for range 4 + rng.IntN(3) {
			x := uni(6, 8.8)
			if rng.IntN(2) == 0 {
				x = -x
			}
			if rng.IntN(2) == 0 {
				walk(x, 18, x+uni(-0.5, 0.5), 42, t0+uni(-10, B-5), 1, 0)
			} else {
				walk(x, 42, x+uni(-0.5, 0.5), 18, t0+uni(-10, B-5), 1, 0)
			}
		}
		for range 1 + rng.IntN(2) {
			c := rng.IntN(len(where))
			sp := where[c]
			x0, x1 := -8.0, 8.0
			if rng.IntN(2) == 0 {
				x0, x1 = x1, x0
			}
			walk(x0, sp.d+0.1, x1, sp.d+0.1, t0+uni(5, B-20), (sp.x-x0)/(x1-x0), uni(2, 6))
		}
	}

	// Light.
	switch s.Conditions.Light {
	case LightClouds:
		s.drift = drift{base: 0.8, a1: uni(0.08, 0.14), p1: uni(25, 50), ph1: uni(0, 2*math.Pi), a2: 0.02, p2: uni(7, 12), ph2: uni(0, 2*math.Pi)}
	case LightDusk:
		s.drift = drift{base: 0.85, ramp: -0.3 / T, a1: 0.02, p1: uni(30, 60), ph1: uni(0, 2*math.Pi)}
	case LightNight:
		s.drift = drift{base: 1, a1: 0.015, p1: uni(30, 60), ph1: uni(0, 2*math.Pi)}
	default:
		s.drift = drift{base: 1, a1: uni(0.03, 0.05), p1: uni(40, 70), ph1: uni(0, 2*math.Pi), a2: 0.015, p2: uni(7, 12), ph2: uni(0, 2*math.Pi)}
	}
	if s.Conditions.Rain {
		s.drift.base *= 0.85
		s.drift.ramp *= 0.85
	}
	if s.Conditions.MovingShadows {
		k := int(math.Ceil(T / 35))
		for i := range k {
			vx := uni(1.5, 3)
			start := (float64(i) + rng.Float64()) * T / float64(k)
			s.clouds = append(s.clouds, cloudShadow{x0: -22 - vx*start, d0: uni(15, 40), vx: vx, vd: uni(-0.5, 0.5),
				rx: uni(5, 9), rd: uni(6, 12), k: uni(0.55, 0.7)})
		}
	}
	return s
}

// footprint is the pixel box of a cover of radius (or half side) r at
// (x, d) on the road.
func footprint(cam camera, x, d, r float64, shape string) image.Rectangle {
	var pts []pt
	if shape == ShapeSquare {
		for _, c := range [][2]float64{{x - r, d - r}, {x + r, d - r}, {x + r, d + r}, {x - r, d + r}} {
			pts = append(pts, cam.project(vec3{X: c[0], D: c[1]}))
		}
	} else {
		pts = []pt{cam.project(vec3{X: x - r, D: d}), cam.project(vec3{X: x + r, D: d}),
			cam.project(vec3{X: x, D: d - r}), cam.project(vec3{X: x, D: d + r})}
	}
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		x0, x1 = math.Min(x0, p.x), math.Max(x1, p.x)
		y0, y1 = math.Min(y0, p.y), math.Max(y1, p.y)
	}
	return image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1)), int(math.Ceil(y1)))
}

func boxOf(r image.Rectangle) [4]int { return [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y} }

func overlaps(ivs [][2]float64, from, to float64) bool {
	for _, iv := range ivs {
		if from < iv[1] && to > iv[0] {
			return true
		}
	}
	return false
}
