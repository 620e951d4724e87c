package change

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// NetConfig is the recipe of a Net and of its training.
type NetConfig struct {
	Name, Version string
	Pool          int   `json:"pool"`
	EncWidth      []int `json:"enc_width"` // output channels of the encoder's layers
	EncStride     []int `json:"enc_stride"`
	EncDil        []int `json:"enc_dil"`
	HeadWidth     []int `json:"head_width"` // hidden head layers (3×3); a 1×1 layer to 1 output follows
	HeadDil       []int `json:"head_dil"`

	Crop      int     `json:"crop"`       // training crop side, input pixels
	Steps     int     `json:"steps"`      // optimiser steps
	Batch     int     `json:"batch"`      // crops per step
	LearnRate float64 `json:"learn_rate"` // Adam, cosine-decayed to 0
	Decay     float64 `json:"decay"`      // L2 weight decay
	// Scale augmentation: each crop is resampled by a factor drawn
	// log-uniformly from [ScaleMin, ScaleMax] and rotated by any angle.
	ScaleMin float64 `json:"scale_min"`
	ScaleMax float64 `json:"scale_max"`
	// Colour is the strength of the per-date colour jitter (channel mixing,
	// gain, gamma, noise) applied independently to each date.
	Colour float64 `json:"colour"`
	// Negatives is the share of crops made of one date twice (differently
	// jittered) with an empty label: appearance jitter is not change.
	Negatives float64 `json:"negatives"`
	// Reverse is the share of crops shown with the dates swapped and an
	// empty label: a building that disappears is not new construction.
	Reverse float64 `json:"reverse"`
	Seed    uint64  `json:"seed"`
	Workers int     `json:"-"`
}

// DefaultNetConfig is the recipe of the shipped network.
func DefaultNetConfig() NetConfig {
	return NetConfig{
		Name: "change-cnn", Version: "1",
		Pool:     2,
		EncWidth: []int{12, 16, 16, 16, 16}, EncStride: []int{1, 2, 1, 1, 1}, EncDil: []int{1, 1, 1, 2, 4},
		HeadWidth: []int{16, 16}, HeadDil: []int{1, 4},
		Crop: 160, Steps: 500, Batch: 8, LearnRate: 3e-3, Decay: 1e-4,
		ScaleMin: 0.5, ScaleMax: 2, Colour: 1, Negatives: 0.1, Reverse: 0, Seed: 1,
	}
}

// NewNet returns a He-initialised network of the configured shape.
func NewNet(cfg NetConfig, rng *rand.Rand) *Net {
	n := &Net{Pool: cfg.Pool}
	mk := func(in, out, k, stride, dil int, relu bool) Conv {
		l := Conv{In: in, Out: out, K: k, Stride: stride, Dil: dil, ReLU: relu,
			W: make([]float32, out*in*k*k), B: make([]float32, out)}
		sd := math.Sqrt(2 / float64(in*k*k))
		if !relu {
			sd = math.Sqrt(1 / float64(in*k*k))
		}
		for i := range l.W {
			l.W[i] = float32(rng.NormFloat64() * sd)
		}
		return l
	}
	in := 3
	for i, w := range cfg.EncWidth {
		n.Enc = append(n.Enc, mk(in, w, 3, cfg.EncStride[i], cfg.EncDil[i], true))
		in = w
	}
	in *= 3
	for i, w := range cfg.HeadWidth {
		n.Head = append(n.Head, mk(in, w, 3, 1, cfg.HeadDil[i], true))
		in = w
	}
	n.Head = append(n.Head, mk(in, 1, 1, 1, 1, false))
	return n
}

// backward takes the layer's input and output and the gradient of the loss
// with respect to the output, adds the weight gradients to gw, gb and
// returns the gradient with respect to the input (nil when !needIn).
func (l *Conv) backward(in, out, dout *tensor, gw, gb []float32, needIn bool) *tensor {
	if l.Stride > 1 {
		d := l.backward1(pool2(in), out, dout, gw, gb, needIn)
		if d == nil {
			return nil
		}
		return unpool2(d, in.H, in.W)
	}
	return l.backward1(in, out, dout, gw, gb, needIn)
}

