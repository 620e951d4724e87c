// Package wire owns the MQTT topics and JSON payloads that edge boxes and the
// cloud exchange. Both sides import it, and both sides' tests read the golden
// examples in testdata/, so a change to the protocol shows up on both at once.
//
// Every payload carries "v" (the protocol version). Decoding is strict: unknown
// fields, a wrong version or a missing required field is an error that names
// the field, so a malformed message can be dead-lettered with a clear reason.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Version is the protocol version this package speaks.
const Version = 1

// TopicRoot prefixes every gridwatch topic.
const TopicRoot = "gridwatch/v1"

// Topic kinds under gridwatch/v1/dev/{device}/.
const (
	KindReport    = "report"    // detections: new / update / end (QoS 1)
	KindStatus    = "status"    // online/offline, retained, also the last will
	KindTelemetry = "telemetry" // periodic health figures
	KindCommand   = "cmd"       // cloud → box commands
	KindConfig    = "config"    // cloud → box device config, retained
)

// ReportSubscription matches every device's reports.
const ReportSubscription = TopicRoot + "/dev/+/" + KindReport

// StatusSubscription matches every device's status.
const StatusSubscription = TopicRoot + "/dev/+/" + KindStatus

// TelemetrySubscription matches every device's telemetry.
const TelemetrySubscription = TopicRoot + "/dev/+/" + KindTelemetry

// Topic returns the topic of the given kind for a device.
func Topic(device, kind string) string {
	return TopicRoot + "/dev/" + device + "/" + kind
}

// ParseTopic splits a device topic into device id and kind.
func ParseTopic(topic string) (device, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/dev/")
	if !ok {
		return "", "", fmt.Errorf("topic %q: not under %s/dev/", topic, TopicRoot)
	}
	device, kind, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(kind, "/") {
		return "", "", fmt.Errorf("topic %q: want %s/dev/{device}/{kind}", topic, TopicRoot)
	}
	if err := ValidDeviceID(device); err != nil {
		return "", "", fmt.Errorf("topic %q: %w", topic, err)
	}
	return device, kind, nil
}

var deviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidDeviceID reports whether id can name a device (lower-case letters,
// digits and dashes; it appears in topics, so no MQTT wildcards).
func ValidDeviceID(id string) error {
	if !deviceRE.MatchString(id) {
		return fmt.Errorf("device id %q: want 1-63 of [a-z0-9-], starting with a letter or digit", id)
	}
	return nil
}

// Phase is where a report stands in its event's life.
type Phase string

const (
	PhaseNew    Phase = "new"
	PhaseUpdate Phase = "update"
	PhaseEnd    Phase = "end"
)

// Report kinds.
const (
	ReportCover      = "cover"      // a registered cover's state changed
	ReportOccupation = "occupation" // something dwells in a no-occupation zone
	ReportChange     = "change"     // imagery comparison: something changed between two dates
)

// Cover states.
const (
	CoverPresent   = "present"
	CoverMissing   = "missing" // missing or open
	CoverDisplaced = "displaced"
	CoverOccluded  = "occluded"
	CoverUnknown   = "unknown"
)

// Evidence kinds.
const (
	EvidenceSnapshot  = "snapshot"  // the clean best frame, JPEG
	EvidenceAnnotated = "annotated" // the same frame with regions drawn, JPEG
	EvidenceClip      = "clip"      // MP4 from before to after the event
	EvidenceBefore    = "before"    // imagery: the earlier date's crop, JPEG
	EvidenceAfter     = "after"     // imagery: the later date's crop, JPEG
)

// Evidence references a file uploaded to the cloud, addressed by its sha256.
type Evidence struct {
	SHA256      string `json:"sha256"`
	Kind        string `json:"kind"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
}

// Report is one detection message. ID is stable across the new, update and
// end messages of one event; Seq is the device's monotonic sequence number,
// unique per device, so (Device, Seq) identifies a message for idempotency.
type Report struct {
	V          int        `json:"v"`
	Device     string     `json:"device"`
	Seq        uint64     `json:"seq"`
	ID         string     `json:"id"`
	Phase      Phase      `json:"phase"`
	Kind       string     `json:"kind"`
	Camera     string     `json:"camera"`
	FacilityID string     `json:"facility_id,omitempty"`
	Zone       string     `json:"zone,omitempty"`
	State      string     `json:"state"`
	Confidence float64    `json:"confidence"`
	ObservedAt time.Time  `json:"observed_at"`
	Lat        float64    `json:"lat,omitempty"`
	Lon        float64    `json:"lon,omitempty"`
	Evidence   []Evidence `json:"evidence,omitempty"`
	// Sensor is the sensor alarm behind the report, when there is one: a
	// cover report checked by the camera because a tilt sensor alarmed
	// carries both kinds of evidence.
	Sensor *SensorReading `json:"sensor,omitempty"`
	// Occupation episodes: the zone's rule, the extent of what stays as
	// [x, y, w, h] in full-frame pixels, and the share of the zone it covers.
	Rule  string  `json:"rule,omitempty"`
	Box   []int   `json:"box,omitempty"`
	Share float64 `json:"share,omitempty"`
	// Imagery changes: the case category to file under (an event code), the
	// changed polygon (WGS84 lon/lat ring) and its ground area.
	Category string       `json:"category,omitempty"`
	Polygon  [][2]float64 `json:"polygon,omitempty"`
	AreaM2   float64      `json:"area_m2,omitempty"`
	// Object is what the camera's own object detector (edge/detect) saw
	// occupying the zone, when it has one and a detection overlaps the box:
	// one of the city's labels ("vehicle", "stall"), with its score.
	Object      string  `json:"object,omitempty"`
	ObjectScore float64 `json:"object_score,omitempty"`
}

// Status is the retained online/offline message; the box's last will is the
// offline form.
type Status struct {
	V         int       `json:"v"`
	Device    string    `json:"device"`
	Online    bool      `json:"online"`
	At        time.Time `json:"at"`
	Software  string    `json:"software,omitempty"`
	ConfigVer string    `json:"config_version,omitempty"`
	// ConfigError says why the last pushed config was refused or rolled back.
	ConfigError string `json:"config_error,omitempty"`
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lower-case hex sha256.
func ValidSHA256(s string) bool { return sha256RE.MatchString(s) }

var facilityRE = regexp.MustCompile(`^[0-9]{16}$`)

var categoryRE = regexp.MustCompile(`^[0-9]{4}$`)

// Validate checks every field a receiver relies on and names the first bad one.
func (r *Report) Validate() error {
	switch {
	case r.V != Version:
		return fmt.Errorf("v: got %d, want %d", r.V, Version)
	case ValidDeviceID(r.Device) != nil:
		return fmt.Errorf("device: %w", ValidDeviceID(r.Device))
	case r.Seq == 0:
		return errors.New("seq: must be >= 1")
	case r.ID == "" || len(r.ID) > 128:
		return errors.New("id: must be 1-128 characters")
	case r.Phase != PhaseNew && r.Phase != PhaseUpdate && r.Phase != PhaseEnd:
		return fmt.Errorf("phase: %q is not new, update or end", r.Phase)
	case r.Camera == "" || len(r.Camera) > 64:
		return errors.New("camera: must be 1-64 characters")
	case r.Confidence < 0 || r.Confidence > 1:
		return fmt.Errorf("confidence: %v is outside [0,1]", r.Confidence)
	case r.ObservedAt.IsZero():
		return errors.New("observed_at: missing")
	case r.Lat < -90 || r.Lat > 90 || r.Lon < -180 || r.Lon > 180:
		return fmt.Errorf("lat/lon: %v,%v out of range", r.Lat, r.Lon)
	}
	switch r.Kind {
	case ReportCover:
		if !facilityRE.MatchString(r.FacilityID) {
			return fmt.Errorf("facility_id: %q is not a 16-digit part id", r.FacilityID)
		}
		switch r.State {
		case CoverPresent, CoverMissing, CoverDisplaced, CoverOccluded, CoverUnknown:
		default:
			return fmt.Errorf("state: %q is not a cover state", r.State)
		}
	case ReportOccupation:
		if r.Zone == "" {
			return errors.New("zone: required for occupation reports")
		}
		if r.Rule != "keep_clear" && r.Rule != "no_vending" && r.Rule != "no_parking" {
			return fmt.Errorf("rule: %q is not keep_clear, no_vending or no_parking", r.Rule)
		}
		if len(r.Box) != 4 || r.Box[2] <= 0 || r.Box[3] <= 0 {
			return errors.New("box: want [x, y, w, h] with w, h > 0")
		}
		if r.Share < 0 || r.Share > 1 {
			return fmt.Errorf("share: %v is outside [0,1]", r.Share)
		}
		if len(r.Object) > 64 || strings.ContainsAny(r.Object, " \t\r\n") {
			return fmt.Errorf("object: %q must be at most 64 bytes without spaces", r.Object)
		}
		if r.ObjectScore < 0 || r.ObjectScore > 1 || (r.Object == "") != (r.ObjectScore == 0) {
			return fmt.Errorf("object_score: %v must be in (0,1] with an object and absent without", r.ObjectScore)
		}
	case ReportChange:
		if !categoryRE.MatchString(r.Category) {
			return fmt.Errorf("category: %q is not a 4-digit event code", r.Category)
		}
		if len(r.Polygon) < 3 {
			return errors.New("polygon: want at least 3 lon/lat positions")
		}
		for i, p := range r.Polygon {
			if p[0] < -180 || p[0] > 180 || p[1] < -90 || p[1] > 90 {
				return fmt.Errorf("polygon[%d]: %v is not lon/lat", i, p)
			}
		}
		if !(r.AreaM2 > 0) {
			return fmt.Errorf("area_m2: %v, want > 0", r.AreaM2)
		}
	case ReportSnapshot:
		if err := r.validateSnapshot(); err != nil {
			return err
		}
	case ReportSensor:
		if r.Sensor == nil {
			return errors.New("sensor: required for sensor reports")
		}
		if r.FacilityID != "" && r.FacilityID != r.Sensor.FacilityID {
			return fmt.Errorf("facility_id: %s differs from the sensor's %s", r.FacilityID, r.Sensor.FacilityID)
		}
	default:
		return fmt.Errorf("kind: %q is not cover, occupation, sensor or change", r.Kind)
	}
	if r.Kind != ReportOccupation && (r.Object != "" || r.ObjectScore != 0) {
		return errors.New("object: only occupation reports name an object")
	}
	if r.Sensor != nil {
		if err := r.Sensor.Validate(); err != nil {
			return fmt.Errorf("sensor.%w", err)
		}
	}
	for i, e := range r.Evidence {
		if !ValidSHA256(e.SHA256) {
			return fmt.Errorf("evidence[%d].sha256: %q is not a lower-case hex sha256", i, e.SHA256)
		}
		switch e.Kind {
		case EvidenceSnapshot, EvidenceAnnotated, EvidenceClip, EvidenceBefore, EvidenceAfter:
		default:
			return fmt.Errorf("evidence[%d].kind: %q is not snapshot, annotated, clip, before or after", i, e.Kind)
		}
		if e.ContentType == "" {
			return fmt.Errorf("evidence[%d].content_type: missing", i)
		}
	}
	return nil
}

// Validate checks a status message.
func (s *Status) Validate() error {
	switch {
	case s.V != Version:
		return fmt.Errorf("v: got %d, want %d", s.V, Version)
	case ValidDeviceID(s.Device) != nil:
		return fmt.Errorf("device: %w", ValidDeviceID(s.Device))
	case s.At.IsZero():
		return errors.New("at: missing")
	}
	return nil
}

// DecodeReport parses and validates a report strictly.
func DecodeReport(b []byte) (Report, error) {
	var r Report
	if err := decodeStrict(b, &r); err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	if err := r.Validate(); err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	return r, nil
}

// DecodeStatus parses and validates a status message strictly.
func DecodeStatus(b []byte) (Status, error) {
	var s Status
	if err := decodeStrict(b, &s); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return s, nil
}

// MaxPayload bounds every message; larger ones are rejected unread.
const MaxPayload = 64 << 10

func decodeStrict(b []byte, v any) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("payload is %d bytes, limit %d", len(b), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
