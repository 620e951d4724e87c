package georef

import (
	"bytes"
	"testing"
)

// A hostile or truncated GeoTIFF gets an error, never a panic or an
// allocation its header merely asks for.
func FuzzParseGeoTIFF(f *testing.F) {
	for _, g := range []GeoTIFF{
		{W: 2, H: 2, CRS: WebMercator, WF: WorldFile{A: 1, E: -1}},
		{W: 3, H: 1, CRS: LonLat, WF: WorldFile{A: 1e-5, D: 1e-6, B: 1e-6, E: -1e-5, C: 116.4, F: 39.9}},
	} {
		var buf bytes.Buffer
		if err := WriteGeoTIFF(&buf, make([]byte, 3*g.W*g.H), g); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGeoTIFF(bytes.NewReader(b))
		if err == nil && (g.W <= 0 || g.H <= 0) {
			t.Fatalf("accepted a %dx%d image", g.W, g.H)
		}
	})
}

// An area of interest from any bytes is a polygon set or an error naming the problem.
func FuzzParseArea(f *testing.F) {
	f.Add([]byte(`{"type":"Polygon","coordinates":[[[116.4,39.9],[116.5,39.9],[116.5,40],[116.4,39.9]]]}`))
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := ParseArea(b); err == nil && a == nil {
			t.Fatal("no error and no area")
		}
	})
}
