package sim

import (
	"image"
	"math"
	"sort"
)

// thing is anything that moves or stands on the street for a while: a car,
// a pedestrian, a stall. Frames draw the things in view far to near, and the
// truth asks them which pixels they hide.
type thing interface {
	// near is the depth of the thing's nearest point at t, and whether it is
	// in the street at all then.
	near(t float64) (float64, bool)
	// draw paints the thing and its shadow; shadowK is how much light its
	// shadow leaves (1: no shadow, as under an overcast night sky).
	draw(cv canvas, cam camera, t, shadowK float64)
	// body is the thing's opaque faces at t, for occlusion.
	body(t float64) []face
}

// things lists the scene's things in painter's order (far first) at t.
func (s Scene) things(t float64) []thing {
	type item struct {
		d float64
		k thing
	}
	var items []item
	add := func(k thing) {
		if d, ok := k.near(t); ok {
			items = append(items, item{d, k})
		}
	}
	for _, p := range s.props {
		add(p)
	}
	for _, k := range s.cars {
		add(k)
	}
	for _, w := range s.walkers {
		add(w)
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].d > items[j].d })
	out := make([]thing, len(items))
	for i, it := range items {
		out[i] = it.k
	}
	return out
}

func (k car) near(t float64) (float64, bool) { return k.rear(t), k.visible(t) }
func (k car) body(t float64) []face {
	b, _ := k.solids(t)
	return b
}

// walker is a pedestrian going from (x0, d0) to (x1, d1) at speed v from
// time t0, standing still for pause seconds when a share pauseAt of the way
// is done.
type walker struct {
	x0, d0, x1, d1 float64
	t0, v          float64
	pauseAt, pause float64
	coat, legs     rgb
	height         float64
}

// pos is where the walker is at t, and whether it is on its way then.
func (w walker) pos(t float64) (x, d float64, ok bool) {
	L := math.Hypot(w.x1-w.x0, w.d1-w.d0)
	if L == 0 || w.v <= 0 {
		return 0, 0, false
	}
	s := w.v * (t - w.t0)
	stop := w.pauseAt * L
	if s > stop {
		s = math.Max(stop, s-w.v*w.pause)
	}
	if s < 0 || s > L {
		return 0, 0, false
	}
	f := s / L
	return w.x0 + f*(w.x1-w.x0), w.d0 + f*(w.d1-w.d0), true
}

// end is when the walker leaves the street.
func (w walker) end() float64 {
	return w.t0 + math.Hypot(w.x1-w.x0, w.d1-w.d0)/w.v + w.pause
}

func (w walker) near(t float64) (float64, bool) {
	_, d, ok := w.pos(t)
	return d - 0.15, ok && d > 3
}

func (w walker) body(t float64) []face {
	x, d, ok := w.pos(t)
	if !ok {
		return nil
	}
	h := w.height
	hip, shoulder := 0.5*h, 0.82*h
	skin := rgb{182, 140, 112}
	var f []face
	f = append(f, box(x-0.17, x+0.17, d-0.12, d+0.12, 0, hip, w.legs)...)
	f = append(f, box(x-0.23, x+0.23, d-0.15, d+0.15, hip, shoulder, w.coat)...)
	f = append(f, box(x-0.1, x+0.1, d-0.1, d+0.1, shoulder+0.04, h, skin)...)
	return f
}

func (w walker) draw(cv canvas, cam camera, t, shadowK float64) {
	b := w.body(t)
	drawSolids(cv, cam, b, shadowK)
}

// Prop kinds: things that stop in a zone and leave later.
const (
	KindStall  = "stall"
	KindCart   = "cart"
	KindPile   = "pile"
	KindParked = "parked_vehicle"
)

// prop is a stall, cart or pile of goods standing at (x, d) from `from` to
// `to` seconds.
type prop struct {
	kind     string
	x, d     float64
	from, to float64
	col      rgb
	salt     uint64
}

func (p prop) near(t float64) (float64, bool) {
	return p.d - 1, t >= p.from && t < p.to
}

func (p prop) body(t float64) []face {
	if t < p.from || t >= p.to {
		return nil
	}
	return p.solids()
}

