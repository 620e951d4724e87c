package change

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// The planes summed by the featurizer's integral images. Each date is
// normalised per channel (zero mean, unit variance over the tile) before the
// luma/opponent planes are formed, so a global gain or offset between the
// dates — season, sun, sensor — does not show up as change.
const (
	pL  = iota // luma of the normalised bands
	pO1        // red-green opponent
	pO2        // yellow-blue opponent
	pL2        // luma squared (local variance)
	pGr        // Sobel gradient magnitude of luma (texture, edges)
	pC1        // raw chromaticity g-r (vegetation vs soil/roof)
	pC2        // raw chromaticity b-(r+g)/2 (blue roofs, water, shadow)
	perDate
)

const (
	nPlanes = 2*perDate + 1
	pAB     = 2 * perDate // product of the two lumas (local correlation)
)

// featureNames lists the per-scale features in the order At writes them.
var featureNames = []string{
	"meanL_A", "meanL_B", "meanO1_A", "meanO1_B", "meanO2_A", "meanO2_B",
	"dL", "dO1", "dO2", "cva",
	"stdL_A", "stdL_B", "corr",
	"grad_A", "grad_B", "dgrad",
	"c1_A", "c1_B", "c2_A", "c2_B", "dc1", "dc2",
	"cvaRel",
}

// structureNames are the features of feature set 1, per scale, after all
// of set 0's: the correlation of the two dates' luma gradients (edges that
// stay where they were, whatever their contrast or colour: 1; new or gone
// structure: near 0) and the log ratio of their energies (edges appear > 0).
var structureNames = []string{"gcorr", "glogratio"}

// FeatureNames returns the names of the features for the given scales and
// feature set (0: colour and texture statistics; 1: also gradient structure).
func FeatureNames(scales []int, set int) []string {
	var out []string
	for _, r := range scales {
		for _, n := range featureNames {
			out = append(out, fmt.Sprintf("%s@r%d", n, r))
		}
	}
	if set >= 1 {
		for _, r := range scales {
			for _, n := range structureNames {
				out = append(out, fmt.Sprintf("%s@r%d", n, r))
			}
		}
	}
	return out
}

// Featurizer computes per-pixel bi-temporal features of a co-registered pair
// from integral images: box means of each plane over square windows of radius
// r (side 2r+1) for every configured scale. Building it is O(pixels×planes);
// each feature vector then costs O(scales) look-ups, independent of r.
type Featurizer struct {
	W, H   int
	Scales []int
	// ii holds the summed-area tables of all planes interleaved: the nPlanes
	// sums of corner (x, y) are contiguous, so one box costs 4 cache-line
	// reads instead of 4 per plane.
	ii []float64
	// cvaOtsu is, per scale, the Otsu threshold of the change-vector
	// magnitude over the image: "cvaRel" = cva / cvaOtsu adapts to each
	// image's own level of change, as unsupervised change detection does.
	cvaOtsu []float64
	// Set is the feature set; set 1 adds gii, the interleaved summed-area
	// tables of |∇A|², |∇B|² and ∇A·∇B.
	Set int
	gii []float64
}

// NumFeatures is the length of the vector At writes.
func (f *Featurizer) NumFeatures() int {
	n := len(f.Scales) * len(featureNames)
	if f.Set >= 1 {
		n += len(f.Scales) * len(structureNames)
	}
	return n
}

// NewFeaturizer prepares the features of the pair (before a, after b), which
// must have the same size and be co-registered, using all CPUs.
func NewFeaturizer(a, b *Image, scales []int, set int) (*Featurizer, error) {
	return newFeaturizer(a, b, scales, set, runtime.GOMAXPROCS(0))
}

func newFeaturizer(a, b *Image, scales []int, set, workers int) (*Featurizer, error) {
	if a.W != b.W || a.H != b.H {
		return nil, fmt.Errorf("featurize: sizes differ: %dx%d vs %dx%d", a.W, a.H, b.W, b.H)
	}
	if a.W < 3 || a.H < 3 {
		return nil, fmt.Errorf("featurize: image %dx%d is too small", a.W, a.H)
	}
	f := &Featurizer{W: a.W, H: a.H, Scales: scales, Set: set}
	n := a.W * a.H
	var planes [nPlanes][]float32
	for p := range planes {
		planes[p] = make([]float32, n)
	}
	parallel(2, min(workers, 2), func(k int) {
		if k == 0 {
			datePlanes(a, planes[:perDate])
		} else {
			datePlanes(b, planes[perDate:2*perDate])
		}
	})
	la, lb, ab := planes[pL], planes[perDate+pL], planes[pAB]
	for i := range ab {
		ab[i] = la[i] * lb[i]
	}
	f.ii = integralInterleaved(planes[:], a.W, a.H, workers)
	if set >= 1 {
		f.gii = integralInterleaved(gradientPlanes(la, lb, a.W, a.H), a.W, a.H, workers)
	}
	f.cvaOtsu = make([]float64, len(scales))
	for k, r := range scales {
		var v []float32
		for y := 0; y < f.H; y += 4 {
			for x := 0; x < f.W; x += 4 {
				m := f.box(x, y, r)
				const B = perDate
				dL, dO1, dO2 := m[B+pL]-m[pL], m[B+pO1]-m[pO1], m[B+pO2]-m[pO2]
				v = append(v, float32(math.Sqrt(dL*dL+dO1*dO1+dO2*dO2)))
			}
		}
		f.cvaOtsu[k] = math.Max(float64(Otsu(v)), 0.05)
	}
	return f, nil
}

