package imagery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Cloud files a job's changes into a running cloud through its API: the
// crops with PUT /api/v1/evidence/SHA, then each change with POST
// /api/v1/imagery/changes. It is an Intake and an EvidencePutter, so
// FileChanges does exactly what it does inside the cloud, and the cloud's
// idempotency by device+seq makes sending a job again (or after a resume)
// create nothing twice.
type Cloud struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewCloud checks the address (http or https, no path beyond the root) and
// the token's presence.
func NewCloud(base, token string) (*Cloud, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--cloud %q: want the cloud's address, like http://127.0.0.1:8080", base)
	}
	if u.Path != "" {
		return nil, fmt.Errorf("--cloud %q: give the address without a path (the API is under /api/v1)", base)
	}
	if token == "" {
		return nil, errors.New("--token (or GRIDWATCH_TOKEN): the cloud needs an admin token to file changes")
	}
	return &Cloud{base: u, token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiError reads the cloud's error body ({"error": "..."}).
func apiError(resp *http.Response, what string) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: the cloud refused the token (401: %s)", what, msg)
	case http.StatusForbidden:
		return fmt.Errorf("%s: the token's role may not file changes, an admin token is needed (403: %s)", what, msg)
	}
	return fmt.Errorf("%s: %s: %s", what, resp.Status, msg)
}

func (c *Cloud) do(ctx context.Context, method, path, ctype string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", ctype)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cloud %s: %w", c.base, err)
	}
	return resp, nil
}

// Check asks the cloud, before a long job, whether it is there, takes the
// token for filing (an empty change is refused as bad input, 400, only
// after the token and its role passed) and knows the category.
func (c *Cloud) Check(ctx context.Context, category string) error {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/imagery/changes", "application/json", []byte("{}"))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusBadRequest {
		defer resp.Body.Close()
		return apiError(resp, "cloud "+c.base.String())
	}
	resp.Body.Close()
	resp, err = c.do(ctx, http.MethodGet, "/api/v1/taxonomy", "application/json", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp, "cloud "+c.base.String()+" taxonomy")
	}
	var tax struct {
		Version    string `json:"version"`
		Categories []struct {
			Code string `json:"code"`
			Kind string `json:"kind"`
		} `json:"categories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tax); err != nil {
		return fmt.Errorf("cloud %s taxonomy: %w", c.base, err)
	}
	for _, k := range tax.Categories {
		if k.Kind == "event" && k.Code == category {
			return nil
		}
	}
	return fmt.Errorf("--category %s is not an event code of the cloud's taxonomy (version %s)", category, tax.Version)
}

// Put uploads one crop (the cloud checks its sha256).
func (c *Cloud) Put(sum string, r io.Reader) (bool, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return false, err
	}
	resp, err := c.do(context.Background(), http.MethodPut, "/api/v1/evidence/"+url.PathEscape(sum), "image/jpeg", data)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusOK:
		return false, nil
	}
	return false, apiError(resp, "evidence "+sum)
}

// Apply files one change report.
func (c *Cloud) Apply(ctx context.Context, r wire.Report, raw []byte) (cases.Outcome, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/imagery/changes", "application/json", raw)
	if err != nil {
		return cases.Outcome{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return cases.Outcome{}, apiError(resp, "change "+r.ID)
	}
	var out struct {
		CaseID    int64 `json:"case_id"`
		Created   bool  `json:"created"`
		Duplicate bool  `json:"duplicate"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return cases.Outcome{}, fmt.Errorf("change %s: the cloud's answer: %w", r.ID, err)
	}
	return cases.Outcome{CaseID: out.CaseID, Created: out.Created, Duplicate: out.Duplicate}, nil
}
