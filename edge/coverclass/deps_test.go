package coverclass

import (
	"os/exec"
	"strings"
	"testing"
)

// The classifier runs wherever the edge does and is trained on a laptop:
// it must stay pure Go, with no cgo, OpenCV or libavcodec underneath.
func TestPureGo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "runtime/cgo" || p == "C" || strings.HasPrefix(p, "gocv.io/") || strings.HasSuffix(p, "/edge/decode") {
			t.Errorf("coverclass depends on %s", p)
		}
	}
}
