package occupancy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureGo keeps cgo (gocv, libavcodec) out of the detector, its
// background model and the CDnet scorer, so that they build and test
// anywhere in seconds.
func TestPureGo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .CgoFiles}}{{.ImportPath}}{{end}}",
		"github.com/gridwatch/gridwatch/edge/occupancy/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("packages with cgo in the dependencies:\n%s", s)
	}
}
