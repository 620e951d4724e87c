// Package cases turns reports into cases: it resolves who owns the hazard
// (facility → owner department) and where it is (location → grid cell →
// street office), keeps at most one open case per incident, and writes every
// change to the case's append-only log.
package cases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gridwatch/gridwatch/cloud/calendar"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Case statuses (the closed loop; later stages are added by the workflow).
const (
	// StatusReported: a machine detection or a report waiting for a verifier (核实).
	StatusReported = "reported"
	StatusClosed   = "closed"
)

// Sources of a case.
const SourceCamera = "camera"

// Engine applies reports to the store and runs the closed loop.
type Engine struct {
	Store    *store.Store
	Registry *registry.Registry
	Log      *slog.Logger
	Now      func() time.Time
	// Taxonomy gives categories their limits and owner rules (default: the built-in table).
	Taxonomy *taxonomy.Taxonomy
	// Calendar counts working hours (nil: natural hours for every category).
	Calendar *calendar.Calendar
	// AutoAccept, when set, verifies machine detections of these categories
	// at or above the confidence without a human; each use is logged as
	// actor "rule:auto-accept". Empty: every detection waits for a verifier.
	AutoAccept []AutoAcceptRule
	// Fleet, when set, is the registry of boxes and cameras: a cover report
	// is refused unless its camera is registered to watch the facility, an
	// occupation report unless the zone is one of its camera's. Nil: no check.
	Fleet *registry.Fleet
}

// AutoAcceptRule is an explicit, audited verification rule.
type AutoAcceptRule struct {
	Category      string  `json:"category"`
	MinConfidence float64 `json:"min_confidence"`
}

// Outcome says what a report did.
type Outcome struct {
	Duplicate bool  // (device, seq) was already applied: nothing changed
	CaseID    int64 // the case it joined or opened, 0 if none
	Created   bool  // a new case was opened
}

// ErrUnknownFacility marks a report about a facility the registry lacks.
var ErrUnknownFacility = errors.New("unknown facility")

// ErrNotInFleet marks a report from a box, camera or zone the fleet registry
// does not have, or about a facility its camera is not registered to watch.
var ErrNotInFleet = errors.New("not in the fleet registry")

// Apply stores one validated report and its effect on cases, atomically and
// idempotently: applying the same (device, seq) twice changes nothing.
func (e *Engine) Apply(ctx context.Context, r wire.Report, raw []byte) (Outcome, error) {
	now := e.now()
	var out Outcome
	fac, coverish, err := e.facility(r)
	if err != nil {
		return out, err
	}
	err = e.Store.Update(ctx, func(tx *store.Tx) error {
		inserted, err := tx.InsertReport(ctx, storedReport(r, raw, now))
		if err != nil {
			return err
		}
		out, err = e.applyStored(ctx, tx, r, fac, coverish, inserted, now)
		return err
	})
	return out, err
}

// facility finds the registered facility a report is about; coverish says
// whether the report concerns one (and so may open or join its case).
func (e *Engine) facility(r wire.Report) (fac registry.Facility, coverish bool, err error) {
	coverish = r.Kind == wire.ReportCover || r.Kind == wire.ReportSensor && r.FacilityID != ""
	if coverish {
		var ok bool
		if fac, ok = e.Registry.Facility(r.FacilityID); !ok {
			return fac, coverish, fmt.Errorf("facility_id %s: %w", r.FacilityID, ErrUnknownFacility)
		}
	}
	return fac, coverish, e.inFleet(r)
}

