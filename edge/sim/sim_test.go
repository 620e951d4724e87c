package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func frameAt(s Scene, sec float64) []byte {
	buf := make([]byte, s.Width*s.Height*3)
	s.Frame(int(sec*float64(s.FPS)), buf)
	return buf
}

// regionDiff is the mean absolute byte difference of two frames inside r.
func regionDiff(a, b []byte, width int, r image.Rectangle) float64 {
	var sum, n int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for i := (y*width + r.Min.X) * 3; i < (y*width+r.Max.X)*3; i++ {
			d := int(a[i]) - int(b[i])
			sum += max(d, -d)
			n++
		}
	}
	return float64(sum) / float64(n)
}

func region(t *testing.T, id string) image.Rectangle {
	t.Helper()
	for _, c := range SkeletonCovers() {
		if c.FacilityID == id {
			return c.Region
		}
	}
	t.Fatalf("no cover %s", id)
	return image.Rectangle{}
}

func TestFrameDeterminism(t *testing.T) {
	tests := []struct {
		name         string
		seedA, seedB int64
		sec          float64
		same         bool
	}{
		{"same seed, empty street", 1, 1, 2, true},
		{"same seed, car over sewage cover", 7, 7, 25, true},
		{"same seed, power cover missing", 1, 1, 20, true},
		{"different seeds", 1, 2, 2, false},
		{"different seeds, power cover missing", 3, 4, 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two Skeleton calls, so the second frame does not come from
			// the first scene's cached background.
			a := frameAt(Skeleton(tt.seedA), tt.sec)
			b := frameAt(Skeleton(tt.seedB), tt.sec)
			if got := bytes.Equal(a, b); got != tt.same {
				t.Errorf("frames equal = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestFrameIndependentOfOrder(t *testing.T) {
	s := Skeleton(5)
	first := frameAt(s, 30)
	frameAt(s, 25) // a car, a missing cover: nothing may leak into later frames
	frameAt(s, 8)
	if !bytes.Equal(first, frameAt(s, 30)) {
		t.Error("frame at 30 s changed after rendering other frames")
	}
}

func TestTruthTimeline(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 42, -9} {
		s := Skeleton(seed)
		tr := s.Truth()
		t.Run("seed "+strconv.FormatInt(seed, 10), func(t *testing.T) {
			if err := tr.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tr.Duration != 60 || len(tr.Covers) != 3 {
				t.Fatalf("duration %v, %d covers; want 60 s, 3", tr.Duration, len(tr.Covers))
			}
			tests := []struct {
				id             string
				state          string
				from, to       [2]float64 // allowed ranges for the interval's ends
				neverMissing   bool
				neverOccluded  bool
				wantStateAt    float64
				wantStateAtVal string
			}{
				{id: PowerCover, state: StateMissing, from: [2]float64{11, 13}, to: [2]float64{39, 41},
					neverOccluded: true, wantStateAt: 5, wantStateAtVal: StatePresent},
				{id: SewageCover, state: StateOccluded, from: [2]float64{23, 26}, to: [2]float64{24, 27},
					neverMissing: true, wantStateAt: 20, wantStateAtVal: StatePresent},
				{id: TelecomCover, state: StateOccluded, from: [2]float64{6, 9}, to: [2]float64{7, 10},
					neverMissing: true, wantStateAt: 20, wantStateAtVal: StatePresent},
			}
			for _, c := range tests {
				ivs := tr.Intervals(c.id)
				if len(ivs) == 0 || ivs[0].From != 0 || ivs[len(ivs)-1].To != tr.Duration {
					t.Errorf("%s: intervals %v do not span [0, %v]", c.id, ivs, tr.Duration)
				}
				found := false
				for _, iv := range ivs {
					if iv.State == StateMissing && c.neverMissing || iv.State == StateOccluded && c.neverOccluded {
						t.Errorf("%s: unexpected %v", c.id, iv)
					}
					if iv.State == c.state && iv.From >= c.from[0] && iv.From <= c.from[1] && iv.To >= c.to[0] && iv.To <= c.to[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: no %s interval from %v to %v in %v", c.id, c.state, c.from, c.to, ivs)
				}
				if got := tr.StateAt(c.id, c.wantStateAt); got != c.wantStateAtVal {
					t.Errorf("%s: StateAt(%v) = %q, want %q", c.id, c.wantStateAt, got, c.wantStateAtVal)
				}
			}
		})
	}
}

// TestTruthMatchesPixels checks the picture against the truth: the power
// cover's region changes a lot when it goes missing, the others hardly at
// all (only noise and light drift), and an occluded cover really is hidden.
func TestTruthMatchesPixels(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		s := Skeleton(seed)
		tr := s.Truth()
		occludedMid := func(id string) float64 {
			for _, iv := range tr.Intervals(id) {
				if iv.State == StateOccluded {
					return (iv.From + iv.To) / 2
				}
			}
			t.Fatalf("seed %d: %s never occluded", seed, id)
			return 0
		}
		frames := map[float64][]byte{}
		at := func(sec float64) []byte {
			if frames[sec] == nil {
				frames[sec] = frameAt(s, sec)
			}
			return frames[sec]
		}
		tests := []struct {
			name     string
			id       string
			t1, t2   float64
			min, max float64 // mean absolute difference bounds, grey levels
		}{
			{"power cover goes missing", PowerCover, 5, 20, 35, 255},
			{"telecom cover unchanged", TelecomCover, 5, 20, 0, 12},
			{"sewage cover unchanged", SewageCover, 5, 20, 0, 12},
			{"replaced power cover looks like a cover", PowerCover, 5, 50, 0, 30},
			{"car hides sewage cover", SewageCover, 20, occludedMid(SewageCover), 20, 255},
			{"car hides telecom cover", TelecomCover, 20, occludedMid(TelecomCover), 20, 255},
		}
		for _, tt := range tests {
			t.Run(strconv.FormatInt(seed, 10)+"/"+tt.name, func(t *testing.T) {
				d := regionDiff(at(tt.t1), at(tt.t2), s.Width, region(t, tt.id))
				t.Logf("mean |diff| %.1f", d)
				if d < tt.min || d > tt.max {
					t.Errorf("mean |diff| in %s between %v s and %v s = %.1f, want %v..%v", tt.id, tt.t1, tt.t2, d, tt.min, tt.max)
				}
			})
		}
	}
}

func TestMissingCoverIsDark(t *testing.T) {
	s := Skeleton(1)
	r := region(t, PowerCover)
	// The middle of the opening, away from the lit far wall.
	inner := image.Rect(r.Min.X+40, r.Min.Y+32, r.Max.X-40, r.Max.Y-8)
	tests := []struct {
		sec      float64
		min, max float64
	}{
		{5, 45, 255}, // a lid: grey iron
		{20, 0, 25},  // an open shaft: near black
	}
	for _, tt := range tests {
		f := frameAt(s, tt.sec)
		var sum, n int
		for y := inner.Min.Y; y < inner.Max.Y; y++ {
			for i := (y*s.Width + inner.Min.X) * 3; i < (y*s.Width+inner.Max.X)*3; i++ {
				sum += int(f[i])
				n++
			}
		}
		if m := float64(sum) / float64(n); m < tt.min || m > tt.max {
			t.Errorf("at %v s the power cover's centre has mean level %.1f, want %v..%v", tt.sec, m, tt.min, tt.max)
		}
	}
}

func TestSceneValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Scene)
		want   string // substring of the error, "" for none
	}{
		{"skeleton", func(*Scene) {}, ""},
		{"odd width", func(s *Scene) { s.Width = 1279 }, "size"},
		{"no fps", func(s *Scene) { s.FPS = 0 }, "fps"},
		{"no gop", func(s *Scene) { s.GOP = 0 }, "gop"},
		{"too short", func(s *Scene) { s.Duration = time.Millisecond }, "duration"},
		{"bad facility id", func(s *Scene) { s.Covers[0].FacilityID = "12345" }, "covers[0].facility_id"},
		{"duplicate cover", func(s *Scene) { s.Covers[2].FacilityID = s.Covers[1].FacilityID }, "appears twice"},
		{"bad shape", func(s *Scene) { s.Covers[1].Shape = "hexagon" }, "covers[1].shape"},
		{"region outside frame", func(s *Scene) { s.Covers[2].Region = image.Rect(1200, 700, 1300, 760) }, "covers[2].region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Skeleton(1)
			tt.modify(&s)
			err := s.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestTruthFileRoundTrip(t *testing.T) {
	want := Skeleton(1).Truth()
	path := filepath.Join(t.TempDir(), "truth.json")
	if err := WriteTruth(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the truth:\n got %+v\nwant %+v", got, want)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(`"region": [`)) {
		t.Errorf("regions should be written as [x0, y0, x1, y1]:\n%s", raw[:min(len(raw), 400)])
	}
}

func TestReadTruthRejects(t *testing.T) {
	good := Skeleton(1).Truth()
	tests := []struct {
		name   string
		modify func(m map[string]any)
		want   string
	}{
		{"unknown field", func(m map[string]any) { m["camera"] = "cam1" }, "unknown field"},
		{"gap", func(m map[string]any) {
			tl := m["timeline"].([]any)
			tl[1].(map[string]any)["from_s"] = 13.0
		}, "gap or overlap"},
		{"short", func(m map[string]any) { m["duration_s"] = 61.0 }, "ends at"},
		{"bad state", func(m map[string]any) {
			m["timeline"].([]any)[0].(map[string]any)["state"] = "stolen"
		}, "state"},
		{"unknown cover", func(m map[string]any) {
			m["timeline"].([]any)[0].(map[string]any)["facility_id"] = "9999999999999999"
		}, "not among the covers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(good)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			tt.modify(m)
			b, _ = json.Marshal(m)
			path := filepath.Join(t.TempDir(), "truth.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadTruth(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadTruth() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// needTool fails (not skips) when a declared dependency is missing: a
// green run without ffmpeg would say nothing about the encoder path.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found on PATH; it is a declared dependency (hack/install-deps.sh installs ffmpeg): %v", name, err)
	}
}

func TestRender(t *testing.T) {
	needTool(t, "ffmpeg")
	needTool(t, "ffprobe")
	s := Skeleton(1)
	s.Duration = 3 * time.Second
	ts := filepath.Join(t.TempDir(), "scene.ts")
	var calls, last, lastTotal int
	tr, err := s.Render(context.Background(), ts, func(done, total int) {
		calls++
		last, lastTotal = done, total
	})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if calls != 75 || last != 75 || lastTotal != 75 {
		t.Errorf("progress called %d times, last (%d, %d); want 75 times ending (75, 75)", calls, last, lastTotal)
	}
	if err := tr.Validate(); err != nil || tr.Duration != 3 {
		t.Errorf("truth: duration %v, Validate() = %v", tr.Duration, err)
	}

	probe := func(args ...string) string {
		out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, append(args, ts)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// MPEG-TS lists the stream twice, once inside its program: every
	// line must describe the one H.264 stream.
	streams := strings.Fields(probe("-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"))
	if len(streams) == 0 {
		t.Error("ffprobe found no streams")
	}
	for _, got := range streams {
		if got != "h264,1280,720" {
			t.Errorf("stream = %q, want h264,1280,720", got)
		}
	}
	// One keyframe a second and no B-frames, as the edge decoder expects.
	frames := strings.Fields(probe("-select_streams", "v:0", "-show_entries", "frame=key_frame,pict_type", "-of", "csv=p=0"))
	if len(frames) != 75 {
		t.Fatalf("decoded %d frames, want 75", len(frames))
	}
	for i, f := range frames {
		key := strings.HasPrefix(f, "1,")
		if key != (i%25 == 0) || strings.HasSuffix(f, ",B") {
			t.Errorf("frame %d is %q; want keyframes exactly every 25 frames and no B-frames", i, f)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	needTool(t, "ffmpeg")
	short := Skeleton(1)
	short.Duration = 2 * time.Second
	tests := []struct {
		name  string
		setup func(t *testing.T) (context.Context, string, func(done, total int))
		want  string
		is    error
	}{
		{"ffmpeg cannot write the output", func(t *testing.T) (context.Context, string, func(int, int)) {
			return context.Background(), filepath.Join(t.TempDir(), "no-such-dir", "x.ts"), nil
		}, "ffmpeg failed", nil},
		{"ffmpeg missing", func(t *testing.T) (context.Context, string, func(int, int)) {
			t.Setenv("PATH", t.TempDir())
			return context.Background(), filepath.Join(t.TempDir(), "x.ts"), nil
		}, "ffmpeg (with libx264) is required", exec.ErrNotFound},
		{"cancelled mid-way", func(t *testing.T) (context.Context, string, func(int, int)) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			return ctx, filepath.Join(t.TempDir(), "x.ts"), func(done, _ int) {
				if done == 10 {
					cancel()
				}
			}
		}, "", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, path, progress := tt.setup(t)
			_, err := short.Render(ctx, path, progress)
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

func BenchmarkFrame(b *testing.B) {
	s := Skeleton(1)
	buf := make([]byte, s.Width*s.Height*3)
	s.Frame(0, buf) // build the static background outside the timing
	n := s.Frames()
	for i := 0; b.Loop(); i++ {
		s.Frame(i*37%n, buf) // spread over the script: cars, holes, empty street
	}
}

func TestSceneLiteral(t *testing.T) {
	// A scene built by hand has no script: covers stay present, no cars,
	// no drift, at any size.
	s := Scene{
		Seed: 9, Width: 640, Height: 360, FPS: 10, GOP: 10, Duration: 2 * time.Second,
		Covers: []Cover{{FacilityID: "1101050102000001", Shape: ShapeRound, Region: image.Rect(280, 250, 340, 280)}},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tr := s.Truth()
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(tr.Timeline) != 1 || tr.Timeline[0].State != StatePresent {
		t.Errorf("timeline = %+v, want one present interval", tr.Timeline)
	}
	a, b := make([]byte, 640*360*3), make([]byte, 640*360*3)
	s.Frame(0, a)
	s.Frame(15, b)
	if d := regionDiff(a, b, s.Width, s.Covers[0].Region); d > 6 {
		t.Errorf("static cover changed by %.1f between frames, want only noise", d)
	}
}
