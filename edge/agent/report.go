package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/gridwatch/gridwatch/edge/clip"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// reporter turns findings into queued reports with their evidence files.
type reporter struct {
	device   string
	outbox   *outbox.Outbox
	evidence *uplink.Evidence
	log      *slog.Logger
}

// file is one piece of evidence to save.
type file struct {
	kind, ext, contentType string
	data                   []byte
}

// queue saves the evidence files, then the report that names them: a report
// never refers to evidence the box could lose.
func (p *reporter) queue(r wire.Report, files ...file) (uint64, error) {
	for _, f := range files {
		sum, err := p.evidence.Save(f.data, f.ext)
		if err != nil {
			return 0, err
		}
		r.Evidence = append(r.Evidence, wire.Evidence{SHA256: sum, Kind: f.kind, ContentType: f.contentType, Bytes: int64(len(f.data))})
	}
	r.V, r.Device = wire.Version, p.device
	return p.outbox.Append(wire.Topic(p.device, wire.KindReport), func(seq uint64) ([]byte, error) {
		r.Seq = seq
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("refusing to queue an invalid report: %w", err)
		}
		return json.Marshal(r)
	})
}

// clipLater sends, once the ring holds it, the MP4 from `before` ahead of
// the event to `after` it, as an update of the same event.
func (p *reporter) clipLater(ctx context.Context, ring *clip.Ring, r wire.Report, before, after time.Duration) {
	res := <-ring.ClipLater(ctx, r.ObservedAt.Add(-before), r.ObservedAt.Add(after))
	if res.Err != nil {
		if ctx.Err() == nil {
			p.log.Warn("evidence clip not made", "event", r.ID, "err", res.Err)
		}
		return
	}
	r.Phase, r.Evidence = wire.PhaseUpdate, nil
	seq, err := p.queue(r, file{wire.EvidenceClip, ".mp4", "video/mp4", res.MP4})
	if err != nil {
		p.log.Error("clip report not queued", "event", r.ID, "err", err)
		return
	}
	p.log.Info("evidence clip queued", "event", r.ID, "seq", seq, "seconds", res.Duration.Seconds(), "frames", res.Frames, "bytes", len(res.MP4))
}

// sensorOnly reports an alarm from a sensor no camera can look at.
func (p *reporter) sensorOnly(s wire.SensorReading) error {
	r := wire.Report{ID: fmt.Sprintf("sensor-%s-%d", s.Sensor, s.At.Unix()), Phase: wire.PhaseNew, Kind: wire.ReportSensor,
		Camera: "sensor", FacilityID: s.FacilityID, State: sensorState(s), Confidence: 0.5, ObservedAt: s.At.UTC(), Sensor: &s}
	seq, err := p.queue(r)
	if err == nil {
		p.log.Info("sensor report queued", "sensor", s.Sensor, "kind", s.Kind, "facility", s.FacilityID, "seq", seq)
	}
	return err
}

// sensorState is what an alarm claims about a cover before a camera looks.
func sensorState(s wire.SensorReading) string {
	if s.Kind == wire.SensorCoverTilt {
		return wire.CoverDisplaced
	}
	return wire.CoverUnknown
}
