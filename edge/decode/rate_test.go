package decode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const frameInterval = 40 * time.Millisecond

func TestScaledSize(t *testing.T) {
	for _, c := range []struct{ w, h, width, dw, dh int }{
		{1920, 1080, 640, 640, 360},
		{1920, 1080, 0, 1920, 1080},
		{1920, 1080, 1920, 1920, 1080},
		{1920, 1080, 4000, 1920, 1080}, // never upscale
		{1280, 720, 641, 640, 360},     // even sides
		{704, 576, 352, 352, 288},
		{1920, 1080, 1, 2, 2},
		{2, 2000, 1, 2, 2000},
	} {
		if dw, dh := scaledSize(c.w, c.h, c.width); dw != c.dw || dh != c.dh {
			t.Errorf("scaledSize(%d, %d, %d) = %dx%d, want %dx%d", c.w, c.h, c.width, dw, dh, c.dw, c.dh)
		}
	}
}

// feed runs access units (PTS i*40ms from first) through s and collects the
// samples, failing on any error.
func feed(t *testing.T, s *Sampler, aus [][]byte, first int) []Sample {
	t.Helper()
	var out []Sample
	for i, au := range aus {
		got, err := s.Decode(au, time.Duration(first+i)*frameInterval)
		if err != nil {
			t.Fatalf("access unit %d: %v", first+i, err)
		}
		out = append(out, got...)
	}
	return out
}

func ptsOf(ss []Sample) []time.Duration {
	var p []time.Duration
	for _, s := range ss {
		p = append(p, s.PTS)
	}
	return p
}

func ms(v ...int) []time.Duration {
	var d []time.Duration
	for _, x := range v {
		d = append(d, time.Duration(x)*time.Millisecond)
	}
	return d
}

func TestSampler(t *testing.T) {
	aus := accessUnits(encode(t, 1280, 720, 3, "-preset", "veryfast"))
	full := decodeAll(t, aus)
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := NewSampler(d, 2, 640)
	got := feed(t, s, aus, 0)
	if want := ms(0, 520, 1000, 1520, 2000, 2520); fmt.Sprint(ptsOf(got)) != fmt.Sprint(want) {
		t.Fatalf("sampled at %v, want %v", ptsOf(got), want)
	}
	for _, smp := range got {
		if smp.Width != 640 || smp.Height != 360 || len(smp.BGR) != 640*360*3 {
			t.Fatalf("sample at %v: %dx%d with %d bytes, want 640x360", smp.PTS, smp.Width, smp.Height, len(smp.BGR))
		}
		// The same picture as the full-size decode, at half the size.
		ref := full[smp.PTS/frameInterval]
		for _, p := range bars {
			a := patchMean(ref, p.x0, p.y0, 80, 200)
			b := patchMean(smp.Frame, p.x0/2, p.y0/2, 40, 100)
			if abs(a-b) > 3 {
				t.Errorf("sample at %v, %s bar: mean %.1f, full-size decode %.1f", smp.PTS, p.name, b, a)
			}
		}
	}

	// Every picture at full size is exactly what Decode gives.
	d2, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	all := feed(t, NewSampler(d2, 0, 0), aus[:30], 0)
	if len(all) != 30 {
		t.Fatalf("every-picture sampler gave %d pictures from 30 access units", len(all))
	}
	for i := range all {
		if all[i].PTS != time.Duration(i)*frameInterval || !bytes.Equal(all[i].BGR, full[i].BGR) {
			t.Fatalf("picture %d (pts %v) differs from Decode's", i, all[i].PTS)
		}
	}
}

func decodeAll(t *testing.T, aus [][]byte) []Frame {
	t.Helper()
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return decodeWith(t, d, aus)
}

// decodeWith decodes every access unit with d and flushes it: one frame each.
func decodeWith(t *testing.T, d *Decoder, aus [][]byte) []Frame {
	t.Helper()
	var frames []Frame
	for i, au := range aus {
		fs, err := d.Decode(au)
		if err != nil {
			t.Fatalf("access unit %d: %v", i, err)
		}
		frames = append(frames, fs...)
	}
	rest, err := d.Flush()
	if err != nil {
		t.Fatal(err)
	}
	frames = append(frames, rest...)
	if len(frames) != len(aus) {
		t.Fatalf("decoded %d frames from %d access units", len(frames), len(aus))
	}
	return frames
}

func patchMean(f Frame, x0, y0, w, h int) float64 {
	var sum, n float64
	for y := y0; y < y0+h; y++ {
		for x := x0; x < x0+w; x++ {
			i := (y*f.Width + x) * 3
			sum += float64(f.BGR[i]) + float64(f.BGR[i+1]) + float64(f.BGR[i+2])
			n += 3
		}
	}
	return sum / n
}

