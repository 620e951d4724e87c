package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoldenSnapshotAndCommands(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "report-snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeReport(b)
	if err != nil {
		t.Fatalf("golden snapshot does not decode: %v", err)
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(b)) {
		t.Errorf("re-encoding differs from the golden file:\n%s", out)
	}
	for name, want := range map[string]Command{
		"command-snapshot.json": {Cmd: CmdSnapshot, Camera: "cam1"},
		"command-reload.json":   {Cmd: CmdReload},
		"command-confirm.json":  {Cmd: CmdConfirm, UpTo: 4211},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := DecodeCommand(b)
		if err != nil || c.Cmd != want.Cmd || c.Camera != want.Camera || c.UpTo != want.UpTo {
			t.Errorf("%s: %+v, %v", name, c, err)
		}
	}
}

func TestBadSnapshotsAndCommands(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join("testdata", "report-snapshot.json"))
	tests := []struct {
		name   string
		change func(*Report)
		msg    string
	}{
		{"a finding", func(r *Report) { r.State = CoverMissing }, "a snapshot reports no finding"},
		{"a cover", func(r *Report) { r.FacilityID = "1101050105000123" }, "a snapshot reports no finding"},
		{"no image", func(r *Report) { r.Evidence = nil }, "evidence: a snapshot report needs a snapshot image"},
		{"an end", func(r *Report) { r.Phase = PhaseEnd }, "phase: a snapshot is always new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			if err := json.Unmarshal(good, &r); err != nil {
				t.Fatal(err)
			}
			tt.change(&r)
			b, _ := json.Marshal(r)
			if _, err := DecodeReport(b); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tt.msg)
			}
		})
	}
	cmds := []struct{ json, msg string }{
		{`{"v":1,"id":"x","cmd":"reload","camera":"cam1","at":"2026-11-27T12:21:00Z"}`, "reload takes no arguments"},
		{`{"v":1,"id":"x","cmd":"confirm","at":"2026-11-27T12:21:00Z"}`, "up_to: confirm needs"},
		{`{"v":1,"id":"x","cmd":"confirm","up_to":5,"from_seq":3,"at":"2026-11-27T12:21:00Z"}`, "and nothing else"},
		{`{"v":1,"id":"x","cmd":"snapshot","from_seq":3,"at":"2026-11-27T12:21:00Z"}`, "snapshot takes at most a camera id"},
		{`{"v":1,"id":"x","cmd":"snapshot","camera":"` + strings.Repeat("c", 65) + `","at":"2026-11-27T12:21:00Z"}`, "1-64 characters"},
	}
	for _, tt := range cmds {
		if _, err := DecodeCommand([]byte(tt.json)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want error naming %q", tt.json, err, tt.msg)
		}
	}
	if _, err := DecodeCommand([]byte(`{"v":1,"id":"x","cmd":"snapshot","at":"2026-11-27T12:21:00Z"}`)); err != nil {
		t.Errorf("a snapshot of every camera (no camera) must be valid: %v", err)
	}
}
