// Package uplink connects a box to the cloud: an MQTT session (paho, QoS 1,
// persistent, retained online/offline status with a last will) that the
// outbox publishes through, and the evidence uploader that PUTs files to the
// cloud by sha256 until they are acknowledged.
package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// MQTT is the box's broker session.
type MQTT struct {
	c      mqtt.Client
	device string
	log    *slog.Logger

	mu     sync.Mutex
	status wire.Status
}

func (m *MQTT) configVer() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status.ConfigVer
}

// SetConfig records which config version runs and why the last push was
// refused (empty: it was not), and republishes the retained status.
func (m *MQTT) SetConfig(version, configErr string) {
	m.mu.Lock()
	m.status.ConfigVer, m.status.ConfigError = version, configErr
	m.mu.Unlock()
	if m.c.IsConnectionOpen() {
		m.publishStatus(true)
	}
}

// MQTTOptions configures Dial.
type MQTTOptions struct {
	BrokerURL    string
	ClientID     string
	Device       string
	Username     string
	PasswordFile string
	Software     string
	ConfigVer    string
	// OnCommand receives each valid command from the cloud (on paho's
	// goroutine: keep it short). Invalid ones are logged and dropped.
	OnCommand func(wire.Command)
	// OnConfig receives the retained config pushed by the cloud (on paho's
	// goroutine: hand it off). Nil: the box does not take pushed configs.
	OnConfig func(wire.ConfigPush)
}

// Dial starts connecting (retrying in the background) and returns at once;
// publishes fail until the session is up, and the outbox retries them.
func Dial(o MQTTOptions, log *slog.Logger) (*MQTT, error) {
	will, err := json.Marshal(wire.Status{V: wire.Version, Device: o.Device, Online: false, At: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	m := &MQTT{device: o.Device, log: log,
		status: wire.Status{V: wire.Version, Device: o.Device, Online: true, Software: o.Software, ConfigVer: o.ConfigVer}}
	opts := mqtt.NewClientOptions().
		AddBroker(o.BrokerURL).
		SetClientID(o.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5*time.Second).
		SetKeepAlive(10*time.Second).
		SetWriteTimeout(5*time.Second).
		SetBinaryWill(wire.Topic(o.Device, wire.KindStatus), will, 1, true)
	if o.Username != "" {
		opts.SetUsername(o.Username)
	}
	if o.PasswordFile != "" {
		pw, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("broker.password_file: %w", err)
		}
		opts.SetPassword(strings.TrimSpace(string(pw)))
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		log.Info("connected to broker", "broker", o.BrokerURL)
		if o.OnCommand != nil {
			c.Subscribe(wire.Topic(o.Device, wire.KindCommand), 1, func(_ mqtt.Client, msg mqtt.Message) {
				cmd, err := wire.DecodeCommand(msg.Payload())
				if err != nil {
					log.Warn("ignoring a bad command", "err", err)
					return
				}
				log.Info("command received", "cmd", cmd.Cmd, "id", cmd.ID)
				o.OnCommand(cmd)
			})
		}
		if o.OnConfig != nil {
			c.Subscribe(wire.Topic(o.Device, wire.KindConfig), 1, func(_ mqtt.Client, msg mqtt.Message) {
				push, err := wire.DecodeConfigPush(msg.Payload())
				if err != nil {
					log.Warn("ignoring a bad config push", "err", err)
					m.SetConfig(m.configVer(), err.Error())
					return
				}
				o.OnConfig(push)
			})
		}
		m.publishStatus(true)
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Warn("lost broker connection, reconnecting", "err", err)
	})
	m.c = mqtt.NewClient(opts)
	m.c.Connect()
	return m, nil
}

func (m *MQTT) publishStatus(online bool) {
	m.mu.Lock()
	st := m.status
	m.mu.Unlock()
	st.Online, st.At = online, time.Now().UTC()
	b, _ := json.Marshal(st)
	t := m.c.Publish(wire.Topic(m.device, wire.KindStatus), 1, true, b)
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		m.log.Warn("status publish not acknowledged", "online", online, "err", t.Error())
	}
}

// ErrNotAcked means the broker did not acknowledge in time.
var ErrNotAcked = errors.New("broker did not acknowledge")

// Publish sends one outbox message at QoS 1 and returns once the broker's
// PUBACK arrived. It is an outbox.Publisher.
func (m *MQTT) Publish(ctx context.Context, msg outbox.Message) error {
	if !m.c.IsConnectionOpen() {
		return errors.New("not connected to broker")
	}
	t := m.c.Publish(msg.Topic, 1, false, msg.Payload)
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return ErrNotAcked
	}
}

// Close says offline (the retained status) and disconnects cleanly; the last
// will covers the unclean cases.
func (m *MQTT) Close() {
	if m.c.IsConnectionOpen() {
		m.publishStatus(false)
	}
	m.c.Disconnect(1000)
}
