package imagery

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
)

// moduleRoot walks up from the test's directory to the folder holding go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above the test directory")
		}
		d = filepath.Dir(d)
	}
}

// sharedData returns ../shared/data/<rel> beside the repository, or fails.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(moduleRoot(t), "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test data %s is missing (%v): the change-detection pairs must be checked out as ../shared/data beside the repository", p, err)
	}
	return p
}

// Pooled F1 measured when the models in models/imagery were committed
// (catalog.json), minus 0.01 for floating-point and library drift.
const (
	minF1DsifnOnLevir = 0.3520 - 0.01
	minF1LevirOnDsifn = 0.3835 - 0.01
)

// The shipped cross-trained models must keep the F1 measured when they were
// committed (see models/imagery/catalog.json) on the set they were NOT
// trained on; a regression in features, post-processing or loading fails here.
func TestEvalCrossTrained(t *testing.T) {
	tests := []struct {
		model, pairs string
		minF1        float64
	}{
		{"change-gbdt-dsifn.json", "change/levir", minF1DsifnOnLevir},
		{"change-gbdt-levir.json", "change/dsifn", minF1LevirOnDsifn},
	}
	for _, tc := range tests {
		t.Run(tc.model+" on "+tc.pairs, func(t *testing.T) {
			m, entry, err := LoadModel(filepath.Join(moduleRoot(t), "models", "imagery", tc.model))
			if err != nil {
				t.Fatal(err)
			}
			dir := sharedData(t, tc.pairs)
			names, err := PairNames(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				for _, tr := range m.TrainedOn {
					if n == tr {
						t.Fatalf("pair %s is in %s's training data: the score would not be held-out", n, tc.model)
					}
				}
			}
			res, err := Eval(context.Background(), m, dir, EvalOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			f1 := res.Total.F1()
			t.Logf("%s (trained on %s) on %s: F1 %.4f P %.4f R %.4f IoU %.4f, %.0f ms/MP", tc.model, entry.TrainingData,
				tc.pairs, f1, res.Total.Precision(), res.Total.Recall(), res.Total.IoU(), res.MsPerMegapixel())
			if f1 < tc.minF1 {
				t.Fatalf("F1 %.4f < %.4f (measured at commit minus 0.01)", f1, tc.minF1)
			}
		})
	}
}

func TestPairNames(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"A/x.png", "B/x.png", "label/x.png", "A/y.png"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	}
	if _, err := PairNames(dir, true); err == nil {
		t.Fatal("a pair without B/ and label/ was accepted")
	}
	if _, err := PairNames(t.TempDir(), true); err == nil {
		t.Fatal("an empty folder was accepted")
	}
}

// texture makes a deterministic broadband test image (blurred hash noise
// plus a few blobs), like the mix of frequencies in aerial imagery.
func texture(w, h int, seed uint32) *change.Image {
	noise := make([]float32, w*h)
	for i := range noise {
		v := uint32(i)*2654435761 ^ seed*2246822519
		v ^= v >> 15
		v *= 2246822519
		v ^= v >> 13
		noise[i] = float32(v%1000) / 1000
	}
	smooth := change.BoxMean(noise, w, h, 1)
	im := change.NewImage(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			v := 60 + 120*smooth[i] + 40*float32(math.Sin(float64(x)/9)*math.Cos(float64(y)/13))
			im.R[i], im.G[i], im.B[i] = v, v*0.9+10, v*0.8+20
		}
	}
	return im
}

