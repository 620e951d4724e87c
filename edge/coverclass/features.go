package coverclass

import (
	"math"
	"slices"
)

// Features are hand-made and dimensionless: every luma value is taken
// relative to the street around the cover (its median L, with D = L+16 as
// the unit so that night scenes do not divide by zero) and every distance is
// in units of the cover's own half-size. An open shaft is a dark, smooth,
// shadowed hole whose darkness grows toward the centre and whose edge is a
// step up to the street; a lid is a textured plate about as bright as the
// road. Only abs_core and abs_street keep absolute brightness (a shaft is
// dark in absolute terms too); nothing depends on the camera's resolution
// or the cover's size, which is what lets a model trained on 84 boxes in 70
// web photos say something about the next camera.

// region bounds, in units of the box half-size (ρ = 1 is the inscribed ellipse).
const (
	coreR  = 0.45
	innerR = 0.75
)

// featureNames lists the features in model order. A model file names the
// features it was trained on and Load refuses one that does not match.
var featureNames = []string{
	"core_mean", "inner_mean", "rim_mean", "corner_mean",
	"core_p10", "core_p50", "core_p90", "inner_p05",
	"dark50_core", "dark50_rim", "dark30_inner", "dark_box_minus_sur",
	"abs_core", "abs_street",
	"rad0", "rad1", "rad2", "rad3", "rad4", "rad5", "rad6", "rad7",
	"grad_core", "grad_inner", "grad_sur", "grad_log_ratio",
	"std_core", "std_sur",
	"radial_grad_rim", "radial_grad_align",
	"lbp0", "lbp1", "lbp2", "lbp3", "lbp4", "lbp5", "lbp6", "lbp7", "lbp8", "lbp_nonuni",
	"up_minus_down",
}

// numFeatures is the length of a feature vector.
var numFeatures = len(featureNames)

// FeatureNames returns the names of the features in model order.
func FeatureNames() []string { return slices.Clone(featureNames) }

// geometry per cell, computed once.
var (
	cellRho  [gridN * gridN]float32
	cellU    [gridN * gridN]float32 // unit radial direction
	cellV    [gridN * gridN]float32
	cellBox  [gridN * gridN]bool // inside the labelled box
	uniform  [256]int8           // LBP code → bin 0..8 (number of ones) or 9 (non-uniform)
	radEdges = []float32{0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 10}
)

func init() {
	for j := 0; j < gridN; j++ {
		for i := 0; i < gridN; i++ {
			k := j*gridN + i
			u := (float64(i) + 0.5 - gridN/2) / (boxCells / 2)
			v := (float64(j) + 0.5 - gridN/2) / (boxCells / 2)
			r := math.Hypot(u, v)
			cellRho[k] = float32(r)
			if r > 0 {
				cellU[k], cellV[k] = float32(u/r), float32(v/r)
			}
			cellBox[k] = math.Abs(u) < 1 && math.Abs(v) < 1
		}
	}
	for code := range 256 {
		trans, ones := 0, 0
		for b := range 8 {
			x, y := code>>b&1, code>>((b+1)%8)&1
			if x != y {
				trans++
			}
			ones += x
		}
		if trans <= 2 {
			uniform[code] = int8(ones)
		} else {
			uniform[code] = 9
		}
	}
}

// scratch holds per-call buffers so that feature extraction does not
// allocate on the edge's hot path.
type scratch struct {
	p              patch
	core, inner    []float32
	rim, sur, corn []float32
}

func newScratch() *scratch {
	n := gridN * gridN
	return &scratch{
		core: make([]float32, 0, n), inner: make([]float32, 0, n),
		rim: make([]float32, 0, n), sur: make([]float32, 0, n), corn: make([]float32, 0, n),
	}
}

