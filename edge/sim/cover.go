package sim

import (
	"image"
	"math"
)

// Covers are drawn in the cover's own unit coordinates: (ex, ey) in
// [-1, 1] across its region, so a round cover is the unit circle (an
// ellipse on screen, which is the perspective of a circle on the road) and
// a square one is the unit square narrowed slightly at the far edge. The
// lid's relief is a height field shaded by its slope, which gives the cast
// iron patterns their raised, worn look without any 3D.

// lidPattern is a lid's relief: height in about [-1, 1] at lid coordinates
// (lx, ly) in [-1, 1]; negative is a hole through the lid.
type lidPattern func(lx, ly float64) float64

// patternFor picks a lid pattern from the utility code in the facility id
// (digits 7-10: 0105 power, 0102 sewage, 0107 telecom), else by shape.
func patternFor(c Cover) lidPattern {
	code := ""
	if len(c.FacilityID) >= 10 {
		code = c.FacilityID[6:10]
	}
	switch {
	case c.Shape == ShapeSquare && (code == "0103" || code == "0104"):
		return gridPlate
	case c.Shape == ShapeSquare:
		return checkerPlate
	case code == "0103" || code == "0104":
		return waterLid
	case code == "0105":
		return powerLid
	default:
		return sewerLid
	}
}

// powerLid: radial ribs round a studded centre with a lightning bolt.
func powerLid(lx, ly float64) float64 {
	r := math.Hypot(lx, ly)
	switch {
	case math.Hypot(math.Abs(lx)-0.7, ly) < 0.075: // pick holes
		return -1
	case r > 0.9:
		return 0.85
	case r > 0.84:
		return 0.1
	case r > 0.58:
		if math.Cos(math.Atan2(ly, lx)*28) > 0.1 {
			return 0.9
		}
		return 0.15
	case r > 0.52:
		return 0.9
	case r > 0.47:
		return 0.1
	case inPolygon(bolt, lx, ly):
		return 1
	case math.Cos(lx*math.Pi*7)*math.Cos(ly*math.Pi*7) > 0.35:
		return 0.6
	}
	return 0.15
}

var bolt = []pt{{0.14, -0.44}, {-0.2, 0.05}, {0.0, 0.05}, {-0.14, 0.44}, {0.22, -0.1}, {0.03, -0.1}}

// sewerLid: concentric rings crossed by eight spokes round a boss.
func sewerLid(lx, ly float64) float64 {
	r := math.Hypot(lx, ly)
	switch {
	case math.Hypot(math.Abs(lx)-0.72, ly) < 0.075:
		return -1
	case r > 0.9:
		return 0.85
	case r > 0.84:
		return 0.1
	case r < 0.2:
		return 0.85
	case r < 0.25:
		return 0.1
	case math.Abs(math.Sin(4*math.Atan2(ly, lx)))*r < 0.045:
		return 0.9
	case math.Cos(r*2*math.Pi*6.5) > 0.2:
		return 0.8
	}
	return 0.15
}

// checkerPlate: a two-leaf steel lid with diamond tread and lifting slots.
func checkerPlate(lx, ly float64) float64 {
	m := math.Max(math.Abs(lx), math.Abs(ly))
	switch {
	case m > 0.9:
		return 0.85
	case m > 0.85:
		return 0.1
	case math.Abs(lx) < 0.025:
		return -0.6
	case math.Abs(math.Abs(lx)-0.5) < 0.1 && math.Abs(ly) < 0.05:
		return -1
	}
	const cx, cy = 0.17, 0.24
	i, j := math.Floor(lx/cx), math.Floor(ly/cy)
	u, v := lx/cx-i-0.5, ly/cy-j-0.5
	along, across := (u+v)/math.Sqrt2, (u-v)/math.Sqrt2
	if int64(i+j)%2 != 0 {
		along, across = across, along
	}
	if math.Abs(across) < 0.14 && math.Abs(along) < 0.42 {
		return 1
	}
	return 0.2
}

// waterLid: a raised grid of small squares inside a plain ring, with a
// name band across the middle (water and gas lids).
func waterLid(lx, ly float64) float64 {
	r := math.Hypot(lx, ly)
	switch {
	case math.Hypot(lx, math.Abs(ly)-0.7) < 0.07:
		return -1
	case r > 0.9:
		return 0.85
	case r > 0.84:
		return 0.1
	case r > 0.74:
		return 0.7
	case math.Abs(ly) < 0.16:
		if math.Cos(lx*math.Pi*9) > 0.3 && math.Abs(ly) < 0.09 {
			return 1
		}
		return 0.55
	case math.Abs(math.Sin(lx*math.Pi*5)) < 0.3 || math.Abs(math.Sin(ly*math.Pi*5)) < 0.3:
		return 0.9
	}
	return 0.2
}

