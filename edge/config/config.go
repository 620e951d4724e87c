// Package config reads a box's device configuration: one strict YAML file per
// box (examples under firmware-config/). Defaults are filled first, unknown
// keys are errors, and Validate names the exact field that is wrong, so
// `gridwatch-edge check-config FILE` tells an installer what to fix.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Config is one box.
type Config struct {
	// Path is the file the config was loaded from (not in the YAML); a
	// config pushed by the cloud is saved there.
	Path string `yaml:"-"`

	Device      string        `yaml:"device"`
	Version     string        `yaml:"version"`
	DataDir     string        `yaml:"data_dir"`
	Broker      Broker        `yaml:"broker"`
	Cloud       Cloud         `yaml:"cloud"`
	StatusEvery time.Duration `yaml:"status_every"`
	// CoverModel is the manifest of the cover-state classifier (relative
	// paths are relative to the config file); empty runs without it.
	CoverModel string   `yaml:"cover_model"`
	Sensors    Sensors  `yaml:"sensors"`
	Cameras    []Camera `yaml:"cameras"`
}

// Sensors configures the box's local MQTT listener for IoT sensors.
type Sensors struct {
	// Listen is host:port for sensors/{id}/reading messages; empty: no listener.
	Listen string `yaml:"listen"`
}

