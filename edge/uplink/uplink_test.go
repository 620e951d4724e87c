package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusWatcher subscribes to a device's status and records what it sees.
type statusWatcher struct {
	mu   sync.Mutex
	seen []wire.Status
}

func (w *statusWatcher) last() (wire.Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return wire.Status{}, false
	}
	return w.seen[len(w.seen)-1], true
}

func watchStatus(t *testing.T, url, device string) *statusWatcher {
	w := &statusWatcher{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("watcher"))
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(wire.Topic(device, wire.KindStatus), 1, func(_ mqtt.Client, m mqtt.Message) {
		s, err := wire.DecodeStatus(m.Payload())
		if err != nil {
			t.Errorf("status payload does not decode: %v", err)
			return
		}
		w.mu.Lock()
		w.seen = append(w.seen, s)
		w.mu.Unlock()
	})
	tok.Wait()
	return w
}

func TestStatusAndPublish(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := watchStatus(t, b.URL(), "box-1")

	m, err := Dial(MQTTOptions{BrokerURL: b.URL(), ClientID: "edge-box-1", Device: "box-1", Software: "test"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retained online status", func() bool { s, ok := w.last(); return ok && s.Online })

	// Publish returns only after the broker acknowledged.
	got := make(chan []byte, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("sub"))
	sub.Connect().Wait()
	defer sub.Disconnect(100)
	sub.Subscribe(wire.Topic("box-1", wire.KindReport), 1, func(_ mqtt.Client, msg mqtt.Message) { got <- msg.Payload() }).Wait()
	if err := m.Publish(context.Background(), outbox.Message{Seq: 1, Topic: wire.Topic("box-1", wire.KindReport), Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != "x" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
	m.Close()
	waitFor(t, "offline status on clean close", func() bool { s, ok := w.last(); return ok && !s.Online })
}

func TestPublishWhileBrokerDownFails(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens: the outbox must see an error and keep the message
	m, err := Dial(MQTTOptions{BrokerURL: "tcp://" + addr, ClientID: "edge-x", Device: "box-x"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Publish(context.Background(), outbox.Message{Topic: "t", Payload: []byte("x")}); err == nil {
		t.Fatal("publish without a broker must fail so the outbox retries")
	}
}

func TestEvidenceUploadResumes(t *testing.T) {
	var mu sync.Mutex
	stored := map[string][]byte{}
	fail := true
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "cloud restarting", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		stored[filepath.Base(r.URL.Path)] = b
		w.WriteHeader(http.StatusCreated)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	dir := t.TempDir()
	e, err := OpenEvidence(dir, "http://"+l.Addr().String(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("\xff\xd8\xff evidence")
	sum, err := e.Save(data, ".jpg")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	if sum != hex.EncodeToString(h[:]) {
		t.Fatalf("sum %s", sum)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go e.Run(ctx)
	time.Sleep(300 * time.Millisecond)
	cancel()
	if e.Pending() != 1 {
		t.Fatalf("pending = %d after failed uploads, want 1 (kept for retry)", e.Pending())
	}
	// A restart of the box: a new queue on the same directory finishes the job.
	mu.Lock()
	fail = false
	mu.Unlock()
	e2, _ := OpenEvidence(dir, "http://"+l.Addr().String(), nil, quiet)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go e2.Run(ctx)
	waitFor(t, "upload after restart", func() bool { return e2.Pending() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if string(stored[sum]) != string(data) {
		t.Fatalf("cloud got %q under %s", stored[sum], sum)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d files left in the queue", len(ents))
	}
}
