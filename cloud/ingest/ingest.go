// Package ingest subscribes to the boxes' MQTT topics and hands each message
// to the case engine. It validates strictly, sends what it refuses to the
// dead-letter table with the reason, never blocks on one bad message, and
// acknowledges a QoS 1 message only after its effect is committed, so a crash
// in between means redelivery (and idempotent re-application), not loss.
package ingest

import (
	"context"
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
}

// Stats counts what ingest did since start.
type Stats struct {
	Accepted, Duplicates, DeadLetters, Cases uint64
}

// Ingest is the MQTT subscriber.
type Ingest struct {
	BrokerURL string
	ClientID  string
	Applier   Applier
	Sink      Sink
	Log       *slog.Logger

	accepted, duplicates, dead, cases atomic.Uint64
}

// Stats returns the counters.
func (in *Ingest) Stats() Stats {
	return Stats{in.accepted.Load(), in.duplicates.Load(), in.dead.Load(), in.cases.Load()}
}

// Run connects (retrying until ctx ends), subscribes and processes messages
// until ctx is done.
func (in *Ingest) Run(ctx context.Context) error {
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
		subs := map[string]byte{wire.ReportSubscription: 1, wire.StatusSubscription: 1}
		if t := c.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) { in.handle(ctx, m) }); t.Wait() && t.Error() != nil {
			in.Log.Error("subscribe failed", "err", t.Error())
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		in.Log.Warn("lost broker connection, reconnecting", "err", err)
	})
	c := mqtt.NewClient(opts)
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

func (in *Ingest) deadLetter(ctx context.Context, m mqtt.Message, reason string) {
	in.dead.Add(1)
	in.Log.Warn("message refused", "topic", m.Topic(), "reason", reason)
	if err := in.Sink.DeadLetter(ctx, m.Topic(), m.Payload(), reason); err != nil {
		in.Log.Error("store dead letter", "err", err)
	}
}
