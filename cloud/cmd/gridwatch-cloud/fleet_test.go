package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryCheckFleet(t *testing.T) {
	var out bytes.Buffer
	if err := registryCheckFleet(&out, "demo", filepath.Join("..", "..", "..", "firmware-config")); err != nil {
		t.Fatalf("firmware-config does not check against the demo registry: %v", err)
	}
	if !strings.Contains(out.String(), "ok (1 boxes, 1 cameras)") {
		t.Errorf("output %q does not count the demo box", out.String())
	}

	dir := t.TempDir()
	demo, err := os.ReadFile(filepath.Join("..", "..", "..", "firmware-config", "demo-box.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(demo, []byte("1101050107000789"), []byte("1101050107999999"), 1)
	if err := os.WriteFile(filepath.Join(dir, "box.yaml"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	err = registryCheckFleet(&out, "demo", dir)
	if err == nil || !strings.Contains(err.Error(), "box.yaml: cameras[0].covers[2].facility_id: 1101050107999999 is not in the facility registry") {
		t.Errorf("a box covering an unregistered facility: %v, want an error naming file and field", err)
	}
}
