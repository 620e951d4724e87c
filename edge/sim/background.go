package sim

import (
	"image"
	"math"
	"math/rand/v2"
)

// Street layout in metres, in the road's own coordinates (see vec3). The
// three lanes are 3.5 m wide and the covers sit inside them, clear of the
// paint, as they do on a real road.
const (
	roadHalf   = 5.25 // kerb line
	kerbTop    = 5.45 // outer edge of the kerb stones
	walkOuter  = 9.45 // outer edge of the sidewalk; a planted strip beyond
	kerbHeight = 0.15
	laneLine   = 1.75 // dashed lane dividers at ±laneLine
	edgeLine   = 5.0  // solid edge lines at ±edgeLine
	stopLine   = 31.5 // depth of the stop line; the zebra crossing follows
	zebraFrom  = 33.5
	zebraTo    = 37.5
)

// noiseSlack is how far the per-frame sensor-noise window can slide in the
// shared noise table; sliding a window is what makes noise cost one add.
const noiseSlack = 1 << 20

// Sensor noise levels: a noise byte n means n-noiseZero grey levels.
const (
	noiseLevels = 13
	noiseZero   = 6
)

// assets is everything that is the same for every frame of a scene.
type assets struct {
	cam    camera
	bg     []byte // the street with every cover present, packed BGR24
	covers []coverAssets
	noise  []byte // sensor noise, len(bg)+noiseSlack, see expose
	salt   uint64
	light  *lightField // nil when the light is the same everywhere
}

// coverAssets holds a cover's region as it looks in its other states,
// already composited over the street, so a frame only copies rows.
type coverAssets struct {
	Cover
	missing, replaced []byte
}

func (c coverAssets) paste(cv canvas, src []byte) {
	r := c.Region
	row := r.Dx() * 3
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := (y*cv.w + r.Min.X) * 3
		copy(cv.pix[o:o+row], src[(y-r.Min.Y)*row:])
	}
}

// expose applies the frame's exposure gain and sensor noise to dst in place.
// Noise bytes are 0..noiseLevels-1 around noiseZero, so one table lookup
// does gain, noise and clamping together.
func (a *assets) expose(dst []byte, frame int, gain float64) {
	var tab [16 * 256]byte
	for n := range noiseLevels {
		for v := range 256 {
			tab[n<<8|v] = byteOf(float64(v)*gain + float64(n-noiseZero))
		}
	}
	off := int(hash3(a.salt, uint64(frame), 0x0015e) % noiseSlack)
	nz := a.noise[off : off+len(dst)]
	for i, v := range dst {
		dst[i] = tab[(int(nz[i])<<8|int(v))&(len(tab)-1)]
	}
}

// streetObject is static furniture standing on the sidewalk.
type streetObject struct {
	pole           bool    // a vertical cylinder (lamp post, tree trunk, bollard) ...
	bark           bool    // ... textured like a trunk
	x, d, r, h     float64 // ... at (x, d) with radius r and height h
	col            rgb
	x0, x1, d0, d1 float64 // otherwise a box (cabinet, bin) of height h
}

// furniture is the street's static furniture, placed clear of the covers.
var furniture = []streetObject{
	{pole: true, x: -5.85, d: 25, r: 0.1, h: 14, col: rgb{150, 152, 156}},           // lamp posts
	{pole: true, x: -5.85, d: 38, r: 0.1, h: 14, col: rgb{150, 152, 156}},           //
	{pole: true, x: 5.85, d: 31, r: 0.1, h: 14, col: rgb{150, 152, 156}},            //
	{pole: true, x: -6.6, d: 31, r: 0.14, h: 14, col: rgb{96, 80, 64}, bark: true},  // tree trunks
	{pole: true, x: 6.6, d: 27, r: 0.14, h: 14, col: rgb{92, 76, 60}, bark: true},   //
	{pole: true, x: 6.6, d: 35.5, r: 0.15, h: 14, col: rgb{98, 82, 64}, bark: true}, //
	{pole: true, x: 5.7, d: 32.6, r: 0.07, h: 0.8, col: rgb{170, 170, 60}},          // bollards at the crossing
	{pole: true, x: -5.7, d: 32.6, r: 0.07, h: 0.8, col: rgb{170, 170, 60}},
	{x0: 7.5, x1: 8.1, d0: 25.4, d1: 26.6, h: 1.5, col: rgb{120, 140, 122}},  // telecom cabinet
	{x0: 6.0, x1: 6.45, d0: 33.4, d1: 33.85, h: 0.95, col: rgb{40, 110, 72}}, // litter bin
}

