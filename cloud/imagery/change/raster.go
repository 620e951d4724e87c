package change

import (
	"fmt"
	"image"
	"math"
)

// Image is a planar float32 RGB raster with values on a 0..255 scale.
type Image struct {
	W, H    int
	R, G, B []float32
}

// NewImage allocates a black w×h image.
func NewImage(w, h int) *Image {
	n := w * h
	return &Image{W: w, H: h, R: make([]float32, n), G: make([]float32, n), B: make([]float32, n)}
}

// FromImage converts any image.Image (stdlib decoders) to an Image.
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	im := NewImage(b.Dx(), b.Dy())
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := src.At(x, y).RGBA()
			im.R[i], im.G[i], im.B[i] = float32(r>>8), float32(g>>8), float32(bl>>8)
			i++
		}
	}
	return im
}

// FromBGR converts interleaved 8-bit BGR pixels (OpenCV's layout) to an Image.
func FromBGR(w, h int, bgr []byte) (*Image, error) {
	if len(bgr) != 3*w*h {
		return nil, fmt.Errorf("bgr buffer has %d bytes, want %d for %dx%d", len(bgr), 3*w*h, w, h)
	}
	im := NewImage(w, h)
	for i := 0; i < w*h; i++ {
		im.B[i], im.G[i], im.R[i] = float32(bgr[3*i]), float32(bgr[3*i+1]), float32(bgr[3*i+2])
	}
	return im, nil
}

// Crop returns a copy of the rectangle r of im (r must lie inside im).
func (im *Image) Crop(r image.Rectangle) *Image {
	out := NewImage(r.Dx(), r.Dy())
	for y := 0; y < r.Dy(); y++ {
		src := (r.Min.Y+y)*im.W + r.Min.X
		dst := y * out.W
		copy(out.R[dst:dst+out.W], im.R[src:src+out.W])
		copy(out.G[dst:dst+out.W], im.G[src:src+out.W])
		copy(out.B[dst:dst+out.W], im.B[src:src+out.W])
	}
	return out
}

// channelStats returns mean and standard deviation of c.
func channelStats(c []float32) (mean, std float64) {
	var s, ss float64
	for _, v := range c {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	n := float64(len(c))
	mean = s / n
	std = math.Sqrt(math.Max(ss/n-mean*mean, 0))
	return mean, std
}

// BandStats are the mean and standard deviation of each band (R, G, B) of
// one date of a scene.
type BandStats struct {
	Mean [3]float64 `json:"mean"`
	Std  [3]float64 `json:"std"`
}

// SceneStats are the band statistics of both dates of a scene (a whole
// image, or all of a job's imagery).
type SceneStats struct {
	Before BandStats `json:"before"`
	After  BandStats `json:"after"`
}

// StatsAcc accumulates pixels into BandStats.
type StatsAcc struct {
	n     float64
	s, ss [3]float64
}

// AddBGR adds the pixels of 8-bit BGR data where valid is nil or not 0.
func (a *StatsAcc) AddBGR(px []byte, valid []uint8) {
	for i := 0; 3*i+2 < len(px); i++ {
		if valid != nil && valid[i] == 0 {
			continue
		}
		a.n++
		for c := 0; c < 3; c++ {
			v := float64(px[3*i+2-c]) // BGR → R, G, B
			a.s[c] += v
			a.ss[c] += v * v
		}
	}
}

// Stats returns the statistics of the pixels added (zero mean and standard
// deviation when none were).
func (a *StatsAcc) Stats() BandStats {
	var st BandStats
	if a.n == 0 {
		return st
	}
	for c := 0; c < 3; c++ {
		m := a.s[c] / a.n
		st.Mean[c] = m
		st.Std[c] = math.Sqrt(math.Max(a.ss[c]/a.n-m*m, 0))
	}
	return st
}

// ImageStats are the band statistics of a whole image (what the network
// uses when it is given no scene statistics).
func ImageStats(im *Image) BandStats {
	var st BandStats
	for c, v := range [][]float32{im.R, im.G, im.B} {
		st.Mean[c], st.Std[c] = channelStats(v)
	}
	return st
}

// MatchStats is the radiometric normalisation: it returns a copy of src whose
// per-channel mean and standard deviation equal those of ref (a linear
// gain/offset per band, which absorbs most illumination and sensor
// differences between dates without touching the spatial structure).
func MatchStats(src, ref *Image) *Image {
	out := NewImage(src.W, src.H)
	for k, pair := range [][3][]float32{{src.R, ref.R, out.R}, {src.G, ref.G, out.G}, {src.B, ref.B, out.B}} {
		_ = k
		ms, ss := channelStats(pair[0])
		mr, sr := channelStats(pair[1])
		gain := float32(1)
		if ss > 1e-6 {
			gain = float32(sr / ss)
		}
		for i, v := range pair[0] {
			x := (v-float32(ms))*gain + float32(mr)
			if x < 0 {
				x = 0
			} else if x > 255 {
				x = 255
			}
			pair[2][i] = x
		}
	}
	return out
}

// Mask is a binary raster: 1 = changed, 0 = unchanged.
type Mask struct {
	W, H int
	Pix  []uint8
}

// NewMask allocates an all-zero w×h mask.
func NewMask(w, h int) *Mask { return &Mask{W: w, H: h, Pix: make([]uint8, w*h)} }

// MaskFromImage reads a label image: any grey level ≥ 128 is "changed".
func MaskFromImage(src image.Image) *Mask {
	b := src.Bounds()
	m := NewMask(b.Dx(), b.Dy())
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := src.At(x, y).RGBA()
			if (r+g+bl)/3 >= 128<<8 {
				m.Pix[i] = 1
			}
			i++
		}
	}
	return m
}

