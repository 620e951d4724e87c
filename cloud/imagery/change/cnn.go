package change

import (
	"fmt"
	"math"
	"sync"
)

// Net is a small siamese convolutional network: the same encoder looks at
// each date (per-channel standardised, average-pooled by Pool), and a head
// looks at both encodings and their absolute difference to give the log-odds
// of "changed" on a grid Pool*2 times coarser than the input, interpolated
// back bilinearly. It is trained in pure Go (cnntrain.go).
type Net struct {
	// Pool is the input average-pooling factor (1 or 2): the encoder runs at
	// 1/Pool of the input resolution.
	Pool int `json:"pool"`
	// Enc are the encoder's layers (shared by both dates), Head the layers
	// after the concatenation [encA, encB, |encA-encB|].
	Enc  []Conv `json:"enc"`
	Head []Conv `json:"head"`
}

// Conv is a square convolution with "same" zero padding.
type Conv struct {
	In  int `json:"in"`
	Out int `json:"out"`
	K   int `json:"k"` // 1 or 3
	// Stride 2 average-pools the input 2×2 before the convolution.
	Stride int  `json:"stride"`
	Dil    int  `json:"dil"`
	ReLU   bool `json:"relu"`
	// W is laid out [Out][In][K][K].
	W []float32 `json:"w"`
	B []float32 `json:"b"`
}

// tensor is a C×H×W float32 array.
type tensor struct {
	C, H, W int
	D       []float32
}

func newTensor(c, h, w int) *tensor { return &tensor{C: c, H: h, W: w, D: make([]float32, c*h*w)} }

func (t *tensor) ch(c int) []float32 { return t.D[c*t.H*t.W : (c+1)*t.H*t.W] }

func (l *Conv) outSize(h, w int) (int, int) {
	s := max(l.Stride, 1)
	return (h + s - 1) / s, (w + s - 1) / s
}

func (l *Conv) pad() int { return l.Dil * (l.K / 2) }

// forward computes the layer's output; workers goroutines split the output
// channels.
func (l *Conv) forward(in *tensor, workers int) *tensor {
	if l.Stride > 1 {
		in = pool2(in)
	}
	out := newTensor(l.Out, in.H, in.W)
	if l.K == 3 && l.Out%2 == 0 {
		// Two output channels per pass over each input channel.
		parallel(l.Out/2, workers, func(op int) {
			o := 2 * op
			d0, d1 := out.ch(o), out.ch(o+1)
			for i := range d0 {
				d0[i], d1[i] = l.B[o], l.B[o+1]
			}
			for i := 0; i < l.In; i++ {
				conv3Acc2(d0, d1, in.ch(i), (*[9]float32)(l.W[(o*l.In+i)*9:]), (*[9]float32)(l.W[((o+1)*l.In+i)*9:]), in.H, in.W, l.Dil)
			}
			if l.ReLU {
				relu(d0)
				relu(d1)
			}
		})
		return out
	}
	parallel(l.Out, workers, func(o int) {
		dst := out.ch(o)
		for i := range dst {
			dst[i] = l.B[o]
		}
		for i := 0; i < l.In; i++ {
			src := in.ch(i)
			if l.K == 3 {
				conv3Acc(dst, src, (*[9]float32)(l.W[(o*l.In+i)*9:]), in.H, in.W, l.Dil)
				continue
			}
			for ky := 0; ky < l.K; ky++ {
				for kx := 0; kx < l.K; kx++ {
					wv := l.W[((o*l.In+i)*l.K+ky)*l.K+kx]
					convAcc(dst, src, wv, in.H, in.W, in.H, in.W, ky*l.Dil-l.pad(), kx*l.Dil-l.pad(), 1)
				}
			}
		}
		if l.ReLU {
			relu(dst)
		}
	})
	return out
}

func relu(v []float32) {
	for i, x := range v {
		if x < 0 {
			v[i] = 0
		}
	}
}

// pool2 is the 2×2 average pooling (a last odd row or column is averaged
// with itself).
func pool2(in *tensor) *tensor {
	h, w := (in.H+1)/2, (in.W+1)/2
	out := newTensor(in.C, h, w)
	for c := 0; c < in.C; c++ {
		src, dst := in.ch(c), out.ch(c)
		for y := 0; y < h; y++ {
			y0, y1 := 2*y, min(2*y+1, in.H-1)
			for x := 0; x < w; x++ {
				x0, x1 := 2*x, min(2*x+1, in.W-1)
				dst[y*w+x] = (src[y0*in.W+x0] + src[y0*in.W+x1] + src[y1*in.W+x0] + src[y1*in.W+x1]) / 4
			}
		}
	}
	return out
}

