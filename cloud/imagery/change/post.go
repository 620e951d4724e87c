package change

// BoxMean returns the mean of src over (2r+1)² windows clipped to the image.
func BoxMean(src []float32, w, h, r int) []float32 {
	if r <= 0 {
		return append([]float32(nil), src...)
	}
	ii := integral(src, w, h)
	W := w + 1
	out := make([]float32, w*h)
	for y := 0; y < h; y++ {
		y0, y1 := max(y-r, 0), min(y+r+1, h)
		for x := 0; x < w; x++ {
			x0, x1 := max(x-r, 0), min(x+r+1, w)
			s := ii[y1*W+x1] - ii[y0*W+x1] - ii[y1*W+x0] + ii[y0*W+x0]
			out[y*w+x] = float32(s / float64((x1-x0)*(y1-y0)))
		}
	}
	return out
}

// Threshold returns the mask of prob > t.
func Threshold(prob []float32, w, h int, t float32) *Mask {
	m := NewMask(w, h)
	for i, p := range prob {
		if p > t {
			m.Pix[i] = 1
		}
	}
	return m
}

// morph applies a square (2r+1)² erosion (erode=true) or dilation, separably.
// Pixels outside the image count as unchanged for dilation and as changed for
// erosion, so changes touching the tile edge are not eaten away.
func morph(m *Mask, r int, erode bool) *Mask {
	if r <= 0 {
		return &Mask{W: m.W, H: m.H, Pix: append([]uint8(nil), m.Pix...)}
	}
	w, h := m.W, m.H
	tmp := NewMask(w, h)
	out := NewMask(w, h)
	want := uint8(1)
	if erode {
		want = 0
	}
	// Horizontal pass with a running count of "want" pixels in the window.
	for y := 0; y < h; y++ {
		row := m.Pix[y*w : (y+1)*w]
		cnt := 0
		for x := 0; x < min(r, w); x++ {
			if row[x] == want {
				cnt++
			}
		}
		for x := 0; x < w; x++ {
			if x+r < w && row[x+r] == want {
				cnt++
			}
			if x-r-1 >= 0 && row[x-r-1] == want {
				cnt--
			}
			hit := cnt > 0
			tmp.Pix[y*w+x] = b2u(hit != erode)
		}
	}
	for x := 0; x < w; x++ {
		cnt := 0
		for y := 0; y < min(r, h); y++ {
			if tmp.Pix[y*w+x] == want {
				cnt++
			}
		}
		for y := 0; y < h; y++ {
			if y+r < h && tmp.Pix[(y+r)*w+x] == want {
				cnt++
			}
			if y-r-1 >= 0 && tmp.Pix[(y-r-1)*w+x] == want {
				cnt--
			}
			out.Pix[y*w+x] = b2u((cnt > 0) != erode)
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

// Open removes specks and thin lines narrower than 2r+1 pixels.
func Open(m *Mask, r int) *Mask { return morph(morph(m, r, true), r, false) }

// Close fills gaps narrower than 2r+1 pixels.
func Close(m *Mask, r int) *Mask { return morph(morph(m, r, false), r, true) }

// Component is one 8-connected region of a mask.
type Component struct {
	Label      int32
	Area       int // pixels
	MinX, MinY int
	MaxX, MaxY int // inclusive
	Sum        float64
}

// Components labels the 8-connected regions of pixels equal to val. labels
// holds 1..len(comps) per pixel (0 elsewhere).
func Components(m *Mask, val uint8) (labels []int32, comps []Component) {
	w, h := m.W, m.H
	labels = make([]int32, w*h)
	stack := make([]int32, 0, 1024)
	for start := range m.Pix {
		if m.Pix[start] != val || labels[start] != 0 {
			continue
		}
		id := int32(len(comps) + 1)
		c := Component{Label: id, MinX: w, MinY: h, MaxX: -1, MaxY: -1}
		labels[start] = id
		stack = append(stack[:0], int32(start))
		for len(stack) > 0 {
			i := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			x, y := i%w, i/w
			c.Area++
			c.MinX, c.MinY = min(c.MinX, x), min(c.MinY, y)
			c.MaxX, c.MaxY = max(c.MaxX, x), max(c.MaxY, y)
			for dy := -1; dy <= 1; dy++ {
				yy := y + dy
				if yy < 0 || yy >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					xx := x + dx
					if xx < 0 || xx >= w {
						continue
					}
					j := yy*w + xx
					if m.Pix[j] == val && labels[j] == 0 {
						labels[j] = id
						stack = append(stack, int32(j))
					}
				}
			}
		}
		comps = append(comps, c)
	}
	return labels, comps
}

// RemoveSmall clears changed regions smaller than minArea pixels and fills
// unchanged holes smaller than maxHole pixels that do not touch the border.
func RemoveSmall(m *Mask, minArea, maxHole int) *Mask {
	out := &Mask{W: m.W, H: m.H, Pix: append([]uint8(nil), m.Pix...)}
	if minArea > 1 {
		labels, comps := Components(out, 1)
		for i, l := range labels {
			if l != 0 && comps[l-1].Area < minArea {
				out.Pix[i] = 0
			}
		}
	}
	if maxHole > 0 {
		labels, comps := Components(out, 0)
		for i, l := range labels {
			if l == 0 {
				continue
			}
			c := comps[l-1]
			inner := c.MinX > 0 && c.MinY > 0 && c.MaxX < m.W-1 && c.MaxY < m.H-1
			if inner && c.Area < maxHole {
				out.Pix[i] = 1
			}
		}
	}
	return out
}

// Otsu returns the threshold that best splits v into two classes (maximum
// between-class variance, 256-bin histogram).
func Otsu(v []float32) float32 {
	if len(v) == 0 {
		return 0
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi <= lo {
		return lo
	}
	const nb = 256
	var hist [nb]float64
	for _, x := range v {
		hist[min(int((x-lo)/(hi-lo)*nb), nb-1)]++
	}
	n := float64(len(v))
	var sum float64
	for i, h := range hist {
		sum += float64(i) * h
	}
	var wb, sb, best float64
	bt := 0
	for i, h := range hist {
		wb += h
		if wb == 0 || wb == n {
			continue
		}
		sb += float64(i) * h
		mb, mf := sb/wb, (sum-sb)/(n-wb)
		if b := wb * (n - wb) * (mb - mf) * (mb - mf); b > best {
			best, bt = b, i
		}
	}
	return lo + (hi-lo)*float32(bt+1)/nb
}
