package sim

import (
	"math"
	"sync"
)

// Light conditions.
const (
	LightSun    = "sun"
	LightClouds = "clouds"
	LightDusk   = "dusk"
	LightNight  = "night"
)

// Conditions are a scene's light, weather and camera. The zero value is a
// sunny day, a steady camera and the encoder's default quality.
type Conditions struct {
	Light         string `json:"light"`          // LightSun (also ""), LightClouds, LightDusk or LightNight
	MovingShadows bool   `json:"moving_shadows"` // cloud shadows sweeping over the street
	Rain          bool   `json:"rain"`           // streaks of falling rain, a duller picture
	Shake         bool   `json:"shake"`          // the pole sways: the picture moves by a few pixels
	CRF           int    `json:"crf"`            // x264 constant rate factor (0: ffmpeg's default, 23); 33+ shows blocking
}

// shadowK is how much light a thing's cast shadow leaves.
func (c Conditions) shadowK() float64 {
	switch c.Light {
	case LightClouds:
		return 0.85
	case LightDusk:
		return 0.8
	case LightNight:
		return 1
	}
	return 0.5
}

// headlights reports whether cars drive with their lights on.
func (c Conditions) headlights() bool { return c.Light == LightDusk || c.Light == LightNight }

// lamps are the street lights (the lamp posts among the furniture); they
// matter at dusk and at night.
var lamps = []vec3{{X: -5.85, D: 25, H: 14}, {X: -5.85, D: 38, H: 14}, {X: 5.85, D: 31, H: 14}}

// Street-light pools: gain ambient + Σ lampPeak·exp(-r²/2σ²) at ground
// distance r from a lamp's foot.
const (
	nightAmbient = 0.12
	duskAmbient  = 0.55
	lampPeak     = 1.0
	lampSigma    = 3.5
	// DarkGain is the light (relative to daylight) below which a cover is
	// too dark to judge: the truth lists such covers in DarkCovers.
	DarkGain = 0.3
)

// staticLight is the gain of the steady light (ambient and street lamps) on
// the ground at (X, D).
func (c Conditions) staticLight(X, D float64) float64 {
	var amb, peak float64
	switch c.Light {
	case LightNight:
		amb, peak = nightAmbient, lampPeak
	case LightDusk:
		amb, peak = duskAmbient, 0.35*lampPeak
	default:
		return 1
	}
	g := amb
	for _, l := range lamps {
		r2 := (X-l.X)*(X-l.X) + (D-l.D)*(D-l.D)
		g += peak * math.Exp(-r2/(2*lampSigma*lampSigma))
	}
	return g
}

// cloudShadow is the shadow of a cloud drifting over the street: an
// ellipse on the ground (radii rx, rd metres) moving at (vx, vd) m/s.
type cloudShadow struct {
	x0, d0, vx, vd, rx, rd, k float64
}

// lightField is the per-pixel light of a scene whose light is not uniform.
type lightField struct {
	static []uint16  // steady light per pixel, gain·256
	rowD   []float64 // ground depth seen by each row (a level camera: depth depends on the row only)
	pool   sync.Pool // []uint16 frame buffers
	clouds []cloudShadow
}

func (s Scene) needsLight() bool {
	c := s.Conditions
	return c.Light == LightDusk || c.Light == LightNight || c.MovingShadows
}

func newLightField(s Scene, cam camera) *lightField {
	w, h := s.Width, s.Height
	lf := &lightField{static: make([]uint16, w*h), rowD: make([]float64, h), clouds: s.clouds}
	for y := range h {
		_, D := cam.ground(0, float64(y)+0.5, 0)
		lf.rowD[y] = D
		for x := range w {
			X := (float64(x) + 0.5 - cam.vx) * D / cam.f
			lf.static[y*w+x] = uint16(math.Min(4, s.Conditions.staticLight(X, D)) * 256)
		}
	}
	return lf
}

