package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/rtsp/rtsptest"
	"github.com/gridwatch/gridwatch/edge/sim"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAgentSensorsAndClips runs the agent in-process against a real RTSP
// server playing the simulated street: a tilt alarm on a watched cover
// makes the camera look at once and report with both kinds of evidence; the
// cover going missing is reported with snapshots and then an MP4 clip.
func TestAgentSensorsAndClips(t *testing.T) {
	if testing.Short() {
		t.Skip("plays 20 s of video in real time")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	rtspURL, b := streetAndBroker(t, dir, 22*time.Second)

	// The cloud's evidence endpoint: accept everything, remember the types.
	var mu sync.Mutex
	uploaded := map[string]string{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uploaded[filepath.Base(r.URL.Path)] = r.Header.Get("Content-Type")
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	})}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()

	reports := make(chan wire.Report, 100)
	var occFPS float64 // the highest occupancy analysis rate telemetry reported
	sub0 := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud-telemetry"))
	sub0.Connect().Wait()
	defer sub0.Disconnect(100)
	sub0.Subscribe(wire.TelemetrySubscription, 1, func(_ paho.Client, m paho.Message) {
		tm, err := wire.DecodeTelemetry(m.Payload())
		if err != nil {
			t.Errorf("agent sent invalid telemetry: %v", err)
			return
		}
		mu.Lock()
		for _, c := range tm.Cameras {
			occFPS = max(occFPS, c.OccupancyFPS)
		}
		mu.Unlock()
	}).Wait()
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud"))
	sub.Connect().Wait()
	defer sub.Disconnect(100)
	sub.Subscribe(wire.ReportSubscription, 1, func(_ paho.Client, m paho.Message) {
		r, err := wire.DecodeReport(m.Payload())
		if err != nil {
			t.Errorf("agent sent an invalid report: %v", err)
			return
		}
		reports <- r
	}).Wait()

	sensorAddr := freeAddr(t)
	yaml := fmt.Sprintf(`device: box-test-1
data_dir: %s
broker: {url: %s}
cloud: {url: http://%s}
status_every: 2s
cover_model: %s
sensors: {listen: "%s"}
cameras:
  - id: cam1
    url: %s/cam1
    lat: 39.92195
    lon: 116.44352
    frame: {w: 1280, h: 720}
    zones:
      - {id: lane-east, rule: keep_clear, dwell: 5s, polygon: [[760, 250], [1180, 250], [1180, 370], [760, 370]]}
    covers:
      - {facility_id: "1101050105000123", region: {x: 560, y: 430, w: 120, h: 60}}
      - {facility_id: "1101050102000456", region: {x: 300, y: 520, w: 100, h: 55}}
`, filepath.Join(dir, "edge"), b.URL(), l.Addr(), "../../models/cover-state/manifest.json", sensorAddr, rtspURL)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, cfg, quiet); close(done) }()
	defer func() { cancel(); <-done }()

	// A tilt sensor on the sewage cover alarms while the camera sees it in place.
	time.Sleep(3 * time.Second)
	sens := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + sensorAddr).SetClientID("tilt-0456"))
	if tok := sens.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sens.Disconnect(100)
	alarm := fmt.Sprintf(`{"v":1,"sensor":"tilt-0456","kind":"cover_tilt","facility_id":"1101050102000456","at":"%s","value":28,"unit":"deg","alarm":true}`,
		time.Now().UTC().Format(time.RFC3339))
	sens.Publish("sensors/tilt-0456/reading", 1, false, alarm).Wait()

	var sensorRep, missing, clipRep *wire.Report
	clips := map[string]*wire.Report{} // by event id
	deadline := time.After(60 * time.Second)
	for sensorRep == nil || missing == nil || clipRep == nil {
		select {
		case r := <-reports:
			switch {
			case r.Kind == wire.ReportOccupation:
				// Only passing traffic crosses the zone: it must not start an episode.
				t.Errorf("occupation report from passing traffic: %+v", r)
			case r.Kind == wire.ReportSensor && r.Phase == wire.PhaseNew:
				sensorRep = &r
			case r.Kind == wire.ReportCover && r.Phase == wire.PhaseNew:
				missing = &r
			case r.Phase == wire.PhaseUpdate && len(r.Evidence) == 1 && r.Evidence[0].Kind == wire.EvidenceClip:
				clips[r.ID] = &r
			}
			if missing != nil {
				clipRep = clips[missing.ID]
			}
		case <-deadline:
			t.Fatalf("sensor report %v, missing report %v, clip report %v", sensorRep != nil, missing != nil, clipRep != nil)
		}
	}
	if clips[sensorRep.ID] == nil {
		t.Error("the sensor alarm's report got no clip")
	}
	if sensorRep.FacilityID != "1101050102000456" || sensorRep.Sensor == nil || sensorRep.Sensor.Value != 28 ||
		sensorRep.State != wire.CoverDisplaced || len(sensorRep.Evidence) != 2 {
		t.Errorf("sensor report %+v: want the sewage cover, the reading, state displaced and the camera's snapshots", sensorRep)
	}
	if missing.FacilityID != "1101050105000123" || missing.State != wire.CoverMissing {
		t.Errorf("missing report %+v", missing)
	}
	if clipRep.Evidence[0].ContentType != "video/mp4" || clipRep.Evidence[0].Bytes < 10000 {
		t.Errorf("clip report %+v, want an MP4 for event %s", clipRep, missing.ID)
	}
	mu.Lock()
	if occFPS < 1 {
		t.Errorf("occupancy analysed %.1f pictures/s at best, want about 2 (it must really run)", occFPS)
	}
	mu.Unlock()
	// Every piece of evidence a report names reaches the cloud.
	want := map[string]bool{}
	for _, r := range []*wire.Report{sensorRep, missing, clipRep} {
		for _, e := range r.Evidence {
			want[e.SHA256] = true
		}
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := 0
		for sum := range want {
			for name := range uploaded {
				if len(name) >= 64 && name[:64] == sum {
					n++
				}
			}
		}
		mu.Unlock()
		if n == len(want) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %d evidence files uploaded", n, len(want))
		}
	}
}

// streetAndBroker renders d of the skeleton street (seed 4: the power cover goes missing at
// ~12 s) into dir, serves it as rtsp://…/cam1, and starts an embedded broker; both stop with
// the test.
func streetAndBroker(t *testing.T, dir string, d time.Duration) (rtspURL string, b *broker.Broker) {
	t.Helper()
	sc := sim.Skeleton(4)
	sc.Duration = d
	if _, err := sc.Render(context.Background(), filepath.Join(dir, "cam1.ts"), nil); err != nil {
		t.Fatal(err)
	}
	rtspURL = rtsptest.StartTestServer(t, map[string]string{"cam1": filepath.Join(dir, "cam1.ts")})
	b, err := broker.Start("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return rtspURL, b
}
