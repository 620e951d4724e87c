package imagery

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
)

// building paints a new roof (a blue-grey rectangle with a dark rim, as
// LEVIR's new buildings look) onto m.
func building(m *gocv.Mat, r image.Rectangle) {
	gocv.Rectangle(m, r, color.RGBA{R: 70, G: 110, B: 190, A: 255}, -1)
	gocv.Rectangle(m, r, color.RGBA{R: 40, G: 40, B: 50, A: 255}, 2)
}

// syntheticPair returns the same LEVIR "before" imagery twice, w×h px, the
// second with new buildings at rects: nothing else changed.
func syntheticPair(t *testing.T, w, h int, rects []image.Rectangle) (before, after gocv.Mat) {
	t.Helper()
	n := (max(w, h) + 255) / 256
	a, b := mosaic(t, n)
	b.Close()
	reg := a.Region(image.Rect(0, 0, w, h))
	before = reg.Clone()
	reg.Close()
	a.Close()
	after = before.Clone()
	for _, r := range rects {
		building(&after, r)
	}
	t.Cleanup(func() { before.Close(); after.Close() })
	return before, after
}

func writeGeoTIFF(t *testing.T, path string, m gocv.Mat, g georef.Grid) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bgr, _ := m.DataPtrUint8()
	rgb := make([]byte, len(bgr))
	for i := 0; i+2 < len(bgr); i += 3 {
		rgb[i], rgb[i+1], rgb[i+2] = bgr[i+2], bgr[i+1], bgr[i]
	}
	if err := georef.WriteGeoTIFF(f, rgb, georef.GeoTIFF{W: m.Cols(), H: m.Rows(), WF: g.WF, CRS: georef.WebMercator}); err != nil {
		t.Fatal(err)
	}
}

func writeXYZ(t *testing.T, dir string, m gocv.Mat, tx, ty int) {
	t.Helper()
	for j := 0; j < m.Rows()/256; j++ {
		for i := 0; i < m.Cols()/256; i++ {
			reg := m.Region(image.Rect(256*i, 256*j, 256*i+256, 256*j+256))
			buf, err := gocv.IMEncode(gocv.PNGFileExt, reg)
			reg.Close()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, fmt.Sprint(testZoom), fmt.Sprint(tx+i), fmt.Sprintf("%d.png", ty+j))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, buf.GetBytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			buf.Close()
		}
	}
}

