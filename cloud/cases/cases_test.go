package cases_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
	"github.com/gridwatch/gridwatch/edge/wire"
)

const (
	powerCover   = "1101050105000123"
	sanlitun     = "110105003"
	sanlitunDept = "street-110105003"
)

var now = time.Date(2026, 11, 27, 12, 20, 3, 0, time.UTC)

// backend is the database newEngine opens (the *Postgres variants of the
// tests set it).
var backend = "sqlite"

func newEngine(t *testing.T) *cases.Engine {
	t.Helper()
	return &cases.Engine{
		Store:    storetest.Open(t, backend).Store,
		Registry: registry.Demo(),
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      func() time.Time { return now },
	}
}

// golden reads one of the wire package's golden examples.
func golden(t *testing.T, name string) (wire.Report, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "edge", "wire", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r, raw
}

func apply(t *testing.T, e *cases.Engine, r wire.Report, raw []byte) cases.Outcome {
	t.Helper()
	out, err := e.Apply(context.Background(), r, raw)
	if err != nil {
		t.Fatalf("Apply(%s seq %d): %v", r.Device, r.Seq, err)
	}
	return out
}

func allCases(t *testing.T, e *cases.Engine) []store.Case {
	t.Helper()
	cs, err := e.Store.Cases(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func events(t *testing.T, e *cases.Engine, id int64) []store.Event {
	t.Helper()
	evs, err := e.Store.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestNewMissingReportOpensOneCase(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	out := apply(t, e, r, raw)
	if !out.Created || out.Duplicate || out.CaseID == 0 {
		t.Fatalf("Outcome = %+v, want a new case", out)
	}

	reg := registry.Demo()
	fac, ok := reg.Facility(powerCover)
	if !ok {
		t.Fatalf("demo registry lacks %s", powerCover)
	}
	cell, ok := reg.CellAt(fac.Lat, fac.Lon)
	if !ok {
		t.Fatalf("facility %s lies in no demo cell", powerCover)
	}

	cs := allCases(t, e)
	if len(cs) != 1 {
		t.Fatalf("%d cases, want 1", len(cs))
	}
	c := cs[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"id", c.ID, out.CaseID},
		{"incident_key", c.IncidentKey, "cover:" + powerCover},
		{"status", c.Status, cases.StatusReported},
		{"source", c.Source, cases.SourceCamera},
		{"category", c.Category, "0105"},
		{"facility_id", c.FacilityID, powerCover},
		{"owner_department", c.OwnerDepartment, "dept-power"},
		{"grid_cell", c.GridCell, cell.Code},
		{"street", c.Street, sanlitun},
		{"street_office", c.StreetOffice, sanlitunDept},
		{"lat", c.Lat, fac.Lat},
		{"lon", c.Lon, fac.Lon},
		{"device", c.Device, "box-chaoyang-0001"},
		{"camera", c.Camera, "cam1"},
		{"detection_state", c.DetectionState, wire.CoverMissing},
		{"confidence", c.Confidence, 0.93},
		{"evidence_sha256", c.EvidenceSHA256, "9f2c4f3d2b8e6f0a1c5d7e9b3a2f4c6d8e0a1b3c5d7f9e1a3c5b7d9f1e3a5c70"},
		{"restored_at is zero", c.RestoredAt.IsZero(), true},
		{"created_at", c.CreatedAt, now},
		{"updated_at", c.UpdatedAt, now},
		{"registry_version", c.RegistryVersion, reg.VersionID()},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("case %s = %v, want %v", ck.field, ck.got, ck.want)
		}
	}
	if c.OwnerName == "" || c.CategoryName == "" || c.StreetName == "" {
		t.Errorf("case lacks display names: owner %q, category %q, street %q", c.OwnerName, c.CategoryName, c.StreetName)
	}

	evs := events(t, e, c.ID)
	if len(evs) != 1 || evs[0].Action != "reported" || evs[0].Actor != "device:box-chaoyang-0001" ||
		evs[0].Evidence != c.EvidenceSHA256 || !evs[0].At.Equal(now) {
		t.Errorf("events = %+v, want one \"reported\" event by the device with the snapshot", evs)
	}
	if n, _ := e.Store.ReportCount(context.Background()); n != 1 {
		t.Errorf("ReportCount = %d, want 1", n)
	}
}

func TestSameDeviceSeqIsDuplicate(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	first := apply(t, e, r, raw)

	// The same (device, seq) again, even with other content, changes nothing.
	again := r
	again.State, again.Confidence = wire.CoverPresent, 0.5
	for i, rr := range []wire.Report{r, again} {
		out := apply(t, e, rr, raw)
		if !out.Duplicate || out.Created {
			t.Errorf("re-apply %d: Outcome = %+v, want Duplicate", i, out)
		}
	}
	cs := allCases(t, e)
	if len(cs) != 1 || cs[0].ID != first.CaseID || cs[0].DetectionState != wire.CoverMissing || cs[0].Confidence != 0.93 || !cs[0].RestoredAt.IsZero() {
		t.Errorf("cases after duplicates = %+v, want the one case unchanged", cs)
	}
	if evs := events(t, e, first.CaseID); len(evs) != 1 {
		t.Errorf("%d events after duplicates, want 1", len(evs))
	}
	if n, _ := e.Store.ReportCount(context.Background()); n != 1 {
		t.Errorf("ReportCount = %d, want 1", n)
	}
}

func TestSecondNewReportJoinsOpenCase(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	first := apply(t, e, r, raw)

	tests := []struct {
		name   string
		mutate func(*wire.Report)
	}{
		{"same device, next seq", func(r *wire.Report) { r.Seq = 43 }},
		{"another device sees it too", func(r *wire.Report) { r.Device, r.Seq, r.Camera = "box-chaoyang-0002", 1, "cam3" }},
		{"displaced", func(r *wire.Report) { r.Seq, r.State = 44, wire.CoverDisplaced }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := r
			tt.mutate(&rr)
			out := apply(t, e, rr, raw)
			if out.Created || out.Duplicate || out.CaseID != first.CaseID {
				t.Fatalf("Outcome = %+v, want it to join case %d", out, first.CaseID)
			}
			if cs := allCases(t, e); len(cs) != 1 {
				t.Fatalf("%d cases, want 1", len(cs))
			}
			evs := events(t, e, first.CaseID)
			if len(evs) != i+2 || evs[i+1].Action != "detection_new" {
				t.Errorf("events = %+v, want a detection_new event appended", evs)
			}
		})
	}
}

