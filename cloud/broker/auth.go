package broker

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Auth is who may use the embedded broker: the boxes in Devices, each only
// as itself, and the cloud's own clients under one service identity.
type Auth struct {
	// Devices holds the boxes' password hashes. A box connects with its
	// device id as user name, or over TLS with a client certificate whose
	// common name is its device id (then no password is needed).
	Devices *Credentials
	// Service and ServicePassword are the cloud's own identity, which may
	// publish and subscribe to everything.
	Service, ServicePassword string
}

// DeviceMay is the rule both brokers enforce (the Mosquitto ACL written by
// MosquittoFiles says the same): a box publishes only its own reports,
// status and telemetry, and subscribes only to its own commands and config.
func DeviceMay(device, topic string, write bool) bool {
	if write {
		return topic == wire.Topic(device, wire.KindReport) || topic == wire.Topic(device, wire.KindStatus) ||
			topic == wire.Topic(device, wire.KindTelemetry)
	}
	return topic == wire.Topic(device, wire.KindCommand) || topic == wire.Topic(device, wire.KindConfig)
}

// Refusals counts what the broker refused since it started.
type Refusals struct {
	Connects   int64 `json:"connects"`   // bad or unknown credentials
	Publishes  int64 `json:"publishes"`  // a box publishing outside its own topics
	Subscribes int64 `json:"subscribes"` // a box subscribing outside its own topics
}

// authHook enforces Auth at connect and on every publish and subscription.
type authHook struct {
	mqtt.HookBase
	auth                            Auth
	log                             *slog.Logger
	connects, publishes, subscribes atomic.Int64
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "gridwatch-device-identity" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// certName is the common name of a verified TLS client certificate, if any.
func certName(cl *mqtt.Client) string {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pw := string(pk.Connect.Username), string(pk.Connect.Password)
	refuse := func(reason string) bool {
		h.connects.Add(1)
		h.log.Warn("broker refused a connection", "reason", reason, "user", user, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if cn := certName(cl); cn != "" {
		switch {
		case user != "" && user != cn:
			return refuse("user name differs from the client certificate's common name " + cn)
		case cn == h.auth.Service:
			// The service identity by certificate: trusted as the CA vouches.
		case h.auth.Devices == nil || !h.knownDevice(cn):
			return refuse("client certificate names unknown device " + cn)
		}
		cl.Properties.Username = []byte(cn) // the ACL reads the identity from here
		return true
	}
	switch {
	case user == "":
		return refuse("no user name (a box connects as its device id)")
	case h.auth.Service != "" && user == h.auth.Service:
		if subtle.ConstantTimeCompare([]byte(pw), []byte(h.auth.ServicePassword)) == 1 {
			return true
		}
		return refuse("wrong service password")
	case h.auth.Devices != nil && h.auth.Devices.Check(user, pw):
		return true
	}
	return refuse("unknown device or wrong password")
}

func (h *authHook) knownDevice(id string) bool {
	_, ok := h.auth.Devices.hashes[id]
	return ok
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	user := cl.Properties.Username
	if h.auth.Service != "" && bytes.Equal(user, []byte(h.auth.Service)) {
		return true
	}
	if DeviceMay(string(user), topic, write) {
		return true
	}
	if write {
		h.publishes.Add(1)
		h.log.Warn("broker refused a publish outside the device's own topics", "device", string(user), "topic", topic, "client", cl.ID)
	} else {
		h.subscribes.Add(1)
		h.log.Warn("broker refused a subscription outside the device's own topics", "device", string(user), "filter", topic, "client", cl.ID)
	}
	return false
}

func (h *authHook) refusals() Refusals {
	return Refusals{Connects: h.connects.Load(), Publishes: h.publishes.Load(), Subscribes: h.subscribes.Load()}
}