func (l *Conv) backward1(in, out, dout *tensor, gw, gb []float32, needIn bool) *tensor {
	g := dout
	if l.ReLU {
		g = newTensor(dout.C, dout.H, dout.W)
		for i, v := range out.D {
			if v > 0 {
				g.D[i] = dout.D[i]
			}
		}
	}
	var din *tensor
	if needIn {
		din = newTensor(in.C, in.H, in.W)
	}
	if l.K == 3 {
		for o := 0; o < l.Out; o++ {
			go_ := g.ch(o)
			var sb float32
			for _, v := range go_ {
				sb += v
			}
			gb[o] += sb
			for i := 0; i < l.In; i++ {
				conv3Grad((*[9]float32)(gw[(o*l.In+i)*9:]), go_, in.ch(i), in.H, in.W, l.Dil)
			}
		}
		if needIn {
			// The input's gradient is the convolution of g with the
			// flipped kernels.
			for i := 0; i < l.In; i++ {
				dsrc := din.ch(i)
				for o := 0; o < l.Out; o++ {
					var k [9]float32
					for t := 0; t < 9; t++ {
						k[t] = l.W[(o*l.In+i)*9+8-t]
					}
					conv3Acc(dsrc, g.ch(o), &k, in.H, in.W, l.Dil)
				}
			}
		}
		return din
	}
	for o := 0; o < l.Out; o++ {
		go_ := g.ch(o)
		var sb float32
		for _, v := range go_ {
			sb += v
		}
		gb[o] += sb
		for i := 0; i < l.In; i++ {
			src := in.ch(i)
			var dsrc []float32
			if needIn {
				dsrc = din.ch(i)
			}
			for ky := 0; ky < l.K; ky++ {
				for kx := 0; kx < l.K; kx++ {
					wi := ((o*l.In+i)*l.K+ky)*l.K + kx
					gw[wi] += convBack(go_, src, dsrc, l.W[wi], in.H, in.W, g.H, g.W, ky*l.Dil-l.pad(), kx*l.Dil-l.pad(), 1)
				}
			}
		}
	}
	return din
}

// convBack is the adjoint of convAcc: it adds wv × g to dsrc (if not nil)
// at the shifted positions and returns Σ g·src (the weight's gradient).
func convBack(g, src, dsrc []float32, wv float32, h, w, oh, ow, dy, dx, stride int) float32 {
	var acc float32
	for y := 0; y < oh; y++ {
		sy := y*stride + dy
		if sy < 0 || sy >= h {
			continue
		}
		x0, x1 := validRange(w, ow, dx, stride)
		if x0 >= x1 {
			continue
		}
		grow := g[y*ow : (y+1)*ow]
		srow := src[sy*w : (sy+1)*w]
		if stride == 1 {
			gg := grow[x0:x1]
			ss := srow[x0+dx : x1+dx]
			ss = ss[:len(gg)]
			for j, v := range gg {
				acc += v * ss[j]
			}
			if dsrc != nil {
				dd := dsrc[sy*w+x0+dx : sy*w+x1+dx]
				dd = dd[:len(gg)]
				for j, v := range gg {
					dd[j] += wv * v
				}
			}
			continue
		}
		for x := x0; x < x1; x++ {
			acc += grow[x] * srow[x*stride+dx]
			if dsrc != nil {
				dsrc[sy*w+x*stride+dx] += wv * grow[x]
			}
		}
	}
	return acc
}

// grads holds one gradient buffer per layer.
type grads struct{ w, b [][]float32 }

func (n *Net) layers() []*Conv {
	var ls []*Conv
	for i := range n.Enc {
		ls = append(ls, &n.Enc[i])
	}
	for i := range n.Head {
		ls = append(ls, &n.Head[i])
	}
	return ls
}

