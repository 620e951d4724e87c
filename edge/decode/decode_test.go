package decode

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/h264"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// encode makes a raw H.264 elementary stream of ffmpeg's testsrc (colour bars)
// with a keyframe every second and no B-frames, the way our cameras are set up.
func encode(t testing.TB, width, height, seconds int, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg not on PATH (Debian package ffmpeg): %v", err)
	}
	out := filepath.Join(t.TempDir(), "x.h264")
	args := []string{"-v", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=25", width, height),
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p"}
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

func hasNAL(au []byte, typ byte) bool {
	for _, n := range h264.NALUnits(au) {
		if len(n) > 0 && n[0]&0x1f == typ {
			return true
		}
	}
	return false
}

// keyframes returns the IDR access units of stream, each with SPS and PPS in
// front (taken from the last ones seen if the unit lacks them).
func keyframes(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	var sps, pps []byte
	var out [][]byte
	for _, au := range accessUnits(stream) {
		for _, n := range h264.NALUnits(au) {
			switch n[0] & 0x1f {
			case 7:
				sps = n
			case 8:
				pps = n
			}
		}
		if !hasNAL(au, 5) {
			continue
		}
		if !hasNAL(au, 7) {
			if sps == nil || pps == nil {
				t.Fatal("keyframe before any SPS/PPS")
			}
			var b []byte
			b = append(append(append(b, 0, 0, 0, 1), sps...), 0, 0, 0, 1)
			b = append(append(b, pps...), au...)
			au = b
		}
		out = append(out, au)
	}
	if len(out) == 0 {
		t.Fatal("no keyframes in stream")
	}
	return out
}

type patch struct {
	name       string
	x0, y0     int // top-left of a 80x200 area well inside one bar
	b, g, r    float64
	maxDiffSum float64
}

// testsrc's bars (BGR) away from the circle edge, the digit and the gradient band.
var bars = []patch{
	{"black", 40, 150, 0, 0, 0, 40},
	{"magenta", 360, 150, 255, 0, 255, 60},
	{"blue", 520, 150, 255, 0, 0, 60},
	{"yellow", 680, 150, 0, 255, 255, 60},
	{"green", 840, 150, 0, 255, 0, 60},
	{"white", 1170, 150, 255, 255, 255, 40},
}

func checkBars(t *testing.T, f Frame) {
	t.Helper()
	for _, p := range bars {
		var sb, sg, sr, n float64
		for y := p.y0; y < p.y0+200; y++ {
			for x := p.x0; x < p.x0+80; x++ {
				i := (y*f.Width + x) * 3
				sb += float64(f.BGR[i])
				sg += float64(f.BGR[i+1])
				sr += float64(f.BGR[i+2])
				n++
			}
		}
		b, g, r := sb/n, sg/n, sr/n
		if d := abs(b-p.b) + abs(g-p.g) + abs(r-p.r); d > p.maxDiffSum {
			t.Errorf("%s bar at (%d,%d): mean BGR (%.0f,%.0f,%.0f), want about (%.0f,%.0f,%.0f)",
				p.name, p.x0, p.y0, b, g, r, p.b, p.g, p.r)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestDecodeKeyframe(t *testing.T) {
	stream := encode(t, 1280, 720, 2)
	kfs := keyframes(t, stream)
	if len(kfs) != 2 {
		t.Fatalf("got %d keyframes in 2 s at -g 25, want 2", len(kfs))
	}
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Each keyframe alone, twice over, to show the decoder is reset in between.
	for round := 0; round < 2; round++ {
		for i, kf := range kfs {
			f, err := d.DecodeKeyframe(kf)
			if err != nil {
				t.Fatalf("round %d keyframe %d: %v", round, i, err)
			}
			if f.Width != 1280 || f.Height != 720 || len(f.BGR) != 1280*720*3 {
				t.Fatalf("keyframe %d: %dx%d with %d bytes", i, f.Width, f.Height, len(f.BGR))
			}
			checkBars(t, f)
		}
	}
}

func TestDecodeKeyframeSizeChange(t *testing.T) {
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, size := range [][2]int{{640, 360}, {1280, 720}, {640, 360}} {
		kf := keyframes(t, encode(t, size[0], size[1], 1))[0]
		f, err := d.DecodeKeyframe(kf)
		if err != nil {
			t.Fatalf("%dx%d: %v", size[0], size[1], err)
		}
		if f.Width != size[0] || f.Height != size[1] || len(f.BGR) != size[0]*size[1]*3 {
			t.Fatalf("want %dx%d, got %dx%d (%d bytes)", size[0], size[1], f.Width, f.Height, len(f.BGR))
		}
	}
}

func TestDecodeContinuous(t *testing.T) {
	aus := accessUnits(encode(t, 1280, 720, 2))
	if len(aus) != 50 {
		t.Fatalf("split 2 s at 25 fps into %d access units, want 50", len(aus))
	}
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	frames := decodeWith(t, d, aus)
	checkBars(t, frames[len(frames)-1])
	// After Flush the decoder takes a keyframe alone again.
	if _, err := d.DecodeKeyframe(keyframes(t, bytes.Join(aus, nil))[1]); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeKeyframeBadInput(t *testing.T) {
	kf := keyframes(t, encode(t, 1280, 720, 1))[0]
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	flipped := bytes.Clone(kf)
	for i := len(flipped) / 2; i < len(flipped); i += 97 {
		flipped[i] ^= 0x5a
	}
	noParams := kf[bytes.Index(kf, []byte{0, 0, 0, 1, 0x65}):] // IDR slice without SPS/PPS
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"start code only", []byte{0, 0, 0, 1}},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000)},
		{"headers only", kf[:bytes.Index(kf, []byte{0, 0, 0, 1, 0x65})]},
		{"truncated to half", kf[:len(kf)/2]},
		{"truncated to 90%", kf[:len(kf)*9/10]},
		{"bit flips", flipped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := d.DecodeKeyframe(c.in)
			if err == nil {
				t.Fatalf("decoded %dx%d from bad input, want an error", f.Width, f.Height)
			}
			t.Logf("error: %v", err)
		})
	}
	t.Run("fresh decoder, no sps/pps", func(t *testing.T) {
		fresh, err := NewH264()
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		if f, err := fresh.DecodeKeyframe(noParams); err == nil {
			t.Fatalf("decoded %dx%d without SPS/PPS, want an error", f.Width, f.Height)
		}
	})
	// The decoder is still good for a real keyframe afterwards.
	f, err := d.DecodeKeyframe(kf)
	if err != nil {
		t.Fatal(err)
	}
	checkBars(t, f)
}

