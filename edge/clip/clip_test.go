package clip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/gridwatch/gridwatch/edge/h264"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/rtsp"
)

const frame = 40 * time.Millisecond

// probe is what ffprobe says about an MP4.
type probe struct {
	Format, Codec  string
	Width, Height  int
	Frames         int
	Duration       float64 // seconds, from the container
	FirstKey       bool
	FirstPictType  string
	DecodeWarnings string // ffprobe's complaints when decoding every frame
}

func ffprobe(t *testing.T, mp4 []byte) (p probe) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	// Listing the frames decodes every one of them; decoding errors go to
	// stderr.
	cmd := exec.Command("ffprobe", "-v", "error", "-of", "json",
		"-show_entries", "format=format_name,duration:stream=codec_name,width,height:frame=key_frame,pict_type",
		path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.Bytes())
	}
	p.DecodeWarnings = strings.TrimSpace(stderr.String())
	var j struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Frames []struct {
			KeyFrame int    `json:"key_frame"`
			PictType string `json:"pict_type"`
		} `json:"frames"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	if len(j.Streams) != 1 {
		t.Fatalf("ffprobe: %d streams, want 1\n%s", len(j.Streams), out)
	}
	p.Format, p.Codec = j.Format.FormatName, j.Streams[0].CodecName
	p.Width, p.Height = j.Streams[0].Width, j.Streams[0].Height
	p.Duration, _ = strconv.ParseFloat(j.Format.Duration, 64)
	p.Frames = len(j.Frames)
	if len(j.Frames) > 0 {
		p.FirstKey, p.FirstPictType = j.Frames[0].KeyFrame == 1, j.Frames[0].PictType
	}
	return p
}

// check asserts that a clip is a clean H.264 MP4 of frames frames at 25 fps
// and size w x h, starting with a keyframe.
func (p probe) check(t *testing.T, w, h, frames int) {
	t.Helper()
	if !strings.Contains(p.Format, "mp4") || p.Codec != "h264" {
		t.Errorf("format %q codec %q, want mp4 and h264", p.Format, p.Codec)
	}
	if p.Width != w || p.Height != h {
		t.Errorf("size %dx%d, want %dx%d", p.Width, p.Height, w, h)
	}
	if p.Frames != frames {
		t.Errorf("%d frames, want %d", p.Frames, frames)
	}
	want := float64(frames) * frame.Seconds()
	if math.Abs(p.Duration-want) > frame.Seconds()+1e-6 {
		t.Errorf("duration %.3f s, want %.3f ± %.3f", p.Duration, want, frame.Seconds())
	}
	if !p.FirstKey || p.FirstPictType != "I" {
		t.Errorf("first frame key=%v type %q, want a keyframe", p.FirstKey, p.FirstPictType)
	}
	if p.DecodeWarnings != "" {
		t.Errorf("ffmpeg complained decoding the clip:\n%s", p.DecodeWarnings)
	}
}

func addAll(r *Ring, aus []rtsp.AccessUnit) {
	for _, au := range aus {
		r.Add(au)
	}
}

// at is the Received time of frame i of a stream starting at base.
func at(base time.Time, i int) time.Time { return base.Add(time.Duration(i) * frame) }

func TestClip(t *testing.T) {
	base := time.Now()
	// High profile (CABAC, 8x8 transforms), as cameras send; the other
	// tests use x264's ultrafast, which is constrained baseline.
	aus := accessUnits(t, encode(t, 320, 240, 10, 25, "-preset", "veryfast"), base, 1)
	if len(aus) != 250 {
		t.Fatalf("%d access units in 10 s, want 250", len(aus))
	}
	r := NewRing(30*time.Second, 64<<20)
	addAll(r, aus)

	for _, c := range []struct {
		name       string
		from, to   time.Time
		first, end int // frames first..end-1
	}{
		// 5.5 s back to the keyframe at 5 s, up to the frame at 8 s.
		{"mid", at(base, 137), at(base, 200).Add(time.Millisecond), 125, 201},
		{"from on a keyframe", at(base, 50), at(base, 74), 50, 75},
		{"one frame", at(base, 100), at(base, 100), 100, 101},
		{"to in the future", at(base, 230), base.Add(time.Hour), 225, 250},
		{"from before the stream", base.Add(-time.Minute), at(base, 30), 0, 31},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := r.clip(c.from, c.to)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			n := c.end - c.first
			if res.Frames != n || !res.Start.Equal(aus[c.first].Received) || !res.End.Equal(aus[c.end-1].Received) {
				t.Fatalf("clip of %d frames %v..%v, want %d frames from unit %d to %d",
					res.Frames, res.Start.Sub(base), res.End.Sub(base), n, c.first, c.end-1)
			}
			if res.Duration != time.Duration(n)*frame {
				t.Errorf("duration %v, want %v", res.Duration, time.Duration(n)*frame)
			}
			ffprobe(t, res.MP4).check(t, 320, 240, n)
			sameSlices(t, res.MP4, aus[c.first:c.end])
		})
	}
}

// sameSlices shows the clip was not re-encoded: ffmpeg's stream copy back to
// Annex-B gives exactly the slices the camera sent.
func sameSlices(t *testing.T, mp4 []byte, aus []rtsp.AccessUnit) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "c.mp4"), filepath.Join(dir, "c.h264")
	if err := os.WriteFile(in, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", in, "-c", "copy", "-f", "h264", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg stream copy: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	slices := func(nals [][]byte) (s [][]byte) {
		for _, n := range nals {
			if typ := n[0] & 0x1f; typ >= 1 && typ <= 5 {
				s = append(s, n)
			}
		}
		return s
	}
	var want [][]byte
	for _, au := range aus {
		want = append(want, slices(h264.NALUnits(au.AnnexB))...)
	}
	got := slices(h264.NALUnits(b))
	if len(got) != len(want) {
		t.Fatalf("%d slices in the clip, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("slice %d differs from the camera's", i)
		}
	}
}

func TestClipErrors(t *testing.T) {
	base := time.Now()
	r := NewRing(10*time.Second, 64<<20)
	if _, err := r.Clip(base, base.Add(time.Second)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty ring: %v, want ErrEmpty", err)
	}
	addAll(r, accessUnits(t, encode(t, 320, 240, 2, 25), base, 1))
	if _, err := r.Clip(base.Add(-time.Hour), base.Add(-time.Second)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("clip ending before the ring: %v, want ErrEmpty", err)
	}
	if _, err := r.Clip(base.Add(time.Second), base); err == nil {
		t.Fatal("clip ending before it starts: no error")
	}
}

// TestRingBounds feeds 30 s and checks after every unit that the ring starts
// with a keyframe, reaches back at least keep (once it has that much) and
// holds no more than a group of pictures beyond it.
func TestRingBounds(t *testing.T) {
	base := time.Now()
	const gop = 50
	aus := accessUnits(t, encode(t, 320, 240, 30, gop), base, 1)
	keep := 4 * time.Second
	r := NewRing(keep, 64<<20)
	for i, au := range aus {
		r.Add(au)
		st := r.Stats()
		span := st.Newest.Sub(st.Oldest)
		oldest := int(st.Oldest.Sub(base) / frame)
		if !aus[oldest].Keyframe {
			t.Fatalf("after unit %d the ring starts at unit %d, not a keyframe", i, oldest)
		}
		if st.Units != i-oldest+1 || st.Newest != au.Received {
			t.Fatalf("after unit %d: %+v", i, st)
		}
		if have := time.Duration(i) * frame; span < min(keep, have) {
			t.Fatalf("after unit %d the ring spans %v, want at least %v", i, span, min(keep, have))
		}
		if span >= keep+gop*frame {
			t.Fatalf("after unit %d the ring spans %v: more than a group past keep %v", i, span, keep)
		}
	}
	if st := r.Stats(); st.Squeezed != 0 || st.Skipped != 0 {
		t.Fatalf("stats %+v: nothing should have been squeezed or skipped", st)
	}
}

func TestRingMaxBytes(t *testing.T) {
	base := time.Now()
	aus := accessUnits(t, encode(t, 640, 360, 20, 25, "-vf", "noise=alls=8:allf=t"), base, 1)
	var total int
	for _, au := range aus {
		total += len(au.AnnexB)
	}
	maxBytes := total / 6 // a little over 3 s of this stream
	r := NewRing(time.Minute, maxBytes)
	for i, au := range aus {
		r.Add(au)
		if st := r.Stats(); st.Bytes > maxBytes {
			t.Fatalf("after unit %d the ring holds %d bytes, bound %d", i, st.Bytes, maxBytes)
		}
	}
	st := r.Stats()
	if st.Squeezed == 0 || st.Units == 0 {
		t.Fatalf("stats %+v: want groups squeezed out and some left", st)
	}
	span := st.Newest.Sub(st.Oldest)
	t.Logf("%d bytes bound: holds %d units, %d bytes, %v; squeezed %d groups", maxBytes, st.Units, st.Bytes, span, st.Squeezed)
	res := r.clip(base.Add(-time.Hour), base.Add(time.Hour))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !res.Truncated || res.Frames != st.Units {
		t.Fatalf("clip of everything: %d frames, truncated %v; want the %d held, truncated", res.Frames, res.Truncated, st.Units)
	}
	ffprobe(t, res.MP4).check(t, 640, 360, st.Units)

	// A bound smaller than one keyframe holds nothing and skips the rest of
	// each group instead of keeping undecodable units.
	tiny := NewRing(time.Minute, len(aus[0].AnnexB)/2)
	addAll(tiny, aus[:60])
	if st := tiny.Stats(); st.Units != 0 || st.Bytes != 0 || st.Skipped == 0 {
		t.Fatalf("tiny ring: %+v", st)
	}
	if _, err := tiny.Clip(base, base.Add(time.Hour)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("tiny ring clip: %v, want ErrEmpty", err)
	}
}

// TestClipSessionChange restarts the stream (a new session, PTS from 0, a
// different picture size) and checks that clips never mix sessions.
func TestClipSessionChange(t *testing.T) {
	base := time.Now()
	s1 := accessUnits(t, encode(t, 640, 360, 6, 25), base, 1)
	base2 := base.Add(7 * time.Second) // a second of outage
	s2 := accessUnits(t, encode(t, 320, 240, 6, 25), base2, 2)
	r := NewRing(time.Minute, 64<<20)
	addAll(r, s1)
	// A reconnect may start mid-group; those units can't be decoded alone.
	stray := s1[len(s1)-3:]
	for i := range stray {
		stray[i].Session = 2
		stray[i].Received = base2.Add(-time.Duration(3-i) * frame)
	}
	addAll(r, stray)
	addAll(r, s2)
	if st := r.Stats(); st.Skipped != 3 {
		t.Fatalf("skipped %d units, want the 3 strays", st.Skipped)
	}

	t.Run("across", func(t *testing.T) {
		res := r.clip(at(base, 100), at(base2, 60)) // 4 s into session 1 to 2.4 s into session 2
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if !res.Truncated || !res.Start.Equal(base2) || res.Frames != 61 {
			t.Fatalf("clip starts %v after session 2 with %d frames (truncated %v), want at its start with 61",
				res.Start.Sub(base2), res.Frames, res.Truncated)
		}
		ffprobe(t, res.MP4).check(t, 320, 240, 61)
		sameSlices(t, res.MP4, s2[:61])
	})
	t.Run("old session", func(t *testing.T) {
		res := r.clip(at(base, 80), base.Add(6500*time.Millisecond)) // ends in the outage
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if res.Truncated || res.Frames != 150-75 {
			t.Fatalf("%d frames, truncated %v; want 75 from the keyframe at 3 s to the end of session 1", res.Frames, res.Truncated)
		}
		ffprobe(t, res.MP4).check(t, 640, 360, 75)
	})
}

func TestClipLater(t *testing.T) {
	base := time.Now()
	aus := accessUnits(t, encode(t, 320, 240, 12, 25), base, 1)
	// keep is short: only the pending clip holds the ring back.
	r := NewRing(time.Second, 64<<20)
	addAll(r, aus[:150]) // up to 6 s
	ctx := context.Background()
	ch := r.ClipLater(ctx, at(base, 130), at(base, 220)) // 5.2 s .. 8.8 s
	addAll(r, aus[150:220])
	select {
	case res := <-ch:
		t.Fatalf("clip delivered before its end arrived: %+v", res.Err)
	case <-time.After(50 * time.Millisecond):
	}
	if st := r.Stats(); !st.Oldest.Equal(at(base, 125)) {
		t.Fatalf("ring starts at %v, want the keyframe at 5 s held for the pending clip", st.Oldest.Sub(base))
	}
	addAll(r, aus[220:222])
	var res ClipResult
	select {
	case res = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no clip 10 s after its end arrived")
	}
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Truncated || res.Frames != 221-125 {
		t.Fatalf("%d frames (truncated %v), want 96 from the keyframe at 5 s", res.Frames, res.Truncated)
	}
	ffprobe(t, res.MP4).check(t, 320, 240, 96)
	addAll(r, aus[222:])
	if st := r.Stats(); st.Newest.Sub(st.Oldest) >= time.Second+time.Second {
		t.Fatalf("ring still spans %v after the clip was delivered", st.Newest.Sub(st.Oldest))
	}

	t.Run("camera goes quiet", func(t *testing.T) {
		r := NewRing(10*time.Second, 64<<20)
		r.lateWait = 100 * time.Millisecond
		now := time.Now()
		addAll(r, accessUnits(t, encode(t, 320, 240, 2, 25), now.Add(-2*time.Second), 1))
		res := <-r.ClipLater(ctx, now.Add(-time.Second), now.Add(200*time.Millisecond))
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if time.Since(now) < 300*time.Millisecond {
			t.Fatalf("delivered after %v, before the end time and the grace had passed", time.Since(now))
		}
		ffprobe(t, res.MP4).check(t, 320, 240, 25)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		ch := r.ClipLater(ctx, time.Now(), time.Now().Add(time.Hour))
		cancel()
		if res := <-ch; !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("cancelled pending clip: %v", res.Err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.waiters) != 0 {
			t.Fatalf("%d waiters left after cancel", len(r.waiters))
		}
	})
}

// TestPureGo keeps cgo out of evidence clips: no package outside the
// standard library that clip depends on may use cgo.
func TestPureGo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("edge/clip pulls in cgo packages:\n%s", s)
	}
}

// FuzzClip feeds arbitrary bytes as a keyframe and a following unit: a clip
// of them may fail, but must not panic.
func FuzzClip(f *testing.F) {
	aus := accessUnits(f, encode(f, 160, 120, 1, 25), time.Now(), 1)
	f.Add(aus[0].AnnexB, aus[1].AnnexB)
	f.Add(aus[0].AnnexB[:40], []byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88}, []byte(nil))
	f.Fuzz(func(t *testing.T, key, next []byte) {
		base := time.Now()
		r := NewRing(time.Second, 1<<20)
		r.Add(rtsp.AccessUnit{Keyframe: true, AnnexB: key, Received: base, Session: 1})
		r.Add(rtsp.AccessUnit{AnnexB: next, PTS: frame, Received: base.Add(frame), Session: 1})
		mp4, err := r.Clip(base, base.Add(time.Second))
		if err == nil && len(mp4) < 8 {
			t.Fatalf("clip of %d bytes without an error", len(mp4))
		}
	})
}

// BenchmarkAdd is the per-unit cost on the camera goroutine: 1080p-sized
// units at 25 fps, a keyframe a second, a 10 s ring that drops a group of
// pictures every second.
func BenchmarkAdd(b *testing.B) {
	key, p := make([]byte, 120<<10), make([]byte, 20<<10)
	r := NewRing(10*time.Second, 64<<20)
	base := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		au := rtsp.AccessUnit{AnnexB: p, PTS: time.Duration(i) * frame, Received: at(base, i), Session: 1}
		if i%25 == 0 {
			au.Keyframe, au.AnnexB = true, key
		}
		r.Add(au)
		i++
	}
}

// BenchmarkClip muxes a 10 s 1080p clip (grainy, about 5 Mbit/s) out of the
// ring.
func BenchmarkClip(b *testing.B) {
	base := time.Now()
	aus := accessUnits(b, encode(b, 1920, 1080, 10, 25, "-vf", "noise=alls=5:allf=t"), base, 1)
	r := NewRing(time.Minute, 256<<20)
	for _, au := range aus {
		r.Add(au)
	}
	var n int
	for b.Loop() {
		mp4, err := r.Clip(base, base.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		n = len(mp4)
	}
	b.ReportMetric(float64(n)/(1<<20), "MiB/clip")
}
