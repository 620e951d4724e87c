package sim

import "math"

// This file holds the small amount of geometry and rasterising the simulator
// needs: a pinhole camera over a flat street, hash-based value noise, and
// anti-aliased convex polygons blended into packed BGR24 buffers.

// pt is a point in pixel coordinates (pixel centres are at +0.5).
type pt struct{ x, y float64 }

// vec3 is a world point in metres: X across the road (right positive), D
// along the road away from the camera, H height above the road surface.
type vec3 struct{ X, D, H float64 }

func (a vec3) sub(b vec3) vec3 { return vec3{a.X - b.X, a.D - b.D, a.H - b.H} }
func (a vec3) add(b vec3) vec3 { return vec3{a.X + b.X, a.D + b.D, a.H + b.H} }
func (a vec3) scale(k float64) vec3 {
	return vec3{a.X * k, a.D * k, a.H * k}
}
func (a vec3) dot(b vec3) float64 { return a.X*b.X + a.D*b.D + a.H*b.H }
func (a vec3) cross(b vec3) vec3 {
	return vec3{a.D*b.H - a.H*b.D, a.H*b.X - a.X*b.H, a.X*b.D - a.D*b.X}
}

// camera is a level pinhole camera with a shifted lens: the horizon sits
// above the picture, so the whole frame shows road, and vertical things stay
// vertical, which keeps poles and car sides easy to draw. The fixed cover
// regions were laid out for this camera (a circle of ~1.3 m at the power
// cover's depth is exactly its 120x60 box), so it must not depend on the seed.
type camera struct {
	vx, vy float64 // vanishing point of the road, pixels
	f      float64 // focal length, pixels
	h      float64 // height above the road, metres
}

func newCamera(w, h int) camera {
	return camera{
		vx: float64(w) / 2,
		vy: -500 * float64(h) / 720,
		f:  1920 * float64(w) / 1280,
		h:  10.5,
	}
}

func (c camera) project(p vec3) pt {
	return pt{c.vx + c.f*p.X/p.D, c.vy + c.f*(c.h-p.H)/p.D}
}

// ground returns the point of the horizontal plane at height h seen through
// pixel position (px, py).
func (c camera) ground(px, py, h float64) (X, D float64) {
	dy := py - c.vy
	if dy <= 0 {
		return 0, math.Inf(1)
	}
	D = c.f * (c.h - h) / dy
	return (px - c.vx) * D / c.f, D
}

// rgb is a colour with float channels in 0..255, so shading can go through
// several multiplications before it is rounded once.
type rgb struct{ r, g, b float64 }

func grey(v float64) rgb         { return rgb{v, v, v} }
func (c rgb) mul(k float64) rgb  { return rgb{c.r * k, c.g * k, c.b * k} }
func (c rgb) plus(k float64) rgb { return rgb{c.r + k, c.g + k, c.b + k} }
func mix(a, b rgb, t float64) rgb {
	return rgb{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t}
}
func smooth(e0, e1, v float64) float64 { t := clamp01((v - e0) / (e1 - e0)); return t * t * (3 - 2*t) }
func lerp(a, b, t float64) float64     { return a + (b-a)*t }
func (c rgb) put(buf []byte, i int) {
	buf[i], buf[i+1], buf[i+2] = byteOf(c.b), byteOf(c.g), byteOf(c.r)
}
func getRGB(buf []byte, i int) rgb { return rgb{float64(buf[i+2]), float64(buf[i+1]), float64(buf[i])} }
func clamp01(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// byteOf rounds a channel value to a byte, saturating.
func byteOf(v float64) byte {
	if v <= 0 {
		return 0
	}
	if v >= 254.5 {
		return 255
	}
	return byte(v + 0.5)
}

func blendAt(buf []byte, i int, c rgb, a float64) {
	if a <= 0 {
		return
	}
	if a >= 1 {
		c.put(buf, i)
		return
	}
	mix(getRGB(buf, i), c, a).put(buf, i)
}

// hash3 is a stateless integer hash (splitmix64 finaliser): textures are a
// pure function of (position, salt), so any pixel can be recomputed alone.
func hash3(a, b, c uint64) uint64 {
	h := a*0x9E3779B97F4A7C15 ^ b*0xC2B2AE3D27D4EB4F ^ c*0x165667B19E3779F9
	h ^= h >> 31
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 29
	h *= 0x94D049BB133111EB
	h ^= h >> 32
	return h
}

// unit maps a hash to [0,1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// vnoise is smooth value noise in [0,1).
func vnoise(x, y float64, salt uint64) float64 {
	xf, yf := math.Floor(x), math.Floor(y)
	fx, fy := x-xf, y-yf
	ix, iy := uint64(int64(xf)), uint64(int64(yf))
	sx, sy := fx*fx*(3-2*fx), fy*fy*(3-2*fy)
	a := unit(hash3(ix, iy, salt))
	b := unit(hash3(ix+1, iy, salt))
	c := unit(hash3(ix, iy+1, salt))
	d := unit(hash3(ix+1, iy+1, salt))
	return lerp(lerp(a, b, sx), lerp(c, d, sx), sy)
}

// fbm sums three octaves of value noise, still in [0,1).
func fbm(x, y float64, salt uint64) float64 {
	return 0.57*vnoise(x, y, salt) + 0.29*vnoise(2.03*x, 2.03*y, salt+1) + 0.14*vnoise(4.1*x, 4.1*y, salt+2)
}

// canvas is a packed BGR24 image.
type canvas struct {
	pix  []byte
	w, h int
}

// polyBounds returns the pixel bounding box of p clipped to the canvas, or ok=false.
func (cv canvas) polyBounds(p []pt, pad float64) (x0, y0, x1, y1 int, ok bool) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, q := range p {
		minX, maxX = math.Min(minX, q.x), math.Max(maxX, q.x)
		minY, maxY = math.Min(minY, q.y), math.Max(maxY, q.y)
	}
	x0 = int(math.Max(0, math.Floor(minX-pad)))
	y0 = int(math.Max(0, math.Floor(minY-pad)))
	x1 = int(math.Min(float64(cv.w), math.Ceil(maxX+pad)))
	y1 = int(math.Min(float64(cv.h), math.Ceil(maxY+pad)))
	return x0, y0, x1, y1, x0 < x1 && y0 < y1
}

