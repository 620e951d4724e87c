package agent

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/clip"
	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/decode"
	"github.com/gridwatch/gridwatch/edge/rtsp"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Evidence clip bounds: seconds before and after an event, and the memory
// the ring of compressed packets may hold per camera.
const (
	clipBefore   = 5 * time.Second
	clipAfter    = 5 * time.Second
	clipMaxBytes = 48 << 20
)

type camera struct {
	cfg      config.Camera
	rep      *reporter
	classify cover.Classifier
	log      *slog.Logger
	stream   atomic.Pointer[rtsp.Stream]
	ring     *clip.Ring

	// counters for telemetry
	frames, keyframes, decodeNs, decodes, analysisNs, analyses atomic.Uint64
	analysed                                                   atomic.Uint64 // pictures the occupancy detector saw

	mu      sync.Mutex
	enrol   map[string]bool               // covers to re-enrol on the next keyframe
	alarmed map[string]wire.SensorReading // sensor alarms waiting for a look
	snaps   []string                      // snapshot commands waiting for the next keyframe
}

func newCamera(cfg config.Camera, rep *reporter, classify cover.Classifier, log *slog.Logger) *camera {
	return &camera{cfg: cfg, rep: rep, classify: classify, log: log,
		ring:  clip.NewRing(clipBefore+2*time.Second, clipMaxBytes),
		enrol: map[string]bool{}, alarmed: map[string]wire.SensorReading{}}
}

func (c *camera) requestEnrol(facility string) {
	c.mu.Lock()
	c.enrol[facility] = true
	c.mu.Unlock()
}

func (c *camera) requestSensorCheck(r wire.SensorReading) {
	c.mu.Lock()
	c.alarmed[r.FacilityID] = r
	c.mu.Unlock()
	c.log.Info("sensor alarm: checking the cover at the next keyframe", "facility", r.FacilityID, "sensor", r.Sensor)
}

func (c *camera) run(ctx context.Context) error {
	dec, err := decode.NewH264()
	if err != nil {
		return err
	}
	defer dec.Close()
	specs := make([]cover.Spec, len(c.cfg.Covers))
	for i, cv := range c.cfg.Covers {
		r := cv.Region
		specs[i] = cover.Spec{FacilityID: cv.FacilityID, Region: image.Rect(r.X, r.Y, r.X+r.W, r.Y+r.H)}
	}
	mon := cover.New(c.cfg.ID, c.cfg.CoverCheck.Confirm, specs).WithClassifier(c.classify)
	defer mon.Close()
	for _, cv := range c.cfg.Covers {
		if cv.Reference == "" {
			continue
		}
		img := gocv.IMRead(cv.Reference, gocv.IMReadColor)
		if img.Empty() {
			return fmt.Errorf("cover %s: cannot read reference image %s", cv.FacilityID, cv.Reference)
		}
		err := mon.SetReference(cv.FacilityID, img)
		img.Close()
		if err != nil {
			return err
		}
	}
	occ, err := newOccupation(c)
	if err != nil {
		return err
	}
	if occ != nil {
		defer occ.close()
	}
	var last time.Time
	st := rtsp.New(c.cfg.URL, c.log, rtsp.Options{})
	c.stream.Store(st)
	return st.Run(ctx, func(au rtsp.AccessUnit) {
		c.frames.Add(1)
		c.ring.Add(au)
		if occ != nil {
			occ.feed(ctx, au)
		}
		if !au.Keyframe {
			return // never decode a frame nobody analyses
		}
		c.keyframes.Add(1)
		c.mu.Lock()
		urgent := len(c.alarmed) > 0 || len(c.snaps) > 0
		c.mu.Unlock()
		if au.Received.Sub(last) < c.cfg.CoverCheck.Interval && !urgent {
			return
		}
		last = au.Received
		t0 := time.Now()
		f, err := dec.DecodeKeyframe(au.AnnexB)
		if err != nil {
			c.log.Warn("keyframe does not decode", "err", err)
			return
		}
		t1 := time.Now()
		c.decodeNs.Add(uint64(t1.Sub(t0)))
		c.decodes.Add(1)
		if err := c.check(ctx, mon, f, au.Received); err != nil {
			c.log.Error("cover check failed", "err", err)
		}
		c.analysisNs.Add(uint64(time.Since(t1)))
		c.analyses.Add(1)
	})
}

