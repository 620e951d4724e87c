package cases_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func changeReport(device string, seq uint64, lon, lat float64) (wire.Report, []byte) {
	d := 0.0001
	r := wire.Report{V: wire.Version, Device: device, Seq: seq, ID: "z18_1_1-1", Phase: wire.PhaseNew, Kind: wire.ReportChange,
		Camera: "job-" + device, State: "changed", Confidence: 0.8, ObservedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Lat: lat, Lon: lon, Category: "0101", AreaM2: 120,
		Polygon: [][2]float64{{lon - d, lat - d}, {lon + d, lat - d}, {lon + d, lat + d}, {lon - d, lat + d}},
		Evidence: []wire.Evidence{{SHA256: strings.Repeat("a", 64), Kind: wire.EvidenceBefore, ContentType: "image/jpeg", Bytes: 10},
			{SHA256: strings.Repeat("b", 64), Kind: wire.EvidenceAfter, ContentType: "image/jpeg", Bytes: 10}}}
	raw, _ := json.Marshal(r)
	return r, raw
}

// Imagery changes enter through the same intake as camera reports: one case
// per new change (0101, waiting for a verifier, after crop as evidence),
// the same change again is a duplicate, and another job's change at the
// same spot joins the open case.
func TestImageryChanges(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	const lon, lat = 116.45, 39.92
	r, raw := changeReport("imagery-job1", 10001, lon, lat)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	first := apply(t, e, r, raw)
	if !first.Created || first.CaseID == 0 {
		t.Fatalf("first change: %+v, want a new case", first)
	}
	c, err := e.Store.Case(ctx, first.CaseID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Category != "0101" || c.Status != cases.StatusReported || c.Source != cases.SourceImagery ||
		c.EvidenceSHA256 != strings.Repeat("b", 64) || c.GridCell == "" {
		t.Fatalf("case %+v", c)
	}
	if again := apply(t, e, r, raw); !again.Duplicate {
		t.Fatalf("same job and change again: %+v, want a duplicate", again)
	}
	r2, raw2 := changeReport("imagery-job2", 10001, lon+0.0001, lat) // ≈ 8.5 m east
	if joined := apply(t, e, r2, raw2); joined.Created || joined.CaseID != first.CaseID {
		t.Fatalf("change 8.5 m away from another job: %+v, want it joined to case %d", joined, first.CaseID)
	}
	r3, raw3 := changeReport("imagery-job2", 10002, lon+0.001, lat) // ≈ 85 m east
	if far := apply(t, e, r3, raw3); !far.Created {
		t.Fatalf("change 85 m away: %+v, want a new case", far)
	}
	bad, _ := changeReport("imagery-job3", 1, lon, lat)
	bad.Category = "9999"
	rawBad, _ := json.Marshal(bad)
	if _, err := e.Apply(ctx, bad, rawBad); err == nil || !strings.Contains(err.Error(), `category: event "9999" is not in the taxonomy`) {
		t.Fatalf("unknown category: err = %v", err)
	}
}
