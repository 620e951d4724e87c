package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gridwatch/gridwatch/edge/config"
)

// The fleet: which boxes exist, their cameras, and which registered facilities and
// no-occupation zones each camera watches. It is read from the boxes' own
// configuration files (firmware-config/*.yaml) with the parser the boxes use, so
// the cloud and a box can never disagree on what a file says.

// Box is one edge box of the fleet.
type Box struct {
	Device  string   `json:"device"`
	File    string   `json:"file"` // the config file it was loaded from
	Cameras []Camera `json:"cameras"`
}

// Camera is one registered camera and what it watches.
type Camera struct {
	Device string        `json:"device"`
	ID     string        `json:"id"`
	Lat    float64       `json:"lat"`
	Lon    float64       `json:"lon"`
	Covers []CameraCover `json:"covers"`
	Zones  []CameraZone  `json:"zones"`
}

// CameraCover is a registered facility in a camera's view.
type CameraCover struct {
	FacilityID string `json:"facility_id"`
	Region     Region `json:"region"`
}

// Region is a facility's pixel box in a camera's picture.
type Region struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// CameraZone is a no-occupation zone in a camera's view.
type CameraZone struct {
	ID   string `json:"id"`
	Rule string `json:"rule"` // keep_clear, no_vending or no_parking
}

// Watches reports whether the camera is registered to watch the facility.
func (c Camera) Watches(facilityID string) bool {
	return slices.ContainsFunc(c.Covers, func(v CameraCover) bool { return v.FacilityID == facilityID })
}

// Zone returns the camera's zone with that id.
func (c Camera) Zone(id string) (CameraZone, bool) {
	i := slices.IndexFunc(c.Zones, func(z CameraZone) bool { return z.ID == id })
	if i < 0 {
		return CameraZone{}, false
	}
	return c.Zones[i], true
}

// Fleet is a validated set of boxes. It never changes after LoadFleetDir and is
// safe for concurrent use.
type Fleet struct {
	boxes  []Box
	boxIdx map[string]int
}

// LoadFleetDir reads every *.yaml and *.yml file in dir as one box's device
// configuration (edge/config: strict, unknown keys are errors) and checks the
// fleet against reg: every covered facility must be registered and every device
// id must appear once. Each problem names the file and the field; all of them
// are returned, joined.
func LoadFleetDir(dir string, reg *Registry) (*Fleet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			files = append(files, filepath.Join(dir, n))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("fleet: %s holds no box configs (*.yaml)", dir)
	}
	slices.Sort(files)
	f := &Fleet{boxIdx: map[string]int{}}
	var errs []error
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Parse, not Load: the model, password and certificate files a config
		// names live on the box, not beside the cloud.
		cfg, err := config.Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		if prev, dup := f.boxIdx[cfg.Device]; dup {
			errs = append(errs, fmt.Errorf("%s: device: %q is also the device of %s", file, cfg.Device, f.boxes[prev].File))
			continue
		}
		box := Box{Device: cfg.Device, File: file}
		for i, c := range cfg.Cameras {
			cam := Camera{Device: cfg.Device, ID: c.ID, Lat: c.Lat, Lon: c.Lon,
				Covers: []CameraCover{}, Zones: []CameraZone{}}
			for j, v := range c.Covers {
				if _, ok := reg.Facility(v.FacilityID); !ok {
					errs = append(errs, fmt.Errorf("%s: cameras[%d].covers[%d].facility_id: %s is not in the facility registry",
						file, i, j, v.FacilityID))
				}
				cam.Covers = append(cam.Covers, CameraCover{FacilityID: v.FacilityID, Region: Region(v.Region)})
			}
			for _, z := range c.Zones {
				cam.Zones = append(cam.Zones, CameraZone{ID: z.ID, Rule: z.Rule})
			}
			box.Cameras = append(box.Cameras, cam)
		}
		f.boxIdx[box.Device] = len(f.boxes)
		f.boxes = append(f.boxes, box)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs[:min(len(errs), maxReported)]...)
	}
	return f, nil
}

// Box returns the box with that device id.
func (f *Fleet) Box(device string) (Box, bool) {
	i, ok := f.boxIdx[device]
	if !ok {
		return Box{}, false
	}
	return f.boxes[i], true
}

// Camera returns a box's camera.
func (f *Fleet) Camera(device, camera string) (Camera, bool) {
	b, ok := f.Box(device)
	if !ok {
		return Camera{}, false
	}
	i := slices.IndexFunc(b.Cameras, func(c Camera) bool { return c.ID == camera })
	if i < 0 {
		return Camera{}, false
	}
	return b.Cameras[i], true
}

// Cameras lists every registered camera, by box (in file order) and then in
// the order of its config. The slices inside share the fleet's storage and must
// not be modified.
func (f *Fleet) Cameras() []Camera {
	var out []Camera
	for _, b := range f.boxes {
		out = append(out, b.Cameras...)
	}
	return out
}

// Counts returns how many boxes and cameras the fleet has.
func (f *Fleet) Counts() (boxes, cameras int) {
	for _, b := range f.boxes {
		cameras += len(b.Cameras)
	}
	return len(f.boxes), cameras
}