// A building across unit borders is one change: one polygon over all its
// pieces, one area (as when no border cuts it), one score, crops showing all
// of it, one report to the case engine.
func TestMergeAcrossUnits(t *testing.T) {
	m := testModel(t)
	tx, ty := testTileOrigin()
	tests := []struct {
		name               string
		w, h               int
		rects              []image.Rectangle
		parts              []int // pieces each building is cut into
		xBorders, yBorders []int // units' borders, pixels
		inputs             func(t *testing.T, dir string, a, b gocv.Mat, g georef.Grid) (cut, whole JobSpec)
	}{
		{
			name: "geotiff, 256-px units: one building on the corner of four units, one across a single border",
			w:    512, h: 512,
			rects:    []image.Rectangle{image.Rect(226, 230, 290, 280), image.Rect(60, 236, 110, 300)},
			parts:    []int{4, 2},
			xBorders: []int{256}, yBorders: []int{256},
			inputs: func(t *testing.T, dir string, a, b gocv.Mat, g georef.Grid) (JobSpec, JobSpec) {
				writeGeoTIFF(t, filepath.Join(dir, "A.tif"), a, g)
				writeGeoTIFF(t, filepath.Join(dir, "B.tif"), b, g)
				return JobSpec{Before: filepath.Join(dir, "A.tif"), After: filepath.Join(dir, "B.tif"), Tile: 256, MinAreaM2: 20},
					JobSpec{Before: filepath.Join(dir, "A.tif"), After: filepath.Join(dir, "B.tif"), Tile: 1024, MinAreaM2: 20}
			},
		},
		{
			name: "xyz tiles: a building across the border of two 4×4-tile blocks",
			w:    2048, h: 1024,
			rects:    []image.Rectangle{image.Rect(990, 400, 1060, 450)},
			parts:    []int{2},
			xBorders: []int{1024},
			inputs: func(t *testing.T, dir string, a, b gocv.Mat, g georef.Grid) (JobSpec, JobSpec) {
				writeXYZ(t, filepath.Join(dir, "A"), a, tx, ty)
				writeXYZ(t, filepath.Join(dir, "B"), b, tx, ty)
				// The same pixels as one GeoTIFF unit: no border through the building.
				writeGeoTIFF(t, filepath.Join(dir, "A.tif"), a, g)
				writeGeoTIFF(t, filepath.Join(dir, "B.tif"), b, g)
				return JobSpec{Before: filepath.Join(dir, "A"), After: filepath.Join(dir, "B"), MinAreaM2: 20},
					JobSpec{Before: filepath.Join(dir, "A.tif"), After: filepath.Join(dir, "B.tif"), Tile: 2048, MinAreaM2: 20}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := syntheticPair(t, tc.w, tc.h, tc.rects)
			g := georef.TileGrid(testZoom, tx, ty, 256, tc.w, tc.h)
			cutSpec, wholeSpec := tc.inputs(t, dir, a, b, g)
			cut, sum := runJob(t, filepath.Join(dir, "cut"), cutSpec, m)
			whole, _ := runJob(t, filepath.Join(dir, "whole"), wholeSpec, m)
			if sum.Units < 2 {
				t.Fatalf("%d units: the test needs borders", sum.Units)
			}
			got, ref := cut.Changes(), whole.Changes()
			if sum.Changes != len(got) {
				t.Fatalf("summary says %d changes, the job lists %d", sum.Changes, len(got))
			}
			for i, r := range tc.rects {
				west, north := g.LonLat(float64(r.Min.X), float64(r.Min.Y))
				east, south := g.LonLat(float64(r.Max.X), float64(r.Max.Y))
				over := func(cs []JobChange) []JobChange {
					var out []JobChange
					for _, c := range cs {
						if c.Lon > west && c.Lon < east && c.Lat > south && c.Lat < north {
							out = append(out, c)
						}
					}
					return out
				}
				hit, want := over(got), over(ref)
				if len(want) != 1 {
					t.Fatalf("building %d: the uncut job found %d changes on it, want 1 (the model must see the synthetic roof)", i, len(want))
				}
				if len(hit) != 1 {
					t.Fatalf("building %d: %d changes on it, want one: %+v", i, len(hit), hit)
				}
				c := hit[0]
				var partsArea float64
				for _, u := range cut.unitChanges() {
					for _, id := range c.Parts {
						if u.ID == id {
							partsArea += u.AreaM2
						}
					}
				}
				t.Logf("building %d: merged %.1f m² (pieces %.1f m²), uncut %.1f m², score %.3f / %.3f", i, c.AreaM2, partsArea, want[0].AreaM2, c.Score, want[0].Score)
				if len(c.Parts) != tc.parts[i] {
					t.Fatalf("building %d is made of pieces %v, want %d", i, c.Parts, tc.parts[i])
				}
				// Merging loses and doubles nothing: the change is its pieces.
				if math.Abs(c.AreaM2/partsArea-1) > 0.01 {
					t.Fatalf("building %d: %.1f m², its pieces %.1f m²", i, c.AreaM2, partsArea)
				}
				// Each unit sees the building with its own context, so the
				// pixels differ a little from a run where no border cuts it.
				if d := math.Abs(c.AreaM2/want[0].AreaM2 - 1); d > 0.35 {
					t.Fatalf("building %d: %.1f m² across units, %.1f m² uncut", i, c.AreaM2, want[0].AreaM2)
				}
				if c.Score <= 0 || c.Score > 1 || math.Abs(c.Score-want[0].Score) > 0.1 {
					t.Fatalf("building %d: score %.3f, uncut %.3f", i, c.Score, want[0].Score)
				}
				// One polygon over the pieces: it spans every border through the building.
				lo, hi := [2]float64{180, 90}, [2]float64{-180, -90}
				for _, p := range c.Ring {
					lo[0], lo[1], hi[0], hi[1] = min(lo[0], p[0]), min(lo[1], p[1]), max(hi[0], p[0]), max(hi[1], p[1])
				}
				px0, py0 := g.Pixel(lo[0], hi[1])
				px1, py1 := g.Pixel(hi[0], lo[1])
				for _, l := range tc.xBorders {
					if r.Min.X < l && l < r.Max.X && (px0 > float64(l-3) || px1 < float64(l+3)) {
						t.Fatalf("building %d at %v: polygon spans x %.0f-%.0f, not across the border x=%d", i, r, px0, px1, l)
					}
				}
				for _, l := range tc.yBorders {
					if r.Min.Y < l && l < r.Max.Y && (py0 > float64(l-3) || py1 < float64(l+3)) {
						t.Fatalf("building %d at %v: polygon spans y %.0f-%.0f, not across the border y=%d", i, r, py0, py1, l)
					}
				}
				for _, f := range []string{c.Before, c.After} {
					im := gocv.IMRead(filepath.Join(dir, "cut", f), gocv.IMReadColor)
					if im.Empty() || im.Cols() < r.Dx() || im.Rows() < r.Dy() {
						t.Fatalf("building %d: crop %s missing or smaller than the building", i, f)
					}
					im.Close()
				}
			}
			// Filed: one report and one case per change.
			eng := &cases.Engine{Store: storetest.Open(t, "sqlite").Store, Registry: registry.Demo(),
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			ev, err := evidence.Open(filepath.Join(dir, "evidence"))
			if err != nil {
				t.Fatal(err)
			}
			fs, err := FileChanges(context.Background(), cut, eng, ev, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if fs.Filed != len(got) {
				t.Fatalf("filed %+v for %d changes", fs, len(got))
			}
		})
	}
}
