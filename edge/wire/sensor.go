package wire

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Sensors around a box (smart-cover tilt sensors, water-level and gas
// sensors) publish to the box's local MQTT listener:
//
//	topic   sensors/{sensor_id}/reading
//	payload {"v":1,"sensor":"tilt-0007","kind":"cover_tilt","facility_id":"1101050105000123",
//	         "at":"2026-11-27T12:20:00Z","value":31.5,"unit":"deg","alarm":true,"battery":0.82}
//
// The box forwards readings as telemetry and alarms as reports.
const SensorTopicPrefix = "sensors/"

// Sensor kinds.
const (
	SensorCoverTilt  = "cover_tilt"  // tilt/displacement of a smart cover, degrees
	SensorWaterLevel = "water_level" // water in a shaft or an underpass, cm
	SensorGas        = "gas"         // combustible gas in a shaft, % LEL
)

// ReportSensor is a report raised by a sensor alarm alone.
const ReportSensor = "sensor"

// SensorReading is one sensor message.
type SensorReading struct {
	V          int       `json:"v"`
	Sensor     string    `json:"sensor"`
	Kind       string    `json:"kind"`
	FacilityID string    `json:"facility_id,omitempty"`
	At         time.Time `json:"at"`
	Value      float64   `json:"value"`
	Unit       string    `json:"unit"`
	Alarm      bool      `json:"alarm"`
	Battery    float64   `json:"battery,omitempty"` // 0-1
}

var sensorIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate names the first bad field.
func (s *SensorReading) Validate() error {
	switch {
	case s.V != Version:
		return fmt.Errorf("v: got %d, want %d", s.V, Version)
	case !sensorIDRE.MatchString(s.Sensor):
		return fmt.Errorf("sensor: %q must be 1-64 of [A-Za-z0-9_-]", s.Sensor)
	case s.Kind != SensorCoverTilt && s.Kind != SensorWaterLevel && s.Kind != SensorGas:
		return fmt.Errorf("kind: %q is not cover_tilt, water_level or gas", s.Kind)
	case s.FacilityID != "" && !facilityRE.MatchString(s.FacilityID):
		return fmt.Errorf("facility_id: %q is not a 16-digit part id", s.FacilityID)
	case s.Kind == SensorCoverTilt && s.FacilityID == "":
		return errors.New("facility_id: a cover sensor must name its cover")
	case s.At.IsZero():
		return errors.New("at: missing")
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return errors.New("value: not a number")
	case s.Unit == "" || len(s.Unit) > 16:
		return errors.New("unit: must be 1-16 characters")
	case s.Battery < 0 || s.Battery > 1:
		return fmt.Errorf("battery: %v is outside [0,1]", s.Battery)
	}
	return nil
}

// DecodeSensorReading parses and validates a reading; the topic's sensor id
// must match the payload's.
func DecodeSensorReading(topic string, b []byte) (SensorReading, error) {
	id, ok := strings.CutPrefix(topic, SensorTopicPrefix)
	id, ok2 := strings.CutSuffix(id, "/reading")
	if !ok || !ok2 || strings.Contains(id, "/") {
		return SensorReading{}, fmt.Errorf("sensor topic %q: want sensors/{sensor_id}/reading", topic)
	}
	var s SensorReading
	if err := decodeStrict(b, &s); err != nil {
		return SensorReading{}, fmt.Errorf("sensor reading: %w", err)
	}
	if err := s.Validate(); err != nil {
		return SensorReading{}, fmt.Errorf("sensor reading: %w", err)
	}
	if s.Sensor != id {
		return SensorReading{}, fmt.Errorf("sensor reading: sensor %q published on %q's topic", s.Sensor, id)
	}
	return s, nil
}