// treeAt lists the tree trunks; their canopies are above the frame but
// their dappled shadows are on the ground.
var treeAt = []vec3{{X: -6.6, D: 31}, {X: 6.6, D: 27}, {X: 6.6, D: 35.5}}

// coverFootprint is a cover's outline on the road, for the collar of
// repaired asphalt around it.
type coverFootprint struct {
	x, d, rx, rd float64
	round        bool
}

func buildAssets(s Scene) *assets {
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0xa55e75))
	a := &assets{cam: newCamera(s.Width, s.Height), salt: rng.Uint64()}
	w, h := s.Width, s.Height
	a.bg = make([]byte, w*h*3)
	cv := canvas{pix: a.bg, w: w, h: h}

	var feet []coverFootprint
	for _, c := range s.Covers {
		r := c.Region
		x, d := a.cam.ground(float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2, 0)
		_, dFar := a.cam.ground(0, float64(r.Min.Y), 0)
		_, dNear := a.cam.ground(0, float64(r.Max.Y), 0)
		f := coverFootprint{x: x, d: (dFar + dNear) / 2, rx: float64(r.Dx()) / 2 * d / a.cam.f, rd: (dFar - dNear) / 2, round: true}
		if c.Shape == ShapeSquare {
			f.x, f.rx, f.d, f.rd = squareOnRoad(a.cam, r)
			f.round = false
		}
		feet = append(feet, f)
	}

	salt := a.salt
	for y := range h {
		for x := range w {
			groundPixel(a.cam, x, y, salt, feet).put(a.bg, (y*w+x)*3)
		}
	}
	drawCracks(cv, a.cam, rng, feet)
	drawFurnitureShadows(cv, a.cam)

	// Covers: keep the street under each one, then composite every look.
	for _, c := range s.Covers {
		under := crop(cv, c.Region)
		ca := coverAssets{Cover: c}
		present := renderCover(a.cam, c, lidOriginal, under, salt)
		ca.missing = renderCover(a.cam, c, lidMissing, under, salt)
		ca.replaced = renderCover(a.cam, c, lidReplaced, under, salt)
		ca.paste(cv, present)
		a.covers = append(a.covers, ca)
	}
	drawFurniture(cv, a.cam, salt)

	// Lens vignetting, applied to the street and to the cover looks alike.
	vig := func(pix []byte, x0, y0, rw, rh int) {
		cx, cy := float64(w)/2, float64(h)/2
		for y := range rh {
			for x := range rw {
				dx, dy := (float64(x0+x)+0.5-cx)/cx, (float64(y0+y)+0.5-cy)/cx
				m := 1 - 0.16*(dx*dx+dy*dy)
				i := (y*rw + x) * 3
				pix[i] = byte(float64(pix[i]) * m)
				pix[i+1] = byte(float64(pix[i+1]) * m)
				pix[i+2] = byte(float64(pix[i+2]) * m)
			}
		}
	}
	vig(a.bg, 0, 0, w, h)
	for _, c := range a.covers {
		r := c.Region
		vig(c.missing, r.Min.X, r.Min.Y, r.Dx(), r.Dy())
		vig(c.replaced, r.Min.X, r.Min.Y, r.Dx(), r.Dy())
	}

	if s.needsLight() {
		a.light = newLightField(s, a.cam)
	}

	// Sensor noise: roughly Gaussian, sigma 2.8 levels, independent per byte.
	a.noise = make([]byte, len(a.bg)+noiseSlack)
	for i := 0; i < len(a.noise); i += 2 {
		u := rng.Uint64()
		for j := 0; j < 2 && i+j < len(a.noise); j++ {
			// Two uniform 0..6 draws: triangular over 0..12, centred on noiseZero.
			p, q := (u>>(32*j))&0xffff, (u>>(32*j+16))&0xffff
			a.noise[i+j] = byte((p*7)>>16 + (q*7)>>16)
		}
	}
	return a
}

// crop copies region r of cv.
func crop(cv canvas, r image.Rectangle) []byte {
	row := r.Dx() * 3
	out := make([]byte, row*r.Dy())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := (y*cv.w + r.Min.X) * 3
		copy(out[(y-r.Min.Y)*row:], cv.pix[o:o+row])
	}
	return out
}

