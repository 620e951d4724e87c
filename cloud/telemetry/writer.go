package telemetry

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	apihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Measurements and the grade scale. grade is numeric so that it can be
// averaged over a window; grade_text keeps the word.
const (
	MeasurementBox        = "box"
	MeasurementCamera     = "camera"
	MeasurementDetections = "detections"
)

// GradeValue maps a camera's connection grade to 0 (down) … 3 (good); -1 for
// an unknown word.
func GradeValue(grade string) int {
	switch grade {
	case "good":
		return 3
	case "fair":
		return 2
	case "poor":
		return 1
	case "down":
		return 0
	}
	return -1
}

// Stats counts points since the writer started.
type Stats struct {
	Written uint64 `json:"written"` // acknowledged by InfluxDB
	Dropped uint64 `json:"dropped"` // given up: buffer full, retries exhausted, or refused by InfluxDB
	Errors  uint64 `json:"errors"`  // failed write requests (each attempt counts)
	Pending uint64 `json:"pending"` // accepted and not yet written or dropped
}

// Writer writes telemetry and detections to InfluxDB without ever making the
// caller wait. It wraps the client's non-blocking WriteAPI (batching, flush
// interval, retries with back-off) and adds what that API lacks for ingest:
//
//   - WriteAPI.WritePoint blocks while a write request is in flight (its
//     channels are unbuffered), for up to the HTTP timeout when InfluxDB hangs.
//     Callers therefore hand their data to a bounded queue that one goroutine
//     feeds into the WriteAPI; when the queue is full the call drops and counts.
//   - The WriteAPI retries only when new data arrives and evicts the oldest
//     batch silently when its retry buffer overflows. The feeding goroutine
//     keeps about Buffer points inside the WriteAPI, far below the limit at
//     which it would evict, and while full lets one call through every
//     RetryInterval, so that a recovered InfluxDB is retried even though
//     nothing else gets in.
//   - It reports neither success nor most drops. An http.RoundTripper counts
//     acknowledged points and failed requests; the write-failed callback
//     decides when a batch has had its retries and counts it dropped.
//
// Counters are exact except when InfluxDB refuses a batch that was already
// waiting for retry (a 4xx such as "database not found" after an outage):
// the client keeps retrying that batch and each refusal counts it again.
type Writer struct {
	cfg    Config
	client influxdb2.Client
	api    api.WriteAPI

	queue chan item     // caller → feeder
	room  chan struct{} // the WriteAPI let go of points
	stop  chan struct{}
	done  chan struct{}

	mu     sync.RWMutex // guards closed against calls racing Close
	closed bool

	queued                           atomic.Int64  // points in queue
	handed, written, dropped, errors atomic.Uint64 // handed: points given to the WriteAPI
	droppedInside                    atomic.Uint64 // the part of dropped that had been handed
	failing                          atomic.Bool
}

// NewWriter starts a writer. It does not contact InfluxDB: an unreachable
// server shows in Stats and the log, never as an error here.
func NewWriter(cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	cfg = cfg.withDefaults()
	w := &Writer{
		cfg:   cfg,
		queue: make(chan item, cfg.Queue),
		room:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	opts := influxdb2.DefaultOptions().
		SetApplicationName("gridwatch-cloud").
		SetHTTPClient(&http.Client{Timeout: cfg.HTTPTimeout, Transport: &countingTransport{w: w, base: http.DefaultTransport}}).
		SetBatchSize(cfg.BatchSize).
		SetFlushInterval(ms(cfg.FlushInterval)).
		SetRetryInterval(ms(cfg.RetryInterval)).
		SetMaxRetryInterval(ms(cfg.MaxRetryInterval)).
		// The callback below gives up after cfg.MaxRetries; the client's own
		// limits, which drop silently, must never be reached first.
		SetMaxRetries(cfg.MaxRetries + 1).
		SetMaxRetryTime(ms(365 * 24 * time.Hour)).
		// In batches this is Buffer*2: each batch holds at least one point and
		// the feeder keeps at most about Buffer points inside.
		SetRetryBufferLimit(uint(cfg.Buffer) * 2 * cfg.BatchSize).
		SetUseGZip(false) // countingTransport reads the line protocol
	routeClientLog(cfg.Log)
	w.client = influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	w.api = w.client.WriteAPI("", cfg.Bucket())
	w.api.SetWriteFailedCallback(w.writeFailed)
	// An unread error channel blocks WritePoint after an encoding error
	// (influxdb-client-go#384); points are built so that encoding cannot fail,
	// and this drains the channel anyway.
	errs := w.api.Errors()
	go func() {
		for err := range errs {
			cfg.Log.Debug("influxdb write", "err", err)
		}
	}()
	go w.feed()
	return w, nil
}

// item is one call waiting in the queue. Points are built by the feeder, so
// that a call costs its caller a copy and a channel send.
type item struct {
	tel                         wire.Telemetry
	det                         bool // a detection: the fields below
	device, camera, kind, state string
	at                          time.Time
}

func (it *item) points() int {
	if it.det {
		return 1
	}
	return 1 + len(it.tel.Cameras)
}

// Telemetry writes a box point and one point per camera, stamped with the
// box's time. It never blocks: when the buffer is full the points are dropped
// and counted.
func (w *Writer) Telemetry(t wire.Telemetry) {
	t.Cameras = slices.Clone(t.Cameras) // the caller may reuse its slice
	w.enqueue(item{tel: t})
}

// Detection counts one detection (field count=1) so that Flux can sum them
// per window, device, camera, kind or state. It never blocks.
func (w *Writer) Detection(device, camera, kind, state string, at time.Time) {
	w.enqueue(item{det: true, device: device, camera: camera, kind: kind, state: state, at: at})
}

func (w *Writer) enqueue(it item) {
	n := it.points()
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(uint64(n))
		return
	}
	select {
	case w.queue <- it:
		w.queued.Add(int64(n))
	default:
		w.dropped.Add(uint64(n))
	}
}

