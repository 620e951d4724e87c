// Package tlstest makes certificate authorities and certificates for tests
// of the box's TLS uplink, and starts a real Mosquitto with a TLS listener
// that requires client certificates signed by its CA.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gridwatch/gridwatch/cloud/broker"
)

// CA is a certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a self-signed CA valid for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	Usage      x509.ExtKeyUsage // ServerAuth or ClientAuth
	NotAfter   time.Time        // zero: a day from now
}

// Issue signs a new certificate and returns it and its key as PEM.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: l.CommonName},
		DNSNames: l.DNSNames, IPAddresses: l.IPs,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: l.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{l.Usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// IssueFiles is Issue writing dir/name.crt and dir/name.key.
func (ca *CA) IssueFiles(dir, name string, l Leaf) (certFile, keyFile string, err error) {
	c, k, err := ca.Issue(l)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, k, 0o644) // test keys: Mosquitto reads them as its own user
}

// WriteCA writes the CA certificate to dir/name.pem.
func (ca *CA) WriteCA(dir, name string) (string, error) {
	p := filepath.Join(dir, name+".pem")
	return p, os.WriteFile(p, ca.PEM, 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// Broker is a Mosquitto with one TLS listener that requires a client
// certificate from the CA and takes its common name as the user name; the
// ACL lets each box use its own topics only, and the user "gridwatch-cloud"
// everything under gridwatch/.
type Broker struct {
	*broker.Mosquitto
	CA         *CA
	CAFile     string
	ServerName string // the name in the server certificate (not "localhost")
	dir        string
}

// StartBroker generates the CA and the server certificate in a directory
// of its own and starts the broker; Close stops it and removes the files.
// The directory is readable by all: Mosquitto started as root drops to its
// own user before it reads the certificates (t.TempDir is 0700).
func StartBroker() (*Broker, error) {
	dir, err := os.MkdirTemp("", "gridwatch-tls-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := NewCA("gridwatch test CA")
	if err != nil {
		return nil, err
	}
	b := &Broker{CA: ca, ServerName: "broker.gridwatch.test", dir: dir}
	if b.CAFile, err = ca.WriteCA(dir, "ca"); err != nil {
		return nil, err
	}
	crt, key, err := ca.IssueFiles(dir, "server", Leaf{CommonName: b.ServerName, DNSNames: []string{b.ServerName},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, err
	}
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("user gridwatch-cloud\ntopic readwrite gridwatch/#\n\npattern readwrite gridwatch/v1/dev/%u/#\n"), 0o644); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\nacl_file %s\n",
		b.CAFile, crt, key, acl)
	if b.Mosquitto, err = broker.StartMosquitto(dir, conf); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// Dir is where the broker's and the issued files are.
func (b *Broker) Dir() string { return b.dir }

// Close stops the broker and removes its files.
func (b *Broker) Close() error {
	err := b.Mosquitto.Close()
	os.RemoveAll(b.dir)
	return err
}

// URL is the broker's ssl:// address.
func (b *Broker) URL() string { return "ssl://" + strings.TrimPrefix(b.Mosquitto.URL(), "tcp://") }

// Client issues a client certificate for a box or the cloud (the common
// name is its broker user name) and writes it into the broker's directory.
func (b *Broker) Client(cn string) (certFile, keyFile string, err error) {
	return b.CA.IssueFiles(b.dir, cn, Leaf{CommonName: cn, Usage: x509.ExtKeyUsageClientAuth})
}