// groundPixel is the colour of the street surface seen through pixel (x, y).
func groundPixel(cam camera, x, y int, salt uint64, feet []coverFootprint) rgb {
	fx, fy := float64(x)+0.5, float64(y)+0.5
	X, D := cam.ground(fx, fy, 0)
	grain := unit(hash3(uint64(x), uint64(y), salt)) - 0.5
	var c rgb
	switch {
	case math.Abs(X) <= roadHalf:
		c = road(cam, fx, fy, X, D, grain, salt, feet)
	default:
		Xs, Ds := cam.ground(fx, fy, kerbHeight)
		if math.Abs(Xs) < roadHalf {
			// The kerb's vertical face; the left one faces the sun.
			k := 0.62
			if X < 0 {
				k = 0.9
			}
			c = grey(150 + 30*(vnoise(Ds*3, 0, salt+40)-0.5) + 16*grain).mul(k)
		} else {
			c = sidewalk(Xs, Ds, grain, salt)
		}
	}
	return c.mul(treeShade(X, D, salt))
}

// treeShade is the dappled shade of the canopies above the frame.
func treeShade(X, D float64, salt uint64) float64 {
	k := 1.0
	for _, t := range treeAt {
		c := shadowOf(vec3{X: t.X, D: t.D, H: 6})
		r := math.Hypot(X-c.X, (D-c.D)*0.8)
		if r > 2.8 {
			continue
		}
		leaves := smooth(0.38, 0.5, fbm(X*2.2, D*2.2, salt+50))
		k *= 1 - 0.5*smooth(2.8, 1.6, r)*leaves
	}
	return k
}

func road(cam camera, fx, fy, X, D, grain float64, salt uint64, feet []coverFootprint) rgb {
	v := 96 + 16*(fbm(X*0.45, D*0.45, salt+1)-0.5) + 9*(vnoise(X*4, D*4, salt+2)-0.5) + 20*grain
	// Aggregate: the odd light stone and dark pit in the grain.
	if g := grain + 0.5; g > 0.975 {
		v += 30
	} else if g < 0.02 {
		v -= 22
	}
	// Wheel tracks are polished darker; oil drips between them.
	for _, lane := range []float64{-3.5, 0, 3.5} {
		for _, o := range []float64{-0.8, 0.8} {
			v *= 1 - 0.07*smooth(0.35, 0.1, math.Abs(X-lane-o))
		}
		drip := smooth(0.5, 0.1, math.Abs(X-lane)) * smooth(0.55, 0.8, vnoise(X*3, D*1.2, salt+3))
		v -= 18 * drip
	}
	c := rgb{v, v, v + 3}
	// Gutter: sand and grime along the kerb.
	if g := roadHalf - math.Abs(X); g < 0.45 {
		dirt := smooth(0.45, 0.05, g) * (0.5 + 0.5*vnoise(X*6, D*2, salt+4))
		c = mix(c, rgb{112, 100, 84}, 0.55*dirt)
	}
	// Collars of newer asphalt around the covers.
	for _, f := range feet {
		var q float64
		if f.round {
			q = math.Hypot((X-f.x)/f.rx, (D-f.d)/f.rd)
		} else {
			q = math.Max(math.Abs(X-f.x)/f.rx, math.Abs(D-f.d)/f.rd)
		}
		if q < 1.35 {
			c = c.mul(0.89 + 0.03*smooth(1.2, 1.35, q))
			if q > 1.3 {
				c = c.mul(0.8) // the saw-cut seam
			}
		}
	}
	if a := paint(cam, fx, fy); a > 0 {
		wear := 0.7 + 0.3*vnoise(X*9, D*9, salt+5)
		c = mix(c, rgb{222, 222, 214}.plus(10*grain), a*wear)
	}
	// A storm drain grate in the gutter: not a registered cover, but a
	// detector has to leave it alone.
	if X > -roadHalf && X < -4.85 && D > 23 && D < 24 {
		lx, ld := X+roadHalf, D-23
		switch {
		case lx < 0.04 || lx > 0.36 || ld < 0.04 || ld > 0.96:
			c = grey(78 + 14*grain)
		case math.Mod(ld, 0.075) < 0.04:
			c = grey(14)
		default:
			c = grey(66 + 14*grain)
		}
	}
	return c
}

