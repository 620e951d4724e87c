package wire

import (
	"errors"
	"fmt"
	"time"
)

// Telemetry is a box's periodic health report. It goes through the outbox
// like a report and carries a sequence number from the same per-device
// sequence, so the cloud's gap detection covers it too.
type Telemetry struct {
	V             int       `json:"v"`
	Device        string    `json:"device"`
	Seq           uint64    `json:"seq"`
	At            time.Time `json:"at"`
	UptimeS       float64   `json:"uptime_s"`
	OutboxDepth   int       `json:"outbox_depth"`
	OutboxDropped uint64    `json:"outbox_dropped"`
	// OutboxKept is how many sent messages the box keeps until the cloud
	// confirms it stored them; OutboxEvicted how many unconfirmed ones it
	// had to give up since it started (a replay can no longer bring them).
	OutboxKept      int            `json:"outbox_kept,omitempty"`
	OutboxEvicted   uint64         `json:"outbox_evicted,omitempty"`
	EvidencePending int            `json:"evidence_pending"`
	DiskFreeBytes   uint64         `json:"disk_free_bytes"`
	CPUTempC        float64        `json:"cpu_temp_c,omitempty"`
	Cameras         []CameraHealth `json:"cameras"`
	// Sensors are the latest readings of the sensors around the box.
	Sensors []SensorReading `json:"sensors,omitempty"`
}

// CameraHealth is one camera's figures over the last telemetry interval.
type CameraHealth struct {
	Camera      string  `json:"camera"`
	Connected   bool    `json:"connected"`
	FPS         float64 `json:"fps"`
	BitrateKbps float64 `json:"bitrate_kbps"`
	KeyframeS   float64 `json:"keyframe_interval_s"`
	Reconnects  uint64  `json:"reconnects"`
	Dropped     uint64  `json:"dropped"`
	DecodeMs    float64 `json:"decode_ms"`
	AnalysisMs  float64 `json:"analysis_ms"`
	// OccupancyFPS is how many pictures a second the occupation detector analysed.
	OccupancyFPS float64 `json:"occupancy_fps,omitempty"`
	Grade        string  `json:"grade"` // good, fair, poor, down
	// Lat and Lon are where the camera stands (from the box's config): the
	// cloud places a device-fault case there.
	Lat float64 `json:"lat,omitempty"`
	Lon float64 `json:"lon,omitempty"`
}

// Validate names the first bad field.
func (t *Telemetry) Validate() error {
	switch {
	case t.V != Version:
		return fmt.Errorf("v: got %d, want %d", t.V, Version)
	case ValidDeviceID(t.Device) != nil:
		return fmt.Errorf("device: %w", ValidDeviceID(t.Device))
	case t.Seq == 0:
		return errors.New("seq: must be >= 1")
	case t.At.IsZero():
		return errors.New("at: missing")
	case t.OutboxDepth < 0 || t.EvidencePending < 0:
		return errors.New("outbox_depth/evidence_pending: negative")
	}
	for i, c := range t.Cameras {
		if c.Camera == "" {
			return fmt.Errorf("cameras[%d].camera: missing", i)
		}
		switch c.Grade {
		case "good", "fair", "poor", "down":
		default:
			return fmt.Errorf("cameras[%d].grade: %q is not good, fair, poor or down", i, c.Grade)
		}
		if c.Lat < -90 || c.Lat > 90 || c.Lon < -180 || c.Lon > 180 {
			return fmt.Errorf("cameras[%d].lat/lon: %v,%v out of range", i, c.Lat, c.Lon)
		}
	}
	return nil
}

// DecodeTelemetry parses and validates telemetry strictly.
func DecodeTelemetry(b []byte) (Telemetry, error) {
	var t Telemetry
	if err := decodeStrict(b, &t); err != nil {
		return Telemetry{}, fmt.Errorf("telemetry: %w", err)
	}
	if err := t.Validate(); err != nil {
		return Telemetry{}, fmt.Errorf("telemetry: %w", err)
	}
	return t, nil
}

// Commands the cloud sends a box on its cmd topic.
const (
	CmdReplay  = "replay"  // re-send every message from FromSeq on
	CmdEnrol   = "enrol"   // take a cover's reference look from the next keyframe
	CmdConfirm = "confirm" // the cloud has stored every message up to UpTo: the box may forget them
)

// Command is a cloud → box instruction. ID lets the box log and de-duplicate.
type Command struct {
	V          int       `json:"v"`
	ID         string    `json:"id"`
	Cmd        string    `json:"cmd"`
	At         time.Time `json:"at"`
	FromSeq    uint64    `json:"from_seq,omitempty"`
	Camera     string    `json:"camera,omitempty"`
	FacilityID string    `json:"facility_id,omitempty"`
	UpTo       uint64    `json:"up_to,omitempty"`
}

// Validate names the first bad field.
func (c *Command) Validate() error {
	switch {
	case c.V != Version:
		return fmt.Errorf("v: got %d, want %d", c.V, Version)
	case c.ID == "" || len(c.ID) > 128:
		return errors.New("id: must be 1-128 characters")
	case c.At.IsZero():
		return errors.New("at: missing")
	}
	switch c.Cmd {
	case CmdReplay:
		if c.FromSeq == 0 {
			return errors.New("from_seq: replay needs a sequence number >= 1")
		}
	case CmdEnrol:
		if c.Camera == "" || !facilityRE.MatchString(c.FacilityID) {
			return errors.New("camera/facility_id: enrol needs a camera and a 16-digit facility id")
		}
	case CmdConfirm:
		if c.UpTo == 0 || c.Camera != "" || c.FacilityID != "" || c.FromSeq != 0 {
			return errors.New("up_to: confirm needs the sequence number >= 1 up to which the cloud has stored everything, and nothing else")
		}
	case CmdReload:
		if c.Camera != "" || c.FacilityID != "" || c.FromSeq != 0 {
			return errors.New("camera/facility_id/from_seq: reload takes no arguments")
		}
	case CmdSnapshot:
		if len(c.Camera) > 64 || c.FacilityID != "" || c.FromSeq != 0 {
			return errors.New("camera: snapshot takes at most a camera id (1-64 characters; empty: every camera)")
		}
	default:
		return fmt.Errorf("cmd: %q is not replay, confirm, enrol, reload or snapshot", c.Cmd)
	}
	return nil
}

// DecodeCommand parses and validates a command strictly.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := decodeStrict(b, &c); err != nil {
		return Command{}, fmt.Errorf("command: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Command{}, fmt.Errorf("command: %w", err)
	}
	return c, nil
}
