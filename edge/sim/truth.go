package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
)

// coverJSON is a Cover on disk: the region as [x0, y0, x1, y1], the form
// the device config uses, rather than image.Rectangle's nested Min/Max.
type coverJSON struct {
	FacilityID string `json:"facility_id"`
	Shape      string `json:"shape"`
	Region     [4]int `json:"region"`
	Look       string `json:"look,omitempty"`
}

// MarshalJSON writes the region as [x0, y0, x1, y1].
func (c Cover) MarshalJSON() ([]byte, error) {
	r := c.Region
	return json.Marshal(coverJSON{c.FacilityID, c.Shape, [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}, c.Look})
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (c *Cover) UnmarshalJSON(b []byte) error {
	var j coverJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	*c = Cover{FacilityID: j.FacilityID, Shape: j.Shape, Region: image.Rect(j.Region[0], j.Region[1], j.Region[2], j.Region[3]), Look: j.Look}
	return nil
}

// WriteTruth writes t as indented JSON.
func WriteTruth(path string, t Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode truth: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}

// ReadTruth reads a truth file strictly: unknown fields and a timeline that
// does not tile the video are errors, since scoring against a broken truth
// would be meaningless.
func ReadTruth(path string) (Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Truth{}, fmt.Errorf("read truth: %w", err)
	}
	var t Truth
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return Truth{}, fmt.Errorf("decode truth %s: %w", path, err)
	}
	if err := t.Validate(); err != nil {
		return Truth{}, fmt.Errorf("truth %s: %w", path, err)
	}
	return t, nil
}

// timeEps absorbs float rounding when checking that intervals meet.
const timeEps = 1e-6

// Validate checks that, for every cover, the timeline's intervals are in
// order, have known states, and tile [0, Duration] without gaps or overlaps.
func (t Truth) Validate() error {
	if t.Duration <= 0 {
		return fmt.Errorf("duration_s: %v must be positive", t.Duration)
	}
	if len(t.Covers) == 0 {
		return errors.New("covers: none")
	}
	next := map[string]float64{}
	for _, c := range t.Covers {
		next[c.FacilityID] = 0
	}
	for i, iv := range t.Timeline {
		at, ok := next[iv.FacilityID]
		switch {
		case !ok:
			return fmt.Errorf("timeline[%d]: facility %q is not among the covers", i, iv.FacilityID)
		case iv.State != StatePresent && iv.State != StateMissing && iv.State != StateOccluded:
			return fmt.Errorf("timeline[%d].state: %q is not present, missing or occluded", i, iv.State)
		case math.Abs(iv.From-at) > timeEps:
			return fmt.Errorf("timeline[%d]: %s starts at %v, want %v (gap or overlap)", i, iv.FacilityID, iv.From, at)
		case iv.To <= iv.From:
			return fmt.Errorf("timeline[%d]: %s is empty or reversed (%v to %v)", i, iv.FacilityID, iv.From, iv.To)
		}
		next[iv.FacilityID] = iv.To
	}
	for _, c := range t.Covers {
		if end := next[c.FacilityID]; math.Abs(end-t.Duration) > timeEps {
			return fmt.Errorf("timeline: %s ends at %v, want %v", c.FacilityID, end, t.Duration)
		}
	}
	for i, id := range t.DarkCovers {
		if _, ok := next[id]; !ok {
			return fmt.Errorf("dark_covers[%d]: facility %q is not among the covers", i, id)
		}
	}
	zones := map[string]Zone{}
	for i, z := range t.Zones {
		switch {
		case z.ID == "" || zones[z.ID].ID != "":
			return fmt.Errorf("zones[%d].id: %q is empty or appears twice", i, z.ID)
		case len(z.Polygon) < 3:
			return fmt.Errorf("zones[%d].polygon: %d points, need at least 3", i, len(z.Polygon))
		case z.Dwell <= 0:
			return fmt.Errorf("zones[%d].dwell_s: %v must be positive", i, z.Dwell)
		}
		zones[z.ID] = z
	}
	for i, e := range t.Episodes {
		z, ok := zones[e.Zone]
		switch {
		case !ok:
			return fmt.Errorf("episodes[%d].zone: %q is not among the zones", i, e.Zone)
		case e.Rule != z.Rule:
			return fmt.Errorf("episodes[%d].rule: %q, but zone %s has rule %q", i, e.Rule, z.ID, z.Rule)
		case e.From < 0 || e.To <= e.From || e.To > t.Duration+timeEps:
			return fmt.Errorf("episodes[%d]: %v to %v is empty or outside [0, %v]", i, e.From, e.To, t.Duration)
		case e.Box[2] <= e.Box[0] || e.Box[3] <= e.Box[1]:
			return fmt.Errorf("episodes[%d].box: %v is empty", i, e.Box)
		}
	}
	return nil
}

// StateAt returns a cover's true state at sec seconds, or "" if the cover
// or the time is not in the timeline.
func (t Truth) StateAt(facilityID string, sec float64) string {
	for _, iv := range t.Timeline {
		if iv.FacilityID == facilityID && sec >= iv.From && sec < iv.To {
			return iv.State
		}
	}
	return ""
}

// Intervals returns one cover's intervals in time order.
func (t Truth) Intervals(facilityID string) []Interval {
	var out []Interval
	for _, iv := range t.Timeline {
		if iv.FacilityID == facilityID {
			out = append(out, iv)
		}
	}
	return out
}
