package clip

import (
	"fmt"
	"github.com/gridwatch/gridwatch/edge/h264"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/rtsp"
)

// encode makes a raw H.264 elementary stream of ffmpeg's testsrc at 25 fps,
// one keyframe every gop frames and no B-frames, the way our cameras are set
// up.
func encode(t testing.TB, width, height int, seconds float64, gop int, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg not on PATH (Debian package ffmpeg): %v", err)
	}
	out := filepath.Join(t.TempDir(), "x.h264")
	args := []string{"-v", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=25", width, height),
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "ultrafast",
		"-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-sc_threshold", "0",
		"-bf", "0", "-pix_fmt", "yuv420p"}
	args = append(args, extra...)
	args = append(args, "-f", "h264", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// accessUnits groups an elementary stream into access units the way
// edge/rtsp delivers them: Annex-B with 4-byte start codes, SPS and PPS in
// front of every keyframe, PTS from 0 at 25 fps, Received from start on the
// same clock, all in session.
func accessUnits(t testing.TB, stream []byte, start time.Time, session uint64) []rtsp.AccessUnit {
	t.Helper()
	const frame = 40 * time.Millisecond
	var (
		aus    []rtsp.AccessUnit
		params h264.Params
	)
	for i, g := range h264.AccessUnits(stream) {
		b, key := params.Complete(g)
		aus = append(aus, rtsp.AccessUnit{
			Keyframe: key,
			AnnexB:   b,
			PTS:      time.Duration(i) * frame,
			Received: start.Add(time.Duration(i) * frame),
			Session:  session,
		})
	}
	if len(aus) == 0 || !aus[0].Keyframe {
		t.Fatal("stream does not start with a keyframe")
	}
	return aus
}
