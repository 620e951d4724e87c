package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	apihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Sample is one aggregated value: the mean over the window that ends at T.
type Sample struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
}

// CameraHistory is one camera's series.
type CameraHistory struct {
	Camera   string   `json:"camera"`
	FPS      []Sample `json:"fps"`
	Grade    []Sample `json:"grade"` // 0 down … 3 good (GradeValue)
	DecodeMs []Sample `json:"decode_ms"`
}

// BoxHistory is the box's own series.
type BoxHistory struct {
	OutboxDepth []Sample `json:"outbox_depth"`
}

// DeviceHistory is what the fleet page charts for one box.
type DeviceHistory struct {
	Device  string          `json:"device"`
	From    time.Time       `json:"from"`
	To      time.Time       `json:"to"`
	Every   string          `json:"every"` // Go duration, e.g. "5m0s"
	Box     BoxHistory      `json:"box"`
	Cameras []CameraHistory `json:"cameras"` // sorted by camera
}

// ErrUnavailable wraps every failure to reach InfluxDB (connection refused,
// timeout, 5xx), as opposed to a query InfluxDB rejected.
var ErrUnavailable = errors.New("InfluxDB is unreachable")

// MaxSamples bounds one series: from, to and every must not ask for more.
const MaxSamples = 5000

// History reads the fleet's series back with Flux. A nil *History is valid
// and means "no InfluxDB configured": its handler answers 503 saying so.
type History struct {
	cfg    Config
	client influxdb2.Client
	query  api.QueryAPI
	now    func() time.Time
}

// NewHistory prepares queries; it does not contact InfluxDB.
func NewHistory(cfg Config) (*History, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	cfg = cfg.withDefaults()
	opts := influxdb2.DefaultOptions().
		SetApplicationName("gridwatch-cloud").
		SetHTTPClient(&http.Client{Timeout: cfg.HTTPTimeout})
	routeClientLog(cfg.Log)
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &History{cfg: cfg, client: c, query: c.QueryAPI(""), now: time.Now}, nil
}

// Close releases idle connections.
func (h *History) Close() {
	if h != nil {
		h.client.Close()
	}
}

// Device returns the device's camera series (fps, grade, decode_ms) and box
// series (outbox_depth), each the mean per window of length every over
// [from, to). Windows without data are left out rather than filled.
func (h *History) Device(ctx context.Context, device string, from, to time.Time, every time.Duration) (DeviceHistory, error) {
	if err := wire.ValidDeviceID(device); err != nil { // also what keeps the Flux string literal safe
		return DeviceHistory{}, err
	}
	if !from.Before(to) {
		return DeviceHistory{}, fmt.Errorf("from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if every <= 0 {
		return DeviceHistory{}, fmt.Errorf("every %s: must be positive", every)
	}
	// The second filter is there because InfluxDB 1.8's storage returns points
	// at range's stop too (influxdata/influxdb#19966), which aggregateWindow
	// then puts in a window of their own.
	q := fmt.Sprintf(`from(bucket: %[1]q)
  |> range(start: %[2]s, stop: %[3]s)
  |> filter(fn: (r) => r._time < %[3]s)
  |> filter(fn: (r) => r.device == %[4]q)
  |> filter(fn: (r) =>
       (r._measurement == %[5]q and (r._field == "fps" or r._field == "grade" or r._field == "decode_ms")) or
       (r._measurement == %[6]q and r._field == "outbox_depth"))
  |> aggregateWindow(every: %[7]s, fn: mean, createEmpty: false)
  |> keep(columns: ["_time", "_value", "_field", "_measurement", "camera"])`,
		h.cfg.Bucket(), from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), device,
		MeasurementCamera, MeasurementBox, fluxDuration(every))
	res, err := h.query.Query(ctx, q)
	if err != nil {
		return DeviceHistory{}, classify(err)
	}
	defer res.Close()
	out := DeviceHistory{Device: device, From: from.UTC(), To: to.UTC(), Every: every.String(),
		Box: BoxHistory{OutboxDepth: []Sample{}}, Cameras: []CameraHistory{}}
	cams := map[string]*CameraHistory{}
	for res.Next() {
		r := res.Record()
		v, ok := toFloat(r.Value())
		if !ok {
			continue
		}
		s := Sample{T: r.Time().UTC(), V: v}
		if r.Measurement() == MeasurementBox {
			out.Box.OutboxDepth = append(out.Box.OutboxDepth, s)
			continue
		}
		name, _ := r.ValueByKey("camera").(string)
		c := cams[name]
		if c == nil {
			c = &CameraHistory{Camera: name, FPS: []Sample{}, Grade: []Sample{}, DecodeMs: []Sample{}}
			cams[name] = c
		}
		switch r.Field() {
		case "fps":
			c.FPS = append(c.FPS, s)
		case "grade":
			c.Grade = append(c.Grade, s)
		case "decode_ms":
			c.DecodeMs = append(c.DecodeMs, s)
		}
	}
	if err := res.Err(); err != nil {
		return DeviceHistory{}, classify(err)
	}
	for _, c := range cams {
		for _, ss := range [][]Sample{c.FPS, c.Grade, c.DecodeMs} {
			sortSamples(ss)
		}
		out.Cameras = append(out.Cameras, *c)
	}
	sortSamples(out.Box.OutboxDepth)
	sort.Slice(out.Cameras, func(i, j int) bool { return out.Cameras[i].Camera < out.Cameras[j].Camera })
	return out, nil
}

