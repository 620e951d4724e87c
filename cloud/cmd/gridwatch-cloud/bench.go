package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	neturl "net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/calendar"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/ingest"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func init() { commands["bench"] = benchCmd }

const benchUsage = `usage:
  gridwatch-cloud bench ingest [--boxes 200] [--messages 100] [--covers 3] [--rate MSGS_PER_S]
                               [--broker tcp://HOST:PORT] [--postgres DSN] [--admin-dsn DSN]
                               [--json] [--cpuprofile FILE]

Publishes cover detections from many simulated boxes through a real MQTT broker. Each box publishes
its reports one at a time, waiting for the broker's PUBACK, as the edge outbox does.
  1. broker alone: as fast as the boxes can, to one subscriber that only counts;
  2. pipeline: as fast as the boxes can, into ingest, the case engine and PostgreSQL: throughput;
  3. pipeline at a steady rate (--rate; default half the broker-alone rate, the goal): latency from
     publication to the report's commit. (At full speed the pipeline is slower than the broker, so
     a backlog grows and latency measures the length of the run; phase 2 reports it too.)
Lost and duplicates are counted in the database over phases 2 and 3.
`

func benchCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprint(os.Stderr, benchUsage)
		return errors.New("bench: want a benchmark name (ingest)")
	}
	return benchIngest(ctx, args[1:])
}

