package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/gridwatch/gridwatch/edge/wire"
)

var (
	devices = []string{"box-a", "box-b", "box-c"}
	cameras = []string{"cam1", "cam2"}
	hour0   = time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC) // on a window boundary: windows align to the epoch
)

const step = 30 * time.Second // telemetry interval of the simulated boxes

// simulated is sample i (every 30 s over the hour) of device d. box-b's cam2
// degrades at half past: fps 10, grade poor.
func simulated(d, i int) wire.Telemetry {
	t := wire.Telemetry{V: wire.Version, Device: devices[d], Seq: uint64(i + 1), At: hour0.Add(time.Duration(i) * step),
		UptimeS: float64(i) * step.Seconds(), OutboxDepth: i / 2, DiskFreeBytes: 50 << 30, CPUTempC: 50 + float64(d)}
	for c, name := range cameras {
		fps, grade := 25-float64(d)-float64(c), "good"
		if d == 1 && c == 1 && i >= 60 {
			fps, grade = 10, "poor"
		}
		t.Cameras = append(t.Cameras, wire.CameraHealth{Camera: name, Connected: true, FPS: fps, BitrateKbps: 4000,
			KeyframeS: 1, DecodeMs: 10 + float64(d) + float64(c)/2 + float64(i%2), AnalysisMs: 1.5, Grade: grade})
	}
	return t
}