// edges prepares the signed-distance edge functions of a convex polygon of
// either winding: e[k] = (a, b, c) with a*x+b*y+c = distance inside, in pixels.
func edges(p []pt) [][3]float64 {
	var area float64
	for i := range p {
		j := (i + 1) % len(p)
		area += p[i].x*p[j].y - p[j].x*p[i].y
	}
	s := 1.0
	if area < 0 {
		s = -1
	}
	e := make([][3]float64, 0, len(p))
	for i := range p {
		j := (i + 1) % len(p)
		dx, dy := p[j].x-p[i].x, p[j].y-p[i].y
		l := math.Hypot(dx, dy)
		if l == 0 {
			continue
		}
		a, b := -dy*s/l, dx*s/l
		e = append(e, [3]float64{a, b, -(a*p[i].x + b*p[i].y)})
	}
	return e
}

// insideDist is the distance of (x, y) inside the polygon (negative outside).
func insideDist(e [][3]float64, x, y float64) float64 {
	d := math.Inf(1)
	for _, k := range e {
		if v := k[0]*x + k[1]*y + k[2]; v < d {
			d = v
		}
	}
	return d
}

// span narrows [x0, x1) on row centre fy to the pixels whose centres are
// within pad of the polygon, so filling a slanted quad does not test its
// whole bounding box.
func span(e [][3]float64, fy, pad float64, x0, x1 int) (int, int) {
	lo, hi := float64(x0), float64(x1)
	for _, k := range e {
		// k0*x + k1*fy + k2 >= -pad, with x the pixel centre.
		rest := k[1]*fy + k[2] + pad
		switch {
		case k[0] > 1e-12:
			lo = max(lo, -rest/k[0]-0.5)
		case k[0] < -1e-12:
			hi = min(hi, -rest/k[0]+0.5)
		case rest < 0:
			return 0, 0
		}
	}
	if lo >= hi {
		return 0, 0
	}
	return max(x0, int(math.Floor(lo))), min(x1, int(math.Ceil(hi)))
}

// fillPoly blends col into the convex polygon p with anti-aliased edges;
// soft > 1 widens the edge ramp (for shadows).
func (cv canvas) fillPoly(p []pt, col rgb, opacity, soft float64) {
	x0, y0, x1, y1, ok := cv.polyBounds(p, soft)
	if !ok {
		return
	}
	e := edges(p)
	for y := y0; y < y1; y++ {
		fy := float64(y) + 0.5
		sx0, sx1 := span(e, fy, soft, x0, x1)
		for x := sx0; x < sx1; x++ {
			d := insideDist(e, float64(x)+0.5, fy)
			a := clamp01(d/soft+0.5) * opacity
			if a > 0 {
				blendAt(cv.pix, (y*cv.w+x)*3, col, a)
			}
		}
	}
}

// darkenPoly multiplies the pixels inside p by k (a shadow), soft-edged.
func (cv canvas) darkenPoly(p []pt, k, soft float64) {
	x0, y0, x1, y1, ok := cv.polyBounds(p, soft)
	if !ok {
		return
	}
	e := edges(p)
	for y := y0; y < y1; y++ {
		fy := float64(y) + 0.5
		sx0, sx1 := span(e, fy, soft, x0, x1)
		for x := sx0; x < sx1; x++ {
			a := clamp01(insideDist(e, float64(x)+0.5, fy)/soft + 0.5)
			if a > 0 {
				i := (y*cv.w + x) * 3
				m := 1 - a*(1-k)
				cv.pix[i] = byte(float64(cv.pix[i]) * m)
				cv.pix[i+1] = byte(float64(cv.pix[i+1]) * m)
				cv.pix[i+2] = byte(float64(cv.pix[i+2]) * m)
			}
		}
	}
}