func newGrads(n *Net) *grads {
	g := &grads{}
	for _, l := range n.layers() {
		g.w = append(g.w, make([]float32, len(l.W)))
		g.b = append(g.b, make([]float32, len(l.B)))
	}
	return g
}

// step runs one crop forward and backward, adding the gradients of the mean
// BCE loss (times scale) to g; it returns the loss.
func (n *Net) step(a, b *tensor, target []float32, g *grads, scale float32) float64 {
	ne := len(n.Enc)
	actsA, actsB := []*tensor{a}, []*tensor{b}
	for i := range n.Enc {
		actsA = append(actsA, n.Enc[i].forward(actsA[i], 1))
		actsB = append(actsB, n.Enc[i].forward(actsB[i], 1))
	}
	ea, eb := actsA[ne], actsB[ne]
	acts := []*tensor{joint(ea, eb)}
	for i := range n.Head {
		acts = append(acts, n.Head[i].forward(acts[i], 1))
	}
	z := acts[len(acts)-1]
	d := newTensor(1, z.H, z.W)
	var loss float64
	inv := scale / float32(len(z.D))
	for i, v := range z.D {
		t := target[i]
		p := sigmoid(v)
		loss += float64(max(v, 0) - v*t + float32(math.Log1p(math.Exp(-math.Abs(float64(v))))))
		d.D[i] = (p - t) * inv
	}
	loss /= float64(len(z.D))
	for i := len(n.Head) - 1; i >= 0; i-- {
		d = n.Head[i].backward(acts[i], acts[i+1], d, g.w[ne+i], g.b[ne+i], true)
	}
	// Split the joint gradient: [dA, dB, d|A-B|].
	k := len(ea.D)
	da := newTensor(ea.C, ea.H, ea.W)
	db := newTensor(eb.C, eb.H, eb.W)
	for i := 0; i < k; i++ {
		s := d.D[2*k+i]
		if ea.D[i] < eb.D[i] {
			s = -s
		}
		da.D[i] = d.D[i] + s
		db.D[i] = d.D[k+i] - s
	}
	for i := ne - 1; i >= 0; i-- {
		da = n.Enc[i].backward(actsA[i], actsA[i+1], da, g.w[i], g.b[i], i > 0)
		db = n.Enc[i].backward(actsB[i], actsB[i+1], db, g.w[i], g.b[i], i > 0)
	}
	return loss
}

// crop is one augmented training sample.
type crop struct {
	a, b   *Image
	target []float32 // on the output grid
}

// makeCrop draws a crop of side S from pair p: random scale, rotation, flip,
// per-date colour jitter; sometimes a negative (one date twice) or the dates
// reversed.
func makeCrop(p Pair, cfg NetConfig, factor int, rng *rand.Rand) crop {
	S := cfg.Crop
	s := math.Exp(math.Log(cfg.ScaleMin) + rng.Float64()*(math.Log(cfg.ScaleMax)-math.Log(cfg.ScaleMin)))
	th := rng.Float64() * 2 * math.Pi
	flip := 1.0
	if rng.IntN(2) == 0 {
		flip = -1
	}
	// Source step per output pixel along the crop's x and y axes.
	c, sn := math.Cos(th)/s, math.Sin(th)/s
	ux, uy := c*flip, sn*flip
	vx, vy := -sn, c
	cx := rng.Float64() * float64(p.A.W)
	cy := rng.Float64() * float64(p.A.H)
	half := float64(S-1) / 2
	ia, ib := NewImage(S, S), NewImage(S, S)
	lab := make([]float32, S*S)
	for y := 0; y < S; y++ {
		for x := 0; x < S; x++ {
			dx, dy := float64(x)-half, float64(y)-half
			sx := cx + dx*ux + dy*vx
			sy := cy + dx*uy + dy*vy
			i := y*S + x
			ia.R[i], ia.G[i], ia.B[i] = bilinear3(p.A, sx, sy)
			ib.R[i], ib.G[i], ib.B[i] = bilinear3(p.B, sx, sy)
			lab[i] = bilinearMask(p.Label, sx, sy)
		}
	}
	switch r := rng.Float64(); {
	case r < cfg.Negatives:
		if rng.IntN(2) == 0 {
			ib = cloneImage(ia)
		} else {
			ia = cloneImage(ib)
		}
		clear(lab)
	case r < cfg.Negatives+cfg.Reverse:
		ia, ib = ib, ia
		clear(lab)
	}
	jitter(ia, cfg.Colour, rng)
	jitter(ib, cfg.Colour, rng)
	// Target: label averaged over each output cell.
	g := (S + factor - 1) / factor
	target := make([]float32, g*g)
	poolAvg(target, lab, S, S, factor)
	return crop{a: ia, b: ib, target: target}
}