func TestEndPresentMarksRestored(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	first := apply(t, e, r, raw)
	end, endRaw := golden(t, "report-cover-end.json")
	out := apply(t, e, end, endRaw)
	if out.Created || out.Duplicate || out.CaseID != first.CaseID {
		t.Fatalf("Outcome = %+v, want the end report to join case %d", out, first.CaseID)
	}
	c, err := e.Store.Case(context.Background(), first.CaseID)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RestoredAt.Equal(end.ObservedAt) {
		t.Errorf("RestoredAt = %v, want the end report's observed_at %v", c.RestoredAt, end.ObservedAt)
	}
	if c.DetectionState != wire.CoverPresent {
		t.Errorf("DetectionState = %q, want present", c.DetectionState)
	}
	// The snapshot of the hazard stays the case's evidence.
	if c.EvidenceSHA256 != r.Evidence[0].SHA256 {
		t.Errorf("EvidenceSHA256 = %s, want the missing-cover snapshot %s", c.EvidenceSHA256, r.Evidence[0].SHA256)
	}
	evs := events(t, e, c.ID)
	last := evs[len(evs)-1]
	if len(evs) != 2 || last.Action != "camera_sees_restored" || last.Evidence != end.Evidence[0].SHA256 {
		t.Errorf("events = %+v, want a camera_sees_restored event with the end snapshot", evs)
	}

	// A new missing report afterwards clears the restored mark again.
	again := r
	again.Seq = 58
	apply(t, e, again, raw)
	if c, _ = e.Store.Case(context.Background(), first.CaseID); !c.RestoredAt.IsZero() {
		t.Errorf("RestoredAt = %v after the cover went missing again, want zero", c.RestoredAt)
	}
}

func TestUnknownFacilityStoresNothing(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	r.FacilityID = "1101059999999999"
	_, err := e.Apply(context.Background(), r, raw)
	if !errors.Is(err, cases.ErrUnknownFacility) {
		t.Fatalf("Apply = %v, want ErrUnknownFacility", err)
	}
	if cs := allCases(t, e); len(cs) != 0 {
		t.Errorf("%d cases, want none", len(cs))
	}
	if n, _ := e.Store.ReportCount(context.Background()); n != 0 {
		t.Errorf("ReportCount = %d, want 0 (the report is not stored)", n)
	}
}

