// Package broker runs the embedded MQTT broker (mochi-mqtt) that lets the
// whole system run on one machine with nothing installed. In production the
// cloud connects to an external broker instead and this package is unused.
//
// The limits are raised on purpose: with mochi's defaults a burst of QoS 1
// messages to a slow subscriber is dropped silently (TOOLCHAIN.md). Anything
// the broker still drops is counted and logged, and the per-device sequence
// numbers let the cloud notice the gap end to end.
package broker

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultAddr is the embedded broker's default listen address. It is not
// 1883 because a system Mosquitto often owns that port.
const DefaultAddr = "127.0.0.1:1884"

// Broker is a running embedded broker.
type Broker struct {
	srv     *mqtt.Server
	addr    string
	dropped atomic.Int64
	auth    *authHook // nil: anyone may connect and publish anywhere
	log     *slog.Logger

	closeOnce sync.Once
}

// Start listens on addr ("host:port"; port 0 picks a free one) and serves
// until Close. Anyone may connect and publish on any topic: for tests and
// explicitly insecure development runs; StartAuth is the broker boxes use.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	return start(addr, nil, log)
}

// StartAuth is Start with device identity: only the devices in auth and the
// cloud's service identity may connect, and a box may publish and subscribe
// only on its own topics (DeviceMay). Refusals are logged and counted
// (Refusals).
func StartAuth(addr string, auth Auth, log *slog.Logger) (*Broker, error) {
	if auth.Devices == nil {
		return nil, fmt.Errorf("embedded mqtt broker: no device credentials")
	}
	if auth.Service == "" || auth.ServicePassword == "" {
		return nil, fmt.Errorf("embedded mqtt broker: the service identity needs a name and a password")
	}
	return start(addr, &auth, log)
}

func start(addr string, a *Auth, log *slog.Logger) (*Broker, error) {
	// Bind first so that a port in use is a clear error here, not a log line
	// from a goroutine.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded mqtt broker: listen %s: %w", addr, err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = 65535
	caps.MaximumClientWritesPending = 1 << 16
	caps.ReceiveMaximum = 65535
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log,
		InlineClient: true,
	})
	b := &Broker{srv: srv, addr: ln.Addr().String(), log: log}
	var access mqtt.Hook = new(auth.AllowHook)
	if a != nil {
		b.auth = &authHook{auth: *a, log: log}
		access = b.auth
	}
	if err := srv.AddHook(access, nil); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.AddHook(&dropHook{b: b, log: log}, nil); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded mqtt broker: %w", err)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("embedded mqtt broker stopped", "err", err)
		}
	}()
	return b, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL is the address in the form MQTT clients take.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Dropped counts QoS messages the broker gave up on.
func (b *Broker) Dropped() int64 { return b.dropped.Load() }

// Refusals counts the connections, publishes and subscriptions the broker
// refused (all zero for a broker started without identity).
func (b *Broker) Refusals() Refusals {
	if b.auth == nil {
		return Refusals{}
	}
	return b.auth.refusals()
}

// Secure reports whether the broker checks device identity.
func (b *Broker) Secure() bool { return b.auth != nil }

// closeWait bounds how long Close waits for the MQTT server to stop.
const closeWait = 5 * time.Second

// Close stops the broker and disconnects every client; closing twice is harmless.
//
// mochi-mqtt v2.7.9 can deadlock in Close: Clients.GetByListener takes the
// clients' read lock twice (through Len), and a client that disconnects at
// that moment queues for the write lock in between, so neither ever gets
// it (seen as a test hanging until its 15-minute timeout, with both
// goroutines in the dump). Close gives up waiting after closeWait and says
// so: the broker is going away, and what it had accepted was delivered or
// is counted by Dropped.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- b.srv.Close() }()
		select {
		case err = <-done:
		case <-time.After(closeWait):
			b.log.Error("broker close did not finish; leaving it (mochi-mqtt lock-order deadlock on close)", "waited", closeWait)
		}
	})
	return err
}

// dropHook counts and logs what the broker drops, so nothing goes silently.
type dropHook struct {
	mqtt.HookBase
	b   *Broker
	log *slog.Logger
}

func (h *dropHook) ID() string { return "gridwatch-drop-counter" }

func (h *dropHook) Provides(b byte) bool {
	return b == mqtt.OnQosDropped || b == mqtt.OnPublishDropped
}

func (h *dropHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.b.dropped.Add(1)
	h.log.Warn("broker dropped a QoS message", "client", cl.ID, "topic", pk.TopicName, "packet_id", pk.PacketID)
}

func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.b.dropped.Add(1)
	h.log.Warn("broker dropped a publish to a slow client", "client", cl.ID, "topic", pk.TopicName)
}