func cloneImage(im *Image) *Image {
	return &Image{W: im.W, H: im.H, R: append([]float32(nil), im.R...), G: append([]float32(nil), im.G...), B: append([]float32(nil), im.B...)}
}

// reflect maps a coordinate into [0, n-1] by mirroring at the borders.
func reflect(v float64, n int) float64 {
	m := float64(n - 1)
	if m <= 0 {
		return 0
	}
	v = math.Mod(math.Abs(v), 2*m)
	if v > m {
		v = 2*m - v
	}
	return v
}

func bilinearAt(w, h int, x, y float64) (i00, i01, i10, i11 int, tx, ty float32) {
	x, y = reflect(x, w), reflect(y, h)
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	return y0*w + x0, y0*w + x1, y1*w + x0, y1*w + x1, float32(x - float64(x0)), float32(y - float64(y0))
}

func bilinear3(im *Image, x, y float64) (r, g, b float32) {
	a, bb, c, d, tx, ty := bilinearAt(im.W, im.H, x, y)
	f := func(p []float32) float32 {
		top := p[a] + (p[bb]-p[a])*tx
		bot := p[c] + (p[d]-p[c])*tx
		return top + (bot-top)*ty
	}
	return f(im.R), f(im.G), f(im.B)
}

func bilinearMask(m *Mask, x, y float64) float32 {
	a, b, c, d, tx, ty := bilinearAt(m.W, m.H, x, y)
	p := m.Pix
	top := float32(p[a]) + float32(int(p[b])-int(p[a]))*tx
	bot := float32(p[c]) + float32(int(p[d])-int(p[c]))*tx
	return top + (bot-top)*ty
}

// jitter changes a date's colours the way another season, sensor or sun
// would: a random near-identity channel mix, gain, gamma and noise.
func jitter(im *Image, strength float64, rng *rand.Rand) {
	if strength <= 0 {
		return
	}
	var mix [3][3]float32
	for i := range 3 {
		for j := range 3 {
			v := rng.NormFloat64() * 0.08 * strength
			if i == j {
				v += 1
			}
			mix[i][j] = float32(v)
		}
	}
	gain := float32(math.Exp(rng.NormFloat64() * 0.2 * strength))
	gamma := math.Exp(rng.NormFloat64() * 0.25 * strength)
	noise := float32(rng.Float64() * 4 * strength)
	var lut [256]float32
	for i := range lut {
		lut[i] = float32(255 * math.Pow(float64(i)/255, gamma))
	}
	for i := range im.R {
		r, g, b := im.R[i], im.G[i], im.B[i]
		nr := mix[0][0]*r + mix[0][1]*g + mix[0][2]*b
		ng := mix[1][0]*r + mix[1][1]*g + mix[1][2]*b
		nb := mix[2][0]*r + mix[2][1]*g + mix[2][2]*b
		for k, v := range []*float32{&nr, &ng, &nb} {
			x := *v * gain
			x = min(max(x, 0), 255)
			x = lut[int(x)]
			x += noise * float32(rng.NormFloat64())
			switch k {
			case 0:
				im.R[i] = x
			case 1:
				im.G[i] = x
			default:
				im.B[i] = x
			}
		}
	}
}

