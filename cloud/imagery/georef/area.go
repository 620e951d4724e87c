package georef

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"sort"
)

// ErrArea wraps every error about an area of interest.
var ErrArea = errors.New("area")

// Area is an area of interest: polygons in WGS84 lon/lat, each an outer
// ring followed by its holes. A point is inside when it is inside an odd
// number of rings of some polygon.
type Area struct {
	Polygons [][][][2]float64
}

// ReadArea reads a GeoJSON file: a FeatureCollection, a Feature or a bare
// geometry, with Polygon and MultiPolygon geometries (others are an error).
func ReadArea(path string) (*Area, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArea, err)
	}
	a, err := ParseArea(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

type geoObject struct {
	Type        string          `json:"type"`
	Features    []geoObject     `json:"features"`
	Geometry    *geoObject      `json:"geometry"`
	Coordinates json.RawMessage `json:"coordinates"`
}

// ParseArea parses GeoJSON text (see ReadArea).
func ParseArea(data []byte) (*Area, error) {
	var o geoObject
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("%w: not GeoJSON: %v", ErrArea, err)
	}
	a := &Area{}
	if err := a.add(o, "$"); err != nil {
		return nil, err
	}
	if len(a.Polygons) == 0 {
		return nil, fmt.Errorf("%w: no polygons", ErrArea)
	}
	return a, nil
}

func (a *Area) add(o geoObject, where string) error {
	switch o.Type {
	case "FeatureCollection":
		for i, f := range o.Features {
			if err := a.add(f, fmt.Sprintf("%s.features[%d]", where, i)); err != nil {
				return err
			}
		}
	case "Feature":
		if o.Geometry == nil {
			return fmt.Errorf("%w: %s.geometry is null", ErrArea, where)
		}
		return a.add(*o.Geometry, where+".geometry")
	case "Polygon":
		var p [][][2]float64
		if err := json.Unmarshal(o.Coordinates, &p); err != nil {
			return fmt.Errorf("%w: %s.coordinates: %v", ErrArea, where, err)
		}
		return a.addPolygon(p, where)
	case "MultiPolygon":
		var mp [][][][2]float64
		if err := json.Unmarshal(o.Coordinates, &mp); err != nil {
			return fmt.Errorf("%w: %s.coordinates: %v", ErrArea, where, err)
		}
		for i, p := range mp {
			if err := a.addPolygon(p, fmt.Sprintf("%s.coordinates[%d]", where, i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: %s.type %q: want Polygon, MultiPolygon, Feature or FeatureCollection", ErrArea, where, o.Type)
	}
	return nil
}

func (a *Area) addPolygon(p [][][2]float64, where string) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: %s: polygon without rings", ErrArea, where)
	}
	for i, ring := range p {
		if len(ring) < 4 {
			return fmt.Errorf("%w: %s ring %d has %d positions, want at least 4 (closed)", ErrArea, where, i, len(ring))
		}
		for _, pt := range ring {
			if math.Abs(pt[0]) > 180 || math.Abs(pt[1]) > 90 {
				return fmt.Errorf("%w: %s ring %d: (%g, %g) is not lon/lat in WGS84", ErrArea, where, i, pt[0], pt[1])
			}
		}
	}
	a.Polygons = append(a.Polygons, p)
	return nil
}

// Contains reports whether lon/lat lies inside the area.
func (a *Area) Contains(lon, lat float64) bool {
	for _, p := range a.Polygons {
		in := false
		for _, ring := range p {
			for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
				xi, yi, xj, yj := ring[i][0], ring[i][1], ring[j][0], ring[j][1]
				if (yi > lat) != (yj > lat) && lon < (xj-xi)*(lat-yi)/(yj-yi)+xi {
					in = !in
				}
			}
		}
		if in {
			return true
		}
	}
	return false
}

// Mask rasterises the area onto the pixels r of grid g (1 inside, by pixel
// centre); edges are straight lines in pixel space, which for areas of a few
// km differs from the lon/lat edges by well under a pixel.
func (a *Area) Mask(g Grid, r image.Rectangle) []uint8 {
	w, h := r.Dx(), r.Dy()
	out := make([]uint8, w*h)
	type edge struct{ x0, y0, x1, y1 float64 }
	var polys [][]edge
	for _, p := range a.Polygons {
		var es []edge
		for _, ring := range p {
			pts := make([][2]float64, len(ring))
			for i, q := range ring {
				px, py := g.Pixel(q[0], q[1])
				pts[i] = [2]float64{px - float64(r.Min.X), py - float64(r.Min.Y)}
			}
			for i := 0; i+1 < len(pts); i++ {
				es = append(es, edge{pts[i][0], pts[i][1], pts[i+1][0], pts[i+1][1]})
			}
		}
		polys = append(polys, es)
	}
	var xs []float64
	for y := 0; y < h; y++ {
		cy := float64(y) + 0.5
		for _, es := range polys {
			xs = xs[:0]
			for _, e := range es {
				if (e.y0 > cy) != (e.y1 > cy) {
					xs = append(xs, e.x0+(cy-e.y0)*(e.x1-e.x0)/(e.y1-e.y0))
				}
			}
			sort.Float64s(xs)
			for k := 0; k+1 < len(xs); k += 2 {
				// pixel x is inside when its centre x+0.5 lies in [xs[k], xs[k+1])
				x0 := max(int(math.Ceil(xs[k]-0.5)), 0)
				x1 := min(int(math.Ceil(xs[k+1]-0.5)), w)
				for x := x0; x < x1; x++ {
					out[y*w+x] = 1
				}
			}
		}
	}
	return out
}

// Pixel is the inverse of LonLat: the pixel position of lon/lat.
func (g Grid) Pixel(lon, lat float64) (px, py float64) {
	x, y := lon, lat
	if g.CRS != LonLat {
		x, y = LonLatToMercator(lon, lat)
	}
	w := g.WF
	det := w.A*w.E - w.B*w.D
	dx, dy := x-w.C, y-w.F
	c := (w.E*dx - w.B*dy) / det
	rr := (-w.D*dx + w.A*dy) / det
	return c + 0.5, rr + 0.5
}

// TileSize is the side of a slippy-map tile in pixels unless a pyramid's
// images say otherwise.
const TileSize = 256

// TileGrid is the EPSG:3857 grid of a block of XYZ tiles at zoom z whose
// top-left tile is (x, y) (XYZ numbering: y grows southwards), with tiles of
// ts pixels, w×h pixels in all.
func TileGrid(z, x, y, ts, w, h int) Grid {
	res := 2 * math.Pi * EarthRadius / (float64(ts) * math.Exp2(float64(z)))
	lim := math.Pi * EarthRadius
	wf := WorldFile{A: res, E: -res,
		C: -lim + (float64(x*ts)+0.5)*res,
		F: lim - (float64(y*ts)+0.5)*res}
	return Grid{WF: wf, CRS: WebMercator, W: w, H: h}
}

// TileBounds returns the lon/lat bounds of XYZ tile (z, x, y).
func TileBounds(z, x, y int) (west, south, east, north float64) {
	n := math.Exp2(float64(z))
	lon := func(x float64) float64 { return x/n*360 - 180 }
	lat := func(y float64) float64 { return math.Atan(math.Sinh(math.Pi*(1-2*y/n))) * 180 / math.Pi }
	return lon(float64(x)), lat(float64(y + 1)), lon(float64(x + 1)), lat(float64(y))
}
