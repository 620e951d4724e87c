package imagery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Intake is where detections enter the case engine (cases.Engine.Apply):
// idempotent by (device, seq), with the engine's joining of nearby cases.
type Intake interface {
	Apply(ctx context.Context, r wire.Report, raw []byte) (cases.Outcome, error)
}

// EvidencePutter stores evidence files by sha256 (evidence.Store).
type EvidencePutter interface {
	Put(sum string, r io.Reader) (created bool, err error)
}

// FileOptions choose which changes are significant enough to become cases.
type FileOptions struct {
	MinScore  float64 `json:"min_score"`   // changes scoring below are kept in the GeoJSON only
	MinAreaM2 float64 `json:"min_area_m2"` // so are changes smaller than this
}

// FileSummary counts what filing did.
type FileSummary struct {
	Filed     int `json:"filed"`     // reports the engine took
	Created   int `json:"created"`   // new cases
	Joined    int `json:"joined"`    // joined an open case nearby
	Duplicate int `json:"duplicate"` // already filed by an earlier run
	Skipped   int `json:"skipped"`   // below the score or area limit
}

// FileChanges turns each significant change of a finished job into a
// detection for the case engine: the before and after crops go into the
// evidence store first, then a report of kind "change" from device
// "imagery-JOBID" with the change's sequence number, so filing the same job
// twice creates no second case.
func FileChanges(ctx context.Context, j *Job, in Intake, ev EvidencePutter, opt FileOptions) (FileSummary, error) {
	var s FileSummary
	if !j.Finished() {
		return s, fmt.Errorf("job %s has not finished: run it to the end before filing its changes", j.State.ID)
	}
	for _, c := range j.Changes() {
		if c.Score < opt.MinScore || c.AreaM2 < opt.MinAreaM2 {
			s.Skipped++
			continue
		}
		var evs []wire.Evidence
		for _, side := range []struct{ kind, file, sum string }{
			{wire.EvidenceBefore, c.Before, c.BeforeSHA256}, {wire.EvidenceAfter, c.After, c.AfterSHA256}} {
			data, err := os.ReadFile(filepath.Join(j.Dir, side.file))
			if err != nil {
				return s, fmt.Errorf("change %s: %w", c.ID, err)
			}
			if _, err := ev.Put(side.sum, bytes.NewReader(data)); err != nil {
				return s, fmt.Errorf("change %s: %w", c.ID, err)
			}
			evs = append(evs, wire.Evidence{SHA256: side.sum, Kind: side.kind, ContentType: "image/jpeg", Bytes: int64(len(data))})
		}
		r := wire.Report{V: wire.Version, Device: j.DeviceID(), Seq: c.Seq, ID: c.ID, Phase: wire.PhaseNew,
			Kind: wire.ReportChange, Camera: "job-" + j.State.ID, State: "changed", Confidence: min(max(c.Score, 0), 1),
			ObservedAt: j.State.Created, Lat: c.Lat, Lon: c.Lon, Evidence: evs,
			Category: j.State.Spec.Category, Polygon: c.Ring, AreaM2: c.AreaM2}
		if err := r.Validate(); err != nil {
			return s, fmt.Errorf("change %s: %w", c.ID, err)
		}
		raw, _ := json.Marshal(r)
		out, err := in.Apply(ctx, r, raw)
		if err != nil {
			return s, fmt.Errorf("change %s: %w", c.ID, err)
		}
		switch {
		case out.Duplicate:
			s.Duplicate++
		case out.Created:
			s.Filed++
			s.Created++
		default:
			s.Filed++
			s.Joined++
		}
	}
	return s, nil
}