// convexHull returns the hull of ps (monotone chain), for shadows cast by boxes.
func convexHull(ps []pt) []pt {
	p := append([]pt(nil), ps...)
	for i := 1; i < len(p); i++ { // insertion sort: at most a dozen points
		for j := i; j > 0 && (p[j].x < p[j-1].x || p[j].x == p[j-1].x && p[j].y < p[j-1].y); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
	cross := func(o, a, b pt) float64 { return (a.x-o.x)*(b.y-o.y) - (a.y-o.y)*(b.x-o.x) }
	var h []pt
	for pass := 0; pass < 2; pass++ {
		start := len(h)
		for _, q := range p {
			for len(h) >= start+2 && cross(h[len(h)-2], h[len(h)-1], q) <= 0 {
				h = h[:len(h)-1]
			}
			h = append(h, q)
		}
		h = h[:len(h)-1]
		for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
			p[i], p[j] = p[j], p[i]
		}
	}
	return h
}

// face is one flat quad of a solid, with its outward normal so that faces
// turned away from the camera can be skipped.
type face struct {
	v      [4]vec3
	normal vec3
	col    rgb
}

// box returns the six faces of an axis-aligned box, coloured by which way
// they face (top lit, sides in shade), as a cheap stand-in for lighting.
func box(x0, x1, d0, d1, h0, h1 float64, col rgb) []face {
	return frustum(x0, x1, d0, d1, h0, x0, x1, d0, d1, h1, col)
}

// faceShade darkens a solid's faces by which way they face (top, rear,
// right, front, left): the sun is high and to the right.
var faceShade = [5]float64{1.0, 0.7, 0.78, 0.8, 0.55}

// frustum is a box whose top rectangle differs from its bottom one (a car
// cabin with sloped windows).
func frustum(bx0, bx1, bd0, bd1, h0, tx0, tx1, td0, td1, h1 float64, col rgb) []face {
	b := [4]vec3{{bx0, bd0, h0}, {bx1, bd0, h0}, {bx1, bd1, h0}, {bx0, bd1, h0}}
	t := [4]vec3{{tx0, td0, h1}, {tx1, td0, h1}, {tx1, td1, h1}, {tx0, td1, h1}}
	var c vec3
	for i := range 4 {
		c = c.add(b[i]).add(t[i])
	}
	c = c.scale(1.0 / 8)
	quads := [][4]vec3{
		{t[0], t[1], t[2], t[3]}, // top
		{b[0], b[1], t[1], t[0]}, // rear (near the camera)
		{b[1], b[2], t[2], t[1]}, // right
		{b[2], b[3], t[3], t[2]}, // front
		{b[3], b[0], t[0], t[3]}, // left
	}
	fs := make([]face, 0, len(quads))
	for i, q := range quads {
		n := q[1].sub(q[0]).cross(q[3].sub(q[0]))
		mid := q[0].add(q[1]).add(q[2]).add(q[3]).scale(0.25)
		if n.dot(mid.sub(c)) < 0 {
			n = n.scale(-1)
		}
		fs = append(fs, face{v: q, normal: n, col: col.mul(faceShade[i])})
	}
	return fs
}

// plate is a flat rectangle lying on a face, nudged outward along its normal
// so it is drawn over it (tail lights, number plate, windows).
func plate(f face, u0, u1, v0, v1 float64, col rgb) face {
	// Bilinear position on the parent quad: u along v[0]->v[1], v along v[0]->v[3].
	at := func(u, v float64) vec3 {
		a := f.v[0].add(f.v[1].sub(f.v[0]).scale(u))
		b := f.v[3].add(f.v[2].sub(f.v[3]).scale(u))
		return a.add(b.sub(a).scale(v))
	}
	n := f.normal.scale(0.01 / math.Sqrt(f.normal.dot(f.normal)))
	return face{
		v:      [4]vec3{at(u0, v0).add(n), at(u1, v0).add(n), at(u1, v1).add(n), at(u0, v1).add(n)},
		normal: f.normal,
		col:    col,
	}
}

// screen projects a face; ok is false when it is behind or too close to the
// camera to draw sensibly, or turned away from it.
func (c camera) screen(f face) ([]pt, bool) {
	eye := vec3{0, 0, c.h}
	mid := f.v[0].add(f.v[2]).scale(0.5)
	if f.normal.dot(eye.sub(mid)) <= 0 {
		return nil, false
	}
	p := make([]pt, 4)
	for i, v := range f.v {
		if v.D < 1 {
			return nil, false
		}
		p[i] = c.project(v)
	}
	return p, true
}
