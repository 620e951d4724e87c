// Package telemetry owns the fleet's history in InfluxDB: Writer turns the
// boxes' telemetry and the cloud's detections into points and writes them in
// batches, in the background, with retries, dropping (and counting) rather
// than ever making ingest wait; History reads the per-device series back with
// Flux for the fleet page and serves them as JSON. It speaks the InfluxDB v2
// API through influxdb-client-go/v2, which InfluxDB 1.8 serves with
// `flux-enabled = true` (hack/influxdb.sh starts such a server).
package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"
)

// Config says where InfluxDB is and how the writer batches and retries.
// Zero values take the defaults below.
type Config struct {
	URL             string // base URL, e.g. http://127.0.0.1:8086
	Database        string // InfluxDB 1.x database (default "gridwatch")
	RetentionPolicy string // default "autogen"
	Token           string // "user:pass" when InfluxDB has auth enabled; empty otherwise

	BatchSize        uint          // points per write request (default 500)
	FlushInterval    time.Duration // a partial batch waits at most this long (default 1 s)
	MaxRetries       uint          // retries of a failed batch before it is dropped (default 5)
	RetryInterval    time.Duration // first retry delay, doubled per attempt (default 1 s)
	MaxRetryInterval time.Duration // cap on the retry delay (default 30 s)
	Buffer           int           // points held for InfluxDB (batched or awaiting retry) before new ones are dropped (default 50,000)
	Queue            int           // hand-off queue between callers and the writer goroutine, in calls (default 4,096)
	HTTPTimeout      time.Duration // one write or query request (default 10 s)
	CloseTimeout     time.Duration // Close waits at most this long for the last writes (default 10 s)

	Log *slog.Logger // default slog.Default()
}

// Defaults.
const (
	DefaultDatabase        = "gridwatch"
	DefaultRetentionPolicy = "autogen"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.RetentionPolicy == "" {
		c.RetentionPolicy = DefaultRetentionPolicy
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	def(&c.FlushInterval, time.Second)
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	def(&c.RetryInterval, time.Second)
	def(&c.MaxRetryInterval, 30*time.Second)
	if c.Buffer == 0 {
		c.Buffer = 50_000
	}
	if c.Queue == 0 {
		c.Queue = 4096
	}
	def(&c.HTTPTimeout, 10*time.Second)
	def(&c.CloseTimeout, 10*time.Second)
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate names the first bad field. It checks the configuration as given,
// after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("url: missing (e.g. http://127.0.0.1:8086)")
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url: %q: want http:// or https://", c.URL)
	case u.Host == "":
		return fmt.Errorf("url: %q: no host", c.URL)
	case !nameRE.MatchString(c.Database):
		return fmt.Errorf("database: %q: want 1-64 of [A-Za-z0-9_-]", c.Database)
	case !nameRE.MatchString(c.RetentionPolicy):
		return fmt.Errorf("retention policy: %q: want 1-64 of [A-Za-z0-9_-]", c.RetentionPolicy)
	case c.Buffer < 0 || c.Queue < 0:
		return errors.New("buffer/queue: negative")
	case c.Buffer < int(c.BatchSize):
		return fmt.Errorf("buffer: %d is smaller than one batch (%d)", c.Buffer, c.BatchSize)
	case c.FlushInterval < time.Millisecond || c.RetryInterval < time.Millisecond || c.MaxRetryInterval < c.RetryInterval:
		return errors.New("flush/retry intervals: want >= 1ms and max retry interval >= retry interval")
	case c.HTTPTimeout < time.Second:
		return errors.New("http timeout: want >= 1s")
	}
	return nil
}

// Bucket is the v2 API's name for database/retention-policy.
func (c Config) Bucket() string {
	c = c.withDefaults()
	return c.Database + "/" + c.RetentionPolicy
}

func ms(d time.Duration) uint { return uint(d / time.Millisecond) }
