package ingest

import (
	"bufio"
	"net"
	"net/url"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// bufferedDial opens a tcp:// or mqtt:// broker connection with a read
// buffer. paho reads every packet's fixed header a byte at a time, a system
// call each, which at thousands of messages a second costs more CPU than
// decoding them; with the buffer a burst of messages is one read.
func bufferedDial(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	c, err := d.Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// dialerFor returns bufferedDial for plain TCP brokers, nil (paho's own:
// TLS, websockets, unix sockets) for the others.
func dialerFor(brokerURL string) mqtt.OpenConnectionFunc {
	if u, err := url.Parse(brokerURL); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		return bufferedDial
	}
	return nil
}