func testConfig(url string) Config {
	return Config{URL: url, BatchSize: 100, FlushInterval: 50 * time.Millisecond, RetryInterval: 100 * time.Millisecond,
		MaxRetryInterval: 500 * time.Millisecond, MaxRetries: 3, HTTPTimeout: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestWriteThenHistory(t *testing.T) {
	s := startInfluxd(t)
	w, err := NewWriter(testConfig(s.URL))
	if err != nil {
		t.Fatal(err)
	}
	points := 0
	for i := 0; i < int(time.Hour/step); i++ {
		for d := range devices {
			tm := simulated(d, i)
			w.Telemetry(tm)
			points += 1 + len(tm.Cameras)
		}
		if i%20 == 0 { // box-a: 6 detections on cam1 over the hour
			w.Detection("box-a", "cam1", "cover_missing", "new", hour0.Add(time.Duration(i)*step))
			points++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != uint64(points) || st.Dropped != 0 || st.Errors != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v, want %d written and nothing else", st, points)
	}

	h, err := NewHistory(testConfig(s.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	every := 10 * time.Minute
	for d, dev := range devices {
		got, err := h.Device(ctx, dev, hour0, hour0.Add(time.Hour), every)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Cameras) != len(cameras) {
			t.Fatalf("%s: %d cameras, want %d", dev, len(got.Cameras), len(cameras))
		}
		for w := 0; w < 6; w++ { // six 10-minute windows, each 20 samples; stamped with the window's end
			end := hour0.Add(time.Duration(w+1) * every)
			// outbox_depth = i/2 for i in [20w, 20w+20): mean 10w + 4.5
			checkSample(t, dev+" outbox_depth", got.Box.OutboxDepth, w, end, 10*float64(w)+4.5)
			for c, cam := range got.Cameras {
				name := fmt.Sprintf("%s/%s", dev, cam.Camera)
				if cam.Camera != cameras[c] {
					t.Fatalf("%s: cameras %v out of order", dev, got.Cameras)
				}
				fps, grade := 25-float64(d)-float64(c), 3.0
				if d == 1 && c == 1 && w >= 3 {
					fps, grade = 10, 1
				}
				checkSample(t, name+" fps", cam.FPS, w, end, fps)
				checkSample(t, name+" grade", cam.Grade, w, end, grade)
				checkSample(t, name+" decode_ms", cam.DecodeMs, w, end, 10+float64(d)+float64(c)/2+0.5)
			}
		}
	}

	t.Run("detections", func(t *testing.T) {
		c := influxdb2.NewClient(s.URL, "")
		defer c.Close()
		res, err := c.QueryAPI("").Query(ctx, `from(bucket: "gridwatch/autogen")
  |> range(start: 2026-01-15T08:00:00Z, stop: 2026-01-15T09:00:00Z)
  |> filter(fn: (r) => r._measurement == "detections" and r._field == "count" and r.device == "box-a" and r.kind == "cover_missing")
  |> sum()`)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		if !res.Next() || res.Record().Value() != int64(6) {
			t.Fatalf("detections: want a sum of 6, got %v (err %v)", res.Record(), res.Err())
		}
	})

	t.Run("narrow range", func(t *testing.T) {
		got, err := h.Device(ctx, "box-b", hour0.Add(30*time.Minute), hour0.Add(40*time.Minute), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got.Cameras[1].FPS); n != 10 || got.Cameras[1].FPS[0].V != 10 {
			t.Fatalf("box-b cam2 fps over 10 minutes at 1m: %v", got.Cameras[1].FPS)
		}
	})

	t.Run("unknown device is empty, not an error", func(t *testing.T) {
		got, err := h.Device(ctx, "box-z", hour0, hour0.Add(time.Hour), every)
		if err != nil || len(got.Cameras) != 0 || len(got.Box.OutboxDepth) != 0 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	t.Run("handler", func(t *testing.T) {
		app := fiber.New()
		app.Get("/api/v1/devices/:id/history", h.Handler())
		code, body := get(t, app, "/api/v1/devices/box-b/history?from=2026-01-15T08:00:00Z&to=2026-01-15T09:00:00Z&every=10m")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var dh DeviceHistory
		if err := json.Unmarshal([]byte(body), &dh); err != nil {
			t.Fatal(err)
		}
		if dh.Device != "box-b" || dh.Every != "10m0s" || len(dh.Cameras) != 2 || len(dh.Cameras[1].Grade) != 6 ||
			dh.Cameras[1].Grade[5].V != 1 || !dh.Cameras[1].Grade[5].T.Equal(hour0.Add(time.Hour)) {
			t.Fatalf("unexpected body %s", body)
		}
	})
}

func checkSample(t *testing.T, what string, s []Sample, i int, at time.Time, want float64) {
	t.Helper()
	if len(s) != 6 {
		t.Fatalf("%s: %d samples, want 6: %v", what, len(s), s)
	}
	if !s[i].T.Equal(at) || math.Abs(s[i].V-want) > 1e-9 {
		t.Fatalf("%s[%d] = %v at %s, want %v at %s", what, i, s[i].V, s[i].T, want, at)
	}
}

// TestInfluxDownNeverBlocks stops InfluxDB under a writer: calls still return
// at once, the counters show the drops and failed requests, and once InfluxDB
// is back the writer writes again.
func TestInfluxDownNeverBlocks(t *testing.T) {
	s := startInfluxd(t)
	cfg := testConfig(s.URL)
	cfg.Buffer, cfg.Queue = 500, 64
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Telemetry(simulated(0, 0))
	eventually(t, 30*time.Second, "first point written", func() bool { return w.Stats().Written > 0 })

	s.stop()
	if s.up() {
		t.Fatal("influxd still answers after stop")
	}
	before := w.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // generous: the calls take milliseconds
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10_000 {
			w.Telemetry(simulated(i%3, i%120))
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("10,000 Telemetry calls did not return while InfluxDB was down")
	}
	eventually(t, 30*time.Second, "dropped and errors rise while InfluxDB is down", func() bool {
		st := w.Stats()
		return st.Dropped > before.Dropped && st.Errors > before.Errors
	})
	down := w.Stats()
	if down.Pending > uint64(cfg.Buffer)+uint64(cfg.Queue)*3+3 {
		t.Fatalf("pending %d exceeds the buffer (%d) and queue (%d calls)", down.Pending, cfg.Buffer, cfg.Queue)
	}
	t.Logf("while down: %+v", down)

	h, err := NewHistory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Device(context.Background(), "box-a", hour0, hour0.Add(time.Hour), time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("history while down: %v, want ErrUnavailable", err)
	}

	s.start() // same data directory and port
	marker := wire.Telemetry{V: wire.Version, Device: "box-after", Seq: 1, At: hour0.Add(2 * time.Hour),
		Cameras: []wire.CameraHealth{{Camera: "cam1", FPS: 12, Grade: "fair", Connected: true}}}
	eventually(t, 60*time.Second, "writes work again after InfluxDB restarts", func() bool {
		w.Telemetry(marker) // new data is also what makes the client retry
		got, err := h.Device(context.Background(), "box-after", hour0.Add(2*time.Hour), hour0.Add(3*time.Hour), time.Hour)
		return err == nil && len(got.Cameras) == 1 && len(got.Cameras[0].FPS) == 1 && got.Cameras[0].FPS[0].V == 12
	})
	if st := w.Stats(); st.Written <= down.Written {
		t.Fatalf("written did not rise after the restart: %+v then %+v", down, st)
	}
	t.Logf("after restart: %+v", w.Stats())
}

// TestHungInfluxNeverBlocks points the writer at a server that accepts
// connections and never answers, where the client's own WritePoint would wait
// out the HTTP timeout.
func TestHungInfluxNeverBlocks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-hold; c.Close() }()
		}
	}()
	cfg := testConfig("http://" + l.Addr().String())
	cfg.Buffer, cfg.Queue, cfg.HTTPTimeout, cfg.CloseTimeout = 500, 64, time.Second, time.Second
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10_000 {
			w.Telemetry(simulated(i%3, i%120))
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second): // generous: the calls take milliseconds
		t.Fatal("10,000 Telemetry calls did not return while InfluxDB hung")
	}
	if st := w.Stats(); st.Dropped == 0 || st.Written != 0 {
		t.Fatalf("stats %+v: want drops and nothing written", st)
	}
	eventually(t, 30*time.Second, "the hung request times out and counts as an error", func() bool { return w.Stats().Errors > 0 })
	if err := w.Close(); err == nil { // gives up after CloseTimeout
		t.Fatal("Close reported no loss although nothing was written")
	}
}

func TestHandlerErrors(t *testing.T) {
	h, err := NewHistory(testConfig(deadURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return hour0 }
	app := fiber.New()
	app.Get("/api/v1/devices/:id/history", h.Handler())
	var none *History
	app.Get("/none/:id", none.Handler())
	for _, tc := range []struct {
		path     string
		code     int
		contains string
	}{
		{"/api/v1/devices/Box_A/history", 400, "id: "},
		{"/api/v1/devices/box-a/history?from=yesterday", 400, "from: "},
		{"/api/v1/devices/box-a/history?to=2026-13-01T00:00:00Z", 400, "to: "},
		{"/api/v1/devices/box-a/history?from=2026-01-15T09:00:00Z&to=2026-01-15T08:00:00Z", 400, "from: must be before to"},
		{"/api/v1/devices/box-a/history?every=often", 400, "every: "},
		{"/api/v1/devices/box-a/history?every=0s", 400, "every: "},
		{"/api/v1/devices/box-a/history?every=1s", 400, "every: 1s over 24h0m0s gives 86400 samples"},
		{"/api/v1/devices/box-a/history?from=2026-01-15T07:00:00Z&every=1m", 503, "InfluxDB is unreachable"},
		{"/api/v1/devices/box-a/history", 503, "InfluxDB is unreachable"},
		{"/none/box-a", 503, "telemetry history needs InfluxDB"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, app, tc.path)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if code != tc.code || !strings.Contains(e.Error, tc.contains) {
				t.Fatalf("%d %s, want %d containing %q", code, body, tc.code, tc.contains)
			}
		})
	}
}

