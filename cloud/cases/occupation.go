package cases

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// ruleEvents maps a zone's rule to the event code its episodes are filed
// under ("road occupation" is not one code: DOMAIN.md).
var ruleEvents = map[string]string{
	"no_vending": "0501", // 无照经营游商
	"no_parking": "0505", // 机动车乱停放
	"keep_clear": "0507", // 乱堆物堆料
}

// applyOccupation files an occupation episode: one open case per zone; the
// street office handles it; the camera seeing the zone clear is the check.
func (e *Engine) applyOccupation(ctx context.Context, tx *store.Tx, r wire.Report, now time.Time) (Outcome, error) {
	var out Outcome
	key := fmt.Sprintf("zone:%s:%s:%s", r.Device, r.Camera, r.Zone)
	c, err := tx.OpenCase(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if r.Phase == wire.PhaseEnd {
			return out, nil
		}
		code, ok := ruleEvents[r.Rule]
		if !ok {
			return out, fmt.Errorf("rule %q has no event category: %w", r.Rule, ErrInvalid)
		}
		cat, _ := e.tax().Event(code)
		c = store.Case{IncidentKey: key, Status: StatusReported, Source: SourceCamera, Category: code,
			CategoryName: cat.Name + " " + cat.NameEN, Lat: r.Lat, Lon: r.Lon, Device: r.Device, Camera: r.Camera,
			DetectionState: r.State, Confidence: r.Confidence, EvidenceSHA256: snapshot(r), Urgent: cat.Urgent,
			CreatedAt: now, UpdatedAt: now}
		if cell, ok := e.Registry.CellAt(r.Lat, r.Lon); ok {
			c.GridCell, c.Street, c.AreaClass = cell.Code, cell.Street, cell.AreaClass
			if st, ok := e.Registry.Street(cell.Street); ok {
				c.StreetName, c.StreetOffice = st.Name, st.OfficeDept
			}
		}
		if err := e.createCase(ctx, tx, &c); err != nil {
			return out, err
		}
		out.Created = true
		err = tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: "device:" + r.Device, Action: "reported",
			Note: fmt.Sprintf("camera %s: zone %s (%s) occupied, %.0f%% of it, at %s", r.Camera, r.Zone, r.Rule,
				r.Share*100, r.ObservedAt.Format(time.RFC3339)), Evidence: snapshot(r)})
		if err != nil {
			return out, err
		}
	case err != nil:
		return out, err
	default:
		ev := store.Event{CaseID: c.ID, At: now, Actor: "device:" + r.Device, Evidence: snapshot(r),
			Action: "detection_" + string(r.Phase), Note: fmt.Sprintf("zone %s: %.0f%% occupied", r.Zone, r.Share*100)}
		c.UpdatedAt, c.DetectionState = now, r.State
		if s := snapshot(r); s != "" && r.Phase != wire.PhaseEnd {
			c.EvidenceSHA256 = s
		}
		if r.Phase == wire.PhaseEnd {
			c.RestoredAt = r.ObservedAt
			ev.Action, ev.Note = "camera_sees_cleared", fmt.Sprintf("camera %s sees zone %s clear again", r.Camera, r.Zone)
			if c.Status == StatusDispatched || c.Status == StatusFixed {
				if err := e.cameraCheck(ctx, tx, &c, r); err != nil {
					return out, err
				}
				ev.Action, ev.Note = "camera_check_closed", ev.Note+": check passed, case closed"
			}
		}
		if err := tx.SaveCase(ctx, c); err != nil {
			return out, err
		}
		if err := tx.AddEvent(ctx, ev); err != nil {
			return out, err
		}
	}
	out.CaseID = c.ID
	return out, tx.LinkReport(ctx, r.Device, r.Seq, c.ID)
}