// gridPlate: a one-leaf square lid with a bold lattice of ribs.
func gridPlate(lx, ly float64) float64 {
	m := math.Max(math.Abs(lx), math.Abs(ly))
	switch {
	case m > 0.9:
		return 0.85
	case m > 0.85:
		return 0.1
	case math.Hypot(lx-0.6, ly) < 0.08:
		return -1
	case math.Abs(math.Sin(lx*math.Pi*3.5)) < 0.22 || math.Abs(math.Sin(ly*math.Pi*3.5)) < 0.22:
		return 0.95
	}
	return 0.25
}

// inPolygon is the even-odd test, for the non-convex emblem.
func inPolygon(p []pt, x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		if (p[i].y > y) != (p[j].y > y) && x < (p[j].x-p[i].x)*(y-p[i].y)/(p[j].y-p[i].y)+p[i].x {
			in = !in
		}
	}
	return in
}

// lidLook is the paint and wear of a lid.
type lidLook struct {
	recess, raised rgb
	relief         float64 // strength of the slope shading
	rust           float64
	grain          float64
}

var (
	oldLid = lidLook{recess: rgb{52, 49, 46}, raised: rgb{124, 124, 128}, relief: 1.1, rust: 1, grain: 14}
	newLid = lidLook{recess: rgb{34, 34, 37}, raised: rgb{80, 81, 87}, relief: 0.9, rust: 0, grain: 6}
	// flushLid: a lid worn smooth and level with the road, grimy, its
	// pattern barely standing out.
	flushLid = lidLook{recess: rgb{72, 70, 67}, raised: rgb{108, 107, 108}, relief: 0.45, rust: 0.3, grain: 12}
)

// renderCover composites the cover in state lid over the street under its
// region and returns the region's pixels.
func renderCover(cam camera, c Cover, lid lidState, under []byte, salt uint64) []byte {
	r := c.Region
	w, h := r.Dx(), r.Dy()
	out := append([]byte(nil), under...)
	rx, ry := float64(w)/2, float64(h)/2
	pattern := patternFor(c)
	csalt := salt ^ hash3(uint64(len(c.FacilityID)), uint64(r.Min.X), uint64(r.Min.Y))
	look := oldLid
	if c.Look == LookFlush {
		look = flushLid
	}
	if lid == lidReplaced {
		look = newLid
	}
	xc, hx, dc, hd := squareOnRoad(cam, r)
	for y := range h {
		for x := range w {
			grain := unit(hash3(uint64(x), uint64(y), csalt)) - 0.5
			var col rgb
			var a float64
			if c.Shape == ShapeSquare {
				X, D := cam.ground(float64(r.Min.X+x)+0.5, float64(r.Min.Y+y)+0.5, 0)
				u, v := (X-xc)/hx, (dc-D)/hd
				pu, pv := hx*cam.f/D, hd*cam.f*cam.h/(D*D) // pixels per unit of u, v
				col, a = squarePixel(u, v, pu, pv, lid, look, pattern, grain, csalt)
			} else {
				ex, ey := (float64(x)+0.5-rx)/rx, (float64(y)+0.5-ry)/ry
				col, a = roundPixel(ex, ey, rx, ry, lid, look, pattern, grain, csalt)
			}
			blendAt(out, (y*w+x)*3, col, a)
		}
	}
	return out
}

// squareOnRoad returns the road rectangle (centre xc, dc and half sizes
// hx, hd, metres) of a square cover whose screen bounding box is r. A
// rectangle on the road projects to a trapezoid whose sides lean toward
// the vanishing point, so for a cover right of centre its far-left and
// near-right corners touch the box (the mirror image left of centre).
func squareOnRoad(cam camera, r image.Rectangle) (xc, hx, dc, hd float64) {
	_, dFar := cam.ground(0, float64(r.Min.Y), 0)
	_, dNear := cam.ground(0, float64(r.Max.Y), 0)
	xl := (float64(r.Min.X) - cam.vx) * dFar / cam.f
	xr := (float64(r.Max.X) - cam.vx) * dNear / cam.f
	if float64(r.Min.X+r.Max.X)/2 < cam.vx {
		xl = (float64(r.Min.X) - cam.vx) * dNear / cam.f
		xr = (float64(r.Max.X) - cam.vx) * dFar / cam.f
	}
	return (xl + xr) / 2, (xr - xl) / 2, (dFar + dNear) / 2, (dFar - dNear) / 2
}