func get(t *testing.T, app *fiber.App, path string) (int, string) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil), 30_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "http://127.0.0.1:8086"}, ""},
		{Config{URL: "http://127.0.0.1:8086", Database: "gw", RetentionPolicy: "one_year", Token: "u:p"}, ""},
		{Config{}, "url: missing"},
		{Config{URL: "127.0.0.1:8086"}, "url: "},
		{Config{URL: "ftp://host"}, "url: \"ftp://host\": want http"},
		{Config{URL: "http://h", Database: "a b"}, "database: "},
		{Config{URL: "http://h", RetentionPolicy: "x/y"}, "retention policy: "},
		{Config{URL: "http://h", Buffer: 10}, "buffer: 10 is smaller than one batch"},
		{Config{URL: "http://h", HTTPTimeout: time.Millisecond}, "http timeout"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if b := (Config{URL: "http://h"}).Bucket(); b != "gridwatch/autogen" {
		t.Errorf("bucket %q", b)
	}
}

func TestFluxDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1s500ms", 24 * time.Hour: "24h",
	} {
		if got := fluxDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

func TestGradeValue(t *testing.T) {
	for g, want := range map[string]int{"good": 3, "fair": 2, "poor": 1, "down": 0, "": -1} {
		if got := GradeValue(g); got != want {
			t.Errorf("%q: %d, want %d", g, got, want)
		}
	}
}

// BenchmarkTelemetryWrite measures what ingest pays per Telemetry call (one
// box and two cameras: three points) with InfluxDB up and with it down; the
// loop outruns InfluxDB, so most of those calls drop. end-to-end paces the
// calls so that none drop and reports the points per second that reach
// InfluxDB.
func BenchmarkTelemetryWrite(b *testing.B) {
	tms := make([]wire.Telemetry, 120)
	for i := range tms {
		tms[i] = simulated(i%3, i)
	}
	run := func(b *testing.B, url string, pace bool) {
		cfg := testConfig(url)
		cfg.BatchSize, cfg.FlushInterval = 500, time.Second
		w, err := NewWriter(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		t0 := time.Now()
		i := 0
		for b.Loop() {
			if pace {
				for w.Stats().Pending > 4096 { // under the queue's capacity, so nothing drops

					time.Sleep(100 * time.Microsecond)
				}
			}
			tm := tms[i%len(tms)]
			tm.At = hour0.Add(time.Duration(i) * time.Millisecond) // distinct points
			w.Telemetry(tm)
			i++
		}
		if err := w.Close(); err != nil && pace {
			b.Fatal(err)
		}
		st := w.Stats()
		b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped-points/op")
		if pace {
			b.ReportMetric(float64(st.Written)/time.Since(t0).Seconds(), "points/s")
		}
	}
	b.Run("influx-up", func(b *testing.B) { run(b, startInfluxd(b).URL, false) })
	b.Run("influx-down", func(b *testing.B) { run(b, deadURL(b), false) })
	b.Run("end-to-end", func(b *testing.B) { run(b, startInfluxd(b).URL, true) })
}