// inFleet refuses a report the fleet registry does not account for, before it
// is stored or opens a case: a cover or occupation report from a box, camera,
// facility or zone not registered together, or a sensor alarm relayed by a box
// that is not registered (the fleet does not list a box's sensors, so a
// registered box's sensor is taken on the facility registry's word).
func (e *Engine) inFleet(r wire.Report) error {
	if e.Fleet == nil || r.Kind != wire.ReportCover && r.Kind != wire.ReportOccupation && r.Kind != wire.ReportSensor {
		return nil
	}
	if r.Kind == wire.ReportSensor {
		if _, ok := e.Fleet.Box(r.Device); !ok {
			return fmt.Errorf("box %s sensor %s: box %s is not registered: %w", r.Device, r.Sensor.Sensor, r.Device, ErrNotInFleet)
		}
		return nil
	}
	what := "facility " + r.FacilityID
	if r.Kind == wire.ReportOccupation {
		what = "zone " + r.Zone
	}
	if _, ok := e.Fleet.Box(r.Device); !ok {
		return fmt.Errorf("box %s camera %s %s: box %s is not registered: %w", r.Device, r.Camera, what, r.Device, ErrNotInFleet)
	}
	cam, ok := e.Fleet.Camera(r.Device, r.Camera)
	switch {
	case !ok:
		return fmt.Errorf("box %s camera %s %s: box %s has no registered camera %s: %w", r.Device, r.Camera, what, r.Device, r.Camera, ErrNotInFleet)
	case r.Kind == wire.ReportCover && !cam.Watches(r.FacilityID):
		return fmt.Errorf("box %s camera %s %s: the camera is not registered to watch facility %s: %w", r.Device, r.Camera, what, r.FacilityID, ErrNotInFleet)
	case r.Kind == wire.ReportOccupation:
		if _, ok := cam.Zone(r.Zone); !ok {
			return fmt.Errorf("box %s camera %s %s: %s is not one of the camera's registered zones: %w", r.Device, r.Camera, what, r.Zone, ErrNotInFleet)
		}
	}
	return nil
}

func storedReport(r wire.Report, raw []byte, now time.Time) store.Report {
	return store.Report{
		Device: r.Device, Seq: r.Seq, ReportID: r.ID, Phase: string(r.Phase), Kind: r.Kind,
		FacilityID: r.FacilityID, State: r.State, ObservedAt: r.ObservedAt, ReceivedAt: now, Payload: raw,
	}
}

// applyStored gives a just-stored report (inserted false: already stored
// before, a duplicate) its effect on cases.
func (e *Engine) applyStored(ctx context.Context, tx *store.Tx, r wire.Report, fac registry.Facility, coverish, inserted bool, now time.Time) (Outcome, error) {
	if !inserted {
		return Outcome{Duplicate: true}, nil
	}
	if r.Kind == wire.ReportOccupation {
		return e.applyOccupation(ctx, tx, r, now)
	}
	if r.Kind == wire.ReportChange {
		return e.applyChange(ctx, tx, r, now)
	}
	if !coverish {
		return Outcome{}, nil // sensor alarms without a facility (water, gas) are kept, not filed
	}
	var out Outcome
	key := "cover:" + r.FacilityID
	c, err := tx.OpenCase(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !hazard(r.State) || r.Phase == wire.PhaseEnd {
			return out, nil // nothing wrong and nothing open: the report is kept, no case
		}
		c, err = e.newCoverCase(ctx, tx, r, fac, key, now)
		if err != nil {
			return out, err
		}
		out.Created = true
	case err != nil:
		return out, err
	default:
		if err := e.updateCoverCase(ctx, tx, &c, r, now); err != nil {
			return out, err
		}
	}
	out.CaseID = c.ID
	return out, tx.LinkReport(ctx, r.Device, r.Seq, c.ID)
}

func hazard(state string) bool {
	return state == wire.CoverMissing || state == wire.CoverDisplaced
}

// createCase files c, stamped with the version of the registry its owner,
// grid cell and street office were looked up in: a later re-import that
// moves a facility to another owner leaves the cases already filed as they
// were, and says under which registry they were filed.
func (e *Engine) createCase(ctx context.Context, tx *store.Tx, c *store.Case) error {
	c.RegistryVersion = e.Registry.VersionID()
	return tx.CreateCase(ctx, c)
}

