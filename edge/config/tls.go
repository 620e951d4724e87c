package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// TLS is the box's certificate material for the broker (ssl://, tls://,
// mqtts:// or wss:// URLs). The same CA and client certificate serve the
// evidence upload when cloud.url is https.
type TLS struct {
	// CA is a PEM file of the certificates that may sign the broker's (and
	// the cloud's) server certificate; empty: the system's roots.
	CA string `yaml:"ca"`
	// Cert and Key are the box's client certificate and its private key
	// (PEM), for brokers with require_certificate; both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the broker's certificate must carry when it
	// differs from the host in broker.url (e.g. the broker is reached by IP).
	ServerName string `yaml:"server_name"`
}

// IsZero reports whether no TLS setting is given.
func (t TLS) IsZero() bool { return t == TLS{} }

// validate checks what can be checked without the files (a pushed config
// is validated in the cloud, which does not have the box's files).
func (t TLS) validate(field, brokerScheme string) error {
	if t.IsZero() {
		return nil
	}
	switch brokerScheme {
	case "ssl", "tls", "mqtts", "wss":
	default:
		return fmt.Errorf("%s: set, but broker.url uses %s://; TLS needs ssl://, tls://, mqtts:// or wss://", field, brokerScheme)
	}
	if (t.Cert == "") != (t.Key == "") {
		return fmt.Errorf("%s.cert/key: give both the client certificate and its key, or neither", field)
	}
	return nil
}

// ClientConfig reads the files and returns the TLS client settings for
// the broker, or nil when no TLS setting is given. Every error names the
// field whose file is wrong: missing, not PEM, not a certificate, expired,
// not for client authentication, or a key that does not match the
// certificate.
func (t TLS) ClientConfig() (*tls.Config, error) {
	return t.clientConfig("broker.tls", time.Now())
}

func (t TLS) clientConfig(field string, now time.Time) (*tls.Config, error) {
	if t.IsZero() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		b, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("%s.ca: %w", field, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s.ca: %s holds no PEM certificate", field, t.CA)
		}
		c.RootCAs = pool
	}
	if t.Cert == "" {
		return c, nil
	}
	certPEM, err := os.ReadFile(t.Cert)
	if err != nil {
		return nil, fmt.Errorf("%s.cert: %w", field, err)
	}
	leaf, err := firstCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.cert: %s: %w", field, t.Cert, err)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%s.cert: %s expired on %s", field, t.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("%s.cert: %s is not valid for client authentication (extended key usage lacks clientAuth)", field, t.Cert)
	}
	keyPEM, err := os.ReadFile(t.Key)
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", field, err)
	}
	if !hasKeyBlock(keyPEM) {
		return nil, fmt.Errorf("%s.key: %s holds no PEM private key", field, t.Key)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.key: %s does not go with %s.cert %s: %w", field, t.Key, field, t.Cert, err)
	}
	c.Certificates = []tls.Certificate{pair}
	return c, nil
}

func firstCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("holds no PEM certificate")
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate does not parse: %w", err)
			}
			return c, nil
		}
	}
}

// hasKeyBlock looks past blocks such as the EC PARAMETERS openssl writes first.
func hasKeyBlock(b []byte) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		switch {
		case blk == nil:
			return false
		case blk.Type == "PRIVATE KEY" || blk.Type == "RSA PRIVATE KEY" || blk.Type == "EC PRIVATE KEY":
			return true
		}
	}
}

// HTTPClientConfig is the TLS setting for the evidence upload to an https
// cloud: the broker's CA and client certificate, and the cloud's own host
// name (broker.tls.server_name is for the broker only). Nil: defaults.
func (t TLS) HTTPClientConfig() (*tls.Config, error) {
	c, err := t.ClientConfig()
	if c != nil {
		c.ServerName = ""
	}
	return c, err
}