func (c *camera) check(ctx context.Context, mon *cover.Monitor, f decode.Frame, at time.Time) error {
	mat, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC3, f.BGR)
	if err != nil {
		return err
	}
	defer mat.Close()
	c.mu.Lock()
	for fac := range c.enrol {
		if err := mon.SetReference(fac, mat); err != nil {
			c.log.Warn("enrol failed", "facility", fac, "err", err)
		} else {
			c.log.Info("cover reference enrolled from the current frame", "facility", fac)
		}
		delete(c.enrol, fac)
	}
	alarms := c.alarmed
	c.alarmed = map[string]wire.SensorReading{}
	snaps := c.snaps
	c.snaps = nil
	c.mu.Unlock()
	for _, id := range snaps {
		if err := c.snapshot(mat, id, at); err != nil {
			c.log.Error("snapshot not queued", "command", id, "err", err)
		}
	}
	changes, err := mon.Check(mat, at)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		var s *wire.SensorReading
		if a, ok := alarms[ch.FacilityID]; ok {
			s = &a
			delete(alarms, ch.FacilityID)
		}
		if err := c.report(ctx, mon, mat, ch, wire.ReportCover, s); err != nil {
			return err
		}
	}
	// Alarms the camera did not (yet) confirm still go up, with what the
	// camera sees now, for a verifier to judge.
	last := mon.Last()
	for fac, a := range alarms {
		obs := last[fac]
		state := sensorState(a)
		if obs.State == wire.CoverMissing {
			state = wire.CoverMissing
		}
		ch := cover.Change{FacilityID: fac, EventID: fmt.Sprintf("sensor-%s-%d", a.Sensor, a.At.Unix()),
			Phase: wire.PhaseNew, State: state, Confidence: 0.5, At: at}
		if err := c.report(ctx, mon, mat, ch, wire.ReportSensor, &a); err != nil {
			return err
		}
	}
	return nil
}

func (c *camera) report(ctx context.Context, mon *cover.Monitor, frame gocv.Mat, ch cover.Change, kind string, s *wire.SensorReading) error {
	clean, annotated, err := mon.Snapshot(frame, ch.FacilityID)
	if err != nil {
		return err
	}
	lat, lon := c.cfg.Lat, c.cfg.Lon
	for _, cv := range c.cfg.Covers {
		if cv.FacilityID == ch.FacilityID && (cv.Lat != 0 || cv.Lon != 0) {
			lat, lon = cv.Lat, cv.Lon
		}
	}
	r := wire.Report{ID: ch.EventID, Phase: ch.Phase, Kind: kind, Camera: c.cfg.ID, FacilityID: ch.FacilityID,
		State: ch.State, Confidence: ch.Confidence, ObservedAt: ch.At.UTC(), Lat: lat, Lon: lon, Sensor: s}
	seq, err := c.rep.queue(r,
		file{wire.EvidenceSnapshot, ".jpg", "image/jpeg", clean},
		file{wire.EvidenceAnnotated, ".jpg", "image/jpeg", annotated})
	if err != nil {
		return err
	}
	c.log.Info("cover report queued", "facility", ch.FacilityID, "phase", ch.Phase, "state", ch.State, "kind", kind,
		"confidence", fmt.Sprintf("%.2f", ch.Confidence), "seq", seq, "event", ch.EventID)
	if ch.Phase == wire.PhaseNew {
		go c.rep.clipLater(ctx, c.ring, r, clipBefore, clipAfter)
	}
	return nil
}
