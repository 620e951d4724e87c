package cases

import (
	"context"
	"fmt"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// SourceImagery marks cases found by comparing two dates of imagery.
const SourceImagery = "imagery"

// imageryJoinMeters: a change whose centre lies this close to an open case
// of the same category joins it (the same new building seen by two jobs, or
// already reported by a supervisor) instead of opening another.
const imageryJoinMeters = 30

// applyChange files a change found by imagery comparison. The report's
// (device, seq) — the job and the change — already made it idempotent; here
// it joins an open case of the same category nearby or opens a new one
// that waits for a verifier with the before/after crops as evidence.
func (e *Engine) applyChange(ctx context.Context, tx *store.Tx, r wire.Report, now time.Time) (Outcome, error) {
	var out Outcome
	cat, ok := e.tax().Event(r.Category)
	if !ok {
		return out, fmt.Errorf("category: event %q is not in the taxonomy: %w", r.Category, ErrInvalid)
	}
	after := evidenceOf(r, wire.EvidenceAfter)
	note := fmt.Sprintf("imagery %s: change %s, %.0f m², score %.2f", r.Camera, r.ID, r.AreaM2, r.Confidence)
	open, err := tx.OpenCasesNear(ctx, r.Lat, r.Lon, imageryJoinMeters)
	if err != nil {
		return out, err
	}
	for _, c := range open {
		if c.Category == r.Category && distance(c.Lat, c.Lon, r.Lat, r.Lon) <= imageryJoinMeters {
			err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: "device:" + r.Device, Action: "joined_report",
				Note: note, Evidence: after})
			if err != nil {
				return out, err
			}
			out.CaseID = c.ID
			return out, tx.LinkReport(ctx, r.Device, r.Seq, c.ID)
		}
	}
	c := store.Case{IncidentKey: "imagery:" + r.Device + ":" + r.ID, Status: StatusReported, Source: SourceImagery,
		Category: r.Category, CategoryName: cat.Name + " " + cat.NameEN, Lat: r.Lat, Lon: r.Lon,
		Device: r.Device, Camera: r.Camera, DetectionState: r.State, Confidence: r.Confidence,
		EvidenceSHA256: after, Urgent: cat.Urgent, CreatedAt: now, UpdatedAt: now}
	if cell, ok := e.Registry.CellAt(r.Lat, r.Lon); ok {
		c.GridCell, c.Street, c.AreaClass = cell.Code, cell.Street, cell.AreaClass
		if st, ok := e.Registry.Street(cell.Street); ok {
			c.StreetName, c.StreetOffice = st.Name, st.OfficeDept
		}
	} else {
		e.Log.Warn("imagery change lies in no grid cell", "device", r.Device, "change", r.ID, "lat", r.Lat, "lon", r.Lon)
	}
	if err := e.createCase(ctx, tx, &c); err != nil {
		return out, err
	}
	out.Created = true
	if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: "device:" + r.Device, Action: "reported",
		Note: note, Evidence: after}); err != nil {
		return out, err
	}
	out.CaseID = c.ID
	return out, tx.LinkReport(ctx, r.Device, r.Seq, c.ID)
}

func evidenceOf(r wire.Report, kind string) string {
	for _, ev := range r.Evidence {
		if ev.Kind == kind {
			return ev.SHA256
		}
	}
	return ""
}
