package broker_test

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
)

// syncBuffer collects log output from the broker's goroutines.
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

// start runs a broker on a free port for the rest of the test; its log is
// printed if the test fails.
func start(t *testing.T) *broker.Broker {
	t.Helper()
	b := startUnclosed(t)
	t.Cleanup(func() { b.Close() })
	return b
}

// startUnclosed is start for a test that closes the broker itself (mochi's
// Close panics when called twice).
func startUnclosed(t *testing.T) *broker.Broker {
	t.Helper()
	logs := new(syncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	b, err := broker.Start("127.0.0.1:0", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type message struct {
	topic    string
	payload  string
	qos      byte
	retained bool
}

// connect returns a connected paho client whose every received message goes
// to the returned channel.
func connect(t *testing.T, b *broker.Broker, id string, clean bool) (mqtt.Client, <-chan message) {
	t.Helper()
	got := make(chan message, 16)
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		// Set before connecting so that messages the broker kept for a
		// persistent session have a handler the moment they arrive.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			got <- message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()}
		})
	c := mqtt.NewClient(opts)
	wait(t, "connect "+id, c.Connect())
	t.Cleanup(func() { c.Disconnect(100) })
	return c, got
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

func receive(t *testing.T, got <-chan message) message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
		return message{}
	}
}

func TestStartOnPortZeroListensOnARealPort(t *testing.T) {
	b := start(t)
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatalf("Addr() = %q: %v", b.Addr(), err)
	}
	if host != "127.0.0.1" || port == "0" || port == "" {
		t.Errorf("Addr() = %q, want 127.0.0.1 and the port actually chosen", b.Addr())
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q, want tcp://%s", b.URL(), b.Addr())
	}
	conn, err := net.DialTimeout("tcp", b.Addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", b.Addr(), err)
	}
	conn.Close()
}

func TestStartTwiceOnOneAddressFails(t *testing.T) {
	b := start(t)
	b2, err := broker.Start(b.Addr(), slog.New(slog.DiscardHandler))
	if err == nil {
		b2.Close()
		t.Fatalf("second Start on %s succeeded", b.Addr())
	}
	if !strings.Contains(err.Error(), b.Addr()) {
		t.Errorf("error %q does not name the address %s", err, b.Addr())
	}
}

func TestStartOnBadAddressFails(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:notaport", "256.0.0.1:0", "127.0.0.1"} {
		if b, err := broker.Start(addr, slog.New(slog.DiscardHandler)); err == nil {
			b.Close()
			t.Errorf("Start(%q) succeeded", addr)
		} else if !strings.Contains(err.Error(), addr) {
			t.Errorf("Start(%q): error %q does not name the address", addr, err)
		}
	}
}

func TestQoS1MessageReachesSubscriber(t *testing.T) {
	b := start(t)
	sub, got := connect(t, b, "subscriber", true)
	wait(t, "subscribe", sub.Subscribe("gridwatch/v1/dev/+/report", 1, nil))
	pub, _ := connect(t, b, "publisher", true)

	want := []message{
		{"gridwatch/v1/dev/box-1/report", `{"seq":1}`, 1, false},
		{"gridwatch/v1/dev/box-2/report", `{"seq":2}`, 1, false},
	}
	for _, m := range want {
		wait(t, "publish", pub.Publish(m.topic, 1, false, m.payload))
	}
	wait(t, "publish elsewhere", pub.Publish("gridwatch/v1/dev/box-1/status", 1, false, "not for the subscriber"))
	for _, w := range want {
		if m := receive(t, got); m != w {
			t.Errorf("received %+v, want %+v", m, w)
		}
	}
	select {
	case m := <-got:
		t.Errorf("received %+v on a topic not subscribed", m)
	case <-time.After(200 * time.Millisecond):
	}
	if n := b.Dropped(); n != 0 {
		t.Errorf("Dropped() = %d, want 0", n)
	}
}

func TestRetainedMessageReachesLateSubscriber(t *testing.T) {
	b := start(t)
	pub, _ := connect(t, b, "publisher", true)
	wait(t, "publish", pub.Publish("gridwatch/v1/dev/box-1/status", 1, true, `{"online":true}`))
	sub, got := connect(t, b, "subscriber", true)
	wait(t, "subscribe", sub.Subscribe("gridwatch/v1/dev/+/status", 1, nil))
	m := receive(t, got)
	if m.topic != "gridwatch/v1/dev/box-1/status" || m.payload != `{"online":true}` || !m.retained {
		t.Errorf("received %+v, want the retained status", m)
	}
}

// The cloud relies on this: a subscriber with a persistent session gets the
// QoS 1 messages published while it was away once it comes back.
func TestPersistentSessionKeepsMessagesWhileAway(t *testing.T) {
	b := start(t)
	sub, _ := connect(t, b, "cloud", false)
	wait(t, "subscribe", sub.Subscribe("gridwatch/v1/dev/+/report", 1, nil))
	sub.Disconnect(100)

	pub, _ := connect(t, b, "publisher", true)
	wait(t, "publish", pub.Publish("gridwatch/v1/dev/box-1/report", 1, false, `{"seq":7}`))

	_, got := connect(t, b, "cloud", false)
	m := receive(t, got)
	if m.topic != "gridwatch/v1/dev/box-1/report" || m.payload != `{"seq":7}` || m.qos != 1 {
		t.Errorf("received %+v, want the report published while away", m)
	}
}

func TestCloseDisconnectsClients(t *testing.T) {
	b := startUnclosed(t)
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("c").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	c := mqtt.NewClient(opts)
	wait(t, "connect", c.Connect())
	defer c.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client still connected 5 s after Close")
	}
	if conn, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Close", b.Addr())
	}
}

func TestCloseTwice(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
