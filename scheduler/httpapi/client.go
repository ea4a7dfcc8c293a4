package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/blixard/blixard/scheduler"
)

// ErrUnreachable is returned when no peer API answers at the address.
var ErrUnreachable = errors.New("no peer API answers")

// APIError is an error the peer answered with.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// NotFound reports whether the peer did not know the job.
func (e *APIError) NotFound() bool { return e.Code == http.StatusNotFound }

// BadInput reports whether the peer refused the request's content.
func (e *APIError) BadInput() bool { return e.Code == http.StatusBadRequest }

// Client talks to one peer's API. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the API at addr (host:port).
func NewClient(addr string) *Client {
	return &Client{base: "http://" + addr, http: &http.Client{}}
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s (is 'blixard peer' running? set --api or BLIXARD_API)",
			ErrUnreachable, strings.TrimPrefix(c.base, "http://"))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readError(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func readError(resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &APIError{Code: resp.StatusCode, Message: e.Error}
}

// Self returns the peer's ID, addresses and join token.
func (c *Client) Self(ctx context.Context) (Self, error) {
	var s Self
	return s, c.do(ctx, "GET", "/v1/self", nil, &s)
}

// Peers returns the members the peer knows, itself first.
func (c *Client) Peers(ctx context.Context) ([]scheduler.Announce, error) {
	var out []scheduler.Announce
	return out, c.do(ctx, "GET", "/v1/peers", nil, &out)
}

// Submit submits spec and returns the job's ID.
func (c *Client) Submit(ctx context.Context, spec scheduler.Spec) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" as one byte, not six
	if err := enc.Encode(spec); err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	return out.ID, c.do(ctx, "POST", "/v1/jobs", &buf, &out)
}

// AddModule uploads a WASM module and returns its reference.
func (c *Client) AddModule(ctx context.Context, data []byte) (string, error) {
	var out struct {
		Module string `json:"module"`
	}
	return out.Module, c.do(ctx, "POST", "/v1/modules", bytes.NewReader(data), &out)
}

// Jobs lists the jobs the peer knows of.
func (c *Client) Jobs(ctx context.Context, limit int) ([]scheduler.Event, error) {
	var out []scheduler.Event
	return out, c.do(ctx, "GET", "/v1/jobs?limit="+strconv.Itoa(limit), nil, &out)
}

// Status returns a job's status.
func (c *Client) Status(ctx context.Context, id string) (scheduler.Status, error) {
	var st scheduler.Status
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &st)
}

// Wait blocks until the job ends and returns its status.
func (c *Client) Wait(ctx context.Context, id string) (scheduler.Status, error) {
	var st scheduler.Status
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"/wait", nil, &st)
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) error {
	return c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil)
}

// Drain stops (on) or resumes (!on) the peer taking new work.
func (c *Client) Drain(ctx context.Context, on bool) error {
	path := "/v1/undrain"
	if on {
		path = "/v1/drain"
	}
	return c.do(ctx, "POST", path, nil, nil)
}

// Logs copies a job's output stream ("stdout" or "stderr") to w; with
// follow it returns once the job has ended and all output is copied.
func (c *Client) Logs(ctx context.Context, id, stream string, follow bool, w io.Writer) error {
	q := url.Values{"stream": {stream}}
	if follow {
		q.Set("follow", "1")
	}
	req, err := http.NewRequestWithContext(ctx, "GET",
		c.base+"/v1/jobs/"+url.PathEscape(id)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s", ErrUnreachable, strings.TrimPrefix(c.base, "http://"))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
