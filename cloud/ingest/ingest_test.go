package ingest_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/ingest"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

const (
	goldenDevice = "box-chaoyang-0001"
	powerCover   = "1101050105000123"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cloud is the cloud side of one test: a real embedded broker, a SQLite
// store, the case engine and ingest.
type cloud struct {
	t      *testing.T
	broker *broker.Broker
	store  *store.Store
	dbPath string
	log    *slog.Logger

	in   *ingest.Ingest
	stop func() // stops the running ingest and waits for Run to return
	// fleet, when set before startIngest, is the engine's fleet registry.
	fleet *registry.Fleet
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	logs := new(syncBuffer)
	// Registered first so that it runs last, after everything below stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := broker.Start("127.0.0.1:0", log.With("component", "broker"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dbPath := filepath.Join(t.TempDir(), "gridwatch.db")
	st, err := store.OpenSQLite(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &cloud{t: t, broker: b, store: st, dbPath: dbPath, log: log}
	t.Cleanup(func() {
		if c.stop != nil {
			c.stop()
		}
	})
	return c
}

// startIngest runs a fresh Ingest (same client id every time, as the cloud
// binary does) until stopIngest or the end of the test.
func (c *cloud) startIngest() {
	c.t.Helper()
	if c.stop != nil {
		c.t.Fatal("ingest already running")
	}
	engine := &cases.Engine{Store: c.store, Registry: registry.Demo(), Log: c.log.With("component", "cases"), Fleet: c.fleet}
	c.in = &ingest.Ingest{BrokerURL: c.broker.URL(), ClientID: "gridwatch-cloud", Applier: engine, Sink: c.store,
		Log: c.log.With("component", "ingest")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	in := c.in
	go func() { done <- in.Run(ctx) }()
	c.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.t.Error("ingest.Run did not return within 10 s of cancel")
		}
	}
}

func (c *cloud) stopIngest() {
	c.stop()
	c.stop = nil
}

// publisher connects a paho client like an edge box's uplink.
func (c *cloud) publisher(id string) mqtt.Client {
	c.t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(c.broker.URL()).SetClientID(id).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	p := mqtt.NewClient(opts)
	wait(c.t, "connect "+id, p.Connect())
	c.t.Cleanup(func() { p.Disconnect(100) })
	return p
}

func wait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func publish(t *testing.T, p mqtt.Client, topic string, retained bool, payload []byte) {
	t.Helper()
	wait(t, "publish "+topic, p.Publish(topic, 1, retained, payload))
}

// ready waits until ingest is subscribed: a retained status of a probe
// device, which the broker hands over on subscription, shows up in the
// store. Both subscriptions are made in one SUBSCRIBE, so reports flow too.
func (c *cloud) ready(p mqtt.Client) {
	c.t.Helper()
	const probe = "ingest-probe"
	st := fmt.Sprintf(`{"v":1,"device":%q,"online":true,"at":"2026-11-27T12:00:00Z"}`, probe)
	publish(c.t, p, wire.Topic(probe, wire.KindStatus), true, []byte(st))
	eventually(c.t, "ingest subscribed", func() bool {
		ds, err := c.store.Devices(context.Background())
		if err != nil {
			c.t.Fatal(err)
		}
		for _, d := range ds {
			if d.Device == probe {
				return true
			}
		}
		return false
	})
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cloud) cases() []store.Case {
	c.t.Helper()
	cs, err := c.store.Cases(context.Background(), 100)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

type deadLetter struct{ topic, reason, payload string }

// deadLetters reads the table directly: the store has no reader for it yet.
func (c *cloud) deadLetters() []deadLetter {
	c.t.Helper()
	db, err := sql.Open("sqlite", "file:"+c.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT topic, reason, payload FROM dead_letters ORDER BY id`)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []deadLetter
	for rows.Next() {
		var d deadLetter
		var payload []byte
		if err := rows.Scan(&d.topic, &d.reason, &payload); err != nil {
			c.t.Fatal(err)
		}
		d.payload = string(payload)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "edge", "wire", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reportTopic(device string) string { return wire.Topic(device, wire.KindReport) }

func TestGoldenReportOpensCase(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher(goldenDevice)
	c.ready(p)

	publish(t, p, reportTopic(goldenDevice), false, golden(t, "report-cover-new.json"))
	eventually(t, "a case", func() bool { return len(c.cases()) > 0 })
	cs := c.cases()
	if len(cs) != 1 || cs[0].FacilityID != powerCover || cs[0].OwnerDepartment != "dept-power" || cs[0].Device != goldenDevice {
		t.Errorf("cases = %+v, want one case for %s owned by dept-power", cs, powerCover)
	}
	// The counters move just after the commit that made the case visible.
	eventually(t, "counted", func() bool { return c.in.Stats().Accepted == 1 })
	if s := c.in.Stats(); s.Accepted != 1 || s.Cases != 1 || s.Duplicates != 0 || s.DeadLetters != 0 {
		t.Errorf("Stats = %+v, want 1 accepted, 1 case", s)
	}

	// The end report joins it and marks it restored.
	publish(t, p, reportTopic(goldenDevice), false, golden(t, "report-cover-end.json"))
	eventually(t, "restored", func() bool { return !c.cases()[0].RestoredAt.IsZero() })
	if cs := c.cases(); len(cs) != 1 {
		t.Errorf("%d cases after the end report, want 1", len(cs))
	}
}

func TestDuplicatePayloadIsAppliedOnce(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher(goldenDevice)
	c.ready(p)

	payload := golden(t, "report-cover-new.json")
	publish(t, p, reportTopic(goldenDevice), false, payload)
	publish(t, p, reportTopic(goldenDevice), false, payload)
	eventually(t, "both handled", func() bool {
		s := c.in.Stats()
		return s.Accepted+s.Duplicates >= 2
	})
	if s := c.in.Stats(); s.Accepted != 1 || s.Duplicates != 1 || s.Cases != 1 || s.DeadLetters != 0 {
		t.Errorf("Stats = %+v, want 1 accepted, 1 duplicate, 1 case", s)
	}
	if cs := c.cases(); len(cs) != 1 {
		t.Errorf("%d cases, want 1", len(cs))
	}
	if n, _ := c.store.ReportCount(context.Background()); n != 1 {
		t.Errorf("ReportCount = %d, want 1", n)
	}
}

func TestBadMessagesAreDeadLettered(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher("box-1")
	c.ready(p)

	// The reason must name the problem; the same substrings edge/wire's own
	// tests expect of DecodeReport.
	wantReason := map[string]string{
		"wrong-version.json":        "v: got 2",
		"unknown-field.json":        `unknown field "extra"`,
		"bad-facility.json":         "facility_id",
		"zero-seq.json":             "seq",
		"wildcard-device.json":      "device",
		"bad-phase.json":            "phase",
		"not-json.json":             "invalid character",
		"object-without-score.json": "object_score",
		"object-on-cover.json":      "object: only occupation reports",
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "edge", "wire", "testdata", "bad", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad examples found: %v", err)
	}
	for _, f := range files {
		if _, ok := wantReason[filepath.Base(f)]; !ok {
			t.Errorf("%s: no expected reason in this test; add one", filepath.Base(f))
		}
	}
	good := golden(t, "report-cover-new.json")

	for i, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, p, reportTopic("box-1"), false, payload)
			eventually(t, "dead letter", func() bool { return len(c.deadLetters()) > i })
			dl := c.deadLetters()[i]
			if dl.topic != reportTopic("box-1") || dl.payload != string(payload) {
				t.Errorf("dead letter = %+v, want the message as published", dl)
			}
			if want := wantReason[name]; !strings.Contains(dl.reason, want) {
				t.Errorf("reason %q does not contain %q", dl.reason, want)
			}
		})
	}
	if n, err := c.store.DeadLetterCount(context.Background()); err != nil || n != len(files) {
		t.Errorf("DeadLetterCount = %d, %v; want %d", n, err, len(files))
	}
	if s := c.in.Stats(); s.DeadLetters != uint64(len(files)) || s.Accepted != 0 {
		t.Errorf("Stats = %+v, want %d dead letters and nothing accepted", s, len(files))
	}

	// Ingest keeps working afterwards.
	p2 := c.publisher(goldenDevice)
	publish(t, p2, reportTopic(goldenDevice), false, good)
	eventually(t, "a case after the bad messages", func() bool { return len(c.cases()) == 1 })
}

func TestRefusedReports(t *testing.T) {
	newReport := func(t *testing.T) []byte { return golden(t, "report-cover-new.json") }
	tests := []struct {
		name    string
		topic   string
		payload func(*testing.T) []byte
		reason  string
	}{
		{
			name:    "report claims another device",
			topic:   reportTopic("box-other"),
			payload: newReport,
			reason:  "claims device",
		},
		{
			name:    "device id in topic is not valid",
			topic:   reportTopic("BOX-UPPER"),
			payload: newReport,
			reason:  "device id",
		},
		{
			name:  "unknown facility",
			topic: reportTopic(goldenDevice),
			payload: func(t *testing.T) []byte {
				return bytes.Replace(newReport(t), []byte(`"facility_id": "`+powerCover), []byte(`"facility_id": "1101059999999999`), 1)
			},
			reason: "unknown facility",
		},
		{
			name:    "status claims another device",
			topic:   wire.Topic("box-other", wire.KindStatus),
			payload: func(t *testing.T) []byte { return golden(t, "status-online.json") },
			reason:  "status for device",
		},
		{
			name:    "status is a report",
			topic:   wire.Topic(goldenDevice, wire.KindStatus),
			payload: newReport,
			reason:  "status: json: unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCloud(t)
			c.startIngest()
			p := c.publisher("publisher")
			c.ready(p)

			payload := tt.payload(t)
			publish(t, p, tt.topic, false, payload)
			eventually(t, "dead letter", func() bool { return len(c.deadLetters()) > 0 })
			dl := c.deadLetters()
			if len(dl) != 1 || !strings.Contains(dl[0].reason, tt.reason) || dl[0].topic != tt.topic {
				t.Errorf("dead letters = %+v, want one on %s whose reason contains %q", dl, tt.topic, tt.reason)
			}
			if cs := c.cases(); len(cs) != 0 {
				t.Errorf("%d cases, want none", len(cs))
			}
			if n, _ := c.store.ReportCount(context.Background()); n != 0 {
				t.Errorf("ReportCount = %d, want 0", n)
			}
		})
	}
}

func TestStatusOnlineThenOffline(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher(goldenDevice)
	c.ready(p)

	device := func() (store.Device, bool) {
		ds, err := c.store.Devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Device == goldenDevice {
				return d, true
			}
		}
		return store.Device{}, false
	}
	publish(t, p, wire.Topic(goldenDevice, wire.KindStatus), true, golden(t, "status-online.json"))
	eventually(t, "online", func() bool { d, ok := device(); return ok && d.Online })
	d, _ := device()
	if d.Software != "gridwatch-edge dev" || d.ConfigVer != "1" || d.LastSeen.IsZero() ||
		!d.StatusAt.Equal(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("device = %+v, want the online status's fields", d)
	}

	publish(t, p, wire.Topic(goldenDevice, wire.KindStatus), true, golden(t, "status-offline.json"))
	eventually(t, "offline", func() bool { d, ok := device(); return ok && !d.Online })
}

// At least once: reports published while ingest is down wait in the
// broker's session for ingest's client id and are applied after a restart.
// The broker sends them the moment the session resumes, before ingest has
// subscribed again, so several are queued to make that window count.
func TestReportsWhileStoppedAreProcessedAfterRestart(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher(goldenDevice)
	c.ready(p) // the persistent session and its subscriptions exist
	c.stopIngest()

	const n = 10
	first := golden(t, "report-cover-new.json")
	for i := range n {
		seq := 42 + i
		payload := bytes.Replace(first, []byte(`"seq": 42,`), []byte(fmt.Sprintf(`"seq": %d,`, seq)), 1)
		publish(t, p, reportTopic(goldenDevice), false, payload)
	}
	// mochi acknowledges a publish before it hands it to subscribers, and a
	// message handed to a session at the instant that session is taken over
	// can be lost (a broker race, not the behaviour under test). The broker
	// reads one connection's packets in order, so once a later publish is
	// acknowledged the reports sit in ingest's session.
	publish(t, p, "gridwatch/test/fence", false, []byte("fence"))
	if cs := c.cases(); len(cs) != 0 {
		t.Fatalf("%d cases while ingest is stopped", len(cs))
	}

	c.startIngest()
	eventually(t, "every report after restart", func() bool { return c.in.Stats().Accepted == n })
	if got, _ := c.store.ReportCount(context.Background()); got != n {
		t.Errorf("ReportCount = %d, want %d", got, n)
	}
	if cs := c.cases(); len(cs) != 1 {
		t.Errorf("%d cases, want the reports to share 1", len(cs))
	}
	if s := c.in.Stats(); s.Cases != 1 || s.Duplicates != 0 || s.DeadLetters != 0 {
		t.Errorf("Stats after restart = %+v, want %d accepted into 1 case", s, n)
	}
}

// A report refused for good (its facility is not registered) is kept as a dead letter and counts as
// received: the box's sequence has no hole, so nobody asks it to replay and its messages are
// confirmed past that number.
func TestRefusedReportLeavesNoHole(t *testing.T) {
	c := newCloud(t)
	c.startIngest()
	p := c.publisher(goldenDevice)
	c.ready(p)
	for seq := 1; seq <= 3; seq++ {
		b := bytes.Replace(golden(t, "report-cover-new.json"), []byte(`"seq": 42`), []byte(fmt.Sprintf(`"seq": %d`, seq)), 1)
		if seq == 2 {
			b = bytes.Replace(b, []byte(`"facility_id": "`+powerCover), []byte(`"facility_id": "1101059999999999`), 1)
		}
		if seq == 3 {
			b = bytes.Replace(b, []byte(`"phase": "new"`), []byte(`"phase": "update"`), 1)
		}
		publish(t, p, reportTopic(goldenDevice), false, b)
	}
	eventually(t, "the high-water mark at 3", func() bool {
		hw, _ := c.store.SeqHW(context.Background(), goldenDevice)
		return hw == 3
	})
	if dl := c.deadLetters(); len(dl) != 1 || !strings.Contains(dl[0].reason, "unknown facility") {
		t.Errorf("dead letters = %+v, want the unknown facility's report", dl)
	}
	if st := c.in.Stats(); st.ReplayRequests != 0 {
		t.Errorf("%d replay requests for a sequence without a real hole", st.ReplayRequests)
	}
}