// TrainNet trains a Net on labelled pairs and chooses the post-processing on
// the training pairs at their own and half resolution. logf, if not
// nil, receives progress lines.
func TrainNet(pairs []Pair, cfg NetConfig, logf func(format string, args ...any)) (*Model, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(pairs) < 1 {
		return nil, fmt.Errorf("train: no labelled pairs")
	}
	for _, p := range pairs {
		if p.Label == nil || p.Label.W != p.A.W || p.Label.H != p.A.H {
			return nil, fmt.Errorf("train: pair %s: label missing or of another size", p.Name)
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 11))
	net := NewNet(cfg, rng)
	factor := net.Factor()
	workers := max(cfg.Workers, 1)
	ls := net.layers()
	// Adam state.
	mw, vw := newGrads(net), newGrads(net)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	seeds := make([]uint64, cfg.Steps*cfg.Batch)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	var avg float64
	for step := 0; step < cfg.Steps; step++ {
		gs := make([]*grads, workers)
		losses := make([]float64, workers)
		var wg sync.WaitGroup
		for k := 0; k < workers; k++ {
			gs[k] = newGrads(net)
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				for j := k; j < cfg.Batch; j += workers {
					r := rand.New(rand.NewPCG(seeds[step*cfg.Batch+j], 3))
					p := pairs[r.IntN(len(pairs))]
					c := makeCrop(p, cfg, factor, r)
					losses[k] += net.step(net.standardise(c.a, nil), net.standardise(c.b, nil), c.target, gs[k], 1/float32(cfg.Batch))
				}
			}(k)
		}
		wg.Wait()
		var loss float64
		for k := range losses {
			loss += losses[k] / float64(cfg.Batch)
		}
		avg = 0.95*avg + 0.05*loss
		if step == 0 {
			avg = loss
		}
		lr := cfg.LearnRate * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(cfg.Steps)))
		t := float64(step + 1)
		c1, c2 := 1-math.Pow(b1, t), 1-math.Pow(b2, t)
		for li, l := range ls {
			for _, pb := range []struct {
				p, m, v []float32
				gi      func(k int) []float32
				decay   bool
			}{
				{l.W, mw.w[li], vw.w[li], func(k int) []float32 { return gs[k].w[li] }, true},
				{l.B, mw.b[li], vw.b[li], func(k int) []float32 { return gs[k].b[li] }, false},
			} {
				for i := range pb.p {
					var gr float64
					for k := range gs {
						gr += float64(pb.gi(k)[i])
					}
					if pb.decay {
						gr += cfg.Decay * float64(pb.p[i])
					}
					m := b1*float64(pb.m[i]) + (1-b1)*gr
					v := b2*float64(pb.v[i]) + (1-b2)*gr*gr
					pb.m[i], pb.v[i] = float32(m), float32(v)
					pb.p[i] -= float32(lr * (m / c1) / (math.Sqrt(v/c2) + eps))
				}
			}
		}
		if (step+1)%25 == 0 {
			logf("step %d/%d loss %.4f", step+1, cfg.Steps, avg)
		}
	}
	m := &Model{Name: cfg.Name, Version: cfg.Version, Net: net, NetConfig: &cfg, Stride: 1}
	var evalPairs []Pair
	var probs [][]float32
	for _, p := range pairs {
		m.TrainedOn = append(m.TrainedOn, p.Name)
		for _, q := range []Pair{p, p.Halve()} {
			evalPairs = append(evalPairs, q)
			probs = append(probs, net.Prob(q.A, q.B, workers))
		}
	}
	m.Post = choosePost(evalPairs, probs)
	var c Confusion
	for i, p := range evalPairs {
		c.Add(m.Post.Apply(probs[i], p.A.W, p.A.H), p.Label)
	}
	logf("post-processing %+v: training-set F1 %.3f (P %.3f R %.3f)", m.Post, c.F1(), c.Precision(), c.Recall())
	m.TrainingFit = &OutOfFold{Pairs: len(evalPairs), Precision: c.Precision(), Recall: c.Recall(), F1: c.F1(), IoU: c.IoU()}
	return m, nil
}
