package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/wire"
)

const baseYAML = `device: box-1
version: "%s"
broker: {url: tcp://127.0.0.1:1}
cloud: {url: http://127.0.0.1:1}
cameras:
%s`

func camYAML(id, extra string) string {
	return fmt.Sprintf("  - {id: %s, url: rtsp://127.0.0.1:1/%s%s}\n", id, id, extra)
}

func TestConfigPushAppliesAndRollsBack(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	path := filepath.Join(dir, "box.yaml")
	v1 := fmt.Sprintf(baseYAML, "1", camYAML("cam1", ""))
	os.WriteFile(path, []byte(v1), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rep := &reporter{device: "box-1", log: quiet}
	f := newFleet(ctx, func(c config.Camera) *camera { return newCamera(c, rep, nil, quiet) }, quiet)
	defer func() { cancel(); f.wg.Wait() }()
	f.apply(cfg.Cameras)
	var gotVer, gotErr string
	rc := &reconfigurer{cur: cfg, fleet: f, log: quiet, settle: 2 * time.Second,
		status: func(v, e string) { gotVer, gotErr = v, e }}
	push := func(ver, yaml string) error {
		return rc.apply(wire.ConfigPush{V: 1, Version: ver, At: time.Now(), YAML: yaml})
	}
	cam1 := f.cameras()["cam1"]

	// v2 adds a camera: cam1 keeps streaming (same object), cam2 starts.
	v2 := fmt.Sprintf(baseYAML, "2", camYAML("cam1", "")+camYAML("cam2", ""))
	if err := push("2", v2); err != nil {
		t.Fatal(err)
	}
	if cams := f.cameras(); len(cams) != 2 || cams["cam1"] != cam1 || gotVer != "2" || gotErr != "" {
		t.Fatalf("after v2: %d cameras, cam1 restarted %v, status %q %q", len(cams), cams["cam1"] != cam1, gotVer, gotErr)
	}
	if b, _ := os.ReadFile(path); string(b) != v2 {
		t.Fatal("v2 not saved to the config file")
	}
	if b, _ := os.ReadFile(path + ".prev"); string(b) != v1 {
		t.Fatal("v1 not kept as .prev")
	}

	// v3's new camera cannot start (its reference image is missing): roll back to v2.
	v3 := fmt.Sprintf(baseYAML, "3", camYAML("cam1", "")+camYAML("cam3",
		`, covers: [{facility_id: "1101050105000123", region: {x: 1, y: 1, w: 20, h: 20}, reference: /nonexistent.jpg}]`))
	if err := push("3", v3); err == nil || !strings.Contains(err.Error(), "rolled back to version 2") {
		t.Fatalf("v3: %v", err)
	}
	if cams := f.cameras(); len(cams) != 2 || cams["cam2"] == nil || cams["cam1"] != cam1 || gotVer != "2" || !strings.Contains(gotErr, "nonexistent") {
		t.Fatalf("after v3: cameras %v, status %q %q", len(cams), gotVer, gotErr)
	}
	if b, _ := os.ReadFile(path); string(b) != v2 {
		t.Fatal("a rolled-back config was saved")
	}

	// v4 moves the broker: that needs a restart, not a live change.
	v4 := strings.Replace(fmt.Sprintf(baseYAML, "4", camYAML("cam1", "")), "127.0.0.1:1}", "127.0.0.1:2}", 1)
	if err := push("4", v4); err == nil || !strings.Contains(err.Error(), "broker changed") {
		t.Fatalf("v4: %v", err)
	}
	// A broken YAML is refused with the field named.
	if err := push("5", "device: box-1\nbogus: 1\n"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("v5: %v", err)
	}
	// The retained push of the running version is a no-op.
	if err := push("2", v2); err != nil || gotVer != "2" {
		t.Fatalf("re-push of v2: %v", err)
	}
}
