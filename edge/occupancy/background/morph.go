package background

// Binary morphology on 0/1 masks, done with separable box counts so that the
// cost does not grow with the window. Windows are clipped at the image edge,
// which matches OpenCV's defaults for dilate/erode (the border never wins)
// and is close to its replicated border for the median.

// boxCount writes into dst, for every pixel, how many set pixels lie in the
// (2r+1)×(2r+1) window around it, clipped to the image.
func boxCount(src []uint8, w, h, r int, rows, dst []int32) {
	for y := 0; y < h; y++ {
		row := src[y*w : y*w+w]
		out := rows[y*w : y*w+w]
		var s int32
		for x := 0; x <= r && x < w; x++ {
			s += int32(row[x])
		}
		for x := 0; x < w; x++ {
			out[x] = s
			if x+r+1 < w {
				s += int32(row[x+r+1])
			}
			if x-r >= 0 {
				s -= int32(row[x-r])
			}
		}
	}
	for x := 0; x < w; x++ {
		var s int32
		for y := 0; y <= r && y < h; y++ {
			s += rows[y*w+x]
		}
		for y := 0; y < h; y++ {
			dst[y*w+x] = s
			if y+r+1 < h {
				s += rows[(y+r+1)*w+x]
			}
			if y-r >= 0 {
				s -= rows[(y-r)*w+x]
			}
		}
	}
}

// span is how many of the window's 2r+1 positions around i fall inside [0,n).
func span(i, r, n int) int32 {
	lo, hi := i-r, i+r
	if lo < 0 {
		lo = 0
	}
	if hi > n-1 {
		hi = n - 1
	}
	return int32(hi - lo + 1)
}

// morph holds the scratch buffers for one image size.
type morph struct {
	w, h      int
	rows, cnt []int32
	stack     []int32
}

func newMorph(w, h int) *morph {
	return &morph{w: w, h: h, rows: make([]int32, w*h), cnt: make([]int32, w*h)}
}

func (m *morph) dilate(src, dst []uint8, r int) {
	boxCount(src, m.w, m.h, r, m.rows, m.cnt)
	for i, c := range m.cnt {
		dst[i] = b2u(c > 0)
	}
}

func (m *morph) erode(src, dst []uint8, r int) {
	boxCount(src, m.w, m.h, r, m.rows, m.cnt)
	for y := 0; y < m.h; y++ {
		sy := span(y, r, m.h)
		for x := 0; x < m.w; x++ {
			i := y*m.w + x
			dst[i] = b2u(m.cnt[i] == sy*span(x, r, m.w))
		}
	}
}

// median is the majority vote of a binary mask over the window.
func (m *morph) median(src, dst []uint8, r int) {
	boxCount(src, m.w, m.h, r, m.rows, m.cnt)
	for y := 0; y < m.h; y++ {
		sy := span(y, r, m.h)
		for x := 0; x < m.w; x++ {
			i := y*m.w + x
			dst[i] = b2u(2*m.cnt[i] > sy*span(x, r, m.w))
		}
	}
}

// holes sets in dst the unset pixels of src that cannot be reached from the
// image border through unset pixels (4-connected): the holes inside blobs.
func (m *morph) holes(src, dst []uint8) {
	w, h := m.w, m.h
	for i := range dst {
		dst[i] = 1 // 1 = not (yet) reached from the border
	}
	st := m.stack[:0]
	push := func(i int) {
		if src[i] == 0 && dst[i] == 1 {
			dst[i] = 0
			st = append(st, int32(i))
		}
	}
	for x := 0; x < w; x++ {
		push(x)
		push((h-1)*w + x)
	}
	for y := 0; y < h; y++ {
		push(y * w)
		push(y*w + w - 1)
	}
	for len(st) > 0 {
		i := int(st[len(st)-1])
		st = st[:len(st)-1]
		x := i % w
		if x > 0 {
			push(i - 1)
		}
		if x < w-1 {
			push(i + 1)
		}
		if i >= w {
			push(i - w)
		}
		if i < (h-1)*w {
			push(i + w)
		}
	}
	m.stack = st
	for i := range dst {
		dst[i] &^= src[i]
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
