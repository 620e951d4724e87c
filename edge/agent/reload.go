package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// switchTo runs next in place of the current config: the parts that need a
// restart of the box must not change, only changed cameras restart, a
// changed camera that cannot start rolls everything back, and yaml (nil: the
// config came from the file itself) is saved once the new cameras run.
func (rc *reconfigurer) switchTo(next *config.Config, version string, yaml []byte) error {
	refused := wire.ConfigPush{Version: version}
	for _, f := range []struct {
		name     string
		old, new any
	}{{"device", rc.cur.Device, next.Device}, {"broker", rc.cur.Broker, next.Broker}, {"cloud", rc.cur.Cloud, next.Cloud},
		{"data_dir", rc.cur.DataDir, next.DataDir}, {"sensors", rc.cur.Sensors, next.Sensors}} {
		if !reflect.DeepEqual(f.old, f.new) {
			return rc.refuse(refused, fmt.Errorf("%s changed: %w", f.name, errNeedsRestart))
		}
	}
	started := rc.fleet.apply(next.Cameras)
	if err := rc.fleet.failedEarly(started, rc.settle); err != nil {
		rc.fleet.apply(rc.cur.Cameras)
		return rc.refuse(refused, fmt.Errorf("rolled back to version %s: %w", rc.cur.Version, err))
	}
	if rc.cur.Path != "" && yaml != nil {
		if err := persist(rc.cur.Path, yaml); err != nil {
			rc.fleet.apply(rc.cur.Cameras)
			return rc.refuse(refused, fmt.Errorf("rolled back to version %s: save: %w", rc.cur.Version, err))
		}
	}
	rc.log.Info("config applied", "version", next.Version, "previous", rc.cur.Version, "cameras_restarted", started)
	rc.cur = next
	rc.status(next.Version, "")
	return nil
}

// reload answers the reload command: the config file is read again, checked
// like at start (files included), and applied like a pushed config, except
// that the file is not rewritten. The cover model is not reloaded live.
func (rc *reconfigurer) reload() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.cur.Path == "" {
		return rc.refuse(wire.ConfigPush{Version: rc.cur.Version}, fmt.Errorf("reload: the box runs a config that has no file"))
	}
	next, err := config.Load(rc.cur.Path)
	if err != nil {
		return rc.refuse(wire.ConfigPush{Version: "(file)"}, fmt.Errorf("reload: %w", err))
	}
	next.CoverModel = rc.cur.CoverModel
	rc.log.Info("reloading the config file", "path", rc.cur.Path, "version", next.Version)
	return rc.switchTo(next, next.Version, nil)
}

// snapshot queues a fresh clean frame of the camera as a snapshot report
// with its JPEG as evidence (the answer to the snapshot command).
func (c *camera) snapshot(frame gocv.Mat, cmdID string, at time.Time) error {
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, frame)
	if err != nil {
		return fmt.Errorf("snapshot: encode: %w", err)
	}
	jpeg := bytes.Clone(buf.GetBytes())
	buf.Close()
	id := "snapshot-" + cmdID + "-" + c.cfg.ID
	if len(id) > 128 {
		id = id[:128]
	}
	r := wire.Report{ID: id, Phase: wire.PhaseNew, Kind: wire.ReportSnapshot, Camera: c.cfg.ID,
		ObservedAt: at.UTC(), Lat: c.cfg.Lat, Lon: c.cfg.Lon}
	seq, err := c.rep.queue(r, file{wire.EvidenceSnapshot, ".jpg", "image/jpeg", jpeg})
	if err != nil {
		return err
	}
	c.log.Info("snapshot queued", "command", cmdID, "seq", seq, "bytes", len(jpeg))
	return nil
}

// requestSnapshot asks for a snapshot from the next keyframe.
func (c *camera) requestSnapshot(cmdID string) {
	c.mu.Lock()
	c.snaps = append(c.snaps, cmdID)
	c.mu.Unlock()
}

// requestSnapshots hands a snapshot command to the camera it names, or to
// every camera when it names none.
func requestSnapshots(cams map[string]*camera, cmd wire.Command, log *slog.Logger) {
	if cmd.Camera == "" {
		for _, c := range cams {
			c.requestSnapshot(cmd.ID)
		}
		return
	}
	c, ok := cams[cmd.Camera]
	if !ok {
		log.Warn("snapshot: unknown camera", "camera", cmd.Camera, "command", cmd.ID)
		return
	}
	c.requestSnapshot(cmd.ID)
}
