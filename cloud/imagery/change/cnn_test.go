package change

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The hand-written backward pass must agree with finite differences of the
// loss, or training silently learns nothing.
func TestNetGradients(t *testing.T) {
	cfg := DefaultNetConfig()
	cfg.EncWidth, cfg.EncStride, cfg.EncDil = []int{3, 4, 4}, []int{1, 2, 1}, []int{1, 1, 2}
	cfg.HeadWidth, cfg.HeadDil = []int{4}, []int{2}
	rng := rand.New(rand.NewPCG(1, 2))
	n := NewNet(cfg, rng)
	const S = 13
	a, b := newTensor(3, S, S), newTensor(3, S, S)
	for i := range a.D {
		a.D[i], b.D[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	g := (S + 1) / 2
	target := make([]float32, g*g)
	for i := range target {
		target[i] = float32(rng.IntN(2))
	}
	gr := newGrads(n)
	n.step(a, b, target, gr, 1)
	lossAt := func() float64 { return n.step(a, b, target, newGrads(n), 1) }
	checked := 0
	for li, l := range n.layers() {
		for _, wi := range []int{0, 1, len(l.W) / 3, len(l.W) / 2, len(l.W) - 1} {
			old := l.W[wi]
			const h = 3e-3
			l.W[wi] = old + h
			up := lossAt()
			l.W[wi] = old - h
			down := lossAt()
			l.W[wi] = old
			num := (up - down) / (2 * h)
			got := float64(gr.w[li][wi])
			if math.Abs(num-got) > 2e-3+0.05*math.Abs(num) {
				t.Errorf("layer %d weight %d: backward %.5f, finite difference %.5f", li, wi, got, num)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no weights checked")
	}
}

// The fused 3×3 path must compute the same convolution as the per-tap one.
func TestConv3MatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][3]int{{9, 11, 1}, {9, 11, 4}, {3, 5, 2}, {20, 7, 8}} {
		h, w, d := sz[0], sz[1], sz[2]
		src := make([]float32, h*w)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		var k [9]float32
		for i := range k {
			k[i] = float32(rng.NormFloat64())
		}
		fast, slow := make([]float32, h*w), make([]float32, h*w)
		conv3Acc(fast, src, &k, h, w, d)
		for ky := 0; ky < 3; ky++ {
			for kx := 0; kx < 3; kx++ {
				convAcc(slow, src, k[ky*3+kx], h, w, h, w, (ky-1)*d, (kx-1)*d, 1)
			}
		}
		for i := range fast {
			if math.Abs(float64(fast[i]-slow[i])) > 1e-4 {
				t.Fatalf("%dx%d dil %d: pixel %d fused %.5f, per tap %.5f", h, w, d, i, fast[i], slow[i])
			}
		}
	}
}

// Given the statistics of the whole scene, a pixel's probability depends
// only on the pixels within Reach of it: computed on a window cut with that
// margin (at the net's grid) it equals the one computed on the whole image,
// whatever the window holds further away. Standardised over the window
// itself, it does not.
func TestNetTileIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := NewNet(DefaultNetConfig(), rng)
	const W, H = 360, 296
	a, b := NewImage(W, H), NewImage(W, H)
	for _, im := range []*Image{a, b} {
		// Smooth structure plus noise, and a much brighter right half: the
		// statistics of a window differ from those of the whole image.
		fx, fy := rng.Float64()*0.2, rng.Float64()*0.2
		for y := 0; y < H; y++ {
			for x := 0; x < W; x++ {
				v := 90 + 40*math.Sin(fx*float64(x))*math.Cos(fy*float64(y)) + 10*rng.NormFloat64()
				if x > W/2 {
					v = 1.8*v + 20
				}
				i := y*W + x
				im.R[i], im.G[i], im.B[i] = float32(v), float32(0.8*v+5), float32(min(v*1.1, 255))
			}
		}
	}
	sc := &SceneStats{Before: ImageStats(a), After: ImageStats(b)}
	whole := n.Prob(a, b, 1)
	if again := n.ProbScene(a, b, sc, 1); !slices.Equal(again, whole) {
		t.Fatal("the whole image's own statistics passed in change its probabilities")
	}
	m := &Model{Net: n}
	reach := m.Reach()
	if f := n.Factor(); reach%f != 0 {
		t.Fatalf("reach %d is not a multiple of the grid factor %d", reach, f)
	}
	// A core of 64×48 at (160, 120) read with the margin.
	cx, cy, cw, chh := 160, 120, 64, 48
	x0, y0 := cx-reach, cy-reach
	ww, wh := cw+2*reach, chh+2*reach
	if x0 < 0 || y0 < 0 || x0+ww > W || y0+wh > H {
		t.Fatalf("window %d,%d %dx%d outside the %dx%d image", x0, y0, ww, wh, W, H)
	}
	cut := func(im *Image) *Image {
		out := NewImage(ww, wh)
		for y := 0; y < wh; y++ {
			for x := 0; x < ww; x++ {
				i, j := y*ww+x, (y+y0)*W+x+x0
				out.R[i], out.G[i], out.B[i] = im.R[j], im.G[j], im.B[j]
			}
		}
		return out
	}
	diff := func(part []float32) (worst float64) {
		for y := 0; y < chh; y++ {
			for x := 0; x < cw; x++ {
				worst = max(worst, math.Abs(float64(part[(y+reach)*ww+x+reach]-whole[(y+cy)*W+x+cx])))
			}
		}
		return worst
	}
	scene := diff(n.ProbScene(cut(a), cut(b), sc, 1))
	own := diff(n.Prob(cut(a), cut(b), 1))
	t.Logf("largest difference whole image vs window: %.2g with the scene's statistics, %.2g with the window's own", scene, own)
	if scene > 1e-5 {
		t.Fatalf("with the scene's statistics the window's probabilities differ by up to %.5f from the whole image's (margin %d)", scene, reach)
	}
	if own < 10*scene+1e-3 {
		t.Fatalf("standardised over itself the window differs by only %.5f: the test image does not exercise the statistics", own)
	}
}