// apply lights the frame in dst (BGR) as it is at time t: steady light,
// cloud shadows passing, and the headlight beams of the cars driving.
func (lf *lightField) apply(s Scene, cam camera, dst []byte, t float64) {
	w, h := s.Width, s.Height
	g, _ := lf.pool.Get().([]uint16)
	if len(g) != len(lf.static) {
		g = make([]uint16, len(lf.static))
	}
	defer lf.pool.Put(g)
	copy(g, lf.static)
	for _, c := range lf.clouds {
		cx, cd := c.x0+c.vx*t, c.d0+c.vd*t
		for y := range h {
			D := lf.rowD[y]
			v := (D - cd) / c.rd
			if math.Abs(v) > 1.2 {
				continue
			}
			// Only the columns whose ground point can be inside the
			// ellipse (q < 1.44): |X - cx| < rx·sqrt(1.44 - v²).
			half := c.rx * math.Sqrt(math.Max(0, 1.44-v*v))
			x0, x1 := lf.columns(cam, D, cx-half, cx+half, w)
			for x := x0; x < x1; x++ {
				X := (float64(x) + 0.5 - cam.vx) * D / cam.f
				u := (X - cx) / c.rx
				q := u*u + v*v
				if q >= 1.44 {
					continue
				}
				m := 1 - (1-c.k)*(1-smooth(0.64, 1.44, q))
				g[y*w+x] = uint16(float64(g[y*w+x]) * m)
			}
		}
	}
	if s.Conditions.headlights() {
		for _, k := range s.cars {
			if !k.visible(t) || !k.moving(t) {
				continue
			}
			front := k.rear(t) + k.len
			const reach = 16.0
			for y := range h {
				D := lf.rowD[y]
				a := (D - front) / reach
				if a < 0 || a > 1 {
					continue
				}
				hw := k.width/2 + 2.2*a
				add := 1.2 * (1 - a) * math.Min(1, a*6)
				x0, x1 := lf.columns(cam, D, k.x-hw, k.x+hw, w)
				for x := x0; x < x1; x++ {
					X := (float64(x) + 0.5 - cam.vx) * D / cam.f
					e := clamp01((hw - math.Abs(X-k.x)) / 0.6)
					if e > 0 {
						g[y*w+x] = uint16(math.Min(1000, float64(g[y*w+x])+256*add*e))
					}
				}
			}
		}
	}
	for p, gp := range g {
		if gp == 256 {
			continue
		}
		i := p * 3
		for c := i; c < i+3; c++ {
			v := (uint32(dst[c]) * uint32(gp)) >> 8
			if v > 255 {
				v = 255
			}
			dst[c] = byte(v)
		}
	}
}

// columns is the range of pixel columns [x0, x1) whose centres see ground
// points with X in [lo, hi] on a row at depth D, widened by a pixel on each
// side (the loops it bounds still test every pixel, so it only saves the
// columns that cannot pass).
func (lf *lightField) columns(cam camera, D, lo, hi float64, w int) (int, int) {
	a := cam.vx + lo*cam.f/D - 0.5
	b := cam.vx + hi*cam.f/D - 0.5
	x0 := int(math.Max(0, math.Floor(a)-1))
	x1 := int(math.Min(float64(w), math.Ceil(b)+2))
	if x1 < x0 {
		x1 = x0
	}
	return x0, x1
}

// rain draws the streaks of falling rain of frame i over dst.
func (s Scene) rain(cv canvas, i int, salt uint64) {
	scale := float64(s.Width) / 960
	n := int(260 * scale * scale)
	for k := range n {
		hsh := hash3(salt, uint64(i), uint64(k)+0x7a17)
		x := unit(hsh) * float64(s.Width)
		y := unit(hash3(hsh, 1, 2)) * float64(s.Height)
		l := (8 + 16*unit(hash3(hsh, 3, 4))) * scale
		cv.line(pt{x, y}, pt{x + 0.25*l, y + l}, 0.6*scale, rgb{205, 208, 212}, 0.3)
	}
}

// shakeAt is the picture's offset in pixels at frame i when the pole sways:
// a slow sway of about 2 px plus a jitter of up to 1 px (at 960 wide).
func (s Scene) shakeAt(i int, salt uint64) (dx, dy int) {
	t := float64(i) / float64(s.FPS)
	a := 2 * float64(s.Width) / 960
	jx := unit(hash3(salt, uint64(i), 0x5a1)) - 0.5
	jy := unit(hash3(salt, uint64(i), 0x5a2)) - 0.5
	dx = int(math.Round(a*math.Sin(2*math.Pi*t/2.3+1) + 2*jx))
	dy = int(math.Round(0.6*a*math.Sin(2*math.Pi*t/3.1) + 2*jy))
	return dx, dy
}

var shiftPool sync.Pool

// shift moves the picture in dst by (dx, dy) pixels, repeating the edge.
func shift(dst []byte, w, h, dx, dy int) {
	if dx == 0 && dy == 0 {
		return
	}
	tmp, _ := shiftPool.Get().([]byte)
	if len(tmp) != len(dst) {
		tmp = make([]byte, len(dst))
	}
	defer shiftPool.Put(tmp)
	copy(tmp, dst)
	row := w * 3
	dx = min(max(dx, -(w-1)), w-1)
	for y := range h {
		sy := min(max(y-dy, 0), h-1)
		src := tmp[sy*row : (sy+1)*row]
		out := dst[y*row : (y+1)*row]
		// out[x] = src[clamp(x-dx)]: one block copy, the edge pixel repeated
		// where the picture moved away from the border.
		if dx >= 0 {
			copy(out[dx*3:], src[:(w-dx)*3])
			for x := range dx {
				out[x*3], out[x*3+1], out[x*3+2] = src[0], src[1], src[2]
			}
		} else {
			copy(out, src[-dx*3:])
			e := (w - 1) * 3
			for x := w + dx; x < w; x++ {
				out[x*3], out[x*3+1], out[x*3+2] = src[e], src[e+1], src[e+2]
			}
		}
	}
}
