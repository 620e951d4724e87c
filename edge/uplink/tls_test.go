package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/uplink/tlstest"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// TestTLSClientCertificates runs boxes against a real Mosquitto whose TLS
// listener requires a client certificate from its CA and takes the
// certificate's common name as the user name (the ACL confines each box to
// its own topics).
func TestTLSClientCertificates(t *testing.T) {
	if _, err := broker.MosquittoPath(); err != nil {
		t.Skip(err)
	}
	b, err := tlstest.StartBroker()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := b.Dir()

	// The cloud's session sees what the box publishes.
	cloudCrt, cloudKey, err := b.Client("gridwatch-cloud")
	if err != nil {
		t.Fatal(err)
	}
	cloudTLS, err := config.TLS{CA: b.CAFile, Cert: cloudCrt, Key: cloudKey, ServerName: b.ServerName}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud").SetTLSConfig(cloudTLS))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud session: %v\n%s", tok.Error(), b.Log())
	}
	defer sub.Disconnect(100)
	sub.Subscribe("gridwatch/v1/dev/+/report", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) }).Wait()

	boxCrt, boxKey, _ := b.Client("box-tls-1")
	otherCA, _ := tlstest.NewCA("someone else's CA")
	strangerCrt, strangerKey, _ := otherCA.IssueFiles(dir, "stranger", tlstest.Leaf{CommonName: "box-tls-1", Usage: x509.ExtKeyUsageClientAuth})
	otherCAFile, _ := otherCA.WriteCA(dir, "other-ca")

	tests := []struct {
		name string
		tls  config.TLS
		want string // "": connects and publishes; else Err() and Publish's error contain it
	}{
		{"box with its certificate", config.TLS{CA: b.CAFile, Cert: boxCrt, Key: boxKey, ServerName: b.ServerName}, ""},
		{"box without a certificate", config.TLS{CA: b.CAFile, ServerName: b.ServerName}, "the broker requires a client certificate"},
		{"certificate from another CA", config.TLS{CA: b.CAFile, Cert: strangerCrt, Key: strangerKey, ServerName: b.ServerName},
			"the broker refused this box's client certificate"},
		{"broker not signed by the box's CA", config.TLS{CA: otherCAFile, Cert: boxCrt, Key: boxKey, ServerName: b.ServerName},
			"the broker's certificate is not signed by a CA this box trusts"},
		{"wrong server name", config.TLS{CA: b.CAFile, Cert: boxCrt, Key: boxKey, ServerName: "elsewhere.test"},
			"does not carry the expected name"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tlsCfg, err := tc.tls.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			m, err := Dial(MQTTOptions{BrokerURL: b.URL(), ClientID: "edge-tls-" + string(rune('a'+i)), Device: "box-tls-1", TLS: tlsCfg}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			topic := wire.Topic("box-tls-1", wire.KindReport)
			if tc.want == "" {
				waitFor(t, "TLS session", func() bool { return m.c.IsConnectionOpen() })
				if err := m.Publish(context.Background(), outbox.Message{Seq: 1, Topic: topic, Payload: []byte("over tls")}); err != nil {
					t.Fatal(err)
				}
				select {
				case s := <-got:
					if s != topic+" over tls" {
						t.Fatalf("cloud got %q", s)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("the box's report did not reach the cloud's session\n%s", b.Log())
				}
				return
			}
			waitFor(t, "a refused connection", func() bool { return m.Err() != nil })
			t.Logf("refused: %v", m.Err())
			if !strings.Contains(m.Err().Error(), tc.want) {
				t.Fatalf("Err() = %v, want it to say %q", m.Err(), tc.want)
			}
			err = m.Publish(context.Background(), outbox.Message{Seq: 1, Topic: topic, Payload: []byte("x")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Publish = %v, want a refusal saying %q", err, tc.want)
			}
			if m.c.IsConnectionOpen() {
				t.Fatal("a refused box must not have a session")
			}
		})
	}
	select {
	case s := <-got:
		t.Fatalf("a refused box published %q", s)
	default:
	}
}

// The uploader trusts the configured CA for an https cloud and presents the
// box's certificate; a cloud that requires one refuses a box without it, and
// the file stays queued.
func TestEvidenceOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlstest.NewCA("cloud CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _ := ca.WriteCA(dir, "ca")
	srvPEM, srvKey, _ := ca.Issue(tlstest.Leaf{CommonName: "cloud", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: x509.ExtKeyUsageServerAuth})
	pair, err := tls.X509KeyPair(srvPEM, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	var mu sync.Mutex
	uploadedBy := map[string]string{} // sha256 → client certificate's common name
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uploadedBy[filepath.Base(r.URL.Path)] = r.TLS.PeerCertificates[0].Subject.CommonName
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	boxCrt, boxKey, _ := ca.IssueFiles(dir, "box", tlstest.Leaf{CommonName: "box-tls-1", Usage: x509.ExtKeyUsageClientAuth})

	tests := []struct {
		name     string
		tls      config.TLS
		uploaded bool
	}{
		{"with the box's certificate", config.TLS{CA: caFile, Cert: boxCrt, Key: boxKey, ServerName: "broker-only.test"}, true},
		{"without a certificate", config.TLS{CA: caFile}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tlsCfg, err := tc.tls.HTTPClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			e, err := OpenEvidence(t.TempDir(), srv.URL, tlsCfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			sum, _ := e.Save([]byte(tc.name), ".jpg")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go e.Run(ctx)
			if tc.uploaded {
				waitFor(t, "upload over TLS", func() bool { return e.Pending() == 0 })
				mu.Lock()
				defer mu.Unlock()
				if uploadedBy[sum] != "box-tls-1" {
					t.Fatalf("cloud saw the upload from %q, want the box's certificate", uploadedBy[sum])
				}
				return
			}
			time.Sleep(500 * time.Millisecond)
			if e.Pending() != 1 {
				t.Fatalf("pending = %d: a refused upload must stay queued", e.Pending())
			}
		})
	}
}