// box returns the means of all planes over the window of radius r at (x, y).
func (f *Featurizer) box(x, y, r int) (m [nPlanes]float64) {
	W := f.W + 1
	x0, y0 := max(x-r, 0), max(y-r, 0)
	x1, y1 := min(x+r+1, f.W), min(y+r+1, f.H)
	const P = nPlanes
	a, b := f.ii[(y0*W+x0)*P:][:P], f.ii[(y0*W+x1)*P:][:P]
	c, d := f.ii[(y1*W+x0)*P:][:P], f.ii[(y1*W+x1)*P:][:P]
	inv := 1 / float64((x1-x0)*(y1-y0))
	for p := range m {
		m[p] = (d[p] - b[p] - c[p] + a[p]) * inv
	}
	return m
}

// parallel runs fn(0..n-1) on up to workers goroutines.
func parallel(n, workers int, fn func(k int)) {
	if workers <= 1 || n <= 1 {
		for k := 0; k < n; k++ {
			fn(k)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for k := 0; k < n; k++ {
		next <- k
	}
	close(next)
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				fn(k)
			}
		}()
	}
	wg.Wait()
}

// integralInterleaved returns the (w+1)×(h+1)×nPlanes summed-area tables:
// prefix sums along each row (rows in parallel), then down each column
// (bands of columns in parallel).
func integralInterleaved(planes [][]float32, w, h, workers int) []float64 {
	P := len(planes)
	W := w + 1
	ii := make([]float64, W*(h+1)*P)
	const band = 32
	parallel((h+band-1)/band, workers, func(k int) {
		for y := k * band; y < min((k+1)*band, h); y++ {
			var rowBuf [nPlanes]float64
			row := rowBuf[:P]
			cur := ii[(y+1)*W*P : (y+2)*W*P]
			for x := 0; x < w; x++ {
				i := y*w + x
				o := (x + 1) * P
				for p := 0; p < P; p++ {
					row[p] += float64(planes[p][i])
					cur[o+p] = row[p]
				}
			}
		}
	})
	cols := W * P
	chunk := 64 * P
	parallel((cols+chunk-1)/chunk, workers, func(k int) {
		c0, c1 := k*chunk, min((k+1)*chunk, cols)
		for y := 2; y <= h; y++ {
			up := ii[(y-1)*cols : y*cols]
			cur := ii[y*cols : (y+1)*cols]
			for c := c0; c < c1; c++ {
				cur[c] += up[c]
			}
		}
	})
	return ii
}

func datePlanes(im *Image, out []([]float32)) {
	n := im.W * im.H
	mr, sr := channelStats(im.R)
	mg, sg := channelStats(im.G)
	mb, sb := channelStats(im.B)
	ir, ig, ib := float32(1/math.Max(sr, 1)), float32(1/math.Max(sg, 1)), float32(1/math.Max(sb, 1))
	L, O1, O2, L2, C1, C2 := out[pL], out[pO1], out[pO2], out[pL2], out[pC1], out[pC2]
	for i := 0; i < n; i++ {
		r := (im.R[i] - float32(mr)) * ir
		g := (im.G[i] - float32(mg)) * ig
		b := (im.B[i] - float32(mb)) * ib
		l := (r + g + b) / 3
		L[i], O1[i], O2[i], L2[i] = l, r-g, (r+g)/2-b, l*l
		s := im.R[i] + im.G[i] + im.B[i] + 3
		cr, cg, cb := (im.R[i]+1)/s, (im.G[i]+1)/s, (im.B[i]+1)/s
		C1[i], C2[i] = 10*(cg-cr), 10*(cb-(cr+cg)/2)
	}
	sobel(L, out[pGr], im.W, im.H)
}

