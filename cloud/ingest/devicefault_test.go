package ingest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// faultBox is a paho client that speaks like an edge box's uplink: a retained
// online status, the offline status as its last will, telemetry. Its TCP
// connection can be cut, as a power cut or a dead modem would, so that the
// broker itself publishes the will.
type faultBox struct {
	t      *testing.T
	id     string
	client mqtt.Client
	seq    uint64
	mu     sync.Mutex
	conn   net.Conn
}

const faultLat, faultLon = 39.92195, 116.44352 // on Sanlitun's grid

func connectFaultBox(t *testing.T, brokerURL, id string, seq uint64) *faultBox {
	t.Helper()
	b := &faultBox{t: t, id: id, seq: seq}
	will, _ := json.Marshal(wire.Status{V: wire.Version, Device: id, Online: false, At: time.Now().UTC()})
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5*time.Second).SetKeepAlive(30*time.Second).
		SetBinaryWill(wire.Topic(id, wire.KindStatus), will, 1, true).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", uri.Host)
			b.mu.Lock()
			b.conn = c
			b.mu.Unlock()
			return c, err
		})
	b.client = mqtt.NewClient(opts)
	wait(t, "connect "+id, b.client.Connect())
	t.Cleanup(func() { b.client.Disconnect(100) })
	online, _ := json.Marshal(wire.Status{V: wire.Version, Device: id, Online: true, At: time.Now().UTC(), Software: "test"})
	publish(t, b.client, wire.Topic(id, wire.KindStatus), true, online)
	return b
}

// telemetry publishes one telemetry message; cams maps camera → streaming.
func (b *faultBox) telemetry(cams map[string]bool) {
	b.t.Helper()
	b.seq++
	tm := wire.Telemetry{V: wire.Version, Device: b.id, Seq: b.seq, At: time.Now().UTC(), Cameras: []wire.CameraHealth{}}
	for _, name := range []string{"cam1", "cam2"} {
		up, ok := cams[name]
		if !ok {
			continue
		}
		h := wire.CameraHealth{Camera: name, Connected: up, Grade: "down", Lat: faultLat, Lon: faultLon}
		if up {
			h.FPS, h.KeyframeS, h.Grade = 25, 1, "good"
		}
		tm.Cameras = append(tm.Cameras, h)
	}
	raw, err := json.Marshal(tm)
	if err != nil {
		b.t.Fatal(err)
	}
	publish(b.t, b.client, wire.Topic(b.id, wire.KindTelemetry), false, raw)
}

// cut closes the TCP connection without a DISCONNECT: the broker sends the will.
func (b *faultBox) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn.Close()
}

// TestDeviceFaultThroughMosquitto runs the device watchdog on what ingest
// stores from a real Mosquitto into PostgreSQL: a camera that stops streaming
// and a box whose connection dies (the broker publishes its last will) each
// get one case for maintenance; a restarted watchdog opens no second case;
// the camera streaming again and the box reconnecting close them.
func TestDeviceFaultThroughMosquitto(t *testing.T) {
	p := newProduction(t)
	in, engine := p.ingest("gridwatch-cloud", "")
	p.ready(p.publisher("probe"), in)
	ctx := context.Background()
	const id = "box-fault-0001"

	w := &cases.Watchdog{Engine: engine, Silence: 30 * time.Second, Offline: time.Second, CameraDown: time.Second, Log: p.log}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	openFaults := func(st *store.Store) map[string]store.Case {
		cs, err := st.OpenCasesWithKeyPrefix(ctx, "device:")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]store.Case{}
		for _, c := range cs {
			out[c.IncidentKey] = c
		}
		return out
	}
	// checkUntil runs the watchdog every 100 ms until cond holds.
	checkUntil := func(w *cases.Watchdog, what string, cond func() bool) {
		t.Helper()
		eventually(t, what, func() bool {
			if _, err := w.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if cond() {
				return true
			}
			time.Sleep(80 * time.Millisecond)
			return false
		})
	}
	device := func() store.Device {
		ds, err := engine.Store.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Device == id {
				return d
			}
		}
		return store.Device{}
	}

	box := connectFaultBox(t, p.mosq.URL(), id, 0)
	box.telemetry(map[string]bool{"cam1": true, "cam2": false})
	eventually(t, "online with telemetry", func() bool { d := device(); return d.Online && d.Telemetry != nil })

	checkUntil(w, "camera case", func() bool { _, ok := openFaults(engine.Store)["device:"+id+"/cam2"]; return ok })
	c := openFaults(engine.Store)["device:"+id+"/cam2"]
	if c.Status != cases.StatusDispatched || c.OwnerDepartment != "dept-maintenance" || c.Camera != "cam2" ||
		c.Lat != faultLat || c.Lon != faultLon || c.Street != "110105003" {
		t.Errorf("camera case %+v: want dispatched to dept-maintenance at cam2 in Sanlitun", c)
	}
	if got := openFaults(engine.Store); len(got) != 1 {
		t.Errorf("open faults %v, want only cam2's", got)
	}

	box.telemetry(map[string]bool{"cam1": true, "cam2": true})
	checkUntil(w, "camera case closed", func() bool { return len(openFaults(engine.Store)) == 0 })
	if c, err := engine.Store.Case(ctx, c.ID); err != nil || c.Status != cases.StatusClosed {
		t.Errorf("camera case after cam2 streams again: %+v, %v; want closed", c, err)
	}

	box.cut()
	eventually(t, "last will stored", func() bool { return !device().Online })
	checkUntil(w, "box case", func() bool { _, ok := openFaults(engine.Store)["device:"+id]; return ok })
	boxCase := openFaults(engine.Store)["device:"+id]
	if boxCase.DetectionState != "offline" {
		t.Errorf("box case state %q, want offline", boxCase.DetectionState)
	}

	// The cloud restarts: a new watchdog on a new connection, no memory.
	st, err := p.db.Reopen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e2 := &cases.Engine{Store: st, Registry: engine.Registry, Log: p.log}
	w2 := &cases.Watchdog{Engine: e2, Silence: w.Silence, Offline: w.Offline, CameraDown: w.CameraDown, Log: p.log}
	deadline := time.Now().Add(3 * w.Offline)
	for time.Now().Before(deadline) {
		if n, err := w2.Check(ctx); err != nil || n.Opened != 0 || n.Back != 0 {
			t.Fatalf("restarted watchdog: %+v, %v; want nothing opened or back", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := openFaults(st); len(got) != 1 || got["device:"+id].ID != boxCase.ID {
		t.Errorf("open faults after restart %v, want only box case %d", got, boxCase.ID)
	}

	box = connectFaultBox(t, p.mosq.URL(), id, box.seq)
	box.telemetry(map[string]bool{"cam1": true, "cam2": true})
	checkUntil(w2, "box case closed", func() bool { return len(openFaults(st)) == 0 })
	evs, err := st.Events(ctx, boxCase.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Action != "device_check_closed" || last.Actor != "system:watchdog" {
		t.Errorf("last log entry %+v, want device_check_closed by system:watchdog", last)
	}
	var faults int
	for _, c := range p.cases(st) {
		if c.Source == cases.SourceWatchdog {
			faults++
		}
	}
	if faults != 2 {
		t.Errorf("%d device-fault cases, want 2 (cam2 and the box)", faults)
	}
}

func (p *production) cases(st *store.Store) []store.Case {
	p.t.Helper()
	cs, err := st.Cases(context.Background(), 100)
	if err != nil {
		p.t.Fatal(err)
	}
	return cs
}
