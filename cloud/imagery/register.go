package imagery

import (
	"image"
	"image/color"
	"math"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// Shift is the translation of the after image relative to the before image,
// in pixels: after(x+DX, y+DY) ≈ before(x, y).
type Shift struct {
	DX, DY   float64
	Response float64 // phase-correlation peak strength, 0..1
	Applied  bool
}

// RegisterParams bound what co-registration may do: a shift larger than
// MaxShift or a peak weaker than MinResponse is treated as unreliable (a
// large real change decorrelates the dates) and the images are left as they
// are; shifts below MinShift are not worth resampling for.
type RegisterParams struct {
	MaxShift    float64
	MinShift    float64
	MinResponse float64
}

// DefaultRegister suits orthorectified imagery that is already roughly aligned.
var DefaultRegister = RegisterParams{MaxShift: 16, MinShift: 1, MinResponse: 0.3}

// floatMat wraps buf as a single-channel float Mat; gocv keeps a reference
// to buf for the Mat's lifetime.
func floatMat(buf []float32, w, h int) gocv.Mat {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf))
	m, _ := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV32FC1, b)
	return m
}

func lumaMat(im *change.Image) gocv.Mat {
	buf := make([]float32, im.W*im.H)
	for i := range buf {
		buf[i] = 0.299*im.R[i] + 0.587*im.G[i] + 0.114*im.B[i]
	}
	return floatMat(buf, im.W, im.H)
}

func hanning(w, h int) gocv.Mat {
	buf := make([]float32, w*h)
	for y := 0; y < h; y++ {
		wy := 0.5 - 0.5*math.Cos(2*math.Pi*float64(y)/float64(max(h-1, 1)))
		for x := 0; x < w; x++ {
			wx := 0.5 - 0.5*math.Cos(2*math.Pi*float64(x)/float64(max(w-1, 1)))
			buf[y*w+x] = float32(wx * wy)
		}
	}
	return floatMat(buf, w, h)
}

// EstimateShift measures the sub-pixel translation of b relative to a by
// phase correlation of their lumas (Hanning-windowed against edge effects).
//
// Of images over 512 pixels a side only the central 512×512 window is
// correlated: the FFTs cost a third of a 896-pixel tile's, and a shift is
// shared by the whole tile.
func EstimateShift(a, b *change.Image) Shift {
	const win = 512
	if a.W > win || a.H > win {
		w, h := min(a.W, win), min(a.H, win)
		r := image.Rect((a.W-w)/2, (a.H-h)/2, (a.W-w)/2+w, (a.H-h)/2+h)
		a, b = a.Crop(r), b.Crop(r)
	}
	ma, mb := lumaMat(a), lumaMat(b)
	hw := hanning(a.W, a.H)
	defer ma.Close()
	defer mb.Close()
	defer hw.Close()
	p, resp := gocv.PhaseCorrelate(ma, mb, hw)
	return Shift{DX: float64(p.X), DY: float64(p.Y), Response: resp}
}

// Register returns b resampled onto a's grid (bilinear, edges replicated) when
// the measured shift is reliable and large enough; otherwise b itself.
func Register(a, b *change.Image, p RegisterParams) (*change.Image, Shift) {
	s := EstimateShift(a, b)
	mag := math.Hypot(s.DX, s.DY)
	if mag < p.MinShift || mag > p.MaxShift || s.Response < p.MinResponse {
		return b, s
	}
	out := change.NewImage(b.W, b.H)
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, 1)
	m.SetDoubleAt(0, 2, -s.DX)
	m.SetDoubleAt(1, 1, 1)
	m.SetDoubleAt(1, 2, -s.DY)
	for _, ch := range [][2][]float32{{b.R, out.R}, {b.G, out.G}, {b.B, out.B}} {
		src := floatMat(ch[0], b.W, b.H)
		dst := gocv.NewMat()
		gocv.WarpAffineWithParams(src, &dst, m, image.Pt(b.W, b.H), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
		d, _ := dst.DataPtrFloat32()
		copy(ch[1], d)
		src.Close()
		dst.Close()
	}
	s.Applied = true
	return out, s
}