// Halve returns the pair at half the resolution (2×2 means; a label pixel
// is changed when at least two of its four are). Training on several
// scales keeps a model from learning one sensor's object sizes.
func (p Pair) Halve() Pair {
	w, h := p.A.W/2, p.A.H/2
	out := Pair{Name: p.Name + "@0.5", A: NewImage(w, h), B: NewImage(w, h), Label: NewMask(w, h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i, j := 2*y*p.A.W+2*x, y*w+x
			for _, c := range [][2][]float32{{p.A.R, out.A.R}, {p.A.G, out.A.G}, {p.A.B, out.A.B}, {p.B.R, out.B.R}, {p.B.G, out.B.G}, {p.B.B, out.B.B}} {
				c[1][j] = (c[0][i] + c[0][i+1] + c[0][i+p.A.W] + c[0][i+p.A.W+1]) / 4
			}
			if p.Label != nil && p.Label.Pix[i]+p.Label.Pix[i+1]+p.Label.Pix[i+p.A.W]+p.Label.Pix[i+p.A.W+1] >= 2 {
				out.Label.Pix[j] = 1
			}
		}
	}
	return out
}

// Double returns the pair at twice the resolution (bilinear for the images,
// nearest for the label).
func (p Pair) Double() Pair {
	w, h := 2*p.A.W, 2*p.A.H
	out := Pair{Name: p.Name + "@2", A: NewImage(w, h), B: NewImage(w, h), Label: NewMask(w, h)}
	sw, sh := p.A.W, p.A.H
	for y := 0; y < h; y++ {
		fy := math.Max(float64(y)/2-0.25, 0)
		y0 := min(int(fy), sh-1)
		y1, ty := min(y0+1, sh-1), float32(fy-float64(y0))
		for x := 0; x < w; x++ {
			fx := math.Max(float64(x)/2-0.25, 0)
			x0 := min(int(fx), sw-1)
			x1, tx := min(x0+1, sw-1), float32(fx-float64(x0))
			j := y*w + x
			for _, c := range [][2][]float32{{p.A.R, out.A.R}, {p.A.G, out.A.G}, {p.A.B, out.A.B}, {p.B.R, out.B.R}, {p.B.G, out.B.G}, {p.B.B, out.B.B}} {
				s := c[0]
				top := s[y0*sw+x0]*(1-tx) + s[y0*sw+x1]*tx
				bot := s[y1*sw+x0]*(1-tx) + s[y1*sw+x1]*tx
				c[1][j] = top*(1-ty) + bot*ty
			}
			if p.Label != nil {
				out.Label.Pix[j] = p.Label.Pix[(y/2)*sw+x/2]
			}
		}
	}
	return out
}
