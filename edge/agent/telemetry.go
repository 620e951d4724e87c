package agent

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/sensors"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// telemetry sends the box's health every StatusEvery through the outbox (as
// the class dropped first when the outbox is full).
type telemetry struct {
	cfg      *config.Config
	outbox   *outbox.Outbox
	evidence *uplink.Evidence
	cams     *fleet
	sensors  *sensors.Listener // nil without a sensor listener
	start    time.Time
	prev     map[string]camSample
}

type camSample struct {
	at                                   time.Time
	frames, keyframes, bytes, reconnects uint64
	analysed                             uint64
	dropped                              uint64
	decodeNs, decodes, analysisNs, anal  uint64
}

func (t *telemetry) run(ctx context.Context) error {
	t.prev = map[string]camSample{}
	tick := time.NewTicker(t.cfg.StatusEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if err := t.send(now); err != nil {
				return err
			}
		}
	}
}

func (t *telemetry) send(now time.Time) error {
	tm := wire.Telemetry{
		V: wire.Version, Device: t.cfg.Device, At: now.UTC(), UptimeS: now.Sub(t.start).Seconds(),
		OutboxDepth: t.outbox.Len(), OutboxDropped: sum(t.outbox.Dropped()),
		OutboxKept: t.outbox.Kept(), OutboxEvicted: t.outbox.Evicted(),
		EvidencePending: t.evidence.Pending(), DiskFreeBytes: diskFree(t.cfg.DataDir), CPUTempC: cpuTemp(),
	}
	cams := t.cams.cameras()
	ids := make([]string, 0, len(cams))
	for id := range cams {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		tm.Cameras = append(tm.Cameras, t.camera(cams[id], now))
	}
	if t.sensors != nil {
		tm.Sensors = t.sensors.Latest()
	}
	_, err := t.outbox.AppendClass(outbox.Telemetry, wire.Topic(t.cfg.Device, wire.KindTelemetry), func(seq uint64) ([]byte, error) {
		tm.Seq = seq
		return json.Marshal(tm)
	})
	return err
}

func (t *telemetry) camera(c *camera, now time.Time) wire.CameraHealth {
	cur := camSample{at: now, frames: c.frames.Load(), keyframes: c.keyframes.Load(), analysed: c.analysed.Load(),
		decodeNs: c.decodeNs.Load(), decodes: c.decodes.Load(), analysisNs: c.analysisNs.Load(), anal: c.analyses.Load()}
	h := wire.CameraHealth{Camera: c.cfg.ID, Grade: "down", Lat: c.cfg.Lat, Lon: c.cfg.Lon}
	if st := c.stream.Load(); st != nil {
		s := st.Stats()
		cur.bytes, cur.reconnects, cur.dropped = s.Bytes, s.Reconnects, s.Dropped
		h.Connected, h.Reconnects, h.Dropped = s.Connected, s.Reconnects, s.Dropped
	}
	prev, ok := t.prev[c.cfg.ID]
	t.prev[c.cfg.ID] = cur
	if !ok || cur.frames < prev.frames || cur.decodes < prev.decodes {
		prev = camSample{at: t.start} // first sample, or the camera was restarted by a new config
	}
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return h
	}
	h.FPS = float64(cur.frames-prev.frames) / dt
	h.OccupancyFPS = float64(cur.analysed-prev.analysed) / dt
	h.BitrateKbps = float64(cur.bytes-prev.bytes) * 8 / 1000 / dt
	if k := cur.keyframes - prev.keyframes; k > 0 {
		h.KeyframeS = dt / float64(k)
	}
	if n := cur.decodes - prev.decodes; n > 0 {
		h.DecodeMs = float64(cur.decodeNs-prev.decodeNs) / float64(n) / 1e6
	}
	if n := cur.anal - prev.anal; n > 0 {
		h.AnalysisMs = float64(cur.analysisNs-prev.analysisNs) / float64(n) / 1e6
	}
	h.Grade = grade(h, cur.reconnects-prev.reconnects, cur.dropped-prev.dropped)
	return h
}

// grade condenses a camera's health for the fleet page: down when not
// streaming, poor when it reconnected in the interval or sends less than one
// keyframe every 10 s, fair when it dropped units, else good.
func grade(h wire.CameraHealth, reconnects, dropped uint64) string {
	switch {
	case !h.Connected || h.FPS == 0:
		return "down"
	case reconnects > 0 || h.KeyframeS == 0 || h.KeyframeS > 10:
		return "poor"
	case dropped > 0:
		return "fair"
	default:
		return "good"
	}
}

func sum(m map[outbox.Class]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func diskFree(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// cpuTemp reads the SoC temperature where the kernel exposes it (ARM boxes do).
func cpuTemp() float64 {
	b, err := os.ReadFile("/sys/class/thermal/thermal_zone0/temp")
	if err != nil {
		return 0
	}
	milli, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0
	}
	return milli / 1000
}