func TestHarmlessReportWithoutOpenCaseCreatesNoCase(t *testing.T) {
	tests := []struct {
		name  string
		state string
		phase wire.Phase
	}{
		{"occluded new", wire.CoverOccluded, wire.PhaseNew},
		{"present new", wire.CoverPresent, wire.PhaseNew},
		{"unknown new", wire.CoverUnknown, wire.PhaseNew},
		{"present end", wire.CoverPresent, wire.PhaseEnd},
		{"missing end", wire.CoverMissing, wire.PhaseEnd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t)
			r, raw := golden(t, "report-cover-new.json")
			r.State, r.Phase = tt.state, tt.phase
			out := apply(t, e, r, raw)
			if out.Created || out.CaseID != 0 || out.Duplicate {
				t.Errorf("Outcome = %+v, want no case", out)
			}
			if cs := allCases(t, e); len(cs) != 0 {
				t.Errorf("%d cases, want none", len(cs))
			}
			// The report itself is kept, once.
			if n, _ := e.Store.ReportCount(context.Background()); n != 1 {
				t.Errorf("ReportCount = %d, want 1", n)
			}
			if out := apply(t, e, r, raw); !out.Duplicate {
				t.Errorf("re-apply: Outcome = %+v, want Duplicate", out)
			}
		})
	}
}

func TestClosedCaseIsNotReopened(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	r, raw := golden(t, "report-cover-new.json")
	first := apply(t, e, r, raw)
	err := e.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.OpenCase(ctx, "cover:"+powerCover)
		if err != nil {
			return err
		}
		c.Status = cases.StatusClosed
		return tx.SaveCase(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	again := r
	again.Seq = 99
	out := apply(t, e, again, raw)
	if !out.Created || out.CaseID == first.CaseID {
		t.Errorf("Outcome = %+v, want a new case after case %d was closed", out, first.CaseID)
	}
	if cs := allCases(t, e); len(cs) != 2 {
		t.Errorf("%d cases, want 2", len(cs))
	}
}

// A re-imported registry that gives the power cover to another department
// leaves the case already filed with the owner it was dispatched to and the
// registry version it was filed under; cases filed after the import carry
// the new version.
func TestReimportedRegistryLeavesFiledCasesAlone(t *testing.T) {
	old := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	first := apply(t, old, r, raw)

	dir := t.TempDir()
	if err := registry.Demo().WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, registry.FacilitiesFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	line := "1101050105000123,0105,电力井盖 power cover,39.92195,116.44352,dept-power"
	if !strings.Contains(string(b), line) {
		t.Fatalf("%s lacks %q", p, line)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), line, strings.Replace(line, "dept-power", "dept-water", 1), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := registry.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if next.VersionID() == registry.Demo().VersionID() {
		t.Fatal("an owner change did not change the registry version")
	}
	e := *old
	e.Registry = next

	// The same cover reported again joins the case filed under the old registry.
	r.Seq++
	if out := apply(t, &e, r, raw); out.CaseID != first.CaseID || out.Created {
		t.Fatalf("after the re-import: %+v, want case %d joined", out, first.CaseID)
	}
	// Another cover goes missing after the import.
	r2 := r
	r2.Seq++
	r2.FacilityID, r2.Category = "1101050102000456", "0102"
	second := apply(t, &e, r2, raw)
	if !second.Created {
		t.Fatalf("sewage cover: %+v, want a new case", second)
	}
	byID := map[int64]store.Case{}
	for _, c := range allCases(t, &e) {
		byID[c.ID] = c
	}
	if c := byID[first.CaseID]; c.OwnerDepartment != "dept-power" || c.RegistryVersion != registry.Demo().VersionID() {
		t.Errorf("case filed before the import: owner %s, registry %s; want dept-power under %s", c.OwnerDepartment, c.RegistryVersion, registry.Demo().VersionID())
	}
	if c := byID[second.CaseID]; c.RegistryVersion != next.VersionID() {
		t.Errorf("case filed after the import: registry %s, want %s", c.RegistryVersion, next.VersionID())
	}
}
