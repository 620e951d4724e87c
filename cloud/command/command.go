// Package command sends the cloud's instructions to boxes: device configs,
// retained on each box's config topic so a box that is offline gets the
// newest when it comes back.
package command

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Sender is an MQTT session for commands.
type Sender struct {
	c mqtt.Client
}

// Dial connects (retrying in the background).
func Dial(brokerURL, clientID string, log *slog.Logger) *Sender {
	return DialAs(brokerURL, clientID, "", "", log)
}

// DialAs is Dial with the cloud's service identity, for a broker that
// checks device identity.
func DialAs(brokerURL, clientID, username, password string, log *slog.Logger) *Sender {
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second)
	if username != "" {
		opts.SetUsername(username).SetPassword(password)
	}
	opts.SetOnConnectHandler(func(mqtt.Client) { log.Info("command sender connected", "broker", brokerURL) })
	c := mqtt.NewClient(opts)
	c.Connect()
	return &Sender{c: c}
}

// Close disconnects.
func (s *Sender) Close() { s.c.Disconnect(500) }

// PushConfig validates a device config exactly as the box will, checks it is
// for that device, and publishes it retained. It returns the version pushed.
func (s *Sender) PushConfig(device string, yaml []byte) (string, error) {
	cfg, err := config.Parse(yaml)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if cfg.Device != device {
		return "", fmt.Errorf("config: device is %q, not %q", cfg.Device, device)
	}
	if cfg.Version == "" {
		return "", fmt.Errorf("config: version is required in a pushed config (the box reports which it runs)")
	}
	push := wire.ConfigPush{V: wire.Version, Version: cfg.Version, At: time.Now().UTC(), YAML: string(yaml)}
	if err := push.Validate(); err != nil {
		return "", err
	}
	b, _ := json.Marshal(push)
	t := s.c.Publish(wire.Topic(device, wire.KindConfig), 1, true, b)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return "", fmt.Errorf("publish config to %s: not acknowledged: %v", device, t.Error())
	}
	return cfg.Version, nil
}