// paint returns the coverage (0..1) of road markings at a pixel, with 2x2
// supersampling so the thin far lines stay smooth.
func paint(cam camera, fx, fy float64) float64 {
	var n int
	for _, o := range [4][2]float64{{-0.25, -0.25}, {0.25, -0.25}, {-0.25, 0.25}, {0.25, 0.25}} {
		X, D := cam.ground(fx+o[0], fy+o[1], 0)
		if painted(X, D) {
			n++
		}
	}
	return float64(n) / 4
}

func painted(X, D float64) bool {
	ax := math.Abs(X)
	switch {
	case math.Abs(ax-edgeLine) < 0.075: // solid edge lines
		return D < zebraFrom-0.5 || D > zebraTo+0.5
	case math.Abs(ax-laneLine) < 0.075: // lane dividers: dashed, solid near the stop line
		if D > stopLine {
			return D > zebraTo+1.5 && math.Mod(D, 9) < 3
		}
		return D > 25.5 || math.Mod(D, 9) < 3
	case D > stopLine && D < stopLine+0.4 && ax < edgeLine:
		return true
	case D > zebraFrom && D < zebraTo && ax < edgeLine-0.2:
		return math.Mod(X+10, 1.0) < 0.45
	}
	// Straight-ahead arrows in each lane before the stop line.
	for _, lane := range []float64{-3.5, 0, 3.5} {
		dx := math.Abs(X - lane)
		if D > 26 && D < 28.8 && dx < 0.1 {
			return true
		}
		if D >= 28.8 && D < 30.2 && dx < 0.42*(30.2-D)/1.4 {
			return true
		}
	}
	return false
}

func sidewalk(X, D, grain float64, salt uint64) rgb {
	ax := math.Abs(X)
	switch {
	case ax < kerbTop: // granite kerb stones, a joint every metre
		c := grey(168 + 18*(vnoise(X*4, D*4, salt+10)-0.5) + 14*grain)
		if math.Mod(D, 1.0) < 0.015 {
			c = c.mul(0.6)
		}
		return c
	case ax > walkOuter+0.1: // planted strip: low hedge and grass
		n := fbm(X*1.6, D*1.6, salt+11)
		leaf := vnoise(X*14, D*14, salt+12)
		k := 0.55 + 0.7*n + 0.25*(leaf-0.5) + 0.2*grain
		return rgb{58 * k, 96 * k, 46 * k}
	case ax > walkOuter: // edging stones
		return grey(150 + 12*grain)
	}
	for _, t := range treeAt { // tree pits: soil inside a granite frame
		if dx, dd := math.Abs(X-t.X), math.Abs(D-t.D); dx < 0.65 && dd < 0.65 {
			if dx > 0.58 || dd > 0.58 {
				return grey(150 + 12*grain)
			}
			k := 0.8 + 0.4*vnoise(X*10, D*10, salt+13) + 0.2*grain
			return rgb{74 * k, 60 * k, 46 * k}
		}
	}
	l := ax - kerbTop
	if l > 2.0 && l < 2.4 { // tactile guide strip, ribbed
		c := rgb{205, 170, 62}.mul(0.92 + 0.08*vnoise(X*5, D*5, salt+14)).plus(10 * grain)
		if math.Mod(l-2.0, 0.1) < 0.03 {
			c = c.mul(0.82)
		}
		return c
	}
	// 40 cm concrete tiles, each a slightly different shade.
	ti, tj := math.Floor(l/0.4), math.Floor(D/0.4)
	tone := unit(hash3(uint64(int64(ti)), uint64(int64(tj)), salt+15)) - 0.5
	c := rgb{140, 137, 132}.plus(14*tone + 14*(fbm(X*0.8, D*0.8, salt+16)-0.5) + 16*grain)
	if l-ti*0.4 < 0.015 || D-tj*0.4 < 0.015 {
		c = c.mul(0.7)
	}
	return c
}

// drawCracks draws a few tar-sealed cracks, kept away from the covers so a
// cover's present look is its own.
func drawCracks(cv canvas, cam camera, rng *rand.Rand, feet []coverFootprint) {
	for range 9 {
		p := vec3{X: -4.6 + 9.2*rng.Float64(), D: 17 + 22*rng.Float64()}
		ang := 2 * math.Pi * rng.Float64()
		width := 0.02 + 0.025*rng.Float64()
		steps := 8 + rng.IntN(20)
	walk:
		for range steps {
			ang += 0.5 * rng.NormFloat64()
			q := p.add(vec3{X: 0.25 * math.Cos(ang), D: 0.25 * math.Sin(ang)})
			if math.Abs(q.X) > roadHalf-0.2 || q.D < 12 {
				break
			}
			for _, f := range feet {
				if math.Hypot((q.X-f.x)/f.rx, (q.D-f.d)/f.rd) < 2.2 {
					break walk
				}
			}
			a, b := cam.project(p), cam.project(q)
			hw := math.Max(0.6, width*cam.f/q.D/2)
			cv.line(a, b, hw, rgb{36, 36, 38}, 0.85)
			p = q
		}
	}
}

