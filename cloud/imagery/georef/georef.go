// Package georef owns the georeferencing of imagery: world files (the six-line
// .pgw/.jgw/.tfw/.wld affine transform), Web Mercator (EPSG:3857) and lon/lat
// (EPSG:4326) pixel grids, conversion of pixel coordinates to WGS84, ground
// areas on the sphere, and writing changes as GeoJSON. It is pure Go.
package georef

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Earth radius of the Web Mercator sphere (EPSG:3857), metres.
const EarthRadius = 6378137.0

// WorldFile is the affine transform of a world file: the map coordinates of
// the centre of pixel (col, row) are
//
//	x = A*col + B*row + C
//	y = D*col + E*row + F
//
// (the file stores A, D, B, E, C, F, one per line, in that order).
type WorldFile struct {
	A, D, B, E, C, F float64
}

// ErrWorldFile wraps every world-file parsing error.
var ErrWorldFile = errors.New("world file")

// ParseWorldFile reads the six numbers of a world file. Blank lines and
// surrounding spaces are tolerated; anything else is an error naming the line.
func ParseWorldFile(r io.Reader) (WorldFile, error) {
	var v []float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		if len(v) == 6 {
			return WorldFile{}, fmt.Errorf("%w: line %d: more than 6 values (%q)", ErrWorldFile, line, t)
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return WorldFile{}, fmt.Errorf("%w: line %d: %q is not a number", ErrWorldFile, line, t)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return WorldFile{}, fmt.Errorf("%w: line %d: %q is not a finite number", ErrWorldFile, line, t)
		}
		v = append(v, f)
	}
	if err := sc.Err(); err != nil {
		return WorldFile{}, fmt.Errorf("%w: line %d: %v", ErrWorldFile, line+1, err)
	}
	if len(v) != 6 {
		return WorldFile{}, fmt.Errorf("%w: want 6 values (A, D, B, E, C, F), got %d", ErrWorldFile, len(v))
	}
	w := WorldFile{A: v[0], D: v[1], B: v[2], E: v[3], C: v[4], F: v[5]}
	if det := w.A*w.E - w.B*w.D; det == 0 || math.IsInf(det, 0) || math.Abs(det) < 1e-30 {
		return WorldFile{}, fmt.Errorf("%w: pixel size is zero or degenerate (A=%g B=%g D=%g E=%g)", ErrWorldFile, w.A, w.B, w.D, w.E)
	}
	return w, nil
}

// ToMap returns the map coordinates of pixel position (px, py), where
// (0, 0) is the top-left corner of the top-left pixel (so pixel centres are
// at +0.5).
func (w WorldFile) ToMap(px, py float64) (x, y float64) {
	c, r := px-0.5, py-0.5
	return w.A*c + w.B*r + w.C, w.D*c + w.E*r + w.F
}

// WorldFileFor finds and parses the world file of an image: NAME.pgw for
// NAME.png, .jgw for .jpg/.jpeg, .tfw for .tif/.tiff, .gfw for .gif, else
// the extension with "w" appended, or NAME.wld.
func WorldFileFor(image string) (WorldFile, string, error) {
	ext := filepath.Ext(image)
	base := strings.TrimSuffix(image, ext)
	var cands []string
	switch e := strings.ToLower(ext); e {
	case ".png":
		cands = append(cands, ".pgw")
	case ".jpg", ".jpeg":
		cands = append(cands, ".jgw")
	case ".tif", ".tiff":
		cands = append(cands, ".tfw")
	case ".gif":
		cands = append(cands, ".gfw")
	}
	if len(ext) > 1 {
		cands = append(cands, ext+"w")
	}
	cands = append(cands, ".wld")
	var tried []string
	for _, c := range cands {
		for _, p := range []string{base + c, base + strings.ToUpper(c)} {
			f, err := os.Open(p)
			if err != nil {
				tried = append(tried, filepath.Base(p))
				continue
			}
			w, err := ParseWorldFile(f)
			f.Close()
			if err != nil {
				return WorldFile{}, p, fmt.Errorf("%s: %w", p, err)
			}
			return w, p, nil
		}
	}
	return WorldFile{}, "", fmt.Errorf("%w: none found for %s (tried %s)", ErrWorldFile, image, strings.Join(tried, ", "))
}

// CRS is the coordinate reference system of a world file's map coordinates.
type CRS string

// The supported systems.
const (
	WebMercator CRS = "EPSG:3857"
	LonLat      CRS = "EPSG:4326"
)

