// Package agent is the box's runtime: one goroutine per camera reads RTSP,
// decodes only the keyframes the cover monitor needs, and turns confirmed
// changes into reports with evidence (snapshots at once, a clip from before
// to after the event a few seconds later), which go through the durable
// outbox (reports) and the evidence queue (files) to the cloud. The local
// sensor listener's alarms trigger an immediate check of the cover they
// name, so the report carries both kinds of evidence.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/sensors"
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
	rep := &reporter{device: cfg.Device, outbox: ob, evidence: ev, log: log}
	cams := make(map[string]*camera, len(cfg.Cameras))
	watchedBy := map[string]*camera{} // facility id → the camera that watches it
	for _, cam := range cfg.Cameras {
		c := newCamera(cam, rep, classify, log.With("component", "camera", "camera", cam.ID))
		cams[cam.ID] = c
		for _, cv := range cam.Covers {
			watchedBy[cv.FacilityID] = c
		}
	}
	mq, err := DialUplink(cfg, ob, func(cmd wire.Command) {
		if cmd.Cmd != wire.CmdEnrol {
			return
		}
		c, ok := cams[cmd.Camera]
		if !ok {
			log.Warn("enrol: unknown camera", "camera", cmd.Camera)
			return
		}
		c.requestEnrol(cmd.FacilityID)
	}, log)
	if err != nil {
		return err
	}
	defer mq.Close()

	var sens *sensors.Listener
	if cfg.Sensors.Listen != "" {
		sens, err = sensors.Listen(cfg.Sensors.Listen, func(r wire.SensorReading) {
			if c, ok := watchedBy[r.FacilityID]; ok && r.FacilityID != "" {
				c.requestSensorCheck(r) // the camera checks at its next keyframe and reports both
				return
			}
			if err := rep.sensorOnly(r); err != nil {
				log.Error("sensor report not queued", "sensor", r.Sensor, "err", err)
			}
		}, log.With("component", "sensors"))
		if err != nil {
			return err
		}
		defer sens.Close()
		log.Info("sensor listener up", "addr", sens.Addr())
	}
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
	tel := &telemetry{cfg: cfg, outbox: ob, evidence: ev, cams: cams, sensors: sens, start: time.Now()}
	run("telemetry", func() error { return tel.run(ctx) })
	wg.Wait()
	return nil
}