func TestClose(t *testing.T) {
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	if _, err := d.DecodeKeyframe([]byte{0, 0, 0, 1, 0x65}); !errors.Is(err, ErrClosed) {
		t.Fatalf("DecodeKeyframe after Close: %v, want ErrClosed", err)
	}
	if _, err := d.Decode([]byte{0, 0, 0, 1, 0x65}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close: %v, want ErrClosed", err)
	}
	var nilDec *Decoder
	nilDec.Close()
}

func FuzzDecodeKeyframe(f *testing.F) {
	kf := keyframes(f, encode(f, 320, 240, 1))[0]
	f.Add(kf)
	f.Add(kf[:len(kf)/2])
	f.Add(kf[:len(kf)-1])
	f.Add(kf[:64])
	corrupt := bytes.Clone(kf)
	for i := 40; i < len(corrupt); i += 53 {
		corrupt[i] ^= 0xff
	}
	f.Add(corrupt)
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88})
	d, err := NewH264()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.Close)
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := d.DecodeKeyframe(in)
		if err != nil {
			return
		}
		if fr.Width <= 0 || fr.Height <= 0 || len(fr.BGR) != fr.Width*fr.Height*3 {
			t.Fatalf("inconsistent frame %dx%d with %d bytes", fr.Width, fr.Height, len(fr.BGR))
		}
	})
}

// BenchmarkDecodeKeyframe1080p times one keyframe-only decode including the
// BGR24 conversion. testsrc compresses to a tiny keyframe; "grain" adds
// sensor-like noise (about 5 Mbit/s overall, like a 1080p street camera).
func BenchmarkDecodeKeyframe1080p(b *testing.B) {
	for _, c := range []struct {
		name  string
		extra []string
	}{
		{"testsrc", nil},
		{"grain", []string{"-vf", "noise=alls=5:allf=t"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			kf := keyframes(b, encode(b, 1920, 1080, 1, c.extra...))[0]
			d, err := NewH264()
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.SetBytes(int64(len(kf)))
			for b.Loop() {
				if _, err := d.DecodeKeyframe(kf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/keyframe")
			b.ReportMetric(float64(len(kf))/1024, "KiB/keyframe")
		})
	}
}

// BenchmarkDecode1080p decodes every frame of 2 s of grainy testsrc (50
// frames, about 5 Mbit/s, one keyframe a second) including the BGR24
// conversion.
func BenchmarkDecode1080p(b *testing.B) {
	aus := accessUnits(encode(b, 1920, 1080, 2, "-vf", "noise=alls=5:allf=t"))
	d, err := NewH264()
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	frames := 0
	for b.Loop() {
		for _, au := range aus {
			fs, err := d.Decode(au)
			if err != nil {
				b.Fatal(err)
			}
			frames += len(fs)
		}
		fs, err := d.Flush()
		if err != nil {
			b.Fatal(err)
		}
		frames += len(fs)
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
}

// accessUnits groups an elementary stream into Annex-B access units.
func accessUnits(stream []byte) [][]byte {
	var aus [][]byte
	for _, au := range h264.AccessUnits(stream) {
		aus = append(aus, h264.AnnexB(au...))
	}
	return aus
}