// build turns a call into points. Field types stay fixed (InfluxDB refuses a
// field that changes type within a shard); unsigned counters are written as
// signed integers because InfluxDB 1.x line protocol has no unsigned type.
func (it *item) build() []*write.Point {
	at := it.at
	if !it.det {
		at = it.tel.At
	}
	if at.IsZero() {
		at = time.Now()
	}
	if it.det {
		p := write.NewPointWithMeasurement(MeasurementDetections).AddTag("device", it.device).SetTime(at)
		for _, kv := range [][2]string{{"camera", it.camera}, {"kind", it.kind}, {"state", it.state}} {
			if kv[1] != "" {
				p.AddTag(kv[0], kv[1])
			}
		}
		return []*write.Point{p.AddField("count", int64(1))}
	}
	t := &it.tel
	pts := make([]*write.Point, 0, 1+len(t.Cameras))
	b := write.NewPointWithMeasurement(MeasurementBox).AddTag("device", t.Device).SetTime(at).
		AddField("outbox_depth", int64(t.OutboxDepth)).
		AddField("outbox_dropped", clampInt(t.OutboxDropped)).
		AddField("evidence_pending", int64(t.EvidencePending)).
		AddField("disk_free_bytes", clampInt(t.DiskFreeBytes))
	addFloat(b, "uptime_s", t.UptimeS)
	if t.CPUTempC != 0 { // omitted on the wire when the box has no sensor
		addFloat(b, "cpu_temp_c", t.CPUTempC)
	}
	pts = append(pts, b)
	for _, c := range t.Cameras {
		p := write.NewPointWithMeasurement(MeasurementCamera).
			AddTag("camera", c.Camera).AddTag("device", t.Device).SetTime(at).
			AddField("connected", c.Connected).
			AddField("reconnects", clampInt(c.Reconnects)).
			AddField("dropped", clampInt(c.Dropped)).
			AddField("grade_text", c.Grade)
		if g := GradeValue(c.Grade); g >= 0 {
			p.AddField("grade", int64(g))
		}
		addFloat(p, "fps", c.FPS)
		addFloat(p, "bitrate_kbps", c.BitrateKbps)
		addFloat(p, "keyframe_interval_s", c.KeyframeS)
		addFloat(p, "decode_ms", c.DecodeMs)
		addFloat(p, "analysis_ms", c.AnalysisMs)
		pts = append(pts, p)
	}
	return pts
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	return Stats{Written: w.written.Load(), Dropped: w.dropped.Load(), Errors: w.errors.Load(),
		Pending: uint64(max(w.inside(), 0) + max(w.queued.Load(), 0))}
}

// inside is the number of points the WriteAPI holds: in its batch buffer,
// in flight, or waiting for a retry.
func (w *Writer) inside() int64 {
	return int64(w.handed.Load()) - int64(w.written.Load()) - int64(w.droppedInside.Load())
}