// TestSamplerKeyframes: nothing before the first keyframe (a stream joined
// mid-group), nothing after damage until the next keyframe, and a Reset for
// a restarted stream of another size.
func TestSamplerKeyframes(t *testing.T) {
	aus := accessUnits(encode(t, 640, 360, 4, "-preset", "veryfast"))
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := NewSampler(d, 2, 320)

	// Joined at frame 10: the first keyframe is frame 25 (1 s).
	var got []Sample
	for i := 10; i < 60; i++ {
		out, _ := s.Decode(aus[i], time.Duration(i)*frameInterval) // errors expected before the keyframe
		got = append(got, out...)
	}
	if want := ms(1000, 1520, 2000); fmt.Sprint(ptsOf(got)) != fmt.Sprint(want) {
		t.Fatalf("joined mid-group: sampled at %v, want %v", ptsOf(got), want)
	}

	// Frame 60 truncated: damaged; frames 61-74 are clean to libavcodec but
	// predicted from it. The next keyframe is frame 75 (3 s).
	_, err = s.Decode(aus[60][:len(aus[60])/2], 60*frameInterval)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("truncated P-frame: %v, want ErrDamaged", err)
	}
	got = nil
	for i := 61; i < 100; i++ {
		out, err := s.Decode(aus[i], time.Duration(i)*frameInterval)
		if err != nil {
			t.Logf("access unit %d: %v", i, err)
		}
		got = append(got, out...)
	}
	if want := ms(3000, 3520); fmt.Sprint(ptsOf(got)) != fmt.Sprint(want) {
		t.Fatalf("after damage: sampled at %v, want %v", ptsOf(got), want)
	}

	// The camera restarts at another size; times start from 0 again.
	s.Reset()
	small := accessUnits(encode(t, 320, 240, 2))
	got = feed(t, s, small, 0)
	if want := ms(0, 520, 1000, 1520); fmt.Sprint(ptsOf(got)) != fmt.Sprint(want) {
		t.Fatalf("after Reset: sampled at %v, want %v", ptsOf(got), want)
	}
	if f := got[0]; f.Width != 320 || f.Height != 240 {
		t.Fatalf("after Reset: %dx%d, want the new stream's 320x240", f.Width, f.Height)
	}
}

func TestSamplerClosed(t *testing.T) {
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	s := NewSampler(d, 2, 640)
	d.Close()
	if _, err := s.Decode([]byte{0, 0, 0, 1, 0x65}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close: %v, want ErrClosed", err)
	}
	s.Reset() // no panic
}

// FuzzSampler feeds a stream whose keyframe and following P-frame are
// replaced by arbitrary bytes, then the real rest of the group, then the
// real keyframe and group again: errors are fine, crashes and inconsistent
// pictures are not, and the real keyframe must bring the sampler back.
func FuzzSampler(f *testing.F) {
	aus := accessUnits(encode(f, 320, 240, 1))
	f.Add(aus[0], aus[1])
	f.Add(aus[0][:len(aus[0])/2], aus[1])
	f.Add(aus[0], aus[1][:len(aus[1])/2])
	f.Add(aus[0][:64], []byte{0, 0, 0, 1})
	corrupt := bytes.Clone(aus[0])
	for i := 40; i < len(corrupt); i += 53 {
		corrupt[i] ^= 0xff
	}
	f.Add(corrupt, aus[1])
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88}, []byte{0, 0, 0, 1, 0x41, 0x9a})
	d, err := NewH264()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.Close)
	f.Fuzz(func(t *testing.T, key, next []byte) {
		s := NewSampler(d, 12.5, 160)
		defer s.Reset()
		stream := append([][]byte{key, next}, aus[2:8]...)
		stream = append(stream, aus[:4]...)
		var last []Sample
		for i, au := range stream {
			out, _ := s.Decode(au, time.Duration(i)*frameInterval)
			for _, smp := range out {
				if smp.Width <= 0 || smp.Height <= 0 || smp.Width > 160 || len(smp.BGR) != smp.Width*smp.Height*3 {
					t.Fatalf("inconsistent sample %dx%d with %d bytes", smp.Width, smp.Height, len(smp.BGR))
				}
			}
			if i >= 8 {
				last = append(last, out...)
			}
		}
		if len(last) == 0 || last[0].Width != 160 || last[0].Height != 120 {
			t.Fatalf("the real keyframe and group after the fuzzed units gave %d samples, want 160x120 ones", len(last))
		}
	})
}

