package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// TestReloadFromFile: the reload command re-reads the file and applies it
// the way a push is applied, without rewriting the file.
func TestReloadFromFile(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "box.yaml")
	write := func(s string) { os.WriteFile(path, []byte(s), 0o644) }
	write(fmt.Sprintf(baseYAML, "1", camYAML("cam1", "")))
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
	cam1 := f.cameras()["cam1"]

	v2 := fmt.Sprintf(baseYAML, "2", camYAML("cam1", "")+camYAML("cam2", ""))
	write(v2)
	if err := rc.reload(); err != nil {
		t.Fatal(err)
	}
	if cams := f.cameras(); len(cams) != 2 || cams["cam1"] != cam1 || gotVer != "2" || gotErr != "" {
		t.Fatalf("after reload of v2: %d cameras, cam1 restarted %v, status %q %q", len(cams), cams["cam1"] != cam1, gotVer, gotErr)
	}
	if _, err := os.Stat(path + ".prev"); err == nil {
		t.Fatal("a reload must not rewrite the file or its .prev")
	}

	tests := []struct {
		name, yaml, want string
	}{
		{"bad field", fmt.Sprintf(baseYAML, "3", camYAML("cam1", `, covers: [{facility_id: "12", region: {x: 1, y: 1, w: 20, h: 20}}]`)),
			"cameras[0].covers[0].facility_id"},
		{"camera cannot start", fmt.Sprintf(baseYAML, "4", camYAML("cam1", "")+camYAML("cam3",
			`, covers: [{facility_id: "1101050105000123", region: {x: 1, y: 1, w: 20, h: 20}, reference: /nonexistent.jpg}]`)),
			"rolled back to version 2"},
		{"broker moved", strings.Replace(fmt.Sprintf(baseYAML, "5", camYAML("cam1", "")), "127.0.0.1:1}", "127.0.0.1:2}", 1),
			"broker changed"},
		{"missing CA file", strings.Replace(fmt.Sprintf(baseYAML, "6", camYAML("cam1", "")), "{url: tcp://127.0.0.1:1}",
			"{url: ssl://127.0.0.1:1, tls: {ca: /nonexistent/ca.pem}}", 1), "broker.tls.ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.yaml)
			if err := rc.reload(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload = %v, want an error containing %q", err, tc.want)
			}
			if cams := f.cameras(); len(cams) != 2 || cams["cam1"] != cam1 || gotVer != "2" || !strings.Contains(gotErr, tc.want) {
				t.Fatalf("after a refused reload: %d cameras, status %q %q; want version 2 still running and the reason", len(cams), gotVer, gotErr)
			}
		})
	}
}

// TestSnapshotAndReloadCommands runs the agent on a real RTSP stream and
// broker: a snapshot command brings a fresh frame as a snapshot report with
// its JPEG uploaded; a reload command makes the box run the file's new
// version and say so in its retained status.
func TestSnapshotAndReloadCommands(t *testing.T) {
	debugLog := os.Getenv("GRIDWATCH_TEST_LOG") != ""
	if testing.Short() {
		t.Skip("plays video in real time")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	rtspURL, b := streetAndBroker(t, dir, 20*time.Second)
	var mu sync.Mutex
	uploaded := map[string][]byte{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		uploaded[filepath.Base(r.URL.Path)] = body
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	})}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()

	reports := make(chan wire.Report, 100)
	statuses := make(chan wire.Status, 100)
	cloud := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud"))
	cloud.Connect().Wait()
	defer cloud.Disconnect(100)
	cloud.Subscribe(wire.ReportSubscription, 1, func(_ paho.Client, m paho.Message) {
		if r, err := wire.DecodeReport(m.Payload()); err == nil {
			reports <- r
		} else {
			t.Errorf("invalid report: %v", err)
		}
	}).Wait()
	cloud.Subscribe(wire.StatusSubscription, 1, func(_ paho.Client, m paho.Message) {
		if s, err := wire.DecodeStatus(m.Payload()); err == nil {
			statuses <- s
		}
	}).Wait()
	command := func(c wire.Command) {
		c.V, c.At = wire.Version, time.Now().UTC()
		b, _ := json.Marshal(c)
		cloud.Publish(wire.Topic("box-snap-1", wire.KindCommand), 1, false, b).Wait()
	}

	path := filepath.Join(dir, "box.yaml")
	yaml := func(ver string) string {
		return fmt.Sprintf(`device: box-snap-1
version: "%s"
data_dir: %s
broker: {url: %s}
cloud: {url: http://%s}
cameras:
  - {id: cam1, url: %s/cam1, lat: 39.92195, lon: 116.44352}
`, ver, filepath.Join(dir, "edge"), b.URL(), l.Addr(), rtspURL)
	}
	os.WriteFile(path, []byte(yaml("1")), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	agentLog := quiet
	if debugLog {
		agentLog = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	go func() { Run(ctx, cfg, agentLog); close(done) }()
	defer func() { cancel(); <-done }()
	waitStatus := func(what string, ok func(wire.Status) bool) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case s := <-statuses:
				if ok(s) {
					return
				}
			case <-deadline:
				t.Fatalf("no status with %s", what)
			}
		}
	}
	waitStatus("the box online", func(s wire.Status) bool { return s.Online && s.ConfigVer == "1" })

	command(wire.Command{ID: "cmd-snap-1", Cmd: wire.CmdSnapshot, Camera: "cam1"})
	var snap wire.Report
	for deadline := time.After(15 * time.Second); snap.Kind == ""; {
		select {
		case r := <-reports:
			if r.Kind == wire.ReportSnapshot {
				snap = r
			}
		case <-deadline:
			t.Fatal("no snapshot report within 15 s")
		}
	}
	if snap.Camera != "cam1" || !strings.Contains(snap.ID, "cmd-snap-1") || len(snap.Evidence) != 1 || snap.Evidence[0].Kind != wire.EvidenceSnapshot {
		t.Fatalf("snapshot report %+v", snap)
	}
	sum := snap.Evidence[0].SHA256
	var img []byte
	for deadline := time.Now().Add(10 * time.Second); img == nil; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		img = uploaded[sum]
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the snapshot JPEG was not uploaded")
		}
	}
	pic, err := jpeg.Decode(bytes.NewReader(img))
	if err != nil || pic.Bounds().Dx() != 1280 || pic.Bounds().Dy() != 720 {
		t.Fatalf("snapshot is not a 1280x720 JPEG: %v", err)
	}

	os.WriteFile(path, []byte(yaml("2")), 0o644)
	command(wire.Command{ID: "cmd-reload-1", Cmd: wire.CmdReload})
	waitStatus("config_version 2 after reload", func(s wire.Status) bool { return s.Online && s.ConfigVer == "2" && s.ConfigError == "" })
}
