// Package scenes scores the edge detectors on simulated street scenes. It
// renders a suite scene (edge/sim) to H.264, feeds the access units through
// the code the agent runs on a camera — keyframes decoded by edge/decode into
// the cover monitor (edge/cover, with the shipped classifier), every picture
// through the reduced-rate sampler into the road-occupation detector
// (edge/occupancy) — and compares what they report with the scene's truth.
// Compression artefacts therefore count, as they do in the street.
package scenes

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/decode"
	"github.com/gridwatch/gridwatch/edge/h264"
	"github.com/gridwatch/gridwatch/edge/occupancy"
	"github.com/gridwatch/gridwatch/edge/sim"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Options say how scenes are made and how the detectors are set up; the
// zero value gives the suite's defaults and the agent's defaults.
type Options struct {
	Scene          sim.SuiteOptions
	Classifier     cover.Classifier // the cover-state classifier; nil: reference look only
	Confirm        int              // agreeing cover checks before a change is reported (default 3, as the agent)
	OccupancyWidth int              // analysis width of the occupancy detector (default 320, as the agent)
	OccupancyFPS   float64          // pictures analysed per second (default 2, as the agent)
	Dir            string           // where the rendered H.264 goes (default: the system's temp dir)
	Keep           bool             // keep the H.264 and truth.json instead of removing them
	// CoversOnly runs the cover monitor alone: the zones and occupation
	// episodes are dropped from the truth, so only the cover scores mean
	// anything (for long runs that measure false cover reports, where
	// decoding every picture for the occupancy detector would cost most).
	CoversOnly bool
	// CoverTrace, if set, is called after every cover check with each
	// cover's observation and confirmed state (for finding out why a
	// cover is reported as it is).
	CoverTrace func(at float64, facilityID string, obs cover.Observation, state string)
}

// CoverReport is one confirmed cover change, at seconds from the start.
type CoverReport struct {
	FacilityID string
	Phase      wire.Phase
	State      string
	At         float64
}

// OccupationReport is one occupancy episode report, at seconds from the
// start; Box is in the scene's pixels.
type OccupationReport struct {
	ID, Zone, Rule, Phase string
	At                    float64
	Box                   image.Rectangle
}

// Run is what the detectors reported on one scene.
type Run struct {
	Truth       sim.Truth
	Covers      []CoverReport
	Occupations []OccupationReport
	Render      time.Duration // wall time to render and encode
	Detect      time.Duration // wall time to decode and run the detectors
}

// t0 is the wall-clock time of a scene's first frame.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// RunSeed renders suite scene `seed` and runs the detectors over it.
func RunSeed(ctx context.Context, seed int64, o Options) (Run, error) {
	sc := sim.Suite(seed, o.Scene)
	return RunScene(ctx, sc, o)
}

// RenderSeed renders suite scene `seed` into o.Dir and keeps it (the H.264
// and its truth.json, as RunScene leaves them with Keep) without running
// the detectors: DetectFile scores it later, so rendering can start before
// the detectors are final.
func RenderSeed(ctx context.Context, seed int64, o Options) (Run, error) {
	o.Keep = true
	sc := sim.Suite(seed, o.Scene)
	path := filepath.Join(o.Dir, fmt.Sprintf("scene-%d-%d.h264", sc.Seed, os.Getpid()))
	start := time.Now()
	truth, err := sc.RenderH264(ctx, path, nil)
	if err != nil {
		return Run{}, err
	}
	if err := sim.WriteTruth(path+".truth.json", truth); err != nil {
		return Run{}, err
	}
	return Run{Truth: truth, Render: time.Since(start)}, nil
}

// RunScene renders sc and runs the detectors over it.
func RunScene(ctx context.Context, sc sim.Scene, o Options) (Run, error) {
	if o.Confirm <= 0 {
		o.Confirm = 3
	}
	if o.OccupancyWidth <= 0 {
		o.OccupancyWidth = 320
	}
	if o.OccupancyFPS <= 0 {
		o.OccupancyFPS = 2
	}
	dir := o.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("scene-%d-%d.h264", sc.Seed, os.Getpid()))
	if !o.Keep {
		defer os.Remove(path)
	}
	start := time.Now()
	truth, err := sc.RenderH264(ctx, path, nil)
	if err != nil {
		return Run{}, err
	}
	if o.Keep {
		if err := sim.WriteTruth(path+".truth.json", truth); err != nil {
			return Run{}, err
		}
	}
	render := time.Since(start)
	run, err := DetectFile(ctx, path, truth, o)
	run.Render = render
	return run, err
}

