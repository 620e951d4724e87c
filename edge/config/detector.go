package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Detector is a city's own ONNX object detector for one camera (run by
// edge/detect): when an occupation episode starts or updates, it is run on
// the episode's best frame and the best-overlapping detection's label goes
// into the report ("vehicle", "stall").
type Detector struct {
	// Model is the .onnx file; a relative path is relative to the config file.
	Model string `yaml:"model"`
	// SHA256 of the model file (lower-case hex); the box refuses another file.
	SHA256 string `yaml:"sha256"`
	// Input is the model's square input side in pixels (default 640).
	Input int `yaml:"input"`
	// Layout of the output: yolov5 ([1, N, 5+C], with objectness) or
	// yolov8 ([1, 4+C, N]).
	Layout string `yaml:"layout"`
	// Classes are the labels in the model's class order.
	Classes []string `yaml:"classes"`
	// Score is the least score a detection needs (default 0.4).
	Score float64 `yaml:"score"`
	// NMS is the IoU above which the weaker of two boxes of one class is
	// dropped (default 0.45).
	NMS float64 `yaml:"nms"`
}

func (d *Detector) defaults() {
	if d.Input == 0 {
		d.Input = 640
	}
	if d.Score == 0 {
		d.Score = 0.4
	}
	if d.NMS == 0 {
		d.NMS = 0.45
	}
}

var labelRE = regexp.MustCompile(`^\S{1,64}$`)

// validate names the first bad field under f (e.g. "cameras[0].detector").
func (d *Detector) validate(f string, zones int) error {
	switch {
	case zones == 0:
		return fmt.Errorf("%s: a detector names what occupies a zone, so the camera needs zones", f)
	case d.Model == "":
		return fmt.Errorf("%s.model: required", f)
	case !sha256RE.MatchString(d.SHA256):
		return fmt.Errorf("%s.sha256: %q is not 64 lower-case hex digits", f, d.SHA256)
	case d.Input < 32 || d.Input > 4096 || d.Input%32 != 0:
		return fmt.Errorf("%s.input: %d is not a multiple of 32 in 32-4096", f, d.Input)
	case d.Layout != "yolov5" && d.Layout != "yolov8":
		return fmt.Errorf("%s.layout: %q is not yolov5 or yolov8", f, d.Layout)
	case len(d.Classes) == 0:
		return fmt.Errorf("%s.classes: at least one label is required", f)
	case !(d.Score > 0 && d.Score < 1):
		return fmt.Errorf("%s.score: %v is not in (0, 1)", f, d.Score)
	case !(d.NMS > 0 && d.NMS <= 1):
		return fmt.Errorf("%s.nms: %v is not in (0, 1]", f, d.NMS)
	}
	seen := map[string]bool{}
	for i, c := range d.Classes {
		if !labelRE.MatchString(c) || seen[c] {
			return fmt.Errorf("%s.classes[%d]: %q must be unique, 1-64 characters without spaces", f, i, c)
		}
		seen[c] = true
	}
	return nil
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ResolveModels makes relative detector model paths relative to dir (the
// config file's directory) and checks that each file exists.
func (c *Config) ResolveModels(dir string) error {
	var errs []error
	for i := range c.Cameras {
		d := c.Cameras[i].Detector
		if d == nil {
			continue
		}
		if !filepath.IsAbs(d.Model) {
			d.Model = filepath.Join(dir, d.Model)
		}
		if _, err := os.Stat(d.Model); err != nil {
			errs = append(errs, fmt.Errorf("cameras[%d].detector.model: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