// solids are the prop's boxes, drawn in order.
func (p prop) solids() []face {
	x, d := p.x, p.d
	var f []face
	switch p.kind {
	case KindStall:
		// A table with goods under an awning on two poles.
		pole := rgb{150, 150, 150}
		f = append(f, box(x-1.0, x-0.95, d-0.6, d-0.55, 0, 2.0, pole)...)
		f = append(f, box(x+0.95, x+1.0, d-0.6, d-0.55, 0, 2.0, pole)...)
		f = append(f, box(x-0.9, x+0.9, d-0.45, d+0.45, 0, 0.85, rgb{200, 196, 180})...)
		for i := range 3 {
			u := float64(i)*0.55 - 0.55
			c := []rgb{{200, 60, 40}, {220, 170, 40}, {70, 140, 60}}[(i+int(p.salt%3))%3]
			f = append(f, box(x+u-0.22, x+u+0.22, d-0.3, d+0.3, 0.85, 1.05, c)...)
		}
		f = append(f, box(x-1.15, x+1.15, d-0.75, d+0.75, 2.0, 2.12, p.col)...)
	case KindCart:
		wheel := rgb{20, 20, 22}
		for _, dx := range []float64{-0.5, 0.4} {
			for _, dd := range []float64{-0.35, 0.3} {
				f = append(f, box(x+dx, x+dx+0.1, d+dd, d+dd+0.05, 0, 0.3, wheel)...)
			}
		}
		f = append(f, box(x-0.6, x+0.6, d-0.38, d+0.38, 0.25, 1.0, p.col)...)
		f = append(f, box(x-0.55, x+0.55, d-0.33, d+0.33, 1.0, 1.25, p.col.mul(0.8).plus(30))...)
	case KindPile:
		// Cardboard boxes and sacks, two layers, sizes from the prop's salt.
		type crate struct{ dx, dd, w, l, h0, h1 float64 }
		var cs []crate
		for i := range 6 {
			r := unit(hash3(p.salt, uint64(i), 0x9119))
			r2 := unit(hash3(p.salt, uint64(i), 0x9229))
			col, row := i%3, (i/3)%2
			cs = append(cs, crate{dx: float64(col)*0.55 - 0.55, dd: float64(row)*0.5 - 0.25, w: 0.45 + 0.1*r, l: 0.4 + 0.1*r2, h0: 0, h1: 0.45 + 0.2*r})
		}
		cs = append(cs, crate{dx: -0.3, dd: 0, w: 0.5, l: 0.45, h0: 0.65, h1: 1.05}, crate{dx: 0.3, dd: -0.1, w: 0.45, l: 0.4, h0: 0.65, h1: 0.95})
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].h0 != cs[j].h0 {
				return cs[i].h0 < cs[j].h0
			}
			return cs[i].dd > cs[j].dd
		})
		for i, c := range cs {
			k := 0.85 + 0.3*unit(hash3(p.salt, uint64(i), 0x9339))
			f = append(f, box(x+c.dx-c.w/2, x+c.dx+c.w/2, d+c.dd-c.l/2, d+c.dd+c.l/2, c.h0, c.h1, p.col.mul(k))...)
		}
	}
	return f
}

func (p prop) draw(cv canvas, cam camera, t, shadowK float64) {
	drawSolids(cv, cam, p.body(t), shadowK)
}

// drawSolids paints a thing's shadow (the hull of its corners' shadows)
// and then its faces in order.
func drawSolids(cv canvas, cam camera, faces []face, shadowK float64) {
	if len(faces) == 0 {
		return
	}
	if shadowK < 1 {
		var pts []pt
		for _, f := range faces {
			for _, v := range f.v {
				s := shadowOf(v)
				if s.D < 1 {
					return
				}
				pts = append(pts, cam.project(s))
			}
		}
		cv.darkenPoly(convexHull(pts), shadowK, 3)
	}
	for _, f := range faces {
		if p, ok := cam.screen(f); ok {
			cv.fillPoly(p, f.col, 1, 1)
		}
	}
}

// screenPoly is a projected face ready for inside tests.
type screenPoly struct {
	e   [][3]float64
	box image.Rectangle
}

// occluders projects the opaque faces of every thing in view at t.
func (s Scene) occluders(cam camera, t float64) []screenPoly {
	var out []screenPoly
	bounds := canvas{w: s.Width, h: s.Height}
	for _, k := range s.things(t) {
		for _, f := range k.body(t) {
			p, ok := cam.screen(f)
			if !ok {
				continue
			}
			x0, y0, x1, y1, ok := bounds.polyBounds(p, 0)
			if !ok {
				continue
			}
			out = append(out, screenPoly{e: edges(p), box: image.Rect(x0, y0, x1, y1)})
		}
	}
	return out
}

// hiddenShare is the share of r's pixels inside any of polys.
func hiddenShare(polys []screenPoly, r image.Rectangle) float64 {
	if r.Empty() {
		return 0
	}
	var near []screenPoly
	for _, p := range polys {
		if p.box.Overlaps(r) {
			near = append(near, p)
		}
	}
	if len(near) == 0 {
		return 0
	}
	hidden := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			for _, p := range near {
				if insideDist(p.e, float64(x)+0.5, float64(y)+0.5) > 0 {
					hidden++
					break
				}
			}
		}
	}
	return float64(hidden) / float64(r.Dx()*r.Dy())
}

// screenBox is the pixel bounding box of faces, clipped to w×h.
func screenBox(cam camera, faces []face, w, h int) image.Rectangle {
	var r image.Rectangle
	for _, f := range faces {
		// Back faces bound the solid as well as front ones do.
		for _, v := range f.v {
			if v.D < 1 {
				continue
			}
			q := cam.project(v)
			r = r.Union(image.Rect(int(math.Floor(q.x)), int(math.Floor(q.y)), int(math.Ceil(q.x))+1, int(math.Ceil(q.y))+1))
		}
	}
	return r.Intersect(image.Rect(0, 0, w, h))
}