// ParseCRS accepts EPSG:3857 (also 3857, 900913, webmercator) and EPSG:4326
// (also 4326, wgs84, lonlat); "" and "auto" return "".
func ParseCRS(s string) (CRS, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return "", nil
	case "epsg:3857", "3857", "epsg:900913", "900913", "webmercator":
		return WebMercator, nil
	case "epsg:4326", "4326", "wgs84", "lonlat":
		return LonLat, nil
	}
	return "", fmt.Errorf("unsupported CRS %q (want EPSG:3857 or EPSG:4326)", s)
}

// Grid georeferences a w×h image.
type Grid struct {
	WF   WorldFile
	CRS  CRS
	W, H int
}

// NewGrid checks the world file against the image size and the CRS (guessed
// when crs is ""): lon/lat grids must lie within ±180/±90 and Web Mercator
// grids within the projection's square.
func NewGrid(wf WorldFile, crs CRS, w, h int) (Grid, error) {
	g := Grid{WF: wf, CRS: crs, W: w, H: h}
	var xs, ys []float64
	for _, c := range [][2]float64{{0, 0}, {float64(w), 0}, {0, float64(h)}, {float64(w), float64(h)}} {
		x, y := wf.ToMap(c[0], c[1])
		xs, ys = append(xs, x), append(ys, y)
	}
	inLonLat := true
	for i := range xs {
		if math.Abs(xs[i]) > 180 || math.Abs(ys[i]) > 90 {
			inLonLat = false
		}
	}
	if g.CRS == "" {
		if inLonLat && math.Abs(wf.A) < 0.1 {
			g.CRS = LonLat
		} else {
			g.CRS = WebMercator
		}
	}
	lim := math.Pi * EarthRadius
	for i := range xs {
		switch g.CRS {
		case LonLat:
			if !inLonLat {
				return g, fmt.Errorf("%w: corner (%g, %g) is outside lon/lat range; is it EPSG:3857?", ErrWorldFile, xs[i], ys[i])
			}
		case WebMercator:
			if math.Abs(xs[i]) > lim*1.0001 || math.Abs(ys[i]) > lim*1.0001 {
				return g, fmt.Errorf("%w: corner (%g, %g) is outside Web Mercator's extent", ErrWorldFile, xs[i], ys[i])
			}
		}
	}
	return g, nil
}

// LonLat returns the WGS84 longitude and latitude of pixel position (px, py)
// (corner convention of WorldFile.ToMap).
func (g Grid) LonLat(px, py float64) (lon, lat float64) {
	x, y := g.WF.ToMap(px, py)
	if g.CRS == LonLat {
		return x, y
	}
	return MercatorToLonLat(x, y)
}

// PixelAreaM2 is the ground area of one pixel near pixel position (px, py).
func (g Grid) PixelAreaM2(px, py float64) float64 {
	det := math.Abs(g.WF.A*g.WF.E - g.WF.B*g.WF.D)
	_, lat := g.LonLat(px, py)
	c := math.Cos(lat * math.Pi / 180)
	if g.CRS == LonLat {
		k := math.Pi / 180 * EarthRadius
		return det * k * k * c
	}
	return det * c * c
}

// MercatorToLonLat converts EPSG:3857 metres to WGS84 degrees.
func MercatorToLonLat(x, y float64) (lon, lat float64) {
	lon = x / EarthRadius * 180 / math.Pi
	lat = (2*math.Atan(math.Exp(y/EarthRadius)) - math.Pi/2) * 180 / math.Pi
	return lon, lat
}

// LonLatToMercator converts WGS84 degrees to EPSG:3857 metres.
func LonLatToMercator(lon, lat float64) (x, y float64) {
	x = lon * math.Pi / 180 * EarthRadius
	y = math.Log(math.Tan(math.Pi/4+lat*math.Pi/360)) * EarthRadius
	return x, y
}

// RingAreaM2 is the area of a closed lon/lat ring on the sphere of radius
// EarthRadius (the spherical-excess formula used by GeoJSON tools), in m²,
// regardless of orientation.
func RingAreaM2(ring [][2]float64) float64 {
	n := len(ring)
	if n < 3 {
		return 0
	}
	var s float64
	rad := math.Pi / 180
	for i := 0; i < n; i++ {
		p1, p2, p3 := ring[i], ring[(i+1)%n], ring[(i+2)%n]
		s += (p3[0] - p1[0]) * rad * math.Sin(p2[1]*rad)
	}
	return math.Abs(s * EarthRadius * EarthRadius / 2)
}