// unpool2 is the adjoint of pool2: g (pooled size) spread back to h×w.
func unpool2(g *tensor, h, w int) *tensor {
	out := newTensor(g.C, h, w)
	for c := 0; c < g.C; c++ {
		src, dst := g.ch(c), out.ch(c)
		for y := 0; y < g.H; y++ {
			y0, y1 := 2*y, min(2*y+1, h-1)
			for x := 0; x < g.W; x++ {
				x0, x1 := 2*x, min(2*x+1, w-1)
				v := src[y*g.W+x] / 4
				dst[y0*w+x0] += v
				dst[y0*w+x1] += v
				dst[y1*w+x0] += v
				dst[y1*w+x1] += v
			}
		}
	}
	return out
}

// convAcc adds wv × src shifted by (dy, dx) (and subsampled by stride) to dst.
func convAcc(dst, src []float32, wv float32, h, w, oh, ow, dy, dx, stride int) {
	for y := 0; y < oh; y++ {
		sy := y*stride + dy
		if sy < 0 || sy >= h {
			continue
		}
		x0, x1 := validRange(w, ow, dx, stride)
		if x0 >= x1 {
			continue
		}
		drow := dst[y*ow : (y+1)*ow]
		srow := src[sy*w : (sy+1)*w]
		if stride == 1 {
			d := drow[x0:x1]
			s := srow[x0+dx : x1+dx]
			s = s[:len(d)]
			for j := range d {
				d[j] += wv * s[j]
			}
			continue
		}
		for x := x0; x < x1; x++ {
			drow[x] += wv * srow[x*stride+dx]
		}
	}
}

// validRange is the range of output columns x with 0 <= x*stride+dx < w.
func validRange(w, ow, dx, stride int) (int, int) {
	x0 := 0
	if dx < 0 {
		x0 = (-dx + stride - 1) / stride
	}
	x1 := ow
	// need x*stride+dx <= w-1
	if lim := (w - 1 - dx); lim < 0 {
		x1 = 0
	} else {
		x1 = min(x1, lim/stride+1)
	}
	return x0, x1
}

// standardise turns an image into the network's 3×H×W input: average-pooled
// by n.Pool, each band standardised to zero mean and unit variance with the
// statistics st of the whole scene (nil: of im itself).
func (n *Net) standardise(im *Image, st *BandStats) *tensor {
	pool := max(n.Pool, 1)
	h, w := (im.H+pool-1)/pool, (im.W+pool-1)/pool
	if st == nil {
		own := ImageStats(im)
		st = &own
	}
	t := newTensor(3, h, w)
	for c, src := range [][]float32{im.R, im.G, im.B} {
		dst := t.ch(c)
		poolAvg(dst, src, im.W, im.H, pool)
		mean, inv := float32(st.Mean[c]), float32(1/max(st.Std[c], 1))
		for i, v := range dst {
			dst[i] = (v - mean) * inv
		}
	}
	return t
}

// poolAvg writes the pool×pool block means of the W×H grid src (blocks cut
// by the border averaged over the pixels they have) to dst.
func poolAvg(dst, src []float32, W, H, pool int) {
	if pool == 1 {
		copy(dst, src)
		return
	}
	w, h := (W+pool-1)/pool, (H+pool-1)/pool
	block := func(x, y int) float32 {
		var s float32
		n := 0
		for yy := y * pool; yy < min(y*pool+pool, H); yy++ {
			for xx := x * pool; xx < min(x*pool+pool, W); xx++ {
				s += src[yy*W+xx]
				n++
			}
		}
		return s / float32(n)
	}
	for y := 0; y < h; y++ {
		x := 0
		if pool == 2 && 2*y+1 < H {
			// Whole 2×2 blocks, summed in the same order as block.
			r0, r1 := src[2*y*W:(2*y+1)*W], src[(2*y+1)*W:(2*y+2)*W]
			d := dst[y*w : (y+1)*w]
			for ; 2*x+1 < W; x++ {
				d[x] = (r0[2*x] + r0[2*x+1] + r1[2*x] + r1[2*x+1]) / 4
			}
		}
		for ; x < w; x++ {
			dst[y*w+x] = block(x, y)
		}
	}
}

// Factor is how much coarser the output grid is than the input.
func (n *Net) Factor() int {
	f := max(n.Pool, 1)
	for _, l := range n.Enc {
		f *= max(l.Stride, 1)
	}
	for _, l := range n.Head {
		f *= max(l.Stride, 1)
	}
	return f
}

