package coverclass

import (
	"image"
	"math"
)

// The crop is resampled to a fixed grid so that every feature is measured in
// units of the cover's own size, whatever the camera's resolution or the
// distance: the box spans boxCells cells in each direction (an ellipse seen
// in perspective becomes a circle) and a ring of margin cells of street
// around it gives the surroundings the cover is compared with.
const (
	boxCells = 40
	margin   = 12
	gridN    = boxCells + 2*margin
)

// patch is the resampled crop: luma per cell, 0-255, and whether the cell
// lies inside the image. Colour is left out on purpose: rust, paint and dirt
// colour lids and holes alike, and differ from city to city.
type patch struct {
	y  [gridN * gridN]float32
	ok [gridN * gridN]bool
}

// source reads luma (0.299 R + 0.587 G + 0.114 B, 0-255); x, y are inside
// bounds.
type source interface {
	bounds() image.Rectangle
	luma(x, y int) float32
}

// adjust is a photometric and geometric change applied while sampling; it
// exists for training-time augmentation. The zero value changes nothing.
type adjust struct {
	gain, gamma float64 // v' = 255*(gain*v/255)^gamma; 0 means 1
	flip        bool    // mirror left-right
}

func (a adjust) identity() bool {
	return (a.gain == 0 || a.gain == 1) && (a.gamma == 0 || a.gamma == 1) && !a.flip
}

// samplePatch resamples box (and its margin) of src into p. A cell larger
// than a pixel is the mean of up to maxTaps×maxTaps point samples, enough to
// tame aliasing for a few thousand pixel reads; a cell smaller than a pixel
// (a far-away cover) is interpolated bilinearly.
func samplePatch(src source, box image.Rectangle, adj adjust, p *patch) {
	const maxTaps = 3
	b := src.bounds()
	cw := float64(box.Dx()) / boxCells
	ch := float64(box.Dy()) / boxCells
	sx := min(max(int(cw+0.5), 1), maxTaps)
	sy := min(max(int(ch+0.5), 1), maxTaps)
	interp := cw < 1.5 || ch < 1.5
	inv := 1 / float32(sx*sy)
	var lut *[256]float32
	if !adj.identity() {
		lut = gainLUT(adj)
	}
	var tapX [maxTaps]int
	for j := 0; j < gridN; j++ {
		y0 := float64(box.Min.Y) + float64(j-margin)*ch
		cy := y0 + ch/2
		rowOK := cy >= float64(b.Min.Y) && cy < float64(b.Max.Y)
		for i := 0; i < gridN; i++ {
			k := j*gridN + i
			if adj.flip {
				k = j*gridN + gridN - 1 - i
			}
			x0 := float64(box.Min.X) + float64(i-margin)*cw
			cx := x0 + cw/2
			if !rowOK || cx < float64(b.Min.X) || cx >= float64(b.Max.X) {
				p.ok[k], p.y[k] = false, 0
				continue
			}
			var y float32
			if interp {
				y = bilinear(src, b, cx, cy)
			} else {
				for tx := 0; tx < sx; tx++ {
					tapX[tx] = clampInt(int(x0+(float64(tx)+0.5)*cw/float64(sx)), b.Min.X, b.Max.X-1)
				}
				for ty := 0; ty < sy; ty++ {
					py := clampInt(int(y0+(float64(ty)+0.5)*ch/float64(sy)), b.Min.Y, b.Max.Y-1)
					for _, px := range tapX[:sx] {
						y += src.luma(px, py)
					}
				}
				y *= inv
			}
			if lut != nil {
				y = lutAt(lut, y)
			}
			p.ok[k], p.y[k] = true, y
		}
	}
}

func gainLUT(a adjust) *[256]float32 {
	gain, gamma := a.gain, a.gamma
	if gain == 0 {
		gain = 1
	}
	if gamma == 0 {
		gamma = 1
	}
	var t [256]float32
	for i := range t {
		v := min(gain*float64(i)/255, 1)
		t[i] = float32(255 * math.Pow(v, gamma))
	}
	return &t
}

