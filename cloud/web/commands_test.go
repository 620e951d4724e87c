package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/command"
	"github.com/gridwatch/gridwatch/cloud/web"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// TestDeviceCommands sends snapshot and reload through the API and a real
// broker to where the box listens.
func TestDeviceCommands(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Start("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	box := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("edge-box-7"))
	if tok := box.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer box.Disconnect(100)
	got := make(chan wire.Command, 8)
	box.Subscribe(wire.Topic("box-7", wire.KindCommand), 1, func(_ mqtt.Client, m mqtt.Message) {
		c, err := wire.DecodeCommand(m.Payload())
		if err != nil {
			t.Errorf("the box got an invalid command: %v", err)
			return
		}
		got <- c
	}).Wait()
	sender := command.Dial(b.URL(), "cloud-commands", quiet)
	defer sender.Close()
	s := newServer(t)
	s.Commands = sender
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := post(t, s, "/api/v1/devices/box-7/commands", "demo-admin", `{"kind":"reload"}`); r.code == 202 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("reload = %d %s", r.code, r.body)
		}
	}
	if c := <-got; c.Cmd != wire.CmdReload || c.ID == "" {
		t.Fatalf("box got %+v", c)
	}

	tests := []struct {
		name, token, body string
		code              int
		want              string // in the error, or the camera the box gets
	}{
		{"snapshot of one camera", "demo-admin", `{"kind":"snapshot","camera":"cam1"}`, 202, "cam1"},
		{"snapshot of every camera", "demo-admin", `{"kind":"snapshot"}`, 202, ""},
		{"not an admin", "demo-verifier", `{"kind":"snapshot"}`, 403, "admin role"},
		{"unknown kind", "demo-admin", `{"kind":"reboot"}`, 400, `kind: "reboot" is not snapshot or reload`},
		{"unknown field", "demo-admin", `{"kind":"snapshot","cam":"x"}`, 400, `unknown field "cam"`},
		{"reload of a camera", "demo-admin", `{"kind":"reload","camera":"cam1"}`, 400, "camera: reload applies to the whole box"},
		{"camera id too long", "demo-admin", `{"kind":"snapshot","camera":"` + strings.Repeat("c", 65) + `"}`, 400, "camera"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s, "/api/v1/devices/box-7/commands", tc.token, tc.body)
			if r.code != tc.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, tc.code)
			}
			if tc.code != 202 {
				var e struct{ Error string }
				if json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %s does not say %q", r.body, tc.want)
				}
				return
			}
			select {
			case c := <-got:
				if c.Cmd != wire.CmdSnapshot || c.Camera != tc.want {
					t.Fatalf("box got %+v", c)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the command did not reach the box")
			}
		})
	}
	select {
	case c := <-got:
		t.Fatalf("a refused request reached the box: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
	if r := post(t, s, "/api/v1/devices/Box!/commands", "demo-admin", `{"kind":"reload"}`); r.code != 400 {
		t.Fatalf("bad device id = %d", r.code)
	}
}

// TestSnapshotReportKeptWithoutCase: the cloud stores a box's snapshot
// report (it is not dead-lettered) and opens no case for it.
func TestSnapshotReportKeptWithoutCase(t *testing.T) {
	s := newServer(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "edge", "wire", "testdata", "report-snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Engine.Apply(context.Background(), r, raw)
	if err != nil || out.Created || out.CaseID != 0 {
		t.Fatalf("Apply snapshot = %+v, %v; want stored, no case", out, err)
	}
	if n, _ := s.Store.ReportCount(context.Background()); n != 1 {
		t.Fatalf("%d reports stored, want the snapshot", n)
	}
	var cs []json.RawMessage
	if resp := do(t, s, "GET", "/api/v1/cases", nil); json.Unmarshal(resp.body, &cs) != nil || len(cs) != 0 {
		t.Fatalf("cases after a snapshot: %s", resp.body)
	}
	// The fleet page lists it under its box, with the picture's address.
	var snaps []struct {
		Camera string `json:"camera"`
		Seq    uint64 `json:"seq"`
		URL    string `json:"url"`
	}
	resp := do(t, s, "GET", "/api/v1/devices/"+r.Device+"/snapshots", nil)
	if err := json.Unmarshal(resp.body, &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %d %s", resp.code, resp.body)
	}
	if got := snaps[0]; got.Camera != r.Camera || got.Seq != r.Seq || got.URL != "/api/v1/evidence/"+r.Evidence[0].SHA256 {
		t.Errorf("snapshot = %+v, want camera %s seq %d evidence %s", got, r.Camera, r.Seq, r.Evidence[0].SHA256)
	}
	if resp := do(t, s, "GET", "/api/v1/devices/other-box/snapshots", nil); resp.code != 200 || string(resp.body) != "[]" {
		t.Errorf("another box's snapshots: %d %s, want []", resp.code, resp.body)
	}
}

func post(t *testing.T, s *web.Server, target, token, body string) response {
	t.Helper()
	req := httptest.NewRequest("POST", target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return doRequest(t, s, req)
}
