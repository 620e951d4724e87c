package georef

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"math"
	"strings"
	"testing"
)

func TestGeoTIFFRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		g    GeoTIFF
	}{
		{"web mercator rgb", GeoTIFF{W: 5, H: 3, CRS: WebMercator, WF: WorldFile{A: 0.5, E: -0.5, C: 12958000.25, F: 4852000.75}}},
		{"lon/lat", GeoTIFF{W: 4, H: 4, CRS: LonLat, WF: WorldFile{A: 1e-5, E: -1e-5, C: 116.4, F: 39.9}}},
		{"rotated (ModelTransformation)", GeoTIFF{W: 2, H: 2, CRS: WebMercator, WF: WorldFile{A: 0.5, D: 0.1, B: 0.1, E: -0.5, C: 100, F: 200}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteGeoTIFF(&buf, make([]byte, 3*tc.g.W*tc.g.H), tc.g); err != nil {
				t.Fatal(err)
			}
			got, err := parseGeoTIFF(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got.W != tc.g.W || got.H != tc.g.H || got.CRS != tc.g.CRS {
				t.Fatalf("got %dx%d %s, want %dx%d %s", got.W, got.H, got.CRS, tc.g.W, tc.g.H, tc.g.CRS)
			}
			for _, p := range [][2]float64{{0, 0}, {0.5, 0.5}, {float64(tc.g.W), float64(tc.g.H)}} {
				x0, y0 := tc.g.WF.ToMap(p[0], p[1])
				x1, y1 := got.WF.ToMap(p[0], p[1])
				if math.Abs(x0-x1) > 1e-9*math.Max(1, math.Abs(x0)) || math.Abs(y0-y1) > 1e-9*math.Max(1, math.Abs(y0)) {
					t.Errorf("pixel %v maps to (%g, %g), want (%g, %g)", p, x1, y1, x0, y0)
				}
			}
		})
	}
}

func TestGeoTIFFErrors(t *testing.T) {
	good := func() []byte {
		var buf bytes.Buffer
		if err := WriteGeoTIFF(&buf, make([]byte, 4), GeoTIFF{W: 2, H: 2, CRS: WebMercator, WF: WorldFile{A: 1, E: -1}}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	// setKey rewrites the value of GeoKey k in the file's key directory.
	setKey := func(b []byte, k, v uint16) []byte {
		needle := binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(nil, k), 0), 1)
		i := bytes.Index(b, needle)
		if i < 0 {
			t.Fatalf("key %d not found", k)
		}
		binary.LittleEndian.PutUint16(b[i+6:], v)
		return b
	}
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"not a tiff", "not a TIFF file", []byte("\x89PNG\r\n\x1a\nxxxxxxxx")},
		{"bigtiff", "BigTIFF is not supported", []byte("II+\x00\x08\x00\x00\x00")},
		{"other projection", "projected CRS EPSG:32650 is not supported", setKey(good(), keyProjectedCS, 32650)},
		{"unknown model type", "GTModelTypeGeoKey 3", setKey(good(), keyModelType, 3)},
		{"truncated", "first IFD", good()[:9]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGeoTIFF(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrGeoTIFF) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAreaMaskAndContains(t *testing.T) {
	// A 10×10 pixel lon/lat grid with 1e-4° pixels; the area is a square
	// covering pixels 2..5 × 3..6 with a one-pixel hole at (4, 5), plus a
	// second polygon at pixel (8, 8).
	g := Grid{WF: WorldFile{A: 1e-4, E: -1e-4, C: 116 + 0.5e-4, F: 40 - 0.5e-4}, CRS: LonLat, W: 10, H: 10}
	ll := func(px, py float64) [2]float64 { lon, lat := g.LonLat(px, py); return [2]float64{lon, lat} }
	sq := func(x0, y0, x1, y1 float64) [][2]float64 {
		return [][2]float64{ll(x0, y0), ll(x1, y0), ll(x1, y1), ll(x0, y1), ll(x0, y0)}
	}
	a := &Area{Polygons: [][][][2]float64{{sq(2, 3, 6, 7), sq(4, 5, 5, 6)}, {sq(8, 8, 9, 9)}}}
	m := a.Mask(g, image.Rect(0, 0, 10, 10))
	for y := 0; y < 10; y++ {
		for x := 0; x < 10; x++ {
			want := x >= 2 && x < 6 && y >= 3 && y < 7 && !(x == 4 && y == 5) || x == 8 && y == 8
			if (m[y*10+x] == 1) != want {
				t.Errorf("mask(%d,%d) = %d, want %v", x, y, m[y*10+x], want)
			}
			lon, lat := g.LonLat(float64(x)+0.5, float64(y)+0.5)
			if a.Contains(lon, lat) != want {
				t.Errorf("Contains(pixel %d,%d) = %v, want %v", x, y, !want, want)
			}
		}
	}
	// A sub-rectangle is the same mask, cropped.
	sub := a.Mask(g, image.Rect(3, 4, 7, 8))
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			if sub[y*4+x] != m[(y+4)*10+x+3] {
				t.Fatalf("sub-mask differs at (%d,%d)", x, y)
			}
		}
	}
}

func TestParseArea(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		polygons          int
	}{
		{"feature collection", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[116,39],[117,39],[117,40],[116,39]]]}},
			{"type":"Feature","geometry":{"type":"MultiPolygon","coordinates":[[[[1,1],[2,1],[2,2],[1,1]]],[[[3,3],[4,3],[4,4],[3,3]]]]}}]}`, "", 3},
		{"bare polygon", `{"type":"Polygon","coordinates":[[[116,39],[117,39],[117,40],[116,39]]]}`, "", 1},
		{"a point", `{"type":"Point","coordinates":[116,39]}`, `$.type "Point": want Polygon`, 0},
		{"open ring", `{"type":"Polygon","coordinates":[[[116,39],[117,39],[116,39]]]}`, "ring 0 has 3 positions", 0},
		{"metres, not degrees", `{"type":"Polygon","coordinates":[[[12958000,4852000],[12958100,4852000],[12958100,4852100],[12958000,4852000]]]}`, "is not lon/lat in WGS84", 0},
		{"null geometry", `{"type":"Feature","geometry":null}`, "$.geometry is null", 0},
		{"not json", `polygon please`, "not GeoJSON", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseArea([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrArea) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Polygons) != tc.polygons {
				t.Fatalf("%d polygons, want %d", len(a.Polygons), tc.polygons)
			}
		})
	}
}

func TestTileGrid(t *testing.T) {
	// Tile (z=16, x=53958, y=24806) lies in Chaoyang; its grid's corners must
	// be the tile's bounds, and Pixel must invert LonLat.
	z, x, y := 16, 53958, 24806
	g := TileGrid(z, x, y, 256, 512, 512) // 2×2 tiles
	w, s, e, n := TileBounds(z, x, y)
	lon, lat := g.LonLat(0, 0)
	if math.Abs(lon-w) > 1e-9 || math.Abs(lat-n) > 1e-9 {
		t.Errorf("top-left (%v, %v), want (%v, %v)", lon, lat, w, n)
	}
	lon, lat = g.LonLat(256, 256)
	if math.Abs(lon-e) > 1e-9 || math.Abs(lat-s) > 1e-9 {
		t.Errorf("first tile's bottom-right (%v, %v), want (%v, %v)", lon, lat, e, s)
	}
	px, py := g.Pixel(g.LonLat(123.25, 400.5))
	if math.Abs(px-123.25) > 1e-6 || math.Abs(py-400.5) > 1e-6 {
		t.Errorf("Pixel(LonLat(123.25, 400.5)) = (%v, %v)", px, py)
	}
}