// DetectFile runs the detectors over a scene rendered before (an H.264 file
// and its truth, as RunScene leaves them with Keep), so that a change to a
// detector can be scored again without rendering again.
func DetectFile(ctx context.Context, path string, truth sim.Truth, o Options) (Run, error) {
	if o.Confirm <= 0 {
		o.Confirm = 3
	}
	if o.OccupancyWidth <= 0 {
		o.OccupancyWidth = 320
	}
	if o.OccupancyFPS <= 0 {
		o.OccupancyFPS = 2
	}
	if o.CoversOnly {
		truth.Zones, truth.Episodes = nil, nil
	}
	run := Run{Truth: truth}
	start := time.Now()
	stream, err := os.ReadFile(path)
	if err != nil {
		return Run{}, fmt.Errorf("scene %d: %w", truth.Seed, err)
	}
	if err := detect(ctx, stream, truth, o, &run); err != nil {
		return Run{}, fmt.Errorf("scene %d: %w", truth.Seed, err)
	}
	run.Detect = time.Since(start)
	return run, nil
}

// detect plays the stream to the detectors as the agent's camera loop does.
func detect(ctx context.Context, stream []byte, truth sim.Truth, o Options, run *Run) error {
	keyDec, err := decode.NewH264()
	if err != nil {
		return err
	}
	defer keyDec.Close()
	specs := make([]cover.Spec, len(truth.Covers))
	for i, c := range truth.Covers {
		specs[i] = cover.Spec{FacilityID: c.FacilityID, Region: c.Region}
	}
	mon := cover.New("sim", o.Confirm, specs).WithClassifier(o.Classifier)
	defer mon.Close()

	var (
		occDec  *decode.Decoder
		sampler *decode.Sampler
		det     *occupancy.Detector
		scale   float64
	)
	if len(truth.Zones) > 0 {
		// The agent's arithmetic (edge/agent occupation.go): even sides,
		// zones scaled to the analysis size.
		w := min(o.OccupancyWidth, truth.Width)
		h := truth.Height * w / truth.Width
		w, h = w&^1, h&^1
		scale = float64(w) / float64(truth.Width)
		zones := make([]occupancy.Zone, len(truth.Zones))
		for i, z := range truth.Zones {
			pts := make([]image.Point, len(z.Polygon))
			for j, p := range z.Polygon {
				pts[j] = image.Pt(int(float64(p[0])*scale), int(float64(p[1])*scale))
			}
			zones[i] = occupancy.Zone{ID: z.ID, Rule: z.Rule, Polygon: pts, Dwell: time.Duration(z.Dwell * float64(time.Second))}
		}
		if det, err = occupancy.New(zones, w, h); err != nil {
			return err
		}
		if occDec, err = decode.NewH264(); err != nil {
			return err
		}
		defer occDec.Close()
		sampler = decode.NewSampler(occDec, o.OccupancyFPS, w)
	}

	var params h264.Params
	fps := float64(truth.FPS)
	for i, au := range h264.AccessUnits(stream) {
		if i%50 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		annexB, key := params.Complete(au)
		pts := time.Duration(float64(i) / fps * float64(time.Second))
		if sampler != nil {
			samples, err := sampler.Decode(annexB, pts)
			if err != nil && !errors.Is(err, decode.ErrDamaged) && !errors.Is(err, decode.ErrNoFrame) {
				return fmt.Errorf("occupancy decode at %v: %w", pts, err)
			}
			for _, s := range samples {
				for _, ep := range det.Step(s.BGR, t0.Add(s.PTS)) {
					b := ep.Box
					run.Occupations = append(run.Occupations, OccupationReport{
						ID: ep.ID, Zone: ep.Zone, Rule: ep.Rule, Phase: ep.Phase, At: ep.At.Sub(t0).Seconds(),
						Box: image.Rect(int(float64(b.Min.X)/scale), int(float64(b.Min.Y)/scale),
							int(float64(b.Max.X)/scale), int(float64(b.Max.Y)/scale)),
					})
				}
			}
		}
		if !key {
			continue
		}
		f, err := keyDec.DecodeKeyframe(annexB)
		if err != nil {
			return fmt.Errorf("keyframe at %v: %w", pts, err)
		}
		mat, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC3, f.BGR)
		if err != nil {
			return err
		}
		changes, err := mon.Check(mat, t0.Add(pts))
		mat.Close()
		if err != nil {
			return err
		}
		if o.CoverTrace != nil {
			states := mon.States()
			for id, obs := range mon.Last() {
				o.CoverTrace(pts.Seconds(), id, obs, states[id])
			}
		}
		for _, c := range changes {
			run.Covers = append(run.Covers, CoverReport{FacilityID: c.FacilityID, Phase: c.Phase, State: c.State, At: c.At.Sub(t0).Seconds()})
		}
	}
	return nil
}
