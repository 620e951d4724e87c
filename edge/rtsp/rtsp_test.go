package rtsp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/decode"
	"github.com/gridwatch/gridwatch/edge/rtsp"
	"github.com/gridwatch/gridwatch/edge/rtsp/rtsptest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// collector records what a Stream delivers; safe to read after Run returns.
type collector struct {
	mu    sync.Mutex
	units []rtsp.AccessUnit
}

func (c *collector) handle(au rtsp.AccessUnit) {
	c.mu.Lock()
	c.units = append(c.units, au)
	c.mu.Unlock()
}

func (c *collector) snapshot() []rtsp.AccessUnit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtsp.AccessUnit(nil), c.units...)
}

func keyframes(units []rtsp.AccessUnit, session uint64) []rtsp.AccessUnit {
	var out []rtsp.AccessUnit
	for _, u := range units {
		if u.Keyframe && (session == 0 || u.Session == session) {
			out = append(out, u)
		}
	}
	return out
}

func TestLiveKeyframesDecode(t *testing.T) {
	base := rtsptest.StartTestServer(t, nil)
	dec, err := decode.NewH264()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	var (
		c          collector
		decodeErrs []error
		sizes      [][2]int
	)
	s := rtsp.New(base+"/test", testLogger(t), rtsp.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
	defer cancel()
	err = s.Run(ctx, func(au rtsp.AccessUnit) {
		c.handle(au)
		if !au.Keyframe {
			return
		}
		// What the cover detector does: each keyframe alone.
		f, err := dec.DecodeKeyframe(au.AnnexB)
		if err != nil {
			decodeErrs = append(decodeErrs, err)
			return
		}
		sizes = append(sizes, [2]int{f.Width, f.Height})
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v, want context.DeadlineExceeded", err)
	}

	units := c.snapshot()
	kfs := keyframes(units, 1)
	st := s.Stats()
	t.Logf("%d units, %d keyframes, stats %+v", len(units), len(kfs), st)
	if len(units) == 0 || !units[0].Keyframe {
		t.Fatal("the first unit delivered must be a keyframe")
	}
	// Keyframes every 25 frames at 25 fps, for about 3 s after connecting.
	if len(kfs) < 3 || len(kfs) > 4 {
		t.Fatalf("got %d keyframes in 3.5 s, want 3 or 4 (one a second)", len(kfs))
	}
	for i := 1; i < len(kfs); i++ {
		if d := kfs[i].PTS - kfs[i-1].PTS; d < 960*time.Millisecond || d > 1040*time.Millisecond {
			t.Errorf("keyframes %d and %d are %v apart in stream time, want 1s", i-1, i, d)
		}
		if d := kfs[i].Received.Sub(kfs[i-1].Received); d < 700*time.Millisecond || d > 1300*time.Millisecond {
			t.Errorf("keyframes %d and %d arrived %v apart, want about 1s", i-1, i, d)
		}
	}
	for i, kf := range kfs {
		if !bytes.HasPrefix(kf.AnnexB, []byte{0, 0, 0, 1, 0x67}) {
			t.Errorf("keyframe %d does not start with an SPS: % x", i, kf.AnnexB[:8])
		}
	}
	if len(decodeErrs) > 0 {
		t.Fatalf("%d of %d keyframes failed to decode, first: %v", len(decodeErrs), len(kfs), decodeErrs[0])
	}
	for i, sz := range sizes {
		if sz != [2]int{1280, 720} {
			t.Errorf("keyframe %d decoded to %dx%d, want 1280x720", i, sz[0], sz[1])
		}
	}
	// 25 fps: about 75 pictures in 3 s; x264's sliced threads give
	// several packets per picture.
	if len(units) < 60 {
		t.Errorf("only %d access units in 3.5 s of 25 fps", len(units))
	}
	if st.Packets <= uint64(len(units)) || st.Bytes == 0 || st.Keyframes < uint64(len(kfs)) || st.Reconnects != 0 || st.Dropped != 0 {
		t.Errorf("unexpected stats %+v", st)
	}
	if time.Since(st.LastPacket) > 2*time.Second {
		t.Errorf("LastPacket %v is stale", st.LastPacket)
	}
	if st.Connected {
		t.Error("still Connected after Run returned")
	}
	for i := 1; i < len(units); i++ {
		if d := units[i].PTS - units[i-1].PTS; d < 30*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("units %d and %d are %v apart, want 40ms (one picture each)", i-1, i, d)
			break
		}
	}
}

func TestFileKeyframes(t *testing.T) {
	clip := rtsptest.MakeClip(t, 1280, 720, 4)
	base := rtsptest.StartTestServer(t, map[string]string{"clip": clip})

	var c collector
	s := rtsp.New(base+"/clip", testLogger(t), rtsp.Options{StallTimeout: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	// The server goes quiet after the clip; the stall ends the session.
	go func() {
		for ctx.Err() == nil && s.Stats().Reconnects == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	if err := s.Run(ctx, c.handle); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v (the session should have ended by a stall within 15 s)", err)
	}
	var first []rtsp.AccessUnit
	for _, u := range c.snapshot() {
		if u.Session == 1 {
			first = append(first, u)
		}
	}
	kfs := keyframes(first, 1)
	t.Logf("session 1: %d units, %d keyframes, took %v", len(first), len(kfs), time.Since(start))
	if len(kfs) != 4 {
		t.Fatalf("got %d keyframes from a 4 s clip with a keyframe every second, want 4", len(kfs))
	}
	for i, kf := range kfs {
		if want := time.Duration(i) * time.Second; kf.PTS < want-20*time.Millisecond || kf.PTS > want+20*time.Millisecond {
			t.Errorf("keyframe %d at PTS %v, want %v", i, kf.PTS, want)
		}
	}
	// 100 pictures; the last is dropped with the stalled session because
	// rtspv2 doesn't tell us it was complete.
	if len(first) < 95 || len(first) > 100 {
		t.Errorf("got %d access units from 100 frames", len(first))
	}
}

func TestReconnect(t *testing.T) {
	srv := rtsptest.Start(t, nil)
	s := rtsp.New(srv.URL+"/test", testLogger(t), rtsp.Options{
		StallTimeout: time.Second,
		MinBackoff:   100 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
	})
	sessions := make(chan uint64, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(au rtsp.AccessUnit) {
			if au.Keyframe {
				select {
				case sessions <- au.Session:
				default:
				}
			}
		})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of cancel")
		}
	}()

	waitKeyframe := func(minSession uint64, within time.Duration) uint64 {
		t.Helper()
		timeout := time.After(within)
		for {
			select {
			case id := <-sessions:
				if id >= minSession {
					return id
				}
			case <-timeout:
				t.Fatalf("no keyframe from session >= %d within %v; stats %+v", minSession, within, s.Stats())
			}
		}
	}
	waitFor := func(what string, cond func(rtsp.Stats) bool, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond(s.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; stats %+v", what, within, s.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitKeyframe(1, 10*time.Second)
	waitFor("connected", func(st rtsp.Stats) bool { return st.Connected }, time.Second)

	srv.Kill() // a crash: no TEARDOWN, the socket just goes away
	waitFor("disconnected", func(st rtsp.Stats) bool { return !st.Connected }, 5*time.Second)
	time.Sleep(700 * time.Millisecond) // a few refused dials
	before := s.Stats()
	srv.Restart()

	id := waitKeyframe(2, 15*time.Second)
	st := s.Stats()
	t.Logf("keyframe from session %d after restart; reconnects before restart %d, now %d", id, before.Reconnects, st.Reconnects)
	if id != 2 {
		t.Errorf("the restarted server's keyframes came from session %d, want 2", id)
	}
	if st.Reconnects < 1 || !st.Connected {
		t.Fatalf("after restart: stats %+v, want Reconnects >= 1 and Connected", st)
	}
	if before.Reconnects < 2 {
		t.Errorf("only %d reconnect attempts in 0.7 s with the server down and 100-500 ms backoff", before.Reconnects)
	}
}

// TestSlowHandler shows that a handler slower than the camera costs frames,
// not the connection; that keyframes are not held up behind stale frames;
// and that what the handler gets stays decodable: every delivered
// non-keyframe directly follows the unit before it.
func TestSlowHandler(t *testing.T) {
	base := rtsptest.StartTestServer(t, nil)
	var (
		c       collector
		latency []time.Duration // keyframe arrival to handler call
	)
	s := rtsp.New(base+"/test", testLogger(t), rtsp.Options{QueueLen: 10})
	ctx, cancel := context.WithTimeout(t.Context(), 4500*time.Millisecond)
	defer cancel()
	err := s.Run(ctx, func(au rtsp.AccessUnit) {
		c.handle(au)
		if au.Keyframe {
			latency = append(latency, time.Since(au.Received))
		}
		time.Sleep(100 * time.Millisecond) // 10 units a second from a 25 fps camera
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	units := c.snapshot()
	st := s.Stats()
	t.Logf("delivered %d units (%d keyframes, latencies %v), stats %+v", len(units), len(latency), latency, st)
	if st.Dropped == 0 {
		t.Fatal("nothing dropped although the handler takes 100 ms per 40 ms picture")
	}
	if st.Reconnects != 0 {
		t.Fatalf("the stream reconnected %d times: a slow handler must not stall the reader", st.Reconnects)
	}
	// The last keyframe may still have been waiting when Run stopped.
	if n := uint64(len(latency)); n+1 < st.Keyframes || n < 3 {
		t.Fatalf("delivered %d of %d keyframes: keyframes must win over other units", n, st.Keyframes)
	}
	for i, l := range latency {
		// One picture interval of grouping, plus the unit in the handler.
		if l > 400*time.Millisecond {
			t.Errorf("keyframe %d reached the handler %v after it arrived", i, l)
		}
	}
	for i := 1; i < len(units); i++ {
		if units[i].Keyframe {
			continue
		}
		if d := units[i].PTS - units[i-1].PTS; d < 30*time.Millisecond || d > 50*time.Millisecond {
			t.Fatalf("unit %d (PTS %v) follows PTS %v: a gap inside a GOP", i, units[i].PTS, units[i-1].PTS)
		}
	}
}

// TestUnreachable dials a port nobody listens on: Run keeps trying with
// backoff and returns promptly when cancelled.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := rtsp.New("rtsp://user:secret@"+addr+"/cam", testLogger(t), rtsp.Options{
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx, func(rtsp.AccessUnit) { t.Error("got a unit from nowhere") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Run took %v to return after a 1 s deadline", took)
	}
	st := s.Stats()
	if st.Reconnects < 5 || st.Connected || st.Packets != 0 {
		t.Fatalf("stats %+v: want many reconnect attempts and nothing else", st)
	}
	if err := s.Run(ctx, func(rtsp.AccessUnit) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Run with a done context: %v", err)
	}
}

// TestPureGo keeps cgo (libavcodec, OpenCV) out of camera ingest: no package
// outside the standard library that rtsp depends on may use cgo.
func TestPureGo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("edge/rtsp pulls in cgo packages:\n%s", s)
	}
}
