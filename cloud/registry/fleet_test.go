package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// box is a valid box config; %s are the device id and the covered facility id.
const boxYAML = `device: %s
broker: {url: tcp://127.0.0.1:1884}
cloud: {url: http://127.0.0.1:8080}
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
    lat: 39.92195
    lon: 116.44352
    frame: {w: 1280, h: 720}
    zones:
      - {id: kerb, rule: keep_clear, polygon: [[0, 0], [100, 0], [100, 100]], dwell: 30s}
    covers:
      - {facility_id: "%s", region: {x: 560, y: 430, w: 120, h: 60}}
`

func boxFile(device, facility string) string {
	return strings.NewReplacer("device: %s", "device: "+device, `"%s"`, `"`+facility+`"`).Replace(boxYAML)
}

func writeFleet(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDemoFleetValidates(t *testing.T) {
	f, err := LoadFleetDir(filepath.Join("..", "..", "firmware-config"), Demo())
	if err != nil {
		t.Fatalf("firmware-config does not validate against the demo registry: %v", err)
	}
	cam, ok := f.Camera("box-chaoyang-0001", "cam1")
	if !ok {
		t.Fatal("demo box camera cam1 not registered")
	}
	for _, id := range []string{"1101050105000123", "1101050102000456", "1101050107000789"} {
		if !cam.Watches(id) {
			t.Errorf("cam1 does not watch %s", id)
		}
	}
	if cam.Watches("1101050105000124") {
		t.Error("cam1 watches a cover not in its config")
	}
	if cam.Lat != 39.92195 || cam.Lon != 116.44352 || cam.Covers[0].Region != (Region{X: 560, Y: 430, W: 120, H: 60}) {
		t.Errorf("cam1 = %+v, want the position and regions of demo-box.yaml", cam)
	}
	if b, c := f.Counts(); b != 1 || c != 1 {
		t.Errorf("Counts = %d boxes, %d cameras; want 1, 1", b, c)
	}
}

func TestLoadFleetDir(t *testing.T) {
	const cover = "1101050105000123"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error; none: loads
	}{
		{
			name:  "two boxes",
			files: map[string]string{"a.yaml": boxFile("box-a", cover), "b.yml": boxFile("box-b", "1101050102000456"), "notes.txt": "not a box"},
		},
		{
			name:  "unknown facility",
			files: map[string]string{"a.yaml": boxFile("box-a", "1101050105999999")},
			want:  []string{"a.yaml: cameras[0].covers[0].facility_id: 1101050105999999 is not in the facility registry"},
		},
		{
			name:  "duplicate device",
			files: map[string]string{"a.yaml": boxFile("box-a", cover), "b.yaml": boxFile("box-a", cover)},
			want:  []string{"b.yaml: device: \"box-a\" is also the device of", "a.yaml"},
		},
		{
			name:  "bad YAML names the file",
			files: map[string]string{"a.yaml": boxFile("box-a", cover), "broken.yaml": "device: box-b\ncameras: [\n"},
			want:  []string{"broken.yaml: "},
		},
		{
			name:  "unknown key names the file and the key",
			files: map[string]string{"a.yaml": boxFile("box-a", cover) + "colour: red\n"},
			want:  []string{"a.yaml: ", "field colour not found"},
		},
		{
			name:  "invalid config names the file and the field",
			files: map[string]string{"a.yaml": strings.Replace(boxFile("box-a", cover), "rule: keep_clear", "rule: no_dancing", 1)},
			want:  []string{"a.yaml: cameras[0].zones[0].rule"},
		},
		{
			name:  "every problem is reported",
			files: map[string]string{"a.yaml": boxFile("box-a", "1101050105999999"), "b.yaml": boxFile("box-b", "1101050105999998")},
			want:  []string{"a.yaml: cameras[0].covers[0].facility_id", "b.yaml: cameras[0].covers[0].facility_id"},
		},
		{
			name:  "no configs",
			files: map[string]string{"README": "boxes go here"},
			want:  []string{"holds no box configs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFleet(t, tt.files)
			f, err := LoadFleetDir(dir, Demo())
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("LoadFleetDir: %v", err)
				}
				if b, c := f.Counts(); b != 2 || c != 2 {
					t.Errorf("Counts = %d, %d; want 2, 2", b, c)
				}
				cam, ok := f.Camera("box-b", "cam1")
				if z, zok := cam.Zone("kerb"); !ok || !zok || z.Rule != "keep_clear" || !cam.Watches("1101050102000456") {
					t.Errorf("box-b cam1 = %+v, %v", cam, ok)
				}
				if _, ok := f.Camera("box-b", "cam2"); ok {
					t.Error("box-b has a camera cam2 it does not configure")
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadFleetDir loaded; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := LoadFleetDir(filepath.Join(t.TempDir(), "missing"), Demo()); err == nil {
		t.Error("a missing directory loaded")
	}
}
