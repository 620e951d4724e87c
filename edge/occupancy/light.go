package occupancy

import "slices"

// lighting tells a change of light from an object. A cloud, dusk or a
// switched-on lamp scales the brightness of everything in a large area by
// about the same factor; an object changes its own few pixels in its own
// way. The gain between the frame and the reference scene is estimated as a
// median per block (about a sixth of the frame wide) from pixels the
// detector is not timing, and interpolated between block centres; a pixel
// that this gain explains is lighting, not an object.
type lighting struct {
	w, h   int
	bs     int // block size in pixels
	gw, gh int // blocks across and down
	gain   []float32
	vals   [][]float32
}

const (
	lightStep = 4    // sample every 4th pixel in both directions for the gains
	lightAbs  = 15.0 // grey levels a lit pixel may miss its predicted value by
	lightRel  = 0.15 // ... or this share of it, whichever is larger
	darkLuma  = 16   // background too dark for a ratio
)

func newLighting(w, h int) *lighting {
	bs := max(max(w, h)/6, 8)
	l := &lighting{w: w, h: h, bs: bs, gw: (w + bs - 1) / bs, gh: (h + bs - 1) / bs}
	l.gain = make([]float32, l.gw*l.gh)
	l.vals = make([][]float32, l.gw*l.gh)
	return l
}

func luma(b, g, r uint8) float32 { return (float32(b) + 2*float32(g) + float32(r)) / 4 }

func (l *lighting) estimate(frame []byte, ref []float32, skip []float32) {
	var all []float32
	for i := range l.vals {
		l.vals[i] = l.vals[i][:0]
	}
	for y := lightStep / 2; y < l.h; y += lightStep {
		for x := lightStep / 2; x < l.w; x += lightStep {
			p := y*l.w + x
			if skip[p] != 0 {
				continue
			}
			lb := lumaF32(ref[p*3], ref[p*3+1], ref[p*3+2])
			if lb < darkLuma {
				continue
			}
			r := luma(frame[p*3], frame[p*3+1], frame[p*3+2]) / lb
			k := (y/l.bs)*l.gw + x/l.bs
			l.vals[k] = append(l.vals[k], r)
			all = append(all, r)
		}
	}
	global := float32(1)
	if len(all) > 0 {
		global = median(all)
	}
	for k, v := range l.vals {
		// A block mostly covered by objects being timed, or dark, follows
		// the whole frame.
		if len(v) < (l.bs/lightStep)*(l.bs/lightStep)/4 {
			l.gain[k] = global
			continue
		}
		l.gain[k] = median(v)
	}
}

// at interpolates the gain between block centres.
func (l *lighting) at(x, y int) float32 {
	fx := (float32(x)+0.5)/float32(l.bs) - 0.5
	fy := (float32(y)+0.5)/float32(l.bs) - 0.5
	x0 := min(max(int(fx), 0), l.gw-1)
	y0 := min(max(int(fy), 0), l.gh-1)
	x1, y1 := min(x0+1, l.gw-1), min(y0+1, l.gh-1)
	ax := min(max(fx-float32(x0), 0), 1)
	ay := min(max(fy-float32(y0), 0), 1)
	g := func(x, y int) float32 { return l.gain[y*l.gw+x] }
	return (1-ay)*((1-ax)*g(x0, y0)+ax*g(x1, y0)) + ay*((1-ax)*g(x0, y1)+ax*g(x1, y1))
}

// differs tells whether pixel p of the frame is something other than the
// reference scene in the local light: unlike what the gain makes of the
// reference at every position within one pixel (a swaying pole moves the
// picture by about that much).
func (l *lighting) differs(frame []byte, ref []float32, p int) bool {
	x, y := p%l.w, p/l.w
	g := l.at(x, y)
	f0, f1, f2 := float32(frame[p*3]), float32(frame[p*3+1]), float32(frame[p*3+2])
	for yy := max(y-1, 0); yy <= min(y+1, l.h-1); yy++ {
		for xx := max(x-1, 0); xx <= min(x+1, l.w-1); xx++ {
			q := (yy*l.w + xx) * 3
			if near(f0, g*ref[q]) && near(f1, g*ref[q+1]) && near(f2, g*ref[q+2]) {
				return false
			}
		}
	}
	return true
}

// agrees tells whether pixel p of the frame is what the gain makes of the
// reference at p itself.
func (l *lighting) agrees(frame []byte, ref []float32, p int) bool {
	g := l.at(p%l.w, p/l.w)
	return near(float32(frame[p*3]), g*ref[p*3]) && near(float32(frame[p*3+1]), g*ref[p*3+1]) &&
		near(float32(frame[p*3+2]), g*ref[p*3+2])
}

// near tells whether an observed value is what was predicted, within the
// tolerance of the light model.
func near(v, want float32) bool {
	d := v - want
	if d < 0 {
		d = -d
	}
	return d <= max(lightAbs, lightRel*want)
}

func lumaF32(b, g, r float32) float32 { return (b + 2*g + r) / 4 }

func median(v []float32) float32 {
	slices.Sort(v)
	return v[len(v)/2]
}
