package clip

import (
	"fmt"
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
	var (
		groups   [][][]byte
		cur      [][]byte
		seenVCL  bool
		sps, pps []byte
	)
	flush := func() {
		if len(cur) > 0 {
			groups = append(groups, cur)
		}
		cur, seenVCL = nil, false
	}
	for _, n := range splitAnnexB(stream) {
		switch typ := n[0] & 0x1f; {
		case typ == 9:
			flush()
			continue // rtspv2 never hands us AUDs
		case typ == 6 || typ == 7 || typ == 8:
			if seenVCL {
				flush()
			}
		case typ >= 1 && typ <= 5:
			if seenVCL && len(n) > 1 && n[1]&0x80 != 0 { // first_mb_in_slice == 0
				flush()
			}
			seenVCL = true
		}
		cur = append(cur, n)
	}
	flush()
	const frame = 40 * time.Millisecond
	var aus []rtsp.AccessUnit
	for i, g := range groups {
		key, hasSPS, hasPPS := false, false, false
		for _, n := range g {
			switch n[0] & 0x1f {
			case 5:
				key = true
			case 7:
				sps, hasSPS = n, true
			case 8:
				pps, hasPPS = n, true
			}
		}
		var b []byte
		if key && !hasSPS {
			b = append(append(b, 0, 0, 0, 1), sps...)
		}
		if key && !hasPPS {
			b = append(append(b, 0, 0, 0, 1), pps...)
		}
		for _, n := range g {
			b = append(append(b, 0, 0, 0, 1), n...)
		}
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