// BenchmarkSampler1080p runs 2 s of grainy 1080p (about 5 Mbit/s) through
// the sampler: 2 fps at 640 wide (road occupation), and decoding alone (one
// picture converted per pass).
func BenchmarkSampler1080p(b *testing.B) {
	aus := accessUnits(encode(b, 1920, 1080, 2, "-vf", "noise=alls=5:allf=t"))
	for _, c := range []struct {
		name  string
		fps   float64
		width int
	}{
		{"2fps-640", 2, 640},
		{"decode-only", 1e-6, 640},
	} {
		b.Run(c.name, func(b *testing.B) {
			d, err := NewH264()
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			samples := 0
			for b.Loop() {
				s := NewSampler(d, c.fps, c.width)
				for i, au := range aus {
					out, err := s.Decode(au, time.Duration(i)*frameInterval)
					if err != nil {
						b.Fatal(err)
					}
					samples += len(out)
				}
				s.Reset()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/2, "ms/video-s")
			b.ReportMetric(float64(samples)/float64(b.N), "samples/pass")
		})
	}
}

// TestSamplerBFrames runs a stream with B-frames (non-reference, decoded
// out of display order) through a 2 fps sampler: pictures must come out on
// the display-time grid and be the right pictures, and B-frames that are
// not due must not be decoded at all.
func TestSamplerBFrames(t *testing.T) {
	dir := t.TempDir()
	mp4 := filepath.Join(dir, "b.mp4")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi",
		"-i", "testsrc=size=1280x720:rate=25", "-t", "2", "-c:v", "libx264", "-preset", "veryfast",
		"-g", "25", "-bf", "2", "-b_strategy", "0", "-x264-params", "b-pyramid=none", "-pix_fmt", "yuv420p",
		mp4).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-of", "csv=p=0",
		"-show_entries", "packet=pts", mp4).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pts []time.Duration // decode order, in 1/12800 s (the mp4 time base of 25 fps)
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.Atoi(strings.Trim(f, ","))
		if err != nil {
			t.Fatalf("ffprobe pts %q: %v", f, err)
		}
		pts = append(pts, time.Duration(v)*time.Second/12800)
	}
	raw := filepath.Join(dir, "b.h264")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-y", "-i", mp4, "-c", "copy",
		"-bsf:v", "h264_mp4toannexb", "-f", "h264", raw).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	stream, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	aus := accessUnits(stream)
	if len(aus) != len(pts) || len(aus) != 50 {
		t.Fatalf("%d access units, %d packet times, want 50", len(aus), len(pts))
	}
	sorted := slices.Clone(pts)
	slices.Sort(sorted)
	if slices.Equal(sorted, pts) {
		t.Fatal("no reordering in the stream: did x264 make B-frames?")
	}
	full := decodeAll(t, aus) // display order
	d, err := NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := NewSampler(d, 2, 640)
	var got []Sample
	for i, au := range aus {
		o, err := s.Decode(au, pts[i])
		if err != nil {
			t.Fatalf("access unit %d: %v", i, err)
		}
		got = append(got, o...)
	}
	// The decoder holds the last pictures back for reordering: 1.52 s may
	// still be inside.
	if p := ptsOf(got); len(p) < 3 || fmt.Sprint(p[:3]) != fmt.Sprint(ms(0, 520, 1000)) {
		t.Fatalf("sampled at %v, want 0s 520ms 1s ...", p)
	}
	for _, smp := range got {
		ref := full[smp.PTS/frameInterval]
		for _, p := range bars {
			if a, b := patchMean(ref, p.x0, p.y0, 80, 200), patchMean(smp.Frame, p.x0/2, p.y0/2, 40, 100); abs(a-b) > 3 {
				t.Errorf("sample at %v, %s bar: mean %.1f, full-size decode %.1f", smp.PTS, p.name, b, a)
			}
		}
	}
	st := s.Stats()
	if st.Units != 50 || st.Skipped < 25 || st.Converted != uint64(len(got)) {
		t.Fatalf("stats %+v: want most of the 33 B-frames skipped", st)
	}
	t.Logf("stats %+v", st)

	// The B-frames taught libavcodec a reorder delay; a restarted camera
	// without B-frames must not inherit it.
	s.Reset()
	noB := accessUnits(encode(t, 320, 240, 1, "-preset", "veryfast"))
	if o, err := s.Decode(noB[0], 0); err != nil || len(o) != 1 || o[0].Width != 320 {
		t.Fatalf("first keyframe after Reset: %d samples, %v; want it at once", len(o), err)
	}
}