func (e *Engine) newCoverCase(ctx context.Context, tx *store.Tx, r wire.Report, fac registry.Facility, key string, now time.Time) (store.Case, error) {
	c := store.Case{
		IncidentKey: key, Status: StatusReported, Source: SourceCamera,
		Category: fac.TypeCode, CategoryName: fac.TypeName, FacilityID: fac.ID,
		Lat: fac.Lat, Lon: fac.Lon, Device: r.Device, Camera: r.Camera,
		DetectionState: r.State, Confidence: r.Confidence, EvidenceSHA256: snapshot(r),
		CreatedAt: now, UpdatedAt: now,
	}
	if d, ok := e.Registry.Department(fac.OwnerDept); ok {
		c.OwnerDepartment, c.OwnerName = d.ID, d.Name
	}
	if cat, ok := e.tax().Part(fac.TypeCode); ok {
		c.Urgent = cat.Urgent
	}
	if cell, ok := e.Registry.CellAt(fac.Lat, fac.Lon); ok {
		c.GridCell, c.Street, c.AreaClass = cell.Code, cell.Street, cell.AreaClass
		if st, ok := e.Registry.Street(cell.Street); ok {
			c.StreetName, c.StreetOffice = st.Name, st.OfficeDept
		}
	} else {
		e.Log.Warn("facility lies in no grid cell", "facility", fac.ID, "lat", fac.Lat, "lon", fac.Lon)
	}
	if err := e.createCase(ctx, tx, &c); err != nil {
		return c, err
	}
	if err := tx.AddEvent(ctx, store.Event{
		CaseID: c.ID, At: now, Actor: "device:" + r.Device, Action: "reported",
		Note:     fmt.Sprintf("camera %s sees cover %s %s (confidence %.2f) at %s", r.Camera, r.FacilityID, r.State, r.Confidence, r.ObservedAt.Format(time.RFC3339)),
		Evidence: snapshot(r),
	}); err != nil {
		return c, err
	}
	for _, rule := range e.AutoAccept {
		if rule.Category == c.Category && r.Confidence >= rule.MinConfidence {
			note, err := e.dispatch(ctx, tx, &c, now)
			if err != nil {
				return c, err
			}
			if err := tx.SaveCase(ctx, c); err != nil {
				return c, err
			}
			return c, tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: "rule:auto-accept", Action: "verified_dispatched",
				Note: fmt.Sprintf("auto-accepted: category %s at confidence %.2f >= %.2f; %s", rule.Category, r.Confidence, rule.MinConfidence, note)})
		}
	}
	return c, nil
}

func (e *Engine) updateCoverCase(ctx context.Context, tx *store.Tx, c *store.Case, r wire.Report, now time.Time) error {
	c.UpdatedAt = now
	ev := store.Event{CaseID: c.ID, At: now, Actor: "device:" + r.Device, Evidence: snapshot(r)}
	if r.State == wire.CoverPresent {
		// The camera itself sees the cover back: evidence for the check (核查).
		c.RestoredAt = r.ObservedAt
		ev.Action = "camera_sees_restored"
		ev.Note = fmt.Sprintf("camera %s sees cover %s present again (confidence %.2f)", r.Camera, r.FacilityID, r.Confidence)
		if c.Status == StatusDispatched || c.Status == StatusFixed {
			if err := e.cameraCheck(ctx, tx, c, r); err != nil {
				return err
			}
			ev.Action = "camera_check_closed"
			ev.Note += ": check passed, case closed"
		}
	} else {
		ev.Action = "detection_" + string(r.Phase)
		ev.Note = fmt.Sprintf("camera %s: cover %s %s (confidence %.2f)", r.Camera, r.FacilityID, r.State, r.Confidence)
		if hazard(r.State) {
			c.RestoredAt = time.Time{}
		}
	}
	c.DetectionState, c.Confidence = r.State, r.Confidence
	if s := snapshot(r); s != "" && hazard(r.State) {
		c.EvidenceSHA256 = s
	}
	if err := tx.SaveCase(ctx, *c); err != nil {
		return err
	}
	return tx.AddEvent(ctx, ev)
}

// cameraCheck closes a dispatched or fixed case because its camera sees the
// cover back: the owner's open fix task is done at the moment the camera saw it.
func (e *Engine) cameraCheck(ctx context.Context, tx *store.Tx, c *store.Case, r wire.Report) error {
	tasks, err := tx.Tasks(ctx, c.ID)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if k.Role == RoleOwner && k.Status == TaskOpen {
			k.Status, k.DoneAt = TaskDone, r.ObservedAt
			k.Note = fmt.Sprintf("camera %s/%s sees the cover restored", r.Device, r.Camera)
			if err := tx.SaveTask(ctx, k); err != nil {
				return err
			}
		}
	}
	return e.close(ctx, tx, c, e.now())
}

func snapshot(r wire.Report) string {
	for _, e := range r.Evidence {
		if e.Kind == wire.EvidenceSnapshot {
			return e.SHA256
		}
	}
	return ""
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now().UTC()
}
