// Package uplink connects a box to the cloud: an MQTT session (paho, QoS 1,
// persistent, retained online/offline status with a last will) that the
// outbox publishes through, and the evidence uploader that PUTs files to the
// cloud by sha256 until they are acknowledged.
package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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

	mu      sync.Mutex
	status  wire.Status
	lastErr error       // why the last connection attempt failed; nil once connected
	tlsUp   atomic.Bool // the last attempt's TLS handshake (and the probe after it) passed
}

// tlsSchemes are the broker URL schemes paho dials with TLS over TCP.
var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true}

// certProbe is how long dialTLS waits, after the handshake, for the broker
// to refuse the client certificate. Under TLS 1.3 the client's handshake
// ends before the server has judged its certificate, so without the wait
// the refusal arrives as a reset connection in the middle of CONNECT.
const certProbe = 300 * time.Millisecond

// dialTLS opens a TLS connection and waits certProbe for an alert, so a
// refused client certificate is reported as such.
func dialTLS(addr string, cfg *tls.Config, timeout time.Duration, up *atomic.Bool) (net.Conn, error) {
	up.Store(false)
	d := &net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn := tls.Client(raw, cfg)
	raw.SetDeadline(time.Now().Add(timeout))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	conn.SetReadDeadline(time.Now().Add(certProbe))
	var b [1]byte
	n, err := conn.Read(b[:])
	conn.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n == 1: // a broker does not speak first; keep the byte anyway
		up.Store(true)
		return &prefixConn{Conn: conn, pre: b[:1]}, nil
	case errors.As(err, &ne) && ne.Timeout():
		up.Store(true)
		return conn, nil
	default:
		conn.Close()
		return nil, err
	}
}

// prefixConn returns pre before reading from Conn.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// Err says why the box is not connected: the last connection attempt's
// error (a refused client certificate, an untrusted broker, no route), or
// nil when the session is up or no attempt has failed yet.
func (m *MQTT) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

// setErr records a failed attempt and logs it when the reason changed (the
// client retries every second; the log should not).
func (m *MQTT) setErr(err error) {
	m.mu.Lock()
	changed := err != nil && (m.lastErr == nil || m.lastErr.Error() != err.Error())
	m.lastErr = err
	m.mu.Unlock()
	if changed {
		m.log.Warn("broker connection failed, retrying", "err", err)
	}
}

// explain says in the box's terms what a TLS failure means.
func explain(err error) error {
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var expired x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the broker's certificate is not signed by a CA this box trusts (broker.tls.ca): %w", err)
	case errors.As(err, &host):
		return fmt.Errorf("the broker's certificate does not carry the expected name (broker.url host or broker.tls.server_name): %w", err)
	case errors.As(err, &expired):
		return fmt.Errorf("the broker's certificate is not valid now (check the box's clock): %w", err)
	case strings.Contains(msg, "certificate required"):
		return fmt.Errorf("the broker requires a client certificate (broker.tls.cert and broker.tls.key): %w", err)
	case strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "bad certificate"),
		strings.Contains(msg, "certificate unknown"), strings.Contains(msg, "certificate expired"):
		return fmt.Errorf("the broker refused this box's client certificate (not issued by its CA, expired or revoked): %w", err)
	}
	return err
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
	// TLS is used for ssl://, tls://, mqtts:// and wss:// brokers (nil:
	// system roots, no client certificate); config.TLS.ClientConfig makes it.
	TLS *tls.Config
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
		SetProtocolVersion(4). // 3.1.1 only: no second, 3.1 attempt hiding the first one's error
		SetBinaryWill(wire.Topic(o.Device, wire.KindStatus), will, 1, true)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
		if u, err := url.Parse(o.BrokerURL); err == nil && tlsSchemes[u.Scheme] {
			opts.SetCustomOpenConnectionFn(func(u *url.URL, co mqtt.ClientOptions) (net.Conn, error) {
				return dialTLS(u.Host, co.TLSConfig, co.ConnectTimeout, &m.tlsUp)
			})
		}
	}
	opts.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if f, ok := n.(mqtt.ConnectionNotificationFailed); ok && f.Reason != nil {
			err := explain(f.Reason)
			if m.tlsUp.Load() && err == f.Reason {
				err = fmt.Errorf("the broker closed the connection after the TLS handshake (a refused client certificate, or a user or ACL refusal): %w", err)
			}
			m.setErr(err)
		}
	})
	if o.Username != "" {
		opts.SetUsername(o.Username)
	}
	if o.PasswordFile != "" {
		pw, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("broker.password_file: %w", err)
		}
		if strings.TrimSpace(string(pw)) == "" {
			return nil, fmt.Errorf("broker.password_file: %s is empty", o.PasswordFile)
		}
		opts.SetPassword(strings.TrimSpace(string(pw)))
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		log.Info("connected to broker", "broker", o.BrokerURL)
		m.mu.Lock()
		m.lastErr = nil
		m.mu.Unlock()
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
		if err := m.Err(); err != nil {
			return fmt.Errorf("not connected to broker: %w", err)
		}
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
