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
