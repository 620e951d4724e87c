package uplink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/atomicfile"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Evidence is a directory of evidence files waiting for upload, named
// <sha256><ext>. Saving is durable; a file leaves only after the cloud
// answered 2xx, so uploads resume after restarts.
type Evidence struct {
	dir   string
	cloud string
	http  *http.Client
	log   *slog.Logger
	wake  chan struct{}
}

// OpenEvidence opens the queue in dir, uploading to cloudURL. tlsCfg, when
// not nil, is used for an https cloudURL (the CA the cloud's certificate
// must chain to, and the box's client certificate).
func OpenEvidence(dir, cloudURL string, tlsCfg *tls.Config, log *slog.Logger) (*Evidence, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("evidence queue: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if tlsCfg != nil && strings.HasPrefix(cloudURL, "https://") {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		client.Transport = tr
	}
	return &Evidence{dir: dir, cloud: strings.TrimRight(cloudURL, "/"), log: log,
		http: client, wake: make(chan struct{}, 1)}, nil
}

// Save stores data durably and returns its sha256.
func (e *Evidence) Save(data []byte, ext string) (string, error) {
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if err := atomicfile.Write(filepath.Join(e.dir, sum+ext), data); err != nil {
		return "", fmt.Errorf("save evidence: %w", err)
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return sum, nil
}

// Pending returns how many files wait for upload.
func (e *Evidence) Pending() int {
	ents, _ := os.ReadDir(e.dir)
	n := 0
	for _, x := range ents {
		if !strings.HasPrefix(x.Name(), ".") {
			n++
		}
	}
	return n
}

// Run uploads pending files until ctx ends, retrying failures with backoff.
func (e *Evidence) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		failed := false
		ents, err := os.ReadDir(e.dir)
		if err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, x := range ents {
			if strings.HasPrefix(x.Name(), ".") || ctx.Err() != nil {
				continue
			}
			if err := e.upload(ctx, x.Name()); err != nil {
				e.log.Warn("evidence upload failed, will retry", "file", x.Name(), "err", err)
				failed = true
				break
			}
		}
		wait := time.Hour
		if failed {
			wait, backoff = backoff, min(backoff*2, 30*time.Second)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.wake:
		case <-time.After(wait):
		}
	}
}

func (e *Evidence) upload(ctx context.Context, name string) error {
	p := filepath.Join(e.dir, name)
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	ext := filepath.Ext(name)
	sum := strings.TrimSuffix(name, ext)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.cloud+"/api/v1/evidence/"+sum, bytes.NewReader(data))
	if err != nil {
		return err
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cloud answered %s", resp.Status)
	}
	e.log.Debug("evidence uploaded", "sha256", sum, "bytes", len(data))
	return os.Remove(p)
}