// benchResult is what bench ingest prints; with --json, as its last line.
type benchResult struct {
	Boxes            int     `json:"boxes"`
	MessagesPerBox   int     `json:"messages_per_box"`
	Messages         int     `json:"messages"`
	BrokerMsgsPerS   float64 `json:"broker_msgs_per_s"`
	BrokerLost       int     `json:"broker_lost"`
	BrokerP50Ms      float64 `json:"broker_latency_p50_ms"`
	BrokerP99Ms      float64 `json:"broker_latency_p99_ms"`
	PipelineMsgsPerS float64 `json:"pipeline_msgs_per_s"`
	PipelineShare    float64 `json:"pipeline_share_of_broker"`
	SaturatedP50Ms   float64 `json:"saturated_latency_p50_ms"`
	SaturatedP99Ms   float64 `json:"saturated_latency_p99_ms"`
	LatencyRate      float64 `json:"latency_offered_msgs_per_s"`
	LatencyAchieved  float64 `json:"latency_achieved_msgs_per_s"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	Lost             int     `json:"lost"`
	Duplicates       int     `json:"duplicates"`
	Redelivered      uint64  `json:"redelivered"`
	CasesOpened      int     `json:"cases_opened"`
	Transactions     int64   `json:"transactions"`
	ReportsPerTxMean float64 `json:"reports_per_transaction_full_speed"`
	// CPU time per report, in µs: load-independent, where the wall-clock
	// rates depend on what else the machine runs.
	BrokerCPUus       cpuShare `json:"broker_cpu_us_per_msg"`
	PipelineCPUus     cpuShare `json:"pipeline_cpu_us_per_msg"`
	CPUs              int      `json:"cpus"`
	LoadAverageBefore string   `json:"load_average_before"`
}

func benchIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench ingest", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, benchUsage); fs.PrintDefaults() }
	boxes := fs.Int("boxes", 200, "simulated boxes, each its own MQTT connection")
	perBox := fs.Int("messages", 100, "reports each box publishes")
	covers := fs.Int("covers", 3, "covers each box's camera watches (the last one is also its neighbour's first)")
	brokerURL := fs.String("broker", "", "MQTT broker URL; empty starts a Mosquitto of our own with raised limits on a free port")
	pgDSN := fs.String("postgres", "", "PostgreSQL DSN of an empty database; empty creates a fresh database (see --admin-dsn) and drops it after")
	adminDSN := fs.String("admin-dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "server where the fresh database is created")
	asJSON := fs.Bool("json", false, "print one JSON object with the results as the last line")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline phases to this file")
	rate := fs.Float64("rate", 0, "offered load of phase 3 in reports/s over all boxes; 0 means half the broker-alone rate")
	fs.Parse(args)
	if *boxes < 1 || *perBox < 1 || *covers < 2 {
		return errors.New("bench ingest: --boxes and --messages must be at least 1, --covers at least 2")
	}
	progress := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	res := benchResult{Boxes: *boxes, MessagesPerBox: *perBox, Messages: *boxes * *perBox, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(b) > 14 {
		res.LoadAverageBefore = string(b[:14])
	}

	cpu := &cpuMeter{}
	url := *brokerURL
	if url == "" {
		dir, err := os.MkdirTemp("", "gridwatch-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		m, err := broker.StartMosquitto(dir, "")
		if err != nil {
			return err
		}
		defer m.Close()
		url = m.URL()
		cpu.broker = m.Pid()
		progress("mosquitto (pid %d) on %s, max_queued_messages 0, max_inflight_messages 0", m.Pid(), url)
	}
	dsn := *pgDSN
	if dsn == "" {
		var drop func(context.Context) error
		var err error
		if dsn, drop, err = store.CreateScratchDatabase(ctx, *adminDSN, "gw_bench"); err != nil {
			return err
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := drop(dctx); err != nil {
				progress("%v", err)
			}
		}()
		progress("fresh database %s", redactDSN(dsn))
	}

	load, err := newBenchLoad(*boxes, *perBox, *covers)
	if err != nil {
		return err
	}
	progress("%d boxes × %d reports about %d covers (%d-byte payloads)", *boxes, *perBox, load.covers, len(load.payload(0, 1, time.Now())))
	pubs, err := load.connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range pubs {
			p.Disconnect(100)
		}
	}()

	// Phase 1: the broker alone.
	before := cpu.read()
	if err := benchBroker(ctx, url, load, pubs, &res, progress); err != nil {
		return err
	}
	res.BrokerCPUus = cpu.read().since(before, res.Messages)

	// Phase 2: the pipeline on PostgreSQL.
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if err := benchPipeline(ctx, url, dsn, load, pubs, *rate, cpu, &res, quiet, progress); err != nil {
		return err
	}
	pprof.StopCPUProfile()
	if res.BrokerMsgsPerS > 0 {
		res.PipelineShare = res.PipelineMsgsPerS / res.BrokerMsgsPerS
	}

	fmt.Printf("\ngridwatch-cloud bench ingest\n")
	rows := []struct {
		k string
		v any
	}{
		{"boxes × reports each", fmt.Sprintf("%d × %d", res.Boxes, res.MessagesPerBox)},
		{"broker alone, msgs/s", fmt.Sprintf("%.0f", res.BrokerMsgsPerS)},
		{"broker alone, latency p50/p99 ms", fmt.Sprintf("%.1f / %.1f", res.BrokerP50Ms, res.BrokerP99Ms)},
		{"broker alone, lost", res.BrokerLost},
		{"pipeline, msgs/s", fmt.Sprintf("%.0f", res.PipelineMsgsPerS)},
		{"pipeline / broker", fmt.Sprintf("%.0f %%", 100*res.PipelineShare)},
		{"  at full speed: p50/p99 ms", fmt.Sprintf("%.0f / %.0f (backlog)", res.SaturatedP50Ms, res.SaturatedP99Ms)},
		{"steady load offered/achieved", fmt.Sprintf("%.0f / %.0f msgs/s", res.LatencyRate, res.LatencyAchieved)},
		{"  publish → stored, p50/p99 ms", fmt.Sprintf("%.1f / %.1f", res.LatencyP50Ms, res.LatencyP99Ms)},
		{"  publish → stored, max ms", fmt.Sprintf("%.1f", res.LatencyMaxMs)},
		{"lost", res.Lost},
		{"duplicates", res.Duplicates},
		{"redelivered (ignored by seq)", res.Redelivered},
		{"cases opened", res.CasesOpened},
		{"transactions; reports each at full speed", fmt.Sprintf("%d; %.1f", res.Transactions, res.ReportsPerTxMean)},
		{"CPU µs/report, broker alone", res.BrokerCPUus.String()},
		{"CPU µs/report, pipeline full speed", res.PipelineCPUus.String()},
		{"cpus, load average before", fmt.Sprintf("%d, %s", res.CPUs, res.LoadAverageBefore)},
	}
	for _, r := range rows {
		fmt.Printf("  %-42s %v\n", r.k, r.v)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	return nil
}

// benchLoad is the simulated district: which covers each box watches and
// what it reports.
type benchLoad struct {
	boxes, perBox, covers int
	devices               []string
	watch                 [][]registry.Facility // per box
	evidence              string
}

func newBenchLoad(boxes, perBox, covers int) (*benchLoad, error) {
	reg := registry.Demo()
	// Covers around the demo anchors: box i watches covers-1 of its own and
	// the first of box i+1's, so neighbouring cameras report the same cover.
	own := covers - 1
	anchor := registry.DemoAnchors()[0]
	facs := reg.NearestFacilities(anchor.Lat, anchor.Lon, boxes*own, 0)
	if len(facs) < boxes*own {
		return nil, fmt.Errorf("demo registry has only %d covers, %d wanted", len(facs), boxes*own)
	}
	l := &benchLoad{boxes: boxes, perBox: perBox, covers: boxes * own}
	for i := range boxes {
		l.devices = append(l.devices, fmt.Sprintf("bench-box-%04d", i))
		w := slices.Clone(facs[i*own : (i+1)*own])
		w = append(w, facs[((i+1)%boxes)*own])
		l.watch = append(l.watch, w)
	}
	var b [32]byte
	rand.Read(b[:])
	l.evidence = hex.EncodeToString(b[:])
	return l, nil
}

// payload is box i's report number seq (from 1), observed (and published) at
// at: the first round over its covers finds them missing, later rounds
// update the open cases.
func (l *benchLoad) payload(i int, seq uint64, at time.Time) []byte {
	w := l.watch[i]
	k := int(seq-1) % len(w)
	round := int(seq-1) / len(w)
	f := w[k]
	r := wire.Report{V: wire.Version, Device: l.devices[i], Seq: seq, Phase: wire.PhaseUpdate, Kind: wire.ReportCover,
		ID: fmt.Sprintf("cam1-%s-%d", f.ID, round), Camera: "cam1", FacilityID: f.ID, State: wire.CoverMissing,
		Confidence: 0.9, ObservedAt: at, Lat: f.Lat, Lon: f.Lon,
		Evidence: []wire.Evidence{{SHA256: l.evidence, Kind: wire.EvidenceSnapshot, ContentType: "image/jpeg", Bytes: 48213}}}
	if round == 0 {
		r.Phase = wire.PhaseNew
	} else if round%2 == 0 {
		r.State = wire.CoverDisplaced
	}
	b, _ := json.Marshal(r)
	return b
}

func (l *benchLoad) connect(ctx context.Context, url string) ([]mqtt.Client, error) {
	pubs := make([]mqtt.Client, l.boxes)
	var wg sync.WaitGroup
	errs := make(chan error, l.boxes)
	sem := make(chan struct{}, 20)
	for i := range l.boxes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("edge-" + l.devices[i]).
				SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
				SetWriteTimeout(10 * time.Second))
			if t := c.Connect(); !t.WaitTimeout(15*time.Second) || t.Error() != nil {
				errs <- fmt.Errorf("connect %s: %v", l.devices[i], t.Error())
				return
			}
			pubs[i] = c
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return pubs, ctx.Err()
}

// publish runs every box: each publishes reports after..after+perBox one by
// one, waiting for the PUBACK; with an interval, one per interval (from a
// random phase), else as fast as it can. It returns when all are
// acknowledged.
func (l *benchLoad) publish(ctx context.Context, pubs []mqtt.Client, after uint64, interval time.Duration) error {
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for i, c := range pubs {
		wg.Go(func() {
			topic := wire.Topic(l.devices[i], wire.KindReport)
			next := start
			if interval > 0 {
				next = start.Add(time.Duration(mrand.Int64N(int64(interval))))
			}
			for seq := after + 1; seq <= after+uint64(l.perBox) && ctx.Err() == nil; seq++ {
				if interval > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
				}
				t := c.Publish(topic, 1, false, l.payload(i, seq, time.Now().UTC()))
				if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
					failed.Store(fmt.Errorf("publish %s seq %d: not acknowledged: %v", l.devices[i], seq, t.Error()))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// latencies collects milliseconds from many goroutines.
type latencies struct {
	mu sync.Mutex
	ms []float64
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ms = append(l.ms, float64(d.Microseconds())/1000)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ms) == 0 {
		return 0
	}
	slices.Sort(l.ms)
	return l.ms[min(len(l.ms)-1, int(q*float64(len(l.ms))))]
}

// waitCount waits until count() reaches n, printing progress, or until no
// progress for 30 s.
func waitCount(ctx context.Context, phase string, n int, count func() int, progress func(string, ...any)) error {
	last, lastAt := -1, time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		got := count()
		if got >= n {
			return nil
		}
		if got != last {
			last, lastAt = got, time.Now()
		} else if time.Since(lastAt) > 30*time.Second {
			return fmt.Errorf("%s: stuck at %d of %d for 30 s", phase, got, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			progress("%s: %d/%d (%.0f msgs/s so far)", phase, got, n, float64(got)/time.Since(start).Seconds())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func benchBroker(ctx context.Context, url string, load *benchLoad, pubs []mqtt.Client, res *benchResult, progress func(string, ...any)) error {
	n := load.boxes * load.perBox
	var got atomic.Int64
	var lastAt atomic.Int64
	lat := &latencies{}
	seen := make([][]bool, load.boxes)
	index := map[string]int{}
	for i, d := range load.devices {
		seen[i] = make([]bool, load.perBox+1)
		index[d] = i
	}
	var mu sync.Mutex
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("bench-counter").SetCleanSession(true).
		SetOrderMatters(true))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("connect counter: %v", t.Error())
	}
	defer sub.Disconnect(100)
	// The counter does as little as it can: it picks three fields out of
	// the payload without decoding it.
	handler := func(_ mqtt.Client, m mqtt.Message) {
		p := m.Payload()
		device := jsonField(p, "device")
		seq, _ := strconv.ParseUint(jsonField(p, "seq"), 10, 64)
		if at, err := time.Parse(time.RFC3339Nano, jsonField(p, "observed_at")); err == nil {
			lat.add(time.Since(at))
		}
		mu.Lock()
		if i, ok := index[device]; ok && seq <= uint64(load.perBox) {
			seen[i][seq] = true
		}
		mu.Unlock()
		got.Add(1)
		lastAt.Store(time.Now().UnixNano())
	}
	if t := sub.Subscribe(wire.ReportSubscription, 1, handler); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("subscribe counter: %v", t.Error())
	}
	progress("phase 1, broker alone: %d publishers → 1 subscriber that counts", load.boxes)
	start := time.Now()
	pubErr := make(chan error, 1)
	go func() { pubErr <- load.publish(ctx, pubs, 0, 0) }()
	if err := waitCount(ctx, "broker alone", n, func() int { return int(got.Load()) }, progress); err != nil {
		return err
	}
	if err := <-pubErr; err != nil {
		return err
	}
	elapsed := time.Unix(0, lastAt.Load()).Sub(start)
	res.BrokerMsgsPerS = float64(n) / elapsed.Seconds()
	res.BrokerP50Ms, res.BrokerP99Ms = lat.quantile(0.50), lat.quantile(0.99)
	for i := range seen {
		for s := 1; s <= load.perBox; s++ {
			if !seen[i][s] {
				res.BrokerLost++
			}
		}
	}
	progress("broker alone: %d messages in %.2f s: %.0f msgs/s", n, elapsed.Seconds(), res.BrokerMsgsPerS)
	return nil
}

// jsonField is the text of a top-level string or number field of a compact
// JSON object as encoding/json writes it ("" if absent).
func jsonField(p []byte, name string) string {
	key := `"` + name + `":`
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return ""
	}
	v := p[i+len(key):]
	if len(v) > 0 && v[0] == '"' {
		v = v[1:]
		if j := bytes.IndexByte(v, '"'); j >= 0 {
			return string(v[:j])
		}
		return ""
	}
	j := bytes.IndexAny(v, ",}")
	if j < 0 {
		return ""
	}
	return string(v[:j])
}

// timedApplier is the case engine, timing each report from its publication
// (the observed_at the simulated box set) to its commit.
type timedApplier struct {
	*cases.Engine
	lat          atomic.Pointer[latencies] // of the current phase
	stored       atomic.Int64
	lastAt       atomic.Int64
	transactions atomic.Int64
}

func (a *timedApplier) Apply(ctx context.Context, r wire.Report, raw []byte) (cases.Outcome, error) {
	out, err := a.Engine.Apply(ctx, r, raw)
	a.transactions.Add(1)
	if err == nil && !out.Duplicate {
		a.done(r)
	}
	return out, err
}

func (a *timedApplier) ApplyBatch(ctx context.Context, items []cases.Item) ([]cases.Result, error) {
	res, err := a.Engine.ApplyBatch(ctx, items)
	a.transactions.Add(1)
	if err == nil {
		for i, r := range res {
			if r.Err == nil && !r.Duplicate {
				a.done(items[i].Report)
			}
		}
	}
	return res, err
}

func (a *timedApplier) done(r wire.Report) {
	now := time.Now()
	a.lat.Load().add(now.Sub(r.ObservedAt))
	a.stored.Add(1)
	a.lastAt.Store(now.UnixNano())
}

func benchPipeline(ctx context.Context, url, dsn string, load *benchLoad, pubs []mqtt.Client, rate float64, cpu *cpuMeter, res *benchResult, quiet *slog.Logger, progress func(string, ...any)) error {
	n := load.boxes * load.perBox
	db, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	engine := &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet, Taxonomy: taxonomy.Default(), Calendar: calendar.Default()}
	app := &timedApplier{Engine: engine}
	app.lat.Store(&latencies{})
	var id [4]byte
	rand.Read(id[:])
	in := &ingest.Ingest{BrokerURL: url, ClientID: "bench-ingest-" + hex.EncodeToString(id[:]), Applier: app, Sink: db, Log: quiet}
	ictx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(ictx) }()
	defer func() { stop(); <-done }()

	// Ready when ingest has subscribed: it stores a retained status it gets then.
	probe := "bench-probe-" + hex.EncodeToString(id[:])
	st := fmt.Sprintf(`{"v":1,"device":%q,"online":true,"at":%q}`, probe, time.Now().UTC().Format(time.RFC3339))
	if t := pubs[0].Publish(wire.Topic(probe, wire.KindStatus), 1, true, st); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("publish probe: %v", t.Error())
	}
	defer pubs[0].Publish(wire.Topic(probe, wire.KindStatus), 1, true, []byte{}) // clear the retained probe
	if err := waitCount(ctx, "ingest subscribing", 1, func() int {
		ds, _ := db.Devices(ctx)
		return len(ds)
	}, progress); err != nil {
		return err
	}

	// The database's server processes for this database, for CPU accounting.
	if err := cpu.findPostgres(ctx, dsn); err != nil {
		return err
	}
	progress("phase 2, pipeline at full speed: %d publishers → mosquitto → ingest → cases → PostgreSQL", load.boxes)
	before := cpu.read()
	start := time.Now()
	pubErr := make(chan error, 1)
	go func() { pubErr <- load.publish(ctx, pubs, 0, 0) }()
	if err := waitCount(ctx, "pipeline", n, func() int { return int(app.stored.Load()) }, progress); err != nil {
		return err
	}
	if err := <-pubErr; err != nil {
		return err
	}
	elapsed := time.Unix(0, app.lastAt.Load()).Sub(start)
	res.PipelineMsgsPerS = float64(n) / elapsed.Seconds()
	res.PipelineCPUus = cpu.read().since(before, n)
	lat := app.lat.Swap(&latencies{})
	res.SaturatedP50Ms, res.SaturatedP99Ms = lat.quantile(0.50), lat.quantile(0.99)
	tx2 := app.transactions.Load()
	progress("pipeline: %d reports in %.2f s: %.0f msgs/s in %d transactions", n, elapsed.Seconds(), res.PipelineMsgsPerS, tx2)

	res.LatencyRate = rate
	if rate <= 0 {
		res.LatencyRate = res.BrokerMsgsPerS / 2
	}
	interval := time.Duration(float64(load.boxes) / res.LatencyRate * float64(time.Second))
	progress("phase 3, pipeline at a steady %.0f msgs/s (each box every %v)", res.LatencyRate, interval.Round(time.Millisecond))
	start = time.Now()
	go func() { pubErr <- load.publish(ctx, pubs, uint64(load.perBox), interval) }()
	if err := waitCount(ctx, "steady", n, func() int { return int(app.stored.Load()) - n }, progress); err != nil {
		return err
	}
	if err := <-pubErr; err != nil {
		return err
	}
	elapsed = time.Unix(0, app.lastAt.Load()).Sub(start)
	res.LatencyAchieved = float64(n) / elapsed.Seconds()
	lat = app.lat.Load()
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = lat.quantile(0.50), lat.quantile(0.99), lat.quantile(1)
	res.Transactions = app.transactions.Load()
	res.ReportsPerTxMean = float64(n) / float64(max(1, tx2))
	for range 100 { // the counters move just after the commit
		if s := in.Stats(); s.Accepted+s.Duplicates >= uint64(2*n) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stats := in.Stats()
	res.Redelivered = stats.Duplicates
	progress("steady: %d reports in %.2f s: %.0f msgs/s, p99 %.1f ms; ingest %+v", n, elapsed.Seconds(), res.LatencyAchieved, res.LatencyP99Ms, stats)
	n *= 2 // phases 2 and 3

	// What the database says: every (device, seq) once, one open case per
	// cover, one log line per report that reached a case.
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()
	var stored, extraOpen, deviceEvents, linked int
	q := []struct {
		sql string
		v   *int
	}{
		{`SELECT COUNT(*) FROM reports WHERE device LIKE 'bench-box-%'`, &stored},
		{`SELECT COUNT(*) - COUNT(DISTINCT incident_key) FROM cases WHERE status NOT IN ('closed', 'voided', 'rejected')`, &extraOpen},
		{`SELECT COUNT(*) FROM case_events WHERE actor LIKE 'device:%'`, &deviceEvents},
		{`SELECT COUNT(*) FROM reports WHERE case_id IS NOT NULL`, &linked},
		{`SELECT COUNT(*) FROM cases`, &res.CasesOpened},
	}
	for _, x := range q {
		if err := raw.QueryRowContext(ctx, x.sql).Scan(x.v); err != nil {
			return fmt.Errorf("%s: %w", x.sql, err)
		}
	}
	res.Lost = n - stored
	res.Duplicates = extraOpen + max(0, deviceEvents-linked)
	return nil
}

func redactDSN(dsn string) string {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return "(dsn)"
	}
	return u.Redacted()
}

// cpuMeter reads the CPU time of the three parties: this process (the
// simulated boxes, the counter or ingest and the case engine), the broker
// (when it is ours) and the PostgreSQL server processes of the bench
// database.
type cpuMeter struct {
	broker   int
	postgres []int
}

type cpuTimes struct{ self, broker, postgres time.Duration }

// cpuShare is CPU µs per report by party.
type cpuShare struct {
	Self     float64 `json:"gridwatch"`
	Broker   float64 `json:"mosquitto"`
	Postgres float64 `json:"postgres"`
}

func (c cpuShare) String() string {
	return fmt.Sprintf("%.0f (gridwatch %.0f + mosquitto %.0f + postgres %.0f)", c.Self+c.Broker+c.Postgres, c.Self, c.Broker, c.Postgres)
}

func (m *cpuMeter) read() cpuTimes {
	var t cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if m.broker != 0 {
		t.broker = procCPU(m.broker)
	}
	for _, pid := range m.postgres {
		t.postgres += procCPU(pid)
	}
	return t
}

func (t cpuTimes) since(before cpuTimes, n int) cpuShare {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return cpuShare{us(t.self - before.self), us(t.broker - before.broker), us(t.postgres - before.postgres)}
}

// findPostgres finds the server processes of dsn's database (they must be
// on this machine) and opens a few so that the pool's connections exist.
func (m *cpuMeter) findPostgres(ctx context.Context, dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return err
	}
	defer rows.Close()
	m.postgres = m.postgres[:0]
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return err
		}
		m.postgres = append(m.postgres, pid)
	}
	return rows.Err()
}

// procCPU is a process's user and system time from /proc (0 if unknown).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}