func lutAt(t *[256]float32, v float32) float32 {
	i := int(v)
	if i >= 255 {
		return t[255]
	}
	f := v - float32(i)
	return t[i]*(1-f) + t[i+1]*f
}

// bilinear reads src at (x, y) in continuous coordinates (pixel centres at
// +0.5), clamping to the image.
func bilinear(src source, b image.Rectangle, x, y float64) float32 {
	fx, fy := x-0.5, y-0.5
	ix, iy := int(math.Floor(fx)), int(math.Floor(fy))
	ax, ay := float32(fx-float64(ix)), float32(fy-float64(iy))
	x0, x1 := clampInt(ix, b.Min.X, b.Max.X-1), clampInt(ix+1, b.Min.X, b.Max.X-1)
	y0, y1 := clampInt(iy, b.Min.Y, b.Max.Y-1), clampInt(iy+1, b.Min.Y, b.Max.Y-1)
	return src.luma(x0, y0)*(1-ax)*(1-ay) + src.luma(x1, y0)*ax*(1-ay) +
		src.luma(x0, y1)*(1-ax)*ay + src.luma(x1, y1)*ax*ay
}

func clampInt(v, lo, hi int) int {
	return min(max(v, lo), hi)
}

// sourceOf picks a fast reader for the common image types.
func sourceOf(img image.Image) source {
	switch m := img.(type) {
	case *image.YCbCr:
		// JPEG's Y is already this luma (JFIF uses the BT.601 weights at
		// full range), so a decoded photo costs one byte read per tap.
		return ycbcrSource{m}
	case *image.RGBA:
		return rgbaSource{m.Pix, m.Stride, m.Rect}
	case *image.NRGBA:
		// Opaque photos only: alpha is ignored, as a camera has none.
		return rgbaSource{m.Pix, m.Stride, m.Rect}
	case *image.Gray:
		return graySource{m}
	}
	return genericSource{img}
}

// BGR is a packed BGR24 frame, the layout the edge's decoder and gocv use.
type BGR struct {
	Pix           []byte
	Width, Height int
}

type bgrSource BGR

func (s bgrSource) bounds() image.Rectangle { return image.Rect(0, 0, s.Width, s.Height) }
func (s bgrSource) luma(x, y int) float32 {
	i := (y*s.Width + x) * 3
	p := s.Pix[i : i+3 : i+3]
	return 0.114*float32(p[0]) + 0.587*float32(p[1]) + 0.299*float32(p[2])
}

type rgbaSource struct {
	pix    []byte
	stride int
	rect   image.Rectangle
}

func (s rgbaSource) bounds() image.Rectangle { return s.rect }
func (s rgbaSource) luma(x, y int) float32 {
	i := (y-s.rect.Min.Y)*s.stride + (x-s.rect.Min.X)*4
	p := s.pix[i : i+3 : i+3]
	return 0.299*float32(p[0]) + 0.587*float32(p[1]) + 0.114*float32(p[2])
}

type ycbcrSource struct{ m *image.YCbCr }

func (s ycbcrSource) bounds() image.Rectangle { return s.m.Rect }
func (s ycbcrSource) luma(x, y int) float32 {
	return float32(s.m.Y[(y-s.m.Rect.Min.Y)*s.m.YStride+(x-s.m.Rect.Min.X)])
}

type graySource struct{ m *image.Gray }

func (s graySource) bounds() image.Rectangle { return s.m.Rect }
func (s graySource) luma(x, y int) float32 {
	return float32(s.m.Pix[s.m.PixOffset(x, y)])
}

type genericSource struct{ m image.Image }

func (s genericSource) bounds() image.Rectangle { return s.m.Bounds() }
func (s genericSource) luma(x, y int) float32 {
	r, g, b, _ := s.m.At(x, y).RGBA()
	return (0.299*float32(r) + 0.587*float32(g) + 0.114*float32(b)) / 257
}
