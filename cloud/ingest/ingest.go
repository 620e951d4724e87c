// Package ingest subscribes to the boxes' MQTT topics and hands each message
// to the case engine. It validates strictly, sends what it refuses to the
// dead-letter table with the reason, never blocks on one bad message, and
// acknowledges a QoS 1 message only after its effect is committed, so a crash
// in between means redelivery (and idempotent re-application), not loss.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
}

// Ingest is the MQTT subscriber.
type Ingest struct {
	BrokerURL string
	ClientID  string
	Applier   Applier
	Sink      Sink
	Log       *slog.Logger
	// ReplayRetry spaces repeated replay requests for the same hole (default 10 s).
	ReplayRetry time.Duration

	client mqtt.Client
	gaps   *gaps

	accepted, duplicates, dead, cases, telemetry, replays atomic.Uint64
}

// Stats returns the counters.
func (in *Ingest) Stats() Stats {
	return Stats{in.accepted.Load(), in.duplicates.Load(), in.dead.Load(), in.cases.Load(),
		in.telemetry.Load(), in.replays.Load()}
}

// Run connects (retrying until ctx ends), subscribes and processes messages
// until ctx is done.
func (in *Ingest) Run(ctx context.Context) error {
	if in.ReplayRetry == 0 {
		in.ReplayRetry = 10 * time.Second
	}
	in.gaps = newGaps(in.ReplayRetry)
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
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		in.Log.Info("connected to broker", "broker", in.BrokerURL)
		subs := map[string]byte{wire.ReportSubscription: 1, wire.StatusSubscription: 1, wire.TelemetrySubscription: 1}
		if t := c.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) { in.handle(ctx, m) }); t.Wait() && t.Error() != nil {
			in.Log.Error("subscribe failed", "err", t.Error())
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		in.Log.Warn("lost broker connection, reconnecting", "err", err)
	})
	c := mqtt.NewClient(opts)
	in.client = c
	c.Connect() // with ConnectRetry the token completes only on success; the handler subscribes
	<-ctx.Done()
	c.Disconnect(500)
	return ctx.Err()
}

func (in *Ingest) handle(ctx context.Context, m mqtt.Message) {
	defer m.Ack()
	device, kind, err := wire.ParseTopic(m.Topic())
	if err != nil {
		in.deadLetter(ctx, m, err.Error())
		return
	}
	switch kind {
	case wire.KindReport:
		in.handleReport(ctx, m, device)
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

func (in *Ingest) handleReport(ctx context.Context, m mqtt.Message, device string) {
	r, err := wire.DecodeReport(m.Payload())
	if err != nil {
		in.deadLetter(ctx, m, err.Error())
		return
	}
	if r.Device != device {
		// A box may only publish as itself.
		in.deadLetter(ctx, m, fmt.Sprintf("report claims device %q but was published on %q's topic", r.Device, device))
		return
	}
	var out cases.Outcome
	for attempt := 0; ; attempt++ {
		out, err = in.Applier.Apply(ctx, r, m.Payload())
		if err == nil || errors.Is(err, cases.ErrUnknownFacility) || attempt == 4 || ctx.Err() != nil {
			break
		}
		in.Log.Warn("apply report failed, retrying", "device", device, "seq", r.Seq, "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
	if err != nil {
		in.deadLetter(ctx, m, "apply: "+err.Error())
		return
	}
	in.track(ctx, device, r.Seq)
	switch {
	case out.Duplicate:
		in.duplicates.Add(1)
		in.Log.Debug("duplicate report ignored", "device", device, "seq", r.Seq)
	default:
		in.accepted.Add(1)
		if out.Created {
			in.cases.Add(1)
			in.Log.Info("case opened", "case", out.CaseID, "device", device, "facility", r.FacilityID, "state", r.State)
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
		if err := in.Sink.SetSeqHW(ctx, device, hw); err != nil {
			in.Log.Error("store sequence high-water mark", "device", device, "err", err)
		}
	}
	if from == 0 {
		return
	}
	cmd := wire.Command{V: wire.Version, ID: fmt.Sprintf("replay-%s-%d-%d", device, from, time.Now().UnixMilli()),
		Cmd: wire.CmdReplay, At: time.Now().UTC(), FromSeq: from}
	b, _ := json.Marshal(cmd)
	in.replays.Add(1)
	in.Log.Warn("sequence gap: asking the box to replay", "device", device, "from_seq", from, "received", seq)
	// Don't wait for the PUBACK here: we are on paho's message goroutine.
	in.client.Publish(wire.Topic(device, wire.KindCommand), 1, false, b)
}

func (in *Ingest) deadLetter(ctx context.Context, m mqtt.Message, reason string) {
	in.dead.Add(1)
	in.Log.Warn("message refused", "topic", m.Topic(), "reason", reason)
	if err := in.Sink.DeadLetter(ctx, m.Topic(), m.Payload(), reason); err != nil {
		in.Log.Error("store dead letter", "err", err)
	}
}