func roundPixel(ex, ey, rx, ry float64, lid lidState, look lidLook, pattern lidPattern, grain float64, salt uint64) (rgb, float64) {
	r := math.Hypot(ex, ey)
	// Distance to the rim in pixels, for an anti-aliased outline.
	g := math.Hypot(ex/rx, ey/ry) / math.Max(r, 1e-9)
	a := clamp01((1-r)/g + 0.5)
	if a <= 0 {
		return rgb{}, 0
	}
	const lidR, seatR = 0.86, 0.8
	switch {
	case r > 0.9:
		return frameSteel(ex, ey, grain, salt), a
	case lid == lidMissing && r > seatR:
		return seat(ex, ey, r < seatR+0.02, grain, salt), a
	case lid == lidMissing:
		sx, sy := ex/seatR, ey/seatR
		return shaft(sx, sy, sy+math.Sqrt(math.Max(0, 1-sx*sx)), grain), a
	case r > lidR:
		return grey(20 + 6*grain), a // the gap between lid and frame
	}
	return lidPixel(ex/lidR, ey/lidR, 1/(rx*lidR), 1/(ry*lidR), look, pattern, grain, salt), a
}

// squarePixel draws a square cover at road-rectangle coordinates (u, v)
// in [-1, 1], v = -1 being the far edge; pu, pv are pixels per unit.
func squarePixel(u, v, pu, pv float64, lid lidState, look lidLook, pattern lidPattern, grain float64, salt uint64) (rgb, float64) {
	au, av := math.Abs(u), math.Abs(v)
	a := clamp01(math.Min((1-au)*pu, (1-av)*pv) + 0.5)
	if a <= 0 {
		return rgb{}, 0
	}
	switch {
	case au > 0.9 || av > 0.86:
		return frameSteel(u, v, grain, salt), a
	case lid == lidMissing && (au > 0.82 || av > 0.76):
		return seat(u, v, au < 0.84 && av < 0.79, grain, salt), a
	case lid == lidMissing:
		sx, sy := u/0.82, v/0.76
		return shaft(sx, sy, sy+1, grain), a
	case au > 0.88 || av > 0.83:
		return grey(20 + 6*grain), a
	}
	return lidPixel(u/0.88, v/0.83, 1/(pu*0.88), 1/(pv*0.83), look, pattern, grain, salt), a
}

// frameSteel is the frame set into the road: polished by tyres, with grime.
func frameSteel(ex, ey, grain float64, salt uint64) rgb {
	grime := vnoise(ex*4, ey*4, salt+30)
	c := mix(rgb{138, 138, 141}, rgb{84, 80, 74}, 0.6*grime)
	return c.plus(12 * grain)
}

// seat is the ledge a lid rests on, visible once the lid is gone.
func seat(ex, ey float64, innerEdge bool, grain float64, salt uint64) rgb {
	if innerEdge {
		return grey(22 + 6*grain)
	}
	k := 0.8 + 0.35*vnoise(ex*6, ey*6, salt+31)
	return rgb{66 * k, 63 * k, 58 * k}.plus(8 * grain)
}

// shaft is the inside of an open manhole at shaft coordinates (sx, sy).
// Looking down and away, the camera sees the far wall from the rim down to
// depth z, which grows toward the near edge; light dies off quickly, so
// most of the opening is near black.
func shaft(sx, sy, z, grain float64) rgb {
	wall := 70 * math.Exp(-2.4*z) * (1 - 0.55*sx*sx)
	if math.Mod(z, 0.45) < 0.045 { // joints between precast rings
		wall *= 0.5
	}
	c := rgb{wall*1.05 + 7, wall + 7, wall*0.9 + 7}
	for _, zr := range []float64{0.22, 0.55, 0.88} { // ladder rungs
		if math.Abs(sx) < 0.22 && math.Abs(z-zr) < 0.04 {
			k := 46 * math.Exp(-1.8*z)
			c = rgb{c.r + k*1.2, c.g + k*0.8, c.b + k*0.6}
		}
	}
	return c.plus(4 * grain)
}

// lidPixel shades the lid at lid coordinates (lx, ly); dx, dy are one pixel
// in lid units, for the slope.
func lidPixel(lx, ly, dx, dy float64, look lidLook, pattern lidPattern, grain float64, salt uint64) rgb {
	hgt := pattern(lx, ly)
	gx := (pattern(lx+dx, ly) - pattern(lx-dx, ly)) / 2
	gy := (pattern(lx, ly+dy) - pattern(lx, ly-dy)) / 2
	// Light from the right and beyond: slopes facing it are brighter.
	shade := math.Max(0.35, math.Min(1.7, 1+look.relief*(-0.6*gx+0.8*gy)))
	var c rgb
	if hgt < 0 {
		c = mix(look.recess, rgb{8, 8, 8}, -hgt)
	} else {
		c = mix(look.recess, look.raised, clamp01(hgt))
	}
	if look.rust > 0 {
		n := fbm(lx*2.2+3, ly*2.2, salt+32)
		c = mix(c, rgb{112, 74, 48}, look.rust*math.Min(0.5, math.Max(0, n-0.52)*2.4)*(1-0.5*clamp01(hgt)))
	}
	return c.mul(shade).plus(look.grain * grain)
}