// features computes the feature vector of the sampled patch into f.
func (s *scratch) features(f []float64) {
	p := &s.p
	s.core, s.inner, s.rim, s.sur, s.corn = s.core[:0], s.inner[:0], s.rim[:0], s.sur[:0], s.corn[:0]
	for k := range p.y {
		if !p.ok[k] {
			continue
		}
		r, y := cellRho[k], p.y[k]
		switch {
		case r < coreR:
			s.core = append(s.core, y)
			s.inner = append(s.inner, y)
		case r < innerR:
			s.inner = append(s.inner, y)
		case r < 1:
			s.rim = append(s.rim, y)
		case cellBox[k]:
			s.corn = append(s.corn, y)
			s.sur = append(s.sur, y)
		default:
			s.sur = append(s.sur, y)
		}
	}
	// The street's level: the median of what lies around the ellipse. The
	// box corners are always there, so this exists even for a box that
	// fills the photo.
	L := median(s.sur)
	D := L + 16
	rel := func(v float64) float64 { return (v - L) / D }

	i := 0
	put := func(v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		f[i] = v
		i++
	}
	coreMean, innerMean := mean(s.core), mean(s.inner)
	put(rel(coreMean))
	put(rel(innerMean))
	put(rel(mean(s.rim)))
	put(rel(mean(s.corn)))
	put(rel(quantile(s.core, 0.10)))
	put(rel(quantile(s.core, 0.50)))
	put(rel(quantile(s.core, 0.90)))
	put(rel(quantile(s.inner, 0.05)))
	put(fracBelow(s.core, 0.5*L))
	put(fracBelow(s.rim, 0.5*L))
	put(fracBelow(s.inner, 0.3*L))
	put(fracBelow(s.inner, 0.5*L) - fracBelow(s.sur, 0.5*L))
	put(coreMean / 255)
	put(L / 255)

	// Radial profile of luma, relative to the street.
	var rs, rn [8]float64
	for k := range p.y {
		if !p.ok[k] {
			continue
		}
		r := cellRho[k]
		for b := 0; b < 8; b++ {
			if r >= radEdges[b] && r < radEdges[b+1] {
				rs[b] += float64(p.y[k])
				rn[b]++
				break
			}
		}
	}
	for b := range 8 {
		if rn[b] > 0 {
			put(rel(rs[b] / rn[b]))
		} else {
			put(0)
		}
	}

	// Texture: gradient magnitude, relative to D; and how much of the
	// gradient near the rim points outward (dark inside, bright outside is
	// a hole's edge).
	var gCore, nCore, gInner, nInner, gSur, nSur, radRim, alignRim, nRim float64
	for j := 1; j < gridN-1; j++ {
		for ii := 1; ii < gridN-1; ii++ {
			k := j*gridN + ii
			if !p.ok[k] || !p.ok[k-1] || !p.ok[k+1] || !p.ok[k-gridN] || !p.ok[k+gridN] {
				continue
			}
			gx := float64(p.y[k+1]-p.y[k-1]) / 2
			gy := float64(p.y[k+gridN]-p.y[k-gridN]) / 2
			m := math.Hypot(gx, gy)
			r := cellRho[k]
			switch {
			case r < coreR:
				gCore += m
				nCore++
				gInner += m
				nInner++
			case r < innerR:
				gInner += m
				nInner++
			case r >= 1.05:
				gSur += m
				nSur++
			}
			if r >= 0.5 && r < 1.1 {
				rad := gx*float64(cellU[k]) + gy*float64(cellV[k])
				radRim += rad
				alignRim += math.Abs(rad) / (m + 1e-3)
				nRim++
			}
		}
	}
	gc, gi, gs := safeDiv(gCore, nCore)/D, safeDiv(gInner, nInner)/D, safeDiv(gSur, nSur)/D
	put(gc)
	put(gi)
	put(gs)
	put(math.Log((gi + 0.01) / (gs + 0.01)))
	put(std(s.core) / D)
	put(std(s.sur) / D)
	// Per unit of box half-size, so a step of the street's level across
	// the rim scores about the same at any scale.
	put(safeDiv(radRim, nRim) / D * boxCells / 2)
	put(safeDiv(alignRim, nRim))

	// Local binary patterns of the inside: a lid's pattern is edges and
	// corners, a hole is flat. The tolerance keeps sensor noise in a dark
	// hole from looking like texture.
	var lbp [10]float64
	nl := 0.0
	tol := float32(0.04 * D)
	off := [8]int{-gridN - 1, -gridN, -gridN + 1, 1, gridN + 1, gridN, gridN - 1, -1}
	for j := 1; j < gridN-1; j++ {
		for ii := 1; ii < gridN-1; ii++ {
			k := j*gridN + ii
			if cellRho[k] >= innerR || !p.ok[k] {
				continue
			}
			c := p.y[k] + tol
			code := 0
			for b, o := range off {
				if p.y[k+o] > c {
					code |= 1 << b
				}
			}
			lbp[uniform[code]]++
			nl++
		}
	}
	for b := range lbp {
		put(safeDiv(lbp[b], nl))
	}

	// A shaft seen from a pole camera shows its far wall and hides its
	// near one, so an open cover is brighter in its upper half; a lid is
	// about symmetric.
	var up, nu, down, nd float64
	for k := range p.y {
		if !p.ok[k] || cellRho[k] >= innerR || cellV[k] == 0 {
			continue
		}
		if cellV[k] < 0 {
			up += float64(p.y[k])
			nu++
		} else {
			down += float64(p.y[k])
			nd++
		}
	}
	put((safeDiv(up, nu) - safeDiv(down, nd)) / D)
	if i != len(featureNames) {
		panic("coverclass: feature count mismatch")
	}
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mean(v []float32) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

func std(v []float32) float64 {
	if len(v) < 2 {
		return 0
	}
	m := mean(v)
	s := 0.0
	for _, x := range v {
		d := float64(x) - m
		s += d * d
	}
	return math.Sqrt(s / float64(len(v)))
}

func fracBelow(v []float32, t float64) float64 {
	if len(v) == 0 {
		return 0
	}
	n := 0
	for _, x := range v {
		if float64(x) < t {
			n++
		}
	}
	return float64(n) / float64(len(v))
}

// quantile returns the q-quantile of v (0-255 values) to a quarter of a
// grey level, by counting rather than sorting: the street ring has
// thousands of cells and this runs on every keyframe.
func quantile(v []float32, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var h [1024]uint16
	for _, x := range v {
		h[min(max(int(x*4), 0), len(h)-1)]++
	}
	rank := int(q*float64(len(v)-1) + 0.5)
	seen := 0
	for b, n := range h {
		seen += int(n)
		if seen > rank {
			return (float64(b) + 0.5) / 4
		}
	}
	return 255
}

func median(v []float32) float64 { return quantile(v, 0.5) }
