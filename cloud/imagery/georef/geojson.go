package georef

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// Change is one changed region in WGS84.
type Change struct {
	ID     int          `json:"id"`
	Key    string       `json:"change_id,omitempty"` // a job's stable id of the change
	Ring   [][2]float64 `json:"-"`                   // lon/lat, not closed (the writer closes it)
	AreaM2 float64      `json:"area_m2"`
	Score  float64      `json:"score"` // mean change probability inside the region, 0..1
	Pixels int          `json:"pixels"`
	// PixelBox is the region's bounding box in image pixels [x0, y0, x1, y1).
	PixelBox [4]int `json:"pixel_bbox"`
	// BeforeJPEG and AfterJPEG are a job's crops of the change, relative to
	// the job directory.
	BeforeJPEG string `json:"before_jpeg,omitempty"`
	AfterJPEG  string `json:"after_jpeg,omitempty"`
}

type fc struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

type feature struct {
	Type       string   `json:"type"`
	Geometry   geometry `json:"geometry"`
	Properties Change   `json:"properties"`
}

type geometry struct {
	Type        string         `json:"type"`
	Coordinates [][][2]float64 `json:"coordinates"`
}

// WriteGeoJSON writes the changes as a FeatureCollection of Polygons (RFC
// 7946: WGS84, counter-clockwise exterior rings, coordinates rounded to 1e-7°
// ≈ 1 cm).
func WriteGeoJSON(w io.Writer, changes []Change) error {
	out := fc{Type: "FeatureCollection", Features: []feature{}}
	for _, c := range changes {
		if len(c.Ring) < 3 {
			return fmt.Errorf("geojson: change %d has %d vertices", c.ID, len(c.Ring))
		}
		ring := make([][2]float64, 0, len(c.Ring)+1)
		for _, p := range c.Ring {
			ring = append(ring, [2]float64{round7(p[0]), round7(p[1])})
		}
		if signedArea(ring) < 0 { // clockwise: reverse
			for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
				ring[i], ring[j] = ring[j], ring[i]
			}
		}
		ring = append(ring, ring[0])
		out.Features = append(out.Features, feature{Type: "Feature",
			Geometry: geometry{Type: "Polygon", Coordinates: [][][2]float64{ring}}, Properties: c})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

func round7(v float64) float64 { return math.Round(v*1e7) / 1e7 }

// signedArea is the planar shoelace area (positive = counter-clockwise).
func signedArea(r [][2]float64) float64 {
	var s float64
	for i := range r {
		j := (i + 1) % len(r)
		s += r[i][0]*r[j][1] - r[j][0]*r[i][1]
	}
	return s / 2
}
