package sensors

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/edge/wire"
)

func TestReadingsAndAlarms(t *testing.T) {
	var mu sync.Mutex
	var alarms []wire.SensorReading
	l, err := Listen("127.0.0.1:0", func(r wire.SensorReading) {
		mu.Lock()
		alarms = append(alarms, r)
		mu.Unlock()
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + l.Addr()).SetClientID("tilt-0007"))
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	pub := func(topic, body string) {
		if tok := c.Publish(topic, 1, false, body); tok.Wait() && tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	ok := `{"v":1,"sensor":"tilt-0007","kind":"cover_tilt","facility_id":"1101050105000123","at":"2026-11-27T12:00:00Z","value":1.5,"unit":"deg","alarm":false}`
	alarm := `{"v":1,"sensor":"tilt-0007","kind":"cover_tilt","facility_id":"1101050105000123","at":"2026-11-27T12:00:10Z","value":31,"unit":"deg","alarm":true}`
	again := `{"v":1,"sensor":"tilt-0007","kind":"cover_tilt","facility_id":"1101050105000123","at":"2026-11-27T12:00:20Z","value":33,"unit":"deg","alarm":true}`
	pub("sensors/tilt-0007/reading", ok)
	pub("sensors/tilt-0007/reading", alarm)
	pub("sensors/tilt-0007/reading", again) // same alarm repeated: raised once
	pub("sensors/tilt-0007/reading", `{"v":1,"sensor":"tilt-0007"}`)
	pub("sensors/other/reading", ok) // another sensor's id on this topic
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, rej, _ := l.Counts()
		if r == 3 && rej == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readings %d refused %d; want 3 and 2", r, rej)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(alarms) != 1 || alarms[0].Value != 31 {
		t.Fatalf("alarms %+v, want exactly the first alarm", alarms)
	}
	if latest := l.Latest(); len(latest) != 1 || latest[0].Value != 33 {
		t.Fatalf("latest %+v", latest)
	}
}
