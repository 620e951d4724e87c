package change

import (
	"math"
	"math/rand/v2"
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
