package imagery

import (
	"context"
	"database/sql"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/imagery/change"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
)

// The test scene: a 2×2 mosaic of LEVIR pairs (512×512 px) placed as four
// z18 tiles in Chaoyang (lon 116.45, lat 39.92), so its changes land in the
// demo district's grid cells.
const testZoom = 18

func testTileOrigin() (x, y int) {
	n := math.Exp2(testZoom)
	lat := 39.92 * math.Pi / 180
	x = int((116.45 + 180) / 360 * n)
	y = int((1 - math.Log(math.Tan(lat)+1/math.Cos(lat))/math.Pi) / 2 * n)
	return x, y
}

type scene struct {
	dir             string
	a, b            gocv.Mat
	tx, ty          int
	grid            georef.Grid
	xyzA, xyzB      string
	tmsA, tmsB      string
	mbA, mbB        string
	tiffA, tiffB    string
	pngA, pngB      string // with world files
	leftHalfGeoJSON string
}

func newScene(t *testing.T) *scene {
	t.Helper()
	s := &scene{dir: t.TempDir()}
	s.a, s.b = mosaic(t, 2)
	t.Cleanup(func() { s.a.Close(); s.b.Close() })
	s.tx, s.ty = testTileOrigin()
	s.grid = georef.TileGrid(testZoom, s.tx, s.ty, 256, 512, 512)
	for d, m := range []gocv.Mat{s.a, s.b} {
		date := []string{"A", "B"}[d]
		xyz, tms := filepath.Join(s.dir, "xyz"+date), filepath.Join(s.dir, "tms"+date)
		mb := filepath.Join(s.dir, date+".mbtiles")
		db, err := sql.Open("sqlite", mb)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE metadata (name text, value text); CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)`); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			for i := 0; i < 2; i++ {
				reg := m.Region(image.Rect(256*i, 256*j, 256*i+256, 256*j+256))
				buf, err := gocv.IMEncode(gocv.PNGFileExt, reg)
				reg.Close()
				if err != nil {
					t.Fatal(err)
				}
				data := append([]byte(nil), buf.GetBytes()...)
				buf.Close()
				x, y := s.tx+i, s.ty+j
				tmsY := 1<<testZoom - 1 - y
				for _, p := range []string{
					filepath.Join(xyz, fmt.Sprint(testZoom), fmt.Sprint(x), fmt.Sprintf("%d.png", y)),
					filepath.Join(tms, fmt.Sprint(testZoom), fmt.Sprint(x), fmt.Sprintf("%d.png", tmsY)),
				} {
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.Exec(`INSERT INTO tiles VALUES (?, ?, ?, ?)`, testZoom, x, tmsY, data); err != nil {
					t.Fatal(err)
				}
			}
		}
		db.Close()
		// gdal2tiles marks its TMS output with this file; auto-detection reads it.
		if err := os.WriteFile(filepath.Join(tms, "tilemapresource.xml"), []byte("<TileMap/>"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The same pixels as a GeoTIFF and as a PNG with a world file.
		tif := filepath.Join(s.dir, date+".tif")
		f, err := os.Create(tif)
		if err != nil {
			t.Fatal(err)
		}
		bgr, _ := m.DataPtrUint8()
		rgb := make([]byte, len(bgr))
		for i := 0; i+2 < len(bgr); i += 3 {
			rgb[i], rgb[i+1], rgb[i+2] = bgr[i+2], bgr[i+1], bgr[i]
		}
		if err := georef.WriteGeoTIFF(f, rgb, georef.GeoTIFF{W: 512, H: 512, WF: s.grid.WF, CRS: georef.WebMercator}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		png := filepath.Join(s.dir, date+".png")
		gocv.IMWrite(png, m)
		wf := s.grid.WF
		os.WriteFile(filepath.Join(s.dir, date+".pgw"), []byte(fmt.Sprintf("%.10f\n0\n0\n%.10f\n%.6f\n%.6f\n", wf.A, wf.E, wf.C, wf.F)), 0o644)
		if d == 0 {
			s.xyzA, s.tmsA, s.mbA, s.tiffA, s.pngA = xyz, tms, mb, tif, png
		} else {
			s.xyzB, s.tmsB, s.mbB, s.tiffB, s.pngB = xyz, tms, mb, tif, png
		}
	}
	// The western half of the scene.
	w, n := s.grid.LonLat(0, 0)
	e, so := s.grid.LonLat(256, 512)
	s.leftHalfGeoJSON = filepath.Join(s.dir, "left.geojson")
	os.WriteFile(s.leftHalfGeoJSON, []byte(fmt.Sprintf(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
		"geometry":{"type":"Polygon","coordinates":[[[%[1]f,%[2]f],[%[3]f,%[2]f],[%[3]f,%[4]f],[%[1]f,%[4]f],[%[1]f,%[2]f]]]}}]}`, w, n, e, so)), 0o644)
	return s
}

