package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const detectorBase = `device: box-1
broker: {url: tcp://127.0.0.1:1883}
cloud: {url: http://127.0.0.1:8080}
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
    frame: {w: 1280, h: 720}
    zones:
      - {id: z1, rule: no_vending, dwell: 5s, polygon: [[0, 0], [100, 0], [100, 100]]}
    detector:
%s`

const goodSum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDetectorConfig(t *testing.T) {
	tests := []struct {
		name, detector, msg string
	}{
		{"minimal, defaults filled", "      {model: city.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [vehicle, stall]}", ""},
		{"everything", "      {model: /m/city.onnx, sha256: " + goodSum + ", input: 320, layout: yolov5, classes: [车辆, 摊贩], score: 0.5, nms: 0.6}", ""},
		{"no model", "      {sha256: " + goodSum + ", layout: yolov8, classes: [a]}", "cameras[0].detector.model: required"},
		{"bad sha256", "      {model: m.onnx, sha256: ABC, layout: yolov8, classes: [a]}", `cameras[0].detector.sha256: "ABC" is not 64 lower-case hex`},
		{"input not a multiple of 32", "      {model: m.onnx, sha256: " + goodSum + ", input: 600, layout: yolov8, classes: [a]}", "cameras[0].detector.input: 600"},
		{"unknown layout", "      {model: m.onnx, sha256: " + goodSum + ", layout: ssd, classes: [a]}", `cameras[0].detector.layout: "ssd" is not yolov5 or yolov8`},
		{"no layout", "      {model: m.onnx, sha256: " + goodSum + ", classes: [a]}", `cameras[0].detector.layout: ""`},
		{"no classes", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8}", "cameras[0].detector.classes: at least one"},
		{"duplicate class", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [car, car]}", `cameras[0].detector.classes[1]: "car" must be unique`},
		{"class with a space", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [\"food cart\"]}", `cameras[0].detector.classes[0]: "food cart"`},
		{"score too high", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [a], score: 1.5}", "cameras[0].detector.score: 1.5"},
		{"negative nms", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [a], nms: -0.1}", "cameras[0].detector.nms: -0.1"},
		{"unknown key", "      {model: m.onnx, sha256: " + goodSum + ", layout: yolov8, classes: [a], labels: [b]}", "field labels not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(detectorBase, "%s", tt.detector, 1)))
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("got %v, want an error containing %q", err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := c.Cameras[0].Detector
			if d == nil || d.Input%32 != 0 || d.Score <= 0 || d.NMS <= 0 {
				t.Fatalf("detector %+v: defaults not filled", d)
			}
		})
	}
	c, _ := Parse([]byte(strings.Replace(detectorBase, "%s", tests[0].detector, 1)))
	if d := c.Cameras[0].Detector; d.Input != 640 || d.Score != 0.4 || d.NMS != 0.45 {
		t.Errorf("defaults: %+v, want input 640, score 0.4, nms 0.45", d)
	}
}

func TestDetectorNeedsZones(t *testing.T) {
	y := `device: box-1
broker: {url: tcp://127.0.0.1:1883}
cloud: {url: http://127.0.0.1:8080}
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
    detector: {model: m.onnx, sha256: ` + goodSum + `, layout: yolov8, classes: [a]}
`
	if _, err := Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "cameras[0].detector: a detector names what occupies a zone") {
		t.Fatalf("got %v", err)
	}
}

// Load resolves the model path against the config file's directory and
// refuses a model file that is not there.
func TestDetectorModelPath(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "box.yaml")
	y := strings.Replace(detectorBase, "%s", "      {model: models/city.onnx, sha256: "+goodSum+", layout: yolov8, classes: [a]}", 1)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), "cameras[0].detector.model: stat "+filepath.Join(dir, "models", "city.onnx")) {
		t.Fatalf("missing model: got %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "city.onnx"), []byte("x"), 0o644)
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cameras[0].Detector.Model; got != filepath.Join(dir, "models", "city.onnx") {
		t.Errorf("model path %q, want it next to the config", got)
	}
}
