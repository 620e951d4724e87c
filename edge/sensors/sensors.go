// Package sensors is the box's local MQTT listener for the IoT sensors around
// it (smart-cover tilt sensors, water-level and gas sensors). Sensors publish
// wire.SensorReading JSON to sensors/{sensor_id}/reading on the box; the
// listener validates each reading, keeps the latest per sensor for telemetry,
// and hands alarms to the agent, which turns them into reports (and, for a
// cover a camera watches, checks that cover at once).
package sensors

import (
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Listener is the running local broker.
type Listener struct {
	srv     *mqtt.Server
	addr    string
	log     *slog.Logger
	onAlarm func(wire.SensorReading)

	mu     sync.Mutex
	latest map[string]wire.SensorReading
	// alarming remembers which sensors are in alarm so that a sensor that
	// repeats its alarm every few seconds raises it once.
	alarming map[string]bool

	readings, rejected, alarms atomic.Uint64
}

// Listen starts the local broker on addr and calls onAlarm (on the broker's
// goroutine: keep it short) when a sensor goes into alarm.
func Listen(addr string, onAlarm func(wire.SensorReading), log *slog.Logger) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sensor listener: %w", err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	l := &Listener{srv: srv, addr: ln.Addr().String(), log: log, onAlarm: onAlarm,
		latest: map[string]wire.SensorReading{}, alarming: map[string]bool{}}
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.AddListener(listeners.NewNet("sensors", ln)); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.Subscribe(wire.SensorTopicPrefix+"+/reading", 1, l.handle); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("sensor listener stopped", "err", err)
		}
	}()
	return l, nil
}

// Addr is the listen address.
func (l *Listener) Addr() string { return l.addr }

// Close stops the listener.
func (l *Listener) Close() error { return l.srv.Close() }

func (l *Listener) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	r, err := wire.DecodeSensorReading(pk.TopicName, pk.Payload)
	if err != nil {
		l.rejected.Add(1)
		l.log.Warn("sensor reading refused", "topic", pk.TopicName, "err", err)
		return
	}
	l.readings.Add(1)
	l.mu.Lock()
	if old, ok := l.latest[r.Sensor]; ok && r.At.Before(old.At) {
		l.mu.Unlock()
		return // an old reading arriving late changes nothing
	}
	l.latest[r.Sensor] = r
	raise := r.Alarm && !l.alarming[r.Sensor]
	l.alarming[r.Sensor] = r.Alarm
	l.mu.Unlock()
	if raise {
		l.alarms.Add(1)
		l.log.Warn("sensor alarm", "sensor", r.Sensor, "kind", r.Kind, "facility", r.FacilityID, "value", r.Value, "unit", r.Unit)
		if l.onAlarm != nil {
			l.onAlarm(r)
		}
	}
}

// Latest returns the newest reading of every sensor, sorted by sensor id.
func (l *Listener) Latest() []wire.SensorReading {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]wire.SensorReading, 0, len(l.latest))
	for _, r := range l.latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sensor < out[j].Sensor })
	return out
}

// Counts returns readings accepted, refused, and alarms raised.
func (l *Listener) Counts() (readings, rejected, alarms uint64) {
	return l.readings.Load(), l.rejected.Load(), l.alarms.Load()
}
