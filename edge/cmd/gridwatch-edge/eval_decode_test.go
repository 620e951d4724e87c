package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A small run of the decode benchmark: every mode yields the pictures it
// should, the table and the JSON line are there, and the ratios are sane.
// (The numbers themselves come from the full 1080p run, not from tests.)
func TestEvalDecode(t *testing.T) {
	clip := filepath.Join(t.TempDir(), "cam.mp4")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi",
		"-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-c:v", "libx264", "-g", "50", "-bf", "0",
		"-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	for _, c := range []struct {
		name      string
		args      []string
		keyframes int
	}{
		{"synthetic", []string{"--size", "320x240", "--bitrate", "300k", "--gop", "25"}, 2},
		{"file", []string{"--input", clip}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--seconds", "2", "--rounds", "1", "--width", "160", "--json"}, c.args...)
			if err := runEvalDecode(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("eval decode: %v\n%s", err, errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var res map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
			}
			want := map[string]float64{
				"frames": 50, "keyframes": float64(c.keyframes),
				"keyframe_pictures": float64(c.keyframes), "rate2fps_pictures": 4,
				"allframes_pictures": 50, "decodeonly_pictures": 1,
			}
			for k, v := range want {
				if res[k] != v {
					t.Errorf("%s = %v, want %v", k, res[k], v)
				}
			}
			for _, k := range []string{"keyframe_ratio", "rate2fps_ratio", "cameras_per_core_keyframe", "cameras_per_core_2fps", "allframes_ms_per_s"} {
				if v, ok := res[k].(float64); !ok || v <= 0 {
					t.Errorf("%s = %v, want a positive number", k, res[k])
				}
			}
			if !strings.Contains(out.String(), "2 fps at 160 wide") || !strings.Contains(out.String(), "4 at 160x120") {
				t.Errorf("table:\n%s", out.String())
			}
		})
	}
}