// line draws an anti-aliased thick segment.
func (cv canvas) line(a, b pt, hw float64, col rgb, opacity float64) {
	x0, y0, x1, y1, ok := cv.polyBounds([]pt{a, b}, hw+1)
	if !ok {
		return
	}
	dx, dy := b.x-a.x, b.y-a.y
	l2 := dx*dx + dy*dy
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			px, py := float64(x)+0.5-a.x, float64(y)+0.5-a.y
			t := 0.0
			if l2 > 0 {
				t = clamp01((px*dx + py*dy) / l2)
			}
			d := math.Hypot(px-t*dx, py-t*dy)
			if al := clamp01(hw-d+0.5) * opacity; al > 0 {
				blendAt(cv.pix, (y*cv.w+x)*3, col, al)
			}
		}
	}
}

func drawFurnitureShadows(cv canvas, cam camera) {
	for _, o := range furniture {
		if o.pole {
			base, top := vec3{X: o.x, D: o.d}, shadowOf(vec3{X: o.x, D: o.d, H: o.h})
			side := vec3{X: -sunDir.D * o.r, D: sunDir.X * o.r}
			cv.darkenPoly([]pt{
				cam.project(base.add(side)), cam.project(top.add(side)),
				cam.project(top.sub(side)), cam.project(base.sub(side)),
			}, 0.55, 1.5)
			continue
		}
		var pts []pt
		for _, x := range []float64{o.x0, o.x1} {
			for _, d := range []float64{o.d0, o.d1} {
				pts = append(pts, cam.project(vec3{X: x, D: d}), cam.project(shadowOf(vec3{X: x, D: d, H: o.h})))
			}
		}
		cv.darkenPoly(convexHull(pts), 0.55, 2)
	}
}

// drawFurniture draws the furniture far to near, so nearer things overlap.
func drawFurniture(cv canvas, cam camera, salt uint64) {
	order := make([]streetObject, len(furniture))
	copy(order, furniture)
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && depthOf(order[j]) > depthOf(order[j-1]); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for _, o := range order {
		if !o.pole {
			for _, f := range box(o.x0, o.x1, o.d0, o.d1, 0, o.h, o.col) {
				if p, ok := cam.screen(f); ok {
					cv.fillPoly(p, f.col, 1, 1)
				}
			}
			continue
		}
		// A vertical cylinder projects to an upright strip; shade it across
		// its width as a cylinder lit from the right.
		base := cam.project(vec3{X: o.x, D: o.d, H: kerbHeight})
		top := cam.project(vec3{X: o.x, D: o.d, H: o.h})
		hw := o.r * cam.f / o.d
		x0, x1 := int(math.Floor(base.x-hw)), int(math.Ceil(base.x+hw))
		y0, y1 := int(math.Max(0, math.Floor(top.y))), int(math.Min(float64(cv.h), math.Ceil(base.y)))
		for y := y0; y < y1; y++ {
			for x := max(0, x0); x < min(cv.w, x1); x++ {
				u := (float64(x) + 0.5 - base.x) / hw // -1..1 across the strip
				if math.Abs(u) > 1 {
					continue
				}
				k := 0.45 + 0.6*clamp01(0.5+0.6*u) - 0.25*u*u
				bark := 1.0
				if o.bark {
					bark = 0.75 + 0.5*vnoise(u*3, float64(y)*0.15, salt+20)
				}
				a := clamp01(1-math.Abs(u)) * 3
				if fy := float64(y) + 0.5; fy > base.y-1 {
					a *= clamp01(base.y - fy + 0.5)
				}
				blendAt(cv.pix, (y*cv.w+x)*3, o.col.mul(k*bark), clamp01(a))
			}
		}
	}
}

func depthOf(o streetObject) float64 {
	if o.pole {
		return o.d
	}
	return o.d0
}