// feed moves points from the queue into the WriteAPI, keeping fewer than
// Buffer inside it.
func (w *Writer) feed() {
	defer close(w.done)
	probe := time.NewTimer(time.Hour)
	defer probe.Stop()
	for {
		select {
		case it := <-w.queue:
			n := it.points()
			w.queued.Add(-int64(n))
			if !w.waitRoom(n, probe) {
				w.dropped.Add(uint64(n))
				continue
			}
			w.hand(it.build())
		case <-w.stop:
			// Close: hand over what is queued while there is room, drop the rest.
			for {
				select {
				case it := <-w.queue:
					n := it.points()
					w.queued.Add(-int64(n))
					if w.inside()+int64(n) <= int64(w.cfg.Buffer) {
						w.hand(it.build())
					} else {
						w.dropped.Add(uint64(n))
					}
				default:
					return
				}
			}
		}
	}
}

func (w *Writer) hand(pts []*write.Point) {
	w.handed.Add(uint64(len(pts)))
	for _, p := range pts {
		w.api.WritePoint(p)
	}
}

// waitRoom waits until n more points fit under Buffer. While InfluxDB is down
// nothing leaves, and the client retries only when new points arrive, so after
// RetryInterval one call is let through as a probe. False means: closing,
// drop them.
func (w *Writer) waitRoom(n int, probe *time.Timer) bool {
	if w.inside()+int64(n) <= int64(w.cfg.Buffer) {
		return true
	}
	probe.Reset(w.cfg.RetryInterval)
	for {
		select {
		case <-w.room:
			if w.inside()+int64(n) <= int64(w.cfg.Buffer) {
				return true
			}
		case <-probe.C:
			return true
		case <-w.stop:
			return false
		}
	}
}

func (w *Writer) signalRoom() {
	select {
	case w.room <- struct{}{}:
	default:
	}
}

// writeFailed is the WriteAPI's callback for a retryable failure (no
// connection, 429, 5xx): true keeps the batch for another attempt.
func (w *Writer) writeFailed(batch string, _ apihttp.Error, attempts uint) bool {
	if attempts < w.cfg.MaxRetries {
		return true
	}
	n := uint64(strings.Count(batch, "\n"))
	w.dropped.Add(n)
	w.droppedInside.Add(n)
	w.signalRoom()
	return false
}

// Close hands over what is queued, flushes the WriteAPI and waits for it at
// most CloseTimeout. Points it could not write are counted dropped. Calls
// after Close drop.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	flushed := make(chan struct{})
	go func() {
		w.client.Close() // flushes the WriteAPI: each waiting batch gets one more attempt
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(w.cfg.CloseTimeout):
		return fmt.Errorf("telemetry: close: InfluxDB did not take the last %d points within %s", max(w.inside(), 0), w.cfg.CloseTimeout)
	}
	// The final flush does not retry or call back: whatever it did not write is lost.
	if n := w.inside(); n > 0 {
		w.dropped.Add(uint64(n))
		w.droppedInside.Add(uint64(n))
		return fmt.Errorf("telemetry: close: %d points not written to InfluxDB", n)
	}
	return nil
}

// countingTransport sees every write request: it counts the points InfluxDB
// acknowledged, the requests that failed, and the points of batches InfluxDB
// refused for good (4xx other than 429: the client does not retry those).
type countingTransport struct {
	w    *Writer
	base http.RoundTripper
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/api/v2/write") || req.Body == nil {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	n := uint64(bytes.Count(body, []byte{'\n'}))
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	w := t.w
	resp, err := t.base.RoundTrip(r)
	switch {
	case err != nil:
		w.failed(err.Error())
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		w.written.Add(n)
		w.signalRoom()
		if w.failing.Swap(false) {
			w.cfg.Log.Info("InfluxDB writes recovered", "written", w.written.Load(), "dropped", w.dropped.Load())
		}
	case resp.StatusCode >= http.StatusTooManyRequests:
		w.failed(resp.Status)
	default:
		w.failed(resp.Status)
		w.dropped.Add(n)
		w.droppedInside.Add(n)
		w.signalRoom()
	}
	return resp, err
}

func (w *Writer) failed(why string) {
	w.errors.Add(1)
	if !w.failing.Swap(true) {
		w.cfg.Log.Warn("InfluxDB writes failing: points wait for retry and are dropped when the buffer is full",
			"url", w.cfg.URL, "bucket", w.cfg.Bucket(), "err", why)
	}
}

func clampInt(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// addFloat skips NaN and ±Inf, which line protocol cannot carry.
func addFloat(p *write.Point, k string, v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		p.AddField(k, v)
	}
}

var _ http.RoundTripper = (*countingTransport)(nil)
