package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "firmware-config", "demo-box.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != "box-chaoyang-0001" || len(c.Cameras) != 1 || len(c.Cameras[0].Covers) != 3 {
		t.Fatalf("unexpected demo config: %+v", c)
	}
	if c.Cameras[0].CoverCheck.Interval != time.Second || c.Broker.ClientID != "edge-box-chaoyang-0001" {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

func TestBadConfigs(t *testing.T) {
	want := map[string]string{
		"unknown-key.bad.yaml":             "field fps not found",
		"bad-device.bad.yaml":              "device: device id \"Box/1\"",
		"bad-broker-scheme.bad.yaml":       "broker.url: scheme \"http\"",
		"bad-facility.bad.yaml":            "cameras[0].covers[0].facility_id",
		"tiny-region.bad.yaml":             "cameras[0].covers[0].region",
		"dup-camera.bad.yaml":              "cameras[1].id: \"cam1\" is used twice",
		"bad-duration.bad.yaml":            "soon",
		"no-cameras.bad.yaml":              "cameras: at least one camera",
		"broker-other-user.bad.yaml":       `broker.username: "box-2" is not this box's device id "box-1"`,
		"broker-password-no-user.bad.yaml": "broker.password_file: needs broker.username",
		"broker-user-no-password.bad.yaml": "broker.password_file: required with broker.username",
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(want) {
		t.Fatalf("%d bad fixtures, %d expectations", len(files), len(want))
	}
	for name, msg := range want {
		t.Run(name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", name))
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Fatalf("got %v, want an error containing %q", err, msg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "..", "firmware-config", "demo-box.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config that does not validate")
		}
	})
}