func TestEstimateShift(t *testing.T) {
	for _, tc := range []struct {
		size int
		sh   [2]float64
	}{{256, [2]float64{3, -2}}, {256, [2]float64{2.5, 1.25}}, {256, [2]float64{-6, 4}}, {640, [2]float64{-3.5, 5}}} {
		sh := tc.sh
		t.Run(fmt.Sprint(tc.size, sh), func(t *testing.T) {
			big := texture(tc.size+40, tc.size+40, 0)
			a := big.Crop(image.Rect(20, 20, 20+tc.size, 20+tc.size))
			// b is a shifted by (dx, dy): whole pixels by cropping, the rest by warping.
			ix, iy := int(math.Floor(sh[0])), int(math.Floor(sh[1]))
			b := big.Crop(image.Rect(20-ix, 20-iy, 20+tc.size-ix, 20+tc.size-iy))
			if fx, fy := sh[0]-float64(ix), sh[1]-float64(iy); fx != 0 || fy != 0 {
				b = warp(b, fx, fy)
			}
			s := EstimateShift(a, b)
			if math.Abs(s.DX-sh[0]) > 0.4 || math.Abs(s.DY-sh[1]) > 0.4 { // OpenCV's sub-pixel peak is biased towards whole pixels
				t.Fatalf("estimated %+.2f,%+.2f (peak %.2f), want %+.2f,%+.2f", s.DX, s.DY, s.Response, sh[0], sh[1])
			}
			reg, s2 := Register(a, b, DefaultRegister)
			if !s2.Applied {
				t.Fatalf("shift %+v not applied", s2)
			}
			if r := EstimateShift(a, reg); math.Hypot(r.DX, r.DY) > 0.4 {
				t.Fatalf("after registration still shifted by %+.2f,%+.2f", r.DX, r.DY)
			}
		})
	}
}

// warp shifts im by (dx, dy) pixels with OpenCV's bilinear warp.
func warp(im *change.Image, dx, dy float64) *change.Image {
	out := change.NewImage(im.W, im.H)
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, 1)
	m.SetDoubleAt(0, 2, dx)
	m.SetDoubleAt(1, 1, 1)
	m.SetDoubleAt(1, 2, dy)
	for _, ch := range [][2][]float32{{im.R, out.R}, {im.G, out.G}, {im.B, out.B}} {
		src := floatMat(ch[0], im.W, im.H)
		dst := gocv.NewMat()
		gocv.WarpAffineWithParams(src, &dst, m, image.Pt(im.W, im.H), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
		d, _ := dst.DataPtrFloat32()
		copy(ch[1], d)
		src.Close()
		dst.Close()
	}
	return out
}

// Polygons of a synthetic 40×40 px square on a 0.5 m Web Mercator grid at
// Beijing's latitude: the area comes from the pixel count, the ring from
// the contour through the border pixels' centres.
func TestPolygonsSquare(t *testing.T) {
	x0, y0 := georef.LonLatToMercator(116.4, 39.9)
	g, err := georef.NewGrid(georef.WorldFile{A: 0.5, E: -0.5, C: x0, F: y0}, "", 200, 200)
	if err != nil {
		t.Fatal(err)
	}
	m := change.NewMask(200, 200)
	prob := make([]float32, 200*200)
	for y := 50; y < 90; y++ {
		for x := 100; x < 140; x++ {
			m.Pix[y*200+x] = 1
			prob[y*200+x] = 0.75
		}
	}
	score := func(i int) float64 { return float64(prob[i]) }
	cs, err := Polygons(m, score, image.Pt(0, 0), g, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d polygons, want 1", len(cs))
	}
	c := cs[0]
	cos := math.Cos(39.9 * math.Pi / 180)
	if want := 1600 * 0.25 * cos * cos; math.Abs(c.AreaM2-want)/want > 0.001 {
		t.Errorf("area %.2f m², want %.2f", c.AreaM2, want)
	}
	if want := 39 * 39 * 0.25 * cos * cos; math.Abs(georef.RingAreaM2(c.Ring)-want)/want > 0.005 {
		t.Errorf("ring area %.2f m², want %.2f", georef.RingAreaM2(c.Ring), want)
	}
	if len(c.Ring) != 4 || c.Score != 0.75 || c.PixelBox != [4]int{100, 50, 140, 90} {
		t.Errorf("got %d vertices, score %g, box %v", len(c.Ring), c.Score, c.PixelBox)
	}
	if cs, _ := Polygons(m, score, image.Pt(0, 0), g, 1e6); len(cs) != 0 {
		t.Errorf("min area did not drop the square")
	}
}

func TestTiles(t *testing.T) {
	ts := Tiles(1000, 700, 512, 64)
	if len(ts) != 4 {
		t.Fatalf("%d tiles, want 4", len(ts))
	}
	covered := 0
	for _, tl := range ts {
		covered += tl.Core.Dx() * tl.Core.Dy()
		if !tl.Core.In(tl.Read) || !tl.Read.In(image.Rect(0, 0, 1000, 700)) {
			t.Errorf("tile %+v reads outside the image or misses its core", tl)
		}
	}
	if covered != 1000*700 {
		t.Errorf("cores cover %d pixels, want %d", covered, 1000*700)
	}
}
