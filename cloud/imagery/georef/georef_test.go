package georef

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseWorldFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    WorldFile
		wantErr string
	}{
		{name: "web mercator", in: "0.5\n0\n0\n-0.5\n12958000.25\n4852000.75\n",
			want: WorldFile{A: 0.5, E: -0.5, C: 12958000.25, F: 4852000.75}},
		{name: "crlf, spaces and trailing blank lines", in: " 0.5 \r\n0.0\r\n0.0\r\n-0.5\r\n100\r\n200\r\n\r\n\n",
			want: WorldFile{A: 0.5, E: -0.5, C: 100, F: 200}},
		{name: "rotated lon/lat", in: "1e-5\n2e-6\n3e-6\n-1e-5\n116.4\n39.9",
			want: WorldFile{A: 1e-5, D: 2e-6, B: 3e-6, E: -1e-5, C: 116.4, F: 39.9}},
		{name: "empty", in: "", wantErr: "want 6 values (A, D, B, E, C, F), got 0"},
		{name: "too few", in: "0.5\n0\n0\n-0.5\n", wantErr: "want 6 values (A, D, B, E, C, F), got 4"},
		{name: "too many", in: "0.5\n0\n0\n-0.5\n1\n2\n3\n", wantErr: `line 7: more than 6 values ("3")`},
		{name: "not a number", in: "0.5\n0\nzero\n-0.5\n1\n2\n", wantErr: `line 3: "zero" is not a number`},
		{name: "two numbers on a line", in: "0.5 0\n0\n0\n-0.5\n1\n2\n", wantErr: `line 1: "0.5 0" is not a number`},
		{name: "NaN", in: "NaN\n0\n0\n-0.5\n1\n2\n", wantErr: `line 1: "NaN" is not a finite number`},
		{name: "infinite", in: "0.5\n0\n0\n-Inf\n1\n2\n", wantErr: `line 4: "-Inf" is not a finite number`},
		{name: "zero pixel size", in: "0\n0\n0\n-0.5\n1\n2\n", wantErr: "pixel size is zero or degenerate"},
		{name: "degenerate rotation", in: "1\n1\n1\n1\n0\n0\n", wantErr: "pixel size is zero or degenerate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseWorldFile(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrWorldFile) {
					t.Fatalf("error = %v, want one containing %q wrapping ErrWorldFile", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWorldFileFor(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.pgw", "1\n0\n0\n-1\n10\n20\n")
	write("b.jpgw", "2\n0\n0\n-2\n10\n20\n")
	write("c.wld", "3\n0\n0\n-3\n10\n20\n")
	write("d.tfw", "3\n0\n0\n")
	tests := []struct {
		image   string
		wantA   float64
		wantErr string
	}{
		{"a.png", 1, ""},
		{"b.jpg", 2, ""},
		{"c.tif", 3, ""},
		{"d.tif", 0, "want 6 values"},
		{"e.png", 0, "none found"},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			w, _, err := WorldFileFor(filepath.Join(dir, tc.image))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || w.A != tc.wantA {
				t.Fatalf("got %+v, %v; want A=%g", w, err, tc.wantA)
			}
		})
	}
}

func TestNewGrid(t *testing.T) {
	tests := []struct {
		name    string
		wf      WorldFile
		crs     CRS
		want    CRS
		wantErr string
	}{
		{"auto mercator", WorldFile{A: 0.5, E: -0.5, C: 12958000, F: 4852000}, "", WebMercator, ""},
		{"auto lonlat", WorldFile{A: 5e-6, E: -5e-6, C: 116.4, F: 39.9}, "", LonLat, ""},
		{"lonlat out of range", WorldFile{A: 0.5, E: -0.5, C: 12958000, F: 4852000}, LonLat, "", "outside lon/lat range"},
		{"mercator out of range", WorldFile{A: 0.5, E: -0.5, C: 4e7, F: 0}, WebMercator, "", "outside Web Mercator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGrid(tc.wf, tc.crs, 1000, 1000)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || g.CRS != tc.want {
				t.Fatalf("got %v, %v; want %v", g.CRS, err, tc.want)
			}
		})
	}
}

