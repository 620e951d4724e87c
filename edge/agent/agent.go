// Package agent is the box's runtime: one goroutine per camera reads RTSP,
// decodes only the keyframes the cover monitor needs, and turns confirmed
// changes into reports with evidence, which go through the durable outbox
// (reports) and the evidence queue (JPEGs) to the cloud.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/edge/decode"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/rtsp"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Software names this build in status messages.
var Software = "gridwatch-edge dev"

// Run runs the box until ctx ends.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), log.With("component", "outbox"))
	if err != nil {
		return err
	}
	ev, err := uplink.OpenEvidence(filepath.Join(cfg.DataDir, "evidence"), cfg.Cloud.URL, log.With("component", "evidence"))
	if err != nil {
		return err
	}
	var classify cover.Classifier
	if cfg.CoverModel != "" {
		c, err := coverclass.Load(cfg.CoverModel)
		if err != nil {
			return fmt.Errorf("cover_model: %w", err)
		}
		classify = cover.FromCoverclass(c)
		log.Info("cover-state classifier loaded", "manifest", cfg.CoverModel)
	}
	cams := make(map[string]*camera, len(cfg.Cameras))
	for _, cam := range cfg.Cameras {
		cams[cam.ID] = &camera{cfg: cam, device: cfg.Device, outbox: ob, evidence: ev, classify: classify,
			log: log.With("component", "camera", "camera", cam.ID), enrol: map[string]bool{}}
	}
	onCommand := func(cmd wire.Command) {
		switch cmd.Cmd {
		case wire.CmdReplay:
			n, oldest, err := ob.Replay(cmd.FromSeq)
			if err != nil {
				log.Error("replay failed", "from_seq", cmd.FromSeq, "err", err)
				return
			}
			if oldest > cmd.FromSeq {
				log.Warn("replay asked for messages no longer kept", "from_seq", cmd.FromSeq, "oldest_kept", oldest)
			}
			log.Info("replaying", "from_seq", cmd.FromSeq, "messages", n)
		case wire.CmdEnrol:
			c, ok := cams[cmd.Camera]
			if !ok {
				log.Warn("enrol: unknown camera", "camera", cmd.Camera)
				return
			}
			c.requestEnrol(cmd.FacilityID)
		}
	}
	mq, err := uplink.Dial(uplink.MQTTOptions{
		BrokerURL: cfg.Broker.URL, ClientID: cfg.Broker.ClientID, Device: cfg.Device,
		Username: cfg.Broker.Username, PasswordFile: cfg.Broker.PasswordFile,
		Software: Software, ConfigVer: cfg.Version, OnCommand: onCommand,
	}, log.With("component", "mqtt"))
	if err != nil {
		return err
	}
	defer mq.Close()
	log.Info("edge agent starting", "device", cfg.Device, "cameras", len(cfg.Cameras),
		"broker", cfg.Broker.URL, "cloud", cfg.Cloud.URL, "pending_reports", ob.Len(), "pending_evidence", ev.Pending())

	var wg sync.WaitGroup
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				log.Error("component stopped", "component", name, "err", err)
			}
		}()
	}
	run("outbox", func() error { return ob.Run(ctx, mq.Publish) })
	run("evidence", func() error { return ev.Run(ctx) })
	for _, c := range cams {
		run("camera "+c.cfg.ID, func() error { return c.run(ctx) })
	}
	tel := &telemetry{cfg: cfg, outbox: ob, evidence: ev, cams: cams, start: time.Now()}
	run("telemetry", func() error { return tel.run(ctx) })
	wg.Wait()
	return nil
}

type camera struct {
	cfg      config.Camera
	device   string
	outbox   *outbox.Outbox
	evidence *uplink.Evidence
	classify cover.Classifier
	log      *slog.Logger
	stream   atomic.Pointer[rtsp.Stream]

	// counters for telemetry
	frames, keyframes, decodeNs, decodes, analysisNs, analyses atomic.Uint64

	mu    sync.Mutex
	enrol map[string]bool // covers to re-enrol on the next keyframe
}

func (c *camera) requestEnrol(facility string) {
	c.mu.Lock()
	c.enrol[facility] = true
	c.mu.Unlock()
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
	var last time.Time
	st := rtsp.New(c.cfg.URL, c.log, rtsp.Options{})
	c.stream.Store(st)
	return st.Run(ctx, func(au rtsp.AccessUnit) {
		c.frames.Add(1)
		if !au.Keyframe {
			return // never decode a frame nobody analyses
		}
		c.keyframes.Add(1)
		if au.Received.Sub(last) < c.cfg.CoverCheck.Interval {
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
		if err := c.check(mon, f, au.Received); err != nil {
			c.log.Error("cover check failed", "err", err)
		}
		c.analysisNs.Add(uint64(time.Since(t1)))
		c.analyses.Add(1)
	})
}

func (c *camera) check(mon *cover.Monitor, f decode.Frame, at time.Time) error {
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
	c.mu.Unlock()
	changes, err := mon.Check(mat, at)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		if err := c.report(mon, mat, ch); err != nil {
			return err
		}
	}
	return nil
}

func (c *camera) report(mon *cover.Monitor, frame gocv.Mat, ch cover.Change) error {
	clean, annotated, err := mon.Snapshot(frame, ch.FacilityID)
	if err != nil {
		return err
	}
	var evs []wire.Evidence
	for _, e := range []struct {
		kind string
		data []byte
	}{{wire.EvidenceSnapshot, clean}, {wire.EvidenceAnnotated, annotated}} {
		sum, err := c.evidence.Save(e.data, ".jpg")
		if err != nil {
			return err
		}
		evs = append(evs, wire.Evidence{SHA256: sum, Kind: e.kind, ContentType: "image/jpeg", Bytes: int64(len(e.data))})
	}
	lat, lon := c.cfg.Lat, c.cfg.Lon
	for _, cv := range c.cfg.Covers {
		if cv.FacilityID == ch.FacilityID && (cv.Lat != 0 || cv.Lon != 0) {
			lat, lon = cv.Lat, cv.Lon
		}
	}
	topic := wire.Topic(c.device, wire.KindReport)
	seq, err := c.outbox.Append(topic, func(seq uint64) ([]byte, error) {
		r := wire.Report{
			V: wire.Version, Device: c.device, Seq: seq, ID: ch.EventID, Phase: ch.Phase,
			Kind: wire.ReportCover, Camera: c.cfg.ID, FacilityID: ch.FacilityID, State: ch.State,
			Confidence: ch.Confidence, ObservedAt: ch.At.UTC(), Lat: lat, Lon: lon, Evidence: evs,
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("refusing to queue an invalid report: %w", err)
		}
		return json.Marshal(r)
	})
	if err != nil {
		return err
	}
	c.log.Info("cover report queued", "facility", ch.FacilityID, "phase", ch.Phase, "state", ch.State,
		"confidence", fmt.Sprintf("%.2f", ch.Confidence), "seq", seq, "event", ch.EventID)
	return nil
}
