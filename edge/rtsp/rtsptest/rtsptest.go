// Package rtsptest starts a real, independent RTSP server for tests: the
// GStreamer-based ../shared/tools/rtsp-server.py next to the module root. It
// serves /test (a live 1280x720 25 fps H.264 pattern with a keyframe every
// second) and any H.264 MPEG-TS or MP4 files you name, each played once per
// client session in real time. It also makes such files with ffmpeg.
package rtsptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// python is Debian's interpreter, which has the gi bindings; another python3
// on PATH may not.
const python = "/usr/bin/python3"

// ScriptEnv overrides where the server script is looked for.
const ScriptEnv = "GRIDWATCH_RTSP_SERVER"

// Server is one rtsp-server.py process on a fixed port.
type Server struct {
	// URL is the base, rtsp://127.0.0.1:PORT, without a trailing slash;
	// the live pattern is URL+"/test", a file named clip is URL+"/clip".
	URL  string
	Port int

	t      testing.TB
	script string
	args   []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *syncBuffer
}

// StartTestServer starts a server on a free port and returns its base URL
// (rtsp://127.0.0.1:PORT). files maps a path name to an H.264 .ts or .mp4
// file. The server is killed when the test ends.
func StartTestServer(t testing.TB, files map[string]string) (baseURL string) {
	t.Helper()
	return Start(t, files).URL
}

// Start is StartTestServer returning the Server, for tests that stop and
// restart it.
func Start(t testing.TB, files map[string]string) *Server {
	t.Helper()
	script := ScriptPath(t)
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("rtsptest: %s not found: the RTSP test server needs Debian's python3 with python3-gi (see docs/TOOLCHAIN.md)", python)
	}
	port := freePort(t)
	args := []string{script, strconv.Itoa(port)}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := files[name]
		if name == "" || name == "test" || strings.ContainsAny(name, "/=") {
			t.Fatalf("rtsptest: bad stream name %q", name)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("rtsptest: file for /%s: %v", name, err)
		}
		args = append(args, name+"="+abs)
	}
	s := &Server{URL: fmt.Sprintf("rtsp://127.0.0.1:%d", port), Port: port, t: t, script: script, args: args}
	t.Cleanup(s.Kill)
	s.start()
	return s
}

// Stop ends the server with SIGTERM and waits for it. Safe to repeat.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, like a crash, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Restart starts the server again on the same port (stopping it first if
// it is still running).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(python, s.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("rtsptest: start %s: %v", s.script, err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.TrimSpace(sc.Text()) == "ready" {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.stderr = cmd, exited, stderr
	s.mu.Unlock()

	// The first run may rebuild GStreamer's plugin registry, which is slow.
	select {
	case <-ready:
	case <-exited:
		s.t.Fatalf("rtsptest: %s exited before it was ready: %v\nstderr:\n%s", s.script, cmd.ProcessState, stderr)
	case <-time.After(30 * time.Second):
		s.Kill()
		s.t.Fatalf("rtsptest: %s not ready after 30s\nstderr:\n%s", s.script, stderr)
	}
	// The script says "ready" even if binding the port failed.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("rtsptest: server said ready but %s does not accept connections: %v\nstderr:\n%s", addr, err, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ScriptPath finds rtsp-server.py: $GRIDWATCH_RTSP_SERVER if set, otherwise
// ../shared/tools/rtsp-server.py from the module root (the nearest directory
// above the working directory holding go.mod).
func ScriptPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ScriptEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rtsptest: $%s=%s: %v", ScriptEnv, p, err)
		}
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("rtsptest: %v", err)
	}
	p := filepath.Join(root, "..", "shared", "tools", "rtsp-server.py")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("rtsptest: RTSP test server script not found at %s (module root %s): %v; "+
			"it lives in ../shared/tools next to the module, or set $%s", p, root, err, ScriptEnv)
	}
	return p
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rtsptest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// MakeClip encodes seconds of ffmpeg's testsrc (colour bars, width x height,
// 25 fps, a keyframe every 25 frames, no B-frames, yuv420p) as H.264 in
// MPEG-TS under t.TempDir() and returns its path.
func MakeClip(t testing.TB, width, height, seconds int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("testsrc-%dx%d-%ds.ts", width, height, seconds))
	args := []string{"-v", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=25", width, height),
		"-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
		"-f", "mpegts", out}
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("rtsptest: ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
