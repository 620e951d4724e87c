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
	httpTLS, err := cfg.Broker.TLS.HTTPClientConfig()
	if err != nil {
		return err
	}
	ev, err := uplink.OpenEvidence(filepath.Join(cfg.DataDir, "evidence"), cfg.Cloud.URL, httpTLS, log.With("component", "evidence"))
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
	cams := newFleet(ctx, func(cam config.Camera) *camera {
		return newCamera(cam, rep, classify, log.With("component", "camera", "camera", cam.ID))
	}, log)
	// Cameras start before the uplink, so a command queued for the box while
	// it was offline (snapshot, enrol) finds them when it arrives.
	cams.apply(cfg.Cameras)
	rc := &reconfigurer{cur: cfg, fleet: cams, log: log.With("component", "config"), settle: 3 * time.Second}
	pushes := make(chan wire.ConfigPush, 1)
	reloads := make(chan struct{}, 1)
	mq, err := dialUplink(cfg, ob, func(cmd wire.Command) {
		switch cmd.Cmd {
		case wire.CmdEnrol:
			c, ok := cams.cameras()[cmd.Camera]
			if !ok {
				log.Warn("enrol: unknown camera", "camera", cmd.Camera)
				return
			}
			c.requestEnrol(cmd.FacilityID)
		case wire.CmdReload:
			select { // one waiting reload covers any number asked for
			case reloads <- struct{}{}:
			default:
			}
		case wire.CmdSnapshot:
			requestSnapshots(cams.cameras(), cmd, log)
		}
	}, func(p wire.ConfigPush) {
		select { // keep only the newest push waiting
		case <-pushes:
		default:
		}
		pushes <- p
	}, log)
	if err != nil {
		return err
	}
	defer mq.Close()
	rc.status = mq.SetConfig

	var sens *sensors.Listener
	if cfg.Sensors.Listen != "" {
		sens, err = sensors.Listen(cfg.Sensors.Listen, func(r wire.SensorReading) {
			if c, ok := cams.watching(r.FacilityID); ok && r.FacilityID != "" {
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
	run("config", func() error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case p := <-pushes:
				rc.apply(p) // refusals are logged and reported in the status
			case <-reloads:
				rc.reload() // the same
			}
		}
	})
	tel := &telemetry{cfg: cfg, outbox: ob, evidence: ev, cams: cams, sensors: sens, start: time.Now()}
	run("telemetry", func() error { return tel.run(ctx) })
	wg.Wait()
	cams.wg.Wait()
	return nil
}
