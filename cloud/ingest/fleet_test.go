package ingest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

// A second box beside the demo box: one camera watching the sewage cover
// and a vending zone.
const secondBox = `device: box-chaoyang-0002
broker: {url: tcp://127.0.0.1:1884}
cloud: {url: http://127.0.0.1:8080}
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
    lat: 39.9221
    lon: 116.4437
    frame: {w: 1280, h: 720}
    zones:
      - {id: lane-east, rule: no_vending, polygon: [[700, 200], [1200, 200], [1200, 500], [700, 500]], dwell: 30s}
    covers:
      - {facility_id: "1101050102000456", region: {x: 300, y: 520, w: 100, h: 55}}
`

func testFleet(t *testing.T) *registry.Fleet {
	t.Helper()
	dir := t.TempDir()
	demo, err := os.ReadFile(filepath.Join("..", "..", "firmware-config", "demo-box.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"demo-box.yaml": demo, "box-2.yaml": []byte(secondBox)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := registry.LoadFleetDir(dir, registry.Demo())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// With a fleet registry, a report that the fleet does not account for is
// refused into the dead letters (payload kept) before it is stored or opens a
// case; the reason names box, camera and facility or zone.
func TestFleetRefusesUnregisteredReports(t *testing.T) {
	cover := func(t *testing.T) []byte { return golden(t, "report-cover-new.json") }
	occupation := func(t *testing.T) []byte { return golden(t, "report-occupation-new.json") }
	sensor := func(t *testing.T) []byte { return golden(t, "report-sensor-new.json") }
	asDevice := func(b []byte, device string) []byte {
		return bytes.Replace(b, []byte(`"device": "`+goldenDevice+`"`), []byte(`"device": "`+device+`"`), 1)
	}
	tests := []struct {
		name    string
		device  string
		payload func(*testing.T) []byte
		reason  string // "": accepted
	}{
		{
			name: "box not in the fleet", device: "box-chaoyang-0009",
			payload: func(t *testing.T) []byte { return asDevice(cover(t), "box-chaoyang-0009") },
			reason:  "box box-chaoyang-0009 camera cam1 facility 1101050105000123: box box-chaoyang-0009 is not registered",
		},
		{
			name: "camera not registered", device: goldenDevice,
			payload: func(t *testing.T) []byte {
				return bytes.Replace(cover(t), []byte(`"camera": "cam1"`), []byte(`"camera": "cam7"`), 1)
			},
			reason: "box box-chaoyang-0001 camera cam7 facility 1101050105000123: box box-chaoyang-0001 has no registered camera cam7",
		},
		{
			name: "camera not registered to watch the facility", device: "box-chaoyang-0002",
			payload: func(t *testing.T) []byte { return asDevice(cover(t), "box-chaoyang-0002") },
			reason:  "box box-chaoyang-0002 camera cam1 facility 1101050105000123: the camera is not registered to watch facility 1101050105000123",
		},
		{
			name: "zone not one of the camera's", device: goldenDevice,
			payload: occupation,
			reason:  "box box-chaoyang-0001 camera cam1 zone lane-east: lane-east is not one of the camera's registered zones",
		},
		{
			name: "sensor alarm relayed by a box not in the fleet", device: "box-chaoyang-0009",
			payload: func(t *testing.T) []byte { return asDevice(sensor(t), "box-chaoyang-0009") },
			reason:  "box box-chaoyang-0009 sensor tilt-0007: box box-chaoyang-0009 is not registered",
		},
		{name: "registered cover", device: goldenDevice, payload: cover},
		{name: "sensor alarm relayed by a registered box", device: goldenDevice, payload: sensor},
		{
			name: "registered zone", device: "box-chaoyang-0002",
			payload: func(t *testing.T) []byte { return asDevice(occupation(t), "box-chaoyang-0002") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCloud(t)
			c.fleet = testFleet(t)
			c.startIngest()
			p := c.publisher(tt.device)
			c.ready(p)

			payload := tt.payload(t)
			publish(t, p, reportTopic(tt.device), false, payload)
			ctx := context.Background()
			if tt.reason == "" {
				eventually(t, "report accepted", func() bool { return c.in.Stats().Accepted == 1 })
				if dl := c.deadLetters(); len(dl) != 0 {
					t.Errorf("dead letters = %+v, want none", dl)
				}
				if n, _ := c.store.ReportCount(ctx); n != 1 {
					t.Errorf("ReportCount = %d, want 1", n)
				}
				return
			}
			eventually(t, "dead letter", func() bool { return len(c.deadLetters()) > 0 })
			dl := c.deadLetters()
			if len(dl) != 1 || !strings.Contains(dl[0].reason, tt.reason) || dl[0].payload != string(payload) {
				t.Errorf("dead letters = %+v, want the payload with a reason containing %q", dl, tt.reason)
			}
			if cs := c.cases(); len(cs) != 0 {
				t.Errorf("%d cases, want none", len(cs))
			}
			if n, _ := c.store.ReportCount(ctx); n != 0 {
				t.Errorf("ReportCount = %d, want 0", n)
			}
		})
	}
}