// Broker is the uplink MQTT broker.
type Broker struct {
	URL          string `yaml:"url"`
	ClientID     string `yaml:"client_id"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// TLS: CA, client certificate and key for a TLS broker (tls.go).
	TLS TLS `yaml:"tls"`
}

// Cloud is where evidence files are uploaded.
type Cloud struct {
	URL string `yaml:"url"`
}

// Camera is one RTSP camera and what the box watches in it.
type Camera struct {
	ID         string     `yaml:"id"`
	URL        string     `yaml:"url"`
	Lat        float64    `yaml:"lat"`
	Lon        float64    `yaml:"lon"`
	CoverCheck CoverCheck `yaml:"cover_check"`
	Covers     []Cover    `yaml:"covers"`
	// Frame is the stream's resolution; required with zones, whose
	// polygons are in these pixels.
	Frame     Size      `yaml:"frame"`
	Occupancy Occupancy `yaml:"occupancy"`
	Zones     []Zone    `yaml:"zones"`
	// Detector, when set, names what occupies a zone (detector.go).
	Detector *Detector `yaml:"detector"`
}

// Size is a frame size in pixels.
type Size struct {
	W int `yaml:"w"`
	H int `yaml:"h"`
}

// Occupancy tunes the reduced-rate decoding road-occupation detection uses.
type Occupancy struct {
	FPS   float64 `yaml:"fps"`   // frames analysed per second (default 2)
	Width int     `yaml:"width"` // analysis width in pixels (default 320)
}

// Zone is a no-occupation zone.
type Zone struct {
	ID       string        `yaml:"id"`
	Rule     string        `yaml:"rule"` // keep_clear, no_vending, no_parking
	Polygon  [][2]int      `yaml:"polygon"`
	Dwell    time.Duration `yaml:"dwell"`
	MinShare float64       `yaml:"min_share"`
}

// CoverCheck tunes the cover-state monitor.
type CoverCheck struct {
	// Interval is the least time between two checks of the same camera;
	// checks run on keyframes, so the real period is the next keyframe after.
	Interval time.Duration `yaml:"interval"`
	// Confirm is how many consecutive checks must agree before a change is reported.
	Confirm int `yaml:"confirm"`
}

// Cover is a registered manhole cover in a camera's view.
type Cover struct {
	FacilityID string  `yaml:"facility_id"`
	Region     Rect    `yaml:"region"`
	Lat        float64 `yaml:"lat"`
	Lon        float64 `yaml:"lon"`
	// Reference is a JPEG of the cover's enrolled look (the region only or
	// the whole frame); empty means enrol from the first frame seen.
	Reference string `yaml:"reference"`
}

// Rect is a pixel rectangle.
type Rect struct {
	X int `yaml:"x"`
	Y int `yaml:"y"`
	W int `yaml:"w"`
	H int `yaml:"h"`
}

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	if c.CoverModel != "" && !filepath.IsAbs(c.CoverModel) {
		c.CoverModel = filepath.Join(filepath.Dir(path), c.CoverModel)
	}
	if c.CoverModel != "" {
		if _, err := os.Stat(c.CoverModel); err != nil {
			return nil, fmt.Errorf("%s: cover_model: %w", path, err)
		}
	}
	if err := c.ResolveModels(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := c.Broker.TLS.ClientConfig(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err) // files are checked here: a pushed config is parsed where they are not
	}
	return c, nil
}

// Parse decodes strictly, fills defaults and validates.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, err
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/gridwatch-edge"
	}
	if c.Broker.ClientID == "" {
		c.Broker.ClientID = "edge-" + c.Device
	}
	if c.StatusEvery == 0 {
		c.StatusEvery = 30 * time.Second
	}
	for i := range c.Cameras {
		cc := &c.Cameras[i].CoverCheck
		if cc.Interval == 0 {
			cc.Interval = time.Second
		}
		if cc.Confirm == 0 {
			cc.Confirm = 3
		}
		oc := &c.Cameras[i].Occupancy
		if oc.FPS == 0 {
			oc.FPS = 2
		}
		if oc.Width == 0 {
			oc.Width = 320
		}
		if d := c.Cameras[i].Detector; d != nil {
			d.defaults()
		}
	}
}

var (
	cameraIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	facilityRE = regexp.MustCompile(`^[0-9]{16}$`)
)

// Validate names the first bad field.
func (c *Config) Validate() error {
	if err := wire.ValidDeviceID(c.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if err := checkURL("broker.url", c.Broker.URL, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"); err != nil {
		return err
	}
	if u, _ := url.Parse(c.Broker.URL); u != nil {
		if err := c.Broker.TLS.validate("broker.tls", u.Scheme); err != nil {
			return err
		}
	}
	// The cloud's broker lets a box in only as its device id (user name, or
	// the common name of its client certificate) and only onto its own topics.
	switch b := c.Broker; {
	case b.Username != "" && b.Username != c.Device:
		return fmt.Errorf("broker.username: %q is not this box's device id %q (a box may only connect as itself)", b.Username, c.Device)
	case b.PasswordFile != "" && b.Username == "":
		return fmt.Errorf("broker.password_file: needs broker.username (the device id, %q)", c.Device)
	case b.Username != "" && b.PasswordFile == "" && b.TLS.Cert == "":
		return errors.New("broker.password_file: required with broker.username (or a client certificate in broker.tls.cert)")
	}
	if err := checkURL("cloud.url", c.Cloud.URL, "http", "https"); err != nil {
		return err
	}
	if c.StatusEvery < time.Second {
		return fmt.Errorf("status_every: %v is shorter than 1s", c.StatusEvery)
	}
	if c.Sensors.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Sensors.Listen); err != nil {
			return fmt.Errorf("sensors.listen: %w", err)
		}
	}
	if len(c.Cameras) == 0 {
		return errors.New("cameras: at least one camera is required")
	}
	cams := map[string]bool{}
	facs := map[string]string{}
	for i, cam := range c.Cameras {
		f := fmt.Sprintf("cameras[%d]", i)
		if !cameraIDRE.MatchString(cam.ID) {
			return fmt.Errorf("%s.id: %q must be 1-64 of [A-Za-z0-9_-]", f, cam.ID)
		}
		if cams[cam.ID] {
			return fmt.Errorf("%s.id: %q is used twice", f, cam.ID)
		}
		cams[cam.ID] = true
		if err := checkURL(f+".url", cam.URL, "rtsp", "rtsps"); err != nil {
			return err
		}
		if err := checkLatLon(f, cam.Lat, cam.Lon); err != nil {
			return err
		}
		if cam.CoverCheck.Interval < 0 {
			return fmt.Errorf("%s.cover_check.interval: %v is negative", f, cam.CoverCheck.Interval)
		}
		if cam.CoverCheck.Confirm < 1 || cam.CoverCheck.Confirm > 100 {
			return fmt.Errorf("%s.cover_check.confirm: %d is not in 1-100", f, cam.CoverCheck.Confirm)
		}
		if len(cam.Zones) > 0 && (cam.Frame.W < 16 || cam.Frame.H < 16) {
			return fmt.Errorf("%s.frame: the stream's w and h are required with zones", f)
		}
		if cam.Occupancy.FPS <= 0 || cam.Occupancy.FPS > 25 || cam.Occupancy.Width < 64 || cam.Occupancy.Width > 1920 {
			return fmt.Errorf("%s.occupancy: fps must be in (0, 25] and width in 64-1920", f)
		}
		zones := map[string]bool{}
		for j, z := range cam.Zones {
			g := fmt.Sprintf("%s.zones[%d]", f, j)
			switch {
			case !cameraIDRE.MatchString(z.ID) || zones[z.ID]:
				return fmt.Errorf("%s.id: %q must be unique and 1-64 of [A-Za-z0-9_-]", g, z.ID)
			case z.Rule != "keep_clear" && z.Rule != "no_vending" && z.Rule != "no_parking":
				return fmt.Errorf("%s.rule: %q is not keep_clear, no_vending or no_parking", g, z.Rule)
			case len(z.Polygon) < 3:
				return fmt.Errorf("%s.polygon: needs at least 3 points", g)
			case z.Dwell < time.Second:
				return fmt.Errorf("%s.dwell: %v is shorter than 1s", g, z.Dwell)
			case z.MinShare < 0 || z.MinShare > 1:
				return fmt.Errorf("%s.min_share: %v is outside 0-1", g, z.MinShare)
			}
			for k, p := range z.Polygon {
				if p[0] < 0 || p[1] < 0 || p[0] > cam.Frame.W || p[1] > cam.Frame.H {
					return fmt.Errorf("%s.polygon[%d]: %v lies outside the %dx%d frame", g, k, p, cam.Frame.W, cam.Frame.H)
				}
			}
			zones[z.ID] = true
		}
		if cam.Detector != nil {
			if err := cam.Detector.validate(f+".detector", len(cam.Zones)); err != nil {
				return err
			}
		}
		for j, cv := range cam.Covers {
			g := fmt.Sprintf("%s.covers[%d]", f, j)
			if !facilityRE.MatchString(cv.FacilityID) {
				return fmt.Errorf("%s.facility_id: %q is not a 16-digit part id", g, cv.FacilityID)
			}
			if other, dup := facs[cv.FacilityID]; dup {
				return fmt.Errorf("%s.facility_id: %s is already watched at %s", g, cv.FacilityID, other)
			}
			facs[cv.FacilityID] = g
			r := cv.Region
			if r.X < 0 || r.Y < 0 || r.W < 8 || r.H < 8 || r.W > 4096 || r.H > 4096 {
				return fmt.Errorf("%s.region: {x:%d y:%d w:%d h:%d} needs x,y >= 0 and w,h in 8-4096", g, r.X, r.Y, r.W, r.H)
			}
			if err := checkLatLon(g, cv.Lat, cv.Lon); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkURL(field, raw string, schemes ...string) error {
	if raw == "" {
		return fmt.Errorf("%s: required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Errorf("%s: %q has no host", field, raw)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: scheme %q is not one of %v", field, u.Scheme, schemes)
}

func checkLatLon(field string, lat, lon float64) error {
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return fmt.Errorf("%s.lat/lon: %v,%v out of range", field, lat, lon)
	}
	return nil
}
