package config

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/edge/uplink/tlstest"
)

// tlsBox is a valid box config with a broker.tls section.
func tlsBox(scheme, tlsYAML string) string {
	return fmt.Sprintf(`device: box-tls-1
broker:
  url: %s://127.0.0.1:8883
  tls:
%s
cloud:
  url: https://cloud.example
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
`, scheme, tlsYAML)
}

func TestBrokerTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlstest.NewCA("box CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _ := ca.WriteCA(dir, "ca")
	crt, key, err := ca.IssueFiles(dir, "box", tlstest.Leaf{CommonName: "box-tls-1", Usage: x509.ExtKeyUsageClientAuth})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ca.IssueFiles(dir, "other", tlstest.Leaf{CommonName: "box-tls-2", Usage: x509.ExtKeyUsageClientAuth})
	oldCrt, oldKey, _ := ca.IssueFiles(dir, "old", tlstest.Leaf{CommonName: "box-tls-1", Usage: x509.ExtKeyUsageClientAuth,
		NotAfter: time.Now().Add(-time.Hour)})
	srvCrt, srvKey, _ := ca.IssueFiles(dir, "server", tlstest.Leaf{CommonName: "broker", Usage: x509.ExtKeyUsageServerAuth})
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a pem file\n"), 0o644)

	entry := func(kv ...string) string {
		var b strings.Builder
		for i := 0; i < len(kv); i += 2 {
			fmt.Fprintf(&b, "    %s: %q\n", kv[i], kv[i+1])
		}
		return strings.TrimRight(b.String(), "\n")
	}
	tests := []struct {
		name, scheme, tls string
		want              string // "" = loads
	}{
		{"ca, cert and key", "ssl", entry("ca", caFile, "cert", crt, "key", key, "server_name", "broker.example"), ""},
		{"ca only (no client certificate)", "tls", entry("ca", caFile), ""},
		{"tcp broker with tls", "tcp", entry("ca", caFile), "broker.tls: set, but broker.url uses tcp://"},
		{"cert without key", "ssl", entry("cert", crt), "broker.tls.cert/key: give both"},
		{"missing ca file", "ssl", entry("ca", filepath.Join(dir, "nope.pem")), "broker.tls.ca: open"},
		{"ca is not PEM", "ssl", entry("ca", junk), "broker.tls.ca: " + junk + " holds no PEM certificate"},
		{"missing cert file", "ssl", entry("cert", filepath.Join(dir, "nope.crt"), "key", key), "broker.tls.cert: open"},
		{"cert is not PEM", "ssl", entry("cert", junk, "key", key), "broker.tls.cert: " + junk + ": holds no PEM certificate"},
		{"missing key file", "ssl", entry("cert", crt, "key", filepath.Join(dir, "nope.key")), "broker.tls.key: open"},
		{"key is a certificate", "ssl", entry("cert", crt, "key", crt), "broker.tls.key: " + crt + " holds no PEM private key"},
		{"key of another certificate", "ssl", entry("cert", crt, "key", otherKey), "broker.tls.key: " + otherKey + " does not go with broker.tls.cert"},
		{"expired certificate", "ssl", entry("cert", oldCrt, "key", oldKey), "broker.tls.cert: " + oldCrt + " expired on"},
		{"server certificate as client", "ssl", entry("cert", srvCrt, "key", srvKey), "not valid for client authentication"},
		{"unknown key", "ssl", entry("ca", caFile, "certificate", crt), "field certificate not found"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("box%d.yaml", i))
			if err := os.WriteFile(p, []byte(tlsBox(tc.scheme, tc.tls)), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc2, err := c.Broker.TLS.ClientConfig()
			if err != nil || tc2 == nil || tc2.RootCAs == nil {
				t.Fatalf("ClientConfig = %v, %v: want the CA as roots", tc2, err)
			}
			if c.Broker.TLS.Cert != "" && (len(tc2.Certificates) != 1 || tc2.ServerName != "broker.example") {
				t.Fatalf("want the client certificate and server_name, got %d certificates, name %q", len(tc2.Certificates), tc2.ServerName)
			}
			h, _ := c.Broker.TLS.HTTPClientConfig()
			if h.ServerName != "" || len(h.Certificates) != len(tc2.Certificates) {
				t.Fatal("the cloud upload must check the cloud's own host name and present the same certificate")
			}
		})
	}
}

func TestNoTLSIsNil(t *testing.T) {
	c, err := (TLS{}).ClientConfig()
	if c != nil || err != nil {
		t.Fatalf("got %v, %v: want nil, nil without a tls section", c, err)
	}
}
