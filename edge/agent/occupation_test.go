package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/detect/onnxtest"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
	"github.com/gridwatch/gridwatch/models"
)

// TestOccupationReportNamesTheObject feeds the occupation path of a camera
// with a detector 320×180 analysis pictures of a street in which a red
// striped block (a "vehicle" to the test model) stops in a no-parking zone. The
// episode's report must carry the detector's label and score; the same
// scene on a camera without a detector must not.
func TestOccupationReportNamesTheObject(t *testing.T) {
	dir := t.TempDir()
	// The test model at input 320, stride 16: the 320×180 picture is
	// letterboxed with 70 rows above, so a 48×48 block at (160, 90) fills
	// 3×3 whole cells.
	model, err := onnxtest.Build(onnxtest.Spec{Input: 320, Stride: 16, Classes: 2, Layout: "yolov8"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "city.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		detector string
		want     string
	}{
		{"with detector", fmt.Sprintf("    detector: {model: city.onnx, sha256: %s, input: 320, layout: yolov8, classes: [vehicle, stall]}\n", models.Sum(model)), "vehicle"},
		{"without detector", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := occupationScene(t, dir, tt.detector)
			t.Logf("report: zone %s box %v share %.2f object %q score %v", r.Zone, r.Box, r.Share, r.Object, r.ObjectScore)
			if r.Object != tt.want {
				t.Fatalf("report object %q (score %v), want %q: %+v", r.Object, r.ObjectScore, tt.want, r)
			}
			if tt.want != "" && (r.ObjectScore < 0.6 || r.ObjectScore > 1) {
				t.Errorf("object score %v, want the test model's ≈0.8", r.ObjectScore)
			}
		})
	}
}

// occupationScene runs the scene through a camera configured with the
// given detector YAML and returns the first occupation report it queued.
func occupationScene(t *testing.T, dir, detectorYAML string) wire.Report {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("DEBUGOCC") != "" {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	y := `device: box-test-1
broker: {url: tcp://127.0.0.1:1}
cloud: {url: http://127.0.0.1:1}
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:1/cam1
    frame: {w: 320, h: 180}
    occupancy: {fps: 2, width: 320}
    zones:
      - {id: lane, rule: no_parking, dwell: 5s, polygon: [[130, 70], [240, 70], [240, 160], [130, 160]]}
` + detectorYAML
	path := filepath.Join(dir, "box.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ob, err := outbox.Open(filepath.Join(data, "outbox"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := uplink.OpenEvidence(filepath.Join(data, "evidence"), cfg.Cloud.URL, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cam := newCamera(cfg.Cameras[0], &reporter{device: cfg.Device, outbox: ob, evidence: ev, log: quiet}, nil, quiet)
	occ, err := newOccupation(cam)
	if err != nil {
		t.Fatal(err)
	}
	defer occ.close()
	if (occ.objects != nil) != (detectorYAML != "") {
		t.Fatalf("detector loaded: %v", occ.objects != nil)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const w, h = 320, 180
	rng := rand.New(rand.NewPCG(5, 5))
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for k := 0; k < 2*45; k++ { // 45 s at 2 fps; the block drives in from the left from 12 s and stops at 15 s
		f := make([]byte, w*h*3)
		left := 160 - max(0, 30-k)*30 // 30 pixels a picture
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := 90 + (x+2*y)%23 + rng.IntN(5)
				px := [3]int{v, v + 2, v + 4}
				if k >= 24 && x >= left && x < left+48 && y >= 90 && y < 138 {
					px = [3]int{20 + rng.IntN(5), 20, 225} // BGR: red
					if ((x-left)/4+(y-90)/6)%3 == 0 {
						// Lighter red stripes: the occupancy detector does
						// not see the inside of a flat object move.
						px = [3]int{60, 60, 255}
					}
				}
				for c := 0; c < 3; c++ {
					f[(y*w+x)*3+c] = byte(px[c])
				}
			}
		}
		occ.analyse(ctx, f, w, h, t0.Add(time.Duration(k)*time.Second/2))
	}
	if ob.Len() == 0 {
		t.Fatal("no occupation report was queued")
	}
	got := make(chan wire.Report, 16)
	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	done := make(chan struct{})
	// The outbox must have stopped moving files before the test's directories go.
	defer func() { stop(); <-done }()
	go func() {
		defer close(done)
		ob.Run(runCtx, func(ctx context.Context, m outbox.Message) error {
			var r wire.Report
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				t.Error(err)
			}
			select {
			case got <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for {
		select {
		case r := <-got:
			if r.Kind == wire.ReportOccupation && r.Phase == wire.PhaseNew {
				if r.Zone != "lane" || r.Rule != "no_parking" || len(r.Evidence) != 2 {
					t.Errorf("report %+v: want zone lane, no_parking, two snapshots", r)
				}
				return r
			}
		case <-runCtx.Done():
			t.Fatal("no new occupation report came out of the outbox")
		}
	}
}
