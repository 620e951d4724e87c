package cases

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
)

// HumanReport is a report by a person: a supervisor's phone app or a citizen
// (through the hotline or a web form), about a facility or an event.
type HumanReport struct {
	Kind        string  `json:"kind"`     // part or event
	Category    string  `json:"category"` // 4-digit code; for parts taken from the facility if given
	FacilityID  string  `json:"facility_id,omitempty"`
	Lat         float64 `json:"lat"`
	Lon         float64 `json:"lon"`
	Description string  `json:"description"`
	Photo       string  `json:"photo,omitempty"` // sha256 of an uploaded photo
}

// HumanOutcome says what the report did.
type HumanOutcome struct {
	Case    store.Case   `json:"case"`
	Created bool         `json:"created"` // false: it joined an open case of the same incident
	Nearby  []store.Case `json:"nearby"`  // other open cases within 250 m, possible duplicates
}

// Join radius for events reported by people without a facility id.
const joinMeters = 50

// Report files a human report through the same intake as the cameras: the
// same hazard joins one case (same facility, or same event category within
// 50 m). A supervisor's report is verified by its author and dispatched at
// once; anyone else's waits for a verifier.
func (e *Engine) Report(ctx context.Context, a Actor, h HumanReport) (HumanOutcome, error) {
	if err := e.allow(a, Supervisor, Verifier, Dispatcher); err != nil {
		return HumanOutcome{}, err
	}
	var fac registry.Facility
	switch h.Kind {
	case "part":
		var ok bool
		if fac, ok = e.Registry.Facility(h.FacilityID); !ok {
			return HumanOutcome{}, fmt.Errorf("facility_id: %q is not a registered facility: %w", h.FacilityID, ErrInvalid)
		}
		h.Category, h.Lat, h.Lon = fac.TypeCode, fac.Lat, fac.Lon
		if _, ok := e.tax().Part(h.Category); !ok {
			return HumanOutcome{}, fmt.Errorf("category: part %s is not in the taxonomy: %w", h.Category, ErrInvalid)
		}
	case "event":
		if _, ok := e.tax().Event(h.Category); !ok {
			return HumanOutcome{}, fmt.Errorf("category: event %q is not in the taxonomy: %w", h.Category, ErrInvalid)
		}
	default:
		return HumanOutcome{}, fmt.Errorf("kind: %q is not part or event: %w", h.Kind, ErrInvalid)
	}
	if h.Lat < -90 || h.Lat > 90 || h.Lon < -180 || h.Lon > 180 || (h.Lat == 0 && h.Lon == 0) {
		return HumanOutcome{}, fmt.Errorf("lat/lon: %v,%v is not a location: %w", h.Lat, h.Lon, ErrInvalid)
	}
	h.Description = strings.TrimSpace(h.Description)
	if len(h.Description) > 2000 {
		return HumanOutcome{}, fmt.Errorf("description: longer than 2000 bytes: %w", ErrInvalid)
	}
	cell, inside := e.Registry.CellAt(h.Lat, h.Lon)
	if !inside {
		return HumanOutcome{}, fmt.Errorf("lat/lon: %v,%v lies in no grid cell of this district: %w", h.Lat, h.Lon, ErrInvalid)
	}
	var out HumanOutcome
	err := e.Store.Update(ctx, func(tx *store.Tx) error {
		now := e.now()
		open, err := tx.OpenCasesNear(ctx, h.Lat, h.Lon, 250)
		if err != nil {
			return err
		}
		var joined *store.Case
		for i, c := range open {
			same := c.Category == h.Category && (h.Kind == "part" && c.FacilityID == fac.ID ||
				h.Kind == "event" && c.FacilityID == "" && distance(c.Lat, c.Lon, h.Lat, h.Lon) <= joinMeters)
			if same && joined == nil {
				joined = &open[i]
				continue
			}
			out.Nearby = append(out.Nearby, c)
		}
		ev := store.Event{At: now, Actor: a.String(), Note: h.Description, Evidence: h.Photo}
		if joined != nil {
			ev.CaseID, ev.Action = joined.ID, "joined_report"
			out.Case = *joined
			return tx.AddEvent(ctx, ev)
		}
		c := store.Case{Status: StatusReported, Source: a.Role, Category: h.Category, FacilityID: fac.ID,
			Lat: h.Lat, Lon: h.Lon, GridCell: cell.Code, Street: cell.Street, AreaClass: cell.AreaClass,
			EvidenceSHA256: h.Photo, CreatedAt: now, UpdatedAt: now}
		if h.Kind == "part" {
			c.IncidentKey = "cover:" + fac.ID
			c.CategoryName = fac.TypeName
			if d, ok := e.Registry.Department(fac.OwnerDept); ok {
				c.OwnerDepartment, c.OwnerName = d.ID, d.Name
			}
		} else {
			cat, _ := e.tax().Event(h.Category)
			c.IncidentKey = fmt.Sprintf("event:%s:%.5f,%.5f", h.Category, h.Lat, h.Lon)
			c.CategoryName = cat.Name + " " + cat.NameEN
		}
		if st, ok := e.Registry.Street(cell.Street); ok {
			c.StreetName, c.StreetOffice = st.Name, st.OfficeDept
		}
		if cat, err := e.category(c); err == nil {
			c.Urgent = cat.Urgent
		}
		if err := e.createCase(ctx, tx, &c); err != nil {
			return err
		}
		ev.CaseID, ev.Action = c.ID, "reported"
		if err := tx.AddEvent(ctx, ev); err != nil {
			return err
		}
		out.Created = true
		if a.Role == Supervisor {
			note, err := e.dispatch(ctx, tx, &c, now)
			if err != nil {
				return err
			}
			if err := tx.SaveCase(ctx, c); err != nil {
				return err
			}
			if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: a.String(), Action: "verified_dispatched",
				Note: "reported and verified on site by the supervisor; " + note}); err != nil {
				return err
			}
		}
		out.Case = c
		return nil
	})
	return out, err
}

// distance is the great-circle distance in metres.
func distance(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371000.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	h := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