func testModel(t *testing.T) *change.Model {
	t.Helper()
	m, _, err := LoadModel(filepath.Join(moduleRoot(t), "models", "imagery", "change-gbdt-dsifn.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runJob(t *testing.T, dir string, spec JobSpec, m *change.Model) (*Job, *Summary) {
	t.Helper()
	j, err := OpenJob(dir, &spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := j.Run(context.Background(), m, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j, s
}

func totalArea(cs []JobChange) float64 {
	var a float64
	for _, c := range cs {
		a += c.AreaM2
	}
	return a
}

// Every input format of the same pixels gives the same changes; tile
// pyramids in any numbering give identical ones.
func TestJobInputs(t *testing.T) {
	s := newScene(t)
	m := testModel(t)
	_, ref := runJob(t, filepath.Join(s.dir, "job-xyz"), JobSpec{Before: s.xyzA, After: s.xyzB}, m)
	jx, _ := OpenJob(filepath.Join(s.dir, "job-xyz"), nil)
	want := jx.Changes()
	if len(want) == 0 || ref.Changes != len(want) || ref.Units != 1 {
		t.Fatalf("xyz: %d changes, summary %+v: want changes in four LEVIR pairs with new buildings, one unit", len(want), ref)
	}
	x0, y0 := s.grid.LonLat(0, 0)
	x1, y1 := s.grid.LonLat(512, 512)
	for _, c := range want {
		if c.Lon < x0 || c.Lon > x1 || c.Lat > y0 || c.Lat < y1 || c.AreaM2 <= 0 || c.Score <= 0 || c.Score > 1 {
			t.Fatalf("change %+v outside the scene or without area/score", c)
		}
		for _, f := range []string{c.Before, c.After} {
			im := gocv.IMRead(filepath.Join(s.dir, "job-xyz", f), gocv.IMReadColor)
			if im.Empty() || im.Cols() < 32 || im.Rows() < 32 {
				t.Fatalf("crop %s missing or smaller than 32 px", f)
			}
			im.Close()
		}
	}
	tests := []struct {
		name          string
		spec          JobSpec
		sameAsXYZ     bool
		areaTolerance float64
	}{
		{"tms folder (auto-detected)", JobSpec{Before: s.tmsA, After: s.tmsB}, true, 0},
		{"mbtiles", JobSpec{Before: s.mbA, After: s.mbB}, true, 0},
		{"mbtiles before, xyz after", JobSpec{Before: s.mbA, After: s.xyzB}, true, 0},
		// One 512-px unit without the tiles' margin ring: the same model on
		// the same pixels, cut differently at the scene's edges.
		{"geotiff", JobSpec{Before: s.tiffA, After: s.tiffB}, false, 0.1},
		{"png + world file", JobSpec{Before: s.pngA, After: s.pngB}, false, 0.1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := runJob(t, filepath.Join(s.dir, fmt.Sprintf("job%d", i)), tc.spec, m)
			got := j.Changes()
			if tc.sameAsXYZ {
				if len(got) != len(want) || math.Abs(totalArea(got)-totalArea(want)) > 1e-6 {
					t.Fatalf("%d changes, %.1f m²; xyz gave %d, %.1f m²", len(got), totalArea(got), len(want), totalArea(want))
				}
				return
			}
			if d := math.Abs(totalArea(got)/totalArea(want) - 1); d > tc.areaTolerance {
				t.Fatalf("%.1f m² changed vs %.1f m² from the tiles (%.0f%% apart)", totalArea(got), totalArea(want), 100*d)
			}
		})
	}
	t.Run("tms folder read as xyz finds no common tiles", func(t *testing.T) {
		_, err := OpenSource(s.tmsA, s.xyzB, SourceOptions{Scheme: "xyz"})
		if err == nil || !strings.Contains(err.Error(), "try --scheme tms") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("zoom both dates lack", func(t *testing.T) {
		_, err := OpenSource(s.xyzA, s.xyzB, SourceOptions{Zoom: 17})
		if err == nil || !strings.Contains(err.Error(), "--zoom 17: zooms both dates have: [18]") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("tiles and an image", func(t *testing.T) {
		_, err := OpenSource(s.xyzA, s.tiffB, SourceOptions{})
		if err == nil || !strings.Contains(err.Error(), "compare two tile pyramids or two georeferenced images") {
			t.Fatalf("err = %v", err)
		}
	})
}

// --area keeps only changes inside the polygons.
func TestJobArea(t *testing.T) {
	s := newScene(t)
	m := testModel(t)
	jAll, _ := runJob(t, filepath.Join(s.dir, "all"), JobSpec{Before: s.tiffA, After: s.tiffB}, m)
	jLeft, _ := runJob(t, filepath.Join(s.dir, "left"), JobSpec{Before: s.tiffA, After: s.tiffB, Area: s.leftHalfGeoJSON}, m)
	all, left := jAll.Changes(), jLeft.Changes()
	mid, _ := s.grid.LonLat(256, 0)
	var inLeft int
	for _, c := range all {
		if c.Lon < mid {
			inLeft++
		}
	}
	if len(left) == 0 || len(left) >= len(all) || inLeft == 0 {
		t.Fatalf("area kept %d of %d changes (%d lie in the western half)", len(left), len(all), inLeft)
	}
	for _, c := range left {
		for _, p := range c.Ring {
			if p[0] > mid+1e-7 {
				t.Fatalf("change %s has vertex %v east of the area's edge %v", c.ID, p, mid)
			}
		}
	}
}

// A stopped job continues where it stopped: finished units are not redone
// and the result equals an uninterrupted run.
func TestJobResume(t *testing.T) {
	s := newScene(t)
	m := testModel(t)
	spec := JobSpec{Before: s.tiffA, After: s.tiffB, Tile: 128}
	_, full := runJob(t, filepath.Join(s.dir, "full"), spec, m)
	fullJob, _ := OpenJob(filepath.Join(s.dir, "full"), nil)

	dir := filepath.Join(s.dir, "stopped")
	j, err := OpenJob(dir, &spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = j.Run(ctx, m, RunOptions{Workers: 1, Progress: func(p Progress) {
		if p.Done >= 5 {
			cancel()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "run it again to continue") {
		t.Fatalf("stopped run: err = %v", err)
	}
	// A crash in the middle of a line leaves half a record: it is dropped.
	f, _ := os.OpenFile(filepath.Join(dir, unitsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"key":"px0_0","changes":[{"id":"torn`)
	f.Close()

	j2, err := OpenJob(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var processed int
	sum, err := j2.Run(context.Background(), m, RunOptions{Progress: func(p Progress) { processed++ }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed < 5 || sum.Resumed >= full.Units || processed != full.Units-sum.Resumed {
		t.Fatalf("resumed %d units and processed %d of %d", sum.Resumed, processed, full.Units)
	}
	got, want := j2.Changes(), fullJob.Changes()
	if len(got) != len(want) || math.Abs(totalArea(got)-totalArea(want)) > 1e-6 {
		t.Fatalf("resumed job: %d changes, %.1f m²; uninterrupted %d, %.1f m²", len(got), totalArea(got), len(want), totalArea(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Seq != want[i].Seq {
			t.Fatalf("change %d is %s/%d, uninterrupted run has %s/%d", i, got[i].ID, got[i].Seq, want[i].ID, want[i].Seq)
		}
	}
	if _, err := OpenJob(dir, &JobSpec{Before: s.tiffA, After: s.tiffB, Tile: 256}); err == nil || !strings.Contains(err.Error(), "use another job directory") {
		t.Fatalf("reopening with another spec: err = %v", err)
	}
}

// Filing a job's changes opens one case per significant change (category
// 0101, before/after crops in the evidence store); filing again opens none.
func TestFileChanges(t *testing.T) {
	s := newScene(t)
	m := testModel(t)
	j, _ := runJob(t, filepath.Join(s.dir, "job"), JobSpec{Before: s.xyzA, After: s.xyzB}, m)
	eng := &cases.Engine{Store: storetest.Open(t, "sqlite").Store, Registry: registry.Demo(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ev, err := evidence.Open(filepath.Join(s.dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opt := FileOptions{MinAreaM2: 50}
	first, err := FileChanges(ctx, j, eng, ev, opt)
	if err != nil {
		t.Fatal(err)
	}
	var big int
	for _, c := range j.Changes() {
		if c.AreaM2 >= 50 {
			big++
		}
	}
	if first.Filed != big || first.Created == 0 || first.Created+first.Joined != big || first.Skipped != len(j.Changes())-big {
		t.Fatalf("first filing %+v; %d changes of ≥ 50 m² of %d", first, big, len(j.Changes()))
	}
	again, err := FileChanges(ctx, j, eng, ev, opt)
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicate != big || again.Filed != 0 {
		t.Fatalf("second filing %+v, want %d duplicates and nothing filed", again, big)
	}
	cs, err := eng.Store.Cases(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != first.Created {
		t.Fatalf("%d cases after filing twice, want %d", len(cs), first.Created)
	}
	for _, c := range cs {
		if c.Category != "0101" || c.Source != cases.SourceImagery || c.Status != cases.StatusReported || c.GridCell == "" {
			t.Fatalf("case %+v: want a reported 0101 imagery case in a grid cell", c)
		}
		if !ev.Has(c.EvidenceSHA256) {
			t.Fatalf("case %d's evidence %s is not in the store", c.ID, c.EvidenceSHA256)
		}
	}
}

// BenchmarkJobTiles measures a whole comparison job over an XYZ pyramid of
// 8×8 tiles (2048×2048 px of LEVIR pairs, 4 units): decoding the tiles and
// their margin ring, co-registration, the change model, polygons and crops.
func BenchmarkJobTiles(b *testing.B) {
	ma, mb := mosaic(b, 8)
	defer ma.Close()
	defer mb.Close()
	dir := b.TempDir()
	tx, ty := testTileOrigin()
	for d, m := range []gocv.Mat{ma, mb} {
		for j := 0; j < 8; j++ {
			for i := 0; i < 8; i++ {
				reg := m.Region(image.Rect(256*i, 256*j, 256*i+256, 256*j+256))
				buf, err := gocv.IMEncode(gocv.PNGFileExt, reg)
				reg.Close()
				if err != nil {
					b.Fatal(err)
				}
				p := filepath.Join(dir, []string{"A", "B"}[d], fmt.Sprint(testZoom), fmt.Sprint(tx+i), fmt.Sprintf("%d.png", ty+j))
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, buf.GetBytes(), 0o644)
				buf.Close()
			}
		}
	}
	m, _, err := LoadModel("")
	if err != nil {
		b.Fatal(err)
	}
	var mp, cpu float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := OpenJob(filepath.Join(dir, fmt.Sprintf("job%d", i)), &JobSpec{Before: filepath.Join(dir, "A"), After: filepath.Join(dir, "B")})
		if err != nil {
			b.Fatal(err)
		}
		s, err := j.Run(context.Background(), m, RunOptions{})
		if err != nil {
			b.Fatal(err)
		}
		mp += s.MP
		cpu += s.CPUMsPerMP * s.MP
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(sec*1000/mp, "ms/MP")
	b.ReportMetric(mp/sec, "MP/s")
	b.ReportMetric(cpu/mp, "cpu-ms/MP")
}

// The network standardises every unit with the statistics of all the
// imagery (Source.Stats): a job over the same GeoTIFF pair cut into one
// 512-px unit or into 200-px units finds the same changes.
func TestJobUnitSizeNet(t *testing.T) {
	s := newScene(t)
	m, _, err := LoadModel(filepath.Join(moduleRoot(t), "models", "imagery", "change-cnn-dsifn.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, one := runJob(t, filepath.Join(s.dir, "one"), JobSpec{Before: s.tiffA, After: s.tiffB, Tile: 512}, m)
	jOne, _ := OpenJob(filepath.Join(s.dir, "one"), nil)
	_, many := runJob(t, filepath.Join(s.dir, "many"), JobSpec{Before: s.tiffA, After: s.tiffB, Tile: 200}, m)
	jMany, _ := OpenJob(filepath.Join(s.dir, "many"), nil)
	a, b := jOne.Changes(), jMany.Changes()
	t.Logf("one unit: %d changes, %.1f m²; %d units: %d changes, %.1f m²", len(a), totalArea(a), many.Units, len(b), totalArea(b))
	if one.Units != 1 || many.Units < 4 || len(a) == 0 {
		t.Fatalf("units %d and %d, %d changes", one.Units, many.Units, len(a))
	}
	if len(a) != len(b) || math.Abs(totalArea(a)-totalArea(b)) > 1e-6*totalArea(a) {
		t.Fatalf("one unit: %d changes, %.1f m²; 200-px units: %d changes, %.1f m²", len(a), totalArea(a), len(b), totalArea(b))
	}
}
