// Package ingest subscribes to the boxes' MQTT topics and hands each message
// to the case engine. It validates strictly, sends what it refuses to the
// dead-letter table with the reason, never blocks on one bad message, and
// acknowledges a QoS 1 message only after its effect is committed, so a crash
// in between means redelivery (and idempotent re-application), not loss.
package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Applier applies a validated report (cases.Engine).
type Applier interface {
	Apply(ctx context.Context, r wire.Report, raw []byte) (cases.Outcome, error)
}

// Sink keeps what ingest refuses and what devices say about themselves.
type Sink interface {
	DeadLetter(ctx context.Context, topic string, payload []byte, reason string) error
	SetDeviceStatus(ctx context.Context, d store.Device) error
	SetTelemetry(ctx context.Context, device string, at time.Time, raw []byte) error
	SeqHW(ctx context.Context, device string) (uint64, error)
	SetSeqHW(ctx context.Context, device string, hw uint64) error
}

// Stats counts what ingest did since start.
type Stats struct {
	Accepted, Duplicates, DeadLetters, Cases, Telemetry, ReplayRequests uint64
	// Confirmations sent to boxes: every message up to a sequence number is
	// stored, so the box may forget its copies.
	Confirmations uint64
}

// Ingest is the MQTT subscriber.
type Ingest struct {
	BrokerURL string
	ClientID  string
	// Username and Password are the cloud's service identity at a broker
	// that checks device identity (empty: connect anonymously).
	Username, Password string
	Applier            Applier
	Sink               Sink
	Log                *slog.Logger
	// OnTelemetry and OnDetection, when set, see each stored telemetry
	// message and each newly accepted new-phase report (telemetry history).
	// They must not block.
	OnTelemetry func(wire.Telemetry)
	OnDetection func(device, camera, kind, state string, at time.Time)
	// ReplayRetry spaces repeated replay requests for the same hole (default 10 s).
	ReplayRetry time.Duration
	// ConfirmEvery spaces the confirmations sent to one box (default 5 s;
	// negative: none). A box keeps every sent message until the cloud
	// confirms it stored it, so that a replay can bring back what a broker
	// dropped after acknowledging it.
	ConfirmEvery time.Duration
	// Shared, when set, subscribes to reports as a member of this shared
	// subscription group ($share/<Shared>/...), so that several cloud
	// processes split them. Status and telemetry still come to every member
	// (retained status is not sent to shared subscriptions), and a sequence
	// hole is first looked up in the store, where the other members put theirs.
	Shared string
	// MaxBatch bounds the reports applied in one transaction (default DefaultMaxBatch).
	MaxBatch int
	// Workers apply reports side by side, each its own share of the covers
	// (default DefaultWorkers).
	Workers int

	client   mqtt.Client
	gaps     *gaps
	queues   []chan queued
	hwMu     sync.Mutex
	hwMoved  map[string]uint64 // high-water marks not yet stored
	hwStored time.Time         // when they were last stored
	confirms confirmer

	accepted, duplicates, dead, cases, telemetry, replays, confirmed atomic.Uint64
	listening                                                        atomic.Int64 // UnixNano of the last subscription; 0 while disconnected
}

// Listening says since when the cloud has heard the broker without a break
// (ok false: it is not connected now). While the cloud itself is cut off,
// every box looks silent; the device watchdog asks this before blaming them.
func (in *Ingest) Listening() (since time.Time, ok bool) {
	n := in.listening.Load()
	if n == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// Stats returns the counters.
func (in *Ingest) Stats() Stats {
	return Stats{in.accepted.Load(), in.duplicates.Load(), in.dead.Load(), in.cases.Load(),
		in.telemetry.Load(), in.replays.Load(), in.confirmed.Load()}
}

// Run connects (retrying until ctx ends), subscribes and processes messages
// until ctx is done.
func (in *Ingest) Run(ctx context.Context) error {
	if in.ReplayRetry == 0 {
		in.ReplayRetry = 10 * time.Second
	}
	in.gaps = newGaps(in.ReplayRetry)
	if in.ConfirmEvery == 0 {
		in.ConfirmEvery = 5 * time.Second
	}
	in.confirms = confirmer{every: in.ConfirmEvery, marks: map[string]uint64{}, sent: map[string]time.Time{}}
	in.setupWorkers()
	opts := mqtt.NewClientOptions().
		AddBroker(in.BrokerURL).
		SetClientID(in.ClientID).
		SetCleanSession(false). // the broker keeps our QoS 1 messages while we are away
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetOrderMatters(true).
		SetAutoAckDisabled(true)
	if in.Username != "" {
		opts.SetUsername(in.Username).SetPassword(in.Password)
	}
	if dial := dialerFor(in.BrokerURL); dial != nil {
		opts.SetCustomOpenConnectionFn(dial)
	}
	handler := func(_ mqtt.Client, m mqtt.Message) { in.enqueue(ctx, m) }
	// What the broker kept for our session arrives right after CONNACK, before
	// the subscription below has re-added its route; paho drops a message that
	// has no handler without acknowledging it, so the default must be ours.
	opts.SetDefaultPublishHandler(handler)
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		in.Log.Info("connected to broker", "broker", in.BrokerURL)
		reports := wire.ReportSubscription
		if in.Shared != "" {
			reports = "$share/" + in.Shared + "/" + reports
		}
		subs := map[string]byte{reports: 1, wire.StatusSubscription: 1, wire.TelemetrySubscription: 1}
		if t := c.SubscribeMultiple(subs, handler); t.Wait() && t.Error() != nil {
			in.Log.Error("subscribe failed", "err", t.Error())
			return
		}
		in.listening.Store(time.Now().UnixNano())
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		in.listening.Store(0)
		in.Log.Warn("lost broker connection, reconnecting", "err", err)
	})
	c := mqtt.NewClient(opts)
	in.client = c
	workers := in.startWorkers(ctx)
	c.Connect() // with ConnectRetry the token completes only on success; the handler subscribes
	<-ctx.Done()
	c.Disconnect(500)
	workers.Wait()
	return ctx.Err()
}

