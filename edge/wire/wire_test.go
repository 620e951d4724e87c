package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoldenReportsRoundTrip(t *testing.T) {
	for _, name := range []string{"report-cover-new.json", "report-cover-end.json", "report-occupation-new.json", "report-change-new.json", "report-sensor-new.json"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeReport(b)
			if err != nil {
				t.Fatalf("golden file does not decode: %v", err)
			}
			out, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(b)) {
				t.Errorf("re-encoding differs from the golden file:\n%s", out)
			}
		})
	}
}

func TestGoldenStatus(t *testing.T) {
	for name, online := range map[string]bool{"status-online.json": true, "status-offline.json": false} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		s, err := DecodeStatus(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Online != online {
			t.Errorf("%s: online = %v", name, s.Online)
		}
	}
}

func TestBadReports(t *testing.T) {
	want := map[string]string{
		"wrong-version.json":        "v: got 2",
		"unknown-field.json":        `unknown field "extra"`,
		"bad-facility.json":         "facility_id",
		"zero-seq.json":             "seq",
		"wildcard-device.json":      "device",
		"bad-phase.json":            "phase",
		"not-json.json":             "invalid character",
		"object-without-score.json": "object_score: 0 must be in (0,1] with an object",
		"object-on-cover.json":      "object: only occupation reports",
	}
	for name, msg := range want {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "bad", name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeReport(b)
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Fatalf("got error %v, want one containing %q", err, msg)
			}
		})
	}
}

func TestTopics(t *testing.T) {
	tests := []struct {
		topic, device, kind string
		ok                  bool
	}{
		{Topic("box-1", KindReport), "box-1", KindReport, true},
		{"gridwatch/v1/dev/box-1/status", "box-1", KindStatus, true},
		{"gridwatch/v1/dev/+/report", "", "", false},
		{"gridwatch/v1/dev/box-1/report/x", "", "", false},
		{"other/box-1/report", "", "", false},
	}
	for _, tt := range tests {
		d, k, err := ParseTopic(tt.topic)
		if (err == nil) != tt.ok || d != tt.device || k != tt.kind {
			t.Errorf("ParseTopic(%q) = %q, %q, %v", tt.topic, d, k, err)
		}
	}
}

func FuzzDecodeReport(f *testing.F) {
	for _, p := range []string{"testdata/report-cover-new.json", "testdata/report-cover-end.json", "testdata/bad/unknown-field.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(b)
		if err != nil {
			return
		}
		// Anything accepted must survive a round trip and still validate.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeReport(out); err != nil {
			t.Fatalf("accepted report fails after re-encoding: %v\n%s", err, out)
		}
	})
}

func TestGoldenTelemetryAndCommand(t *testing.T) {
	b, err := os.ReadFile("testdata/telemetry.json")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := DecodeTelemetry(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.MarshalIndent(tm, "", "  ")
	if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(b)) {
		t.Errorf("telemetry re-encoding differs:\n%s", out)
	}
	b, err = os.ReadFile("testdata/command-replay.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCommand(b)
	if err != nil || c.Cmd != CmdReplay || c.FromSeq != 40 {
		t.Fatalf("command = %+v, %v", c, err)
	}
	bad := []struct{ json, msg string }{
		{`{"v":1,"id":"x","cmd":"replay","at":"2026-11-27T12:21:00Z"}`, "from_seq"},
		{`{"v":1,"id":"x","cmd":"reboot","at":"2026-11-27T12:21:00Z"}`, "cmd"},
		{`{"v":1,"id":"x","cmd":"enrol","camera":"cam1","facility_id":"1","at":"2026-11-27T12:21:00Z"}`, "facility_id"},
	}
	for _, tt := range bad {
		if _, err := DecodeCommand([]byte(tt.json)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want error naming %s", tt.json, err, tt.msg)
		}
	}
}

func TestSensorReadings(t *testing.T) {
	good, err := os.ReadFile("testdata/sensor-tilt.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeSensorReading("sensors/tilt-0007/reading", good)
	if err != nil || !s.Alarm || s.FacilityID != "1101050105000123" {
		t.Fatalf("%+v, %v", s, err)
	}
	tests := []struct{ topic, body, msg string }{
		{"sensors/tilt-0008/reading", string(good), "published on"},
		{"sensors/tilt-0007", string(good), "want sensors/"},
		{"sensors/a/b/reading", string(good), "want sensors/"},
		{"sensors/g1/reading", `{"v":1,"sensor":"g1","kind":"smoke","at":"2026-11-27T12:00:00Z","value":1,"unit":"%"}`, "kind"},
		{"sensors/t1/reading", `{"v":1,"sensor":"t1","kind":"cover_tilt","at":"2026-11-27T12:00:00Z","value":1,"unit":"deg"}`, "must name its cover"},
		{"sensors/w1/reading", `{"v":1,"sensor":"w1","kind":"water_level","at":"2026-11-27T12:00:00Z","value":1,"unit":"cm","battery":7}`, "battery"},
	}
	for _, tt := range tests {
		if _, err := DecodeSensorReading(tt.topic, []byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s %s: got %v, want error containing %q", tt.topic, tt.body, err, tt.msg)
		}
	}
}

func FuzzDecodeSensorReading(f *testing.F) {
	good, _ := os.ReadFile("testdata/sensor-tilt.json")
	f.Add("sensors/tilt-0007/reading", good)
	f.Fuzz(func(t *testing.T, topic string, b []byte) {
		s, err := DecodeSensorReading(topic, b)
		if err == nil && s.Validate() != nil {
			t.Fatal("accepted an invalid reading")
		}
	})
}

// Commands and telemetry from any bytes decode to a valid message or an error.
func FuzzDecodeCommandAndTelemetry(f *testing.F) {
	for _, name := range []string{"command-replay.json", "command-confirm.json", "command-snapshot.json", "telemetry.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := DecodeCommand(b); err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("decoded command does not validate: %v", err)
			}
		}
		if tm, err := DecodeTelemetry(b); err == nil && ValidDeviceID(tm.Device) != nil {
			t.Fatalf("telemetry accepted for device %q", tm.Device)
		}
	})
}
