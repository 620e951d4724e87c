package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Mosquitto is a real Mosquitto of our own, for tests and benchmarks: its
// own config on a free loopback port, never the machine's shared one.
type Mosquitto struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	log  *strings.Builder
}

// MosquittoConfig lifts the limits that make Mosquitto drop QoS 1 messages
// to a slow subscriber (TOOLCHAIN.md) and keeps nothing on disk.
const MosquittoConfig = `allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`

// MosquittoPath finds the mosquitto binary (Debian puts it in /usr/sbin).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("mosquitto not installed (hack/install-deps.sh installs it)")
}

// StartMosquitto runs Mosquitto with MosquittoConfig plus extra config lines
// on a free 127.0.0.1 port, writing its config into dir, and waits until it
// accepts connections.
func StartMosquitto(dir, extra string) (*Mosquitto, error) {
	bin, err := MosquittoPath()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	_, port, _ := net.SplitHostPort(addr)
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\n"+MosquittoConfig+extra), 0o644); err != nil {
		return nil, err
	}
	m := &Mosquitto{cmd: exec.Command(bin, "-c", conf), addr: addr, done: make(chan struct{}), log: new(strings.Builder)}
	m.cmd.Stderr = &lockedWriter{w: m.log}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("mosquitto exited: %s", m.Log())
		default:
		}
		if time.Now().After(deadline) {
			m.Close()
			return nil, fmt.Errorf("mosquitto does not listen on %s after 10 s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the broker's address for MQTT clients.
func (m *Mosquitto) URL() string { return "tcp://" + m.addr }

// Pid is the broker's process id.
func (m *Mosquitto) Pid() int { return m.cmd.Process.Pid }

// Log returns what Mosquitto wrote to stderr so far.
func (m *Mosquitto) Log() string {
	lw := m.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return m.log.String()
}

// Close stops the broker and waits for it to exit.
func (m *Mosquitto) Close() error {
	m.cmd.Process.Signal(os.Interrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-m.done:
	case <-ctx.Done():
		m.cmd.Process.Kill()
		<-m.done
	}
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
