package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/ingest"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// production is the production shape of the cloud: a real Mosquitto of the
// test's own and PostgreSQL.
type production struct {
	t        *testing.T
	mosq     *broker.Mosquitto
	db       *storetest.DB
	log      *slog.Logger
	logs     *syncBuffer
	registry *registry.Registry
}

func newProduction(t *testing.T) *production {
	t.Helper()
	logs := new(syncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	db := storetest.Open(t, "postgres")
	mosq, err := broker.StartMosquitto(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mosq.Close() })
	return &production{t: t, mosq: mosq, db: db, logs: logs, registry: registry.Demo(),
		log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// ingest runs an Ingest on its own store (as a separate cloud process
// would) until the test ends.
func (p *production) ingest(clientID, shared string) (*ingest.Ingest, *cases.Engine) {
	p.t.Helper()
	st, err := p.db.Reopen(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	engine := &cases.Engine{Store: st, Registry: p.registry, Log: p.log.With("component", "cases", "client", clientID)}
	in := &ingest.Ingest{BrokerURL: p.mosq.URL(), ClientID: clientID, Applier: engine, Sink: st, Shared: shared,
		Log: p.log.With("component", "ingest", "client", clientID)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	p.t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return in, engine
}

func (p *production) publisher(id string) mqtt.Client {
	p.t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(p.mosq.URL()).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	wait(p.t, "connect "+id, c.Connect())
	p.t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// ready waits until every ingest has subscribed: each stores the retained
// status of a probe device that it gets on subscription.
func (p *production) ready(pub mqtt.Client, ins ...*ingest.Ingest) {
	p.t.Helper()
	const probe = "ingest-probe"
	st := fmt.Sprintf(`{"v":1,"device":%q,"online":true,"at":"2026-11-27T12:00:00Z"}`, probe)
	publish(p.t, pub, wire.Topic(probe, wire.KindStatus), true, []byte(st))
	eventually(p.t, "ingest subscribed", func() bool {
		ds, err := p.db.Store.Devices(context.Background())
		if err != nil {
			p.t.Fatal(err)
		}
		return len(ds) == 1
	})
	// The first member stored it; give the others the moment a SUBSCRIBE takes.
	time.Sleep(200 * time.Millisecond)
}

// goldenAt is a golden report observed at t.
func goldenAt(t *testing.T, name string, at time.Time) []byte {
	t.Helper()
	var r wire.Report
	if err := json.Unmarshal(golden(t, name), &r); err != nil {
		t.Fatal(err)
	}
	r.ObservedAt = at.UTC().Truncate(time.Second)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeedStoryOnMosquittoAndPostgres is the seed story through the
// production path: the box's golden report through a real Mosquitto into
// ingest on PostgreSQL opens the case; a verifier accepts it, which sends it
// to the owner and the street office; the box's end report (the camera sees
// the cover back) closes it, and the owner's score counts it on time.
func TestSeedStoryOnMosquittoAndPostgres(t *testing.T) {
	ctx := context.Background()
	p := newProduction(t)
	in, engine := p.ingest("gridwatch-cloud", "")
	box := p.publisher(goldenDevice)
	p.ready(box, in)
	start := time.Now().Add(-time.Minute)

	publish(t, box, reportTopic(goldenDevice), false, goldenAt(t, "report-cover-new.json", time.Now()))
	var c store.Case
	eventually(t, "the case", func() bool {
		cs, err := p.db.Store.Cases(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 {
			c = cs[0]
		}
		return len(cs) == 1
	})
	if c.FacilityID != powerCover || c.OwnerDepartment != "dept-power" || c.Status != cases.StatusReported || c.Device != goldenDevice {
		t.Fatalf("case = %+v, want a reported case for %s owned by dept-power", c, powerCover)
	}

	verifier := cases.Actor{Name: "li", Role: cases.Verifier}
	if c, err := engine.Verify(ctx, c.ID, verifier, true, "visible in the snapshot"); err != nil || c.Status != cases.StatusDispatched {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	ks, err := p.db.Store.CaseTasks(ctx, c.ID)
	if err != nil || len(ks) != 2 || ks[0].Dept != "dept-power" || ks[1].Dept != c.StreetOffice || c.StreetOffice == "" {
		t.Fatalf("tasks after dispatch = %+v, %v; want the owner's and the street office's", ks, err)
	}

	publish(t, box, reportTopic(goldenDevice), false, goldenAt(t, "report-cover-end.json", time.Now()))
	eventually(t, "the camera closes the case", func() bool {
		got, err := p.db.Store.Case(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status == cases.StatusClosed
	})
	evs, err := p.db.Store.Events(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[reported verified_dispatched camera_check_closed]" {
		t.Errorf("log %v", actions)
	}
	ks, _ = p.db.Store.CaseTasks(ctx, c.ID)
	if ks[0].Status != cases.TaskDone || ks[1].Status != cases.TaskCancelled {
		t.Errorf("tasks after closure: owner %s, street %s; want done, cancelled", ks[0].Status, ks[1].Status)
	}
	scores, err := engine.DepartmentScores(ctx, start, time.Now().Add(time.Hour), cases.DefaultWeights)
	if err != nil || len(scores) == 0 || scores[0].Party != "dept-power" || scores[0].OnTime != 1 {
		t.Errorf("scores = %+v, %v; want dept-power on time", scores, err)
	}
	if s := in.Stats(); s.Accepted != 2 || s.Cases != 1 || s.Duplicates != 0 || s.DeadLetters != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestSharedSubscriptionSplitsReports: two ingest processes in one shared
// subscription group split the reports; none is applied twice, the cases
// come out as from one process, and no sequence hole is taken for a loss.
func TestSharedSubscriptionSplitsReports(t *testing.T) {
	ctx := context.Background()
	p := newProduction(t)
	a, _ := p.ingest("cloud-a", "gridwatch")
	b, _ := p.ingest("cloud-b", "gridwatch")
	facs := p.registry.NearestFacilities(39.92195, 116.44352, 8, 0)
	const devices, perDevice = 4, 50
	var pubs []mqtt.Client
	for d := range devices {
		pubs = append(pubs, p.publisher(fmt.Sprintf("box-shared-%d", d)))
	}
	p.ready(pubs[0], a, b)

	var r wire.Report
	if err := json.Unmarshal(golden(t, "report-cover-new.json"), &r); err != nil {
		t.Fatal(err)
	}
	var toks []mqtt.Token
	for seq := uint64(1); seq <= perDevice; seq++ {
		for d, pub := range pubs {
			r.Device, r.Seq = fmt.Sprintf("box-shared-%d", d), seq
			r.FacilityID = facs[(d+int(seq))%len(facs)].ID
			r.Phase = wire.PhaseUpdate
			if seq <= 2 {
				r.Phase = wire.PhaseNew
			}
			b, _ := json.Marshal(r)
			toks = append(toks, pub.Publish(reportTopic(r.Device), 1, false, b))
		}
	}
	for _, tok := range toks {
		wait(t, "publish", tok)
	}
	const total = devices * perDevice
	eventually(t, "all reports stored", func() bool {
		n, err := p.db.Store.ReportCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == total
	})
	eventually(t, "counted", func() bool { return a.Stats().Accepted+b.Stats().Accepted == total })
	sa, sb := a.Stats(), b.Stats()
	t.Logf("cloud-a %+v, cloud-b %+v", sa, sb)
	if sa.Accepted == 0 || sb.Accepted == 0 {
		t.Errorf("one member got nothing: a %d, b %d", sa.Accepted, sb.Accepted)
	}
	if sa.Duplicates+sb.Duplicates != 0 || sa.DeadLetters+sb.DeadLetters != 0 {
		t.Errorf("duplicates %d, dead letters %d; want none", sa.Duplicates+sb.Duplicates, sa.DeadLetters+sb.DeadLetters)
	}

	// Each member has seen only every other sequence number. Once the holes
	// are older than the grace, the next report makes a member look them up
	// in the store, where the other member put them: no replay is asked for,
	// and the high-water marks reach the end.
	time.Sleep(2200 * time.Millisecond)
	toks = toks[:0]
	for d, pub := range pubs {
		r.Device, r.Seq, r.FacilityID = fmt.Sprintf("box-shared-%d", d), perDevice+1, facs[d].ID
		b, _ := json.Marshal(r)
		toks = append(toks, pub.Publish(reportTopic(r.Device), 1, false, b))
	}
	for _, tok := range toks {
		wait(t, "publish", tok)
	}
	for d := range devices {
		dev := fmt.Sprintf("box-shared-%d", d)
		eventually(t, dev+" high-water mark", func() bool {
			hw, err := p.db.Store.SeqHW(ctx, dev)
			if err != nil {
				t.Fatal(err)
			}
			return hw == perDevice+1
		})
	}
	sa, sb = a.Stats(), b.Stats()
	if sa.ReplayRequests+sb.ReplayRequests != 0 {
		t.Errorf("%d replay requests: the other member's share was taken for a loss", sa.ReplayRequests+sb.ReplayRequests)
	}
	cs, err := p.db.Store.Cases(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]int{}
	events := 0
	for _, c := range cs {
		if c.Status != cases.StatusClosed {
			open[c.IncidentKey]++
		}
		evs, _ := p.db.Store.Events(ctx, c.ID)
		events += len(evs)
	}
	if len(open) != len(facs) || len(cs) != len(facs) {
		t.Errorf("%d cases, %d incidents with an open case; want one per cover (%d)", len(cs), len(open), len(facs))
	}
	for k, n := range open {
		if n != 1 {
			t.Errorf("%s has %d open cases", k, n)
		}
	}
	if events != total+devices {
		t.Errorf("%d log lines, want one per report (%d)", events, total+devices)
	}
}