func TestMercatorRoundTrip(t *testing.T) {
	for _, p := range [][2]float64{{0, 0}, {116.397, 39.909}, {-73.98, 40.75}, {151.2, -33.87}} {
		x, y := LonLatToMercator(p[0], p[1])
		lon, lat := MercatorToLonLat(x, y)
		if math.Abs(lon-p[0]) > 1e-9 || math.Abs(lat-p[1]) > 1e-9 {
			t.Errorf("%v -> (%f, %f) -> (%f, %f)", p, x, y, lon, lat)
		}
	}
}

// A square of side L metres on the ground, built in Web Mercator (where a
// ground metre is 1/cos(lat) map units), must measure L² on the sphere.
func TestRingAreaSquare(t *testing.T) {
	for _, lat := range []float64{0, 39.9, 60} {
		for _, side := range []float64{20, 100, 1000} {
			cx, cy := LonLatToMercator(116.4, lat)
			h := side / 2 / math.Cos(lat*math.Pi/180)
			var ring [][2]float64
			for _, c := range [][2]float64{{-h, -h}, {h, -h}, {h, h}, {-h, h}} {
				lon, la := MercatorToLonLat(cx+c[0], cy+c[1])
				ring = append(ring, [2]float64{lon, la})
			}
			got := RingAreaM2(ring)
			if want := side * side; math.Abs(got-want)/want > 0.005 {
				t.Errorf("lat %g side %g: area %.2f m², want %.2f", lat, side, got, want)
			}
		}
	}
}

func TestPixelArea(t *testing.T) {
	// 0.5 m Web Mercator pixels at the equator are 0.25 m²; at 60° half as long.
	cx, cy := LonLatToMercator(10, 60)
	for _, tc := range []struct {
		g    Grid
		want float64
	}{
		{Grid{WF: WorldFile{A: 0.5, E: -0.5}, CRS: WebMercator}, 0.25},
		{Grid{WF: WorldFile{A: 0.5, E: -0.5, C: cx, F: cy}, CRS: WebMercator}, 0.0625},
		{Grid{WF: WorldFile{A: 1e-5, E: -1e-5}, CRS: LonLat}, math.Pow(1e-5*math.Pi/180*EarthRadius, 2)},
	} {
		if got := tc.g.PixelAreaM2(0.5, 0.5); math.Abs(got-tc.want)/tc.want > 1e-4 {
			t.Errorf("%+v: %g m², want %g", tc.g.WF, got, tc.want)
		}
	}
}

func TestWriteGeoJSON(t *testing.T) {
	var buf bytes.Buffer
	cw := [][2]float64{{0, 0}, {0, 1e-4}, {1e-4, 1e-4}, {1e-4, 0}} // clockwise
	if err := WriteGeoJSON(&buf, []Change{{ID: 1, Ring: cw, AreaM2: 123, Score: 0.9, Pixels: 10}}); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0.0001,0],[0.0001,0.0001],[0,0.0001],[0,0],[0.0001,0]]]},"properties":{"id":1,"area_m2":123,"score":0.9,"pixels":10,"pixel_bbox":[0,0,0,0]}}]}`
	if got := strings.TrimSpace(buf.String()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if err := WriteGeoJSON(&buf, []Change{{ID: 2, Ring: cw[:2]}}); err == nil {
		t.Fatal("a two-vertex ring was accepted")
	}
}

func FuzzParseWorldFile(f *testing.F) {
	for _, s := range []string{"0.5\n0\n0\n-0.5\n100\n200\n", "", "1\n2\n3\n4\n5\n6\n7\n", "NaN\n", "1e400\n0\n0\n1\n0\n0\n", "\r\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWorldFile(strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrWorldFile) {
				t.Fatalf("error %v does not wrap ErrWorldFile", err)
			}
			return
		}
		for _, v := range []float64{w.A, w.B, w.C, w.D, w.E, w.F} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted non-finite value in %+v", w)
			}
		}
		if w.A*w.E-w.B*w.D == 0 {
			t.Fatalf("accepted a degenerate transform %+v", w)
		}
	})
}