// Handler serves GET /api/v1/devices/:id/history?from=&to=&every= with
// RFC 3339 times (default: the last 24 hours) and a Go duration for every
// (default: about 200 windows, at least 1m). Bad parameters give 400 naming
// the parameter; no InfluxDB configured or reachable gives 503.
func (h *History) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if h == nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"error": "telemetry history needs InfluxDB: start gridwatch-cloud with --influx URL"})
		}
		device := c.Params("id")
		if err := wire.ValidDeviceID(device); err != nil {
			return badParam(c, "id", err.Error())
		}
		to := h.now().UTC()
		if s := c.Query("to"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return badParam(c, "to", fmt.Sprintf("%q is not an RFC 3339 time (e.g. 2026-11-27T12:00:00Z)", s))
			}
			to = t
		}
		from := to.Add(-24 * time.Hour)
		if s := c.Query("from"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return badParam(c, "from", fmt.Sprintf("%q is not an RFC 3339 time (e.g. 2026-11-26T12:00:00Z)", s))
			}
			from = t
		}
		if !from.Before(to) {
			return badParam(c, "from", "must be before to")
		}
		every := max((to.Sub(from) / 200).Round(time.Minute), time.Minute)
		if s := c.Query("every"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second {
				return badParam(c, "every", fmt.Sprintf("%q is not a duration of at least 1s (e.g. 5m)", s))
			}
			every = d
		}
		if n := to.Sub(from) / every; n > MaxSamples {
			return badParam(c, "every", fmt.Sprintf("%s over %s gives %d samples per series; at most %d", every, to.Sub(from), n, MaxSamples))
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), h.cfg.HTTPTimeout)
		defer cancel()
		dh, err := h.Device(ctx, device, from, to, every)
		if errors.Is(err, ErrUnavailable) {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"error": "telemetry history is unavailable: " + err.Error()})
		}
		if err != nil {
			return fiber.NewError(fiber.StatusBadGateway, "telemetry history: "+err.Error())
		}
		return c.JSON(dh)
	}
}

func badParam(c *fiber.Ctx, param, msg string) error {
	return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": param + ": " + msg})
}

// classify marks the errors that mean "InfluxDB is not there" with ErrUnavailable.
func classify(err error) error {
	var he *apihttp.Error
	var ne net.Error
	switch {
	case errors.As(err, &he) && (he.StatusCode == 0 || he.StatusCode >= 500):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("flux query: %w", err)
}

// fluxDuration writes d as a Flux duration literal (1h30m → 1h30m, 1.5s → 1500ms).
func fluxDuration(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}, {"ns", 1}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.unit)
			d -= n * u.d
		}
	}
	return b.String()
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func sortSamples(s []Sample) {
	sort.Slice(s, func(i, j int) bool { return s[i].T.Before(s[j].T) })
}