// sobel writes the gradient magnitude of src (edges replicated).
func sobel(src, dst []float32, w, h int) {
	at := func(x, y int) float32 {
		if x < 0 {
			x = 0
		} else if x >= w {
			x = w - 1
		}
		if y < 0 {
			y = 0
		} else if y >= h {
			y = h - 1
		}
		return src[y*w+x]
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var gx, gy float32
			if x > 0 && y > 0 && x < w-1 && y < h-1 {
				i := y*w + x
				a, b, c := src[i-w-1], src[i-w], src[i-w+1]
				d, e := src[i-1], src[i+1]
				f, g, k := src[i+w-1], src[i+w], src[i+w+1]
				gx = (c + 2*e + k) - (a + 2*d + f)
				gy = (f + 2*g + k) - (a + 2*b + c)
			} else {
				gx = (at(x+1, y-1) + 2*at(x+1, y) + at(x+1, y+1)) - (at(x-1, y-1) + 2*at(x-1, y) + at(x-1, y+1))
				gy = (at(x-1, y+1) + 2*at(x, y+1) + at(x+1, y+1)) - (at(x-1, y-1) + 2*at(x, y-1) + at(x+1, y-1))
			}
			dst[y*w+x] = float32(math.Sqrt(float64(gx*gx+gy*gy))) / 4
		}
	}
}

// integral returns the (w+1)×(h+1) summed-area table of src.
func integral(src []float32, w, h int) []float64 {
	W := w + 1
	ii := make([]float64, W*(h+1))
	for y := 0; y < h; y++ {
		var row float64
		for x := 0; x < w; x++ {
			row += float64(src[y*w+x])
			ii[(y+1)*W+x+1] = ii[y*W+x+1] + row
		}
	}
	return ii
}

// At writes the feature vector of pixel (x, y) to out (len ≥ NumFeatures).
func (f *Featurizer) At(x, y int, out []float32) {
	k := 0
	for si, r := range f.Scales {
		m := f.box(x, y, r)
		const B = perDate
		lA, lB := m[pL], m[B+pL]
		dL, dO1, dO2 := lB-lA, m[B+pO1]-m[pO1], m[B+pO2]-m[pO2]
		vA := math.Max(m[pL2]-lA*lA, 0)
		vB := math.Max(m[B+pL2]-lB*lB, 0)
		sA, sB := math.Sqrt(vA), math.Sqrt(vB)
		corr := (m[pAB] - lA*lB + 0.01) / (sA*sB + 0.01)
		out[k+0] = float32(lA)
		out[k+1] = float32(lB)
		out[k+2] = float32(m[pO1])
		out[k+3] = float32(m[B+pO1])
		out[k+4] = float32(m[pO2])
		out[k+5] = float32(m[B+pO2])
		out[k+6] = float32(dL)
		out[k+7] = float32(dO1)
		out[k+8] = float32(dO2)
		out[k+9] = float32(math.Sqrt(dL*dL + dO1*dO1 + dO2*dO2))
		out[k+10] = float32(sA)
		out[k+11] = float32(sB)
		out[k+12] = float32(corr)
		out[k+13] = float32(m[pGr])
		out[k+14] = float32(m[B+pGr])
		out[k+15] = float32(m[B+pGr] - m[pGr])
		out[k+16] = float32(m[pC1])
		out[k+17] = float32(m[B+pC1])
		out[k+18] = float32(m[pC2])
		out[k+19] = float32(m[B+pC2])
		out[k+20] = float32(m[B+pC1] - m[pC1])
		out[k+21] = float32(m[B+pC2] - m[pC2])
		out[k+22] = out[k+9] / float32(f.cvaOtsu[si])
		k += len(featureNames)
	}
	if f.Set >= 1 {
		for _, r := range f.Scales {
			aa, bb, ab := f.gbox(x, y, r)
			const e = 0.01
			out[k] = float32((ab + e) / (math.Sqrt(aa*bb) + e))
			out[k+1] = float32(math.Log((bb + e) / (aa + e)))
			k += len(structureNames)
		}
	}
}

// gbox returns the window means of |∇A|², |∇B|² and ∇A·∇B.
func (f *Featurizer) gbox(x, y, r int) (aa, bb, ab float64) {
	W := f.W + 1
	x0, y0 := max(x-r, 0), max(y-r, 0)
	x1, y1 := min(x+r+1, f.W), min(y+r+1, f.H)
	const P = 3
	a, b := f.gii[(y0*W+x0)*P:][:P], f.gii[(y0*W+x1)*P:][:P]
	c, d := f.gii[(y1*W+x0)*P:][:P], f.gii[(y1*W+x1)*P:][:P]
	inv := 1 / float64((x1-x0)*(y1-y0))
	return (d[0] - b[0] - c[0] + a[0]) * inv, (d[1] - b[1] - c[1] + a[1]) * inv, (d[2] - b[2] - c[2] + a[2]) * inv
}

// gradientPlanes returns |∇A|², |∇B|² and ∇A·∇B of two lumas (central
// differences, zero at the border).
func gradientPlanes(la, lb []float32, w, h int) [][]float32 {
	n := w * h
	aa, bb, ab := make([]float32, n), make([]float32, n), make([]float32, n)
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			ax, ay := la[i+1]-la[i-1], la[i+w]-la[i-w]
			bx, by := lb[i+1]-lb[i-1], lb[i+w]-lb[i-w]
			aa[i], bb[i], ab[i] = ax*ax+ay*ay, bx*bx+by*by, ax*bx+ay*by
		}
	}
	return [][]float32{aa, bb, ab}
}