// handle processes a status or telemetry message (reports go through the
// workers' batches, batch.go) and acknowledges it.
func (in *Ingest) handle(ctx context.Context, m mqtt.Message) {
	defer m.Ack()
	device, kind, err := wire.ParseTopic(m.Topic())
	if err != nil {
		in.deadLetter(ctx, m, err.Error())
		return
	}
	switch kind {
	case wire.KindTelemetry:
		tm, err := wire.DecodeTelemetry(m.Payload())
		if err != nil {
			in.deadLetter(ctx, m, err.Error())
			return
		}
		if tm.Device != device {
			in.deadLetter(ctx, m, fmt.Sprintf("telemetry claims device %q but was published on %q's topic", tm.Device, device))
			return
		}
		if err := in.Sink.SetTelemetry(ctx, device, time.Now().UTC(), m.Payload()); err != nil {
			in.Log.Error("store telemetry", "device", device, "err", err)
			return
		}
		in.telemetry.Add(1)
		if in.OnTelemetry != nil {
			in.OnTelemetry(tm)
		}
		in.track(ctx, device, tm.Seq)
	case wire.KindStatus:
		st, err := wire.DecodeStatus(m.Payload())
		if err != nil {
			in.deadLetter(ctx, m, err.Error())
			return
		}
		if st.Device != device {
			in.deadLetter(ctx, m, fmt.Sprintf("status for device %q published on %q's topic", st.Device, device))
			return
		}
		if err := in.Sink.SetDeviceStatus(ctx, store.Device{Device: device, Online: st.Online, StatusAt: st.At,
			LastSeen: time.Now().UTC(), Software: st.Software, ConfigVer: st.ConfigVer}); err != nil {
			in.Log.Error("store device status", "device", device, "err", err)
		}
	}
}

// track notes that (device, seq) is stored and asks the box to replay when
// sequence numbers are missing: the broker may have dropped them.
func (in *Ingest) track(ctx context.Context, device string, seq uint64) {
	if !in.gaps.known(device) {
		hw, err := in.Sink.SeqHW(ctx, device)
		if err != nil {
			in.Log.Error("load sequence high-water mark", "device", device, "err", err)
		}
		in.gaps.load(device, hw)
	}
	hw, moved, from := in.gaps.see(device, seq, time.Now())
	if moved {
		in.moved(device, hw)
	}
	if from != 0 && in.Shared != "" {
		from = in.storedElsewhere(ctx, device)
	}
	if from != 0 {
		in.askReplay(device, from, seq)
	}
}

func (in *Ingest) askReplay(device string, from, received uint64) {
	cmd := wire.Command{V: wire.Version, ID: fmt.Sprintf("replay-%s-%d-%d", device, from, time.Now().UnixMilli()),
		Cmd: wire.CmdReplay, At: time.Now().UTC(), FromSeq: from}
	b, _ := json.Marshal(cmd)
	in.replays.Add(1)
	in.Log.Warn("sequence gap: asking the box to replay", "device", device, "from_seq", from, "received", received)
	// Don't wait for the PUBACK: ingest must go on with the next messages.
	in.client.Publish(wire.Topic(device, wire.KindCommand), 1, false, b)
}

// deadLetter keeps a refused message with the reason; false if it could not be stored.
func (in *Ingest) deadLetter(ctx context.Context, m mqtt.Message, reason string) bool {
	in.dead.Add(1)
	in.Log.Warn("message refused", "topic", m.Topic(), "reason", reason)
	if err := in.Sink.DeadLetter(ctx, m.Topic(), m.Payload(), reason); err != nil {
		in.Log.Error("store dead letter", "err", err)
		return false
	}
	return true
}
