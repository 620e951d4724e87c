package background_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/occupancy/background"
	"github.com/gridwatch/gridwatch/edge/occupancy/cdnet"
)

// loadFrames reads the first n frames of the CDnet highway sequence,
// resized to w×h: real traffic, so the share of foreground is realistic.
func loadFrames(tb testing.TB, n, w, h int) [][]byte {
	dir, err := cdnet.FindShared("cdnet-highway")
	if err != nil {
		tb.Skip(err)
	}
	seq, err := cdnet.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, 0, n)
	for i := 1; i <= n; i++ {
		f, err := seq.Frame(i)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, resize(f, seq.W, seq.H, w, h))
	}
	return out
}

// resize is a bilinear resize of a packed BGR frame.
func resize(src []byte, sw, sh, w, h int) []byte {
	if sw == w && sh == h {
		return src
	}
	dst := make([]byte, w*h*3)
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5)*float64(sh)/float64(h) - 0.5
		y0 := max(int(fy), 0)
		y1 := min(y0+1, sh-1)
		ay := max(fy-float64(y0), 0)
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5)*float64(sw)/float64(w) - 0.5
			x0 := max(int(fx), 0)
			x1 := min(x0+1, sw-1)
			ax := max(fx-float64(x0), 0)
			for c := 0; c < 3; c++ {
				v := (1-ay)*((1-ax)*float64(src[(y0*sw+x0)*3+c])+ax*float64(src[(y0*sw+x1)*3+c])) +
					ay*((1-ax)*float64(src[(y1*sw+x0)*3+c])+ax*float64(src[(y1*sw+x1)*3+c]))
				dst[(y*w+x)*3+c] = byte(v + 0.5)
			}
		}
	}
	return dst
}

func benchApply(b *testing.B, w, h int) {
	frames := loadFrames(b, 300, w, h)
	m := background.New(w, h, background.Options{})
	fg := make([]byte, w*h)
	for _, f := range frames[:100] { // warm up past the initial learning
		m.Apply(f, fg)
	}
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		m.Apply(frames[100+i%200], fg)
	}
	// ns/op is wall clock with the bands spread over all cores; CPU time
	// is what the frame costs the box, and moves less with other load.
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(b.N), "cpu-ms/frame")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkApply320x240(b *testing.B) { benchApply(b, 320, 240) }
func BenchmarkApply640x360(b *testing.B) { benchApply(b, 640, 360) }