// Reach is the receptive-field radius in input pixels (plus the
// interpolation cell), used as the tile margin.
func (n *Net) Reach() int {
	f := max(n.Pool, 1)
	r := f
	for _, ls := range [][]Conv{n.Enc, n.Head} {
		for _, l := range ls {
			if l.Stride > 1 {
				r += f
				f *= l.Stride
			}
			r += l.pad() * f
		}
	}
	return r + f
}

func (n *Net) validate() error {
	if len(n.Enc) == 0 || len(n.Head) == 0 {
		return fmt.Errorf("net has no layers")
	}
	in := 3
	for i, ls := range [][]Conv{n.Enc, n.Head} {
		if i == 1 {
			in *= 3
		}
		for j, l := range ls {
			if l.In != in || l.K < 1 || l.K%2 == 0 || l.Dil < 1 || len(l.W) != l.Out*l.In*l.K*l.K || len(l.B) != l.Out {
				return fmt.Errorf("net layer %d/%d has the wrong shape", i, j)
			}
			in = l.Out
		}
	}
	if in != 1 {
		return fmt.Errorf("net's last layer has %d outputs, want 1", in)
	}
	return nil
}

// encode runs the encoder on one date (st: its scene's statistics, or nil).
func (n *Net) encode(im *Image, st *BandStats, workers int) *tensor {
	t := n.standardise(im, st)
	for i := range n.Enc {
		t = n.Enc[i].forward(t, workers)
	}
	return t
}

// joint concatenates [a, b, |a-b|].
func joint(a, b *tensor) *tensor {
	t := newTensor(3*a.C, a.H, a.W)
	copy(t.D, a.D)
	copy(t.D[len(a.D):], b.D)
	d := t.D[2*len(a.D):]
	for i := range d {
		d[i] = float32(math.Abs(float64(a.D[i] - b.D[i])))
	}
	return t
}

// Logits returns the log-odds grid of a pair (before a, after b).
func (n *Net) logits(a, b *Image, sc *SceneStats, workers int) *tensor {
	var sa, sb *BandStats
	if sc != nil {
		sa, sb = &sc.Before, &sc.After
	}
	var ea, eb *tensor
	if workers > 1 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); ea = n.encode(a, sa, max(workers/2, 1)) }()
		eb = n.encode(b, sb, max(workers-workers/2, 1))
		wg.Wait()
	} else {
		ea, eb = n.encode(a, sa, 1), n.encode(b, sb, 1)
	}
	t := joint(ea, eb)
	for i := range n.Head {
		t = n.Head[i].forward(t, workers)
	}
	return t
}

// Prob returns the per-pixel change probability of a pair, each date
// standardised over itself.
func (n *Net) Prob(a, b *Image, workers int) []float32 { return n.ProbScene(a, b, nil, workers) }

// ProbScene is Prob with each date standardised with the statistics of its
// whole scene (sc; nil: of a and b themselves). A tile of a larger scene
// given the scene's statistics gets, within Reach of its border, the same
// probabilities as the whole scene would.
func (n *Net) ProbScene(a, b *Image, sc *SceneStats, workers int) []float32 {
	g := n.logits(a, b, sc, workers)
	p := g.ch(0)
	for i, v := range p {
		p[i] = sigmoid(v)
	}
	return upsample(p, g.W, g.H, n.Factor(), a.W, a.H)
}

func sigmoid(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }

// upsample interpolates a gw×gh grid, whose cell (u, v) covers input pixels
// [u·f, u·f+f), bilinearly to w×h.
func upsample(g []float32, gw, gh, f, w, h int) []float32 {
	out := make([]float32, w*h)
	half := float32(f-1) / 2
	xs0 := make([]int, w)
	xs1 := make([]int, w)
	xt := make([]float32, w)
	for x := 0; x < w; x++ {
		xs0[x], xs1[x], xt[x] = interpCoord(float32(x), half, f, gw)
	}
	for y := 0; y < h; y++ {
		y0, y1, ty := interpCoord(float32(y), half, f, gh)
		r0, r1 := g[y0*gw:(y0+1)*gw], g[y1*gw:(y1+1)*gw]
		row := out[y*w : (y+1)*w]
		for x := range row {
			a := r0[xs0[x]] + (r0[xs1[x]]-r0[xs0[x]])*xt[x]
			b := r1[xs0[x]] + (r1[xs1[x]]-r1[xs0[x]])*xt[x]
			row[x] = a + (b-a)*ty
		}
	}
	return out
}

func interpCoord(p, half float32, f, n int) (int, int, float32) {
	u := (p - half) / float32(f)
	if u <= 0 {
		return 0, 0, 0
	}
	i := int(u)
	if i >= n-1 {
		return n - 1, n - 1, 0
	}
	return i, i + 1, u - float32(i)
}
